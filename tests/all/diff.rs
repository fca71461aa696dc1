//! `aldente diff OLD NEW`: images matched by content into added, removed, changed, moved and
//! relabelled; findings introduced and resolved; the gate on the diff; diff.html's rules.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{Fixture, Run, read_json, run_in, synthetic};

/// Copies a dataset folder (files only) to `to`.
fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn diff(fx: &Fixture, old: &Path, new: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec![
        "diff".into(),
        old.display().to_string(),
        new.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    run_in(fx.dir.path(), &args, out)
}

fn paths(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|e| e["path"].as_str().expect("path").to_string())
        .collect()
}

/// `old path -> new path` of a list of moves.
fn moves(list: &Value) -> BTreeSet<(String, String)> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|m| {
            (
                m["old"]["path"].as_str().unwrap().to_string(),
                m["new"]["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn write_png(path: &Path, seed: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    synthetic(seed, 32, 32).save(path).unwrap();
}

/// Every path the demo's truth file names: the planted files, left alone by the edits below
/// so that no planted finding changes by accident.
fn planted(truth: &Value) -> BTreeSet<String> {
    fn walk(value: &Value, into: &mut BTreeSet<String>) {
        match value {
            Value::String(s) => {
                into.insert(s.clone());
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, into)),
            Value::Object(map) => map.values().for_each(|v| walk(v, into)),
            _ => {}
        }
    }
    let mut all = BTreeSet::new();
    walk(truth, &mut all);
    all
}

/// Ordinary (unplanted) files of `split/class`, sorted.
fn ordinary(data: &Path, dir: &str, planted: &BTreeSet<String>) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(data.join(dir))
        .unwrap()
        .map(|e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|p| !planted.contains(p) && p.ends_with(".png"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_diff_of_the_demo_after_edits_lists_exactly_those_files_in_their_categories() {
    let fx = Fixture::new();
    let (_, truth) = fx.demo();
    let old_out = fx.dir.path().join("demo-out");
    let old_data = old_out.join("demo-dataset");
    let new_data = fx.dir.path().join("data-new");
    copy_dir(&old_data, &new_data);
    let planted = planted(&truth);
    let classes: Vec<String> = truth["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let (a, b) = (&classes[0], &classes[1]);
    let train_a = ordinary(&new_data, &format!("train/{a}"), &planted);
    let train_b = ordinary(&new_data, &format!("train/{b}"), &planted);
    let name = |p: &str| p.rsplit('/').next().unwrap().to_string();
    let mv = |from: &str, to: &str| {
        let target = new_data.join(to);
        assert!(!target.exists(), "{to} is taken");
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::rename(new_data.join(from), target).unwrap();
    };
    // Relabelled: two pictures to another class, one to another split.
    // New names throughout: the demo numbers files per folder, so a name kept could land on
    // a file already there.
    let relabel_1 = (
        train_a[0].clone(),
        format!("train/{b}/from-{a}-{}", name(&train_a[0])),
    );
    let relabel_2 = (
        train_a[1].clone(),
        format!("train/{b}/moved-{}", name(&train_a[1])),
    );
    let resplit = (
        train_b[0].clone(),
        format!("test/{b}/from-train-{}", name(&train_b[0])),
    );
    // Moved: a new name in the same folder.
    let renamed = (train_b[1].clone(), format!("train/{b}/renamed.png"));
    for (from, to) in [&relabel_1, &relabel_2, &resplit, &renamed] {
        mv(from, to);
    }
    // Removed.
    let removed = [train_a[2].clone(), train_b[2].clone()];
    for path in &removed {
        std::fs::remove_file(new_data.join(path)).unwrap();
    }
    // Changed: same path, new pixels.
    let changed = train_a[3].clone();
    write_png(&new_data.join(&changed), 9001);
    // Added.
    let added = [
        format!("train/{a}/added-1.png"),
        format!("test/{b}/added-2.png"),
    ];
    write_png(&new_data.join(&added[0]), 9002);
    write_png(&new_data.join(&added[1]), 9003);

    let out = fx.dir.path().join("diff-out");
    let run = diff(&fx, &old_out, &new_data, &out, &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let diff_json = read_json(&out.join("diff.json"));
    let images = &diff_json["images"];
    assert_eq!(paths(&images["added"]), set(&[&added[0], &added[1]]));
    assert_eq!(paths(&images["removed"]), set(&[&removed[0], &removed[1]]));
    assert_eq!(moves(&images["changed"]), pairs(&[(&changed, &changed)]));
    assert_eq!(
        moves(&images["relabelled"]),
        pairs(&[
            (&relabel_1.0, &relabel_1.1),
            (&relabel_2.0, &relabel_2.1),
            (&resplit.0, &resplit.1)
        ])
    );
    assert_eq!(moves(&images["moved"]), pairs(&[(&renamed.0, &renamed.1)]));
    let old_images = truth["image_count"].as_u64().unwrap();
    assert_eq!(diff_json["old"]["images"], old_images);
    assert_eq!(
        diff_json["summary"]["unchanged"].as_u64().unwrap(),
        old_images - 2 - 1 - 3 - 1,
        "every other image is unchanged"
    );
    assert_eq!(diff_json["classes"][a]["relabelled_out"], 2);
    assert_eq!(diff_json["classes"][b]["relabelled_in"], 3);
    assert_eq!(diff_json["classes"][a]["added"], 1);
    assert_eq!(
        diff_json["classes"][a]["new"].as_i64().unwrap()
            - diff_json["classes"][a]["old"].as_i64().unwrap(),
        1 - 2 - 1,
        "one added, two relabelled away, one removed"
    );
    // Nothing planted was touched, so no finding was introduced or resolved.
    for key in ["duplicates", "leakage", "conflicting_labels"] {
        assert_eq!(diff_json[key]["introduced"], serde_json::json!([]), "{key}");
        assert_eq!(diff_json[key]["resolved"], serde_json::json!([]), "{key}");
    }
    // The old side was an output folder: read, not reported again.
    assert!(!out.join("old").exists());
    assert!(out.join("new/report.json").is_file());
    let md = std::fs::read_to_string(out.join("diff.md")).unwrap();
    assert!(
        md.contains("**2 added**") && md.contains("**3 relabelled**"),
        "{md}"
    );
    let html = std::fs::read_to_string(out.join("diff.html")).unwrap();
    assert!(html.contains("data:image/png;base64,"));
    assert!(html.contains(&renamed.1) && html.contains(&relabel_1.1));

    // A second diff reuses the new side's cache, and two output folders decode nothing.
    let again = diff(&fx, &old_out, &new_data, &out, &[]);
    assert!(again.output.status.success(), "{}", again.stderr());
    let log = read_json(&out.join("new/run.json"));
    let reran: Vec<&Value> = log["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] != "fresh")
        .collect();
    assert!(reran.is_empty(), "{reran:?}");
    let out2 = fx.dir.path().join("diff-out-2");
    let from_outputs = diff(&fx, &old_out, &out.join("new"), &out2, &[]);
    assert!(
        from_outputs.output.status.success(),
        "{}",
        from_outputs.stderr()
    );
    assert!(!out2.join("old").exists() && !out2.join("new").exists());
    assert_eq!(
        read_json(&out2.join("diff.json"))["images"],
        diff_json["images"]
    );
}

/// Mean bin index of a histogram, weighted by its counts.
fn centre(counts: &Value) -> f64 {
    let counts: Vec<f64> = counts
        .as_array()
        .expect("bins")
        .iter()
        .map(|n| n.as_f64().unwrap())
        .collect();
    let total: f64 = counts.iter().sum();
    counts
        .iter()
        .enumerate()
        .map(|(i, n)| i as f64 * n)
        .sum::<f64>()
        / total
}

#[test]
fn a_diff_overlays_each_propertys_histograms_of_both_versions_over_one_range() {
    let fx = Fixture::new();
    let (_, truth) = fx.demo();
    let old_out = fx.dir.path().join("demo-out");
    let new_data = fx.dir.path().join("data-new");
    copy_dir(&old_out.join("demo-dataset"), &new_data);
    let planted = planted(&truth);
    let class = truth["classes"][0].as_str().unwrap().to_string();
    // Brighten one class's ordinary training pictures: same paths, lighter pixels.
    let brightened = ordinary(&new_data, &format!("train/{class}"), &planted);
    assert!(brightened.len() >= 5, "{brightened:?}");
    for path in &brightened {
        let file = new_data.join(path);
        let mut picture = image::open(&file).unwrap().to_rgb8();
        for p in picture.pixels_mut() {
            p.0 = p.0.map(|c| c.saturating_add(90));
        }
        picture.save(&file).unwrap();
    }

    let out = fx.dir.path().join("diff-out");
    let run = diff(&fx, &old_out, &new_data, &out, &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let diff_json = read_json(&out.join("diff.json"));
    assert_eq!(
        diff_json["summary"]["changed"].as_u64().unwrap() as usize,
        brightened.len()
    );
    let images = diff_json["old"]["images"].as_u64().unwrap();
    let properties = diff_json["properties"].as_array().unwrap();
    assert_eq!(properties.len(), 8);
    for p in properties {
        let h = &p["histogram"];
        let bins = |side: &str| h[side].as_array().unwrap().clone();
        assert_eq!(bins("old").len(), bins("new").len(), "{p}");
        for side in ["old", "new"] {
            let sum: u64 = bins(side).iter().map(|n| n.as_u64().unwrap()).sum();
            assert_eq!(sum, images, "every image in one bin: {p}");
        }
        assert!(h["min"].as_f64().unwrap() <= h["max"].as_f64().unwrap());
    }
    let brightness = properties
        .iter()
        .find(|p| p["property"] == "brightness")
        .unwrap();
    assert!(
        centre(&brightness["histogram"]["new"]) > centre(&brightness["histogram"]["old"]),
        "brighter pictures move the new histogram right: {brightness}"
    );
    let sharpness = properties
        .iter()
        .find(|p| p["property"] == "sharpness")
        .unwrap();
    assert_eq!(sharpness["histogram"]["scale"], "log10(1 + value)");
    // One chart per property in the page, each drawing both versions.
    let html = std::fs::read_to_string(out.join("diff.html")).unwrap();
    let figures = html.matches("<figure class=\"prop").count();
    assert_eq!(figures, 8, "one chart per property");
    assert!(html.matches("<svg").count() >= 8);
}

/// The small split dataset, and a copy of it with a train image leaked into test and a file
/// that cannot be decoded.
fn leaky_pair(fx: &Fixture) -> (PathBuf, PathBuf) {
    fx.small_dataset();
    let new = fx.dir.path().join("data-leaky");
    copy_dir(&fx.data(), &new);
    std::fs::copy(new.join("train/dog/2.png"), new.join("test/dog/copy.png")).unwrap();
    std::fs::write(
        new.join("train/cat/broken.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    (fx.data(), new)
}

#[test]
fn the_gate_fails_on_what_a_change_introduces_and_passes_on_its_reverse() {
    let fx = Fixture::new();
    let (clean, leaky) = leaky_pair(&fx);
    let out = fx.dir.path().join("gate-out");
    let run = diff(
        &fx,
        &clean,
        &leaky,
        &out,
        &["--fail-on", "leakage,unreadable,new-duplicates"],
    );
    assert_eq!(run.output.status.code(), Some(3), "{}", run.stderr());
    let diff_json = read_json(&out.join("diff.json"));
    assert_eq!(
        paths(&diff_json["images"]["added"]),
        set(&["test/dog/copy.png"])
    );
    assert_eq!(
        paths(&diff_json["unreadable"]["introduced"]),
        set(&["train/cat/broken.png"])
    );
    let gate = &diff_json["gate"];
    assert_eq!(gate["passed"], false);
    let check = |name: &str| {
        gate["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(check("leakage")["passed"], false);
    let leakage = check("leakage");
    let files: Vec<&str> = leakage["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(files.contains(&"test/dog/copy.png"), "{files:?}");
    assert_eq!(check("unreadable")["passed"], false);
    assert_eq!(check("new-duplicates")["passed"], false);
    let stderr = run.stderr();
    assert!(
        stderr.contains("gate: FAILED") && stderr.contains("test/dog/copy.png"),
        "{stderr}"
    );
    let md = std::fs::read_to_string(out.join("diff.md")).unwrap();
    assert!(
        md.contains("### Gate: failed") && md.contains("`train/cat/broken.png`"),
        "{md}"
    );

    // Undoing the change resolves and fixes what it introduced: the same gate passes.
    let back = fx.dir.path().join("gate-back");
    let run = diff(
        &fx,
        &out.join("new"),
        &out.join("old"),
        &back,
        &["--fail-on", "leakage,unreadable,new-duplicates"],
    );
    assert_eq!(run.output.status.code(), Some(0), "{}", run.stderr());
    let reverse = read_json(&back.join("diff.json"));
    assert_eq!(reverse["gate"]["passed"], true);
    assert_eq!(
        paths(&reverse["unreadable"]["fixed"]),
        set(&["train/cat/broken.png"])
    );
    assert_eq!(reverse["leakage"]["introduced"], serde_json::json!([]));
    assert!(
        !reverse["leakage"]["resolved"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        paths(&reverse["images"]["removed"]),
        set(&["test/dog/copy.png"])
    );
    assert!(run.stderr().contains("gate: passed"), "{}", run.stderr());
}

#[test]
fn diff_html_escapes_dataset_names_and_fetches_nothing() {
    let fx = Fixture::new();
    fx.small_dataset();
    let new = fx.dir.path().join("data-evil");
    copy_dir(&fx.data(), &new);
    let evil = "train/cat/<img src=x onerror=alert(1)>.png";
    write_png(&new.join(evil), 77);
    std::fs::rename(new.join("train/dog/1.png"), new.join("train/dog/`x`|*.png")).unwrap();
    let out = fx.dir.path().join("evil-out");
    let run = diff(&fx, &fx.data(), &new, &out, &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let html = std::fs::read_to_string(out.join("diff.html")).unwrap();
    assert!(!html.contains("<img src=x"), "an unescaped file name");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    for remote in ["http://", "https://", "src=\"//"] {
        assert!(!html.contains(remote), "{remote} in diff.html");
    }
    let md = std::fs::read_to_string(out.join("diff.md")).unwrap();
    assert!(
        md.contains("`train/cat/<img src=x onerror=alert(1)>.png`"),
        "{md}"
    );
    assert!(
        md.contains("'x'|*.png"),
        "backticks are taken out of code spans: {md}"
    );
    // Only the output folder was written to.
    assert_eq!(
        std::fs::read_dir(&new).unwrap().count(),
        std::fs::read_dir(fx.data()).unwrap().count()
    );
}

#[test]
fn a_side_that_is_not_a_folder_fails_with_exit_code_1_naming_it() {
    let fx = Fixture::new();
    fx.small_dataset();
    let out = fx.dir.path().join("bad-out");
    let missing = fx.dir.path().join("no-such-version");
    let run = diff(&fx, &missing, &fx.data(), &out, &[]);
    assert_eq!(run.output.status.code(), Some(1));
    assert!(
        run.stderr().contains("no-such-version") && run.stderr().contains("old version"),
        "{}",
        run.stderr()
    );
    // An output folder whose cache is gone says what to do.
    let report_out = fx.dir.path().join("report-out");
    let report = fx.report_into(&report_out, &[]);
    assert!(report.output.status.success());
    std::fs::remove_file(report_out.join("cache/ingest/table.bin")).unwrap();
    let run = diff(&fx, &report_out, &fx.data(), &out, &[]);
    assert_eq!(run.output.status.code(), Some(1));
    assert!(run.stderr().contains("aldente report"), "{}", run.stderr());
}
