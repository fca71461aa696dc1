//! Images that stand out: galleries of the most extreme images for a property (darkest,
//! brightest, blurriest, lowest information, lowest contrast, odd sizes), and the greyscale
//! images of a mostly colour dataset.
//!
//! Invariants: galleries come in a fixed order, each most extreme first with ties broken by
//! image index, so nothing depends on the order of the pass; every index is into the ingest
//! image table. Flat images never enter the blurriest gallery: no edges is not blur.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::properties::ImageProperties;
use crate::stages::ingest::ImageRecord;

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

/// Images with a contrast below this are flat: their Laplacian variance is near zero
/// without their being blurry, so they are left out of the blurriest gallery.
const FLAT_CONTRAST: f32 = 0.02;

/// The galleries of extremes, in a fixed order; a gallery with nothing to show is empty.
pub(super) fn extremes(
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
pub(super) fn greyscale_in_colour(properties: &[ImageProperties]) -> Vec<usize> {
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

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage};

    use super::Extreme;
    use crate::stages::statistics::fixtures::{
        Picture, checkerboard, config, ingested, picture, ramp, uniform,
    };
    use crate::stages::statistics::{StatisticsArtifact, run};

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
}
