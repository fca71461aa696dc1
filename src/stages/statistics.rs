//! Stage 3, statistics: class balance per split, file formats and sizes, and the per-channel
//! mean and standard deviation (the normalisation constants) overall and per split.
//!
//! Mean and std are exact: they come from the per-image channel sums that ingest measured on
//! the full-resolution decoded pixels, accumulated in integers, then put on a 0..1 scale.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::StatisticsConfig;
use crate::stages::ingest::{ImageRecord, Ingested};

pub const NAME: &str = "statistics";
pub const VERSION: u32 = 1;

/// Per-channel mean and standard deviation on a 0..1 scale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    pub mean: [f64; 3],
    pub std: [f64; 3],
    /// Pixels they were computed over.
    pub pixels: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatisticsArtifact {
    /// class -> split ("" without splits) -> images.
    pub class_counts: BTreeMap<String, BTreeMap<String, usize>>,
    pub split_counts: BTreeMap<String, usize>,
    pub formats: BTreeMap<String, usize>,
    pub colors: BTreeMap<String, usize>,
    /// "WxH" -> images, for the most common sizes.
    pub sizes: BTreeMap<String, usize>,
    pub total_bytes: u64,
    pub overall: ChannelStats,
    pub per_split: BTreeMap<String, ChannelStats>,
    /// Largest class count over smallest (over all splits).
    pub imbalance: Option<Imbalance>,
    /// What resolution the pixel statistics below were computed at, in words.
    pub resolution: Resolution,
    /// Mean and std image per class (split `None`) and per class and split.
    pub class_images: Vec<ClassImage>,
    /// Colour histograms per class (all splits together).
    pub histograms: Vec<ClassHistogram>,
    /// Pairs of classes ordered from most alike colour distributions to least.
    pub similar_classes: Vec<ClassPair>,
    /// Per-image properties, aligned with the ingest image table.
    pub properties: Vec<ImageProperties>,
    /// A histogram of each property over all images.
    pub distributions: Vec<Distribution>,
    /// Galleries of the most extreme images for each property.
    pub extremes: Vec<Extreme>,
    /// Images stored without colour (or whose three channels are equal) in a dataset that is
    /// mostly colour; empty when the dataset is mostly greyscale.
    pub greyscale_in_colour: Vec<usize>,
}

/// The resolution pixel statistics were computed at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    /// True when every image was analysed at its full resolution (all were no larger than
    /// the thumbnail size).
    pub full: bool,
    /// E.g. "full resolution (all images are at most 64 px)", or "thumbnails of at most
    /// 64 px for 1,234 larger images; the mean and std above are still exact".
    pub note: String,
}

/// A per-class (optionally per-split) mean and std image, at a common size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassImage {
    pub class: String,
    pub split: Option<String>,
    pub images: usize,
    pub width: u32,
    pub height: u32,
    /// RGB bytes, row-major, the per-pixel mean.
    pub mean_rgb: Vec<u8>,
    /// RGB bytes, the per-pixel std, scaled so that std 0.5 (on 0..1) maps to 255.
    pub std_rgb: Vec<u8>,
}

/// Normalised colour histograms of one class: each has `BINS` entries summing to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassHistogram {
    pub class: String,
    pub red: Vec<f64>,
    pub green: Vec<f64>,
    pub blue: Vec<f64>,
    pub brightness: Vec<f64>,
}

/// Two classes and how different their colour distributions are (0 = identical).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassPair {
    pub a: String,
    pub b: String,
    pub distance: f64,
}

/// Properties of one image, each on a documented scale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageProperties {
    /// Mean luma (Rec. 601), 0..1.
    pub brightness: f32,
    /// Std of luma, 0..1 (RMS contrast).
    pub contrast: f32,
    /// Mean HSV saturation, 0..1.
    pub saturation: f32,
    /// Variance of the Laplacian of luma (on 0..255 values): low means blurry.
    pub sharpness: f32,
    /// Shannon entropy of the luma histogram in bits, 0..8: low means little information.
    pub entropy: f32,
    /// All three channels equal at every pixel (a greyscale picture, whatever its storage).
    pub greyscale: bool,
    /// Width over height.
    pub aspect: f32,
}

/// A histogram of one property over all images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// "brightness", "contrast", "saturation", "sharpness", "entropy", "width", "height",
    /// "aspect", "file_size".
    pub property: String,
    pub min: f64,
    pub max: f64,
    /// Equal-width bins from min to max.
    pub counts: Vec<usize>,
}

/// The most extreme images for one property, most extreme first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extreme {
    /// "darkest", "brightest", "blurriest", "lowest_information", "lowest_contrast",
    /// "odd_size".
    pub name: String,
    /// Plain-words title, e.g. "Darkest images (lowest mean brightness)".
    pub title: String,
    /// Image-table indices with the property value as shown.
    pub images: Vec<(usize, f64)>,
}

/// Bins of every colour histogram.
pub const BINS: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imbalance {
    pub largest: String,
    pub largest_count: usize,
    pub smallest: String,
    pub smallest_count: usize,
    pub ratio: f64,
    pub alert: bool,
}

pub fn run(ingested: &Ingested, config: &StatisticsConfig) -> StatisticsArtifact {
    let ingest = &ingested.artifact;
    let mut stats = StatisticsArtifact::default();
    for class in &ingest.classes {
        stats.class_counts.entry(class.clone()).or_default();
    }
    let mut per_split: BTreeMap<String, Vec<&ImageRecord>> = BTreeMap::new();
    for record in &ingest.images {
        let split = record.split.clone().unwrap_or_default();
        *stats
            .class_counts
            .entry(record.label.clone())
            .or_default()
            .entry(split.clone())
            .or_default() += 1;
        *stats.split_counts.entry(split.clone()).or_default() += 1;
        *stats.formats.entry(record.format.clone()).or_default() += 1;
        *stats.colors.entry(record.color.clone()).or_default() += 1;
        *stats
            .sizes
            .entry(format!("{}x{}", record.width, record.height))
            .or_default() += 1;
        stats.total_bytes += record.file_size;
        per_split.entry(split).or_default().push(record);
    }
    stats.overall = channel_stats(ingest.images.iter());
    if per_split.len() > 1 || per_split.keys().any(|k| !k.is_empty()) {
        stats.per_split = per_split
            .into_iter()
            .map(|(split, records)| (split, channel_stats(records.into_iter())))
            .collect();
    }
    stats.imbalance = imbalance(&stats.class_counts, config.imbalance_ratio);
    stats
}

/// Exact mean and std from integer sums over 8-bit values.
pub fn channel_stats<'a>(records: impl Iterator<Item = &'a ImageRecord>) -> ChannelStats {
    let mut sum = [0u128; 3];
    let mut sumsq = [0u128; 3];
    let mut pixels: u128 = 0;
    for record in records {
        for c in 0..3 {
            sum[c] += u128::from(record.channel_sum[c]);
            sumsq[c] += u128::from(record.channel_sumsq[c]);
        }
        pixels += u128::from(record.pixels());
    }
    let mut out = ChannelStats {
        pixels: pixels as u64,
        ..ChannelStats::default()
    };
    if pixels == 0 {
        return out;
    }
    for c in 0..3 {
        let n = pixels as f64;
        let mean = sum[c] as f64 / n;
        // Var = E[x²] − E[x]²; in integers up to the last division, so no cancellation
        // worth speaking of at 8-bit precision.
        let var = (sumsq[c] as f64 / n - mean * mean).max(0.0);
        out.mean[c] = mean / 255.0;
        out.std[c] = var.sqrt() / 255.0;
    }
    out
}

fn imbalance(
    class_counts: &BTreeMap<String, BTreeMap<String, usize>>,
    threshold: f64,
) -> Option<Imbalance> {
    let totals: Vec<(&String, usize)> = class_counts
        .iter()
        .map(|(class, splits)| (class, splits.values().sum()))
        .collect();
    let largest = totals.iter().max_by_key(|(_, n)| *n)?;
    let smallest = totals.iter().min_by_key(|(_, n)| *n)?;
    let ratio = if smallest.1 == 0 {
        f64::INFINITY
    } else {
        largest.1 as f64 / smallest.1 as f64
    };
    Some(Imbalance {
        largest: largest.0.clone(),
        largest_count: largest.1,
        smallest: smallest.0.clone(),
        smallest_count: smallest.1,
        ratio,
        alert: totals.len() > 1 && ratio >= threshold,
    })
}
