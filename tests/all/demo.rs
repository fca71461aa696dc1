//! `aldente demo`: the synthetic dataset and its report.

use std::collections::BTreeSet;

use crate::common::Fixture;

#[test]
fn demo_reports_every_planted_file_problem() {
    let fx = Fixture::new();
    let (run, truth) = fx.demo();
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
    let (again, _) = fx.demo();
    assert_eq!(again.reran(), Vec::<String>::new());
}
