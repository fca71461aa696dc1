//! The stat cache: for each source file, its size, mtime and inode when it was last read, and
//! the units (path, label, content hash) found in it. It lets a rerun skip reading files that
//! did not change, the way git's index does.
//!
//! Trust rule: an entry is reused only if size, mtime and inode are all equal AND the file's
//! mtime is clearly older than the scan that recorded it. A file written during or just before
//! that scan is "racy" (a second write within the same timestamp tick would keep the same
//! mtime) and is read again. "Clearly older" is 20 ms on filesystems with fine timestamps
//! (the kernel's coarse clock ticks every few ms) and 2 s where mtimes are whole seconds
//! (FAT, some network filesystems).
//! Content hashes, not mtimes, decide freshness further down: this cache only saves reading.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::dataset::{FileNote, UnitEncoding};

const FINE_RACY_WINDOW_NS: i128 = 20_000_000;
const COARSE_RACY_WINDOW_NS: i128 = 2_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedUnit {
    pub rel_path: String,
    pub split: Option<String>,
    pub label: String,
    pub content_hash: u128,
    pub size: u64,
    pub encoding: UnitEncoding,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatEntry {
    pub rel_path: String,
    pub size: u64,
    pub mtime_ns: i128,
    pub ino: u64,
    /// Content hash of a single-image file (its unit is named and labelled by its path).
    pub content_hash: u128,
    /// The units of a container file (a CIFAR batch); empty for single-image files, which
    /// keeps this cache small and quick to load for folder datasets.
    pub units: Vec<CachedUnit>,
    /// Problems with the file as a whole (a truncated CIFAR batch) or with units inside it
    /// (a shard member without a label), each with the path it is about.
    pub notes: Vec<FileNote>,
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
            && mtime_ns.saturating_add(racy_window(mtime_ns)) < self.scanned_at_ns
    }
}

fn racy_window(mtime_ns: i128) -> i128 {
    if mtime_ns % 1_000_000_000 == 0 {
        COARSE_RACY_WINDOW_NS
    } else {
        FINE_RACY_WINDOW_NS
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
            content_hash: 9,
            units: Vec::new(),
            notes: Vec::new(),
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
            entries: vec![entry(9_990_000_001)],
        };
        assert!(!cache.trusts(&cache.entries[0], 10, 9_990_000_001, 3));
        // Whole-second mtimes (FAT) need a wider window.
        let cache = StatCache {
            scanned_at_ns: 10_500_000_000,
            entries: vec![entry(9_000_000_000)],
        };
        assert!(!cache.trusts(&cache.entries[0], 10, 9_000_000_000, 3));
    }
}
