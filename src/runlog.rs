//! The run log: what happened to each stage in one run (fresh, stale and why, forced; its
//! time and the work it did), written to `<out>/run.json` and shown in the report's "How it
//! was made".
//!
//! A small leaf module so that the orchestrator writes it and the report reads it without
//! either depending on the other. run.json is read by scripts, the benchmark and the tests:
//! its field names and strings only ever grow.

use serde::{Deserialize, Serialize};

use crate::stage::Stage;
use crate::stages::dedup::{SearchMode, SearchStats};
use crate::stages::embed::EmbedCounts;
use crate::stages::ingest::IngestCounts;

/// Whether a stage's cached result was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    Fresh,
    Stale,
    /// Stale because `--force` said so.
    Forced,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Fresh => "fresh",
            StageStatus::Stale => "stale",
            StageStatus::Forced => "forced",
        }
    }
}

/// What happened to one stage in this run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    pub name: Stage,
    pub status: StageStatus,
    /// Why it reran, in words ([`crate::cache::StaleReason::describe`]).
    pub reason: Option<String>,
    pub seconds: f64,
    /// Ingest only: files read, units decoded and reused.
    pub ingest: Option<IngestCounts>,
    /// Dedup only, when it ran: pictures searched, pairs checked, pairs reused.
    #[serde(default)]
    pub dedup: Option<DedupCounts>,
    /// Embed only, when it ran: feature vectors computed and reused, time per step.
    #[serde(default)]
    pub embed: Option<EmbedCounts>,
}

/// The work dedup did in this run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DedupCounts {
    /// Distinct pictures whose candidates were searched (0 when the pairs were reused; the
    /// new pictures alone on an incremental search).
    pub pictures_searched: usize,
    /// Candidate pairs given the careful check in this run.
    pub pairs_checked: usize,
    /// The near-duplicate pairs came from the last run.
    pub pairs_reused: bool,
    /// "full", "incremental" or "reused" (`None`: near duplicates are off).
    #[serde(default)]
    pub search: Option<SearchMode>,
    /// Incremental: old pictures whose pairs were kept.
    #[serde(default)]
    pub pictures_kept: usize,
    /// Incremental: old candidate lists that lost an entry and were searched again.
    #[serde(default)]
    pub lists_refilled: usize,
}

impl DedupCounts {
    pub fn of(search: &SearchStats) -> DedupCounts {
        let mode = Some(search.mode());
        if search.reused {
            DedupCounts {
                pairs_reused: true,
                search: mode,
                ..Default::default()
            }
        } else {
            DedupCounts {
                pictures_searched: search.pictures,
                pairs_checked: search.checked,
                pairs_reused: false,
                search: mode,
                pictures_kept: search.pictures_kept,
                lists_refilled: search.lists_refilled,
            }
        }
    }
}

/// The log of one run, written to `<out>/run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunLog {
    pub tool_version: String,
    pub stages: Vec<StageReport>,
    pub total_seconds: f64,
    /// Peak resident memory of the process (Linux), bytes.
    pub peak_rss_bytes: Option<u64>,
    pub warnings: Vec<String>,
    pub images: usize,
    pub unreadable: usize,
    /// The gate's outcome (`--fail-on`), as in report.json; absent for a run without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::gate::GateOutcome>,
}

impl RunLog {
    /// Whether a gate was given and one of its checks failed.
    pub fn gate_failed(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| !g.passed)
    }
}

/// Peak resident set size from /proc (Linux); `None` elsewhere.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
