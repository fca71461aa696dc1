//! Stage 1, ingest: find every file, read and hash it, decode each image once, and keep the
//! per-image facts and a small thumbnail for the later stages.
//!
//! Two levels of per-file caching make reruns cheap:
//! 1. the stat cache ([`crate::cache::statcache`]) maps a file's path and identity to its
//!    content hash, so an unchanged file is not even read;
//! 2. the previous artifact maps content hash to decoded facts and thumbnail, so a changed
//!    *name* (a relabel: moving a file to another class folder) costs one read and no decode,
//!    and a changed file costs exactly one decode.
//!
//! The stage's fingerprint is built from content hashes, paths and labels — never from
//! mtimes or absolute paths. Invariant: every file discovery found ends up in exactly one of
//! `images`, `rejected` (unreadable or not an image) or the discovery's skipped list.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{Xxh3, xxh3_64, xxh3_128};

use crate::cache::statcache::{CachedUnit, StatCache, StatEntry};
use crate::cache::{FingerprintInputs, fingerprint::FolderSummary};
use crate::config::IngestConfig;
use crate::dataset::{self, DatasetKind, Discovery, FileNote, FileRole, SPLIT_NAMES, UnitEncoding};
use crate::decode::{self, DecodeOptions, Outcome};
use crate::progress::Progress;
use crate::stage::Stage;

pub const STAGE: Stage = Stage::Ingest;
/// Bump when what ingest measures or stores changes.
/// 2: the artifact records the decode settings, and cache files end with a checksum.
pub const VERSION: u32 = 2;

/// One analysed image: where it is, what it is labelled, and what decoding it showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Relative to the dataset root, `/` separators (`data_batch_1.bin#00042` for CIFAR).
    pub path: String,
    pub split: Option<String>,
    pub label: String,
    pub content_hash: u128,
    pub file_size: u64,
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub color: String,
    pub pixel_hash: u128,
    pub channel_sum: [u64; 3],
    pub channel_sumsq: [u64; 3],
    pub thumb_width: u16,
    pub thumb_height: u16,
    /// Byte offset of the RGB thumbnail in `thumbs.bin`.
    pub thumb_offset: u64,
}

impl ImageRecord {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Why a found unit was not analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectKind {
    /// Meant to be an image but could not be decoded: a finding, listed as unreadable.
    Unreadable,
    /// Not an image at all: listed as skipped.
    NotImage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub path: String,
    pub split: Option<String>,
    pub label: String,
    /// 0 when the file could not even be read.
    pub content_hash: u128,
    pub kind: RejectKind,
    pub reason: String,
}

/// The ingest artifact: the image table and what was not analysed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestArtifact {
    pub kind: DatasetKind,
    /// Class names: CIFAR's in label order, folder names sorted otherwise.
    pub classes: Vec<String>,
    /// Split names in the usual order (train before val before test); empty without splits.
    pub splits: Vec<String>,
    pub images: Vec<ImageRecord>,
    pub rejected: Vec<Rejected>,
    /// Found by discovery but not read (hidden files, OS litter, files outside class folders).
    pub skipped: Vec<FileNote>,
    pub thumbs_len: u64,
    pub thumbs_digest: u64,
    /// The limits and thumbnail size these results were decoded with: a later run with other
    /// settings may reuse only what those settings cannot change.
    pub decoded_with: DecodeOptions,
}

/// The artifact with its thumbnails.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub artifact: IngestArtifact,
    thumbs: Thumbs,
    /// The thumbnails are exactly the previous run's `thumbs.bin`, read from it and checked
    /// against its digest, with the records pointing into it where they were: a build that
    /// decoded nothing (a relabel, a rename, a deletion). Saving then leaves that file as it
    /// is instead of writing its 184 MB (CIFAR-10) again in the new image order.
    pub thumbs_file_unchanged: bool,
}

/// The thumbnails, wherever they sit in memory: one buffer when loaded from `thumbs.bin`;
/// after a build, the decoder's own buffers and the previous run's buffer, not copied.
///
/// Copying them into one buffer touched 184 MB of fresh memory for CIFAR-10; on the
/// benchmark machine (a VM) that costs up to 1 ms per MB: up to 0.6 s of a 2-3 s cold
/// ingest in bench/cifar10.sh.
#[derive(Debug, Clone)]
struct Thumbs {
    buffers: Vec<Vec<u8>>,
    /// Per image: the buffer and the offset of its thumbnail in it.
    at: Vec<(u32, usize)>,
}

impl Ingested {
    /// An ingest result whose thumbnails lie in one buffer at the records' `thumb_offset`s
    /// (as in `thumbs.bin`).
    pub fn new(artifact: IngestArtifact, thumbs: Vec<u8>) -> Ingested {
        let at = artifact
            .images
            .iter()
            .map(|record| (0, record.thumb_offset as usize))
            .collect();
        Ingested {
            artifact,
            thumbs: Thumbs {
                buffers: vec![thumbs],
                at,
            },
            thumbs_file_unchanged: false,
        }
    }

    /// The RGB thumbnail of image `index` (at full resolution when the image is small).
    pub fn thumb(&self, index: usize) -> image::RgbImage {
        let record = &self.artifact.images[index];
        let (w, h) = (
            u32::from(record.thumb_width),
            u32::from(record.thumb_height),
        );
        image::RgbImage::from_raw(w, h, self.thumb_bytes(index).to_vec())
            .unwrap_or_else(|| image::RgbImage::new(1, 1))
    }

    /// The raw RGB bytes of image `index`'s thumbnail.
    pub fn thumb_bytes(&self, index: usize) -> &[u8] {
        let record = &self.artifact.images[index];
        let (buffer, start) = self.thumbs.at[index];
        let len = usize::from(record.thumb_width) * usize::from(record.thumb_height) * 3;
        &self.thumbs.buffers[buffer as usize][start..start + len]
    }

    /// Images analysed plus units rejected: everything ingest looked inside.
    pub fn units_found(&self) -> usize {
        self.artifact.images.len() + self.artifact.rejected.len()
    }
}

/// One unit found by the scan, with its content hash. Deliberately small and free of
/// strings for plain image files (their name, label and split are the file's), so a warm
/// rerun over 60,000 files allocates almost nothing.
#[derive(Debug, Clone)]
pub struct ScannedUnit {
    /// Index of its source file in the discovery.
    pub file_index: usize,
    /// Position among the units of that file.
    pub unit_index: usize,
    pub content_hash: u128,
    pub size: u64,
    pub encoding: UnitEncoding,
    /// A unit inside a container (a CIFAR record) has a name and label of its own.
    pub named: Option<Box<UnitName>>,
}

#[derive(Debug, Clone)]
pub struct UnitName {
    pub rel_path: String,
    pub split: Option<String>,
    pub label: String,
}

/// What the scan found: every unit with its content hash, and the files that could not be read.
pub struct Scan {
    pub discovery: Discovery,
    pub units: Vec<ScannedUnit>,
    /// Files that could not be read at all, or whose container is damaged.
    pub file_problems: Vec<FileNote>,
    /// Outcomes already decoded during the scan (cold runs decode while the bytes are at
    /// hand), aligned with `units`.
    pub predecoded: Vec<Option<Outcome>>,
    /// The stat cache to save, or `None` when it did not change (no file had to be read).
    pub stat_cache: Option<StatCache>,
    pub files_read: usize,
}

impl Scan {
    pub fn path<'a>(&'a self, unit: &'a ScannedUnit) -> &'a str {
        match &unit.named {
            Some(name) => &name.rel_path,
            None => &self.discovery.files[unit.file_index].rel_path,
        }
    }

    pub fn label<'a>(&'a self, unit: &'a ScannedUnit) -> &'a str {
        match (&unit.named, &self.discovery.files[unit.file_index].role) {
            (Some(name), _) => &name.label,
            (None, FileRole::Image { label, .. }) => label,
            (None, _) => "",
        }
    }

    pub fn split<'a>(&'a self, unit: &'a ScannedUnit) -> Option<&'a str> {
        match (&unit.named, &self.discovery.files[unit.file_index].role) {
            (Some(name), _) => name.split.as_deref(),
            (None, FileRole::Image { split, .. }) => split.as_deref(),
            (None, FileRole::CifarBatch { split }) => Some(split),
            (None, FileRole::IdxImages { split, .. } | FileRole::Shard { split, .. }) => {
                split.as_deref()
            }
        }
    }
}

/// Counters for the run log and the tests.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IngestCounts {
    pub files: usize,
    /// Files read and hashed because the stat cache could not vouch for them. A file that
    /// then needs decoding is read once more (decoding is deferred until the fingerprint
    /// says ingest is stale; re-reading one file costs far less than decoding it).
    pub files_read: usize,
    pub units: usize,
    pub decoded: usize,
    pub reused: usize,
}

/// Lists, reads (where the stat cache cannot vouch for a file) and hashes every unit.
/// With `decode_now`, units are decoded as soon as their bytes are read (cold runs).
pub fn scan(
    discovery: Discovery,
    old_stat: &StatCache,
    decode_now: Option<DecodeOptions>,
    progress: &Progress,
) -> Scan {
    let scan_started = now_ns();
    let previous = previous_entries(&discovery, old_stat);
    let bar = progress.bar(discovery.files.len() as u64, "ingest");
    let files_read = AtomicUsize::new(0);

    enum FileScan<'a> {
        /// The stat cache vouches for the file: nothing was read.
        Trusted(&'a StatEntry),
        Read {
            entry: StatEntry,
            units: Vec<(CachedUnit, Option<Outcome>)>,
        },
        Failed(String),
    }

    let per_file: Vec<FileScan> = discovery
        .files
        .par_iter()
        .enumerate()
        .map(|(index, file)| {
            bar.inc(1);
            if let Some(entry) = previous[index]
                && old_stat.trusts(entry, file.size, file.mtime_ns, file.ino)
            {
                return FileScan::Trusted(entry);
            }
            let bytes = match crate::fsutil::read_sized(&file.abs_path, file.size) {
                Ok(bytes) => bytes,
                Err(err) => {
                    return FileScan::Failed(
                        if err.kind() == std::io::ErrorKind::PermissionDenied {
                            "could not be read: permission denied (check the file's permissions)"
                                .to_string()
                        } else {
                            format!("could not be read: {err}")
                        },
                    );
                }
            };
            files_read.fetch_add(1, Ordering::Relaxed);
            let payload = dataset::Payload::for_file(file, &bytes);
            let (units, notes) = dataset::units_of(file, &payload, &discovery);
            let units: Vec<(CachedUnit, Option<Outcome>)> = units
                .iter()
                .map(|unit| {
                    let cached = CachedUnit {
                        rel_path: unit.rel_path.clone(),
                        split: unit.split.clone(),
                        label: unit.label.clone(),
                        content_hash: xxh3_128(unit.bytes),
                        size: unit.bytes.len() as u64,
                        encoding: unit.encoding,
                    };
                    let outcome = decode_now.map(|options| {
                        decode::decode(&unit.rel_path, unit.bytes, unit.encoding, options)
                    });
                    (cached, outcome)
                })
                .collect();
            let single = matches!(file.role, FileRole::Image { .. });
            let entry = StatEntry {
                rel_path: file.rel_path.clone(),
                size: file.size,
                mtime_ns: file.mtime_ns,
                ino: file.ino,
                content_hash: if single {
                    units.first().map_or(0, |(u, _)| u.content_hash)
                } else {
                    0
                },
                units: if single {
                    Vec::new()
                } else {
                    units.iter().map(|(u, _)| u.clone()).collect()
                },
                notes,
            };
            FileScan::Read { entry, units }
        })
        .collect();
    bar.finish_and_clear();

    let files_read = files_read.into_inner();
    let unchanged = files_read == 0
        && per_file.len() == old_stat.entries.len()
        && per_file.iter().all(|f| matches!(f, FileScan::Trusted(_)));
    let mut units = Vec::with_capacity(discovery.files.len());
    let mut predecoded = Vec::with_capacity(discovery.files.len());
    let mut file_problems = Vec::new();
    let mut entries = Vec::with_capacity(if unchanged { 0 } else { per_file.len() });
    for (file_index, (file, scanned)) in discovery.files.iter().zip(per_file).enumerate() {
        let single = matches!(file.role, FileRole::Image { .. });
        let (cached_units, notes) = match scanned {
            FileScan::Failed(reason) => {
                file_problems.push(FileNote {
                    path: file.rel_path.clone(),
                    reason,
                });
                continue;
            }
            FileScan::Trusted(entry) => {
                if !unchanged {
                    entries.push(entry.clone());
                }
                if single {
                    units.push(ScannedUnit {
                        file_index,
                        unit_index: 0,
                        content_hash: entry.content_hash,
                        size: file.size,
                        encoding: UnitEncoding::File,
                        named: None,
                    });
                    predecoded.push(None);
                    (Vec::new(), entry.notes.clone())
                } else {
                    let cached = entry.units.iter().map(|u| (u.clone(), None)).collect();
                    (cached, entry.notes.clone())
                }
            }
            FileScan::Read { entry, units } => {
                let notes = entry.notes.clone();
                entries.push(entry);
                (units, notes)
            }
        };
        file_problems.extend(notes);
        for (unit_index, (unit, outcome)) in cached_units.into_iter().enumerate() {
            let encoding = unit.encoding;
            units.push(ScannedUnit {
                file_index,
                unit_index,
                content_hash: unit.content_hash,
                size: unit.size,
                encoding,
                named: (!single).then(|| {
                    Box::new(UnitName {
                        rel_path: unit.rel_path,
                        split: unit.split,
                        label: unit.label,
                    })
                }),
            });
            predecoded.push(outcome);
        }
    }
    Scan {
        discovery,
        units,
        file_problems,
        predecoded,
        stat_cache: (!unchanged).then_some(StatCache {
            scanned_at_ns: scan_started,
            entries,
        }),
        files_read,
    }
}

/// For each discovered file, its entry in the previous stat cache. Both lists are sorted by
/// path, so a merge finds them without building a hash map over 60,000 paths.
fn previous_entries<'a>(
    discovery: &Discovery,
    old_stat: &'a StatCache,
) -> Vec<Option<&'a StatEntry>> {
    let sorted = old_stat
        .entries
        .windows(2)
        .all(|w| w[0].rel_path < w[1].rel_path);
    if !sorted {
        let index = old_stat.index();
        return discovery
            .files
            .iter()
            .map(|f| index.get(f.rel_path.as_str()).copied())
            .collect();
    }
    let mut entries = old_stat.entries.iter().peekable();
    discovery
        .files
        .iter()
        .map(|file| {
            while entries
                .peek()
                .is_some_and(|e| e.rel_path.as_str() < file.rel_path.as_str())
            {
                entries.next();
            }
            entries
                .peek()
                .filter(|e| e.rel_path == file.rel_path)
                .copied()
        })
        .collect()
}

/// The ingest fingerprint: config, layout, and per folder the names, labels and content
/// hashes of its units. Relabelling, adding, removing or changing a file changes it;
/// touching a file's mtime does not.
pub fn fingerprint(scan: &Scan, config: &IngestConfig) -> FingerprintInputs {
    let mut folders: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    // Units arrive grouped by folder: accumulate one folder at a time.
    let mut current: Option<(&str, u64, Xxh3)> = None;
    for unit in &scan.units {
        let path = scan.path(unit);
        let folder = folder_of(path);
        if current.as_ref().is_some_and(|(name, _, _)| *name != folder)
            && let Some((name, count, hasher)) = current.take()
        {
            merge_folder(&mut folders, name, count, hasher);
        }
        let (_, count, hasher) = current.get_or_insert_with(|| (folder, 0, Xxh3::new()));
        *count += 1;
        hasher.update(path.as_bytes());
        hasher.update(&[0]);
        hasher.update(scan.split(unit).unwrap_or("").as_bytes());
        hasher.update(&[0]);
        hasher.update(scan.label(unit).as_bytes());
        hasher.update(&[0]);
        hasher.update(&unit.content_hash.to_le_bytes());
    }
    if let Some((name, count, hasher)) = current {
        merge_folder(&mut folders, name, count, hasher);
    }
    let mut inputs = FingerprintInputs::new(STAGE, VERSION, config);
    inputs.folders = folders
        .into_iter()
        .map(|(folder, (count, digest))| {
            (
                folder,
                FolderSummary {
                    count,
                    digest: format!("{digest:016x}"),
                },
            )
        })
        .collect();
    inputs
        .with_extra("dataset layout", format!("{:?}", scan.discovery.kind))
        .with_extra("class names", digest_json(&scan.discovery.class_names))
        .with_extra("skipped files", digest_json(&scan.discovery.skipped))
        .with_extra("unreadable files", digest_json(&scan.file_problems))
}

/// Decodes what is new, reuses what is known, and assembles the artifact.
pub fn build(
    mut scan: Scan,
    previous: Option<Ingested>,
    options: DecodeOptions,
    progress: &Progress,
) -> Result<(Ingested, IngestCounts)> {
    // Content hash -> where the previous run left its result.
    enum Known {
        Image(usize),
        Rejected(usize),
    }
    let mut known: HashMap<u128, Known> = HashMap::new();
    if let Some(previous) = &previous {
        // Regression guard: raising --max-pixels used to reuse the cached "over the decode
        // limit" verdicts, and a new thumbnail size reused old thumbnails. A previous result
        // is reused only where the current settings would give the same one.
        let then = previous.artifact.decoded_with;
        let images_reusable = then.thumbnail_size == options.thumbnail_size;
        let rejections_reusable = then.max_pixels == options.max_pixels;
        for (i, record) in previous.artifact.images.iter().enumerate() {
            if images_reusable && record.pixels() <= options.max_pixels {
                known.insert(record.content_hash, Known::Image(i));
            }
        }
        for (i, rejected) in previous.artifact.rejected.iter().enumerate() {
            if rejections_reusable && rejected.content_hash != 0 {
                known
                    .entry(rejected.content_hash)
                    .or_insert(Known::Rejected(i));
            }
        }
    }

    // Which units need a decode, grouped by source file so each file is read once.
    let mut needed: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, unit) in scan.units.iter().enumerate() {
        if scan.predecoded[i].is_none() && !known.contains_key(&unit.content_hash) {
            needed.entry(unit.file_index).or_default().push(i);
        }
    }
    let to_decode: usize = needed.values().map(Vec::len).sum();
    let bar = progress.bar(to_decode as u64, "decode");
    let decoded: Vec<(usize, Outcome)> = needed
        .par_iter()
        .flat_map_iter(|(&file_index, unit_ids)| {
            let file = &scan.discovery.files[file_index];
            let results: Vec<(usize, Outcome)> =
                match crate::fsutil::read_sized(&file.abs_path, file.size) {
                    Err(err) => unit_ids
                        .iter()
                        .map(|&i| (i, Outcome::Unreadable(format!("could not be read: {err}"))))
                        .collect(),
                    Ok(bytes) => {
                        let payload = dataset::Payload::for_file(file, &bytes);
                        let (units, _) = dataset::units_of(file, &payload, &scan.discovery);
                        unit_ids
                            .iter()
                            .map(|&i| {
                                let wanted = &scan.units[i];
                                let outcome = match units.get(wanted.unit_index) {
                                    // The file changed between scan and decode: hash mismatch
                                    // would store wrong facts under this hash, so refuse.
                                    Some(unit) if xxh3_128(unit.bytes) == wanted.content_hash => {
                                        decode::decode(
                                            &unit.rel_path,
                                            unit.bytes,
                                            unit.encoding,
                                            options,
                                        )
                                    }
                                    _ => Outcome::Unreadable(
                                        "the file changed while aldente was reading it; run again"
                                            .into(),
                                    ),
                                };
                                bar.inc(1);
                                (i, outcome)
                            })
                            .collect()
                    }
                };
            results
        })
        .collect();
    bar.finish_and_clear();
    let decoded_now = scan.predecoded.iter().filter(|o| o.is_some()).count() + decoded.len();
    for (i, outcome) in decoded {
        scan.predecoded[i] = Some(outcome);
    }

    // The previous run's thumbnails are moved over whole; reused images point into them.
    // When nothing was decoded and they are the previous `thumbs.bin` as read, every record
    // keeps its offset into that file and the file stays as it is (see
    // `Ingested::thumbs_file_unchanged`); else the offsets are those of a new file written
    // in image order.
    let keep_file = decoded_now == 0
        && previous.as_ref().is_some_and(|p| {
            p.thumbs.buffers.len() == 1
                && p.thumbs.buffers[0].len() as u64 == p.artifact.thumbs_len
                && p.thumbs.at.iter().all(|&(buffer, _)| buffer == 0)
        });
    let kept_len_and_digest = previous
        .as_ref()
        .map(|p| (p.artifact.thumbs_len, p.artifact.thumbs_digest));
    let (previous, mut thumbs) = match previous {
        Some(Ingested {
            artifact, thumbs, ..
        }) => (Some((artifact, thumbs.at)), thumbs.buffers),
        None => (None, Vec::new()),
    };
    let mut at = Vec::with_capacity(scan.units.len());
    let mut images = Vec::with_capacity(scan.units.len());
    let mut rejected = Vec::new();
    // Offsets and digest of `thumbs.bin` as `save` will write it: thumbnails in image order.
    let mut thumbs_len = 0u64;
    let mut digest = Xxh3::new();
    let mut reused = 0;
    let mut predecoded = std::mem::take(&mut scan.predecoded);
    for (unit, outcome) in scan.units.iter().zip(predecoded.iter_mut()) {
        let (path, split, label) = (scan.path(unit), scan.split(unit), scan.label(unit));
        let reject = |kind, reason: String| Rejected {
            path: path.to_string(),
            split: split.map(str::to_string),
            label: label.to_string(),
            content_hash: unit.content_hash,
            kind,
            reason,
        };
        match outcome.take() {
            Some(Outcome::Image(decoded)) => {
                let decoded = *decoded;
                let (thumb_width, thumb_height) = decoded.thumb.dimensions();
                let pixels = decoded.thumb.into_raw();
                digest.update(&pixels);
                let offset = thumbs_len;
                thumbs_len += pixels.len() as u64;
                at.push((thumbs.len() as u32, 0));
                thumbs.push(pixels);
                images.push(ImageRecord {
                    path: path.to_string(),
                    split: split.map(str::to_string),
                    label: label.to_string(),
                    content_hash: unit.content_hash,
                    file_size: unit.size,
                    format: decoded.format,
                    width: decoded.width,
                    height: decoded.height,
                    color: decoded.color,
                    pixel_hash: decoded.pixel_hash,
                    channel_sum: decoded.channel_sum,
                    channel_sumsq: decoded.channel_sumsq,
                    thumb_width: thumb_width as u16,
                    thumb_height: thumb_height as u16,
                    thumb_offset: offset,
                });
            }
            Some(Outcome::Unreadable(reason)) => {
                rejected.push(reject(RejectKind::Unreadable, reason))
            }
            Some(Outcome::NotImage(reason)) => rejected.push(reject(RejectKind::NotImage, reason)),
            None => {
                let (previous, previous_at) = previous
                    .as_ref()
                    .context("internal: unit neither decoded nor known")?;
                reused += 1;
                match known.get(&unit.content_hash) {
                    Some(Known::Image(i)) => {
                        let old = &previous.images[*i];
                        let (buffer, start) = previous_at[*i];
                        let len = usize::from(old.thumb_width) * usize::from(old.thumb_height) * 3;
                        at.push((buffer, start));
                        let thumb_offset = if keep_file {
                            // Buffer 0 is the file as read: an offset in it is one in the file.
                            start as u64
                        } else {
                            digest.update(&thumbs[buffer as usize][start..start + len]);
                            thumbs_len += len as u64;
                            thumbs_len - len as u64
                        };
                        images.push(ImageRecord {
                            path: path.to_string(),
                            split: split.map(str::to_string),
                            label: label.to_string(),
                            thumb_offset,
                            ..old.clone()
                        });
                    }
                    Some(Known::Rejected(i)) => {
                        let old = &previous.rejected[*i];
                        rejected.push(reject(old.kind, old.reason.clone()));
                    }
                    None => bail!("internal: unit {path} has no result"),
                }
            }
        }
    }
    for problem in &scan.file_problems {
        // A file that yielded no unit at all (unreadable, or an empty CIFAR batch) must
        // still be listed; a damaged batch that yielded records is listed as well.
        rejected.push(Rejected {
            path: problem.path.clone(),
            split: None,
            label: String::new(),
            content_hash: 0,
            kind: RejectKind::Unreadable,
            reason: problem.reason.clone(),
        });
    }

    let classes = class_list(&scan, &images, &rejected);
    let splits = split_list(&images, &rejected);
    let counts = IngestCounts {
        files: scan.discovery.files.len(),
        files_read: scan.files_read,
        units: scan.units.len(),
        decoded: decoded_now,
        reused,
    };
    let artifact = IngestArtifact {
        kind: scan.discovery.kind.clone(),
        classes,
        splits,
        images,
        rejected,
        skipped: scan.discovery.skipped.clone(),
        thumbs_len,
        thumbs_digest: digest.digest(),
        decoded_with: options,
    };
    let mut artifact = artifact;
    if let (true, Some((len, digest))) = (keep_file, kept_len_and_digest) {
        artifact.thumbs_len = len;
        artifact.thumbs_digest = digest;
    }
    let thumbs = Thumbs {
        buffers: thumbs,
        at,
    };
    Ok((
        Ingested {
            artifact,
            thumbs,
            thumbs_file_unchanged: keep_file,
        },
        counts,
    ))
}

impl IngestArtifact {
    /// Whether `thumbs` are the thumbnails this table was written with (length and digest).
    pub fn matches_thumbs(&self, thumbs: &[u8]) -> bool {
        thumbs.len() as u64 == self.thumbs_len && xxh3_64(thumbs) == self.thumbs_digest
    }
}

/// Every thumbnail the table points at must lie inside `thumbs.bin`: `Ingested::thumb` slices
/// without checking, so a table that deserialises but points elsewhere must be refused here
/// (it then means "recompute", never a panic).
pub fn check_thumb_ranges(artifact: &IngestArtifact) -> Result<()> {
    for record in &artifact.images {
        let len = u64::from(record.thumb_width) * u64::from(record.thumb_height) * 3;
        let fits = len > 0
            && record
                .thumb_offset
                .checked_add(len)
                .is_some_and(|end| end <= artifact.thumbs_len);
        if !fits {
            bail!(
                "the cached image table is damaged (the thumbnail of {} lies outside thumbs.bin)",
                record.path
            );
        }
    }
    Ok(())
}

fn class_list(scan: &Scan, images: &[ImageRecord], rejected: &[Rejected]) -> Vec<String> {
    if let Some(names) = &scan.discovery.class_names {
        let mut classes = names.clone();
        // Labels outside the names file (label_123) are still classes.
        let extra: BTreeSet<&String> = images
            .iter()
            .map(|r| &r.label)
            .filter(|l| !names.contains(l))
            .collect();
        classes.extend(extra.into_iter().cloned());
        return classes;
    }
    let set: BTreeSet<&String> = images
        .iter()
        .map(|r| &r.label)
        .chain(rejected.iter().map(|r| &r.label).filter(|l| !l.is_empty()))
        .collect();
    set.into_iter().cloned().collect()
}

/// Splits in the usual order: by position of the name in SPLIT_NAMES, then by name.
fn split_list(images: &[ImageRecord], rejected: &[Rejected]) -> Vec<String> {
    let set: BTreeSet<&String> = images
        .iter()
        .filter_map(|r| r.split.as_ref())
        .chain(rejected.iter().filter_map(|r| r.split.as_ref()))
        .collect();
    let mut splits: Vec<String> = set.into_iter().cloned().collect();
    splits.sort_by_key(|s| {
        let rank = SPLIT_NAMES
            .iter()
            .position(|n| *n == s.to_lowercase())
            .unwrap_or(SPLIT_NAMES.len());
        (rank, s.clone())
    });
    splits
}

/// Adds one run of a folder's units; a folder seen in two runs (unsorted input) combines
/// both digests, so the result never depends on luck.
fn merge_folder(folders: &mut BTreeMap<String, (u64, u64)>, name: &str, count: u64, hasher: Xxh3) {
    let entry = folders.entry(name.to_string()).or_insert((0, 0));
    entry.0 += count;
    entry.1 = if entry.1 == 0 {
        hasher.digest()
    } else {
        xxh3_64(&[entry.1.to_le_bytes(), hasher.digest().to_le_bytes()].concat())
    };
}

/// The folder part of a unit path; for CIFAR records, the batch file.
fn folder_of(rel_path: &str) -> &str {
    if let Some((batch, _)) = rel_path.split_once('#') {
        return batch;
    }
    match rel_path.rsplit_once('/') {
        Some((folder, _)) => folder,
        None => "",
    }
}

fn digest_json<T: Serialize>(value: &T) -> String {
    format!(
        "{:016x}",
        xxh3_64(&serde_json::to_vec(value).unwrap_or_default())
    )
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}
