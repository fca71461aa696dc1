//! The review file, `aldente-review.json` at the dataset root: the judgements that are not
//! file changes ("these two are not duplicates", "this label is correct"), meant to be
//! committed with the data.
//!
//! Judgements are keyed by content hash, never by path, so they survive moves and renames,
//! and a file whose bytes change loses them (it is another picture to judge). A pair is
//! unordered (stored smaller hash first). The file is kept merged, deduplicated and in a
//! stable order, so that committing it gives small, readable diffs; it is written atomically.
//! Discovery never lists it ([`crate::dataset::REVIEW_FILE`]), and only render reads it:
//! writing a judgement re-renders the report and redoes no other stage.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{hash_hex, parse_hash};
use crate::fsutil;

pub use crate::dataset::REVIEW_FILE as FILE;
pub const FORMAT: &str = "aldente-review";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewFile {
    pub format: String,
    pub version: u32,
    /// Pairs of content hashes judged not to be duplicates, smaller hash first, sorted.
    #[serde(default)]
    pub not_duplicate: Vec<[String; 2]>,
    /// Files whose label was judged correct, sorted by hash then label.
    #[serde(default)]
    pub label_correct: Vec<LabelCorrect>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LabelCorrect {
    pub content_hash: String,
    pub label: String,
}

impl Default for ReviewFile {
    fn default() -> Self {
        ReviewFile {
            format: FORMAT.to_string(),
            version: VERSION,
            not_duplicate: Vec::new(),
            label_correct: Vec::new(),
        }
    }
}

/// The review file's judgements, parsed for lookups by the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgements {
    not_duplicate: BTreeSet<(u128, u128)>,
    label_correct: BTreeSet<(u128, String)>,
}

impl Judgements {
    pub fn is_not_duplicate(&self, a: u128, b: u128) -> bool {
        self.not_duplicate.contains(&(a.min(b), a.max(b)))
    }

    pub fn is_label_correct(&self, hash: u128, label: &str) -> bool {
        self.label_correct.contains(&(hash, label.to_string()))
    }

    pub fn is_empty(&self) -> bool {
        self.not_duplicate.is_empty() && self.label_correct.is_empty()
    }
}

impl ReviewFile {
    /// Reads `<root>/aldente-review.json`; `None` when there is none.
    pub fn load(root: &Path) -> Result<Option<ReviewFile>> {
        let path = root.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = fsutil::read(&path)?;
        Self::parse(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not a usable review file", path.display()))
    }

    pub fn parse(bytes: &[u8]) -> Result<ReviewFile> {
        let file: ReviewFile = serde_json::from_slice(bytes).context(
            "expected the JSON `aldente apply` writes (format \"aldente-review\"); \
             fix it by hand or move it away",
        )?;
        if file.format != FORMAT {
            bail!("its `format` is {:?}, expected {FORMAT:?}", file.format);
        }
        if file.version > VERSION {
            bail!(
                "its `version` is {}, newer than this aldente understands ({VERSION}): update aldente",
                file.version
            );
        }
        Ok(file)
    }

    /// Records that two pictures are not duplicates; false if it was already recorded.
    pub fn add_not_duplicate(&mut self, a: u128, b: u128) -> bool {
        let pair = [hash_hex(a.min(b)), hash_hex(a.max(b))];
        if self.not_duplicate.contains(&pair) {
            return false;
        }
        self.not_duplicate.push(pair);
        self.normalise();
        true
    }

    /// Records that a picture's label is right; false if it was already recorded.
    pub fn add_label_correct(&mut self, hash: u128, label: &str) -> bool {
        let entry = LabelCorrect {
            content_hash: hash_hex(hash),
            label: label.to_string(),
        };
        if self.label_correct.contains(&entry) {
            return false;
        }
        self.label_correct.push(entry);
        self.normalise();
        true
    }

    /// Sorted and deduplicated, hashes lower-case, pairs smaller first: a hand-edited file
    /// comes back in the one stable form.
    fn normalise(&mut self) {
        for pair in &mut self.not_duplicate {
            for hash in pair.iter_mut() {
                *hash = hash.to_lowercase();
            }
            pair.sort();
        }
        self.not_duplicate.sort();
        self.not_duplicate.dedup();
        for entry in &mut self.label_correct {
            entry.content_hash = entry.content_hash.to_lowercase();
        }
        self.label_correct.sort();
        self.label_correct.dedup();
    }

    /// Writes `<root>/aldente-review.json` atomically.
    pub fn save(&mut self, root: &Path) -> Result<()> {
        self.normalise();
        let mut json =
            serde_json::to_vec_pretty(self).context("could not serialise the review file")?;
        json.push(b'\n');
        fsutil::write_atomic(&root.join(FILE), &json)
    }

    /// The judgements for lookups; entries whose hashes cannot be read are ignored (a
    /// hand-edited typo must not stop a report).
    pub fn judgements(&self) -> Judgements {
        let not_duplicate = self
            .not_duplicate
            .iter()
            .filter_map(|[a, b]| {
                let (a, b) = (parse_hash(a)?, parse_hash(b)?);
                Some((a.min(b), a.max(b)))
            })
            .collect();
        let label_correct = self
            .label_correct
            .iter()
            .filter_map(|e| Some((parse_hash(&e.content_hash)?, e.label.clone())))
            .collect();
        Judgements {
            not_duplicate,
            label_correct,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_unordered_and_entries_deduplicated_in_a_stable_order() {
        let mut file = ReviewFile::default();
        assert!(file.add_not_duplicate(9, 3));
        assert!(
            !file.add_not_duplicate(3, 9),
            "the same pair the other way round"
        );
        assert!(file.add_not_duplicate(1, 2));
        assert!(file.add_label_correct(5, "dog"));
        assert!(file.add_label_correct(5, "cat"));
        assert!(!file.add_label_correct(5, "cat"));
        assert_eq!(file.not_duplicate[0], [hash_hex(1), hash_hex(2)]);
        assert_eq!(file.not_duplicate[1], [hash_hex(3), hash_hex(9)]);
        assert_eq!(file.label_correct[0].label, "cat");
        let judgements = file.judgements();
        assert!(judgements.is_not_duplicate(9, 3) && judgements.is_not_duplicate(3, 9));
        assert!(!judgements.is_not_duplicate(1, 3));
        assert!(judgements.is_label_correct(5, "dog"));
        assert!(!judgements.is_label_correct(6, "dog"));
    }

    #[test]
    fn saved_file_reads_back_and_a_hand_edited_one_is_normalised() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ReviewFile::load(dir.path()).unwrap(), None);
        let b = hash_hex(2).to_uppercase();
        let a = hash_hex(1);
        let text = format!(
            r#"{{"format": "aldente-review", "version": 1,
                "not_duplicate": [["{b}", "{a}"], ["{a}", "{b}"]]}}"#
        );
        std::fs::write(dir.path().join(FILE), text).unwrap();
        let mut file = ReviewFile::load(dir.path()).unwrap().unwrap();
        file.save(dir.path()).unwrap();
        let again = ReviewFile::load(dir.path()).unwrap().unwrap();
        assert_eq!(again.not_duplicate, vec![[hash_hex(1), hash_hex(2)]]);
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        let err = format!("{:#}", ReviewFile::load(dir.path()).unwrap_err());
        assert!(err.contains(FILE), "{err}");
    }
}
