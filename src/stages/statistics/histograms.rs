//! Colour histograms per class (red, green, blue and brightness, `BINS` bins each, all splits
//! together) and which classes look alike by them.
//!
//! The pass in [`super::pixels`] counts pixels per bin in integers; only here are the counts
//! normalised to sum to 1. A class without pixels has no histogram. Pairs are sorted stably,
//! so equally distant pairs keep the class order.

use serde::{Deserialize, Serialize};

use super::pixels::{Layout, Sums};

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

/// Bins of every colour histogram.
pub const BINS: usize = 32;

/// Red, green, blue and brightness pixel counts of one class, `BINS` bins each.
pub(super) type ColourCounts = [[u64; BINS]; 4];

/// Normalised colour histograms of every class that has pixels.
pub(super) fn class_histograms(layout: &Layout, sums: &Sums) -> Vec<ClassHistogram> {
    layout
        .classes
        .iter()
        .zip(&sums.colours)
        .filter_map(|(class, counts)| {
            let total: u64 = counts[0].iter().sum();
            if total == 0 {
                return None;
            }
            let normalise = |bins: &[u64; BINS]| -> Vec<f64> {
                bins.iter().map(|&c| c as f64 / total as f64).collect()
            };
            Some(ClassHistogram {
                class: class.clone(),
                red: normalise(&counts[0]),
                green: normalise(&counts[1]),
                blue: normalise(&counts[2]),
                brightness: normalise(&counts[3]),
            })
        })
        .collect()
}

/// Every pair of classes, most alike first.
///
/// The distance is the earth mover's distance between the two classes' histograms, averaged
/// over red, green, blue and brightness, with intensity on a 0..1 scale: how far, on
/// average, pixel intensity must move to turn one distribution into the other (0 =
/// identical, at most 31/32). Unlike a bin-by-bin distance (Hellinger, χ²) it knows that
/// neighbouring bins are close, so a class that is slightly darker than another counts as
/// alike, not as entirely different.
pub(super) fn similar_classes(histograms: &[ClassHistogram]) -> Vec<ClassPair> {
    let mut pairs = Vec::new();
    for (i, a) in histograms.iter().enumerate() {
        for b in &histograms[i + 1..] {
            let distance = (earth_movers(&a.red, &b.red)
                + earth_movers(&a.green, &b.green)
                + earth_movers(&a.blue, &b.blue)
                + earth_movers(&a.brightness, &b.brightness))
                / 4.0;
            pairs.push(ClassPair {
                a: a.class.clone(),
                b: b.class.clone(),
                distance,
            });
        }
    }
    // Stable: equally distant pairs keep the class order.
    pairs.sort_by(|x, y| x.distance.total_cmp(&y.distance));
    pairs
}

/// 1-D earth mover's distance between two normalised histograms over 0..1: the area
/// between their cumulative distributions.
fn earth_movers(p: &[f64], q: &[f64]) -> f64 {
    let mut carried = 0.0;
    let mut work = 0.0;
    for (a, b) in p.iter().zip(q) {
        carried += a - b;
        work += f64::abs(carried);
    }
    work / p.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::BINS;
    use crate::stages::statistics::fixtures::{config, ingested, noise, picture, uniform};
    use crate::stages::statistics::run;

    #[test]
    fn histograms_sum_to_one_and_put_pixels_in_their_bins() {
        let data = ingested(vec![
            picture("red", None, uniform(4, [255, 0, 0])),
            picture("noise", None, noise(16, 3, [128, 128, 128], 255)),
        ]);
        let stats = run(&data, &config(4));
        assert_eq!(stats.histograms.len(), 2);
        for histogram in &stats.histograms {
            assert_eq!(histogram.red.len(), BINS);
            for bins in [
                &histogram.red,
                &histogram.green,
                &histogram.blue,
                &histogram.brightness,
            ] {
                let total: f64 = bins.iter().sum();
                assert!((total - 1.0).abs() < 1e-9, "{}: {total}", histogram.class);
            }
        }
        let red = &stats.histograms[0];
        assert_eq!(red.class, "red");
        assert_eq!(red.red[BINS - 1], 1.0);
        assert_eq!(red.green[0], 1.0);
        // Luma of pure red: 0.299·255 = 76.2, in bin 76 / 8 = 9.
        assert_eq!(red.brightness[9], 1.0);
    }

    #[test]
    fn most_alike_classes_come_first() {
        let mut pictures = Vec::new();
        for seed in 0..4 {
            pictures.push(picture(
                "sand",
                None,
                noise(16, 100 + seed, [210, 180, 120], 60),
            ));
            pictures.push(picture(
                "sky",
                None,
                noise(16, 200 + seed, [90, 140, 220], 60),
            ));
            pictures.push(picture(
                "sea",
                None,
                noise(16, 300 + seed, [85, 135, 215], 60),
            ));
        }
        let stats = run(&ingested(pictures), &config(4));
        assert_eq!(stats.similar_classes.len(), 3);
        let first = &stats.similar_classes[0];
        let mut pair = [first.a.as_str(), first.b.as_str()];
        pair.sort();
        assert_eq!(pair, ["sea", "sky"]);
        assert!(
            stats
                .similar_classes
                .windows(2)
                .all(|w| w[0].distance <= w[1].distance)
        );
        assert!(first.distance < stats.similar_classes[1].distance / 3.0);
    }
}
