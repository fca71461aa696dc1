//! Folder-per-class datasets, with and without split folders.

use crate::common::Fixture;

#[test]
fn split_layout_counts_per_class_and_split() {
    let fx = Fixture::new();
    for i in 0..3 {
        fx.png(&format!("train/cat/{i}.png"), i);
    }
    for i in 0..2 {
        fx.png(&format!("train/dog/{i}.png"), 10 + i);
    }
    fx.png("test/cat/a.png", 20);
    fx.png("test/dog/b.png", 21);
    let run = fx.report(&[]);
    let report = run.report_json();
    let dataset = &report["dataset"];
    assert_eq!(dataset["images"], 7);
    assert_eq!(dataset["classes"], serde_json::json!(["cat", "dog"]));
    assert_eq!(
        dataset["splits"],
        serde_json::json!({"train": 5, "test": 2})
    );
    assert_eq!(
        dataset["class_counts"],
        serde_json::json!({"cat": 4, "dog": 3})
    );
    assert_eq!(dataset["class_split_counts"]["dog"]["train"], 2);
    assert_eq!(report["schema_version"], 1);
    // Paths are relative with forward slashes.
    assert!(run.html().contains("train/cat/0.png"));
}

#[test]
fn flat_layout_has_no_splits() {
    let fx = Fixture::new();
    fx.png("bird/0.png", 1);
    fx.png("bird/nested/1.png", 2);
    fx.png("fish/0.png", 3);
    let report = fx.report(&[]).report_json();
    assert_eq!(report["dataset"]["images"], 3);
    assert_eq!(report["dataset"]["splits"], serde_json::json!({}));
    assert_eq!(report["dataset"]["class_counts"]["bird"], 2);
}

#[test]
fn normalisation_constants_match_an_independent_computation() {
    let fx = Fixture::new();
    let mut sums = [0f64; 3];
    let mut sumsq = [0f64; 3];
    let mut n = 0f64;
    for i in 0..6 {
        let image = crate::common::synthetic(i, 16, 12);
        for p in image.pixels() {
            for c in 0..3 {
                let v = f64::from(p[c]) / 255.0;
                sums[c] += v;
                sumsq[c] += v * v;
            }
            n += 1.0;
        }
        fx.png(&format!("c{}/{i}.png", i % 2), i);
    }
    let report = fx.report(&[]).report_json();
    for c in 0..3 {
        let mean = sums[c] / n;
        let std = (sumsq[c] / n - mean * mean).sqrt();
        let got_mean = report["statistics"]["mean"][c].as_f64().unwrap();
        let got_std = report["statistics"]["std"][c].as_f64().unwrap();
        assert!(
            (got_mean - mean).abs() < 1e-9,
            "mean[{c}] {got_mean} vs {mean}"
        );
        assert!((got_std - std).abs() < 1e-9, "std[{c}] {got_std} vs {std}");
    }
}

#[test]
fn exact_duplicates_across_splits_are_reported_as_leakage() {
    let fx = Fixture::new();
    let original = fx.png("train/cat/a.png", 5);
    fx.png("train/cat/b.png", 6);
    fx.png("test/dog/c.png", 7);
    std::fs::create_dir_all(fx.data().join("test/cat")).unwrap();
    std::fs::copy(&original, fx.data().join("test/cat/copy.png")).unwrap();
    let report = fx.report(&[]).report_json();
    let dups = &report["duplicates"];
    assert_eq!(
        dups["exact_groups"],
        serde_json::json!([["test/cat/copy.png", "train/cat/a.png"]])
    );
    assert_eq!(dups["cross_split"][0]["a"], "test/cat/copy.png");
    assert_eq!(dups["cross_split"][0]["b"], "train/cat/a.png");
    assert_eq!(dups["cross_split"].as_array().unwrap().len(), 1);
}

#[test]
fn class_names_are_escaped_in_the_html() {
    let fx = Fixture::new();
    fx.png("<script>alert(1)</script>/a.png", 1);
    fx.png("a&b \"q\"/b.png", 2);
    let run = fx.report(&[]);
    let html = run.html();
    assert!(
        !html.contains("<script>alert(1)"),
        "unescaped class name in report.html"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("a&amp;b"));
}

#[test]
fn output_folder_inside_the_dataset_is_not_scanned() {
    let fx = Fixture::new();
    fx.png("cat/a.png", 1);
    fx.png("dog/b.png", 2);
    let out = fx.data().join("output");
    let args = vec![
        "report".to_string(),
        fx.data().display().to_string(),
        "--out".to_string(),
        out.display().to_string(),
    ];
    for _ in 0..2 {
        let run = crate::common::run_in(fx.dir.path(), &args, &out);
        assert!(run.output.status.success(), "{}", run.stderr());
        let report = run.report_json();
        assert_eq!(
            report["dataset"]["classes"],
            serde_json::json!(["cat", "dog"])
        );
        assert_eq!(report["dataset"]["images"], 2);
    }
}
