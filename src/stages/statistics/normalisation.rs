//! The normalisation constants: per-channel mean and standard deviation on a 0..1 scale, the
//! numbers a training script subtracts and divides by.
//!
//! Invariant: they are exact. They come from the per-image channel sums that ingest measured
//! on the full-resolution decoded pixels, added here in u128 (no dataset can overflow it);
//! floating point enters only in the last divisions. Never compute them from the thumbnails
//! the pass in [`super::pixels`] reads: resizing changes pixel values.

use serde::{Deserialize, Serialize};

use crate::stages::ingest::ImageRecord;

/// Per-channel mean and standard deviation on a 0..1 scale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    pub mean: [f64; 3],
    pub std: [f64; 3],
    /// Pixels they were computed over.
    pub pixels: u64,
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
