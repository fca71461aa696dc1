//! Manifest datasets (CSV / JSON Lines: path, label, split): the same findings as the folder
//! layout for the same images, and every bad row listed with a reason while the rest is
//! analysed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

use crate::common::{Fixture, run_in};

/// Replaces every string that is a key of `map` by its value, everywhere in `value`.
fn rename_paths(value: &mut Value, map: &HashMap<String, String>) {
    match value {
        Value::String(s) => {
            if let Some(new) = map.get(s.as_str()) {
                *s = new.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rename_paths(v, map)),
        Value::Object(fields) => fields.values_mut().for_each(|v| rename_paths(v, map)),
        _ => {}
    }
}

/// (split, label) of a folder-layout path: `<split>/<class>/...` or `<class>/...`.
fn folder_role(path: &str) -> (Option<String>, String) {
    let parts: Vec<&str> = path.split('/').collect();
    let splits = ["train", "val", "valid", "validation", "dev", "test"];
    if parts.len() >= 3 && splits.contains(&parts[0].to_lowercase().as_str()) {
        (Some(parts[0].to_string()), parts[1].to_string())
    } else {
        (None, parts[0].to_string())
    }
}

fn paths_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_manifest_of_the_demo_gives_the_folder_layouts_findings() {
    let fx = Fixture::new();
    let (run, _) = fx.demo();
    let folder_report = run.report_json();
    let demo = run.out.join("demo-dataset");

    // Every file the folder layout looked inside: analysed, unreadable, or not an image.
    let mut listed: Vec<String> = paths_of(&folder_report["unreadable"]);
    listed.extend(paths_of(&folder_report["embedding"]["map"]));
    let not_images: Vec<String> = folder_report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .unwrap()
                .starts_with("not an image file")
        })
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    listed.extend(not_images.iter().cloned());
    listed.sort();
    listed.dedup();
    assert_eq!(
        folder_report["embedding"]["map"].as_array().unwrap().len() as u64,
        folder_report["dataset"]["images"].as_u64().unwrap(),
        "the demo maps every image (the test lists them from the map)"
    );

    // The same files under new names, in the same order, labelled by a manifest whose rows
    // come in reverse.
    let data = fx.data();
    let mut rename = HashMap::new();
    let mut csv = String::from("split,file_name,class\n");
    let mut rows = Vec::new();
    for (i, old) in listed.iter().enumerate() {
        let ext = Path::new(old)
            .extension()
            .map_or("bin".to_string(), |e| e.to_string_lossy().into_owned());
        let new = format!("img/{i:05}.{ext}");
        let target = data.join(&new);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(demo.join(old), &target).unwrap();
        let (split, label) = folder_role(old);
        rows.push(format!("{},{new},{label}\n", split.unwrap_or_default()));
        rename.insert(new, old.clone());
    }
    for row in rows.iter().rev() {
        csv.push_str(row);
    }
    std::fs::write(data.join("labels.csv"), csv).unwrap();
    fx.settle();
    let manifest_run = fx.report(&[]);
    let mut manifest_report = manifest_run.report_json();
    assert_eq!(
        manifest_report["dataset"]["layout"], "manifest (path, label, split)",
        "found by itself in the folder"
    );
    rename_paths(&mut manifest_report, &rename);

    for key in [
        "unreadable",
        "statistics",
        "duplicates",
        "label_issues",
        "outliers",
        "embedding",
    ] {
        assert_eq!(
            manifest_report[key], folder_report[key],
            "report.json `{key}` differs between the layouts"
        );
    }
    let mut dataset = manifest_report["dataset"].clone();
    let mut expected = folder_report["dataset"].clone();
    for key in ["root", "layout"] {
        dataset.as_object_mut().unwrap().remove(key);
        expected.as_object_mut().unwrap().remove(key);
    }
    assert_eq!(dataset, expected);
    // The non-images are skipped in both, with the same reasons; the manifest itself is
    // accounted for.
    let reasons = |report: &Value| -> BTreeMap<String, String> {
        report["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["path"].as_str().unwrap().to_string(),
                    e["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (folder_skipped, manifest_skipped) = (reasons(&folder_report), reasons(&manifest_report));
    for path in &not_images {
        assert_eq!(
            manifest_skipped.get(path),
            folder_skipped.get(path),
            "{path}"
        );
    }
    assert!(manifest_skipped["labels.csv"].contains("the manifest"));
}

#[test]
fn bad_rows_are_listed_with_reasons_and_the_rest_is_analysed() {
    let fx = Fixture::new();
    for i in 0..3 {
        fx.png(&format!("pics/a{i}.png"), i);
        fx.png(&format!("pics/b{i}.png"), 10 + i);
    }
    fx.png("pics/unlisted.png", 20);
    fx.png("pics/nolabel.png", 21);
    let mut jsonl = String::new();
    for i in 0..3 {
        jsonl.push_str(&format!(
            "{{\"image\": \"pics/a{i}.png\", \"label\": \"ant\"}}\n"
        ));
        jsonl.push_str(&format!(
            "{{\"image\": \"pics/b{i}.png\", \"label\": \"bee\"}}\n"
        ));
    }
    jsonl.push_str("{\"image\": \"pics/<b>gone.png\", \"label\": \"ant\"}\n");
    jsonl.push_str("{\"image\": \"pics/nolabel.png\", \"label\": \"\"}\n");
    jsonl.push_str("{\"image\": \"pics/a0.png\", \"label\": \"bee\"\n");
    fx.bytes("rows.jsonl", jsonl.as_bytes());
    fx.settle();
    // Given as the manifest file itself.
    let args: Vec<String> = vec![
        "report".into(),
        fx.data().join("rows.jsonl").display().to_string(),
        "--out".into(),
        fx.out().display().to_string(),
    ];
    let run = run_in(fx.dir.path(), &args, &fx.out());
    assert_eq!(run.output.status.code(), Some(0), "{}", run.stderr());
    let report = run.report_json();
    assert_eq!(report["dataset"]["images"], 6);
    assert_eq!(report["dataset"]["class_counts"]["ant"], 3);
    assert_eq!(report["dataset"]["class_counts"]["bee"], 3);
    assert_eq!(
        report["dataset"]["root"], "data",
        "the manifest's folder names the report"
    );
    let skipped: BTreeMap<String, String> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let gone = &skipped["pics/<b>gone.png"];
    assert!(
        gone.contains("line 7") && gone.contains("not there"),
        "{gone}"
    );
    assert!(
        skipped["pics/nolabel.png"].contains("no label"),
        "{skipped:?}"
    );
    assert!(
        skipped["rows.jsonl:9"].contains("not valid JSON"),
        "{skipped:?}"
    );
    assert!(
        skipped["pics/unlisted.png"].contains("not listed"),
        "{skipped:?}"
    );
    // Every file and row is accounted for once: 6 images, 2 unusable rows naming files, 1
    // unparsable line, 1 unlisted file, the manifest itself.
    assert_eq!(skipped.len(), 5, "{skipped:?}");
    let html = run.html();
    assert!(html.contains("pics/&lt;b&gt;gone.png"), "names are escaped");
    assert!(!html.contains("<b>gone"));
}

#[test]
fn forcing_a_manifest_where_there_are_two_names_them() {
    let fx = Fixture::new();
    fx.png("cat/a.png", 1);
    fx.bytes("one.csv", b"path,label\ncat/a.png,cat\n");
    fx.bytes("two.csv", b"path,label\ncat/a.png,dog\n");
    // Two manifests: automatic detection keeps the folder layout.
    let report = fx.report(&[]).report_json();
    assert_eq!(report["dataset"]["layout"], "folder per class");
    let run = fx.report_raw(&["--layout", "manifest"]);
    assert_ne!(run.output.status.code(), Some(0));
    let stderr = run.stderr();
    assert!(
        stderr.contains("`one.csv`") && stderr.contains("`two.csv`"),
        "{stderr}"
    );
    // Given by name, either one is read.
    let args: Vec<String> = vec![
        "report".into(),
        fx.data().join("two.csv").display().to_string(),
        "--out".into(),
        fx.out().display().to_string(),
    ];
    let run = run_in(fx.dir.path(), &args, &fx.out());
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(
        run.report_json()["dataset"]["classes"],
        serde_json::json!(["dog"])
    );
}

#[test]
fn column_names_can_be_set_in_the_settings_file() {
    let fx = Fixture::new();
    fx.png("x/a.png", 1);
    fx.png("x/b.png", 2);
    fx.bytes("list.csv", b"where,what\nx/a.png,cat\nx/b.png,dog\n");
    let config = fx.dir.path().join("aldente.toml");
    std::fs::write(
        &config,
        "[dataset]\nlayout = \"manifest\"\npath_column = \"where\"\nlabel_column = \"what\"\n",
    )
    .unwrap();
    let report = fx.report(&[]).report_json();
    assert_eq!(report["dataset"]["images"], 2);
    assert_eq!(
        report["dataset"]["classes"],
        serde_json::json!(["cat", "dog"])
    );
}
