//! The embed stage: label issues on the demo's planted errors, per-file reuse of feature
//! vectors, and the map's size and determinism.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::{Fixture, strings};

fn embed_counts(run: &crate::common::Run) -> Value {
    let log = run.run_log();
    log["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "embed")
        .map(|s| s["embed"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn planted_mislabelled_demo_images_top_the_label_issues() {
    let fx = Fixture::new();
    let (run, truth) = fx.demo();
    let report = run.report_json();
    let planted: Vec<&Value> = truth["mislabelled"].as_array().unwrap().iter().collect();
    assert!(planted.len() >= 10);
    let issues = report["label_issues"].as_array().unwrap();
    let top: Vec<&str> = issues
        .iter()
        .take(planted.len())
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    // Regression: when the demo's backdrops got a strong brightness mottle, a small disc filed
    // under rings ranked about 20th, its neighbours being pictures of any class on a similar
    // ground; the features then weighted the ground's brightness more than the disc's colour.
    for mislabel in &planted {
        let path = mislabel["path"].as_str().unwrap();
        let Some(rank) = top.iter().position(|p| *p == path) else {
            panic!(
                "planted {path} is not among the top {}: {top:?}",
                planted.len()
            );
        };
        let issue = &issues[rank];
        assert_eq!(issue["given"], mislabel["given"], "{issue}");
        assert_eq!(issue["suggested"], mislabel["true_label"], "{issue}");
        assert_eq!(issue["neighbours"].as_array().unwrap().len(), 8, "{issue}");
    }
    assert_eq!(report["embedding"]["method"], "tsne");
    assert_eq!(report["embedding"]["points"], report["dataset"]["images"]);
    let classes = report["dataset"]["classes"].as_array().unwrap().len();
    assert_eq!(
        report["embedding"]["confusion"].as_object().unwrap().len(),
        classes
    );
    let outliers = report["outliers"].as_array().unwrap();
    assert!(!outliers.is_empty());
    // The page shows the candidates with their neighbours.
    let html = run.html();
    assert!(html.contains("id=\"map-data\""));
    assert!(html.contains(planted[0]["path"].as_str().unwrap()));
}

#[test]
fn relabel_and_changed_pixels_recompute_only_new_feature_vectors() {
    let fx = Fixture::new();
    fx.small_dataset();
    let first = fx.report(&[]);
    let counts = embed_counts(&first);
    assert_eq!(counts["features_computed"], 15, "{counts}");
    assert_eq!(counts["features_reused"], 0, "{counts}");

    std::fs::rename(
        fx.data().join("train/cat/0.png"),
        fx.data().join("train/dog/moved.png"),
    )
    .unwrap();
    let relabelled = fx.report(&[]);
    assert!(relabelled.reran().contains(&"embed".to_string()));
    let counts = embed_counts(&relabelled);
    assert_eq!(
        counts["features_computed"], 0,
        "a relabel recomputed features: {counts}"
    );
    // A relabel reuses the whole pixel part, so the feature store is not even read.
    assert_eq!(counts["pixel_part_reused"], true, "{counts}");

    fx.png("train/cow/2.png", 999);
    let changed = fx.report(&[]);
    let counts = embed_counts(&changed);
    assert_eq!(counts["features_computed"], 1, "{counts}");
    assert_eq!(counts["features_reused"], 14, "{counts}");
}

#[test]
fn damaged_feature_store_is_recomputed_with_a_warning() {
    let fx = Fixture::new();
    fx.small_dataset();
    let first = fx.report(&[]).report_json();
    let store = fx.out().join("cache/embed/features.bin");
    let len = std::fs::metadata(&store).unwrap().len() as usize;
    std::fs::write(&store, vec![0xFFu8; len]).unwrap();
    let run = fx.report(&["--force=embed"]);
    let counts = embed_counts(&run);
    assert_eq!(counts["features_computed"], 15, "{counts}");
    let warnings = run.run_log()["warnings"].to_string();
    assert!(warnings.contains("feature"), "{warnings}");
    assert_eq!(run.report_json()["embedding"], first["embedding"]);
}

#[test]
fn map_holds_every_image_is_deterministic_and_honours_map_points() {
    let fx = Fixture::new();
    fx.small_dataset();
    let first = fx.report(&[]).report_json();
    assert_eq!(first["embedding"]["points"], 15);
    assert_eq!(first["embedding"]["map"].as_array().unwrap().len(), 15);
    let again = fx.report(&["--force=embed"]).report_json();
    assert_eq!(
        first["embedding"], again["embedding"],
        "same seed, different map"
    );
    assert_eq!(first["label_issues"], again["label_issues"]);

    std::fs::write(
        fx.dir.path().join("aldente.toml"),
        "[embed]\nmap_points = 6\n",
    )
    .unwrap();
    let run = fx.report(&[]);
    assert_eq!(run.reran(), strings(&["embed", "render"]));
    let report = run.report_json();
    let map = report["embedding"]["map"].as_array().unwrap();
    assert_eq!(report["embedding"]["points"], 6);
    assert_eq!(map.len(), 6);
    // Stratified: every (split, class) group keeps at least one image.
    let groups: BTreeSet<String> = map
        .iter()
        .map(|p| {
            let path = p["path"].as_str().unwrap();
            path.rsplit_once('/').unwrap().0.to_string()
        })
        .collect();
    assert_eq!(groups.len(), 6, "{groups:?}");
    assert!(run.html().contains("6 of 15 images"));
}
