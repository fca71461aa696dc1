//! CIFAR-10 / CIFAR-100 binary batches: finding them on disk and cutting them into records.
//!
//! The format, as published with the datasets:
//! - CIFAR-10: `data_batch_1.bin` .. `data_batch_5.bin` (train) and `test_batch.bin` (test);
//!   each record is 1 label byte then 3,072 pixel bytes (3,073 bytes). Class names, one a line,
//!   are in `batches.meta.txt`.
//! - CIFAR-100: `train.bin` and `test.bin`; each record is a coarse label byte, a fine label byte,
//!   then 3,072 pixel bytes (3,074 bytes). Units are labelled with the *fine* label, whose names
//!   are in `fine_label_names.txt`.
//! - The pixel bytes are planar: 1,024 red, then 1,024 green, then 1,024 blue, each a row-major
//!   32x32 plane.
//!
//! The batches may sit directly in the root or in one folder right under it, because the official
//! tarballs unpack to `cifar-10-batches-bin/` and `cifar-100-binary/`.
//!
//! Invariants:
//! - like every discovery, each file found under the root ends up in `files` or in `skipped`
//!   (hidden folders are not searched and are listed once, as a folder);
//! - `class_names` is always `Some` for a CIFAR dataset (defaults when no names file is there),
//!   so labels never depend on whether a names file happened to be readable at the time;
//! - a unit's bytes are exactly the 3,072 pixel bytes of one record, borrowed from the batch.
//!
//! Must never: follow symbolic links, read a batch during discovery (only stat it: the ingest
//! stage reads it and caches per file), or fail on a malformed batch. A truncated batch or a label
//! byte beyond the known names is data to report, not an error.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::{
    DatasetKind, Discovery, FileRole, SourceFile, Unit, UnitEncoding, rel_string, stat_identity,
};

/// Pixel bytes in one record: 32 x 32 pixels x 3 planes.
pub const PIXEL_BYTES: usize = 32 * 32 * 3;
const PLANE_BYTES: usize = 32 * 32;
/// One label byte plus the pixels.
pub const CIFAR10_RECORD_BYTES: usize = 1 + PIXEL_BYTES;
/// Coarse and fine label bytes plus the pixels.
pub const CIFAR100_RECORD_BYTES: usize = 2 + PIXEL_BYTES;

const CIFAR10_BATCHES: &[(&str, &str)] = &[
    ("data_batch_1.bin", "train"),
    ("data_batch_2.bin", "train"),
    ("data_batch_3.bin", "train"),
    ("data_batch_4.bin", "train"),
    ("data_batch_5.bin", "train"),
    ("test_batch.bin", "test"),
];
const CIFAR100_BATCHES: &[(&str, &str)] = &[("train.bin", "train"), ("test.bin", "test")];

const CIFAR10_NAMES_FILE: &str = "batches.meta.txt";
const CIFAR100_NAMES_FILE: &str = "fine_label_names.txt";
const CIFAR100_COARSE_NAMES_FILE: &str = "coarse_label_names.txt";

/// The names shipped in CIFAR-10's `batches.meta.txt`, in label order.
const CIFAR10_DEFAULT_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
const CIFAR100_CLASSES: usize = 100;

/// What distinguishes the two CIFAR variants on disk.
struct Layout {
    kind: DatasetKind,
    batches: &'static [(&'static str, &'static str)],
    names_file: &'static str,
    record_bytes: usize,
}

const CIFAR10: Layout = Layout {
    kind: DatasetKind::Cifar10,
    batches: CIFAR10_BATCHES,
    names_file: CIFAR10_NAMES_FILE,
    record_bytes: CIFAR10_RECORD_BYTES,
};
const CIFAR100: Layout = Layout {
    kind: DatasetKind::Cifar100,
    batches: CIFAR100_BATCHES,
    names_file: CIFAR100_NAMES_FILE,
    record_bytes: CIFAR100_RECORD_BYTES,
};

impl Layout {
    fn split_of(&self, file_name: &str) -> Option<&'static str> {
        self.batches
            .iter()
            .find(|(name, _)| *name == file_name)
            .map(|(_, split)| *split)
    }

    /// Whether `dir` holds batches of this layout. CIFAR-10's names are distinctive enough that
    /// the name alone decides (so a truncated batch is still found and reported). CIFAR-100's
    /// `train.bin` / `test.bin` are generic names that unrelated datasets use too, so they also
    /// need a size that is a whole number of records, or the names file beside them.
    fn is_present_in(&self, dir: &Path) -> bool {
        let sizes: Vec<u64> = self
            .batches
            .iter()
            .filter_map(|(name, _)| regular_file_size(&dir.join(name)))
            .collect();
        if sizes.is_empty() {
            return false;
        }
        if self.kind == DatasetKind::Cifar10 {
            return true;
        }
        let record = self.record_bytes as u64;
        sizes.iter().any(|&size| size > 0 && size % record == 0)
            || regular_file_size(&dir.join(self.names_file)).is_some()
    }
}

/// Size of `path` if it is a regular file; symbolic links do not count, as they are not followed.
fn regular_file_size(path: &Path) -> Option<u64> {
    let meta = fs::symlink_metadata(path).ok()?;
    meta.file_type().is_file().then_some(meta.len())
}

/// Finds CIFAR binary batches under `root`; `None` when the folder is not a CIFAR dataset.
///
/// Detection probes only the known batch names in the root and the folders right under it, so
/// that a large folder-per-class dataset is not walked twice; the full walk, which accounts for
/// every other file, happens only once the folder is known to be CIFAR.
///
/// A root that is missing, not a folder or not listable is also `None`: the folder discovery,
/// which runs next, owns the message for that, so the user sees one wording whatever the layout.
/// The only error is an ambiguous root holding two CIFAR folders.
pub fn discover(root: &Path) -> Result<Option<Discovery>> {
    let Some((batch_dir, layout)) = find_batch_dir(root)? else {
        return Ok(None);
    };
    let (class_names, names_note) = read_class_names(&batch_dir, layout);

    let mut files = Vec::new();
    let mut skipped = Vec::new();
    super::walk_regular_files(root, None, &mut skipped, |file, skipped| {
        let note = |reason: &str| file.note(reason);
        let super::WalkedFile {
            entry,
            rel_path,
            name,
        } = &file;
        let rel_path = rel_path.clone();
        let in_batch_dir = entry.path().parent() == Some(batch_dir.as_path());
        let split = if in_batch_dir {
            layout.split_of(name)
        } else {
            None
        };
        if let Some(split) = split {
            match entry.metadata() {
                Ok(meta) => {
                    let (size, mtime_ns, ino) = stat_identity(&meta);
                    files.push(SourceFile {
                        rel_path,
                        abs_path: entry.path().to_path_buf(),
                        size,
                        mtime_ns,
                        ino,
                        role: FileRole::CifarBatch {
                            split: split.to_string(),
                        },
                    });
                }
                Err(err) => {
                    skipped.push(note(&format!("CIFAR batch that could not be read: {err}")))
                }
            }
        } else if in_batch_dir && name == layout.names_file {
            skipped.push(note(&names_note));
        } else if in_batch_dir
            && layout.kind == DatasetKind::Cifar100
            && name == CIFAR100_COARSE_NAMES_FILE
        {
            skipped.push(note(
                "coarse class names of the CIFAR-100 batches (coarse_label_names.txt); \
                 units are labelled with the fine labels",
            ));
        } else {
            skipped.push(note("not part of a CIFAR binary dataset"));
        }
    });
    files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    skipped.sort_by(|a, b| a.path.cmp(&b.path));

    Ok(Some(Discovery {
        kind: layout.kind.clone(),
        files,
        skipped,
        class_names: Some(class_names),
    }))
}

/// The folder holding the batches: the root itself, else the one folder right under it that
/// holds them. Two such folders (CIFAR-10 and CIFAR-100 unpacked side by side, say) would make
/// the report silently about one of them, so that is an error the user resolves by pointing at one.
fn find_batch_dir(root: &Path) -> Result<Option<(PathBuf, &'static Layout)>> {
    if let Some(layout) = layout_in(root) {
        return Ok(Some((root.to_path_buf(), layout)));
    }
    let Ok(entries) = fs::read_dir(root) else {
        return Ok(None);
    };
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .map(|entry| entry.path())
        .collect();
    subdirs.sort();
    let found: Vec<(PathBuf, &'static Layout)> = subdirs
        .into_iter()
        .filter_map(|dir| layout_in(&dir).map(|layout| (dir, layout)))
        .collect();
    if found.len() > 1 {
        let names: Vec<String> = found
            .iter()
            .map(|(dir, _)| format!("`{}`", rel_string(dir.strip_prefix(root).unwrap_or(dir))))
            .collect();
        bail!(
            "found CIFAR batches in {} folders under {}: {}; run aldente on one of them",
            found.len(),
            root.display(),
            names.join(", ")
        );
    }
    Ok(found.into_iter().next())
}

/// CIFAR-10 wins when a folder somehow holds both, since its batch names cannot be a coincidence.
fn layout_in(dir: &Path) -> Option<&'static Layout> {
    [&CIFAR10, &CIFAR100]
        .into_iter()
        .find(|layout| layout.is_present_in(dir))
}

/// Class names in label order, and the skipped-file reason to show for the names file. A names
/// file that is missing, unreadable or empty gives the default names rather than an error: the
/// labels are still right as numbers, and the note says why the names are generic.
fn read_class_names(batch_dir: &Path, layout: &Layout) -> (Vec<String>, String) {
    let file = layout.names_file;
    let used = format!("class names of the CIFAR batches ({file})");
    let path = batch_dir.join(file);
    if regular_file_size(&path).is_none() {
        return (default_class_names(&layout.kind), used);
    }
    match fs::read(&path) {
        Ok(bytes) => {
            let names: Vec<String> = String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_string)
                .collect();
            if names.is_empty() {
                let reason = format!("{used}, but it holds no names; default names are used");
                (default_class_names(&layout.kind), reason)
            } else {
                (names, used)
            }
        }
        Err(err) => {
            let reason =
                format!("{used}, but it could not be read ({err}); default names are used");
            (default_class_names(&layout.kind), reason)
        }
    }
}

fn default_class_names(kind: &DatasetKind) -> Vec<String> {
    match kind {
        DatasetKind::Cifar100 => (0..CIFAR100_CLASSES)
            .map(|n| format!("class_{n}"))
            .collect(),
        _ => CIFAR10_DEFAULT_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

/// Cuts one batch file into its records.
///
/// Whole records become units; bytes left over after the last whole record are ignored and the
/// returned reason says how many, so a truncated download still yields what it holds.
pub fn units<'a>(
    file: &SourceFile,
    split: &str,
    bytes: &'a [u8],
    kind: &DatasetKind,
    class_names: Option<&[String]>,
) -> (Vec<Unit<'a>>, Option<String>) {
    let (record_bytes, label_offset) = match kind {
        DatasetKind::Cifar10 => (CIFAR10_RECORD_BYTES, 0),
        // The fine label is the second byte; the coarse one is not used.
        DatasetKind::Cifar100 => (CIFAR100_RECORD_BYTES, 1),
        other => {
            return (
                Vec::new(),
                Some(format!(
                    "a CIFAR batch in a dataset of another layout ({}) cannot be read",
                    other.describe()
                )),
            );
        }
    };
    if bytes.is_empty() {
        return (Vec::new(), Some("empty CIFAR batch file".into()));
    }
    // Only a caller that bypassed discovery passes no names; fall back to the same defaults
    // discovery would have used, so labels do not depend on the path taken.
    let defaults;
    let names = match class_names {
        Some(names) => names,
        None => {
            defaults = default_class_names(kind);
            &defaults
        }
    };
    let records = bytes.chunks_exact(record_bytes);
    let leftover = records.remainder().len();
    let units = records
        .enumerate()
        .map(|(index, record)| {
            let label = usize::from(record[label_offset]);
            Unit {
                rel_path: format!("{}#{:05}", file.rel_path, index),
                split: Some(split.to_string()),
                label: names
                    .get(label)
                    .cloned()
                    .unwrap_or_else(|| format!("label_{label}")),
                bytes: &record[label_offset + 1..],
                encoding: UnitEncoding::CifarRecord,
            }
        })
        .collect();
    let reason = (leftover > 0).then(|| {
        format!(
            "CIFAR batch is truncated: {} bytes is not a whole number of {}-byte records; \
             the last {} bytes were ignored",
            thousands(bytes.len()),
            thousands(record_bytes),
            thousands(leftover)
        )
    });
    (units, reason)
}

/// `30730123` as `30,730,123`, for messages people read.
fn thousands(n: usize) -> String {
    crate::text::thousands(n as u64)
}

/// Turns 3,072 planar bytes (1,024 R, 1,024 G, 1,024 B) into a 32x32 RGB image.
///
/// Runs once per record (60,000 times for CIFAR-10), so it writes the interleaved buffer in one
/// pass instead of going through per-pixel `put_pixel` calls.
pub fn decode_record(bytes: &[u8]) -> Option<image::RgbImage> {
    if bytes.len() != PIXEL_BYTES {
        return None;
    }
    let (red, rest) = bytes.split_at(PLANE_BYTES);
    let (green, blue) = rest.split_at(PLANE_BYTES);
    let mut interleaved = vec![0u8; PIXEL_BYTES];
    for (pixel, ((&r, &g), &b)) in interleaved
        .chunks_exact_mut(3)
        .zip(red.iter().zip(green).zip(blue))
    {
        pixel.copy_from_slice(&[r, g, b]);
    }
    image::RgbImage::from_raw(32, 32, interleaved)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One CIFAR-10 record whose pixels are all `fill`.
    fn cifar10_record(label: u8, fill: u8) -> Vec<u8> {
        let mut record = vec![label];
        record.extend(std::iter::repeat_n(fill, PIXEL_BYTES));
        record
    }

    fn cifar100_record(coarse: u8, fine: u8, fill: u8) -> Vec<u8> {
        let mut record = vec![coarse, fine];
        record.extend(std::iter::repeat_n(fill, PIXEL_BYTES));
        record
    }

    fn write(path: &Path, bytes: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn read_units(discovery: &Discovery) -> Vec<(String, Option<String>, String)> {
        let mut out = Vec::new();
        for file in &discovery.files {
            let bytes = fs::read(&file.abs_path).unwrap();
            let FileRole::CifarBatch { split } = &file.role else {
                panic!("not a batch: {file:?}");
            };
            let (units, reason) = units(
                file,
                split,
                &bytes,
                &discovery.kind,
                discovery.class_names.as_deref(),
            );
            assert_eq!(reason, None, "{}", file.rel_path);
            out.extend(units.into_iter().map(|u| (u.rel_path, u.split, u.label)));
        }
        out
    }

    fn fake_file(rel_path: &str, split: &str) -> SourceFile {
        SourceFile {
            rel_path: rel_path.into(),
            abs_path: PathBuf::from(rel_path),
            size: 0,
            mtime_ns: 0,
            ino: 0,
            role: FileRole::CifarBatch {
                split: split.into(),
            },
        }
    }

    fn skipped_reason<'d>(discovery: &'d Discovery, path: &str) -> &'d str {
        discovery
            .skipped
            .iter()
            .find(|note| note.path == path)
            .map(|note| note.reason.as_str())
            .unwrap_or_else(|| panic!("{path} not skipped: {:?}", discovery.skipped))
    }

    #[test]
    fn cifar10_with_meta_file_uses_its_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut train = cifar10_record(0, 10);
        train.extend(cifar10_record(2, 20));
        write(&root.join("data_batch_1.bin"), &train);
        write(&root.join("test_batch.bin"), &cifar10_record(1, 30));
        write(
            &root.join("batches.meta.txt"),
            b"apple\r\nbanana\n\ncherry\n\n",
        );

        let found = discover(root).unwrap().expect("CIFAR-10");
        assert_eq!(found.kind, DatasetKind::Cifar10);
        let names = ["apple", "banana", "cherry"].map(String::from).to_vec();
        assert_eq!(found.class_names, Some(names));
        let paths: Vec<&str> = found.files.iter().map(|f| f.rel_path.as_str()).collect();
        assert_eq!(paths, ["data_batch_1.bin", "test_batch.bin"]);
        assert_eq!(found.files[0].size, 2 * CIFAR10_RECORD_BYTES as u64);
        assert_eq!(
            read_units(&found),
            [
                ("data_batch_1.bin#00000", "train", "apple"),
                ("data_batch_1.bin#00001", "train", "cherry"),
                ("test_batch.bin#00000", "test", "banana"),
            ]
            .map(|(p, s, l)| (p.to_string(), Some(s.to_string()), l.to_string()))
        );
        assert_eq!(
            skipped_reason(&found, "batches.meta.txt"),
            "class names of the CIFAR batches (batches.meta.txt)"
        );
    }

    #[test]
    fn cifar10_without_meta_file_uses_the_standard_names() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("test_batch.bin"), &cifar10_record(9, 0));
        let found = discover(dir.path()).unwrap().expect("CIFAR-10");
        let names = found.class_names.clone().unwrap();
        assert_eq!(names.len(), 10);
        assert_eq!(
            (names[0].as_str(), names[9].as_str()),
            ("airplane", "truck")
        );
        assert_eq!(read_units(&found)[0].2, "truck");
    }

    #[test]
    fn cifar10_in_nested_folder_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let nested = root.join("cifar-10-batches-bin");
        write(&nested.join("data_batch_3.bin"), &cifar10_record(4, 1));
        write(&nested.join("batches.meta.txt"), b"a\nb\nc\nd\ne\n");
        write(&nested.join("readme.html"), b"<html>");
        write(&root.join("cifar-10-binary.tar.gz"), b"not unpacked");

        let found = discover(root).unwrap().expect("CIFAR-10");
        assert_eq!(found.files.len(), 1);
        let batch = &found.files[0];
        assert_eq!(batch.rel_path, "cifar-10-batches-bin/data_batch_3.bin");
        assert_eq!(
            batch.role,
            FileRole::CifarBatch {
                split: "train".into()
            }
        );
        assert_eq!(read_units(&found)[0].2, "e");
        assert_eq!(
            skipped_reason(&found, "cifar-10-batches-bin/readme.html"),
            "not part of a CIFAR binary dataset"
        );
        assert_eq!(
            skipped_reason(&found, "cifar-10-binary.tar.gz"),
            "not part of a CIFAR binary dataset"
        );
    }

    #[test]
    fn batches_two_folders_deep_are_not_a_cifar_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("downloads").join("cifar-10-batches-bin");
        write(&deep.join("data_batch_1.bin"), &cifar10_record(0, 0));
        assert!(discover(dir.path()).unwrap().is_none());
    }

    #[test]
    fn two_nested_cifar_folders_are_an_error_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            &root.join("cifar-10-batches-bin/test_batch.bin"),
            &cifar10_record(0, 0),
        );
        write(
            &root.join("cifar-100-binary/test.bin"),
            &cifar100_record(0, 0, 0),
        );
        let err = discover(root).unwrap_err().to_string();
        assert!(err.contains("`cifar-10-batches-bin`"), "{err}");
        assert!(err.contains("`cifar-100-binary`"), "{err}");
    }

    #[test]
    fn cifar100_labels_use_the_fine_label() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cifar-100-binary");
        let mut train = cifar100_record(3, 1, 0);
        train.extend(cifar100_record(1, 0, 0));
        write(&root.join("train.bin"), &train);
        write(&root.join("test.bin"), &cifar100_record(0, 2, 0));
        write(&root.join("fine_label_names.txt"), b"apple\nbaby\nbear\n");
        write(&root.join("coarse_label_names.txt"), b"a\nb\nc\nd\n");

        let found = discover(dir.path()).unwrap().expect("CIFAR-100");
        assert_eq!(found.kind, DatasetKind::Cifar100);
        let labels: Vec<String> = read_units(&found).into_iter().map(|u| u.2).collect();
        // Files sort test.bin before train.bin.
        assert_eq!(labels, ["bear", "baby", "apple"]);
        assert!(
            skipped_reason(&found, "cifar-100-binary/coarse_label_names.txt").contains("coarse")
        );
    }

    #[test]
    fn cifar100_without_names_file_uses_numbered_names() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("test.bin"), &cifar100_record(0, 99, 0));
        let found = discover(dir.path()).unwrap().expect("CIFAR-100");
        assert_eq!(found.class_names.as_ref().unwrap().len(), 100);
        assert_eq!(read_units(&found)[0].2, "class_99");
    }

    /// `test.bin` is a common name; without a whole number of records or the names file beside
    /// it, it must not turn an unrelated dataset into a broken CIFAR-100 one.
    #[test]
    fn generic_cifar100_name_with_odd_size_is_not_cifar() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("test.bin"), b"some other binary");
        write(&dir.path().join("cat/1.png"), b"png");
        assert!(discover(dir.path()).unwrap().is_none());
    }

    #[test]
    fn truncated_cifar10_batch_is_still_discovered() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("data_batch_1.bin"), b"short");
        let found = discover(dir.path()).unwrap().expect("CIFAR-10");
        assert_eq!(found.files.len(), 1);
    }

    #[test]
    fn truncated_batch_reports_the_reason_and_keeps_whole_records() {
        let mut bytes = cifar10_record(1, 7);
        bytes.extend(cifar10_record(2, 8));
        bytes.extend([0u8; 1234]);
        let names = ["a", "b", "c"].map(String::from);
        let file = fake_file("data_batch_1.bin", "train");
        let (units, reason) = units(&file, "train", &bytes, &DatasetKind::Cifar10, Some(&names));
        assert_eq!(units.len(), 2);
        assert_eq!(units[1].label, "c");
        assert!(units[1].bytes.iter().all(|&b| b == 8));
        assert_eq!(
            reason.as_deref(),
            Some(
                "CIFAR batch is truncated: 7,380 bytes is not a whole number of 3,073-byte \
                 records; the last 1,234 bytes were ignored"
            )
        );
    }

    #[test]
    fn empty_batch_gives_no_units_and_a_reason() {
        let file = fake_file("test.bin", "test");
        let (units, reason) = units(&file, "test", &[], &DatasetKind::Cifar100, None);
        assert!(units.is_empty());
        assert_eq!(reason.as_deref(), Some("empty CIFAR batch file"));
    }

    #[test]
    fn units_carry_only_the_pixel_bytes_and_a_numbered_path() {
        let mut bytes = cifar100_record(5, 1, 0);
        bytes[2] = 42; // first red byte
        let file = fake_file("cifar-100-binary/train.bin", "train");
        let (units, reason) = units(&file, "train", &bytes, &DatasetKind::Cifar100, None);
        assert_eq!(reason, None);
        let unit = &units[0];
        assert_eq!(unit.rel_path, "cifar-100-binary/train.bin#00000");
        assert_eq!(unit.split.as_deref(), Some("train"));
        assert_eq!(unit.bytes.len(), PIXEL_BYTES);
        assert_eq!(unit.bytes[0], 42);
        assert_eq!(unit.encoding, UnitEncoding::CifarRecord);
    }

    #[test]
    fn label_byte_beyond_the_names_is_kept_as_a_number() {
        let names = ["a", "b"].map(String::from);
        let file = fake_file("test_batch.bin", "test");
        let bytes = cifar10_record(200, 0);
        let (units, _) = units(&file, "test", &bytes, &DatasetKind::Cifar10, Some(&names));
        assert_eq!(units[0].label, "label_200");
    }

    #[test]
    fn decode_record_reads_planar_channels() {
        let mut bytes = vec![0u8; PIXEL_BYTES];
        // Pixel (x=1, y=0): one byte into each plane.
        bytes[1] = 11;
        bytes[1025] = 22;
        bytes[2049] = 33;
        // Pixel (x=0, y=1): one row (32 bytes) into each plane.
        bytes[32] = 44;
        bytes[1024 + 32] = 55;
        bytes[2048 + 32] = 66;
        let img = decode_record(&bytes).unwrap();
        assert_eq!(img.dimensions(), (32, 32));
        assert_eq!(img.get_pixel(1, 0).0, [11, 22, 33]);
        assert_eq!(img.get_pixel(0, 1).0, [44, 55, 66]);
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
    }

    #[test]
    fn decode_record_rejects_wrong_length() {
        assert!(decode_record(&[0u8; PIXEL_BYTES - 1]).is_none());
        assert!(decode_record(&[0u8; CIFAR10_RECORD_BYTES]).is_none());
    }

    #[test]
    fn non_cifar_folder_gives_none() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("cat/1.png"), b"png");
        write(&dir.path().join("dog/2.png"), b"png");
        write(&dir.path().join("batches.meta.txt"), b"cat\ndog\n");
        assert!(discover(dir.path()).unwrap().is_none());
    }

    /// The folder discovery words the error for a bad root; CIFAR must not pre-empt it.
    #[test]
    fn missing_root_or_a_file_as_root_is_left_to_the_folder_discovery() {
        let dir = tempfile::tempdir().unwrap();
        assert!(discover(&dir.path().join("nope")).unwrap().is_none());
        let batch = dir.path().join("data_batch_1.bin");
        write(&batch, &cifar10_record(0, 0));
        assert!(discover(&batch).unwrap().is_none());
    }

    #[test]
    fn other_files_are_listed_as_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join("test_batch.bin"), &cifar10_record(0, 0));
        write(&root.join("batches.meta.txt"), b"x\n");
        write(&root.join("notes.txt"), b"hello");
        write(&root.join(".DS_Store"), b"");
        write(&root.join("._test_batch.bin"), b"");
        write(&root.join(".git/config"), b"");
        write(&root.join("extra/data_batch_1.bin"), &cifar10_record(0, 0));
        #[cfg(unix)]
        std::os::unix::fs::symlink(root.join("test_batch.bin"), root.join("data_batch_2.bin"))
            .unwrap();

        let found = discover(root).unwrap().expect("CIFAR-10");
        let paths: Vec<&str> = found.files.iter().map(|f| f.rel_path.as_str()).collect();
        assert_eq!(paths, ["test_batch.bin"]);
        assert_eq!(
            skipped_reason(&found, "notes.txt"),
            "not part of a CIFAR binary dataset"
        );
        assert_eq!(skipped_reason(&found, ".DS_Store"), "hidden file");
        assert_eq!(skipped_reason(&found, "._test_batch.bin"), "hidden file");
        assert_eq!(
            skipped_reason(&found, ".git"),
            "hidden folder (not searched)"
        );
        assert_eq!(
            skipped_reason(&found, "extra/data_batch_1.bin"),
            "not part of a CIFAR binary dataset"
        );
        #[cfg(unix)]
        assert!(skipped_reason(&found, "data_batch_2.bin").contains("symbolic link"));
        // Every file found is accounted for exactly once.
        let expected_notes = if cfg!(unix) { 7 } else { 6 };
        assert_eq!(found.skipped.len(), expected_notes, "{:?}", found.skipped);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(30_730_123), "30,730,123");
    }
}
