//! The per-class mean and std images: per-pixel integer sums of each (class, split) group's
//! thumbnails at the common size (`PixelSums`, filled by the pass in [`super::pixels`]), turned
//! into RGB bytes here.
//!
//! Invariants: the sums are exact integers, u32 for a batch of images and flushed into u64
//! before they could overflow. A class's whole image comes from the sum of its groups' sums,
//! never from averaging their images. Images come out class by class in layout order, the
//! whole class first, then each split in ingest's order; a group without images has none.

use serde::{Deserialize, Serialize};

use super::pixels::{Layout, Sums};
use super::properties::variance;

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

/// Per-pixel integer sums of one (class, split) group's images at the common size.
///
/// Images are added into u32 sums (twice the SIMD lanes of u64), which are flushed into the
/// u64 totals before they could overflow; `sum` and `sumsq` are complete after [`flush`].
///
/// [`flush`]: PixelSums::flush
pub(super) struct PixelSums {
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
    pub(super) fn new(len: usize) -> PixelSums {
        PixelSums {
            images: 0,
            sum: vec![0; len],
            sumsq: vec![0; len],
            pending: 0,
            pending_sum: vec![0; len],
            pending_sumsq: vec![0; len],
        }
    }

    pub(super) fn add_pixels(&mut self, bytes: &[u8]) {
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
    pub(super) fn flush(&mut self) {
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

    pub(super) fn merge(&mut self, other: &PixelSums) {
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

/// Mean and std image per class, then per class and split when the dataset has splits.
pub(super) fn class_images(layout: &Layout, sums: &Sums) -> Vec<ClassImage> {
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

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage};

    use super::{PENDING_LIMIT, PixelSums};
    use crate::stages::statistics::fixtures::{config, ingested, picture, uniform};
    use crate::stages::statistics::run;

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
}
