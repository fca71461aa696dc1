//! The one parallel pass over ingest's thumbnails. Each image is measured once
//! ([`super::properties`]); its pixels are added to its (class, split) group's sums for the
//! class images ([`super::class_images`]) and to its class's colour counts
//! ([`super::histograms`]). Also `resolution`: whether those thumbnails are the images
//! themselves, in words.
//!
//! `Layout` fixes, before the pass, how images are grouped and the common size of the class
//! images, so nothing in the pass depends on the order images arrive in.
//!
//! Invariant: every sum the pass keeps is an integer, so rayon's split and reduce order cannot
//! change a bit of the result, whatever the thread count. Never add a floating-point
//! accumulator to `Sums`; turn sums into floats only after the pass.

use std::collections::{BTreeMap, HashMap};

use image::imageops::{self, FilterType};
use image::{ImageBuffer, Rgb};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::class_images::PixelSums;
use super::histograms::{BINS, ColourCounts};
use super::properties::{ImageProperties, measure};
use crate::stages::ingest::{ImageRecord, Ingested};

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

/// Whether the thumbnails are the images themselves, in words.
pub(super) fn resolution(images: &[ImageRecord]) -> Resolution {
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

fn thousands(n: usize) -> String {
    crate::text::thousands(n as u64)
}

/// How images are grouped for the class images and histograms, fixed before the pass.
pub(super) struct Layout {
    /// The ingest class list, then any label missing from it (none, normally).
    pub(super) classes: Vec<String>,
    /// The ingest split list; empty without splits.
    pub(super) splits: Vec<String>,
    /// Per image, its group: `class * slots + slot`, slot 0 meaning "no split".
    group_of: Vec<usize>,
    /// Common size of the class images.
    pub(super) common: (u32, u32),
    /// `c·log2(c)` for every pixel count a luma histogram bin can hold in a thumbnail.
    c_log_c: Vec<f64>,
}

impl Layout {
    pub(super) fn new(ingested: &Ingested) -> Layout {
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

    pub(super) fn slots(&self) -> usize {
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

/// What the pass sums over images. Every sum is an integer, so the result does not depend
/// on how rayon splits the work or in which order it reduces: the artifact is identical
/// from run to run, whatever the thread count.
pub(super) struct Sums {
    /// Per group (see [`Layout::group_of`]); allocated on first use.
    pub(super) groups: Vec<Option<PixelSums>>,
    /// Per class.
    pub(super) colours: Vec<ColourCounts>,
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
pub(super) fn measure_all(ingested: &Ingested, layout: &Layout) -> (Vec<ImageProperties>, Sums) {
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

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage};

    use crate::stages::statistics::fixtures::{Picture, close, config, ingested, picture, uniform};
    use crate::stages::statistics::run;

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
}
