//! MNIST-style IDX files written by the test: gzip-compressed and plain, with a planted
//! duplicate and a truncated file.

use std::io::Write;

use crate::common::{Fixture, synthetic};

/// A grey 28x28 record from a seeded synthetic picture.
fn record(seed: u32) -> Vec<u8> {
    let picture = synthetic(seed, 28, 28);
    picture
        .pixels()
        .map(|p| ((u32::from(p[0]) * 2 + u32::from(p[1]) * 5 + u32::from(p[2])) / 8) as u8)
        .collect()
}

fn images_file(records: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 3];
    for d in [records.len() as u32, 28, 28] {
        bytes.extend(d.to_be_bytes());
    }
    for r in records {
        bytes.extend(r);
    }
    bytes
}

fn labels_file(labels: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend((labels.len() as u32).to_be_bytes());
    bytes.extend(labels);
    bytes
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn idx_files_are_read_with_splits_labels_duplicates_and_a_truncated_file() {
    let fx = Fixture::new();
    // Train (gzip): 12 records, labels 0..3 three times; record 7 is a copy of record 2.
    let mut train: Vec<Vec<u8>> = (0..12).map(|i| record(100 + i)).collect();
    train[7] = train[2].clone();
    let train_labels: Vec<u8> = (0..12).map(|i| (i % 4) as u8).collect();
    fx.bytes(
        "mnist/train-images-idx3-ubyte.gz",
        &gzip(&images_file(&train)),
    );
    fx.bytes(
        "mnist/train-labels-idx1-ubyte.gz",
        &gzip(&labels_file(&train_labels)),
    );
    // Test (plain): 4 records promised, the file cut inside the last one.
    let test: Vec<Vec<u8>> = (0..4).map(|i| record(500 + i)).collect();
    let mut test_images = images_file(&test);
    test_images.truncate(test_images.len() - 100);
    fx.bytes("mnist/t10k-images-idx3-ubyte", &test_images);
    fx.bytes("mnist/t10k-labels-idx1-ubyte", &labels_file(&[9, 9, 8, 8]));
    fx.bytes("mnist/notes.txt", b"downloaded from somewhere");

    let report = fx.report(&[]).report_json();
    let dataset = &report["dataset"];
    assert_eq!(dataset["images"], 15, "{dataset}");
    assert_eq!(
        dataset["splits"],
        serde_json::json!({"train": 12, "test": 3})
    );
    assert_eq!(dataset["class_counts"]["0"], 3);
    assert_eq!(dataset["class_counts"]["9"], 2);
    assert_eq!(dataset["class_split_counts"]["8"]["test"], 1);
    let classes: Vec<&str> = dataset["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(classes, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);

    // The planted copy, named by file and record.
    let groups = report["duplicates"]["exact_groups"].to_string();
    assert!(
        groups.contains("mnist/train-images-idx3-ubyte.gz#00002")
            && groups.contains("mnist/train-images-idx3-ubyte.gz#00007"),
        "{groups}"
    );
    // The truncated file keeps its whole records and says why.
    let unreadable = report["unreadable"].as_array().unwrap();
    let truncated = unreadable
        .iter()
        .find(|u| u["path"] == "mnist/t10k-images-idx3-ubyte")
        .unwrap_or_else(|| panic!("{unreadable:?}"));
    assert!(
        truncated["reason"].as_str().unwrap().contains("truncated"),
        "{truncated}"
    );
    let skipped = report["skipped"].to_string();
    assert!(skipped.contains("mnist/notes.txt"), "{skipped}");
    assert!(
        skipped.contains("labels of the IDX images file mnist/train-images-idx3-ubyte.gz"),
        "{skipped}"
    );
}

#[test]
fn idx_count_mismatch_and_bad_magic_are_listed() {
    let fx = Fixture::new();
    let train: Vec<Vec<u8>> = (0..5).map(record).collect();
    fx.bytes("train-images-idx3-ubyte", &images_file(&train));
    fx.bytes("train-labels-idx1-ubyte", &labels_file(&[1, 2, 3]));
    fx.bytes("t10k-images-idx3-ubyte.gz", b"<html>not found</html>");
    fx.bytes("t10k-labels-idx1-ubyte.gz", &gzip(&labels_file(&[1])));
    let report = fx.report(&["--layout", "idx"]).report_json();
    assert_eq!(report["dataset"]["images"], 3);
    let unreadable = report["unreadable"].to_string();
    assert!(unreadable.contains("count mismatch"), "{unreadable}");
    assert!(
        unreadable.contains("t10k-images-idx3-ubyte.gz"),
        "{unreadable}"
    );
    assert!(unreadable.contains("bad magic number"), "{unreadable}");
}

#[test]
fn fashion_mnist_is_named_by_its_folder_and_a_rerun_decodes_nothing() {
    let fx = Fixture::new();
    let train: Vec<Vec<u8>> = (0..4).map(|i| record(40 + i)).collect();
    fx.bytes(
        "fashion-mnist/train-images-idx3-ubyte.gz",
        &gzip(&images_file(&train)),
    );
    fx.bytes(
        "fashion-mnist/train-labels-idx1-ubyte.gz",
        &gzip(&labels_file(&[0, 9, 9, 1])),
    );
    fx.settle();
    let first = fx.report(&[]);
    assert_eq!(first.decoded(), 4);
    let report = first.report_json();
    assert_eq!(report["dataset"]["class_counts"]["Ankle boot"], 2);
    let rerun = fx.report(&[]);
    assert_eq!(rerun.decoded(), 0);
    assert_eq!(rerun.ingest_count("files_read"), 0);
    assert_eq!(rerun.reran(), Vec::<String>::new());
    // A relabel (a new labels file, the images file untouched) reads the pair again but
    // decodes nothing: the images file's identity covers its labels file.
    let labels = fx.bytes(
        "fashion-mnist/train-labels-idx1-ubyte.gz",
        &gzip(&labels_file(&[0, 9, 8, 1])),
    );
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&labels)
        .unwrap()
        .set_modified(past)
        .unwrap();
    let relabel = fx.report(&[]);
    assert_eq!(relabel.decoded(), 0);
    assert_eq!(relabel.ingest_count("files_read"), 1);
    assert_eq!(relabel.report_json()["dataset"]["class_counts"]["Bag"], 1);
}
