//! CIFAR-10/100 binary batches written by the test.

use crate::common::Fixture;

/// A CIFAR-10 record: label byte, then 1,024 R, 1,024 G, 1,024 B bytes.
fn record(label: u8, seed: u8) -> Vec<u8> {
    let mut rec = vec![label];
    for c in 0..3u8 {
        rec.extend((0..1024u32).map(|i| (i as u8).wrapping_mul(seed).wrapping_add(c * 40)));
    }
    rec
}

#[test]
fn cifar10_batches_are_read_with_labels_splits_and_names() {
    let fx = Fixture::new();
    let mut train = Vec::new();
    for i in 0..6u8 {
        train.extend(record(i % 3, i + 1));
    }
    let mut test = Vec::new();
    for i in 0..3u8 {
        test.extend(record(i, 50 + i));
    }
    fx.bytes("cifar-10-batches-bin/data_batch_1.bin", &train);
    fx.bytes("cifar-10-batches-bin/test_batch.bin", &test);
    fx.bytes(
        "cifar-10-batches-bin/batches.meta.txt",
        b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n",
    );
    let report = fx.report(&[]).report_json();
    let dataset = &report["dataset"];
    assert_eq!(dataset["images"], 9);
    assert_eq!(
        dataset["splits"],
        serde_json::json!({"train": 6, "test": 3})
    );
    assert_eq!(dataset["class_counts"]["automobile"], 3);
    assert_eq!(dataset["class_split_counts"]["bird"]["test"], 1);
    assert_eq!(dataset["classes"].as_array().unwrap().len(), 10);
    let skipped = report["skipped"].to_string();
    assert!(skipped.contains("batches.meta.txt"), "{skipped}");
    // Pixel statistics come from the planar bytes: red of record 0 is i*1 for i in 0..1024.
    assert!(report["statistics"]["mean"][0].as_f64().unwrap() > 0.0);
}

#[test]
fn truncated_cifar_batch_keeps_whole_records_and_says_why() {
    let fx = Fixture::new();
    let mut train = Vec::new();
    for i in 0..4u8 {
        train.extend(record(i, i + 1));
    }
    train.extend_from_slice(&[1, 2, 3]);
    fx.bytes("data_batch_1.bin", &train);
    let report = fx.report(&[]).report_json();
    assert_eq!(report["dataset"]["images"], 4);
    let unreadable = report["unreadable"].to_string();
    assert!(unreadable.contains("data_batch_1.bin"), "{unreadable}");
    assert!(unreadable.contains("truncated"), "{unreadable}");
}

#[test]
fn cifar100_uses_the_fine_label() {
    let fx = Fixture::new();
    let mut train = Vec::new();
    for i in 0..3u8 {
        let mut rec = vec![7u8, 40 + i];
        rec.extend(record(0, i + 3)[1..].iter());
        train.extend(rec);
    }
    fx.bytes("train.bin", &train);
    let report = fx.report(&[]).report_json();
    assert_eq!(report["dataset"]["images"], 3);
    assert_eq!(report["dataset"]["class_counts"]["class_40"], 1);
    assert_eq!(report["dataset"]["class_counts"]["class_42"], 1);
}
