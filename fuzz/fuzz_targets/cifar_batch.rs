//! Fuzzes the CIFAR batch reader with arbitrary bytes: whatever a batch file holds, `units` must
//! cut it into whole records plus a counted leftover, never panic, and every unit must decode.
//! Nothing is written to disk.
#![no_main]

use std::path::PathBuf;

use aldente::dataset::cifar::{decode_record, units};
use aldente::dataset::{DatasetKind, FileRole, SourceFile};
use libfuzzer_sys::fuzz_target;

const PIXEL_BYTES: usize = 3072;

fuzz_target!(|data: &[u8]| {
    let file = SourceFile {
        rel_path: "fuzz/batch.bin".into(),
        abs_path: PathBuf::from("fuzz/batch.bin"),
        size: data.len() as u64,
        mtime_ns: 0,
        ino: 0,
        role: FileRole::CifarBatch {
            split: "train".into(),
        },
    };
    // Fewer names than label values, so out-of-range labels are exercised as well as the defaults.
    let few_names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();

    for (kind, record_bytes) in [(DatasetKind::Cifar10, 3073), (DatasetKind::Cifar100, 3074)] {
        let label_bytes = record_bytes - PIXEL_BYTES;
        for names in [None, Some(few_names.as_slice())] {
            let (cut, reason) = units(&file, "train", data, &kind, names);
            let leftover = data.len() % record_bytes;
            assert_eq!(cut.len() * record_bytes + leftover, data.len());
            assert_eq!(reason.is_some(), data.is_empty() || leftover > 0);

            for (index, unit) in cut.iter().enumerate() {
                assert_eq!(unit.bytes.len(), PIXEL_BYTES);
                // A unit borrows exactly the pixel bytes of its own record.
                let offset = unit.bytes.as_ptr() as usize - data.as_ptr() as usize;
                assert_eq!(offset, index * record_bytes + label_bytes);
                assert_eq!(unit.rel_path, format!("fuzz/batch.bin#{index:05}"));
                assert!(!unit.label.is_empty());

                let image = decode_record(unit.bytes).expect("a 3,072-byte record decodes");
                assert_eq!(image.dimensions(), (32, 32));
                // The last pixel takes the last byte of each plane.
                let [r, g, b] = image.get_pixel(31, 31).0;
                assert_eq!([r, g, b], [unit.bytes[1023], unit.bytes[2047], unit.bytes[3071]]);
            }
        }
    }
});
