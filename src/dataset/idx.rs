//! MNIST-style IDX files: finding the images and labels files on disk and cutting them into
//! records.
//!
//! The format, as published with MNIST (and used unchanged by Fashion-MNIST, EMNIST, KMNIST):
//! a big-endian header of two zero bytes, a type byte (`0x08`: unsigned bytes, the only type
//! image datasets use), a byte giving the number of dimensions, then one big-endian `u32` per
//! dimension, then the data, row-major.
//! - an images file (`train-images-idx3-ubyte`, `t10k-images-idx3-ubyte`) has three
//!   dimensions: count, rows, columns; each record is `rows * cols` grey bytes;
//! - a labels file (`train-labels-idx1-ubyte`) has one: count; each record is one label byte.
//!
//! Either may be gzip-compressed (`.gz`, as downloaded) or not (as torchvision unpacks them);
//! a file is recognised as gzip by its content ([`super::Payload`]). Names with a dot instead
//! of the last dash (`train-images.idx3-ubyte`, as on Kaggle) are recognised too. An images
//! file is paired with the labels file whose name is its own with `images` → `labels` and
//! `idx3` → `idx1`, compressed or not. The split is `train` when the name holds "train",
//! `test` when it holds "t10k" or "test", else none.
//!
//! Class names: the digits `0`..`9`, or Fashion-MNIST's ten names when the images file's path
//! or the dataset folder's name (or its parent's) holds "fashion" (any case). A label byte
//! beyond the names is kept as `label_N`.
//!
//! The files may sit in the root or in one folder right under it (torchvision's `MNIST/raw/`:
//! point aldente at `MNIST` or at `raw`).
//!
//! Invariants:
//! - each file found under the root ends up in `files` or in `skipped` (the labels file is
//!   listed as skipped, "labels of ...", since its bytes are read with its images file);
//! - a unit's bytes are exactly the `rows * cols` pixel bytes of one record, borrowed from
//!   the (unpacked) images file;
//! - the images file's stat identity covers its labels file (see [`SourceFile::ino`]), so a
//!   changed labels file is read again on a rerun.
//!
//! Must never: read an image during discovery, follow symbolic links, or fail on a malformed
//! file. A bad magic number, a truncated file or a count mismatch between images and labels is
//! data to report: the units that can be used are, and the note says what was not.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use xxhash_rust::xxh3::xxh3_64;

use super::{
    DatasetKind, Discovery, FileNote, FileRole, SourceFile, Unit, UnitEncoding, rel_string,
    stat_identity,
};

/// Fashion-MNIST's class names, in label order (from its README).
pub const FASHION_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The unsigned-byte type code, the only one image datasets use.
const TYPE_UBYTE: u8 = 0x08;
/// Most pixels one record may claim (a 4096x4096 grey image): a lying header must not make
/// a record so big that nothing fits, nor overflow.
const MAX_RECORD_PIXELS: u64 = 1 << 24;

/// What an IDX file name says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Images,
    Labels,
}

/// Parses an IDX file name: whether it holds images or labels, and the key that pairs an
/// images file with its labels file (the name without `.gz`, `images`/`labels` and
/// `idx3`/`idx1`).
fn parse_name(name: &str) -> Option<(Kind, String)> {
    let lower = name.to_ascii_lowercase();
    let base = lower.strip_suffix(".gz").unwrap_or(&lower);
    for (kind, word, suffixes) in [
        (Kind::Images, "images", ["idx3-ubyte", "idx3.ubyte"]),
        (Kind::Labels, "labels", ["idx1-ubyte", "idx1.ubyte"]),
    ] {
        for suffix in suffixes {
            if let Some(stem) = base.strip_suffix(suffix) {
                let key = match stem.rfind(word) {
                    Some(at) => format!("{}|{}", &stem[..at], &stem[at + word.len()..]),
                    None => format!("{stem}|"),
                };
                return Some((kind, key));
            }
        }
    }
    None
}

/// The split an IDX file name implies.
fn split_of(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.contains("train") {
        Some("train")
    } else if lower.contains("t10k") || lower.contains("test") {
        Some("test")
    } else {
        None
    }
}

/// Whether `dir` holds an IDX images file (a regular file at its top level).
fn holds_idx_images(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        !name.starts_with('.')
            && e.file_type().is_ok_and(|t| t.is_file())
            && parse_name(&name).is_some_and(|(kind, _)| kind == Kind::Images)
    })
}

/// The folder holding the IDX files: the root, else the one folder right under it that holds
/// them. Two such folders (MNIST and Fashion-MNIST side by side) are an error naming both.
fn find_idx_dir(root: &Path) -> Result<Option<PathBuf>> {
    if holds_idx_images(root) {
        return Ok(Some(root.to_path_buf()));
    }
    let Ok(entries) = fs::read_dir(root) else {
        return Ok(None);
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|dir| holds_idx_images(dir))
        .collect();
    found.sort();
    if found.len() > 1 {
        let names: Vec<String> = found
            .iter()
            .map(|dir| format!("`{}`", rel_string(dir.strip_prefix(root).unwrap_or(dir))))
            .collect();
        bail!(
            "found IDX files in {} folders under {}: {}; run aldente on one of them",
            found.len(),
            root.display(),
            names.join(", ")
        );
    }
    Ok(found.into_iter().next())
}

/// Whether the dataset is Fashion-MNIST, by name: the folder's own name or its parent's, or
/// the images files' paths.
fn is_fashion(root: &Path, image_paths: &[&str]) -> bool {
    let canonical = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let folder_names = canonical
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().to_ascii_lowercase());
    folder_names
        .chain(image_paths.iter().map(|p| p.to_ascii_lowercase()))
        .any(|name| name.contains("fashion"))
}

/// Class names for an IDX dataset: the digits, or Fashion-MNIST's.
pub fn class_names(fashion: bool) -> Vec<String> {
    if fashion {
        FASHION_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..10).map(|d| d.to_string()).collect()
    }
}

/// One regular file seen by the walk.
struct Seen {
    rel_path: String,
    abs_path: PathBuf,
    meta: fs::Metadata,
}

/// Finds IDX files under `root`; `None` when it holds none (in the root or one folder down).
pub fn discover(root: &Path) -> Result<Option<Discovery>> {
    let Some(idx_dir) = find_idx_dir(root)? else {
        return Ok(None);
    };
    let mut skipped = Vec::new();
    // Regular files in the IDX folder, by pairing key; everything else is noted as it comes.
    let mut images: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    let mut labels: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    super::walk_regular_files(root, None, &mut skipped, |file, skipped| {
        let note = |reason: &str| file.note(reason);
        let super::WalkedFile {
            entry,
            rel_path,
            name,
        } = &file;
        let rel_path = rel_path.clone();
        let in_idx_dir = entry.path().parent() == Some(idx_dir.as_path());
        let parsed = if in_idx_dir { parse_name(name) } else { None };
        let Some((kind, key)) = parsed else {
            skipped.push(note("not part of an IDX dataset"));
            return;
        };
        match entry.metadata() {
            Ok(meta) => {
                let seen = Seen {
                    rel_path,
                    abs_path: entry.path().to_path_buf(),
                    meta,
                };
                match kind {
                    Kind::Images => images.entry(key).or_default().push(seen),
                    Kind::Labels => labels.entry(key).or_default().push(seen),
                }
            }
            Err(err) => skipped.push(note(&format!("IDX file that could not be read: {err}"))),
        }
    });

    let mut files = Vec::new();
    for (key, mut found) in images {
        // Both `x.gz` and `x` unpacked beside it: read one (the first by name, the
        // unpacked one), list the other.
        let chosen = found.remove(0);
        for other in found {
            skipped.push(FileNote {
                path: other.rel_path,
                reason: format!("another copy of the IDX images file {}", chosen.rel_path),
            });
        }
        let Some(mut partners) = labels.remove(&key) else {
            let expected = chosen
                .rel_path
                .rsplit('/')
                .next()
                .unwrap_or(&chosen.rel_path)
                .replacen("images", "labels", 1)
                .replacen("idx3", "idx1", 1);
            skipped.push(FileNote {
                path: chosen.rel_path,
                reason: format!(
                    "IDX images file without its labels file ({expected} or {expected}.gz \
                     beside it); add it to analyse these images"
                ),
            });
            continue;
        };
        let label_file = partners.remove(0);
        skipped.push(FileNote {
            path: label_file.rel_path.clone(),
            reason: format!("labels of the IDX images file {}", chosen.rel_path),
        });
        for other in partners {
            skipped.push(FileNote {
                path: other.rel_path,
                reason: format!(
                    "another copy of the IDX labels file {}",
                    label_file.rel_path
                ),
            });
        }
        let (size, images_mtime, images_ino) = stat_identity(&chosen.meta);
        let (labels_size, labels_mtime, labels_ino) = stat_identity(&label_file.meta);
        let pair_identity = [
            images_ino.to_le_bytes().as_slice(),
            &labels_ino.to_le_bytes(),
            &labels_size.to_le_bytes(),
            &labels_mtime.to_le_bytes(),
        ]
        .concat();
        let name = chosen.rel_path.rsplit('/').next().unwrap_or("");
        files.push(SourceFile {
            role: FileRole::IdxImages {
                split: split_of(name).map(str::to_string),
                labels_rel: label_file.rel_path,
                labels_abs: label_file.abs_path,
            },
            rel_path: chosen.rel_path,
            abs_path: chosen.abs_path,
            size,
            // Zero (unknown) stays zero: the stat cache never trusts it.
            mtime_ns: if images_mtime == 0 || labels_mtime == 0 {
                0
            } else {
                images_mtime.max(labels_mtime)
            },
            ino: xxh3_64(&pair_identity),
        });
    }
    for (_, orphans) in labels {
        for orphan in orphans {
            skipped.push(FileNote {
                path: orphan.rel_path,
                reason: "IDX labels file without its images file".into(),
            });
        }
    }
    files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<&str> = files.iter().map(|f| f.rel_path.as_str()).collect();
    let fashion = is_fashion(root, &paths);
    // The labels cached with the records are class names: the identity covers the choice.
    for file in &mut files {
        file.ino = xxh3_64(&[file.ino.to_le_bytes(), u64::from(fashion).to_le_bytes()].concat());
    }
    Ok(Some(Discovery {
        kind: DatasetKind::Idx,
        files,
        skipped,
        class_names: Some(class_names(fashion)),
    }))
}

/// A parsed IDX header: the dimensions and where the data starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub dims: Vec<u32>,
    pub data_offset: usize,
}

/// Reads an IDX header expecting `ndims` dimensions; the error says what is wrong in words.
pub fn parse_header(bytes: &[u8], ndims: u8, what: &str) -> Result<Header, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "is not an IDX {what} file: {} bytes is too short for the header",
            bytes.len()
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!(
            "is not an IDX {what} file: bad magic number {:02x} {:02x} {:02x} {:02x} \
             (expected 00 00 08 {ndims:02x})",
            bytes[0], bytes[1], bytes[2], bytes[3]
        ));
    }
    if bytes[2] != TYPE_UBYTE {
        return Err(format!(
            "is an IDX file of data type {:#04x}; only unsigned bytes (0x08) are read",
            bytes[2]
        ));
    }
    if bytes[3] != ndims {
        return Err(format!(
            "is not an IDX {what} file: it has {} dimensions instead of {ndims}",
            bytes[3]
        ));
    }
    let data_offset = 4 + 4 * usize::from(ndims);
    if bytes.len() < data_offset {
        return Err(format!(
            "is truncated inside its IDX header ({} of {data_offset} bytes)",
            bytes.len()
        ));
    }
    let dims = bytes[4..data_offset]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Header { dims, data_offset })
}

/// Cuts an IDX images file into records labelled from `labels` (the labels file's unpacked
/// bytes, or why they could not be had). Returns the units and the reasons for whatever
/// could not be used, worded to follow the file's name.
pub fn units<'a>(
    file: &SourceFile,
    split: Option<&str>,
    images: &'a [u8],
    labels: Result<&[u8], String>,
    class_names: Option<&[String]>,
) -> (Vec<Unit<'a>>, Vec<String>) {
    let mut reasons = Vec::new();
    let header = match parse_header(images, 3, "images") {
        Ok(header) => header,
        Err(reason) => return (Vec::new(), vec![reason]),
    };
    let (count, rows, cols) = (header.dims[0], header.dims[1], header.dims[2]);
    let pixels = u64::from(rows) * u64::from(cols);
    if pixels == 0 || pixels > MAX_RECORD_PIXELS {
        return (
            Vec::new(),
            vec![format!(
                "has an IDX header claiming {cols}x{rows}-pixel images; \
                 expected between 1 and {} pixels each",
                crate::text::thousands(MAX_RECORD_PIXELS)
            )],
        );
    }
    let record = pixels as usize;
    let data = &images[header.data_offset..];
    let whole = data.len() / record;
    let promised = count as usize;
    if whole < promised {
        reasons.push(format!(
            "is truncated: its header promises {} images of {cols}x{rows} but it holds {} \
             whole ones; re-download it",
            thousands(promised),
            thousands(whole)
        ));
    } else if data.len() > promised * record {
        reasons.push(format!(
            "holds {} bytes after its {} images; they were ignored",
            thousands(data.len() - promised * record),
            thousands(promised)
        ));
    }
    let available_images = whole.min(promised);

    let labels = match labels {
        Ok(bytes) => bytes,
        Err(reason) => {
            reasons.push(format!(
                "{reason}; its {} images were not used",
                thousands(available_images)
            ));
            return (Vec::new(), reasons);
        }
    };
    let label_header = match parse_header(labels, 1, "labels") {
        Ok(header) => header,
        Err(reason) => {
            reasons.push(format!(
                "has a labels file that {reason}; its {} images were not used",
                thousands(available_images)
            ));
            return (Vec::new(), reasons);
        }
    };
    let label_count = label_header.dims[0] as usize;
    let label_bytes = &labels[label_header.data_offset..];
    if label_bytes.len() < label_count {
        reasons.push(format!(
            "has a truncated labels file: its header promises {} labels but it holds {}",
            thousands(label_count),
            thousands(label_bytes.len())
        ));
    }
    let available_labels = label_bytes.len().min(label_count);
    if promised != label_count {
        reasons.push(format!(
            "holds {} images but its labels file {} labels (a count mismatch); only the first \
             {} images were used",
            thousands(promised),
            thousands(label_count),
            thousands(available_images.min(available_labels))
        ));
    } else if available_labels < available_images {
        reasons.push(format!(
            "the last {} images have no label and were not used",
            thousands(available_images - available_labels)
        ));
    }
    let used = available_images.min(available_labels);

    let defaults;
    let names = match class_names {
        Some(names) => names,
        None => {
            defaults = self::class_names(false);
            &defaults
        }
    };
    let units = data
        .chunks_exact(record)
        .take(used)
        .zip(label_bytes)
        .enumerate()
        .map(|(index, (pixels, &label))| Unit {
            rel_path: format!("{}#{index:05}", file.rel_path),
            split: split.map(str::to_string),
            label: names
                .get(usize::from(label))
                .cloned()
                .unwrap_or_else(|| format!("label_{label}")),
            bytes: pixels,
            encoding: UnitEncoding::IdxGrey { rows, cols },
        })
        .collect();
    (units, reasons)
}

fn thousands(n: usize) -> String {
    crate::text::thousands(n as u64)
}

/// Turns `rows * cols` grey bytes into an RGB image (each channel the grey value).
pub fn decode_record(bytes: &[u8], rows: u32, cols: u32) -> Option<image::RgbImage> {
    let pixels = u64::from(rows) * u64::from(cols);
    if bytes.len() as u64 != pixels || pixels == 0 {
        return None;
    }
    let rgb: Vec<u8> = bytes.iter().flat_map(|&v| [v, v, v]).collect();
    image::RgbImage::from_raw(cols, rows, rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IDX images file of `count` records of `rows x cols`, record `i` filled with `i`.
    fn images_file(count: u32, rows: u32, cols: u32) -> Vec<u8> {
        let mut bytes = vec![0, 0, 8, 3];
        for d in [count, rows, cols] {
            bytes.extend(d.to_be_bytes());
        }
        for i in 0..count {
            bytes.extend(std::iter::repeat_n(i as u8, (rows * cols) as usize));
        }
        bytes
    }

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, 8, 1];
        bytes.extend((labels.len() as u32).to_be_bytes());
        bytes.extend(labels);
        bytes
    }

    fn write(path: &Path, bytes: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn fake_file(rel_path: &str) -> SourceFile {
        SourceFile {
            rel_path: rel_path.into(),
            abs_path: PathBuf::from(rel_path),
            size: 0,
            mtime_ns: 0,
            ino: 0,
            role: FileRole::IdxImages {
                split: Some("train".into()),
                labels_rel: "l".into(),
                labels_abs: PathBuf::from("l"),
            },
        }
    }

    fn reason_of<'d>(discovery: &'d Discovery, path: &str) -> &'d str {
        discovery
            .skipped
            .iter()
            .find(|n| n.path == path)
            .map(|n| n.reason.as_str())
            .unwrap_or_else(|| panic!("{path} not skipped: {:?}", discovery.skipped))
    }

    #[test]
    fn names_pair_images_with_labels() {
        let (kind, key) = parse_name("train-images-idx3-ubyte.gz").unwrap();
        assert_eq!(kind, Kind::Images);
        assert_eq!(parse_name("train-labels-idx1-ubyte").unwrap().1, key);
        assert_eq!(
            parse_name("train-images.idx3-ubyte").unwrap().1,
            parse_name("train-labels.idx1-ubyte").unwrap().1
        );
        assert_ne!(parse_name("t10k-labels-idx1-ubyte").unwrap().1, key);
        assert!(parse_name("train.bin").is_none());
        assert_eq!(split_of("t10k-images-idx3-ubyte"), Some("test"));
        assert_eq!(
            split_of("emnist-digits-train-images-idx3-ubyte"),
            Some("train")
        );
        assert_eq!(split_of("images-idx3-ubyte"), None);
    }

    #[test]
    fn mnist_files_are_found_with_splits_and_labels_noted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("mnist");
        write(
            &root.join("raw/train-images-idx3-ubyte"),
            &images_file(2, 2, 3),
        );
        write(
            &root.join("raw/train-labels-idx1-ubyte"),
            &labels_file(&[1, 7]),
        );
        write(
            &root.join("raw/t10k-images-idx3-ubyte"),
            &images_file(1, 2, 3),
        );
        write(&root.join("raw/t10k-labels-idx1-ubyte"), &labels_file(&[3]));
        write(
            &root.join("raw/t9-images-idx3-ubyte"),
            &images_file(1, 2, 3),
        );
        write(
            &root.join("raw/extra-labels-idx1-ubyte"),
            &labels_file(&[3]),
        );
        write(&root.join("README"), b"hi");

        let found = discover(&root).unwrap().expect("IDX");
        assert_eq!(found.kind, DatasetKind::Idx);
        assert_eq!(found.class_names.as_ref().unwrap()[7], "7");
        let files: Vec<(&str, &FileRole)> = found
            .files
            .iter()
            .map(|f| (f.rel_path.as_str(), &f.role))
            .collect();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].0, "raw/t10k-images-idx3-ubyte");
        assert!(
            matches!(files[1].1, FileRole::IdxImages { split: Some(s), labels_rel, .. }
            if s == "train" && labels_rel == "raw/train-labels-idx1-ubyte")
        );
        assert!(reason_of(&found, "raw/train-labels-idx1-ubyte").starts_with("labels of"));
        assert!(reason_of(&found, "raw/t9-images-idx3-ubyte").contains("without its labels"));
        assert!(reason_of(&found, "raw/extra-labels-idx1-ubyte").contains("without its images"));
        assert_eq!(reason_of(&found, "README"), "not part of an IDX dataset");
        assert_eq!(found.skipped.len(), 5, "{:?}", found.skipped);
    }

    #[test]
    fn fashion_in_the_folder_name_gives_fashion_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("FashionMNIST");
        write(&root.join("train-images-idx3-ubyte.gz"), b"x");
        write(&root.join("train-labels-idx1-ubyte.gz"), b"x");
        let found = discover(&root).unwrap().expect("IDX");
        assert_eq!(found.class_names.unwrap()[9], "Ankle boot");
    }

    #[test]
    fn a_folder_dataset_is_not_idx() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("cat/1.png"), b"png");
        assert!(discover(dir.path()).unwrap().is_none());
        assert!(discover(&dir.path().join("missing")).unwrap().is_none());
    }

    #[test]
    fn records_become_units_with_numbered_paths_and_grey_encoding() {
        let images = images_file(3, 2, 3);
        let labels = labels_file(&[0, 9, 200]);
        let file = fake_file("train-images-idx3-ubyte.gz");
        let (units, reasons) = units(&file, Some("train"), &images, Ok(&labels), None);
        assert!(reasons.is_empty(), "{reasons:?}");
        assert_eq!(units.len(), 3);
        assert_eq!(units[1].rel_path, "train-images-idx3-ubyte.gz#00001");
        assert_eq!(units[1].label, "9");
        assert_eq!(units[2].label, "label_200");
        assert_eq!(units[2].bytes, &[2u8; 6]);
        assert_eq!(
            units[0].encoding,
            UnitEncoding::IdxGrey { rows: 2, cols: 3 }
        );
        let image = decode_record(units[2].bytes, 2, 3).unwrap();
        assert_eq!(image.dimensions(), (3, 2));
        assert_eq!(image.get_pixel(2, 1).0, [2, 2, 2]);
    }

    #[test]
    fn truncated_images_keep_whole_records_and_say_why() {
        let mut images = images_file(3, 2, 2);
        images.truncate(images.len() - 3);
        let labels = labels_file(&[1, 2, 3]);
        let (units, reasons) = units(&fake_file("x"), None, &images, Ok(&labels), None);
        assert_eq!(units.len(), 2);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("truncated"), "{reasons:?}");
    }

    #[test]
    fn count_mismatch_uses_the_shorter_and_says_so() {
        let images = images_file(3, 1, 1);
        let labels = labels_file(&[1, 2]);
        let (units, reasons) = units(&fake_file("x"), None, &images, Ok(&labels), None);
        assert_eq!(units.len(), 2);
        assert!(reasons[0].contains("count mismatch"), "{reasons:?}");
    }

    #[test]
    fn bad_magic_and_missing_labels_give_no_units_and_a_reason() {
        let labels = labels_file(&[1]);
        let (units_a, reasons) = units(&fake_file("x"), None, b"PK\x03\x04junk", Ok(&labels), None);
        assert!(units_a.is_empty());
        assert!(reasons[0].contains("bad magic number"), "{reasons:?}");
        let images = images_file(1, 1, 1);
        let (units_b, reasons) = units(
            &fake_file("x"),
            None,
            &images,
            Ok(&images_file(1, 1, 1)),
            None,
        );
        assert!(units_b.is_empty());
        assert!(reasons[0].contains("labels file"), "{reasons:?}");
        let (units_c, reasons) = units(&fake_file("x"), None, &images, Err("gone".into()), None);
        assert!(units_c.is_empty());
        assert!(reasons[0].starts_with("gone"), "{reasons:?}");
    }

    #[test]
    fn a_lying_header_cannot_claim_huge_records() {
        let mut images = vec![0, 0, 8, 3];
        for d in [u32::MAX, u32::MAX, u32::MAX] {
            images.extend(d.to_be_bytes());
        }
        let (units, reasons) = units(&fake_file("x"), None, &images, Ok(&[]), None);
        assert!(units.is_empty());
        assert!(reasons[0].contains("pixels"), "{reasons:?}");
    }
}
