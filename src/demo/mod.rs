//! The `aldente demo` dataset: a small synthetic image-classification dataset with planted issues.
//!
//! [`generate`] draws six classes of 32x32 pictures (checkers, circles, rings, squares, stripes,
//! triangles) into `dir/train/<class>/` and `dir/test/<class>/`, then plants every kind of problem
//! the report looks for: exact and near duplicates, train/test leakage, a duplicate whose labels
//! disagree, wrong labels, very dark, bright, blurry, featureless and greyscale images, unreadable
//! files and non-image files. It returns a [`DemoTruth`] naming every planted file, which the
//! report's own tests use as ground truth, so the truth must be exact and complete: each class is
//! drawn in its own band of hues with its own shapes and every picture carries random geometry
//! and per-pixel noise, so that no two ordinary images are alike and no planted issue arises
//! by chance.
//!
//! The work is split by idea; only this module touches the disk:
//! - `plan`: what files the dataset holds, what is planted in which of them, where each one
//!   goes, and the [`DemoTruth`] that records it, all in memory.
//! - `scene`: draws a picture of a class (random shapes on a mottled, lit backdrop, with noise).
//! - `edits`: turns a picture into a planted variant (near copies, darkened, brightened).
//! - `encode`: turns pixels into file bytes (PNG, greyscale PNG, JPEG, an unreadable JPEG).
//!
//! Invariants:
//! - Determinism: the same seed gives byte-identical files. Everything random comes from one
//!   `ChaCha8Rng` consumed in a fixed order, files are named and written in a fixed order, and
//!   no hash-map order is ever observed. The drawing code also keeps to arithmetic and `sqrt`,
//!   whose results IEEE 754 fixes exactly, so that other platforms very likely agree too; only
//!   the blurred plants go through a platform `exp` (in `image`'s gaussian kernel).
//! - Bump [`DEMO_VERSION`] whenever the output for a given seed changes, so that a cached demo
//!   folder is regenerated.
//! - It never writes outside `dir`: every path is `dir` joined with a split, a class name from
//!   [`CLASSES`] and a generated file name, and it refuses a `dir` that already holds anything.

mod edits;
mod encode;
mod plan;
mod scene;
#[cfg(test)]
mod tests;

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use plan::{Files, build};

/// Bump when the generated dataset changes, so a cached demo folder is regenerated.
pub const DEMO_VERSION: u32 = 1;

/// What [`generate`] planted, as paths relative to the dataset folder with `/` separators.
///
/// Every list is sorted, and so is every group inside a list, so two truths compare equal exactly
/// when they describe the same dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoTruth {
    pub seed: u64,
    pub version: u32,
    /// Class folder names, sorted.
    pub classes: Vec<String>,
    /// Every group of two or more files with identical bytes, across the whole dataset: the
    /// duplicates planted inside train, and also the exact `leakage` copies and the
    /// `conflicting_labels` pair, which are byte copies too.
    pub exact_byte_groups: Vec<Vec<String>>,
    /// Every group of files whose decoded pixels are identical although their bytes all differ
    /// (the same pixels saved as PNG with another compression level and filter).
    pub exact_pixel_groups: Vec<Vec<String>>,
    /// Near duplicates inside train, in the same class, one pair per kind. Near copies across
    /// splits are in `leakage` instead.
    pub near_pairs: Vec<NearPair>,
    /// Test images copied from train images of the same class: `original` is the train file,
    /// `copy` the test file, `kind` is "exact" (same bytes) or a near-duplicate kind.
    pub leakage: Vec<NearPair>,
    /// Groups of identical files that sit in different class folders.
    pub conflicting_labels: Vec<Vec<String>>,
    /// Images drawn as one class and filed under another. Includes the copy of the
    /// `conflicting_labels` pair that sits in the wrong folder, since its label is wrong too.
    pub mislabelled: Vec<Mislabel>,
    /// Mean brightness below 0.08 however it is measured (mean of R, G, B, of luma, or of the
    /// brightest channel).
    pub dark: Vec<String>,
    /// Mean brightness above 0.92 however it is measured (mean of R, G, B, of luma, or of the
    /// darkest channel).
    pub bright: Vec<String>,
    /// Images blurred with a gaussian of sigma 3. The `low_information` images have no edges
    /// at all, so a sharpness measure ranks them as blurry too.
    pub blurry: Vec<String>,
    /// Nearly uniform images (one colour, with at most one level of noise per channel).
    pub low_information: Vec<String>,
    /// Images stored as single-channel 8-bit PNGs in an otherwise RGB dataset.
    pub greyscale: Vec<String>,
    /// Files with an image extension that must be reported as unreadable.
    pub corrupt: Vec<String>,
    /// Non-image files that must be listed as skipped.
    pub skipped: Vec<String>,
    /// Number of files that decode as images.
    pub image_count: usize,
    /// Number of files written, readable or not.
    pub file_count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearPair {
    pub original: String,
    pub copy: String,
    /// "exact" (leakage only), "jpeg", "resize", "shift", "color" or "flip".
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mislabel {
    pub path: String,
    /// The class folder the file is in.
    pub given: String,
    /// The class it was drawn as.
    pub true_label: String,
}

/// Class folder names, sorted, so an index into this array is also the class's rank.
const CLASSES: [&str; 6] = [
    "checkers",
    "circles",
    "rings",
    "squares",
    "stripes",
    "triangles",
];

/// Writes the demo dataset for `seed` into `dir`, which must be absent or empty, and returns
/// what was planted in it.
pub fn generate(dir: &Path, seed: u64) -> Result<DemoTruth> {
    ensure_empty_or_absent(dir)?;
    let (files, truth) = build(seed)?;
    write_files(dir, &files)?;
    Ok(truth)
}

fn ensure_empty_or_absent(dir: &Path) -> Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "refusing to generate the demo dataset into {}: it exists and is not empty",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("could not read {}", dir.display())),
    }
}

/// Plain writes, not `fsutil::write_atomic`: a temporary file and a rename per image would double
/// the cost of the demo, and buy nothing, since a half-written folder is never trusted (the
/// caller records the truth only after `generate` returns, and regenerates without it).
fn write_files(dir: &Path, files: &Files) -> Result<()> {
    let mut folder_made: Option<&str> = None;
    for (relative, bytes) in files {
        let folder = relative.rsplit_once('/').map_or("", |(folder, _)| folder);
        if folder_made != Some(folder) {
            crate::fsutil::create_dir_all(&dir.join(folder))?;
            folder_made = Some(folder);
        }
        let path = dir.join(relative);
        fs::write(&path, bytes).with_context(|| format!("could not write {}", path.display()))?;
    }
    Ok(())
}
