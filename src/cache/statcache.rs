//! The stat cache: for each source file, its size, mtime and inode when it was last read, and
//! the units (path, label, content hash) found in it. It lets a rerun skip reading files that
//! did not change, the way git's index does.
//!
//! Trust rule: an entry is reused only if size, mtime and inode are all equal AND the file's
//! mtime is more than a second older than the scan that recorded it. A file written during or
//! just before that scan is "racy" (a second write may keep the same mtime) and is read again.
//! Content hashes, not mtimes, decide freshness further down: this cache only saves reading.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::dataset::UnitEncoding;

const RACY_WINDOW_NS: i128 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedUnit {
    pub rel_path: String,
    pub split: Option<String>,
    pub label: String,
    pub content_hash: u128,
    pub size: u64,
    pub cifar: bool,
}

impl CachedUnit {
    pub fn encoding(&self) -> UnitEncoding {
        if self.cifar {
            UnitEncoding::CifarRecord
        } else {
            UnitEncoding::File
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatEntry {
    pub rel_path: String,
    pub size: u64,
    pub mtime_ns: i128,
    pub ino: u64,
    pub units: Vec<CachedUnit>,
    /// A problem with the file as a whole (a truncated CIFAR batch).
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatCache {
    /// When the scan that wrote this cache started (ns since the epoch).
    pub scanned_at_ns: i128,
    pub entries: Vec<StatEntry>,
}

impl StatCache {
    /// An index from relative path to entry, for lookups during a scan.
    pub fn index(&self) -> HashMap<&str, &StatEntry> {
        self.entries
            .iter()
            .map(|e| (e.rel_path.as_str(), e))
            .collect()
    }

    /// Whether `entry` may stand for a file with this identity now.
    pub fn trusts(&self, entry: &StatEntry, size: u64, mtime_ns: i128, ino: u64) -> bool {
        entry.size == size
            && entry.mtime_ns == mtime_ns
            && entry.ino == ino
            && mtime_ns != 0
            && mtime_ns + RACY_WINDOW_NS < self.scanned_at_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mtime_ns: i128) -> StatEntry {
        StatEntry {
            rel_path: "a/b.png".into(),
            size: 10,
            mtime_ns,
            ino: 3,
            units: Vec::new(),
            note: None,
        }
    }

    #[test]
    fn identical_old_file_is_trusted() {
        let cache = StatCache {
            scanned_at_ns: 10_000_000_000,
            entries: vec![entry(1_000)],
        };
        assert!(cache.trusts(&cache.entries[0], 10, 1_000, 3));
        assert!(
            !cache.trusts(&cache.entries[0], 11, 1_000, 3),
            "size changed"
        );
        assert!(
            !cache.trusts(&cache.entries[0], 10, 1_001, 3),
            "mtime changed"
        );
        assert!(
            !cache.trusts(&cache.entries[0], 10, 1_000, 4),
            "inode changed"
        );
    }

    // Regression guard: a file modified in the same second as the scan could be modified
    // again with an equal mtime; trusting it would keep a stale content hash forever.
    #[test]
    fn racy_file_written_just_before_the_scan_is_not_trusted() {
        let cache = StatCache {
            scanned_at_ns: 10_000_000_000,
            entries: vec![entry(9_500_000_000)],
        };
        assert!(!cache.trusts(&cache.entries[0], 10, 9_500_000_000, 3));
    }
}
