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
    let gate_failed = match &args.command {
        cli::Command::Report(_) => pipeline::run(&settings)?.gate_failed(),
        cli::Command::Demo(demo_args) => {
            pipeline::run_demo(&settings, demo_args.seed)?.gate_failed()
        }
        cli::Command::Diff(diff_args) => {
            !pipeline::diff::run(&settings, &diff_args.old, &diff_args.new)?.passed
        }
    };
    Ok(if gate_failed {
        Outcome::GateFailed
    } else {
        Outcome::Done
    })
}
