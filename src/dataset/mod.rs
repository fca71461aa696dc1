//! Where images come from: discovering a dataset on disk and cutting its files into units.
//!
//! Discovery only lists and stats files; it never decodes. Five layouts are understood:
//! folder-per-class (`root/<class>/...` or `root/<split>/<class>/...`, see [`folder`]), the
//! CIFAR-10/100 binary batches (see [`cifar`]), MNIST-style IDX files (see [`idx`]),
//! WebDataset tar shards (see [`webdataset`]) and CSV / JSON Lines manifests naming each
//! image's file, label and split (see [`manifest`]). A *source file* is one file on disk; a
//! *unit* is one image inside it (a folder dataset has one unit per file, a CIFAR batch has
//! 10,000, an IDX images file one per record, a shard one per image member).
//!
//! Auto-detection tries, in this order: CIFAR batches (their names are fixed), IDX files
//! (`*-images-idx3-ubyte[.gz]`), WebDataset shards (`.tar`, `.tar.gz`, `.tgz` in the root or
//! its split folders, and nothing else that could be a class folder), a manifest, and last
//! a folder per class. `--layout` / `dataset.layout` forces one.
//!
//! A source file may be compressed (a gzip IDX file, a `.tar.gz` shard): [`Payload::of`]
//! unpacks it, with a bound on the unpacked size, before [`units_of`] cuts it.
//!
//! Invariants:
//! - every file found under the root ends up either in `files` or in `skipped`, never both,
//!   never neither; every unit a file holds is a unit or a problem note of its own; the one
//!   exception is aldente's own review file at the root ([`REVIEW_FILE`]), which only the
//!   report reads: listing it would make writing a judgement change ingest's fingerprint and
//!   so look like a change to the data;
//! - relative paths use `/` separators and are relative to the dataset root, so nothing that
//!   depends on where the dataset lives leaks into a fingerprint.

pub mod cifar;
pub mod folder;
pub mod idx;
pub mod manifest;
pub mod webdataset;

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::cli::Layout;
use crate::config::DatasetConfig;

/// The review file (see the `review` module) at the dataset root: never an image, never
/// listed by discovery.
pub const REVIEW_FILE: &str = "aldente-review.json";

/// Whether a walk entry is the review file at the root (depth 1).
pub(crate) fn is_review_file(depth: usize, name: &str) -> bool {
    depth == 1 && name == REVIEW_FILE
}

/// A regular file found by [`walk_regular_files`], for a layout's reader to decide about.
pub(crate) struct WalkedFile {
    pub entry: walkdir::DirEntry,
    /// Relative to the root, `/` separators.
    pub rel_path: String,
    pub name: String,
}

impl WalkedFile {
    pub fn note(&self, reason: &str) -> FileNote {
        FileNote {
            path: self.rel_path.clone(),
            reason: reason.to_string(),
        }
    }
}

/// The walk the layouts whose images live inside bigger files share (CIFAR batches, IDX
/// files, WebDataset shards): everything under `root` in file-name order, links not
/// followed. Every regular file goes to `on_file`; everything else is noted in `skipped` with
/// its reason (could not be listed, hidden folder or file, symbolic link, not a regular file,
/// aldente's output folder `exclude`), except the review file at the root, which is nobody's.
pub(crate) fn walk_regular_files(
    root: &Path,
    exclude: Option<&Path>,
    skipped: &mut Vec<FileNote>,
    mut on_file: impl FnMut(WalkedFile, &mut Vec<FileNote>),
) {
    let mut walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                let path = match err
                    .path()
                    .map(|p| rel_string(p.strip_prefix(root).unwrap_or(p)))
                {
                    Some(rel) if !rel.is_empty() => rel,
                    _ => ".".to_string(),
                };
                // The io error alone: walkdir's own message names the absolute path, which must
                // not leak into notes that end up in report.json.
                let cause = err
                    .io_error()
                    .map_or_else(|| err.to_string(), ToString::to_string);
                skipped.push(FileNote {
                    path,
                    reason: format!("could not be listed: {cause}"),
                });
                continue;
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        let file = WalkedFile {
            rel_path: rel_string(entry.path().strip_prefix(root).unwrap_or(entry.path())),
            name: entry.file_name().to_string_lossy().into_owned(),
            entry,
        };
        let file_type = file.entry.file_type();
        if file_type.is_dir() {
            if exclude.is_some_and(|ex| same_dir(file.entry.path(), ex)) {
                skipped.push(file.note("aldente's output folder (not searched)"));
                walk.skip_current_dir();
            } else if file.name.starts_with('.') {
                skipped.push(file.note("hidden folder (not searched)"));
                walk.skip_current_dir();
            }
            continue;
        }
        if is_review_file(file.entry.depth(), &file.name) {
            continue;
        }
        let reason = if file.name.starts_with('.') {
            "hidden file"
        } else if file_type.is_symlink() {
            "symbolic link (links are not followed)"
        } else if !file_type.is_file() {
            "not a regular file"
        } else {
            on_file(file, skipped);
            continue;
        };
        skipped.push(file.note(reason));
    }
}

/// Whether two paths name the same folder (both must exist).
pub(crate) fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Split folder names recognised in a folder-per-class dataset, lower-cased.
pub const SPLIT_NAMES: &[&str] = &[
    "train",
    "training",
    "val",
    "valid",
    "validation",
    "dev",
    "test",
    "testing",
];

/// File extensions that promise an image.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "jfif", "png", "apng", "gif", "bmp", "dib", "tif", "tiff", "webp", "pnm",
    "pbm", "pgm", "ppm", "pam", "tga", "dds", "ico", "hdr", "exr", "qoi", "ff", "avif",
];

pub fn has_image_extension(path: &str) -> bool {
    path.rsplit_once('.')
        .map(|(_, ext)| IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Which layout the dataset has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatasetKind {
    /// `root/<class>/<image>` or `root/<split>/<class>/<image>`.
    Folder { has_splits: bool },
    /// CIFAR-10 binary batches (`data_batch_N.bin`, `test_batch.bin`).
    Cifar10,
    /// CIFAR-100 binary batches (`train.bin`, `test.bin`), labelled with the fine label.
    Cifar100,
    /// A CSV or JSON Lines manifest (its file name), one row per image.
    Manifest { file: String, has_splits: bool },
    /// MNIST-style IDX files: `*-images-idx3-ubyte[.gz]` with `*-labels-idx1-ubyte[.gz]`.
    Idx,
    /// WebDataset tar shards: members grouped by key, labels from `.cls` / `.json` / `.txt`.
    WebDataset,
}

impl DatasetKind {
    pub fn describe(&self) -> &'static str {
        match self {
            DatasetKind::Manifest {
                has_splits: true, ..
            } => "manifest (path, label, split)",
            DatasetKind::Manifest { .. } => "manifest (path, label)",
            DatasetKind::Folder { has_splits: true } => "folder per class, with split folders",
            DatasetKind::Folder { has_splits: false } => "folder per class",
            DatasetKind::Cifar10 => "CIFAR-10 binary batches",
            DatasetKind::Cifar100 => "CIFAR-100 binary batches",
            DatasetKind::Idx => "IDX files (MNIST format)",
            DatasetKind::WebDataset => "WebDataset tar shards",
        }
    }
}

/// What a source file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileRole {
    /// One image file; its label and split come from the folders it sits in. Shared
    /// strings: 60,000 files of ten classes hold ten label strings, not 60,000.
    Image {
        split: Option<Arc<str>>,
        label: Arc<str>,
    },
    /// A CIFAR binary batch; labels come from the record bytes.
    CifarBatch { split: String },
    /// An IDX images file; labels come from its labels file, read beside it.
    IdxImages {
        split: Option<String>,
        /// The labels file, relative to the root (for messages) and where to read it.
        labels_rel: String,
        labels_abs: PathBuf,
    },
    /// A WebDataset shard (a tar archive, maybe gzip-compressed), and the `.json` field
    /// its labels are read from when set (`dataset.label_field`).
    Shard {
        split: Option<String>,
        label_field: Option<String>,
    },
}

/// One file on disk that holds images, with the identity used by the stat cache.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Relative to the dataset root, `/` separators, lossy for names that are not UTF-8.
    pub rel_path: String,
    /// Where to read it from. Never stored in the cache.
    pub abs_path: PathBuf,
    pub size: u64,
    /// Modification time in nanoseconds since the epoch (0 where unknown).
    pub mtime_ns: i128,
    /// Inode number (0 where the platform has none). For a file whose units depend on a
    /// second file (an IDX images file and its labels file), a digest of both files'
    /// identities, and `mtime_ns` the later of the two: the stat cache then trusts the pair
    /// only while neither changed.
    pub ino: u64,
    pub role: FileRole,
}

/// A file that was found but is not analysed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileNote {
    pub path: String,
    pub reason: String,
}

/// The result of looking at a dataset folder, before anything is read.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub kind: DatasetKind,
    pub files: Vec<SourceFile>,
    pub skipped: Vec<FileNote>,
    /// Class names in label-index order, for layouts whose labels are numbers (CIFAR).
    /// `None` for folder datasets, whose class names are the folder names.
    pub class_names: Option<Vec<String>>,
}

/// How a unit's bytes are to be decoded. Stored in the stat cache: variants are only ever
/// added at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnitEncoding {
    /// An encoded image file (JPEG, PNG, ...), or something claiming to be one.
    File,
    /// 3,072 bytes of planar 32x32 RGB from a CIFAR batch.
    CifarRecord,
    /// `rows * cols` bytes of 8-bit grey, row-major, from an IDX images file.
    IdxGrey { rows: u32, cols: u32 },
}

/// One image inside a source file: its name, label and bytes.
#[derive(Debug, Clone)]
pub struct Unit<'a> {
    pub rel_path: String,
    pub split: Option<String>,
    pub label: String,
    pub bytes: &'a [u8],
    pub encoding: UnitEncoding,
}

/// Looks at `root` (a folder, or a manifest file) and lists what is in it. Unless
/// `config.layout` forces one, CIFAR batches win over IDX files, IDX files over WebDataset
/// shards, shards over a manifest, and a manifest over folders. `exclude` is aldente's
/// output folder, never searched when it sits inside the dataset.
pub fn discover(
    root: &Path,
    config: &DatasetConfig,
    follow_symlinks: bool,
    exclude: Option<&Path>,
) -> Result<Discovery> {
    let layout = config.layout;
    if matches!(layout, Layout::Auto | Layout::Cifar) && root.is_dir() {
        if let Some(found) = cifar::discover(root)? {
            return Ok(found);
        }
        if layout == Layout::Cifar {
            bail!(
                "--layout cifar: {} holds no CIFAR batches (data_batch_1.bin ... \
                 test_batch.bin, or train.bin and test.bin)",
                root.display()
            );
        }
    }
    if matches!(layout, Layout::Auto | Layout::Idx) && root.is_dir() {
        if let Some(found) = idx::discover(root)? {
            return Ok(found);
        }
        if layout == Layout::Idx {
            bail!(
                "--layout idx: {} holds no IDX images file (like train-images-idx3-ubyte or \
                 train-images-idx3-ubyte.gz, at its top level or one folder down)",
                root.display()
            );
        }
    }
    if matches!(layout, Layout::Auto | Layout::Webdataset) && root.is_dir() {
        let forced = layout == Layout::Webdataset;
        if let Some(found) =
            webdataset::discover(root, forced, config.label_field.as_deref(), exclude)?
        {
            return Ok(found);
        }
        if forced {
            bail!(
                "--layout webdataset: {} holds no tar shards (.tar, .tar.gz or .tgz files at \
                 its top level or in split folders such as train/)",
                root.display()
            );
        }
    }
    if matches!(layout, Layout::Auto | Layout::Manifest)
        && let Some(file) = manifest::find(root, config, layout == Layout::Manifest)?
    {
        return manifest::discover(&file, config, follow_symlinks, exclude);
    }
    folder::discover_with(root, follow_symlinks, exclude)
}

/// Most bytes a compressed source file may unpack to (1 GiB): a gzip bomb stops there, and
/// the file yields the units in what was unpacked, with a note saying so.
pub const MAX_UNPACKED_BYTES: u64 = 1 << 30;

/// A source file's bytes ready to be cut into units: borrowed as read, or unpacked from
/// gzip. `problem` says why the unpacked bytes may be incomplete.
pub struct Payload<'a> {
    pub bytes: Cow<'a, [u8]>,
    pub problem: Option<String>,
}

impl<'a> Payload<'a> {
    /// The bytes of `file` as its layout reads them: only IDX files and shards may be
    /// compressed. An image file is never unpacked (a gzip file in a class folder is "not an
    /// image", as it always was, and its content hash stays that of its bytes).
    pub fn for_file(file: &SourceFile, bytes: &'a [u8]) -> Payload<'a> {
        match file.role {
            FileRole::IdxImages { .. } | FileRole::Shard { .. } => Payload::of(bytes),
            FileRole::Image { .. } | FileRole::CifarBatch { .. } => Payload {
                bytes: Cow::Borrowed(bytes),
                problem: None,
            },
        }
    }

    /// Unpacks `bytes` when they are gzip (by their magic number, whatever the name says);
    /// else borrows them.
    pub fn of(bytes: &'a [u8]) -> Payload<'a> {
        if !is_gzip(bytes) {
            return Payload {
                bytes: Cow::Borrowed(bytes),
                problem: None,
            };
        }
        let (unpacked, problem) = gunzip(bytes, MAX_UNPACKED_BYTES);
        Payload {
            bytes: Cow::Owned(unpacked),
            problem,
        }
    }
}

/// Whether `bytes` start with gzip's magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Unpacks gzip `bytes` (every member, as `gzip -d` does), at most `limit` bytes of them.
/// A damaged or truncated stream gives what came before the damage and the reason.
pub fn gunzip(bytes: &[u8], limit: u64) -> (Vec<u8>, Option<String>) {
    let mut out = Vec::new();
    let decoder = flate2::read::MultiGzDecoder::new(bytes);
    // One byte past the limit tells "exactly the limit" apart from "more".
    let result = decoder.take(limit + 1).read_to_end(&mut out);
    let problem = match result {
        Err(err) => Some(format!(
            "the gzip data is damaged or truncated after {} unpacked bytes ({err}); \
             re-download the file",
            crate::text::thousands(out.len() as u64)
        )),
        Ok(_) if out.len() as u64 > limit => {
            out.truncate(limit as usize);
            Some(format!(
                "unpacks to more than {} bytes; only the first {} were read",
                crate::text::thousands(limit),
                crate::text::thousands(limit)
            ))
        }
        Ok(_) => None,
    };
    (out, problem)
}

/// Cuts a source file's (unpacked) bytes into units. What cannot be cut (a truncated CIFAR
/// batch, an IDX file whose header lies, a shard member without a label) yields the units
/// it can and a note for the rest: on the file, or on the member it names.
pub fn units_of<'a>(
    file: &SourceFile,
    payload: &'a Payload<'_>,
    discovery: &Discovery,
) -> (Vec<Unit<'a>>, Vec<FileNote>) {
    let bytes: &'a [u8] = &payload.bytes;
    let on_file = |reason: String| FileNote {
        path: file.rel_path.clone(),
        reason,
    };
    let mut notes: Vec<FileNote> = payload.problem.clone().map(on_file).into_iter().collect();
    let units = match &file.role {
        FileRole::Image { split, label } => vec![Unit {
            rel_path: file.rel_path.clone(),
            split: split.as_deref().map(str::to_string),
            label: label.to_string(),
            bytes,
            encoding: UnitEncoding::File,
        }],
        FileRole::CifarBatch { split } => {
            let (units, reason) = cifar::units(
                file,
                split,
                bytes,
                &discovery.kind,
                discovery.class_names.as_deref(),
            );
            notes.extend(reason.map(on_file));
            units
        }
        FileRole::IdxImages {
            split,
            labels_rel,
            labels_abs,
        } => {
            let read = std::fs::read(labels_abs);
            let unpacked = read.as_deref().map(Payload::of);
            let labels = match &unpacked {
                Ok(unpacked) => {
                    if let Some(problem) = &unpacked.problem {
                        notes.push(on_file(format!("its labels file {labels_rel}: {problem}")));
                    }
                    Ok(unpacked.bytes.as_ref())
                }
                Err(err) => Err(format!(
                    "its labels file {labels_rel} could not be read: {err}"
                )),
            };
            let (units, reasons) = idx::units(
                file,
                split.as_deref(),
                bytes,
                labels,
                discovery.class_names.as_deref(),
            );
            notes.extend(reasons.into_iter().map(on_file));
            units
        }
        FileRole::Shard { split, label_field } => {
            let (units, member_notes) =
                webdataset::units(file, split.as_deref(), label_field.as_deref(), bytes);
            notes.extend(member_notes);
            units
        }
    };
    (units, notes)
}

/// Turns a path relative to the root into the `/`-separated string used everywhere.
/// Names that are not valid UTF-8 are shown lossily (U+FFFD) but stay visible.
pub fn rel_string(rel: &Path) -> String {
    #[cfg(unix)]
    {
        // Already `/`-separated; avoids splitting into components (measurable at 60k files).
        rel.to_string_lossy().into_owned()
    }
    #[cfg(not(unix))]
    {
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        parts.join("/")
    }
}

/// Size, mtime (ns) and inode of a file, for the stat cache.
pub fn stat_identity(meta: &std::fs::Metadata) -> (u64, i128, u64) {
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let ino = 0;
    (meta.len(), mtime_ns, ino)
}
