//! The built-in image features: a fixed-length vector per image from its thumbnail, needing
//! no download and no knowledge of the rest of the dataset.
//!
//! Because a vector depends on nothing but the image's pixels, it is cached per image under
//! the image's pixel hash ([`FeatureStore`]): a relabel, a renamed file or a change to a few
//! files recomputes only the vectors of images whose pixels are new. The dataset-wide steps
//! (standardising, PCA, neighbours) run on top of the stored vectors.
//!
//! The vector, from the thumbnail resized to 32x32 (CIFAR-sized, full resolution there):
//! - gradient-orientation histograms (HOG-like): 9 unsigned orientations in 4-px cells (8x8
//!   cells) and in 8-px cells (4x4 cells), each cell normalised by the gradient energy of its
//!   3x3 cell neighbourhood, so shape is seen independently of contrast;
//! - a joint hue/saturation/value histogram (8x2x3 bins), for colour regardless of position;
//! - the image reduced to 8x8 RGB, for the layout of colour (sky above, grass below).
//!
//! Every part lies in 0..1 (histograms square-rooted, the Hellinger map, which makes
//! Euclidean distance behave better on them), so a vector is stored as one byte per value:
//! 960 bytes an image, 58 MB for CIFAR-10's 60,000.
//!
//! This is one [`Embedder`]; a second source (a user-supplied ONNX model, say) implements
//! the same trait with its own name and version, and the store keeps them apart.

use image::imageops::{self, FilterType};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Side of the square image the features are computed on.
const SIDE: usize = 32;
const BINS: usize = 9;
const FINE_CELL: usize = 4;
const FINE: usize = SIDE / FINE_CELL;
const COARSE: usize = FINE / 2;
const HUE_BINS: usize = 8;
const SAT_BINS: usize = 2;
const VAL_BINS: usize = 3;
const TINY: usize = 8;

/// Lengths of the blocks of a vector, in order: fine HOG, coarse HOG, colour histogram,
/// tiny image. The dataset-wide standardisation weights each block as a whole.
pub const BLOCKS: [usize; 4] = [
    FINE * FINE * BINS,
    COARSE * COARSE * BINS,
    HUE_BINS * SAT_BINS * VAL_BINS,
    TINY * TINY * 3,
];

/// Something that turns an image into a fixed-length byte vector, one image at a time.
pub trait Embedder: Sync {
    /// Names the method in the report and keys the store: a store made by another method or
    /// version is not reused.
    fn id(&self) -> String;
    fn dims(&self) -> usize;
    /// Vector lengths of the blocks that make up a vector (they sum to `dims`).
    fn blocks(&self) -> Vec<usize>;
    /// The vector of one RGB image (`width * height * 3` bytes), written into `out`.
    fn embed(&self, rgb: &[u8], width: u32, height: u32, out: &mut [u8]);
}

/// The built-in features described in the module doc.
pub struct BuiltinFeatures;

/// Bump when the built-in vector changes; stored vectors of another version are recomputed.
const BUILTIN_VERSION: u32 = 1;

impl Embedder for BuiltinFeatures {
    fn id(&self) -> String {
        format!("builtin-hog-colour-v{BUILTIN_VERSION}")
    }

    fn dims(&self) -> usize {
        BLOCKS.iter().sum()
    }

    fn blocks(&self) -> Vec<usize> {
        BLOCKS.to_vec()
    }

    fn embed(&self, rgb: &[u8], width: u32, height: u32, out: &mut [u8]) {
        let values = builtin_vector(rgb, width, height);
        for (o, v) in out.iter_mut().zip(values) {
            *o = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
}

/// The vector in 0..1 before quantisation.
fn builtin_vector(rgb: &[u8], width: u32, height: u32) -> Vec<f32> {
    let planes = square_planes(rgb, width, height);
    let mut out = Vec::with_capacity(BLOCKS.iter().sum());
    hog(&planes, &mut out);
    colour_histogram(&planes, &mut out);
    tiny_image(&planes, &mut out);
    out
}

/// The image as three 32x32 planes in 0..1. Images of another size are resized (aspect
/// ignored: features compare content, and most datasets have one aspect ratio).
fn square_planes(rgb: &[u8], width: u32, height: u32) -> [Vec<f32>; 3] {
    let expected = width as usize * height as usize * 3;
    let resized;
    let pixels: &[u8] = if width as usize == SIDE && height as usize == SIDE {
        &rgb[..expected.min(rgb.len())]
    } else {
        match image::RgbImage::from_raw(width, height, rgb.get(..expected).unwrap_or(&[]).to_vec())
        {
            Some(img) if width > 0 && height > 0 => {
                resized = imageops::resize(&img, SIDE as u32, SIDE as u32, FilterType::Triangle);
                resized.as_raw()
            }
            // A damaged thumbnail cannot occur for a decoded image; a black square keeps
            // the run going and the image simply looks like nothing else.
            _ => &[],
        }
    };
    let mut planes = [
        vec![0.0f32; SIDE * SIDE],
        vec![0.0f32; SIDE * SIDE],
        vec![0.0f32; SIDE * SIDE],
    ];
    for (i, px) in pixels.chunks_exact(3).take(SIDE * SIDE).enumerate() {
        for c in 0..3 {
            planes[c][i] = f32::from(px[c]) / 255.0;
        }
    }
    planes
}

/// Gradient-orientation histograms in fine and coarse cells, locally normalised.
fn hog(planes: &[Vec<f32>; 3], out: &mut Vec<f32>) {
    let mut fine = vec![0.0f32; FINE * FINE * BINS];
    let at = |p: &Vec<f32>, x: isize, y: isize| {
        let x = x.clamp(0, SIDE as isize - 1) as usize;
        let y = y.clamp(0, SIDE as isize - 1) as usize;
        p[y * SIDE + x]
    };
    for y in 0..SIDE as isize {
        for x in 0..SIDE as isize {
            // The channel with the strongest gradient decides (Dalal and Triggs): an edge
            // between two colours of equal brightness still counts.
            let (mut gx, mut gy, mut best) = (0.0f32, 0.0f32, -1.0f32);
            for p in planes {
                let dx = at(p, x + 1, y) - at(p, x - 1, y);
                let dy = at(p, x, y + 1) - at(p, x, y - 1);
                let m = dx * dx + dy * dy;
                if m > best {
                    (gx, gy, best) = (dx, dy, m);
                }
            }
            let magnitude = best.max(0.0).sqrt();
            if magnitude == 0.0 {
                continue;
            }
            // Unsigned orientation in 0..BINS, split linearly between the two nearest bins.
            let mut angle = gy.atan2(gx);
            if angle < 0.0 {
                angle += std::f32::consts::PI;
            }
            let position = angle / std::f32::consts::PI * BINS as f32 - 0.5;
            let low = position.floor();
            let frac = position - low;
            let low = (low as isize).rem_euclid(BINS as isize) as usize;
            let high = (low + 1) % BINS;
            let cell = (y as usize / FINE_CELL) * FINE + x as usize / FINE_CELL;
            fine[cell * BINS + low] += magnitude * (1.0 - frac);
            fine[cell * BINS + high] += magnitude * frac;
        }
    }
    let mut coarse = vec![0.0f32; COARSE * COARSE * BINS];
    for cy in 0..FINE {
        for cx in 0..FINE {
            let to = ((cy / 2) * COARSE + cx / 2) * BINS;
            let from = (cy * FINE + cx) * BINS;
            for b in 0..BINS {
                coarse[to + b] += fine[from + b];
            }
        }
    }
    normalise_cells(&fine, FINE, out);
    normalise_cells(&coarse, COARSE, out);
}

/// Divides each cell's histogram by the gradient energy of its 3x3 cell neighbourhood and
/// square-roots it; values end in 0..1.
fn normalise_cells(cells: &[f32], grid: usize, out: &mut Vec<f32>) {
    let energy: Vec<f32> = cells
        .chunks_exact(BINS)
        .map(|h| h.iter().map(|v| v * v).sum())
        .collect();
    for cy in 0..grid {
        for cx in 0..grid {
            let mut total = 0.0f32;
            for ny in cy.saturating_sub(1)..(cy + 2).min(grid) {
                for nx in cx.saturating_sub(1)..(cx + 2).min(grid) {
                    total += energy[ny * grid + nx];
                }
            }
            let norm = total.sqrt() + 1e-3;
            let cell = &cells[(cy * grid + cx) * BINS..(cy * grid + cx + 1) * BINS];
            out.extend(cell.iter().map(|v| (v / norm).sqrt()));
        }
    }
}

/// A joint hue/saturation/value histogram, square-rooted proportions.
fn colour_histogram(planes: &[Vec<f32>; 3], out: &mut Vec<f32>) {
    let mut bins = [0.0f32; HUE_BINS * SAT_BINS * VAL_BINS];
    for ((&r, &g), &b) in planes[0].iter().zip(&planes[1]).zip(&planes[2]) {
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let chroma = max - min;
        let hue = if chroma <= 0.0 {
            0.0
        } else if max == r {
            ((g - b) / chroma).rem_euclid(6.0)
        } else if max == g {
            (b - r) / chroma + 2.0
        } else {
            (r - g) / chroma + 4.0
        } / 6.0;
        let saturation = if max > 0.0 { chroma / max } else { 0.0 };
        let h = ((hue * HUE_BINS as f32) as usize).min(HUE_BINS - 1);
        let s = ((saturation * SAT_BINS as f32) as usize).min(SAT_BINS - 1);
        let v = ((max * VAL_BINS as f32) as usize).min(VAL_BINS - 1);
        bins[(h * SAT_BINS + s) * VAL_BINS + v] += 1.0;
    }
    let total = (SIDE * SIDE) as f32;
    out.extend(bins.iter().map(|n| (n / total).sqrt()));
}

/// The image averaged down to 8x8 RGB.
fn tiny_image(planes: &[Vec<f32>; 3], out: &mut Vec<f32>) {
    let step = SIDE / TINY;
    for ty in 0..TINY {
        for tx in 0..TINY {
            for plane in planes {
                let mut sum = 0.0f32;
                for y in ty * step..(ty + 1) * step {
                    for x in tx * step..(tx + 1) * step {
                        sum += plane[y * SIDE + x];
                    }
                }
                out.push(sum / (step * step) as f32);
            }
        }
    }
}

/// Stored vectors by pixel hash, for one embedder. Saved whole after each embed run; only
/// the vectors of the current images are kept, so it never grows beyond the dataset.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FeatureStore {
    pub embedder: String,
    pub dims: usize,
    /// Sorted, so a lookup is a binary search.
    pub keys: Vec<u128>,
    /// `keys.len() * dims` bytes, row `i` belonging to `keys[i]`.
    pub vectors: Vec<u8>,
}

impl FeatureStore {
    fn lookup(&self, key: u128) -> Option<&[u8]> {
        let i = self.keys.binary_search(&key).ok()?;
        self.vectors.get(i * self.dims..(i + 1) * self.dims)
    }
}

/// How many vectors were computed and how many came from the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureCounts {
    pub computed: usize,
    pub reused: usize,
}

/// The feature matrix of every image (row per image, `dims` bytes a row), computing only the
/// vectors the previous store lacks. Returns the matrix, the new store and the counts.
/// `pixels(i)` gives image `i`'s pixel hash and RGB thumbnail.
pub fn compute<'a>(
    embedder: &dyn Embedder,
    count: usize,
    key_of: &(dyn Fn(usize) -> u128 + Sync),
    image_of: &(dyn Fn(usize) -> (&'a [u8], u32, u32) + Sync),
    previous: Option<&FeatureStore>,
) -> (Vec<u8>, FeatureStore, FeatureCounts) {
    let dims = embedder.dims();
    let previous = previous.filter(|p| p.embedder == embedder.id() && p.dims == dims);
    let mut matrix = vec![0u8; count * dims];
    let computed: usize = matrix
        .par_chunks_mut(dims.max(1))
        .enumerate()
        .map(|(i, row)| {
            if let Some(stored) = previous.and_then(|p| p.lookup(key_of(i))) {
                row.copy_from_slice(stored);
                0
            } else {
                let (rgb, w, h) = image_of(i);
                embedder.embed(rgb, w, h, row);
                1
            }
        })
        .sum();
    let mut order: Vec<usize> = (0..count).collect();
    order.sort_by_key(|&i| key_of(i));
    order.dedup_by_key(|i| key_of(*i));
    let mut store = FeatureStore {
        embedder: embedder.id(),
        dims,
        keys: Vec::with_capacity(order.len()),
        vectors: Vec::with_capacity(order.len() * dims),
    };
    for i in order {
        store.keys.push(key_of(i));
        store
            .vectors
            .extend_from_slice(&matrix[i * dims..(i + 1) * dims]);
    }
    let counts = FeatureCounts {
        computed,
        reused: count - computed,
    };
    (matrix, store, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(seed: u8) -> Vec<u8> {
        (0..SIDE * SIDE * 3)
            .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn vector_has_the_declared_length_and_range() {
        let mut out = vec![0u8; BuiltinFeatures.dims()];
        BuiltinFeatures.embed(&image(3), 32, 32, &mut out);
        assert_eq!(
            builtin_vector(&image(3), 32, 32).len(),
            BuiltinFeatures.dims()
        );
        assert!(out.iter().any(|&v| v > 0));
    }

    #[test]
    fn odd_sizes_and_damaged_buffers_do_not_panic() {
        let mut out = vec![0u8; BuiltinFeatures.dims()];
        BuiltinFeatures.embed(&[1, 2, 3], 1, 1, &mut out);
        BuiltinFeatures.embed(&[], 7, 3, &mut out);
        BuiltinFeatures.embed(&[9; 5 * 64 * 3], 5, 64, &mut out);
    }

    #[test]
    fn store_reuses_by_key_and_computes_the_rest() {
        let images: Vec<Vec<u8>> = (1..5).map(image).collect();
        let keys = [10u128, 20, 30, 40];
        let image_of = |i: usize| (images[i].as_slice(), 32u32, 32u32);
        let (first, store, counts) = compute(&BuiltinFeatures, 3, &|i| keys[i], &image_of, None);
        assert_eq!(
            counts,
            FeatureCounts {
                computed: 3,
                reused: 0
            }
        );
        let (second, _, counts) =
            compute(&BuiltinFeatures, 4, &|i| keys[i], &image_of, Some(&store));
        assert_eq!(
            counts,
            FeatureCounts {
                computed: 1,
                reused: 3
            }
        );
        assert_eq!(first[..], second[..first.len()]);
    }
}
