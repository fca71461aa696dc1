//! Why a stage must rerun, as data: [`StaleReason`] and the input [`Change`]s it lists,
//! worded for people in one place, [`StaleReason::describe`] (after cargo's
//! `fingerprint/dirty_reason.rs`).
//!
//! Code decides on the variants, never on the words; the words go into the stage line and
//! run.json (whose strings are a contract: change the wording here only on purpose).

use serde_json::Value;

use crate::text::plural;

/// Why a stage's cached result cannot be reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleReason {
    /// `--force` names this stage or an earlier one.
    Forced,
    /// The stage never ran into this output folder.
    NoCachedResult,
    /// A fingerprint without the sidecar that explains it.
    NoRecordOfInputs,
    /// The sidecar records another fingerprint than the one stored.
    Inconsistent,
    /// An artifact file named in the sidecar is gone.
    OutputMissing { path: String },
    /// An artifact file has another size than the one recorded.
    OutputDamaged {
        path: String,
        bytes: u64,
        expected: u64,
    },
    /// An artifact file has its recorded size but cannot be read back.
    OutputUnreadable { path: String },
    /// The inputs differ from the cached run's; empty when no difference can be named.
    Changed(Vec<Change>),
}

/// One difference between the inputs of the cached run and this run's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    ToolVersion {
        old: String,
        new: String,
    },
    StageVersion {
        stage: String,
        old: u32,
        new: u32,
    },
    /// A config key (`dedup.near_threshold`) that changed value, appeared or disappeared.
    Config {
        key: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    /// An upstream stage's fingerprint changed.
    Upstream {
        stage: String,
    },
    FolderNew {
        folder: String,
        files: u64,
    },
    FolderGained {
        folder: String,
        files: u64,
    },
    FolderLost {
        folder: String,
        files: u64,
    },
    /// Same number of files, other names, labels or contents.
    FolderChanged {
        folder: String,
    },
    FolderGone {
        folder: String,
        files: u64,
    },
    /// Folder changes beyond the first few, counted rather than listed.
    MoreFolders {
        folders: usize,
    },
    /// Another named input (the templates, the dataset's name).
    Extra {
        key: String,
    },
}

impl StaleReason {
    /// The reason in plain words, as shown after "stale: " and stored in run.json.
    pub fn describe(&self) -> String {
        match self {
            StaleReason::Forced => "forced (--force)".into(),
            StaleReason::NoCachedResult => "no cached result".into(),
            StaleReason::NoRecordOfInputs => "its cache entry has no record of its inputs".into(),
            StaleReason::Inconsistent => "its cache entry is inconsistent".into(),
            StaleReason::OutputMissing { path } => format!("{path} is missing"),
            StaleReason::OutputUnreadable { path } => format!("{path} cannot be read back"),
            StaleReason::OutputDamaged {
                path,
                bytes,
                expected,
            } => format!("{path} is damaged ({bytes} bytes, expected {expected})"),
            StaleReason::Changed(changes) if changes.is_empty() => "its inputs changed".into(),
            StaleReason::Changed(changes) => changes
                .iter()
                .map(Change::describe)
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

impl Change {
    pub fn describe(&self) -> String {
        let files = |n: &u64| format!("{n} {}", plural(*n, "file", "files"));
        match self {
            Change::ToolVersion { old, new } => format!("aldente changed version ({old} → {new})"),
            Change::StageVersion { stage, old, new } => {
                format!("the {stage} logic changed (stage version {old} → {new})")
            }
            Change::Config {
                key,
                old: Some(old),
                new: Some(new),
            } => format!("{key} changed {old} → {new}"),
            Change::Config {
                key,
                new: Some(new),
                ..
            } => format!("{key} set to {new}"),
            Change::Config { key, .. } => format!("{key} removed"),
            Change::Upstream { stage } => format!("{stage} changed"),
            Change::FolderNew { folder, files: n } => {
                format!("new folder `{folder}` ({})", files(n))
            }
            Change::FolderGained { folder, files: n } => format!("`{folder}` gained {}", files(n)),
            Change::FolderLost { folder, files: n } => format!("`{folder}` lost {}", files(n)),
            Change::FolderChanged { folder } => format!("files in `{folder}` changed"),
            Change::FolderGone { folder, files: n } => {
                format!("folder `{folder}` is gone ({})", files(n))
            }
            Change::MoreFolders { folders } => format!("and {folders} more folders changed"),
            Change::Extra { key } => format!("{key} changed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_worded_in_one_place() {
        let changed = StaleReason::Changed(vec![
            Change::Config {
                key: "dedup.near_threshold".into(),
                old: Some(serde_json::json!(0.09)),
                new: Some(serde_json::json!(0.1)),
            },
            Change::FolderGained {
                folder: "train/cat".into(),
                files: 1,
            },
        ]);
        assert_eq!(
            changed.describe(),
            "dedup.near_threshold changed 0.09 → 0.1; `train/cat` gained 1 file"
        );
        assert_eq!(
            StaleReason::Changed(Vec::new()).describe(),
            "its inputs changed"
        );
        assert_eq!(StaleReason::Forced.describe(), "forced (--force)");
    }
}
