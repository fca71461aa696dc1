//! Fuzzes the IDX reader with arbitrary bytes, as an images file and as a labels file (raw
//! and behind the gzip unpacker): `units` must never panic, every unit must hold exactly one
//! record of the header's size and decode, and a refusal must come with a reason. Nothing
//! is written to disk.
#![no_main]

use std::path::PathBuf;

use aldente::dataset::idx::{decode_record, units};
use aldente::dataset::{FileRole, Payload, SourceFile, UnitEncoding};
use libfuzzer_sys::fuzz_target;

/// A valid labels file of `n` labels, so the images half of the input is reached.
fn labels(n: usize) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend((n as u32).to_be_bytes());
    bytes.extend((0..n).map(|i| i as u8));
    bytes
}

/// A valid 2x2 images file of `n` records, so the labels half of the input is reached.
fn images(n: usize) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 3];
    for d in [n as u32, 2, 2] {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(std::iter::repeat_n(7u8, n * 4));
    bytes
}

fuzz_target!(|data: &[u8]| {
    let file = SourceFile {
        rel_path: "train-images-idx3-ubyte.gz".into(),
        abs_path: PathBuf::from("train-images-idx3-ubyte.gz"),
        size: data.len() as u64,
        mtime_ns: 0,
        ino: 0,
        role: FileRole::IdxImages {
            split: Some("train".into()),
            labels_rel: "train-labels-idx1-ubyte.gz".into(),
            labels_abs: PathBuf::from("train-labels-idx1-ubyte.gz"),
        },
    };
    let payload = Payload::of(data);
    let good_labels = labels(300);
    let good_images = images(5);
    let cases: [(&[u8], &[u8]); 3] = [
        (&payload.bytes, &good_labels),
        (&good_images, &payload.bytes),
        (&payload.bytes, &payload.bytes),
    ];
    for (image_bytes, label_bytes) in cases {
        let (cut, reasons) = units(&file, Some("train"), image_bytes, Ok(label_bytes), None);
        for (index, unit) in cut.iter().enumerate() {
            assert_eq!(unit.rel_path, format!("train-images-idx3-ubyte.gz#{index:05}"));
            assert!(!unit.label.is_empty());
            let UnitEncoding::IdxGrey { rows, cols } = unit.encoding else {
                panic!("not a grey record: {:?}", unit.encoding);
            };
            assert_eq!(unit.bytes.len() as u64, u64::from(rows) * u64::from(cols));
            let image = decode_record(unit.bytes, rows, cols).expect("a whole record decodes");
            assert_eq!(image.dimensions(), (cols, rows));
        }
        for reason in &reasons {
            assert!(!reason.is_empty());
        }
    }
});
