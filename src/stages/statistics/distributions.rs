//! A histogram of each image property over all images, with width, height and file size
//! from the ingest table: `DISTRIBUTION_BINS` equal-width bins from the smallest value to the
//! largest.
//!
//! Invariants: the properties come in a fixed order, the order the report shows; a property
//! whose values are all equal has one bin holding every image; no images, no distributions.

use serde::{Deserialize, Serialize};

use super::properties::ImageProperties;
use crate::stages::ingest::ImageRecord;

/// A histogram of one property over all images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// "brightness", "contrast", "saturation", "sharpness (log10)" (of 1 + the Laplacian
    /// variance), "entropy", "width", "height", "aspect", "file_size" (bytes).
    pub property: String,
    pub min: f64,
    pub max: f64,
    /// Equal-width bins from min to max.
    pub counts: Vec<usize>,
}

/// Bins of every property distribution.
const DISTRIBUTION_BINS: usize = 30;

/// A histogram of each property over all images.
pub(super) fn distributions(
    images: &[ImageRecord],
    properties: &[ImageProperties],
) -> Vec<Distribution> {
    if images.is_empty() {
        return Vec::new();
    }
    let of = |f: fn(&ImageProperties) -> f32| -> Vec<f64> {
        properties.iter().map(|p| f64::from(f(p))).collect()
    };
    let columns: [(&str, Vec<f64>); 9] = [
        ("brightness", of(|p| p.brightness)),
        ("contrast", of(|p| p.contrast)),
        ("saturation", of(|p| p.saturation)),
        (
            // Laplacian variance spans several orders of magnitude.
            "sharpness (log10)",
            of(|p| p.sharpness)
                .into_iter()
                .map(f64::ln_1p)
                .map(|v| v / std::f64::consts::LN_10)
                .collect(),
        ),
        ("entropy", of(|p| p.entropy)),
        ("width", images.iter().map(|r| f64::from(r.width)).collect()),
        (
            "height",
            images.iter().map(|r| f64::from(r.height)).collect(),
        ),
        ("aspect", of(|p| p.aspect)),
        (
            "file_size",
            images.iter().map(|r| r.file_size as f64).collect(),
        ),
    ];
    columns
        .into_iter()
        .map(|(property, values)| histogram(property, &values))
        .collect()
}

/// `DISTRIBUTION_BINS` equal-width bins from the smallest value to the largest; one bin when
/// they are equal.
fn histogram(property: &str, values: &[f64]) -> Distribution {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let counts = bin_counts(values, min, max, DISTRIBUTION_BINS);
    Distribution {
        property: property.to_string(),
        min,
        max,
        counts,
    }
}

/// How many of `values` fall in each of `bins` equal-width bins from `min` to `max` (the
/// last bin closed), values outside the range counted in the end bins and non-finite ones
/// left out; one bin holding every finite value when `max` is not above `min`. Shared with
/// `aldente diff`, which bins both versions over one range so their histograms overlay.
pub fn bin_counts(values: &[f64], min: f64, max: f64, bins: usize) -> Vec<usize> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    if max <= min || bins <= 1 {
        return vec![finite.count()];
    }
    let mut counts = vec![0; bins];
    let scale = bins as f64 / (max - min);
    for v in finite {
        // `as usize` saturates: below `min` lands in the first bin.
        let bin = (((v - min) * scale) as usize).min(bins - 1);
        counts[bin] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use crate::stages::statistics::fixtures::{config, ingested, noise, picture};
    use crate::stages::statistics::run;

    #[test]
    fn distributions_cover_every_property_with_thirty_bins() {
        let data = ingested(
            (0..40)
                .map(|i| picture("a", None, noise(8, i, [i as u8 * 5, 100, 100], 40)))
                .collect(),
        );
        let stats = run(&data, &config(4));
        let names: Vec<&str> = stats
            .distributions
            .iter()
            .map(|d| d.property.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "brightness",
                "contrast",
                "saturation",
                "sharpness (log10)",
                "entropy",
                "width",
                "height",
                "aspect",
                "file_size"
            ]
        );
        for distribution in &stats.distributions {
            assert_eq!(distribution.counts.iter().sum::<usize>(), 40);
            let expected_bins = if distribution.min == distribution.max {
                1
            } else {
                30
            };
            assert_eq!(
                distribution.counts.len(),
                expected_bins,
                "{}",
                distribution.property
            );
        }
        let brightness = &stats.distributions[0];
        assert_eq!(brightness.counts.len(), 30);
        assert!(brightness.max > brightness.min);
        // All images are 8x8: one bin holding all of them.
        assert_eq!(stats.distributions[5].counts, vec![40]);
        let sharpness = &stats.distributions[3];
        let largest = stats
            .properties
            .iter()
            .map(|p| f64::from(p.sharpness))
            .fold(0.0, f64::max);
        assert!((sharpness.max - (1.0 + largest).log10()).abs() < 1e-9);
    }
}
