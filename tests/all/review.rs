//! The review loop: `aldente apply decisions.json DATASET` (moves, quarantine, undo,
//! refusals with exit code 4) and the review file's judgements in the next report.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::common::{Fixture, Run, read_json, run_in};

/// Every file (with its bytes) and folder under `root`, by relative path.
fn tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|entry| {
            let entry = entry.unwrap();
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let bytes = entry
                .file_type()
                .is_file()
                .then(|| std::fs::read(entry.path()).unwrap());
            (rel, bytes)
        })
        .collect()
}

fn hash(path: &Path) -> String {
    aldente::review::content_hash_of(&std::fs::read(path).unwrap())
}

fn relabel(fx: &Fixture, rel: &str, to: &str) -> Value {
    json!({"action": "relabel", "path": rel, "content_hash": hash(&fx.data().join(rel)), "to": to})
}

fn remove(fx: &Fixture, rel: &str) -> Value {
    json!({"action": "remove", "path": rel, "content_hash": hash(&fx.data().join(rel))})
}

/// Writes decisions.json beside the dataset (outside it) and returns its path.
fn decisions(fx: &Fixture, list: Vec<Value>) -> std::path::PathBuf {
    let path = fx.dir.path().join("decisions.json");
    let file = json!({"format": "aldente-decisions", "version": 1, "report_id": "test",
                      "dataset": "data", "decisions": list});
    std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
    path
}

/// Runs `aldente apply ARGS...` in the fixture's folder; does not check the outcome.
fn apply(fx: &Fixture, args: &[&str]) -> Run {
    let mut all = vec!["apply".to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    run_in(fx.dir.path(), &all, &fx.out())
}

fn stdout(run: &Run) -> String {
    String::from_utf8_lossy(&run.output.stdout).into_owned()
}

fn quarantine(fx: &Fixture) -> std::path::PathBuf {
    fx.dir.path().join("data.aldente-quarantine")
}

/// The small dataset plus two files whose names no other class folder has.
fn dataset(fx: &Fixture) {
    fx.png("train/cat/odd.png", 500);
    fx.png("test/cow/lone.png", 501);
    fx.small_dataset();
}

#[test]
fn apply_relabels_and_quarantines_and_undo_restores_the_tree_byte_for_byte() {
    let fx = Fixture::new();
    dataset(&fx);
    let before = tree(&fx.data());
    let file = decisions(
        &fx,
        vec![
            relabel(&fx, "train/cat/odd.png", "dog"),
            relabel(&fx, "test/cow/t.png", "horse"),
            remove(&fx, "train/dog/2.png"),
        ],
    );
    let data = fx.data().display().to_string();
    let run = apply(&fx, &[&file.display().to_string(), &data]);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert!(fx.data().join("train/dog/odd.png").is_file());
    assert!(!fx.data().join("train/cat/odd.png").exists());
    // A new class folder is made inside the same split.
    assert!(fx.data().join("test/horse/t.png").is_file());
    assert!(!fx.data().join("train/dog/2.png").exists());
    let quarantined = quarantine(&fx).join("apply-0001/train/dog/2.png");
    assert_eq!(
        std::fs::read(&quarantined).unwrap(),
        before["train/dog/2.png"].clone().unwrap(),
        "removed files are kept in the quarantine, never deleted"
    );
    let log = read_json(&quarantine(&fx).join("apply-0001/undo.json"));
    assert_eq!(log["state"], "applied", "{log}");
    assert_eq!(log["moves"].as_array().unwrap().len(), 3);
    assert!(stdout(&run).contains("moved 3 files"), "{}", stdout(&run));

    let undo = apply(&fx, &["--undo", &data]);
    assert!(undo.output.status.success(), "{}", undo.stderr());
    assert_eq!(
        tree(&fx.data()),
        before,
        "undo restores the dataset exactly"
    );
    let log = read_json(&quarantine(&fx).join("apply-0001/undo.json"));
    assert_eq!(log["state"], "undone");
    // Nothing left to undo: a second undo says so and fails.
    let again = apply(&fx, &["--undo", &data]);
    assert_eq!(again.output.status.code(), Some(1));
    assert!(
        again.stderr().contains("nothing to undo"),
        "{}",
        again.stderr()
    );
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let fx = Fixture::new();
    dataset(&fx);
    let before = tree(&fx.data());
    let pair_hashes = [
        hash(&fx.data().join("train/cat/0.png")),
        hash(&fx.data().join("train/cat/2.png")),
    ];
    let file = decisions(
        &fx,
        vec![
            relabel(&fx, "train/cat/odd.png", "dog"),
            remove(&fx, "train/dog/2.png"),
            json!({"action": "not_duplicate", "paths": ["train/cat/0.png", "train/cat/2.png"],
                   "content_hashes": pair_hashes}),
        ],
    );
    let run = apply(
        &fx,
        &[
            &file.display().to_string(),
            &fx.data().display().to_string(),
            "--dry-run",
        ],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    let out = stdout(&run);
    assert!(
        out.contains("relabel train/cat/odd.png → train/dog/odd.png"),
        "{out}"
    );
    assert!(out.contains("remove  train/dog/2.png →"), "{out}");
    assert!(out.contains("not duplicates"), "{out}");
    assert!(out.contains("nothing changed"), "{out}");
    assert_eq!(tree(&fx.data()), before);
    assert!(!quarantine(&fx).exists(), "a dry run makes no quarantine");
}

#[test]
fn hostile_paths_are_refused_and_the_rest_applies_with_exit_code_4() {
    let fx = Fixture::new();
    fx.small_dataset();
    let outside_dir = fx.dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside_dir).unwrap();
    let outside = outside_dir.join("secret.png");
    crate::common::synthetic(77, 8, 8).save(&outside).unwrap();
    let outside_hash = hash(&outside);
    // A link to a file outside, a class folder linked outside, and a relabel into a class
    // folder that is a link outside.
    std::os::unix::fs::symlink(&outside, fx.data().join("train/cat/link.png")).unwrap();
    std::os::unix::fs::symlink(&outside_dir, fx.data().join("train/evil")).unwrap();
    std::os::unix::fs::symlink(&outside_dir, fx.data().join("train/away")).unwrap();
    let outside_before = tree(&outside_dir);
    let hostile = |path: &str, action: &str| match action {
        "remove" => json!({"action": "remove", "path": path, "content_hash": outside_hash}),
        _ => json!({"action": "relabel", "path": path, "content_hash": outside_hash, "to": "dog"}),
    };
    let file = decisions(
        &fx,
        vec![
            hostile("../elsewhere/secret.png", "remove"),
            hostile("train/../../elsewhere/secret.png", "relabel"),
            hostile(&outside.display().to_string(), "remove"),
            hostile("train/cat/link.png", "relabel"),
            hostile("train/evil/secret.png", "remove"),
            relabel(&fx, "train/cat/3.png", "away"),
            relabel(&fx, "train/cat/0.png", "horse"),
        ],
    );
    let run = apply(
        &fx,
        &[
            &file.display().to_string(),
            &fx.data().display().to_string(),
        ],
    );
    assert_eq!(run.output.status.code(), Some(4), "{}", run.stderr());
    let out = stdout(&run);
    let refused = out.lines().filter(|l| l.starts_with("refused")).count();
    assert_eq!(refused, 6, "{out}");
    assert!(out.contains("`..` component"), "{out}");
    assert!(out.contains("absolute"), "{out}");
    assert!(out.contains("symbolic link"), "{out}");
    assert!(out.contains("train/away/3.png"), "{out}");
    assert_eq!(
        tree(&outside_dir),
        outside_before,
        "nothing outside was touched"
    );
    assert!(outside.is_file());
    assert!(fx.data().join("train/cat/3.png").is_file());
    // The one sound decision applied.
    assert!(fx.data().join("train/horse/0.png").is_file());
    assert!(!fx.data().join("train/cat/0.png").exists());
}

#[test]
fn a_file_changed_since_the_report_and_a_name_clash_are_refused() {
    let fx = Fixture::new();
    fx.small_dataset();
    let changed = relabel(&fx, "train/cat/1.png", "dog");
    fx.png("train/cat/1.png", 4242);
    // train/dog/0.png exists: moving train/cat/0.png there would overwrite it.
    let clash = relabel(&fx, "train/cat/0.png", "dog");
    let fine = remove(&fx, "train/cow/3.png");
    let before = tree(&fx.data());
    let file = decisions(&fx, vec![changed, clash, fine]);
    let run = apply(
        &fx,
        &[
            &file.display().to_string(),
            &fx.data().display().to_string(),
        ],
    );
    assert_eq!(run.output.status.code(), Some(4), "{}", run.stderr());
    let out = stdout(&run);
    assert!(
        out.contains("train/cat/1.png: the file changed since the report"),
        "{out}"
    );
    assert!(out.contains("`train/dog/0.png` exists already"), "{out}");
    assert_eq!(
        std::fs::read(fx.data().join("train/dog/0.png")).unwrap(),
        before["train/dog/0.png"].clone().unwrap(),
        "nothing is overwritten"
    );
    assert!(fx.data().join("train/cat/1.png").is_file());
    assert!(!fx.data().join("train/cow/3.png").exists());
}

#[test]
fn rerun_after_a_relabel_apply_decodes_nothing() {
    let fx = Fixture::new();
    dataset(&fx);
    fx.report(&[]);
    let file = decisions(&fx, vec![relabel(&fx, "train/cat/odd.png", "dog")]);
    let run = apply(
        &fx,
        &[
            &file.display().to_string(),
            &fx.data().display().to_string(),
        ],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    let rerun = fx.report(&[]);
    assert_eq!(rerun.decoded(), 0, "a moved file is not decoded again");
    let log = rerun.run_log();
    let embed = log["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "embed")
        .unwrap();
    assert_eq!(embed["embed"]["features_computed"], 0, "{embed}");
    assert_eq!(embed["embed"]["pixel_part_reused"], true, "{embed}");
    let report = rerun.report_json();
    assert_eq!(report["dataset"]["class_counts"]["dog"], 6, "{report}");
    assert!(
        report["embedding"]["map"]
            .to_string()
            .contains("train/dog/odd.png"),
        "the moved file is in the report under its new path"
    );
}

#[test]
fn judgements_go_to_the_review_file_and_the_next_report_shows_them_reviewed() {
    let fx = Fixture::new();
    let (first, _) = fx.demo();
    let out = fx.dir.path().join("demo-out");
    let data = out.join("demo-dataset");
    let report = first.report_json();
    let leak = report["duplicates"]["cross_split"][0].clone();
    assert!(
        leak.is_object(),
        "the demo plants leakage: {}",
        report["duplicates"]
    );
    assert_eq!(leak["reviewed"], false);
    let issue = report["label_issues"][0].clone();
    assert!(issue.is_object(), "the demo plants label issues");
    assert_eq!(
        issue["content_hash"].as_str().unwrap(),
        hash(&data.join(issue["path"].as_str().unwrap()))
    );
    let open_leaks = report["duplicates"]["cross_split"]
        .as_array()
        .unwrap()
        .len();
    let open_issues = report["label_issues"].as_array().unwrap().len();
    let list = vec![
        json!({"action": "not_duplicate", "paths": [leak["a"], leak["b"]],
               "content_hashes": [leak["a_content_hash"], leak["b_content_hash"]]}),
        json!({"action": "label_correct", "path": issue["path"],
               "content_hash": issue["content_hash"], "label": issue["given"]}),
    ];
    let file = fx.dir.path().join("decisions.json");
    let doc = json!({"format": "aldente-decisions", "version": 1,
                     "report_id": report["report_id"], "decisions": list});
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let args = vec![
        "apply".to_string(),
        file.display().to_string(),
        data.display().to_string(),
    ];
    let run = run_in(fx.dir.path(), &args, &out);
    assert!(run.output.status.success(), "{}", run.stderr());
    let review = read_json(&data.join("aldente-review.json"));
    assert_eq!(
        review["not_duplicate"].as_array().unwrap().len(),
        1,
        "{review}"
    );
    assert_eq!(
        review["label_correct"][0]["label"], issue["given"],
        "{review}"
    );
    // Applying the same judgements again adds nothing.
    let again = run_in(fx.dir.path(), &args, &out);
    assert!(
        stdout(&again).contains("recorded 0 new judgements"),
        "{}",
        stdout(&again)
    );

    let gate = format!(
        "leakage={},label-issues={}",
        open_leaks + 10,
        open_issues + 10
    );
    let rerun = run_in(
        fx.dir.path(),
        &[
            "demo".into(),
            "--out".into(),
            out.display().to_string(),
            "--fail-on".into(),
            gate,
        ],
        &out,
    );
    assert!(rerun.output.status.success(), "{}", rerun.stderr());
    assert_eq!(
        rerun.reran(),
        vec!["render".to_string()],
        "a judgement re-renders and redoes no pixel work"
    );
    let next = rerun.report_json();
    assert_eq!(next["report_id"], report["report_id"]);
    let reviewed_leak = next["duplicates"]["cross_split"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["a"] == leak["a"] && p["b"] == leak["b"])
        .unwrap();
    assert_eq!(reviewed_leak["reviewed"], true);
    let reviewed_issue = next["label_issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == issue["path"])
        .unwrap();
    assert_eq!(reviewed_issue["reviewed"], true);
    assert_eq!(next["review"]["file"], "aldente-review.json");
    assert!(next["review"]["duplicate_pairs_reviewed"].as_u64().unwrap() >= 1);
    assert_eq!(next["review"]["label_issues_reviewed"], 1);
    let checks = next["gate"]["checks"].as_array().unwrap();
    let value = |name: &str| {
        checks.iter().find(|c| c["check"] == name).unwrap()["value"]
            .as_f64()
            .unwrap() as usize
    };
    assert_eq!(
        value("leakage"),
        open_leaks - 1,
        "the gate counts open findings only"
    );
    assert_eq!(value("label-issues"), open_issues - 1);
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("reviewed as not duplicates"), "{summary}");
    assert!(
        !next["skipped"].to_string().contains("aldente-review.json"),
        "the review file is not a dataset file"
    );
}
