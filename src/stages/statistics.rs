//! Stage 3, statistics: class balance per split, file formats and sizes, and the per-channel
//! mean and standard deviation (the normalisation constants) overall and per split.
//!
//! Mean and std are exact: they come from the per-image channel sums that ingest measured on
//! the full-resolution decoded pixels, accumulated in integers, then put on a 0..1 scale.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::StatisticsConfig;
use crate::stages::ingest::{ImageRecord, IngestArtifact};

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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imbalance {
    pub largest: String,
    pub largest_count: usize,
    pub smallest: String,
    pub smallest_count: usize,
    pub ratio: f64,
    pub alert: bool,
}

pub fn run(ingest: &IngestArtifact, config: &StatisticsConfig) -> StatisticsArtifact {
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
