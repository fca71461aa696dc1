//! The gate (`--fail-on`, `[gate]`): exit code 3, and which check failed on which files in
//! the terminal, report.json and summary.md; a gate that passes exits 0.

use crate::common::Fixture;

/// The small split dataset with one planted test image copied from train (leakage) and one
/// file that cannot be decoded.
fn leaky_dataset() -> Fixture {
    let fx = Fixture::new();
    fx.small_dataset();
    let original = std::fs::read(fx.data().join("train/dog/2.png")).unwrap();
    fx.bytes("test/dog/copy.png", &original);
    fx.bytes("train/cat/broken.png", b"\x89PNG\r\n\x1a\nnot really");
    fx.settle();
    fx
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["gate"]["checks"]
        .as_array()
        .expect("gate.checks")
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {}", report["gate"]))
}

fn files(check: &serde_json::Value) -> Vec<String> {
    check["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_failed_gate_exits_3_and_names_the_check_and_its_files_everywhere() {
    let fx = leaky_dataset();
    let run = fx.report_raw(&["--fail-on", "leakage,unreadable,conflicting-labels"]);
    assert_eq!(run.output.status.code(), Some(3), "{}", run.stderr());
    // The outputs are written all the same: a failed gate is not a failed run.
    assert!(fx.out().join("report.html").is_file());
    let report = run.report_json();
    assert_eq!(report["gate"]["passed"], false);
    let leakage = check(&report, "leakage");
    assert_eq!(leakage["passed"], false);
    assert!(leakage["value"].as_f64().unwrap() >= 1.0);
    let leaked = files(leakage);
    assert!(
        leaked.contains(&"test/dog/copy.png".to_string())
            && leaked.contains(&"train/dog/2.png".to_string()),
        "{leaked:?}"
    );
    let unreadable = check(&report, "unreadable");
    assert_eq!(files(unreadable), ["train/cat/broken.png"]);
    assert_eq!(check(&report, "conflicting-labels")["passed"], true);

    let stderr = run.stderr();
    assert!(stderr.contains("gate: FAILED"), "{stderr}");
    assert!(
        stderr.contains("leakage") && stderr.contains("test/dog/copy.png"),
        "{stderr}"
    );
    assert!(stderr.contains("train/cat/broken.png"), "{stderr}");
    let summary = std::fs::read_to_string(fx.out().join("summary.md")).unwrap();
    assert!(summary.contains("### Gate: failed"), "{summary}");
    assert!(summary.contains("`test/dog/copy.png`"), "{summary}");
    assert!(summary.contains("❌ **unreadable**"), "{summary}");
    assert_eq!(run.run_log()["gate"]["passed"], false);
}

#[test]
fn a_gate_whose_thresholds_allow_the_findings_passes_and_reruns_only_render() {
    let fx = leaky_dataset();
    let failed = fx.report_raw(&["--fail-on", "leakage"]);
    assert_eq!(failed.output.status.code(), Some(3), "{}", failed.stderr());
    let found = check(&failed.report_json(), "leakage")["value"]
        .as_f64()
        .unwrap();
    let allowed = format!("leakage={found},unreadable=1");
    let passed = fx.report_raw(&["--fail-on", &allowed]);
    assert_eq!(passed.output.status.code(), Some(0), "{}", passed.stderr());
    assert_eq!(
        passed.reran(),
        ["render"],
        "another gate renders again, nothing else"
    );
    let report = passed.report_json();
    assert_eq!(report["gate"]["passed"], true);
    assert!(
        passed.stderr().contains("gate: passed"),
        "{}",
        passed.stderr()
    );
    let summary = std::fs::read_to_string(fx.out().join("summary.md")).unwrap();
    assert!(summary.contains("### Gate: passed"), "{summary}");
    // Without a gate the run exits 0 and the JSON says there were no checks.
    let none = fx.report_raw(&[]);
    assert_eq!(none.output.status.code(), Some(0), "{}", none.stderr());
    assert_eq!(none.report_json()["gate"]["checks"], serde_json::json!([]));
}

#[test]
fn the_gate_in_aldente_toml_fails_again_on_a_fresh_rerun() {
    let fx = leaky_dataset();
    std::fs::write(
        fx.dir.path().join("aldente.toml"),
        "[gate]\nfail_on = [\"unreadable\"]\n",
    )
    .unwrap();
    let first = fx.report_raw(&["--quiet"]);
    assert_eq!(first.output.status.code(), Some(3), "{}", first.stderr());
    // --quiet still says why the exit code is 3.
    assert!(
        first.stderr().contains("train/cat/broken.png"),
        "{}",
        first.stderr()
    );
    let again = fx.report_raw(&[]);
    assert_eq!(again.reran(), Vec::<String>::new(), "everything fresh");
    assert_eq!(
        again.output.status.code(),
        Some(3),
        "read back from report.json"
    );
    // The flag replaces the settings file's checks.
    let flag = fx.report_raw(&["--fail-on", "conflicting-labels"]);
    assert_eq!(flag.output.status.code(), Some(0), "{}", flag.stderr());
}

#[test]
fn imbalance_fails_above_its_ratio_and_names_the_classes() {
    let fx = Fixture::new();
    for j in 0..8 {
        fx.png(&format!("many/{j}.png"), j);
    }
    fx.png("few/0.png", 50);
    fx.png("few/1.png", 51);
    fx.settle();
    let run = fx.report_raw(&["--fail-on", "imbalance"]);
    assert_eq!(run.output.status.code(), Some(3), "{}", run.stderr());
    let report = run.report_json();
    let imbalance = check(&report, "imbalance");
    assert_eq!(imbalance["value"], 4.0);
    assert_eq!(imbalance["threshold"], 3.0, "statistics.imbalance_ratio");
    assert_eq!(files(imbalance), ["many", "few"]);
    let run = fx.report_raw(&["--fail-on", "imbalance=4"]);
    assert_eq!(run.output.status.code(), Some(0), "{}", run.stderr());
}

#[test]
fn a_wrong_check_is_a_setting_error_naming_it() {
    let fx = Fixture::new();
    fx.png("cat/a.png", 1);
    let run = fx.report_raw(&["--fail-on", "leakage,nonsense"]);
    assert_eq!(run.output.status.code(), Some(2));
    assert!(run.stderr().contains("nonsense"), "{}", run.stderr());
    let run = fx.report_raw(&["--fail-on", "leakage=-1"]);
    assert_eq!(run.output.status.code(), Some(2));
    let config = fx.dir.path().join("gate.toml");
    std::fs::write(&config, "[gate]\nfail_on = [\"imbalance=0.5\"]\n").unwrap();
    let run = fx.report_raw(&["--config", config.to_str().unwrap()]);
    assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        stderr.contains("gate.fail_on")
            && stderr.contains("imbalance=0.5")
            && stderr.contains("gate.toml"),
        "{stderr}"
    );
    assert!(!fx.out().join("report.json").exists(), "nothing ran");
}
