//! aldente: turn an image-classification dataset into one self-contained HTML report.
//!
//! The program is a staged pipeline — ingest → sample → statistics → dedup → embed → render —
//! whose stages each write a cached artifact with a fingerprint (see [`pipeline`] and [`cache`]).
//! `run` is the whole program after flag parsing; `main.rs` only maps its result to an exit code.

pub mod cache;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod decode;
pub mod demo;
pub mod diff;
pub mod fsutil;
pub mod gate;
pub mod neighbours;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod review;
pub mod runlog;
pub mod stage;
pub mod stages;
pub mod text;

use anyhow::Result;

/// The tool's version, part of every fingerprint: a new build never trusts an old cache.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How a command that ran to completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The outputs were written, and a `--fail-on` check failed (exit code
    /// [`gate::EXIT_CODE`]).
    GateFailed,
    /// `aldente apply` carried out what it could and refused some decisions (exit code
    /// [`review::EXIT_REFUSED`]).
    Refused,
}

/// Runs one command to completion.
pub fn run(args: cli::Args) -> Result<Outcome> {
    let settings = config::Settings::resolve(&args)?;
    if let Some(jobs) = settings.jobs {
        // A second call (tests running in one process) keeps the first pool; that is fine.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .build_global();
    }
    if let cli::Command::Apply(apply) = &args.command {
        return run_apply(apply, &settings);
    }
    let gate_failed = match &args.command {
        cli::Command::Report(_) => pipeline::run(&settings)?.gate_failed(),
        cli::Command::Demo(demo_args) => {
            pipeline::run_demo(&settings, demo_args.seed)?.gate_failed()
        }
        cli::Command::Diff(diff_args) => {
            !pipeline::diff::run(&settings, &diff_args.old, &diff_args.new)?.passed
        }
        cli::Command::Apply(_) => unreachable!("handled above"),
    };
    Ok(if gate_failed {
        Outcome::GateFailed
    } else {
        Outcome::Done
    })
}

/// `aldente apply`: plan, print, and (unless `--dry-run`) carry out; or `--undo`.
fn run_apply(args: &cli::ApplyArgs, settings: &config::Settings) -> Result<Outcome> {
    use review::apply;
    let options = apply::Options {
        dry_run: args.dry_run,
        quarantine: args.quarantine.clone(),
    };
    let (decisions, dataset) = args.decisions_and_dataset();
    let dataset_config = &settings.file.dataset;
    let refused = match decisions {
        None => {
            let undone = apply::undo(dataset, dataset_config, &options)?;
            for line in &undone.lines {
                println!("{line}");
            }
            for r in &undone.refused {
                println!("refused {} {}: {}", r.action, r.path, r.reason);
            }
            let verb = if options.dry_run {
                "dry run: would move back"
            } else {
                "moved back"
            };
            println!(
                "{verb} {} (log {}); {} refused",
                text::count(undone.lines.len(), "file", "files"),
                undone.log.display(),
                undone.refused.len()
            );
            !undone.refused.is_empty()
        }
        Some(decisions) => {
            let file = review::decisions::load(decisions)?;
            let plan = apply::plan(&file, dataset, dataset_config, &options)?;
            for line in plan.lines() {
                println!("{line}");
            }
            if options.dry_run {
                println!(
                    "dry run: would move {}, record {} in {}; {} refused; nothing changed",
                    text::count(plan.moves.len(), "file", "files"),
                    text::count(plan.judgements.len(), "judgement", "judgements"),
                    apply::review_file_path(&plan).display(),
                    plan.refused.len()
                );
                !plan.refused.is_empty()
            } else {
                let done = apply::execute(&plan)?;
                for r in &done.refused[plan.refused.len()..] {
                    println!("refused {} {}: {}", r.action, r.path, r.reason);
                }
                let undo_hint = match &done.undo_log {
                    Some(log) => format!(
                        " (undo log {}; undo with: aldente apply --undo {})",
                        log.display(),
                        dataset.display()
                    ),
                    None => String::new(),
                };
                println!(
                    "moved {}{undo_hint}; recorded {} in {}; {} refused",
                    text::count(done.moved, "file", "files"),
                    text::count(done.judgements_recorded, "new judgement", "new judgements"),
                    apply::review_file_path(&plan).display(),
                    done.refused.len()
                );
                !done.refused.is_empty()
            }
        }
    };
    Ok(if refused {
        Outcome::Refused
    } else {
        Outcome::Done
    })
}
