//! The Pixel statistics section: normalisation constants (overall and per split), mean and
//! standard-deviation images per class, colour histograms per class, and the classes most
//! alike by colour side by side.
//!
//! Reads the statistics artifact only. The constants are printed with four decimals, ready
//! to paste into `transforms.Normalize`; summary.md quotes the same strings, so the two never
//! disagree. Every image here is an inline PNG and every chart inline SVG.

use serde::Serialize;

use crate::report::charts;
use crate::stages::statistics::{ChannelStats, ClassImage, StatisticsArtifact};
use crate::text::thousands;

use super::png_data_uri;

/// Alike pairs shown side by side.
const ALIKE_SHOWN: usize = 3;

#[derive(Debug, Serialize)]
pub struct PixelsView {
    pub normalisation: Normalisation,
    pub resolution_note: String,
    pub class_images: Vec<ClassImageView>,
    pub split_class_images: Vec<ClassImageView>,
    pub class_histograms: Vec<ClassHistogramView>,
    pub alike: Vec<AlikeView>,
}

#[derive(Debug, Serialize)]
pub struct Normalisation {
    pub mean: String,
    pub std: String,
    pub pixels: String,
    pub per_split: Vec<SplitNormalisation>,
}

#[derive(Debug, Serialize)]
pub struct SplitNormalisation {
    pub split: String,
    pub mean: String,
    pub std: String,
}

#[derive(Debug, Serialize)]
pub struct ClassImageView {
    pub class: String,
    pub split: String,
    pub images: String,
    pub mean_src: String,
    pub std_src: String,
}

#[derive(Debug, Serialize)]
pub struct ClassHistogramView {
    pub class: String,
    pub svg: String,
}

#[derive(Debug, Serialize)]
pub struct AlikeView {
    pub a: String,
    pub b: String,
    pub distance: String,
    pub a_svg: String,
    pub b_svg: String,
    pub a_mean: String,
    pub b_mean: String,
}

pub fn build(stats: &StatisticsArtifact) -> PixelsView {
    let class_images: Vec<ClassImageView> = stats
        .class_images
        .iter()
        .filter(|c| c.split.is_none())
        .map(class_image_view)
        .collect();
    let split_class_images: Vec<ClassImageView> = stats
        .class_images
        .iter()
        .filter(|c| c.split.is_some())
        .map(class_image_view)
        .collect();
    let histogram_svg = |class: &str| {
        stats
            .histograms
            .iter()
            .find(|h| h.class == class)
            .map(|h| charts::color_histogram(&h.red, &h.green, &h.blue, &h.brightness))
            .unwrap_or_default()
    };
    let mean_of = |class: &str| {
        class_images
            .iter()
            .find(|c| c.class == class)
            .map(|c| c.mean_src.clone())
            .unwrap_or_default()
    };
    let class_histograms = stats
        .histograms
        .iter()
        .map(|h| ClassHistogramView {
            class: h.class.clone(),
            svg: histogram_svg(&h.class),
        })
        .collect();
    let alike = stats
        .similar_classes
        .iter()
        .take(ALIKE_SHOWN)
        .map(|pair| AlikeView {
            a: pair.a.clone(),
            b: pair.b.clone(),
            distance: format!("{:.3}", pair.distance),
            a_svg: histogram_svg(&pair.a),
            b_svg: histogram_svg(&pair.b),
            a_mean: mean_of(&pair.a),
            b_mean: mean_of(&pair.b),
        })
        .collect();

    PixelsView {
        normalisation: Normalisation {
            mean: triple(&stats.overall.mean),
            std: triple(&stats.overall.std),
            pixels: thousands(stats.overall.pixels),
            per_split: stats
                .per_split
                .iter()
                .map(|(split, s): (&String, &ChannelStats)| SplitNormalisation {
                    split: split.clone(),
                    mean: triple(&s.mean),
                    std: triple(&s.std),
                })
                .collect(),
        },
        resolution_note: stats.resolution.note.clone(),
        class_images,
        split_class_images,
        class_histograms,
        alike,
    }
}

fn class_image_view(image: &ClassImage) -> ClassImageView {
    let to_uri = |bytes: &[u8]| {
        image::RgbImage::from_raw(image.width, image.height, bytes.to_vec())
            .map(|img| png_data_uri(&img))
            .unwrap_or_default()
    };
    ClassImageView {
        class: image.class.clone(),
        split: image.split.clone().unwrap_or_default(),
        images: thousands(image.images as u64),
        mean_src: to_uri(&image.mean_rgb),
        std_src: to_uri(&image.std_rgb),
    }
}

fn triple(v: &[f64; 3]) -> String {
    format!("[{:.4}, {:.4}, {:.4}]", v[0], v[1], v[2])
}
