//! Progress bars and per-stage lines on stderr.
//!
//! Bars are drawn only when stderr is a terminal and `--quiet` is off; stage lines are
//! printed unless `--quiet`. Nothing here affects results.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    bars: bool,
    lines: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            bars: !quiet && std::io::stderr().is_terminal(),
            lines: !quiet,
        }
    }

    /// A bar for `len` steps; hidden when bars are off.
    pub fn bar(&self, len: u64, what: &str) -> ProgressBar {
        if !self.bars {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        let style = ProgressStyle::with_template(
            "  {msg:<12} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// Prints one line (a stage result, a warning) unless quiet.
    pub fn line(&self, text: &str) {
        if self.lines {
            eprintln!("{text}");
        }
    }
}
