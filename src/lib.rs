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
pub mod fsutil;
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

/// Runs one command to completion.
pub fn run(args: cli::Args) -> Result<()> {
    let settings = config::Settings::resolve(&args)?;
    if let Some(jobs) = settings.jobs {
        // A second call (tests running in one process) keeps the first pool; that is fine.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .build_global();
    }
    match &args.command {
        cli::Command::Report(_) => pipeline::run(&settings).map(|_| ()),
        cli::Command::Demo(demo_args) => pipeline::run_demo(&settings, demo_args.seed).map(|_| ()),
    }
}
