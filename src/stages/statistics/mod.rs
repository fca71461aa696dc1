//! Stage 3, statistics: class balance per split, file formats and sizes, the per-channel
//! mean and standard deviation (the normalisation constants) overall and per split, and what
//! the pixels look like: per-class mean and std images and colour histograms, which classes
//! look alike, per-image properties (brightness, contrast, saturation, sharpness, entropy,
//! greyscale, aspect), their distributions and galleries of the extremes.
//!
//! Mean and std are exact: they come from the per-image channel sums that ingest measured on
//! the full-resolution decoded pixels, accumulated in integers, then put on a 0..1 scale.
//! Everything else is measured on ingest's thumbnails (the images themselves when they are
//! small, as in CIFAR), in one parallel pass; `resolution` says which.
//!
//! Invariant: the artifact is a pure function of the ingest artifact and the config. Every
//! sum across images is an integer, so rayon's split and reduce order cannot change a bit of
//! it, and ties in every ranking are broken by image index.
//!
//! The pieces, in the order `run` uses them:
//! - [`normalisation`]: the exact per-channel mean and std, overall and per split;
//! - [`balance`]: the largest class over the smallest, and whether that is an alert;
//! - [`pixels`]: the one parallel pass over the thumbnails, and the resolution it saw;
//! - [`properties`]: what one image's pixels measure, inside the pass;
//! - [`class_images`]: the per-class (and per split) mean and std images the pass sums;
//! - [`histograms`]: the per-class colour histograms and which classes look alike by them;
//! - [`distributions`]: a histogram of each property over all images;
//! - [`extremes`]: galleries of the most extreme images, and greyscale images in a colour
//!   dataset.
//!
//! The types of the artifact are re-exported here, so the rest of the crate names them as
//! `statistics::ChannelStats` and so on, whatever file they live in.

pub mod balance;
pub mod class_images;
pub mod distributions;
pub mod extremes;
pub mod histograms;
pub mod normalisation;
pub mod pixels;
pub mod properties;

#[cfg(test)]
mod fixtures;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use self::balance::Imbalance;
pub use self::class_images::ClassImage;
pub use self::distributions::Distribution;
pub use self::extremes::Extreme;
pub use self::histograms::{BINS, ClassHistogram, ClassPair};
pub use self::normalisation::{ChannelStats, channel_stats};
pub use self::pixels::Resolution;
pub use self::properties::ImageProperties;

use crate::config::StatisticsConfig;
use crate::stage::Stage;
use crate::stages::ingest::{ImageRecord, Ingested};

pub const STAGE: Stage = Stage::Statistics;
/// Bump when what statistics measures or stores changes.
pub const VERSION: u32 = 2;

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
    stats.imbalance = balance::imbalance(&stats.class_counts, config.imbalance_ratio);
    stats.resolution = pixels::resolution(&ingest.images);

    let layout = pixels::Layout::new(ingested);
    let (properties, sums) = pixels::measure_all(ingested, &layout);
    stats.class_images = class_images::class_images(&layout, &sums);
    stats.histograms = histograms::class_histograms(&layout, &sums);
    stats.similar_classes = histograms::similar_classes(&stats.histograms);
    stats.distributions = distributions::distributions(&ingest.images, &properties);
    stats.extremes = extremes::extremes(&ingest.images, &properties, config.extremes);
    stats.greyscale_in_colour = extremes::greyscale_in_colour(&properties);
    stats.properties = properties;
    stats
}

#[cfg(test)]
mod tests {
    use super::fixtures::{Picture, config, ingested, noise, picture};
    use super::run;

    #[test]
    fn runs_are_deterministic() {
        // Enough images, sizes and classes for rayon to split the pass several ways.
        let pictures: Vec<Picture> = (0..3000u64)
            .map(|i| {
                let label = ["cat", "dog", "owl"][(i % 3) as usize];
                let split = Some(if i % 5 == 0 { "test" } else { "train" });
                let size = if i % 97 == 0 { 12 } else { 8 };
                let base = [(i * 7 % 256) as u8, (i * 13 % 256) as u8, 90];
                picture(label, split, noise(size, i, base, 120))
            })
            .collect();
        let data = ingested(pictures);
        let first = run(&data, &config(16));
        let second = run(&data, &config(16));
        assert_eq!(first, second);
        assert_eq!(first.properties.len(), 3000);
        assert_eq!(first.class_images.len(), 9);
    }
}
