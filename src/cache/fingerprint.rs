//! Fingerprints: what a stage's result depends on, hashed for comparison and kept in a
//! sidecar to explain a change ([`Change`], worded in [`crate::cache::stale`]: "folder
//! `train/cat` gained 3 files", "dedup.threshold changed 0.9 → 0.92").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::cache::stale::{Change, StaleReason};
use crate::stage::Stage;

/// Everything a stage's result depends on. Never holds an absolute path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FingerprintInputs {
    /// Serialised as the stage's name, so fingerprints do not depend on the enum's shape.
    pub stage: Stage,
    /// The stage's own version constant; bumped when its logic changes.
    pub stage_version: u32,
    pub tool_version: String,
    /// The config section the stage reads (and nothing else).
    pub config: serde_json::Value,
    /// Fingerprints of the stages it reads from.
    pub upstream: BTreeMap<String, String>,
    /// Per-folder summary of the input files (ingest only): what changed, where.
    #[serde(default)]
    pub folders: BTreeMap<String, FolderSummary>,
    /// Other named inputs (a digest of the templates, say).
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// How many units a folder holds and a digest of their names, labels and contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderSummary {
    pub count: u64,
    pub digest: String,
}

/// One file a stage wrote, with its size, so a damaged cache entry is noticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    pub path: String,
    pub bytes: u64,
}

/// What is stored beside a fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    pub fingerprint: String,
    pub inputs: FingerprintInputs,
    pub outputs: Vec<OutputFile>,
}

/// Whether a stage can be reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Stale(StaleReason),
}

impl FingerprintInputs {
    pub fn new(stage: Stage, stage_version: u32, config: &impl Serialize) -> FingerprintInputs {
        FingerprintInputs {
            stage,
            stage_version,
            tool_version: crate::TOOL_VERSION.to_string(),
            // Serialising plain config structs cannot fail; a null would only make the
            // stage rerun more often, never wrongly reuse.
            config: serde_json::to_value(config).unwrap_or(serde_json::Value::Null),
            upstream: BTreeMap::new(),
            folders: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }

    pub fn with_upstream(mut self, stage: Stage, fingerprint: &str) -> Self {
        self.upstream
            .insert(stage.name().to_string(), fingerprint.to_string());
        self
    }

    pub fn with_extra(mut self, key: &str, value: String) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    /// The short stable hash compared on every run.
    pub fn fingerprint(&self) -> String {
        // serde_json writes struct fields in declaration order and maps sorted (BTreeMap, and
        // serde_json's own Map without `preserve_order`), so equal inputs give equal bytes.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        format!("{:016x}", xxh3_64(&bytes))
    }
}

impl FingerprintInputs {
    /// What differs between the cached run's inputs (`self`) and this run's (`new`).
    pub fn changes(&self, new: &Self) -> Vec<Change> {
        let mut changes = Vec::new();
        if self.tool_version != new.tool_version {
            changes.push(Change::ToolVersion {
                old: self.tool_version.clone(),
                new: new.tool_version.clone(),
            });
        }
        if self.stage_version != new.stage_version {
            changes.push(Change::StageVersion {
                stage: new.stage.name().to_string(),
                old: self.stage_version,
                new: new.stage_version,
            });
        }
        diff_values(new.stage.name(), &self.config, &new.config, &mut changes);
        for (name, fingerprint) in &new.upstream {
            if self.upstream.get(name) != Some(fingerprint) {
                changes.push(Change::Upstream {
                    stage: name.clone(),
                });
            }
        }
        changes.extend(folder_changes(&self.folders, &new.folders));
        for (key, value) in &new.extra {
            if self.extra.get(key) != Some(value) {
                changes.push(Change::Extra { key: key.clone() });
            }
        }
        changes
    }
}

/// Lists changed config keys as `section.key changed old → new`.
fn diff_values(
    prefix: &str,
    old: &serde_json::Value,
    new: &serde_json::Value,
    out: &mut Vec<Change>,
) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(old_map), Value::Object(new_map)) => {
            let mut keys: Vec<&String> = old_map.keys().chain(new_map.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let name = format!("{prefix}.{key}");
                match (old_map.get(key), new_map.get(key)) {
                    (Some(a), Some(b)) => diff_values(&name, a, b, out),
                    (None, Some(b)) => out.push(Change::Config {
                        key: name,
                        old: None,
                        new: Some(b.clone()),
                    }),
                    (Some(a), None) => out.push(Change::Config {
                        key: name,
                        old: Some(a.clone()),
                        new: None,
                    }),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => out.push(Change::Config {
            key: prefix.to_string(),
            old: Some(a.clone()),
            new: Some(b.clone()),
        }),
        _ => {}
    }
}

/// Folder-level changes: gained/lost files, changed files, new/removed folders; the first
/// few, then a count of the rest.
fn folder_changes(
    old: &BTreeMap<String, FolderSummary>,
    new: &BTreeMap<String, FolderSummary>,
) -> Vec<Change> {
    let mut changes = Vec::new();
    for (folder, summary) in new {
        let folder = folder.clone();
        match old.get(&folder) {
            None => changes.push(Change::FolderNew {
                folder,
                files: summary.count,
            }),
            Some(before) if before.count < summary.count => changes.push(Change::FolderGained {
                folder,
                files: summary.count - before.count,
            }),
            Some(before) if before.count > summary.count => changes.push(Change::FolderLost {
                folder,
                files: before.count - summary.count,
            }),
            Some(before) if before.digest != summary.digest => {
                changes.push(Change::FolderChanged { folder })
            }
            Some(_) => {}
        }
    }
    for (folder, summary) in old {
        if !new.contains_key(folder) {
            changes.push(Change::FolderGone {
                folder: folder.clone(),
                files: summary.count,
            });
        }
    }
    const SHOWN: usize = 4;
    if changes.len() > SHOWN {
        let more = changes.len() - SHOWN;
        changes.truncate(SHOWN);
        changes.push(Change::MoreFolders { folders: more });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(threshold: f64) -> FingerprintInputs {
        FingerprintInputs::new(
            Stage::Dedup,
            1,
            &serde_json::json!({"threshold": threshold}),
        )
        .with_upstream(Stage::Ingest, "abc")
    }

    #[test]
    fn equal_inputs_equal_fingerprints_and_changes_differ() {
        assert_eq!(inputs(0.9).fingerprint(), inputs(0.9).fingerprint());
        assert_ne!(inputs(0.9).fingerprint(), inputs(0.92).fingerprint());
    }

    #[test]
    fn config_change_is_explained_with_key_and_values() {
        let why = StaleReason::Changed(inputs(0.9).changes(&inputs(0.92))).describe();
        assert_eq!(why, "dedup.threshold changed 0.9 → 0.92");
    }

    #[test]
    fn folder_changes_are_explained() {
        let mut old = inputs(0.9);
        let summary = |count, digest: &str| FolderSummary {
            count,
            digest: digest.into(),
        };
        old.folders.insert("train/cat".into(), summary(10, "a"));
        old.folders.insert("train/dog".into(), summary(5, "b"));
        let mut new = old.clone();
        new.folders.insert("train/cat".into(), summary(13, "c"));
        new.folders.insert("train/dog".into(), summary(5, "d"));
        let why = StaleReason::Changed(old.changes(&new)).describe();
        assert!(why.contains("`train/cat` gained 3 files"), "{why}");
        assert!(why.contains("files in `train/dog` changed"), "{why}");
    }
}
