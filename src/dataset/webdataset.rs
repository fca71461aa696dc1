//! WebDataset tar shards: finding them on disk and cutting them into samples.
//!
//! A shard is a tar archive (`.tar`, or gzip-compressed `.tar.gz` / `.tgz`) whose members are
//! grouped into samples by *key*: the member's path up to the first dot of its file name
//! (`000123.jpg`, `000123.cls` and `000123.json` are one sample, key `000123`; the rest of the
//! name, `jpg`, is the member's field). In each sample:
//! - every member with an image extension (`jpg`, `png`, `seg.png`, ...) is a unit, named
//!   `<shard path>:<member path>` (`train/shard-0003.tar:000123.jpg`);
//! - the label comes from the `.cls` member (a class index or name, as text), else from a
//!   field of the `.json` member (`dataset.label_field` in aldente.toml, else the first of
//!   `label`, `class`, `cls` it has; a string or a number), else from a one-line `.txt`;
//! - other members (metadata, captions) belong to the sample and are not listed.
//!
//! The split is the shard's folder when that is a split name (`train/shard-0003.tar`), else a
//! split name among the words of the shard's name (`train-000003.tar`,
//! `imagenet-val-0001.tar`), else none.
//!
//! Found automatically when the root (or its split folders) holds shards and no other folder
//! that could be a class folder; `--layout webdataset` takes shards at any depth.
//!
//! Invariants:
//! - each file under the root ends up in `files` (a shard) or in `skipped`;
//! - each member of a shard is a unit, part of a sample that has one, or a note with its
//!   reason: an image without a label, a label without an image, a member that is not a
//!   regular file, a hidden member; a damaged archive is noted on the shard, with the
//!   members before the damage still read;
//! - a unit's bytes are the member's bytes, borrowed from the (unpacked) shard;
//! - the shard's stat identity covers `dataset.label_field` (see [`SourceFile::ino`]): labels
//!   are cached with the shard's units, so a changed field reads the shard again.
//!
//! Must never: read a shard during discovery, follow symbolic links, or fail on a damaged
//! shard.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use anyhow::Result;
use xxhash_rust::xxh3::xxh3_64;

use super::{
    DatasetKind, Discovery, FileNote, FileRole, SPLIT_NAMES, SourceFile, Unit, UnitEncoding,
    has_image_extension, stat_identity,
};

/// The `.json` fields tried for the label when `dataset.label_field` is not set.
pub const LABEL_FIELDS: &[&str] = &["label", "class", "cls"];

/// Whether a file name is a shard's (by extension).
pub fn is_shard_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".tar") || lower.ends_with(".tar.gz") || lower.ends_with(".tgz")
}

fn is_split_name(name: &str) -> bool {
    SPLIT_NAMES.contains(&name.to_ascii_lowercase().as_str())
}

/// The split a shard's name implies: the first of its words (runs of letters) that is a
/// split name.
fn split_of_name(name: &str) -> Option<String> {
    name.split(|c: char| !c.is_ascii_alphabetic())
        .find(|word| is_split_name(word))
        .map(str::to_ascii_lowercase)
}

/// Whether `root` looks like a WebDataset: shards at its top level or in its split folders,
/// and no other (non-hidden) folder, which would be a class folder of a folder dataset with
/// a stray archive beside it.
fn looks_like_webdataset(root: &Path, exclude: Option<&Path>) -> bool {
    let Ok(entries) = fs::read_dir(root) else {
        return false;
    };
    let mut shards = 0;
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_file() && is_shard_name(&name) {
            shards += 1;
        } else if file_type.is_dir() {
            if exclude.is_some_and(|ex| super::same_dir(&entry.path(), ex)) {
                continue;
            }
            if !is_split_name(&name) {
                return false;
            }
            if let Ok(inner) = fs::read_dir(entry.path()) {
                shards += inner
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter(|e| is_shard_name(&e.file_name().to_string_lossy()))
                    .count();
            }
        }
    }
    shards > 0
}

/// Finds WebDataset shards under `root`; `None` when it is not a WebDataset (auto-detection)
/// or holds no shard at all (`forced`).
pub fn discover(
    root: &Path,
    forced: bool,
    label_field: Option<&str>,
    exclude: Option<&Path>,
) -> Result<Option<Discovery>> {
    if !forced && !looks_like_webdataset(root, exclude) {
        return Ok(None);
    }
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    super::walk_regular_files(root, exclude, &mut skipped, |file, skipped| {
        let note = |reason: &str| file.note(reason);
        let super::WalkedFile {
            entry,
            rel_path,
            name,
        } = &file;
        let rel_path = rel_path.clone();
        if !is_shard_name(name) {
            skipped.push(note("not a WebDataset shard (.tar, .tar.gz or .tgz)"));
            return;
        }
        let folder_split = rel_path
            .split_once('/')
            .map(|(first, _)| first)
            .filter(|first| is_split_name(first))
            .map(str::to_string);
        let split = folder_split.or_else(|| split_of_name(name));
        match entry.metadata() {
            Ok(meta) => {
                let (size, mtime_ns, ino) = stat_identity(&meta);
                let identity = [
                    ino.to_le_bytes().as_slice(),
                    label_field.unwrap_or("").as_bytes(),
                ]
                .concat();
                files.push(SourceFile {
                    rel_path,
                    abs_path: entry.path().to_path_buf(),
                    size,
                    mtime_ns,
                    ino: xxh3_64(&identity),
                    role: FileRole::Shard {
                        split,
                        label_field: label_field.map(str::to_string),
                    },
                });
            }
            Err(err) => skipped.push(note(&format!("shard that could not be read: {err}"))),
        }
    });
    if files.is_empty() {
        return Ok(None);
    }
    files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some(Discovery {
        kind: DatasetKind::WebDataset,
        files,
        skipped,
        class_names: None,
    }))
}

/// One member of a shard, as the archive lists it.
struct Member<'a> {
    name: String,
    /// The path up to the first dot of the file name.
    key: String,
    /// The rest of the file name, lower-cased (`jpg`, `cls`, `seg.png`).
    field: String,
    bytes: &'a [u8],
}

/// Splits a member path into key and field.
fn key_and_field(name: &str) -> (String, String) {
    let (dir, file) = match name.rsplit_once('/') {
        Some((dir, file)) => (Some(dir), file),
        None => (None, name),
    };
    let (stem, field) = file.split_once('.').unwrap_or((file, ""));
    let key = match dir {
        Some(dir) => format!("{dir}/{stem}"),
        None => stem.to_string(),
    };
    (key, field.to_ascii_lowercase())
}

/// Reads the members of a tar archive held in `bytes`. Returns them in archive order and a
/// note on the archive when it is damaged (the members before the damage are kept).
fn members<'a>(
    shard: &str,
    bytes: &'a [u8],
    notes: &mut Vec<FileNote>,
) -> (Vec<Member<'a>>, Option<String>) {
    let mut found = Vec::new();
    let mut archive = tar::Archive::new(bytes);
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(err) => return (found, Some(format!("is not a readable tar archive: {err}"))),
    };
    let mut seen = 0usize;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                let reason = if seen == 0 {
                    format!("is not a readable tar archive ({err})")
                } else {
                    format!(
                        "is damaged after its first {seen} members ({err}); those were read, \
                         the rest is lost: re-create or re-download the shard"
                    )
                };
                return (found, Some(reason));
            }
        };
        seen += 1;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = name.trim_start_matches("./").to_string();
        let path = format!("{shard}:{name}");
        let kind = entry.header().entry_type();
        // Folders, and the extension headers the tar crate has already applied.
        if kind.is_dir()
            || kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            notes.push(FileNote {
                path,
                reason: format!(
                    "member that is not a regular file ({kind:?}); links and special files \
                     are not followed"
                ),
            });
            continue;
        }
        let file_name = name.rsplit('/').next().unwrap_or(&name);
        if file_name.starts_with('.') || file_name.is_empty() {
            notes.push(FileNote {
                path,
                reason: "hidden member (not part of any sample)".into(),
            });
            continue;
        }
        let start = entry.raw_file_position();
        let size = entry.size();
        let end = start
            .checked_add(size)
            .filter(|&end| end <= bytes.len() as u64);
        let Some(end) = end else {
            return (
                found,
                Some(format!(
                    "is truncated inside member {name} ({size} bytes promised); the members \
                     before it were read: re-create or re-download the shard"
                )),
            );
        };
        let (key, field) = key_and_field(&name);
        found.push(Member {
            name,
            key,
            field,
            bytes: &bytes[start as usize..end as usize],
        });
    }
    if seen == 0 {
        return (
            found,
            Some("holds no members (an empty tar archive)".into()),
        );
    }
    (found, None)
}

/// Why a sample's label could not be had, for the note on its images.
enum NoLabel {
    NoLabelMember,
    Unusable(String),
}

/// The label of a sample from its members: `.cls`, else a `.json` field, else a `.txt` line.
fn label_of(members: &[&Member], label_field: Option<&str>) -> Result<String, NoLabel> {
    let text = |member: &Member| String::from_utf8_lossy(member.bytes).trim().to_string();
    let mut problem = None;
    if let Some(cls) = members.iter().find(|m| m.field == "cls") {
        let label = text(cls);
        if !label.is_empty() {
            return Ok(label);
        }
        problem = Some("its .cls member is empty".to_string());
    }
    if let Some(json) = members.iter().find(|m| m.field == "json") {
        let fields: Vec<&str> = match label_field {
            Some(field) => vec![field],
            None => LABEL_FIELDS.to_vec(),
        };
        match serde_json::from_slice::<serde_json::Value>(json.bytes) {
            Ok(value) => {
                let found = fields.iter().find_map(|f| value.get(f));
                match found {
                    Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                        return Ok(s.trim().to_string());
                    }
                    Some(serde_json::Value::Number(n)) => return Ok(n.to_string()),
                    Some(other) => {
                        problem = Some(format!(
                            "its .json label field is {other}, not a string or a number"
                        ))
                    }
                    None => {
                        let wanted: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
                        problem = Some(format!(
                            "its .json has no {} field{}",
                            wanted.join(" or "),
                            if label_field.is_some() {
                                " (dataset.label_field)"
                            } else {
                                " (name the field with dataset.label_field in aldente.toml)"
                            }
                        ));
                    }
                }
            }
            Err(err) => problem = Some(format!("its .json member is not valid JSON ({err})")),
        }
    }
    if let Some(txt) = members.iter().find(|m| m.field == "txt") {
        let label = text(txt);
        if !label.is_empty() && !label.contains('\n') {
            return Ok(label);
        }
        problem.get_or_insert_with(|| {
            "its .txt member is empty or more than one line (a caption, not a label)".into()
        });
    }
    Err(problem.map_or(NoLabel::NoLabelMember, NoLabel::Unusable))
}

fn is_label_field(field: &str) -> bool {
    matches!(field, "cls" | "json" | "txt")
}

/// Cuts a shard's (unpacked) bytes into units, one per image member of a labelled sample,
/// and a note for every member that cannot be used and for a damaged archive.
pub fn units<'a>(
    file: &SourceFile,
    split: Option<&str>,
    label_field: Option<&str>,
    bytes: &'a [u8],
) -> (Vec<Unit<'a>>, Vec<FileNote>) {
    let mut notes = Vec::new();
    let (members, damage) = members(&file.rel_path, bytes, &mut notes);
    if let Some(reason) = damage {
        notes.push(FileNote {
            path: file.rel_path.clone(),
            reason,
        });
    }
    // Samples in the order their key first appears (WebDataset writes them together).
    let mut order: Vec<&str> = Vec::new();
    let mut samples: HashMap<&str, Vec<&Member>> = HashMap::new();
    for member in &members {
        samples
            .entry(member.key.as_str())
            .or_insert_with(|| {
                order.push(member.key.as_str());
                Vec::new()
            })
            .push(member);
    }
    let mut units = Vec::new();
    for key in order {
        let sample = &samples[key];
        let member_path = |m: &Member| format!("{}:{}", file.rel_path, m.name);
        let images: Vec<&&Member> = sample
            .iter()
            .filter(|m| has_image_extension(&m.name))
            .collect();
        if images.is_empty() {
            for member in sample {
                let reason = if is_label_field(&member.field) {
                    format!("label without an image: no image member has the key `{key}`")
                } else {
                    format!("neither an image nor a label, and no image member has its key `{key}`")
                };
                notes.push(FileNote {
                    path: member_path(member),
                    reason,
                });
            }
            continue;
        }
        match label_of(sample, label_field) {
            Ok(label) => units.extend(images.iter().map(|m| Unit {
                rel_path: member_path(m),
                split: split.map(str::to_string),
                label: label.clone(),
                bytes: m.bytes,
                encoding: UnitEncoding::File,
            })),
            Err(why) => {
                let reason = match why {
                    NoLabel::NoLabelMember => format!(
                        "image without a label: no .cls, .json or .txt member has the key `{key}`"
                    ),
                    NoLabel::Unusable(problem) => {
                        format!("image without a usable label: {problem}")
                    }
                };
                notes.extend(images.iter().map(|m| FileNote {
                    path: member_path(m),
                    reason: reason.clone(),
                }));
            }
        }
    }
    (units, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A tar archive of `(name, bytes)` members.
    pub fn shard(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *bytes).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn write(path: &Path, bytes: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn fake(rel: &str) -> SourceFile {
        SourceFile {
            rel_path: rel.into(),
            abs_path: PathBuf::from(rel),
            size: 0,
            mtime_ns: 0,
            ino: 0,
            role: FileRole::Shard {
                split: None,
                label_field: None,
            },
        }
    }

    fn reason<'n>(notes: &'n [FileNote], path: &str) -> &'n str {
        notes
            .iter()
            .find(|n| n.path == path)
            .map(|n| n.reason.as_str())
            .unwrap_or_else(|| panic!("no note on {path}: {notes:?}"))
    }

    #[test]
    fn keys_and_splits_are_read_from_names() {
        assert_eq!(
            key_and_field("a/000123.seg.png"),
            ("a/000123".into(), "seg.png".into())
        );
        assert_eq!(key_and_field("x"), ("x".into(), "".into()));
        assert_eq!(split_of_name("train-000003.tar").as_deref(), Some("train"));
        assert_eq!(
            split_of_name("imagenet-val-0001.tar").as_deref(),
            Some("val")
        );
        assert_eq!(split_of_name("shard-0003.tar"), None);
        assert_eq!(split_of_name("eval-1.tar"), None);
    }

    #[test]
    fn samples_are_labelled_from_cls_json_and_txt() {
        let bytes = shard(&[
            ("000001.jpg", b"jpeg1"),
            ("000001.cls", b" 3\n"),
            ("000002.png", b"png2"),
            ("000002.json", br#"{"class": "dog", "w": 3}"#),
            ("000003.webp", b"webp3"),
            ("000003.txt", b"cat\n"),
            ("000004.jpg", b"nolabel"),
            ("000005.cls", b"7"),
            ("000006.jpg", b"caption"),
            ("000006.txt", b"a dog\non grass"),
            ("readme.md", b"hi"),
        ]);
        let (units, notes) = units(&fake("s.tar"), Some("train"), None, &bytes);
        let got: Vec<(&str, &str)> = units
            .iter()
            .map(|u| (u.rel_path.as_str(), u.label.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("s.tar:000001.jpg", "3"),
                ("s.tar:000002.png", "dog"),
                ("s.tar:000003.webp", "cat")
            ]
        );
        assert_eq!(units[1].bytes, b"png2");
        assert_eq!(units[0].split.as_deref(), Some("train"));
        assert!(reason(&notes, "s.tar:000004.jpg").starts_with("image without a label"));
        assert!(reason(&notes, "s.tar:000005.cls").starts_with("label without an image"));
        assert!(reason(&notes, "s.tar:000006.jpg").contains("caption"));
        assert!(reason(&notes, "s.tar:readme.md").contains("neither an image nor a label"));
        assert_eq!(notes.len(), 4, "{notes:?}");
    }

    #[test]
    fn the_configured_json_field_is_used() {
        let bytes = shard(&[
            ("a.jpg", b"x"),
            ("a.json", br#"{"label": "no", "species": 12}"#),
        ]);
        let (units_found, _) = units(&fake("s.tar"), None, Some("species"), &bytes);
        assert_eq!(units_found[0].label, "12");
        let (none, notes) = units(&fake("s.tar"), None, Some("genus"), &bytes);
        assert!(none.is_empty());
        assert!(
            reason(&notes, "s.tar:a.jpg").contains("`genus`"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_damaged_shard_keeps_the_members_before_the_damage() {
        let mut bytes = shard(&[("a.jpg", b"x"), ("a.cls", b"1"), ("b.jpg", &[7u8; 2000])]);
        bytes.truncate(1024 + 1024 + 512 + 100);
        let (units_found, notes) = units(&fake("s.tar"), None, None, &bytes);
        assert_eq!(units_found.len(), 1);
        assert!(reason(&notes, "s.tar").contains("truncated"), "{notes:?}");
        let (none, notes) = units(&fake("s.tar"), None, None, b"not a tar at all");
        assert!(none.is_empty());
        assert!(!reason(&notes, "s.tar").is_empty());
    }

    #[test]
    fn shards_are_found_with_splits_from_folders_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let one = shard(&[("a.jpg", b"x"), ("a.cls", b"1")]);
        write(&root.join("train/shard-0000.tar"), &one);
        write(&root.join("test-000000.tar.gz"), &one);
        write(&root.join("README.md"), b"hi");
        let found = discover(root, false, None, None).unwrap().expect("shards");
        assert_eq!(found.kind, DatasetKind::WebDataset);
        let files: Vec<(&str, &FileRole)> = found
            .files
            .iter()
            .map(|f| (f.rel_path.as_str(), &f.role))
            .collect();
        assert_eq!(files.len(), 2);
        assert!(matches!(files[0].1, FileRole::Shard { split: Some(s), .. } if s == "test"));
        assert!(matches!(files[1].1, FileRole::Shard { split: Some(s), .. } if s == "train"));
        assert_eq!(found.skipped.len(), 1);
    }

    #[test]
    fn a_folder_dataset_with_a_stray_archive_is_not_a_webdataset() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("cat/1.png"), b"png");
        write(&dir.path().join("backup.tar"), b"tar");
        assert!(discover(dir.path(), false, None, None).unwrap().is_none());
        let forced = discover(dir.path(), true, None, None).unwrap().unwrap();
        assert_eq!(forced.files.len(), 1);
    }
}
