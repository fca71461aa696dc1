//! images.parquet: one row per image, read back with the parquet crate and checked column by
//! column against report.json, the image files themselves and the README's schema table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::record::Field;
use serde_json::Value;

use crate::common::Fixture;

type Row = HashMap<String, Field>;

fn read_rows(path: &Path) -> (Vec<String>, Vec<Row>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = SerializedFileReader::new(file).expect("a Parquet file");
    let names = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let rows = reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            row.unwrap()
                .get_column_iter()
                .map(|(name, field)| (name.clone(), field.clone()))
                .collect()
        })
        .collect();
    (names, rows)
}

fn text(row: &Row, key: &str) -> Option<String> {
    match &row[key] {
        Field::Str(s) => Some(s.clone()),
        Field::Null => None,
        other => panic!("{key}: expected a string, got {other:?}"),
    }
}

fn double(row: &Row, key: &str) -> Option<f64> {
    match &row[key] {
        Field::Double(v) => Some(*v),
        Field::Null => None,
        other => panic!("{key}: expected a double, got {other:?}"),
    }
}

fn long(row: &Row, key: &str) -> i64 {
    match &row[key] {
        Field::Long(v) => *v,
        other => panic!("{key}: expected an int64, got {other:?}"),
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap().to_string()
}

/// path -> (score, extra string) from a report.json list.
fn by_path(list: &Value, extra: &str) -> BTreeMap<String, (f64, Option<String>)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                str_of(&e["path"]),
                (
                    e["score"].as_f64().unwrap(),
                    e.get(extra).and_then(|v| v.as_str()).map(str::to_string),
                ),
            )
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    // report.json rounds to four decimals; the table keeps full precision.
    (a - b).abs() <= 5.1e-5
}

#[test]
fn images_parquet_agrees_with_report_json_column_by_column() {
    let fx = Fixture::new();
    let (run, _) = fx.demo();
    let report = run.report_json();
    let data = run.out.join("demo-dataset");
    let (names, rows) = read_rows(&run.out.join("images.parquet"));

    // The schema is the one documented in the README, in its order.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("## `images.parquet`")
        .nth(1)
        .expect("README documents images.parquet");
    let documented: Vec<String> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let cell = l.split('|').nth(1).unwrap();
            cell.split(',')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(names, documented, "README's table and the file's schema");

    // One row per analysed image, in path order.
    let dataset = &report["dataset"];
    assert_eq!(rows.len() as u64, dataset["images"].as_u64().unwrap());
    let paths: Vec<String> = rows.iter().map(|r| text(r, "path").unwrap()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(paths, sorted, "sorted by path, each once");

    // Counts per label, split, format, colour and size, and the bytes, as in report.json.
    let count = |key: &str| -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for row in &rows {
            if let Some(v) = text(row, key) {
                *counts.entry(v).or_insert(0) += 1;
            }
        }
        counts
    };
    let json_counts = |v: &Value| -> BTreeMap<String, u64> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
            .collect()
    };
    assert_eq!(count("label"), json_counts(&dataset["class_counts"]));
    assert_eq!(count("split"), json_counts(&dataset["splits"]));
    assert_eq!(count("format"), json_counts(&dataset["formats"]));
    assert_eq!(count("color"), json_counts(&dataset["color_types"]));
    let total: i64 = rows.iter().map(|r| long(r, "file_size")).sum();
    assert_eq!(total as u64, dataset["total_bytes"].as_u64().unwrap());
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for row in &rows {
        let size = format!("{}x{}", long(row, "width"), long(row, "height"));
        *sizes.entry(size).or_insert(0) += 1;
    }
    for (size, n) in json_counts(&dataset["sizes"]) {
        assert_eq!(sizes.get(&size), Some(&n), "images of size {size}");
    }

    // Hashes, sizes and properties measured again on the files themselves (PNGs: no EXIF).
    let mut checked = 0;
    for row in rows
        .iter()
        .filter(|r| text(r, "format").as_deref() == Some("png"))
    {
        let path = text(row, "path").unwrap();
        let bytes = std::fs::read(data.join(&path)).unwrap();
        assert_eq!(long(row, "file_size") as usize, bytes.len(), "{path}");
        assert_eq!(
            text(row, "content_hash").unwrap(),
            format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes)),
            "{path}"
        );
        let rgb = image::load_from_memory(&bytes).unwrap().into_rgb8();
        let (w, h) = rgb.dimensions();
        assert_eq!(
            (long(row, "width"), long(row, "height")),
            (w.into(), h.into())
        );
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&w.to_le_bytes());
        hasher.update(&h.to_le_bytes());
        hasher.update(rgb.as_raw());
        assert_eq!(
            text(row, "pixel_hash").unwrap(),
            format!("{:032x}", hasher.digest128()),
            "{path}"
        );
        let luma: f64 = rgb
            .pixels()
            .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
            .sum::<f64>()
            / f64::from(w * h)
            / 255.0;
        let brightness = double(row, "brightness").unwrap();
        assert!(
            (brightness - luma).abs() < 1e-4,
            "{path}: {brightness} vs {luma}"
        );
        assert!(close(
            double(row, "aspect").unwrap(),
            f64::from(w) / f64::from(h)
        ));
        let grey = rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]);
        assert_eq!(row["greyscale"], Field::Bool(grey), "{path}");
        for key in ["contrast", "saturation", "entropy"] {
            let v = double(row, key).unwrap();
            assert!((0.0..=8.0).contains(&v), "{path}: {key} {v}");
        }
        checked += 1;
        if checked == 40 {
            break;
        }
    }
    assert_eq!(checked, 40, "the demo has PNGs to check");

    // Duplicate groups and tiers.
    let row_of: HashMap<&str, &Row> = paths.iter().map(String::as_str).zip(&rows).collect();
    let groups = report["duplicates"]["groups"].as_array().unwrap();
    assert!(!groups.is_empty(), "the demo plants duplicates");
    let mut in_group = BTreeSet::new();
    for (g, group) in groups.iter().enumerate() {
        for member in group["members"].as_array().unwrap() {
            let path = str_of(&member["path"]);
            let row = row_of[path.as_str()];
            assert_eq!(row["duplicate_group"], Field::Int(g as i32), "{path}");
            assert_eq!(text(row, "duplicate_tier").as_deref(), Some("copy"));
            assert_eq!(text(row, "label"), Some(str_of(&member["label"])));
            in_group.insert(path);
        }
    }
    for group in report["duplicates"]["exact_groups"].as_array().unwrap() {
        let hashes: BTreeSet<String> = group
            .as_array()
            .unwrap()
            .iter()
            .map(|p| text(row_of[p.as_str().unwrap()], "pixel_hash").unwrap())
            .collect();
        assert_eq!(hashes.len(), 1, "an exact group has one picture: {group}");
    }
    let possible: BTreeSet<String> = report["duplicates"]["possible_pairs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| [str_of(&p["a"]), str_of(&p["b"])])
        .collect();
    for (path, row) in &row_of {
        if !in_group.contains(*path) {
            assert_eq!(row["duplicate_group"], Field::Null, "{path}");
            let want = possible.contains(*path).then(|| "possible".to_string());
            assert_eq!(text(row, "duplicate_tier"), want, "{path}");
        }
    }

    // Label issues, outliers and the map: a value exactly where report.json has one.
    let issues = by_path(&report["label_issues"], "suggested");
    let outliers = by_path(&report["outliers"], "");
    assert!(
        !issues.is_empty() && !outliers.is_empty(),
        "the demo plants both"
    );
    let map: BTreeMap<String, (f64, f64)> = report["embedding"]["map"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                str_of(&p["path"]),
                (p["x"].as_f64().unwrap(), p["y"].as_f64().unwrap()),
            )
        })
        .collect();
    assert!(!map.is_empty());
    for (path, row) in &row_of {
        match (issues.get(*path), double(row, "label_issue_score")) {
            (Some((score, suggested)), Some(got)) => {
                assert!(close(*score, got), "{path}: {score} vs {got}");
                assert_eq!(&text(row, "suggested_label"), suggested, "{path}");
            }
            (None, None) => assert_eq!(text(row, "suggested_label"), None),
            other => panic!("{path}: label issue {other:?}"),
        }
        match (outliers.get(*path), double(row, "outlier_score")) {
            (Some((score, _)), Some(got)) => assert!(close(*score, got), "{path}"),
            (None, None) => {}
            other => panic!("{path}: outlier {other:?}"),
        }
        match (map.get(*path), double(row, "map_x"), double(row, "map_y")) {
            (Some((x, y)), Some(gx), Some(gy)) => {
                assert!(close(*x, gx) && close(*y, gy), "{path}")
            }
            (None, None, None) => {}
            other => panic!("{path}: map {other:?}"),
        }
    }
}
