//! Fixtures for the statistics unit tests: an ingest result built in memory from synthetic
//! thumbnails (uniform colours, checkerboards, ramps, seeded noise), as ingest would have
//! stored it. Tests only; nothing here touches the disk.

use image::{Rgb, RgbImage};

use crate::config::StatisticsConfig;
use crate::dataset::DatasetKind;
use crate::stages::ingest::{ImageRecord, IngestArtifact, Ingested};

/// One test image: its class, split, thumbnail, and the original size when the thumbnail
/// was shrunk from something larger.
pub(super) struct Picture {
    pub(super) label: &'static str,
    pub(super) split: Option<&'static str>,
    pub(super) thumb: RgbImage,
    pub(super) original: Option<(u32, u32)>,
}

pub(super) fn picture(
    label: &'static str,
    split: Option<&'static str>,
    thumb: RgbImage,
) -> Picture {
    Picture {
        label,
        split,
        thumb,
        original: None,
    }
}

/// An ingest result built in memory, as ingest would have stored it.
pub(super) fn ingested(pictures: Vec<Picture>) -> Ingested {
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

pub(super) fn uniform(size: u32, rgb: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(size, size, Rgb(rgb))
}

/// Black and white squares of one pixel.
pub(super) fn checkerboard(size: u32) -> RgbImage {
    RgbImage::from_fn(size, size, |x, y| {
        if (x + y) % 2 == 0 {
            Rgb([255, 255, 255])
        } else {
            Rgb([0, 0, 0])
        }
    })
}

/// A smooth left-to-right ramp: contrast, but no edges.
pub(super) fn ramp(size: u32) -> RgbImage {
    RgbImage::from_fn(size, size, |x, _| {
        let v = (x * 255 / (size - 1)) as u8;
        Rgb([v, v, v])
    })
}

/// Seeded noise around a base colour, `spread` wide (splitmix64, so tests need no crate).
pub(super) fn noise(size: u32, seed: u64, base: [u8; 3], spread: u8) -> RgbImage {
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

pub(super) fn config(extremes: usize) -> StatisticsConfig {
    StatisticsConfig {
        extremes,
        ..StatisticsConfig::default()
    }
}

pub(super) fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-4
}
