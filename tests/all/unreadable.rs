//! Files that are not images or cannot be decoded are findings, listed with reasons; the
//! run still succeeds, and every file found is accounted for exactly once.

use std::collections::BTreeSet;

use crate::common::Fixture;

fn paths(list: &serde_json::Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn bad_files_are_listed_with_reasons_and_the_run_succeeds() {
    let fx = Fixture::new();
    let good = fx.png("cat/good.png", 1);
    fx.png("dog/good.png", 2);
    let png = std::fs::read(&good).unwrap();
    fx.bytes("cat/truncated.png", &png[..png.len() / 2]);
    fx.bytes("cat/empty.jpg", b"");
    fx.bytes(
        "dog/page.jpg",
        b"<!DOCTYPE html><html><body>404</body></html>",
    );
    fx.bytes("dog/notes.txt", b"just some notes");
    fx.bytes("dog/.hidden.png", &png);
    fx.bytes("cat/.DS_Store", b"\0\0\0\x01Bud1");
    fx.bytes("cat/Thumbs.db", b"\xd0\xcf\x11\xe0");
    fx.bytes("loose.png", &png);
    fx.bytes("cat/no_extension", &png);
    fx.bytes("dog/actually_png.jpg", &png);

    let run = fx.report(&[]);
    assert_eq!(run.output.status.code(), Some(0));
    let report = run.report_json();
    assert_eq!(
        paths(&report["unreadable"]),
        ["cat/empty.jpg", "cat/truncated.png", "dog/page.jpg"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert_eq!(
        paths(&report["skipped"]),
        [
            "cat/.DS_Store",
            "cat/Thumbs.db",
            "dog/.hidden.png",
            "dog/notes.txt",
            "loose.png"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    // A PNG without extension or with a .jpg extension is still analysed.
    assert_eq!(report["dataset"]["images"], 4);
    let reasons: Vec<String> = report["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("empty file")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("HTML")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("png")), "{reasons:?}");

    // Every file written above is accounted for exactly once.
    let mut all: Vec<String> = Vec::new();
    for key in ["unreadable", "skipped"] {
        all.extend(paths(&report[key]));
    }
    assert_eq!(all.len() + 4, 12);
    let html = run.html();
    assert!(html.contains("cat/truncated.png"));
    assert!(html.contains("dog/notes.txt"));
}

#[test]
fn an_unreadable_file_is_not_decoded_again_on_rerun() {
    let fx = Fixture::new();
    fx.png("cat/a.png", 1);
    fx.bytes("cat/bad.png", b"\x89PNG\r\n\x1a\nnot really");
    fx.settle();
    let first = fx.report(&[]);
    assert_eq!(first.decoded(), 2);
    let second = fx.report(&[]);
    assert_eq!(second.decoded(), 0);
    assert_eq!(second.reran(), Vec::<String>::new());
}

// Regression guard: TGA has no signature to sniff, and every valid TGA of the image crate's
// test images was refused as "not an image despite its extension".
#[test]
fn tga_files_are_analysed_and_a_garbage_tga_gets_a_reason() {
    let fx = Fixture::new();
    fx.png("cat/a.png", 1);
    let mut tga = Vec::new();
    crate::common::synthetic(2, 16, 12)
        .write_to(&mut std::io::Cursor::new(&mut tga), image::ImageFormat::Tga)
        .unwrap();
    fx.bytes("dog/b.tga", &tga);
    fx.bytes(
        "dog/fake.tga",
        b"GIF? no: just text that claims to be a TGA",
    );
    let run = fx.report(&[]);
    assert_eq!(run.output.status.code(), Some(0));
    let report = run.report_json();
    assert_eq!(report["dataset"]["images"], 2, "{}", report["unreadable"]);
    assert_eq!(report["dataset"]["formats"]["tga"], 1);
    assert_eq!(report["dataset"]["class_counts"]["dog"], 1);
    let unreadable = report["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 1, "{unreadable:?}");
    assert_eq!(unreadable[0]["path"], "dog/fake.tga");
    let reason = unreadable[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("not an image despite its extension") && reason.contains("tga"),
        "{reason}"
    );
}
