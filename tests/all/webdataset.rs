//! WebDataset tar shards written by the test: labels from .cls and .json, a missing label,
//! an orphan label, a corrupt image member, a gzip shard, and a shard appended later.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat};

use crate::common::{Fixture, synthetic};
use crate::idx_files::gzip;

fn png(seed: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    DynamicImage::ImageRgb8(synthetic(seed, 16, 12))
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    bytes
}

fn shard(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

/// Samples `first..first + n`, labelled by .cls, alternately cat and dog.
fn labelled(first: u32, n: u32) -> Vec<(String, Vec<u8>)> {
    let mut members = Vec::new();
    for key in first..first + n {
        members.push((format!("{key:06}.png"), png(key)));
        let label = if key % 2 == 0 { "cat" } else { "dog" };
        members.push((format!("{key:06}.cls"), label.as_bytes().to_vec()));
    }
    members
}

fn member(name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    (name.to_string(), bytes.to_vec())
}

fn unit_paths(report: &serde_json::Value, list: &str) -> String {
    report[list].to_string()
}

#[test]
fn shards_are_read_with_labels_splits_and_every_problem_listed() {
    let fx = Fixture::new();
    let mut train = labelled(0, 6);
    train.push(member("000006.png", &png(6)));
    train.push(member("000007.cls", b"dog"));
    train.push(member("000008.png", b"\x89PNG\r\n\x1a\n but then nothing"));
    train.push(member("000008.cls", b"cat"));
    fx.bytes("train/shard-0000.tar", &shard(&train));
    // The test shard is gzip-compressed and labelled by .json; sample 000101 is a copy of
    // train's 000003 (leakage).
    let test = vec![
        member("000100.png", &png(100)),
        member("000100.json", br#"{"label": "cat", "source": "web"}"#),
        member("000101.png", &png(3)),
        member("000101.json", br#"{"label": "dog"}"#),
    ];
    fx.bytes("test-000000.tar.gz", &gzip(&shard(&test)));

    let report = fx.report(&[]).report_json();
    let dataset = &report["dataset"];
    assert_eq!(dataset["images"], 8, "{dataset}");
    assert_eq!(
        dataset["splits"],
        serde_json::json!({"train": 6, "test": 2})
    );
    assert_eq!(dataset["class_split_counts"]["cat"]["train"], 3);
    assert_eq!(dataset["class_split_counts"]["dog"]["test"], 1);
    let groups = report["duplicates"]["exact_groups"].to_string();
    assert!(
        groups.contains("train/shard-0000.tar:000003.png")
            && groups.contains("test-000000.tar.gz:000101.png"),
        "{groups}"
    );

    let unreadable = report["unreadable"].as_array().unwrap();
    let reason = |path: &str| {
        unreadable
            .iter()
            .find(|u| u["path"] == path)
            .and_then(|u| u["reason"].as_str())
            .unwrap_or_else(|| panic!("{path} not listed: {unreadable:?}"))
            .to_string()
    };
    assert!(reason("train/shard-0000.tar:000006.png").contains("without a label"));
    assert!(reason("train/shard-0000.tar:000007.cls").contains("label without an image"));
    assert!(!reason("train/shard-0000.tar:000008.png").is_empty());
    assert_eq!(unreadable.len(), 3, "{}", unit_paths(&report, "unreadable"));
}

#[test]
fn a_json_label_field_is_set_in_aldente_toml() {
    let fx = Fixture::new();
    let members = vec![
        member("a.jpg", &png(1)),
        member("a.json", br#"{"label": 0, "species": "owl"}"#),
        member("b.jpg", &png(2)),
        member("b.json", br#"{"label": 1, "species": "hawk"}"#),
    ];
    fx.bytes("shard-0000.tar", &shard(&members));
    let plain = fx.report(&["--layout", "webdataset"]).report_json();
    assert_eq!(plain["dataset"]["class_counts"]["0"], 1);
    std::fs::write(
        fx.dir.path().join("aldente.toml"),
        "[dataset]\nlabel_field = \"species\"\n",
    )
    .unwrap();
    let run = fx.report(&[]);
    assert_eq!(run.decoded(), 0, "a relabel decodes nothing");
    assert_eq!(run.report_json()["dataset"]["class_counts"]["owl"], 1);
}

#[test]
fn appending_a_shard_decodes_only_its_images() {
    let fx = Fixture::new();
    fx.bytes("train/shard-0000.tar", &shard(&labelled(0, 6)));
    fx.bytes("train/shard-0001.tar", &shard(&labelled(6, 4)));
    fx.settle();
    let first = fx.report(&[]);
    assert_eq!(first.decoded(), 10);
    fx.bytes("train/shard-0002.tar", &shard(&labelled(10, 3)));
    let rerun = fx.report(&[]);
    assert_eq!(rerun.decoded(), 3, "{}", rerun.stderr());
    assert_eq!(rerun.ingest_count("files_read"), 1);
    assert_eq!(rerun.report_json()["dataset"]["images"], 13);
}
