//! Properties of one image: brightness, contrast, saturation, sharpness, entropy and
//! greyscale, measured from its RGB thumbnail in one sweep that also adds its pixels to its
//! class's colour counts. `aspect` is the pass's to fill in, from the original size.
//!
//! Invariants: luma is `1000 × (0.299R + 0.587G + 0.114B)` in integers and saturation is
//! fixed point, so every sum is exact and floating point enters only in the last divisions
//! (entropy's `c·log2(c)` terms are added in luma order, always the same). A thumbnail that is
//! empty or shorter than its size says gives default properties; this must never panic.

use serde::{Deserialize, Serialize};

use super::histograms::{BINS, ColourCounts};

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

/// Properties of one RGB image (all but `aspect`), adding its pixels to the class's colour
/// counts. Luma is kept as `1000 × (0.299R + 0.587G + 0.114B)` in integers so every sum below
/// is exact.
pub(super) fn measure(
    pixels: &[u8],
    width: usize,
    height: usize,
    luma: &mut Vec<u32>,
    colours: &mut ColourCounts,
    c_log_c: &[f64],
) -> ImageProperties {
    let count = width * height;
    if count == 0 || pixels.len() < count * 3 {
        return ImageProperties::default();
    }
    luma.clear();
    luma.resize(count, 0);
    // Neighbouring pixels usually fall in the same bin; counting them in the same counter
    // makes each increment wait for the previous one. Spreading consecutive pixels over
    // `LANES` copies of each histogram breaks that chain (about twice as fast on CIFAR).
    const LANES: usize = 4;
    let mut luma_histogram = [[0u32; 256]; LANES];
    let mut colour_histogram = [[[0u32; BINS]; 3]; LANES];
    let mut luma_sum: u64 = 0;
    let mut luma_sumsq: u128 = 0;
    let mut saturation: u64 = 0;
    let mut greyscale = true;
    for (row_luma, row) in luma
        .chunks_exact_mut(width)
        .zip(pixels.chunks_exact(width * 3))
    {
        // Per row in u64: a row of 65,535 pixels cannot overflow it.
        let mut row_sumsq: u64 = 0;
        for (i, (slot, px)) in row_luma.iter_mut().zip(row.chunks_exact(3)).enumerate() {
            let lane = i % LANES;
            let (r, g, b) = (u32::from(px[0]), u32::from(px[1]), u32::from(px[2]));
            let l = 299 * r + 587 * g + 114 * b;
            *slot = l;
            luma_sum += u64::from(l);
            row_sumsq += u64::from(l) * u64::from(l);
            luma_histogram[lane][((l + 500) / 1000) as usize] += 1;
            greyscale &= r == g && g == b;
            let (max, min) = (r.max(g).max(b), r.min(g).min(b));
            saturation += u64::from((max - min) * SATURATION_RECIPROCAL[max as usize]);
            let colours = &mut colour_histogram[lane];
            colours[0][(r >> 3) as usize] += 1;
            colours[1][(g >> 3) as usize] += 1;
            colours[2][(b >> 3) as usize] += 1;
        }
        luma_sumsq += u128::from(row_sumsq);
    }
    for lane in &colour_histogram {
        for (class_bins, image_bins) in colours.iter_mut().zip(lane) {
            for (total, &c) in class_bins.iter_mut().zip(image_bins) {
                *total += u64::from(c);
            }
        }
    }
    let mut entropy_sum = 0.0;
    for level in 0..256 {
        let c: u32 = luma_histogram.iter().map(|lane| lane[level]).sum();
        colours[3][level >> 3] += u64::from(c);
        let c = c as usize;
        entropy_sum += match c_log_c.get(c) {
            Some(&value) => value,
            None => c as f64 * (c as f64).log2(),
        };
    }
    let n = count as f64;
    // H = −Σ (c/n)·log2(c/n) = log2(n) − Σ c·log2(c) / n.
    let entropy = (n.log2() - entropy_sum / n).max(0.0);
    let luma_variance = variance(count as u128, i128::from(luma_sum), luma_sumsq);

    ImageProperties {
        brightness: (luma_sum as f64 / n / 255_000.0) as f32,
        contrast: (luma_variance.sqrt() / 255_000.0) as f32,
        saturation: (saturation as f64 / f64::from(SATURATION_ONE) / n) as f32,
        sharpness: (laplacian_variance(luma, width, height) / 1e6) as f32,
        entropy: entropy as f32,
        greyscale,
        aspect: 0.0,
    }
}

/// Fixed-point 1.0 of the saturation sum.
const SATURATION_ONE: u32 = 1 << 24;

/// `SATURATION_ONE / max`, rounded, and 0 for max = 0 (saturation is 0 there): a
/// multiplication instead of a division per pixel, and an exact integer sum. The rounding
/// error is below 1e-5 per pixel; `(max − min) · reciprocal` fits in u32.
const SATURATION_RECIPROCAL: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut max = 1;
    while max < 256 {
        table[max] = (SATURATION_ONE + max as u32 / 2) / max as u32;
        max += 1;
    }
    table
};

/// Variance from exact sums: (n·Σx² − (Σx)²) / n².
pub(super) fn variance(n: u128, sum: i128, sumsq: u128) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let spread = (n * sumsq).saturating_sub(sum.unsigned_abs() * sum.unsigned_abs());
    spread as f64 / (n as f64 * n as f64)
}

/// Variance of the 4-neighbour Laplacian over the interior pixels, on the scale of `luma`
/// squared; 0 for images too small to have an interior.
fn laplacian_variance(luma: &[u32], width: usize, height: usize) -> f64 {
    if width < 3 || height < 3 {
        return 0.0;
    }
    let mut sum: i64 = 0;
    let mut sumsq: u128 = 0;
    for y in 1..height - 1 {
        let up = &luma[(y - 1) * width..y * width];
        let row = &luma[y * width..(y + 1) * width];
        let down = &luma[(y + 1) * width..(y + 2) * width];
        let mut row_sumsq: u64 = 0;
        for x in 1..width - 1 {
            let laplacian = 4 * i64::from(row[x])
                - i64::from(row[x - 1])
                - i64::from(row[x + 1])
                - i64::from(up[x])
                - i64::from(down[x]);
            sum += laplacian;
            // |laplacian| ≤ 1,020,000, so a row of 65,535 pixels cannot overflow u64.
            row_sumsq += laplacian.unsigned_abs() * laplacian.unsigned_abs();
        }
        sumsq += u128::from(row_sumsq);
    }
    let interior = ((width - 2) * (height - 2)) as u128;
    variance(interior, i128::from(sum), sumsq)
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage, imageops};

    use crate::stages::statistics::fixtures::{
        checkerboard, close, config, ingested, noise, picture, ramp, uniform,
    };
    use crate::stages::statistics::run;

    #[test]
    fn properties_of_uniform_black_two_tone_and_noisy_images() {
        let two_tone = RgbImage::from_fn(8, 8, |x, _| {
            if x < 4 {
                Rgb([0, 0, 0])
            } else {
                Rgb([255, 255, 255])
            }
        });
        let data = ingested(vec![
            picture("a", None, uniform(8, [200, 100, 50])),
            picture("a", None, uniform(8, [0, 0, 0])),
            picture("a", None, two_tone),
            picture("a", None, noise(32, 7, [128, 128, 128], 255)),
        ]);
        let stats = run(&data, &config(4));
        let [orange, black, two_tone, noisy] = stats.properties[..] else {
            panic!(
                "expected four property rows, got {}",
                stats.properties.len()
            );
        };

        let orange_luma = (0.299 * 200.0 + 0.587 * 100.0 + 0.114 * 50.0) / 255.0;
        assert!(close(orange.brightness, orange_luma), "{orange:?}");
        assert!(close(orange.contrast, 0.0), "{orange:?}");
        assert!(close(orange.saturation, 0.75), "{orange:?}");
        assert!(close(orange.entropy, 0.0), "{orange:?}");
        assert!(!orange.greyscale);
        assert!(close(orange.aspect, 1.0));

        assert!(close(black.brightness, 0.0), "{black:?}");
        assert!(close(black.contrast, 0.0), "{black:?}");
        // max = 0: saturation is defined as 0, not NaN.
        assert!(close(black.saturation, 0.0), "{black:?}");
        assert!(close(black.entropy, 0.0), "{black:?}");
        assert!(black.greyscale);

        assert!(close(two_tone.brightness, 0.5), "{two_tone:?}");
        assert!(close(two_tone.contrast, 0.5), "{two_tone:?}");
        assert!(close(two_tone.saturation, 0.0), "{two_tone:?}");
        assert!(close(two_tone.entropy, 1.0), "{two_tone:?}");
        assert!(two_tone.greyscale);

        assert!(noisy.entropy > 7.0 && noisy.entropy <= 8.0, "{noisy:?}");
        assert!(noisy.contrast > 0.1, "{noisy:?}");
        assert!(noisy.saturation > 0.3, "{noisy:?}");
        assert!(!noisy.greyscale);
    }

    #[test]
    fn sharpness_separates_blurred_from_checkerboard() {
        let sharp = checkerboard(16);
        let blurred = imageops::blur(&sharp, 1.5);
        let data = ingested(vec![
            picture("a", None, sharp),
            picture("a", None, blurred),
            picture("a", None, ramp(16)),
            picture("a", None, checkerboard(2)),
        ]);
        let stats = run(&data, &config(4));
        let p = &stats.properties;
        // Every interior pixel of a one-pixel checkerboard has a Laplacian of ±4·255,
        // half of each sign: the variance is (4·255)².
        assert!(
            (p[0].sharpness - 1_040_400.0).abs() < 1.0,
            "{}",
            p[0].sharpness
        );
        assert!(p[1].sharpness < p[0].sharpness / 100.0, "{p:?}");
        // A linear ramp has a Laplacian of (almost: rounding) zero everywhere.
        assert!(p[2].sharpness < 1.0, "{p:?}");
        // Too small to have an interior pixel.
        assert_eq!(p[3].sharpness, 0.0);
    }
}
