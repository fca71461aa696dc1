//! Manifest datasets: a CSV or JSON Lines file with one row per image, naming its file (a
//! path relative to the manifest's folder), its label and optionally its split. Hugging
//! Face's `imagefolder` exports (`metadata.csv` / `metadata.jsonl` with a `file_name`
//! column) are read the same way.
//!
//! Columns are found by name (case-insensitive): the path in `path`, `file`, `file_name`,
//! `filename`, `filepath`, `image`, `image_path`; the label in `label`, `class`,
//! `category`, `target`, `class_name`; the split in `split`, `subset`. `[dataset]` in
//! aldente.toml names them where a manifest uses other names. Without a split column, a
//! path whose first folder is a split name (`train/...`) takes that split, as Hugging Face
//! does.
//!
//! A manifest is used when the dataset argument is one, when the folder holds exactly one
//! at its top level whose columns are recognised, or with `--layout manifest`.
//!
//! Invariants, as for every layout: each row and each file under the manifest's folder ends
//! up in `files` or in `skipped`, with a reason that names the row and says what to do; a
//! bad row never stops the run. Discovery stats the files a manifest names and never reads
//! an image. Paths are relative to the manifest's folder with `/` separators; a row naming
//! a file outside that folder is refused (no absolute path enters a fingerprint).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use walkdir::WalkDir;

use super::{
    DatasetKind, Discovery, FileNote, FileRole, SPLIT_NAMES, SourceFile, rel_string, stat_identity,
};
use crate::config::DatasetConfig;

const PATH_COLUMNS: &[&str] = &[
    "path",
    "file",
    "file_name",
    "filename",
    "filepath",
    "file_path",
    "image",
    "image_path",
];
const LABEL_COLUMNS: &[&str] = &["label", "class", "category", "target", "class_name"];
const SPLIT_COLUMNS: &[&str] = &["split", "subset"];

/// Whether a file name looks like a manifest (by extension).
pub fn is_manifest_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".csv") || lower.ends_with(".jsonl")
}

/// The manifests at the top level of `dir` (not hidden), sorted.
pub fn manifests_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !name.starts_with('.') && is_manifest_name(&name)
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// The manifest to read for `dataset`, if the layout is to be a manifest: the file itself, or
/// the one manifest in the folder whose columns are recognised. `forced` (`--layout
/// manifest`) turns "no usable manifest" into an error that says why.
pub fn find(dataset: &Path, config: &DatasetConfig, forced: bool) -> Result<Option<PathBuf>> {
    if dataset.is_file() {
        return Ok(Some(dataset.to_path_buf()));
    }
    if !dataset.is_dir() {
        return Ok(None);
    }
    let found = manifests_in(dataset);
    match found.as_slice() {
        [one] => {
            if forced {
                return Ok(Some(one.clone()));
            }
            // A stray CSV beside class folders must not turn a folder dataset into a
            // manifest: only one whose path and label columns are recognised does.
            Ok(read_header(one)
                .ok()
                .and_then(|header| Columns::find(&header, config).ok())
                .map(|_| one.clone()))
        }
        [] if forced => bail!(
            "--layout manifest: {} holds no manifest (a .csv or .jsonl file at its top \
             level); give the manifest file itself as the dataset",
            dataset.display()
        ),
        [] => Ok(None),
        several if forced => bail!(
            "--layout manifest: {} holds {} manifests ({}); give the one to read as the \
             dataset",
            dataset.display(),
            several.len(),
            several
                .iter()
                .map(|p| format!("`{}`", file_name(p)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => Ok(None),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_jsonl(path: &Path) -> bool {
    file_name(path).to_ascii_lowercase().ends_with(".jsonl")
}

/// The column names of a manifest: a CSV's header row, or the keys of a JSON Lines file's
/// first object.
fn read_header(path: &Path) -> Result<Vec<String>> {
    let bytes = crate::fsutil::read(path)?;
    parse_header(&bytes, is_jsonl(path)).with_context(|| format!("{}", path.display()))
}

/// The column names in a manifest's bytes (JSON Lines when `jsonl`, else CSV).
pub fn parse_header(bytes: &[u8], jsonl: bool) -> Result<Vec<String>> {
    if jsonl {
        let first = String::from_utf8_lossy(bytes)
            .lines()
            .find(|l| !l.trim().is_empty())
            .map(str::to_string)
            .unwrap_or_default();
        let value: serde_json::Value =
            serde_json::from_str(&first).context("the first line is not JSON")?;
        let object = value
            .as_object()
            .context("the first line is not a JSON object")?;
        Ok(object.keys().cloned().collect())
    } else {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
        let header = reader.headers().context("no header row")?;
        Ok(header.iter().map(|h| h.trim().to_string()).collect())
    }
}

/// Which columns hold the path, the label and the split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub path: String,
    pub label: String,
    pub split: Option<String>,
}

impl Columns {
    /// Finds the columns in `header`: the configured name, else the first known name present.
    pub fn find(header: &[String], config: &DatasetConfig) -> Result<Columns, String> {
        let pick = |configured: &Option<String>, known: &[&str], what: &str, key: &str| {
            if let Some(name) = configured {
                return header
                    .iter()
                    .find(|h| h.eq_ignore_ascii_case(name))
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| {
                        format!(
                            "has no column `{name}` (set as dataset.{key} in aldente.toml); its \
                             columns are {}",
                            list(header)
                        )
                    });
            }
            Ok(known
                .iter()
                .find_map(|k| header.iter().find(|h| h.eq_ignore_ascii_case(k)).cloned()))
            .and_then(|found| {
                if found.is_none() && what != "split" {
                    Err(format!(
                        "has no {what} column (looked for {}; its columns are {}): name it with \
                         dataset.{key} in aldente.toml",
                        known.join(", "),
                        list(header)
                    ))
                } else {
                    Ok(found)
                }
            })
        };
        let path = pick(&config.path_column, PATH_COLUMNS, "path", "path_column")?;
        let label = pick(&config.label_column, LABEL_COLUMNS, "label", "label_column")?;
        let split = pick(&config.split_column, SPLIT_COLUMNS, "split", "split_column")?;
        Ok(Columns {
            path: path.unwrap_or_default(),
            label: label.unwrap_or_default(),
            split,
        })
    }
}

fn list(header: &[String]) -> String {
    if header.is_empty() {
        return "none".into();
    }
    header
        .iter()
        .map(|h| format!("`{h}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row of a manifest, as read: its number (the line in the file, counting the header),
/// and the path, label and split cells (`None`: the cell is missing or empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub path: Option<String>,
    pub label: Option<String>,
    pub split: Option<String>,
}

/// Lines that could not be parsed at all: (line number, why).
pub type BadLines = Vec<(u64, String)>;

/// The rows in a manifest's bytes, and the lines that could not be parsed at all. Never
/// panics, whatever the bytes (fuzzed by `fuzz/fuzz_targets/manifest.rs`).
pub fn parse_rows(bytes: &[u8], jsonl: bool, columns: &Columns) -> Result<(Vec<Row>, BadLines)> {
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    let cell = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_string())
    };
    if jsonl {
        let text = String::from_utf8_lossy(bytes);
        for (index, line) in text.lines().enumerate() {
            let number = index as u64 + 1;
            if line.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value = match serde_json::from_str(line) {
                Ok(value) => value,
                Err(err) => {
                    bad.push((
                        number,
                        format!("is not valid JSON ({err}); fix or remove the line"),
                    ));
                    continue;
                }
            };
            let Some(object) = value.as_object() else {
                bad.push((
                    number,
                    "is not a JSON object; each line must be one {\"path\": ..., \"label\": ...} \
                     object"
                        .to_string(),
                ));
                continue;
            };
            let get = |name: &str| {
                let value = object
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)?;
                match value {
                    serde_json::Value::String(s) => cell(s),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    serde_json::Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                }
            };
            rows.push(Row {
                line: number,
                path: get(&columns.path),
                label: get(&columns.label),
                split: columns.split.as_deref().and_then(get),
            });
        }
    } else {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
        let header: Vec<String> = reader
            .headers()
            .context("no header row")?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let index_of = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
        let path_at = index_of(&columns.path);
        let label_at = index_of(&columns.label);
        let split_at = columns.split.as_deref().and_then(index_of);
        for (index, record) in reader.records().enumerate() {
            match record {
                Ok(record) => {
                    let line = record.position().map_or(index as u64 + 2, |p| p.line());
                    let get = |at: Option<usize>| at.and_then(|i| record.get(i)).and_then(cell);
                    rows.push(Row {
                        line,
                        path: get(path_at),
                        label: get(label_at),
                        split: get(split_at),
                    });
                }
                Err(err) => {
                    let line = err.position().map_or(index as u64 + 2, |p| p.line());
                    bad.push((
                        line,
                        format!("could not be parsed as CSV ({err}); fix or remove the row"),
                    ));
                }
            }
        }
    }
    Ok((rows, bad))
}

/// A manifest cell's path as a clean relative path, or why it cannot be one.
fn clean_path(raw: &str, root: &Path) -> Result<String, String> {
    let given = Path::new(raw);
    let relative = if given.is_absolute() {
        match given.strip_prefix(root) {
            Ok(rest) => rest.to_path_buf(),
            Err(_) => {
                return Err(format!(
                    "path `{raw}` is outside the manifest's folder: give paths relative to the \
                     manifest"
                ));
            }
        }
    } else {
        given.to_path_buf()
    };
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "path `{raw}` leads out of the manifest's folder (`..`): aldente reads only \
                     files inside it; move the manifest up, or the images in"
                ));
            }
        }
    }
    if parts.is_empty() {
        return Err(format!("path `{raw}` names no file"));
    }
    Ok(parts.join("/"))
}

/// Lists the images a manifest names, and everything else in its folder.
pub fn discover(
    manifest: &Path,
    config: &DatasetConfig,
    follow_symlinks: bool,
    exclude: Option<&Path>,
) -> Result<Discovery> {
    let name = file_name(manifest);
    let root = manifest
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    let header = read_header(manifest)
        .with_context(|| format!("cannot read the manifest {}", manifest.display()))?;
    let columns = Columns::find(&header, config)
        .map_err(|why| anyhow::anyhow!("the manifest {} {why}", manifest.display()))?;
    let (rows, bad) = crate::fsutil::read(manifest)
        .and_then(|bytes| parse_rows(&bytes, is_jsonl(manifest), &columns))
        .with_context(|| format!("cannot read the manifest {}", manifest.display()))?;

    let mut skipped: Vec<FileNote> = bad
        .into_iter()
        .map(|(line, why)| FileNote {
            path: format!("{name}:{line}"),
            reason: format!("manifest line {line} {why}"),
        })
        .collect();
    let mut names: HashMap<String, Arc<str>> = HashMap::new();
    let mut intern = |s: &str| -> Arc<str> {
        names
            .entry(s.to_string())
            .or_insert_with(|| Arc::from(s))
            .clone()
    };
    let mut first_row: HashMap<String, u64> = HashMap::new();
    let mut files = Vec::new();
    let mut has_splits = false;
    for row in rows {
        let line = row.line;
        let Some(raw) = row.path else {
            skipped.push(FileNote {
                path: format!("{name}:{line}"),
                reason: format!(
                    "manifest line {line} has no path (column `{}` is empty or missing): fill it in or \
                     remove the row",
                    columns.path
                ),
            });
            continue;
        };
        let rel_path = match clean_path(&raw, root) {
            Ok(rel) => rel,
            Err(why) => {
                skipped.push(FileNote {
                    path: format!("{name}:{line}"),
                    reason: format!("manifest line {line}: {why}"),
                });
                continue;
            }
        };
        if let Some(first) = first_row.get(&rel_path) {
            skipped.push(FileNote {
                path: format!("{name}:{line}"),
                reason: format!(
                    "manifest line {line} lists `{rel_path}` again (first on line {first}); only \
                     the first row is used: remove the repeated row"
                ),
            });
            continue;
        }
        first_row.insert(rel_path.clone(), line);
        let Some(label) = row.label else {
            skipped.push(FileNote {
                path: rel_path,
                reason: format!(
                    "manifest line {line} gives no label (column `{}` is empty or missing): add the label \
                     or remove the row",
                    columns.label
                ),
            });
            continue;
        };
        let abs_path = root.join(&rel_path);
        let meta = match std::fs::metadata(&abs_path) {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => {
                skipped.push(FileNote {
                    path: rel_path,
                    reason: format!(
                        "manifest line {line} names a folder, not a file: give the image's path"
                    ),
                });
                continue;
            }
            Err(err) => {
                let why = if err.kind() == std::io::ErrorKind::NotFound {
                    "no such file".to_string()
                } else {
                    format!("could not be opened ({err})")
                };
                skipped.push(FileNote {
                    path: rel_path,
                    reason: format!(
                        "manifest line {line} names a file that is not there ({why}); fix the \
                         path (relative to the manifest's folder) or remove the row"
                    ),
                });
                continue;
            }
        };
        let split = row.split.or_else(|| {
            if columns.split.is_some() {
                return None;
            }
            let first = rel_path.split('/').next().unwrap_or_default();
            (rel_path.contains('/') && SPLIT_NAMES.contains(&first.to_lowercase().as_str()))
                .then(|| first.to_string())
        });
        has_splits |= split.is_some();
        let (size, mtime_ns, ino) = stat_identity(&meta);
        files.push(SourceFile {
            rel_path,
            abs_path,
            size,
            mtime_ns,
            ino,
            role: FileRole::Image {
                split: split.as_deref().map(&mut intern),
                label: intern(&label),
            },
        });
    }

    // Everything else in the folder is accounted for too.
    let listed: HashSet<&str> = first_row.keys().map(String::as_str).collect();
    let mut walk = WalkDir::new(root)
        .follow_links(follow_symlinks)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter();
    let mut unlisted = BTreeMap::new();
    while let Some(entry) = walk.next() {
        let Ok(entry) = entry else { continue };
        let rel = rel_string(entry.path().strip_prefix(root).unwrap_or(entry.path()));
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if entry.file_type().is_dir() {
            if hidden {
                unlisted.insert(rel, "hidden folder (not searched)".to_string());
                walk.skip_current_dir();
            } else if exclude.is_some_and(|ex| super::same_dir(entry.path(), ex)) {
                unlisted.insert(rel, "aldente's output folder (not searched)".to_string());
                walk.skip_current_dir();
            }
            continue;
        }
        if super::is_review_file(entry.depth(), &rel) {
            continue;
        }
        if entry.depth() == 1 && rel == name {
            unlisted.insert(
                rel,
                "the manifest (read for the images' paths, labels and splits)".to_string(),
            );
        } else if !listed.contains(rel.as_str()) {
            unlisted.insert(rel, format!("not listed in the manifest `{name}`"));
        }
    }
    skipped.extend(
        unlisted
            .into_iter()
            .map(|(path, reason)| FileNote { path, reason }),
    );
    files.sort_unstable_by(|a, b| a.rel_path.cmp(&b.rel_path));
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Discovery {
        kind: DatasetKind::Manifest {
            file: name,
            has_splits,
        },
        files,
        skipped,
        class_names: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn config() -> DatasetConfig {
        DatasetConfig::default()
    }

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn columns_are_found_by_their_usual_names() {
        let found = Columns::find(&header(&["File_Name", "Category", "subset"]), &config());
        assert_eq!(
            found,
            Ok(Columns {
                path: "File_Name".into(),
                label: "Category".into(),
                split: Some("subset".into())
            })
        );
        let why = Columns::find(&header(&["file_name", "text"]), &config()).unwrap_err();
        assert!(
            why.contains("no label column") && why.contains("`text`"),
            "{why}"
        );
        assert!(why.contains("dataset.label_column"), "{why}");
    }

    #[test]
    fn configured_column_names_win_and_a_missing_one_is_named() {
        let config = DatasetConfig {
            label_column: Some("species".into()),
            ..DatasetConfig::default()
        };
        let found = Columns::find(&header(&["image", "species", "label"]), &config).unwrap();
        assert_eq!(found.label, "species");
        let config = DatasetConfig {
            path_column: Some("where".into()),
            ..DatasetConfig::default()
        };
        let why = Columns::find(&header(&["path", "label"]), &config).unwrap_err();
        assert!(
            why.contains("`where`") && why.contains("dataset.path_column"),
            "{why}"
        );
    }

    #[test]
    fn paths_must_stay_inside_the_manifest_folder() {
        let root = Path::new("/data/set");
        assert_eq!(clean_path("./a/b.png", root), Ok("a/b.png".into()));
        assert_eq!(clean_path("/data/set/a.png", root), Ok("a.png".into()));
        assert!(clean_path("../a.png", root).unwrap_err().contains(".."));
        assert!(
            clean_path("/elsewhere/a.png", root)
                .unwrap_err()
                .contains("outside")
        );
    }

    #[test]
    fn every_row_and_file_is_accounted_for() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for rel in [
            "img/a.png",
            "img/b.png",
            "img/c.png",
            "extra.png",
            ".hidden",
        ] {
            let path = root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"x").unwrap();
        }
        fs::write(
            root.join("labels.csv"),
            "path,label,split\n\
             img/b.png,dog,test\n\
             img/a.png,cat,train\n\
             img/gone.png,cat,train\n\
             img/c.png,,train\n\
             img/a.png,dog,train\n\
             ,cat,train\n\
             ../up.png,cat,train\n",
        )
        .unwrap();
        let found = discover(&root.join("labels.csv"), &config(), true, None).unwrap();
        assert_eq!(
            found.kind,
            DatasetKind::Manifest {
                file: "labels.csv".into(),
                has_splits: true
            }
        );
        let roles: Vec<(&str, FileRole)> = found
            .files
            .iter()
            .map(|f| (f.rel_path.as_str(), f.role.clone()))
            .collect();
        assert_eq!(
            roles,
            vec![
                (
                    "img/a.png",
                    FileRole::Image {
                        split: Some("train".into()),
                        label: "cat".into()
                    }
                ),
                (
                    "img/b.png",
                    FileRole::Image {
                        split: Some("test".into()),
                        label: "dog".into()
                    }
                ),
            ]
        );
        let notes: BTreeMap<&str, &str> = found
            .skipped
            .iter()
            .map(|n| (n.path.as_str(), n.reason.as_str()))
            .collect();
        assert!(
            notes["img/gone.png"].contains("line 4") && notes["img/gone.png"].contains("not there")
        );
        assert!(notes["img/c.png"].contains("no label"), "{notes:?}");
        assert!(notes["labels.csv:6"].contains("again"), "{notes:?}");
        assert!(notes["labels.csv:7"].contains("no path"), "{notes:?}");
        assert!(notes["labels.csv:8"].contains(".."), "{notes:?}");
        assert!(notes["extra.png"].contains("not listed"), "{notes:?}");
        assert!(notes["labels.csv"].contains("the manifest"), "{notes:?}");
        assert!(notes.contains_key(".hidden"), "{notes:?}");
        // img/c.png is listed once (for its missing label), not again as unlisted.
        assert_eq!(
            found
                .skipped
                .iter()
                .filter(|n| n.path == "img/c.png")
                .count(),
            1
        );
    }

    #[test]
    fn jsonl_rows_and_split_folders_like_hugging_face() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for rel in ["train/0.png", "test/1.png"] {
            let path = root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"x").unwrap();
        }
        fs::write(
            root.join("metadata.jsonl"),
            "{\"file_name\": \"train/0.png\", \"label\": 3}\n\
             not json\n\
             {\"file_name\": \"test/1.png\", \"label\": \"cat\"}\n",
        )
        .unwrap();
        assert_eq!(
            find(root, &config(), false).unwrap(),
            Some(root.join("metadata.jsonl"))
        );
        let found = discover(&root.join("metadata.jsonl"), &config(), true, None).unwrap();
        let roles: Vec<FileRole> = found.files.iter().map(|f| f.role.clone()).collect();
        assert_eq!(
            roles,
            vec![
                FileRole::Image {
                    split: Some("test".into()),
                    label: "cat".into()
                },
                FileRole::Image {
                    split: Some("train".into()),
                    label: "3".into()
                },
            ]
        );
        assert!(
            found
                .skipped
                .iter()
                .any(|n| n.path == "metadata.jsonl:2" && n.reason.contains("not valid JSON"))
        );
    }

    #[test]
    fn a_stray_csv_beside_class_folders_is_not_a_manifest() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("cat")).unwrap();
        fs::write(dir.path().join("notes.csv"), "when,who\n1,2\n").unwrap();
        assert_eq!(find(dir.path(), &config(), false).unwrap(), None);
        let err = find(dir.path(), &config(), true);
        // Forced, the one manifest is used; reading it then says what is missing.
        assert_eq!(err.unwrap(), Some(dir.path().join("notes.csv")));
        let why = discover(&dir.path().join("notes.csv"), &config(), true, None).unwrap_err();
        assert!(format!("{why:#}").contains("no path column"), "{why:#}");
    }
}
