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

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use image::imageops::{self, FilterType};
use image::{ImageBuffer, Rgb};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::StatisticsConfig;
use crate::stage::Stage;
use crate::stages::ingest::{ImageRecord, Ingested};

pub const STAGE: Stage = Stage::Statistics;
/// Bump when what statistics measures or stores changes.
pub const VERSION: u32 = 2;

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
    /// "brightness", "contrast", "saturation", "sharpness (log10)" (of 1 + the Laplacian
    /// variance), "entropy", "width", "height", "aspect", "file_size" (bytes).
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
    stats.resolution = resolution(&ingest.images);

    let layout = Layout::new(ingested);
    let (properties, sums) = measure_all(ingested, &layout);
    stats.class_images = class_images(&layout, &sums);
    stats.histograms = class_histograms(&layout, &sums);
    stats.similar_classes = similar_classes(&stats.histograms);
    stats.distributions = distributions(&ingest.images, &properties);
    stats.extremes = extremes(&ingest.images, &properties, config.extremes);
    stats.greyscale_in_colour = greyscale_in_colour(&properties);
    stats.properties = properties;
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

/// Whether the thumbnails are the images themselves, in words.
fn resolution(images: &[ImageRecord]) -> Resolution {
    let shrunk: Vec<&ImageRecord> = images
        .iter()
        .filter(|r| u32::from(r.thumb_width) != r.width || u32::from(r.thumb_height) != r.height)
        .collect();
    if images.is_empty() {
        return Resolution {
            full: true,
            note: "no images to analyse".into(),
        };
    }
    if shrunk.is_empty() {
        let largest_side = images
            .iter()
            .map(|r| r.width.max(r.height))
            .max()
            .unwrap_or(0);
        return Resolution {
            full: true,
            note: format!("full resolution (every image is at most {largest_side} px)"),
        };
    }
    // The longest side of a shrunk thumbnail is the thumbnail size ingest used.
    let thumb_side = shrunk
        .iter()
        .map(|r| r.thumb_width.max(r.thumb_height))
        .max()
        .unwrap_or(0);
    Resolution {
        full: false,
        note: format!(
            "thumbnails of at most {thumb_side} px for {} of {} images; the mean and std are \
             exact, from full-resolution pixels",
            thousands(shrunk.len()),
            thousands(images.len())
        ),
    }
}

/// How images are grouped for the class images and histograms, fixed before the pass.
struct Layout {
    /// The ingest class list, then any label missing from it (none, normally).
    classes: Vec<String>,
    /// The ingest split list; empty without splits.
    splits: Vec<String>,
    /// Per image, its group: `class * slots + slot`, slot 0 meaning "no split".
    group_of: Vec<usize>,
    /// Common size of the class images.
    common: (u32, u32),
    /// `c·log2(c)` for every pixel count a luma histogram bin can hold in a thumbnail.
    c_log_c: Vec<f64>,
}

impl Layout {
    fn new(ingested: &Ingested) -> Layout {
        let ingest = &ingested.artifact;
        let mut classes = ingest.classes.clone();
        let mut class_index: HashMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let splits = ingest.splits.clone();
        let split_index: HashMap<&str, usize> = splits
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i + 1))
            .collect();
        let slots = splits.len() + 1;
        let mut extra_labels = Vec::new();
        let group_of = ingest
            .images
            .iter()
            .map(|record| {
                let class = *class_index.entry(record.label.as_str()).or_insert_with(|| {
                    extra_labels.push(record.label.clone());
                    classes.len() + extra_labels.len() - 1
                });
                let slot = record
                    .split
                    .as_deref()
                    .and_then(|s| split_index.get(s).copied())
                    .unwrap_or(0);
                class * slots + slot
            })
            .collect();
        classes.extend(extra_labels);

        let mut thumb_sizes: BTreeMap<(u32, u32), usize> = BTreeMap::new();
        for record in &ingest.images {
            let size = (
                u32::from(record.thumb_width),
                u32::from(record.thumb_height),
            );
            *thumb_sizes.entry(size).or_default() += 1;
        }
        // Most common first; among equally common sizes the smallest, so ties are stable.
        let most_common = thumb_sizes
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(&size, &count)| (size, count));
        let common = match most_common {
            Some((size, count)) if count * 10 >= ingest.images.len() * 9 && size.0 * size.1 > 0 => {
                size
            }
            _ => (FALLBACK_SIZE, FALLBACK_SIZE),
        };

        let largest_thumb = ingest
            .images
            .iter()
            .map(|r| usize::from(r.thumb_width) * usize::from(r.thumb_height))
            .max()
            .unwrap_or(0)
            .min(C_LOG_C_LIMIT);
        let c_log_c = (0..=largest_thumb)
            .map(|c| {
                if c == 0 {
                    0.0
                } else {
                    c as f64 * (c as f64).log2()
                }
            })
            .collect();
        Layout {
            classes,
            splits,
            group_of,
            common,
            c_log_c,
        }
    }

    fn slots(&self) -> usize {
        self.splits.len() + 1
    }

    fn groups(&self) -> usize {
        self.classes.len() * self.slots()
    }
}

/// Class-image size when thumbnails do not mostly share one size.
const FALLBACK_SIZE: u32 = 32;
/// Largest bin count whose `c·log2(c)` is tabulated (larger thumbnails compute it).
const C_LOG_C_LIMIT: usize = 1 << 20;
/// Images with a contrast below this are flat: their Laplacian variance is near zero
/// without their being blurry, so they are left out of the blurriest gallery.
const FLAT_CONTRAST: f32 = 0.02;
/// Bins of every property distribution.
const DISTRIBUTION_BINS: usize = 30;

/// Per-pixel integer sums of one (class, split) group's images at the common size.
///
/// Images are added into u32 sums (twice the SIMD lanes of u64), which are flushed into the
/// u64 totals before they could overflow; `sum` and `sumsq` are complete after [`flush`].
///
/// [`flush`]: PixelSums::flush
struct PixelSums {
    images: u64,
    sum: Vec<u64>,
    sumsq: Vec<u64>,
    /// Images in the u32 sums below, not yet in the totals.
    pending: u32,
    pending_sum: Vec<u32>,
    pending_sumsq: Vec<u32>,
}

/// Images the u32 sums can take: 66,051 · 255² < 2³².
const PENDING_LIMIT: u32 = u32::MAX / (255 * 255);

impl PixelSums {
    fn new(len: usize) -> PixelSums {
        PixelSums {
            images: 0,
            sum: vec![0; len],
            sumsq: vec![0; len],
            pending: 0,
            pending_sum: vec![0; len],
            pending_sumsq: vec![0; len],
        }
    }

    fn add_pixels(&mut self, bytes: &[u8]) {
        if self.pending == PENDING_LIMIT {
            self.flush();
        }
        self.images += 1;
        self.pending += 1;
        for ((sum, sumsq), &value) in self
            .pending_sum
            .iter_mut()
            .zip(&mut self.pending_sumsq)
            .zip(bytes)
        {
            let value = u16::from(value);
            *sum += u32::from(value);
            // 255² fits in u16: the multiplication stays 8 lanes wide.
            *sumsq += u32::from(value * value);
        }
    }

    /// Moves the u32 sums into the totals.
    fn flush(&mut self) {
        if self.pending == 0 {
            return;
        }
        for (total, pending) in self.sum.iter_mut().zip(&mut self.pending_sum) {
            *total += u64::from(std::mem::take(pending));
        }
        for (total, pending) in self.sumsq.iter_mut().zip(&mut self.pending_sumsq) {
            *total += u64::from(std::mem::take(pending));
        }
        self.pending = 0;
    }

    fn merge(&mut self, other: &PixelSums) {
        self.flush();
        self.images += other.images;
        for ((a, b), c) in self.sum.iter_mut().zip(&other.sum).zip(&other.pending_sum) {
            *a += b + u64::from(*c);
        }
        for ((a, b), c) in self
            .sumsq
            .iter_mut()
            .zip(&other.sumsq)
            .zip(&other.pending_sumsq)
        {
            *a += b + u64::from(*c);
        }
    }
}

/// Red, green, blue and brightness pixel counts of one class, `BINS` bins each.
type ColourCounts = [[u64; BINS]; 4];

/// What the pass sums over images. Every sum is an integer, so the result does not depend
/// on how rayon splits the work or in which order it reduces: the artifact is identical
/// from run to run, whatever the thread count.
struct Sums {
    /// Per group (see [`Layout::group_of`]); allocated on first use.
    groups: Vec<Option<PixelSums>>,
    /// Per class.
    colours: Vec<ColourCounts>,
    /// Scratch: the luma of the image being measured (kept to avoid an allocation per image).
    luma: Vec<u32>,
}

impl Sums {
    fn new(layout: &Layout) -> Sums {
        Sums {
            groups: (0..layout.groups()).map(|_| None).collect(),
            colours: vec![[[0; BINS]; 4]; layout.classes.len()],
            luma: Vec::new(),
        }
    }

    /// Measures image `index` and adds it to the sums.
    fn add(&mut self, ingested: &Ingested, layout: &Layout, index: usize) -> ImageProperties {
        let record = &ingested.artifact.images[index];
        let (width, height) = (
            u32::from(record.thumb_width),
            u32::from(record.thumb_height),
        );
        let pixels = ingested.thumb_bytes(index);
        let group = layout.group_of[index];
        let class = group / layout.slots();
        let mut properties = measure(
            pixels,
            width as usize,
            height as usize,
            &mut self.luma,
            &mut self.colours[class],
            &layout.c_log_c,
        );
        properties.aspect = if record.height == 0 {
            0.0
        } else {
            record.width as f32 / record.height as f32
        };
        if width * height == 0 {
            return properties;
        }
        let (common_width, common_height) = layout.common;
        let sums = self.groups[group].get_or_insert_with(|| {
            PixelSums::new(common_width as usize * common_height as usize * 3)
        });
        if (width, height) == layout.common {
            sums.add_pixels(pixels);
        } else if let Some(view) = ImageBuffer::<Rgb<u8>, &[u8]>::from_raw(width, height, pixels) {
            let resized =
                imageops::resize(&view, common_width, common_height, FilterType::Triangle);
            sums.add_pixels(resized.as_raw());
        }
        properties
    }

    fn merge(mut self, other: Sums) -> Sums {
        for (mine, theirs) in self.groups.iter_mut().zip(other.groups) {
            match (mine.as_mut(), theirs) {
                (Some(mine), Some(theirs)) => mine.merge(&theirs),
                (None, Some(theirs)) => *mine = Some(theirs),
                (_, None) => {}
            }
        }
        for (mine, theirs) in self.colours.iter_mut().zip(&other.colours) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
            }
        }
        self
    }
}

/// The one parallel pass: every image's properties, and the class sums.
fn measure_all(ingested: &Ingested, layout: &Layout) -> (Vec<ImageProperties>, Sums) {
    let mut properties = vec![ImageProperties::default(); ingested.artifact.images.len()];
    let mut sums = properties
        .par_iter_mut()
        .enumerate()
        // A fold accumulator holds a class image per group: keep the pieces big enough
        // that allocating one is small next to the work it does.
        .with_min_len(256)
        .fold(
            || Sums::new(layout),
            |mut sums, (index, slot)| {
                *slot = sums.add(ingested, layout, index);
                sums
            },
        )
        .reduce(|| Sums::new(layout), Sums::merge);
    for group in sums.groups.iter_mut().flatten() {
        group.flush();
    }
    (properties, sums)
}

/// Properties of one RGB image (all but `aspect`), adding its pixels to the class's colour
/// counts. Luma is kept as `1000 × (0.299R + 0.587G + 0.114B)` in integers so every sum below
/// is exact.
fn measure(
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
fn variance(n: u128, sum: i128, sumsq: u128) -> f64 {
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

/// Mean and std image per class, then per class and split when the dataset has splits.
fn class_images(layout: &Layout, sums: &Sums) -> Vec<ClassImage> {
    let slots = layout.slots();
    let (width, height) = layout.common;
    let image = |class: &str, split: Option<&str>, sums: &PixelSums| {
        let n = u128::from(sums.images);
        let mut mean_rgb = Vec::with_capacity(sums.sum.len());
        let mut std_rgb = Vec::with_capacity(sums.sum.len());
        for (&sum, &sumsq) in sums.sum.iter().zip(&sums.sumsq) {
            mean_rgb.push(((u128::from(sum) * 2 + n) / (2 * n)).min(255) as u8);
            let std = variance(n, i128::from(sum), u128::from(sumsq)).sqrt() / 255.0;
            // Scaled so that std 0.5 (on 0..1) is 255.
            std_rgb.push((std * 510.0).round().clamp(0.0, 255.0) as u8);
        }
        ClassImage {
            class: class.to_string(),
            split: split.map(str::to_string),
            images: sums.images as usize,
            width,
            height,
            mean_rgb,
            std_rgb,
        }
    };
    let mut out = Vec::new();
    for (class_index, class) in layout.classes.iter().enumerate() {
        let groups = &sums.groups[class_index * slots..(class_index + 1) * slots];
        let mut total: Option<PixelSums> = None;
        for group in groups.iter().flatten() {
            match &mut total {
                Some(total) => total.merge(group),
                None => {
                    let mut first = PixelSums::new(group.sum.len());
                    first.merge(group);
                    total = Some(first);
                }
            }
        }
        let Some(total) = total else { continue };
        out.push(image(class, None, &total));
        for (split, group) in layout.splits.iter().zip(&groups[1..]) {
            if let Some(group) = group {
                out.push(image(class, Some(split), group));
            }
        }
    }
    out
}

/// Normalised colour histograms of every class that has pixels.
fn class_histograms(layout: &Layout, sums: &Sums) -> Vec<ClassHistogram> {
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
fn similar_classes(histograms: &[ClassHistogram]) -> Vec<ClassPair> {
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

/// A histogram of each property over all images.
fn distributions(images: &[ImageRecord], properties: &[ImageProperties]) -> Vec<Distribution> {
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
    let counts = if max > min {
        let mut counts = vec![0; DISTRIBUTION_BINS];
        let scale = DISTRIBUTION_BINS as f64 / (max - min);
        for &v in values {
            let bin = (((v - min) * scale) as usize).min(DISTRIBUTION_BINS - 1);
            counts[bin] += 1;
        }
        counts
    } else {
        vec![values.len()]
    };
    Distribution {
        property: property.to_string(),
        min,
        max,
        counts,
    }
}

/// The galleries of extremes, in a fixed order; a gallery with nothing to show is empty.
fn extremes(
    images: &[ImageRecord],
    properties: &[ImageProperties],
    per_gallery: usize,
) -> Vec<Extreme> {
    let lowest = |value: fn(&ImageProperties) -> f32, keep: fn(&ImageProperties) -> bool| {
        most_extreme(
            per_gallery,
            properties
                .iter()
                .enumerate()
                .filter(|(_, p)| keep(p))
                .map(|(i, p)| (f64::from(value(p)), i, f64::from(value(p))))
                .collect(),
            f64::total_cmp,
        )
    };
    let brightest = most_extreme(
        per_gallery,
        properties
            .iter()
            .enumerate()
            .map(|(i, p)| (-f64::from(p.brightness), i, f64::from(p.brightness)))
            .collect(),
        f64::total_cmp,
    );
    let gallery = |name: &str, title: String, images: Vec<(usize, f64)>| Extreme {
        name: name.to_string(),
        title,
        images,
    };
    let (odd_title, odd) = odd_sizes(images, per_gallery);
    vec![
        gallery(
            "darkest",
            "Darkest (lowest mean brightness)".into(),
            lowest(|p| p.brightness, |_| true),
        ),
        gallery(
            "brightest",
            "Brightest (highest mean brightness)".into(),
            brightest,
        ),
        gallery(
            "blurriest",
            "Blurriest (least edge detail; flat images are left out)".into(),
            lowest(|p| p.sharpness, |p| p.contrast >= FLAT_CONTRAST),
        ),
        gallery(
            "lowest_information",
            "Lowest information (fewest distinct brightness levels)".into(),
            lowest(|p| p.entropy, |_| true),
        ),
        gallery(
            "lowest_contrast",
            "Lowest contrast (flattest brightness)".into(),
            lowest(|p| p.contrast, |_| true),
        ),
        gallery("odd_size", odd_title, odd),
    ]
}

/// Images whose size differs from the most common one, the most different shape first
/// (then the most different area, then by index); the value is the aspect ratio.
fn odd_sizes(images: &[ImageRecord], per_gallery: usize) -> (String, Vec<(usize, f64)>) {
    let mut sizes: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    for record in images {
        *sizes.entry((record.width, record.height)).or_default() += 1;
    }
    let Some((&common, _)) = sizes.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) else {
        return ("Odd sizes".into(), Vec::new());
    };
    let title = format!(
        "Odd sizes (not the usual {}x{}; most different shape first)",
        common.0, common.1
    );
    let log_ratio = |a: f64, b: f64| {
        if a > 0.0 && b > 0.0 {
            (a / b).ln().abs()
        } else {
            f64::INFINITY
        }
    };
    let common_aspect = f64::from(common.0) / f64::from(common.1.max(1));
    let common_area = f64::from(common.0) * f64::from(common.1);
    let candidates = images
        .iter()
        .enumerate()
        .filter(|(_, r)| (r.width, r.height) != common)
        .map(|(i, r)| {
            let aspect = f64::from(r.width) / f64::from(r.height.max(1));
            let area = f64::from(r.width) * f64::from(r.height);
            (
                (
                    -log_ratio(aspect, common_aspect),
                    -log_ratio(area, common_area),
                ),
                i,
                aspect,
            )
        })
        .collect();
    let odd = most_extreme(per_gallery, candidates, |a: &(f64, f64), b: &(f64, f64)| {
        a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1))
    });
    (title, odd)
}

/// The `k` candidates with the smallest key, ties broken by image index, as (index, value).
fn most_extreme<K>(
    k: usize,
    mut candidates: Vec<(K, usize, f64)>,
    compare_keys: impl Fn(&K, &K) -> Ordering,
) -> Vec<(usize, f64)> {
    let order =
        |a: &(K, usize, f64), b: &(K, usize, f64)| compare_keys(&a.0, &b.0).then(a.1.cmp(&b.1));
    if k == 0 {
        return Vec::new();
    }
    if candidates.len() > k {
        candidates.select_nth_unstable_by(k - 1, order);
        candidates.truncate(k);
    }
    candidates.sort_unstable_by(order);
    candidates
        .into_iter()
        .map(|(_, index, value)| (index, value))
        .collect()
}

/// Greyscale images, when they are the exception (fewer than half of all images).
fn greyscale_in_colour(properties: &[ImageProperties]) -> Vec<usize> {
    let greyscale: Vec<usize> = properties
        .iter()
        .enumerate()
        .filter(|(_, p)| p.greyscale)
        .map(|(i, _)| i)
        .collect();
    if greyscale.len() * 2 < properties.len() {
        greyscale
    } else {
        Vec::new()
    }
}

fn thousands(n: usize) -> String {
    crate::text::thousands(n as u64)
}

#[cfg(test)]
mod tests {
    use image::RgbImage;

    use super::*;
    use crate::dataset::DatasetKind;
    use crate::stages::ingest::IngestArtifact;

    /// One test image: its class, split, thumbnail, and the original size when the thumbnail
    /// was shrunk from something larger.
    struct Picture {
        label: &'static str,
        split: Option<&'static str>,
        thumb: RgbImage,
        original: Option<(u32, u32)>,
    }

    fn picture(label: &'static str, split: Option<&'static str>, thumb: RgbImage) -> Picture {
        Picture {
            label,
            split,
            thumb,
            original: None,
        }
    }

    /// An ingest result built in memory, as ingest would have stored it.
    fn ingested(pictures: Vec<Picture>) -> Ingested {
        let mut thumbs = Vec::new();
        let mut images = Vec::new();
        let mut classes: Vec<String> = Vec::new();
        let mut splits: Vec<String> = Vec::new();
        for (i, picture) in pictures.into_iter().enumerate() {
            let (width, height) = picture
                .original
                .unwrap_or((picture.thumb.width(), picture.thumb.height()));
            let mut channel_sum = [0u64; 3];
            let mut channel_sumsq = [0u64; 3];
            for px in picture.thumb.pixels() {
                for c in 0..3 {
                    channel_sum[c] += u64::from(px[c]);
                    channel_sumsq[c] += u64::from(px[c]) * u64::from(px[c]);
                }
            }
            if !classes.iter().any(|c| c == picture.label) {
                classes.push(picture.label.to_string());
            }
            if let Some(split) = picture.split
                && !splits.iter().any(|s| s == split)
            {
                splits.push(split.to_string());
            }
            images.push(ImageRecord {
                path: format!("{}/{i:04}.png", picture.label),
                split: picture.split.map(str::to_string),
                label: picture.label.to_string(),
                content_hash: i as u128,
                file_size: 100 + i as u64,
                format: "png".into(),
                width,
                height,
                color: "rgb8".into(),
                pixel_hash: i as u128,
                channel_sum,
                channel_sumsq,
                thumb_width: picture.thumb.width() as u16,
                thumb_height: picture.thumb.height() as u16,
                thumb_offset: thumbs.len() as u64,
            });
            thumbs.extend_from_slice(picture.thumb.as_raw());
        }
        Ingested::new(
            IngestArtifact {
                kind: DatasetKind::Folder {
                    has_splits: !splits.is_empty(),
                },
                classes,
                splits,
                images,
                rejected: Vec::new(),
                skipped: Vec::new(),
                thumbs_len: thumbs.len() as u64,
                thumbs_digest: 0,
                decoded_with: crate::decode::DecodeOptions {
                    thumbnail_size: 64,
                    max_pixels: 100_000_000,
                },
            },
            thumbs,
        )
    }

    fn uniform(size: u32, rgb: [u8; 3]) -> RgbImage {
        RgbImage::from_pixel(size, size, Rgb(rgb))
    }

    /// Black and white squares of one pixel.
    fn checkerboard(size: u32) -> RgbImage {
        RgbImage::from_fn(size, size, |x, y| {
            if (x + y) % 2 == 0 {
                Rgb([255, 255, 255])
            } else {
                Rgb([0, 0, 0])
            }
        })
    }

    /// A smooth left-to-right ramp: contrast, but no edges.
    fn ramp(size: u32) -> RgbImage {
        RgbImage::from_fn(size, size, |x, _| {
            let v = (x * 255 / (size - 1)) as u8;
            Rgb([v, v, v])
        })
    }

    /// Seeded noise around a base colour, `spread` wide (splitmix64, so tests need no crate).
    fn noise(size: u32, seed: u64, base: [u8; 3], spread: u8) -> RgbImage {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        RgbImage::from_fn(size, size, |_, _| {
            let mut px = [0u8; 3];
            for (c, value) in px.iter_mut().enumerate() {
                let offset = (next() % (u64::from(spread) + 1)) as i32 - i32::from(spread / 2);
                *value = (i32::from(base[c]) + offset).clamp(0, 255) as u8;
            }
            Rgb(px)
        })
    }

    fn config(extremes: usize) -> StatisticsConfig {
        StatisticsConfig {
            extremes,
            ..StatisticsConfig::default()
        }
    }

    fn gallery<'a>(stats: &'a StatisticsArtifact, name: &str) -> &'a Extreme {
        stats
            .extremes
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name} gallery"))
    }

    fn indices(extreme: &Extreme) -> Vec<usize> {
        extreme.images.iter().map(|(i, _)| *i).collect()
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-4
    }

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

    #[test]
    fn darkest_and_brightest_are_ordered_most_extreme_first_ties_by_index() {
        let data = ingested(
            [10u8, 50, 200, 30, 250, 10, 200]
                .into_iter()
                .map(|v| picture("a", None, uniform(4, [v, v, v])))
                .collect(),
        );
        let stats = run(&data, &config(3));
        assert_eq!(indices(gallery(&stats, "darkest")), vec![0, 5, 3]);
        assert_eq!(indices(gallery(&stats, "brightest")), vec![4, 2, 6]);
        let darkest = gallery(&stats, "darkest");
        assert!((darkest.images[2].1 - 30.0 / 255.0).abs() < 1e-6);
        assert!(darkest.title.contains("Darkest"));
    }

    #[test]
    fn blurriest_leaves_out_flat_images_which_show_as_lowest_information() {
        let data = ingested(vec![
            picture("a", None, uniform(16, [90, 90, 90])),
            picture("a", None, checkerboard(16)),
            picture("a", None, ramp(16)),
            picture("a", None, uniform(16, [10, 200, 30])),
        ]);
        let stats = run(&data, &config(4));
        assert_eq!(indices(gallery(&stats, "blurriest")), vec![2, 1]);
        assert_eq!(
            indices(gallery(&stats, "lowest_information")),
            vec![0, 3, 1, 2]
        );
        assert_eq!(indices(gallery(&stats, "lowest_contrast"))[..2], [0, 3]);
    }

    #[test]
    fn class_mean_and_std_images_are_the_pixelwise_average_and_spread() {
        let first = RgbImage::from_fn(4, 4, |x, y| Rgb([(x * 10) as u8, (y * 10) as u8, 0]));
        let second =
            RgbImage::from_fn(4, 4, |x, y| Rgb([(x * 10 + 20) as u8, (y * 10) as u8, 100]));
        let data = ingested(vec![
            picture("a", Some("train"), first),
            picture("a", Some("test"), second),
            picture("b", Some("train"), uniform(4, [1, 2, 3])),
        ]);
        let stats = run(&data, &config(4));
        let whole = stats
            .class_images
            .iter()
            .find(|c| c.class == "a" && c.split.is_none())
            .expect("class image of a");
        assert_eq!((whole.width, whole.height, whole.images), (4, 4, 2));
        let expected_mean: Vec<u8> = (0..4u32)
            .flat_map(|y| (0..4u32).flat_map(move |x| [(x * 10 + 10) as u8, (y * 10) as u8, 50]))
            .collect();
        assert_eq!(whole.mean_rgb, expected_mean);
        // Std of two values 20 apart is 10 (of 255), scaled by 510/255: 20; of 0 and 100: 100.
        let expected_std: Vec<u8> = (0..16).flat_map(|_| [20, 0, 100]).collect();
        assert_eq!(whole.std_rgb, expected_std);

        let order: Vec<(&str, Option<&str>)> = stats
            .class_images
            .iter()
            .map(|c| (c.class.as_str(), c.split.as_deref()))
            .collect();
        assert_eq!(
            order,
            vec![
                ("a", None),
                ("a", Some("train")),
                ("a", Some("test")),
                ("b", None),
                ("b", Some("train")),
            ]
        );
        let a_train = &stats.class_images[1];
        assert_eq!(a_train.images, 1);
        assert_eq!(&a_train.mean_rgb[..6], &[0, 0, 0, 10, 0, 0]);
        assert!(a_train.std_rgb.iter().all(|&s| s == 0));
    }

    #[test]
    fn class_images_resize_odd_thumbnails_to_the_common_size() {
        let mut pictures: Vec<Picture> = (0..9)
            .map(|_| picture("a", None, uniform(8, [100, 100, 100])))
            .collect();
        pictures.push(picture(
            "a",
            None,
            RgbImage::from_pixel(16, 4, Rgb([200, 200, 200])),
        ));
        let stats = run(&ingested(pictures), &config(4));
        let image = &stats.class_images[0];
        // 9 of 10 thumbnails are 8x8: that is the common size.
        assert_eq!((image.width, image.height), (8, 8));
        assert!(
            image.mean_rgb.iter().all(|&v| v == 110),
            "{:?}",
            image.mean_rgb
        );

        // Without a 90 % majority, class images fall back to 32x32.
        let mixed = ingested(vec![
            picture("a", None, uniform(8, [100, 100, 100])),
            picture("a", None, uniform(10, [100, 100, 100])),
        ]);
        let stats = run(&mixed, &config(4));
        let image = &stats.class_images[0];
        assert_eq!((image.width, image.height), (32, 32));
        assert_eq!(image.mean_rgb.len(), 32 * 32 * 3);
        assert!(image.mean_rgb.iter().all(|&v| v == 100));
    }

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

    #[test]
    fn resolution_is_full_only_when_thumbnails_have_the_original_size() {
        let full = ingested(vec![
            picture("a", None, uniform(8, [1, 2, 3])),
            picture("a", None, uniform(16, [1, 2, 3])),
        ]);
        let stats = run(&full, &config(4));
        assert!(stats.resolution.full, "{}", stats.resolution.note);
        assert!(stats.resolution.note.contains("full resolution"));

        let mut shrunk = picture("a", None, RgbImage::from_pixel(64, 32, Rgb([1, 2, 3])));
        shrunk.original = Some((640, 320));
        let partial = ingested(vec![picture("a", None, uniform(8, [1, 2, 3])), shrunk]);
        let stats = run(&partial, &config(4));
        assert!(!stats.resolution.full);
        assert!(
            stats.resolution.note.contains("64 px for 1 of 2 images"),
            "{}",
            stats.resolution.note
        );
        // Aspect and width come from the original image, not the thumbnail.
        assert!(close(stats.properties[1].aspect, 2.0));
        let width = stats
            .distributions
            .iter()
            .find(|d| d.property == "width")
            .expect("width distribution");
        assert_eq!((width.min, width.max), (8.0, 640.0));
    }

    #[test]
    fn odd_sizes_list_the_most_different_shape_first() {
        let mut pictures: Vec<Picture> = (0..5)
            .map(|_| picture("a", None, uniform(8, [50, 50, 50])))
            .collect();
        pictures.push(picture(
            "a",
            None,
            RgbImage::from_pixel(16, 8, Rgb([50, 50, 50])),
        ));
        pictures.push(picture(
            "a",
            None,
            RgbImage::from_pixel(8, 32, Rgb([50, 50, 50])),
        ));
        pictures.push(picture("a", None, uniform(12, [50, 50, 50])));
        let stats = run(&ingested(pictures), &config(16));
        let odd = gallery(&stats, "odd_size");
        assert_eq!(indices(odd), vec![6, 5, 7]);
        assert!(odd.title.contains("8x8"), "{}", odd.title);

        let same = ingested(vec![
            picture("a", None, uniform(8, [1, 1, 1])),
            picture("b", None, uniform(8, [9, 9, 9])),
        ]);
        assert!(
            gallery(&run(&same, &config(16)), "odd_size")
                .images
                .is_empty()
        );
    }

    #[test]
    fn greyscale_is_listed_only_in_a_mostly_colour_dataset() {
        let mostly_colour = ingested(vec![
            picture("a", None, uniform(4, [10, 20, 30])),
            picture("a", None, uniform(4, [70, 70, 70])),
            picture("a", None, uniform(4, [200, 20, 30])),
        ]);
        assert_eq!(run(&mostly_colour, &config(4)).greyscale_in_colour, vec![1]);
        let mostly_grey = ingested(vec![
            picture("a", None, uniform(4, [10, 10, 10])),
            picture("a", None, uniform(4, [70, 70, 70])),
            picture("a", None, uniform(4, [200, 20, 30])),
        ]);
        assert!(run(&mostly_grey, &config(4)).greyscale_in_colour.is_empty());
    }

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

    #[test]
    fn class_image_sums_survive_more_images_than_u32_can_hold() {
        // The per-pixel sums are u32 until flushed; without the flush at PENDING_LIMIT,
        // sumsq of white pixels overflows after 66,051 images and the std image goes wrong.
        let images = u64::from(PENDING_LIMIT) + 5;
        let mut sums = PixelSums::new(3);
        for _ in 0..images {
            sums.add_pixels(&[255, 1, 0]);
        }
        let mut other = PixelSums::new(3);
        other.add_pixels(&[255, 1, 0]);
        sums.merge(&other);
        sums.flush();
        let n = images + 1;
        assert_eq!(sums.images, n);
        assert_eq!(sums.sum, vec![255 * n, n, 0]);
        assert_eq!(sums.sumsq, vec![255 * 255 * n, n, 0]);
    }

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
