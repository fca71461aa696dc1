//! Fuzzes the WebDataset shard reader with arbitrary bytes (raw, and behind the gzip
//! unpacker): `units` must never panic, every unit must borrow bytes from inside the shard
//! and carry a label, and every note must name the shard or one of its members. Nothing is
//! written to disk.
#![no_main]

use std::path::PathBuf;

use aldente::dataset::webdataset::units;
use aldente::dataset::{FileRole, Payload, SourceFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let file = SourceFile {
        rel_path: "train/shard-0000.tar".into(),
        abs_path: PathBuf::from("train/shard-0000.tar"),
        size: data.len() as u64,
        mtime_ns: 0,
        ino: 0,
        role: FileRole::Shard {
            split: Some("train".into()),
            label_field: None,
        },
    };
    let payload = Payload::of(data);
    let bytes: &[u8] = &payload.bytes;
    for label_field in [None, Some("label"), Some("species")] {
        let (cut, notes) = units(&file, Some("train"), label_field, bytes);
        let range = bytes.as_ptr_range();
        for unit in &cut {
            assert!(unit.rel_path.starts_with("train/shard-0000.tar:"));
            assert!(!unit.label.trim().is_empty());
            if !unit.bytes.is_empty() {
                assert!(range.contains(&unit.bytes.as_ptr()));
                assert!(unit.bytes.as_ptr_range().end <= range.end);
            }
        }
        for note in &notes {
            assert!(note.path.starts_with("train/shard-0000.tar"), "{}", note.path);
            assert!(!note.reason.is_empty());
        }
    }
});
