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
use crate::cache::{Cache, FingerprintInputs, fingerprint::FolderSummary};
use crate::config::IngestConfig;
use crate::dataset::{self, DatasetKind, Discovery, FileNote, FileRole, SPLIT_NAMES, UnitEncoding};
use crate::decode::{self, DecodeOptions, Outcome};
use crate::progress::Progress;

pub const NAME: &str = "ingest";
/// Bump when what ingest measures or stores changes.
pub const VERSION: u32 = 1;

const TABLE: &str = "table.bin";
const THUMBS: &str = "thumbs.bin";
const STAT_CACHE: &str = "files.bin";

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
}

/// The artifact with its thumbnails loaded.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub artifact: IngestArtifact,
    pub thumbs: Vec<u8>,
}

impl Ingested {
    /// The RGB thumbnail of image `index` (at full resolution when the image is small).
    pub fn thumb(&self, index: usize) -> image::RgbImage {
        let record = &self.artifact.images[index];
        let (w, h) = (
            u32::from(record.thumb_width),
            u32::from(record.thumb_height),
        );
        let start = record.thumb_offset as usize;
        let end = start + (w * h * 3) as usize;
        image::RgbImage::from_raw(w, h, self.thumbs[start..end].to_vec())
            .unwrap_or_else(|| image::RgbImage::new(1, 1))
    }

    /// The raw RGB bytes of image `index`'s thumbnail.
    pub fn thumb_bytes(&self, index: usize) -> &[u8] {
        let record = &self.artifact.images[index];
        let start = record.thumb_offset as usize;
        let len = usize::from(record.thumb_width) * usize::from(record.thumb_height) * 3;
        &self.thumbs[start..start + len]
    }

    /// Images analysed plus units rejected: everything ingest looked inside.
    pub fn units_found(&self) -> usize {
        self.artifact.images.len() + self.artifact.rejected.len()
    }
}

/// One unit found by the scan, with its content hash.
#[derive(Debug, Clone)]
pub struct ScannedUnit {
    pub rel_path: String,
    pub split: Option<String>,
    pub label: String,
    pub content_hash: u128,
    pub size: u64,
    pub encoding: UnitEncoding,
    /// Index of its source file in the discovery.
    pub file_index: usize,
    /// Position among the units of that file.
    pub unit_index: usize,
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
    pub stat_cache: StatCache,
    pub files_read: usize,
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

/// Loads the previous stat cache; a missing or damaged one just means reading every file.
pub fn load_stat_cache(cache: &Cache, progress: &Progress) -> StatCache {
    match cache.read_artifact::<StatCache>(NAME, STAT_CACHE) {
        Ok(stat) => stat,
        Err(err) => {
            if cache.stage_dir(NAME).join(STAT_CACHE).exists() {
                progress.line(&format!(
                    "  warning: {err:#}; every file will be read again"
                ));
            }
            StatCache::default()
        }
    }
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
    let index = old_stat.index();
    let bar = progress.bar(discovery.files.len() as u64, "ingest");
    let files_read = AtomicUsize::new(0);

    struct FileScan {
        entry: Option<StatEntry>,
        units: Vec<(CachedUnit, Option<Outcome>)>,
        problem: Option<String>,
    }

    let per_file: Vec<FileScan> = discovery
        .files
        .par_iter()
        .map(|file| {
            bar.inc(1);
            if let Some(entry) = index.get(file.rel_path.as_str())
                && old_stat.trusts(entry, file.size, file.mtime_ns, file.ino)
            {
                let units = match &file.role {
                    FileRole::Image { split, label } => vec![CachedUnit {
                        rel_path: file.rel_path.clone(),
                        split: split.clone(),
                        label: label.clone(),
                        content_hash: entry.content_hash,
                        size: file.size,
                        cifar: false,
                    }],
                    FileRole::CifarBatch { .. } => entry.units.clone(),
                };
                return FileScan {
                    entry: Some((*entry).clone()),
                    units: units.into_iter().map(|u| (u, None)).collect(),
                    problem: entry.note.clone(),
                };
            }
            let bytes = match std::fs::read(&file.abs_path) {
                Ok(bytes) => bytes,
                Err(err) => {
                    let reason = if err.kind() == std::io::ErrorKind::PermissionDenied {
                        "could not be read: permission denied (check the file's permissions)"
                            .to_string()
                    } else {
                        format!("could not be read: {err}")
                    };
                    return FileScan {
                        entry: None,
                        units: Vec::new(),
                        problem: Some(reason),
                    };
                }
            };
            files_read.fetch_add(1, Ordering::Relaxed);
            let (units, note) = dataset::units_of(file, &bytes, &discovery);
            let units: Vec<(CachedUnit, Option<Outcome>)> = units
                .iter()
                .map(|unit| {
                    let cached = CachedUnit {
                        rel_path: unit.rel_path.clone(),
                        split: unit.split.clone(),
                        label: unit.label.clone(),
                        content_hash: xxh3_128(unit.bytes),
                        size: unit.bytes.len() as u64,
                        cifar: unit.encoding == UnitEncoding::CifarRecord,
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
                note: note.clone(),
            };
            FileScan {
                entry: Some(entry),
                units,
                problem: note,
            }
        })
        .collect();
    bar.finish_and_clear();

    let mut units = Vec::new();
    let mut predecoded = Vec::new();
    let mut file_problems = Vec::new();
    let mut entries = Vec::new();
    for (file_index, (file, scanned)) in discovery.files.iter().zip(per_file).enumerate() {
        if let Some(problem) = scanned.problem {
            file_problems.push(FileNote {
                path: file.rel_path.clone(),
                reason: problem,
            });
        }
        for (unit_index, (unit, outcome)) in scanned.units.into_iter().enumerate() {
            units.push(ScannedUnit {
                encoding: unit.encoding(),
                rel_path: unit.rel_path,
                split: unit.split,
                label: unit.label,
                content_hash: unit.content_hash,
                size: unit.size,
                file_index,
                unit_index,
            });
            predecoded.push(outcome);
        }
        entries.extend(scanned.entry);
    }
    Scan {
        discovery,
        units,
        file_problems,
        predecoded,
        stat_cache: StatCache {
            scanned_at_ns: scan_started,
            entries,
        },
        files_read: files_read.into_inner(),
    }
}

/// The ingest fingerprint: config, layout, and per folder the names, labels and content
/// hashes of its units. Relabelling, adding, removing or changing a file changes it;
/// touching a file's mtime does not.
pub fn fingerprint(scan: &Scan, config: &IngestConfig) -> FingerprintInputs {
    let mut folders: BTreeMap<String, (u64, Xxh3)> = BTreeMap::new();
    for unit in &scan.units {
        let folder = folder_of(&unit.rel_path);
        let (count, hasher) = folders.entry(folder).or_insert_with(|| (0, Xxh3::new()));
        *count += 1;
        hasher.update(unit.rel_path.as_bytes());
        hasher.update(&[0]);
        hasher.update(unit.split.as_deref().unwrap_or("").as_bytes());
        hasher.update(&[0]);
        hasher.update(unit.label.as_bytes());
        hasher.update(&[0]);
        hasher.update(&unit.content_hash.to_le_bytes());
    }
    let mut inputs = FingerprintInputs::new(NAME, VERSION, config);
    inputs.folders = folders
        .into_iter()
        .map(|(folder, (count, hasher))| {
            (
                folder,
                FolderSummary {
                    count,
                    digest: format!("{:016x}", hasher.digest()),
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
    previous: Option<&Ingested>,
    options: DecodeOptions,
    progress: &Progress,
) -> Result<(Ingested, IngestCounts)> {
    // Content hash -> where the previous run left its result.
    enum Known {
        Image(usize),
        Rejected(usize),
    }
    let mut known: HashMap<u128, Known> = HashMap::new();
    if let Some(previous) = previous {
        for (i, record) in previous.artifact.images.iter().enumerate() {
            known.insert(record.content_hash, Known::Image(i));
        }
        for (i, rejected) in previous.artifact.rejected.iter().enumerate() {
            if rejected.content_hash != 0 {
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
            let results: Vec<(usize, Outcome)> = match std::fs::read(&file.abs_path) {
                Err(err) => unit_ids
                    .iter()
                    .map(|&i| (i, Outcome::Unreadable(format!("could not be read: {err}"))))
                    .collect(),
                Ok(bytes) => {
                    let (units, _) = dataset::units_of(file, &bytes, &scan.discovery);
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

    let mut images = Vec::with_capacity(scan.units.len());
    let mut rejected = Vec::new();
    // Sized up front: for CIFAR-10 this buffer is 184 MB, and growing it by doubling
    // costs copies and a transient second buffer.
    let thumbs_len: usize = scan
        .units
        .iter()
        .zip(&scan.predecoded)
        .map(|(unit, outcome)| match outcome {
            Some(Outcome::Image(d)) => d.thumb.as_raw().len(),
            Some(_) => 0,
            None => match known.get(&unit.content_hash) {
                Some(Known::Image(i)) => previous.map_or(0, |p| p.thumb_bytes(*i).len()),
                _ => 0,
            },
        })
        .sum();
    let mut thumbs: Vec<u8> = Vec::with_capacity(thumbs_len);
    let mut reused = 0;
    for (unit, outcome) in scan.units.iter().zip(scan.predecoded.iter_mut()) {
        let reject = |kind, reason: String| Rejected {
            path: unit.rel_path.clone(),
            split: unit.split.clone(),
            label: unit.label.clone(),
            content_hash: unit.content_hash,
            kind,
            reason,
        };
        match outcome.take() {
            Some(Outcome::Image(decoded)) => {
                let offset = thumbs.len() as u64;
                thumbs.extend_from_slice(decoded.thumb.as_raw());
                images.push(ImageRecord {
                    path: unit.rel_path.clone(),
                    split: unit.split.clone(),
                    label: unit.label.clone(),
                    content_hash: unit.content_hash,
                    file_size: unit.size,
                    format: decoded.format,
                    width: decoded.width,
                    height: decoded.height,
                    color: decoded.color,
                    pixel_hash: decoded.pixel_hash,
                    channel_sum: decoded.channel_sum,
                    channel_sumsq: decoded.channel_sumsq,
                    thumb_width: decoded.thumb.width() as u16,
                    thumb_height: decoded.thumb.height() as u16,
                    thumb_offset: offset,
                });
            }
            Some(Outcome::Unreadable(reason)) => {
                rejected.push(reject(RejectKind::Unreadable, reason))
            }
            Some(Outcome::NotImage(reason)) => rejected.push(reject(RejectKind::NotImage, reason)),
            None => {
                let previous = previous.context("internal: unit neither decoded nor known")?;
                reused += 1;
                match known.get(&unit.content_hash) {
                    Some(Known::Image(i)) => {
                        let old = &previous.artifact.images[*i];
                        let offset = thumbs.len() as u64;
                        thumbs.extend_from_slice(previous.thumb_bytes(*i));
                        images.push(ImageRecord {
                            path: unit.rel_path.clone(),
                            split: unit.split.clone(),
                            label: unit.label.clone(),
                            thumb_offset: offset,
                            ..old.clone()
                        });
                    }
                    Some(Known::Rejected(i)) => {
                        let old = &previous.artifact.rejected[*i];
                        rejected.push(reject(old.kind, old.reason.clone()));
                    }
                    None => bail!("internal: unit {} has no result", unit.rel_path),
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
        thumbs_len: thumbs.len() as u64,
        thumbs_digest: xxh3_64(&thumbs),
    };
    Ok((Ingested { artifact, thumbs }, counts))
}

/// Writes the artifact; returns the output files and sizes for the sidecar.
pub fn save(cache: &Cache, ingested: &Ingested) -> Result<Vec<(String, u64)>> {
    let thumbs = cache.write_bytes(NAME, THUMBS, &ingested.thumbs)?;
    let table = cache.write_artifact(NAME, TABLE, &ingested.artifact)?;
    Ok(vec![(THUMBS.into(), thumbs), (TABLE.into(), table)])
}

pub fn save_stat_cache(cache: &Cache, stat: &StatCache) -> Result<()> {
    cache.write_artifact(NAME, STAT_CACHE, stat).map(|_| ())
}

/// Loads the artifact and checks the thumbnails against the digest stored with it.
pub fn load(cache: &Cache) -> Result<Ingested> {
    let artifact: IngestArtifact = cache.read_artifact(NAME, TABLE)?;
    let thumbs = cache.read_bytes(NAME, THUMBS)?;
    if thumbs.len() as u64 != artifact.thumbs_len || xxh3_64(&thumbs) != artifact.thumbs_digest {
        bail!(
            "cache file {} is damaged (its contents do not match the image table)",
            cache.stage_dir(NAME).join(THUMBS).display()
        );
    }
    Ok(Ingested { artifact, thumbs })
}

/// Whether a previous artifact exists at all (decides whether a cold scan decodes at once).
pub fn has_previous(cache: &Cache) -> bool {
    cache.stage_dir(NAME).join(TABLE).is_file()
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

/// The folder part of a unit path; for CIFAR records, the batch file.
fn folder_of(rel_path: &str) -> String {
    let path = rel_path.split('#').next().unwrap_or(rel_path);
    if rel_path.contains('#') {
        return path.to_string();
    }
    match path.rsplit_once('/') {
        Some((folder, _)) => folder.to_string(),
        None => String::new(),
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
