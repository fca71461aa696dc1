//! decisions.json: what a person decided in the report, the input of `aldente apply`.
//!
//! A documented, versioned contract like report.json (README.md, "decisions.json"): fields
//! are only ever added; `version` changes if one is removed or changes meaning. Every
//! decision names its file(s) by path (relative to the dataset root, `/` separators, as in
//! report.json) *and* content hash (as the report saw the file), so that a file changed
//! since the report is refused instead of acted on.
//!
//! ```json
//! {"format": "aldente-decisions", "version": 1, "report_id": "...", "dataset": "name",
//!  "decisions": [
//!    {"action": "relabel", "path": "train/cat/x.png", "content_hash": "...", "to": "dog"},
//!    {"action": "remove", "path": "train/cat/y.png", "content_hash": "..."},
//!    {"action": "not_duplicate", "paths": ["a.png", "b.png"], "content_hashes": ["...", "..."]},
//!    {"action": "label_correct", "path": "...", "content_hash": "...", "label": "cat"}]}
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::fsutil;

pub const FORMAT: &str = "aldente-decisions";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionsFile {
    pub format: String,
    pub version: u32,
    /// report.json's `report_id` of the report the decisions were made in.
    #[serde(default)]
    pub report_id: Option<String>,
    /// report.json's `dataset.root`: the dataset folder's name.
    #[serde(default)]
    pub dataset: Option<String>,
    pub decisions: Vec<Decision>,
}

/// One decision. The first two are file changes, the last two judgements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Decision {
    /// Move the file into the class folder `to` (the split folder is kept).
    Relabel {
        path: String,
        content_hash: String,
        to: String,
    },
    /// Move the file out of the dataset, into the quarantine folder.
    Remove { path: String, content_hash: String },
    /// The two files of a duplicate pair are not copies of each other.
    NotDuplicate {
        paths: [String; 2],
        content_hashes: [String; 2],
    },
    /// The file's label (`label`) is right, though the report suspected it.
    LabelCorrect {
        path: String,
        content_hash: String,
        label: String,
    },
}

impl Decision {
    /// The path the decision is about (the first one, for a pair), for messages.
    pub fn path(&self) -> &str {
        match self {
            Decision::Relabel { path, .. }
            | Decision::Remove { path, .. }
            | Decision::LabelCorrect { path, .. } => path,
            Decision::NotDuplicate { paths, .. } => &paths[0],
        }
    }
}

/// Reads and checks a decisions file; the error names the file and what is wrong.
pub fn load(path: &Path) -> Result<DecisionsFile> {
    let bytes = fsutil::read(path)?;
    parse(&bytes).with_context(|| format!("{} is not a usable decisions file", path.display()))
}

pub fn parse(bytes: &[u8]) -> Result<DecisionsFile> {
    let file: DecisionsFile = serde_json::from_slice(bytes).context(
        "expected the JSON that the report's \"Export decisions.json\" writes \
         (format \"aldente-decisions\", see README.md)",
    )?;
    if file.format != FORMAT {
        bail!(
            "its `format` is {:?}, expected {FORMAT:?}: export the decisions from report.html",
            file.format
        );
    }
    if file.version > VERSION {
        bail!(
            "its `version` is {}, newer than this aldente understands ({VERSION}): update aldente",
            file.version
        );
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_and_unknown_ones_are_refused() {
        let text = br#"{"format": "aldente-decisions", "version": 1, "report_id": "r",
            "decisions": [
              {"action": "relabel", "path": "a", "content_hash": "h", "to": "dog"},
              {"action": "remove", "path": "b", "content_hash": "h"},
              {"action": "not_duplicate", "paths": ["a", "b"], "content_hashes": ["h", "i"]},
              {"action": "label_correct", "path": "c", "content_hash": "h", "label": "cat"}]}"#;
        let file = parse(text).unwrap();
        assert_eq!(file.decisions.len(), 4);
        assert_eq!(file.decisions[2].path(), "a");
        let bad = br#"{"format": "aldente-decisions", "version": 1,
            "decisions": [{"action": "delete", "path": "a"}]}"#;
        assert!(parse(bad).is_err());
    }

    #[test]
    fn another_format_or_a_newer_version_is_refused_with_what_to_do() {
        let other = br#"{"format": "something", "version": 1, "decisions": []}"#;
        assert!(format!("{:#}", parse(other).unwrap_err()).contains("export the decisions"));
        let newer = br#"{"format": "aldente-decisions", "version": 99, "decisions": []}"#;
        assert!(format!("{:#}", parse(newer).unwrap_err()).contains("update aldente"));
    }
}
