//! `aldente demo`: the synthetic dataset and its report.

use std::collections::BTreeSet;

use crate::common::{Fixture, read_json, run_in};

#[test]
fn demo_reports_every_planted_file_problem() {
    let fx = Fixture::new();
    let out = fx.dir.path().join("demo-out");
    let args = vec![
        "demo".to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    let run = run_in(fx.dir.path(), &args, &out);
    assert!(run.output.status.success(), "{}", run.stderr());
    let truth = read_json(&out.join("demo-truth.json"));
    let report = run.report_json();
    assert_eq!(report["dataset"]["images"], truth["image_count"]);
    let listed = |key: &str| -> BTreeSet<String> {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_string())
            .collect()
    };
    let expect = |key: &str| -> BTreeSet<String> {
        truth[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed("unreadable"), expect("corrupt"));
    assert_eq!(listed("skipped"), expect("skipped"));
    // Exact byte groups planted are all found.
    let groups: BTreeSet<Vec<String>> = report["duplicates"]["exact_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let mut g: Vec<String> = g
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
                .collect();
            g.sort();
            g
        })
        .collect();
    for planted in truth["exact_byte_groups"].as_array().unwrap() {
        let mut planted: Vec<String> = planted
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        planted.sort();
        assert!(
            groups.iter().any(|g| planted.iter().all(|p| g.contains(p))),
            "planted group {planted:?} not found"
        );
    }
    // A second demo run reuses the generated data and every stage.
    let again = run_in(fx.dir.path(), &args, &out);
    assert!(again.output.status.success());
    assert_eq!(again.reran(), Vec::<String>::new());
}
