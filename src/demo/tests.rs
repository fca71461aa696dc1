//! Tests of the whole demo: one generated dataset, read back from disk, checked against its
//! truth. They check that the truth is exact and complete (every planted issue is there, and no
//! unplanted one arises by chance) and that generation is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use image::imageops::{self, FilterType as ResizeFilter};
use image::{ColorType, DynamicImage};

use super::plan::build;
use super::{CLASSES, DEMO_VERSION, DemoTruth, generate};

const FIXTURE_SEED: u64 = 11;

/// One generated dataset, read into memory, shared by the tests that only inspect it:
/// writing ~2,600 files is the slow part of a test run.
struct Fixture {
    truth: DemoTruth,
    files: BTreeMap<String, Vec<u8>>,
    images: BTreeMap<String, DynamicImage>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let temp = tempfile::tempdir().expect("creating a temp dir");
        // An existing empty folder must be accepted, as well as an absent one.
        let dir = temp.path().join("demo");
        fs::create_dir(&dir).expect("creating the demo folder");
        let truth = generate(&dir, FIXTURE_SEED).expect("generating the demo");
        let files = read_tree(&dir);
        let images = files
            .iter()
            .filter_map(|(path, bytes)| Some((path.clone(), image::load_from_memory(bytes).ok()?)))
            .collect();
        Fixture {
            truth,
            files,
            images,
        }
    })
}

fn build_in_memory(seed: u64) -> (DemoTruth, BTreeMap<String, Vec<u8>>) {
    let (files, truth) = build(seed).expect("building the demo");
    (truth, files.into_iter().collect())
}

/// Every file under `dir`, by relative `/`-separated path.
fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, prefix: &str, files: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).expect("listing a demo folder") {
            let entry = entry.expect("reading a folder entry");
            let name = entry.file_name().into_string().expect("a UTF-8 file name");
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if entry.file_type().expect("reading a file type").is_dir() {
                walk(&entry.path(), &relative, files);
            } else {
                let bytes = fs::read(entry.path()).expect("reading a demo file");
                files.insert(relative, bytes);
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, "", &mut files);
    files
}

fn class_of(path: &str) -> &str {
    path.split('/').nth(1).expect("a class folder in the path")
}

/// Sorted groups of two or more paths that share a key.
fn groups_by_key<K: Ord>(keyed: impl Iterator<Item = (K, String)>) -> Vec<Vec<String>> {
    let mut by_key: BTreeMap<K, Vec<String>> = BTreeMap::new();
    for (key, path) in keyed {
        by_key.entry(key).or_default().push(path);
    }
    let mut groups: Vec<Vec<String>> = by_key
        .into_values()
        .filter(|group| group.len() > 1)
        .collect();
    for group in &mut groups {
        group.sort();
    }
    groups.sort();
    groups
}

/// Every path the truth mentions, that is every file something was planted in or copied from.
fn planted_paths(truth: &DemoTruth) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for group in truth
        .exact_byte_groups
        .iter()
        .chain(&truth.exact_pixel_groups)
        .chain(&truth.conflicting_labels)
    {
        paths.extend(group.iter().cloned());
    }
    for pair in truth.near_pairs.iter().chain(&truth.leakage) {
        paths.insert(pair.original.clone());
        paths.insert(pair.copy.clone());
    }
    paths.extend(truth.mislabelled.iter().map(|m| m.path.clone()));
    for list in [
        &truth.dark,
        &truth.bright,
        &truth.blurry,
        &truth.low_information,
        &truth.greyscale,
        &truth.corrupt,
        &truth.skipped,
    ] {
        paths.extend(list.iter().cloned());
    }
    paths
}

/// Mean brightness (0..1) by four common definitions: mean of R, G, B; Rec. 601 luma;
/// brightest channel (HSV value); darkest channel.
fn brightness_measures(image: &DynamicImage) -> [f32; 4] {
    let rgb = image.to_rgb8();
    let mut sums = [0f32; 4];
    for pixel in rgb.as_raw().chunks_exact(3) {
        let [r, g, b] = [0, 1, 2].map(|c| f32::from(pixel[c]));
        sums[0] += (r + g + b) / 3.0;
        sums[1] += 0.299 * r + 0.587 * g + 0.114 * b;
        sums[2] += r.max(g).max(b);
        sums[3] += r.min(g).min(b);
    }
    sums.map(|sum| sum / rgb.pixels().len() as f32 / 255.0)
}

/// Luma as floats, row by row, and the row length. Tests run unoptimised in debug builds,
/// where per-pixel accessors of `image` are slow, hence flat slices.
fn luma_values(image: &DynamicImage) -> (Vec<f32>, usize) {
    let luma = image.to_luma8();
    let width = luma.width() as usize;
    (luma.into_raw().into_iter().map(f32::from).collect(), width)
}

/// Variance of the 4-neighbour Laplacian of luma, the usual blur measure.
fn laplacian_variance(image: &DynamicImage) -> f32 {
    let (luma, width) = luma_values(image);
    let mut responses = Vec::new();
    for i in width + 1..luma.len() - width - 1 {
        if i % width != 0 && i % width != width - 1 {
            let around = luma[i - 1] + luma[i + 1] + luma[i - width] + luma[i + width];
            responses.push(4.0 * luma[i] - around);
        }
    }
    let mean = responses.iter().sum::<f32>() / responses.len() as f32;
    responses.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / responses.len() as f32
}

/// A hue histogram weighted by chroma and a gradient-orientation histogram weighted by
/// magnitude: the "simple features" a kNN should classify the demo with.
fn simple_features(image: &DynamicImage) -> Vec<f32> {
    let rgb = image.to_rgb8();
    let mut hues = vec![0f32; 12];
    for pixel in rgb.as_raw().chunks_exact(3) {
        let [r, g, b] = [0, 1, 2].map(|c| f32::from(pixel[c]) / 255.0);
        let (max, min) = (r.max(g).max(b), r.min(g).min(b));
        let chroma = max - min;
        if chroma < 1e-3 {
            continue;
        }
        let sector = if max == r {
            ((g - b) / chroma).rem_euclid(6.0)
        } else if max == g {
            (b - r) / chroma + 2.0
        } else {
            (r - g) / chroma + 4.0
        };
        hues[((sector * 2.0) as usize).min(11)] += chroma;
    }
    let (luma, width) = luma_values(image);
    let mut orientations = vec![0f32; 8];
    for i in width + 1..luma.len() - width - 1 {
        if i % width == 0 || i % width == width - 1 {
            continue;
        }
        let (gx, gy) = (luma[i + 1] - luma[i - 1], luma[i + width] - luma[i - width]);
        let magnitude = (gx * gx + gy * gy).sqrt();
        if magnitude > 20.0 {
            let angle = gy.atan2(gx).rem_euclid(std::f32::consts::PI);
            let bin = (angle / std::f32::consts::PI * 8.0) as usize;
            orientations[bin.min(7)] += magnitude;
        }
    }
    for histogram in [&mut hues, &mut orientations] {
        let total = histogram.iter().sum::<f32>().max(1e-6);
        histogram.iter_mut().for_each(|v| *v /= total);
    }
    hues.extend(orientations);
    hues
}

#[test]
fn same_seed_gives_identical_files_and_truth() {
    // The fixture was written to disk and read back, so this also checks that `generate`
    // writes exactly what `build` made, no more files and no fewer.
    let (truth, files) = build_in_memory(FIXTURE_SEED);
    assert_eq!(truth, fixture().truth);
    assert!(
        files == fixture().files,
        "the same seed made different files"
    );
}

#[test]
fn different_seed_gives_different_files() {
    let (truth, files) = build_in_memory(FIXTURE_SEED + 1);
    assert_ne!(truth, fixture().truth);
    let same = files
        .iter()
        .filter(|&(path, bytes)| fixture().files.get(path) == Some(bytes))
        .count();
    // Only files of fixed content (the empty PNG, notes.jpg, .DS_Store) may coincide.
    assert!(same <= 3, "{same} files are identical across seeds");
}

#[test]
fn truth_names_written_files_and_counts_them_all() {
    let Fixture { truth, files, .. } = fixture();
    for path in planted_paths(truth) {
        assert!(
            files.contains_key(&path),
            "{path} is in the truth but was not written"
        );
    }
    assert_eq!(truth.file_count, files.len());
    assert_eq!((truth.seed, truth.version), (FIXTURE_SEED, DEMO_VERSION));
    assert_eq!(truth.classes, CLASSES.map(String::from));
    for path in files.keys() {
        let parts: Vec<&str> = path.split('/').collect();
        assert!(
            matches!(parts[0], "train" | "test"),
            "{path} is outside the splits"
        );
        if parts.len() == 3 {
            assert!(
                CLASSES.contains(&parts[1]),
                "{path} is in an unknown class folder"
            );
        } else {
            assert_eq!(path, "train/README.txt");
        }
    }
}

#[test]
fn class_counts_are_imbalanced_by_one_small_class() {
    let Fixture { truth, images, .. } = fixture();
    let mut train_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for path in images.keys().filter(|path| path.starts_with("train/")) {
        *train_counts.entry(class_of(path)).or_default() += 1;
    }
    let smallest = train_counts.values().min().copied().unwrap_or(0);
    let largest = train_counts.values().max().copied().unwrap_or(0);
    assert!(
        largest >= 3 * smallest,
        "no clear imbalance: {train_counts:?}"
    );
    assert_eq!(train_counts.len(), truth.classes.len());
}

#[test]
fn exact_byte_groups_are_every_set_of_identical_files() {
    let Fixture {
        truth,
        files,
        images,
    } = fixture();
    let by_bytes = groups_by_key(images.keys().map(|path| (&files[path], path.clone())));
    assert_eq!(truth.exact_byte_groups, by_bytes);
    // Three groups inside train, four exact leakage copies, one conflicting-label pair.
    assert_eq!(truth.exact_byte_groups.len(), 3 + 4 + 1);
}

#[test]
fn exact_pixel_groups_share_pixels_but_never_bytes() {
    let Fixture {
        truth,
        files,
        images,
    } = fixture();
    let by_pixels = groups_by_key(images.iter().map(|(path, image)| {
        let key = (
            image.width(),
            image.height(),
            image.color() as u8,
            image.as_bytes(),
        );
        (key, path.clone())
    }));
    let (byte_copies, pixel_copies): (Vec<_>, Vec<_>) = by_pixels
        .into_iter()
        .partition(|group| group.iter().all(|path| files[path] == files[&group[0]]));
    assert_eq!(byte_copies, truth.exact_byte_groups);
    assert_eq!(pixel_copies, truth.exact_pixel_groups);
    assert_eq!(truth.exact_pixel_groups.len(), 2);
    for group in &truth.exact_pixel_groups {
        let distinct: BTreeSet<&Vec<u8>> = group.iter().map(|path| &files[path]).collect();
        assert_eq!(distinct.len(), group.len(), "{group:?} repeats some bytes");
    }
}

#[test]
fn corrupt_files_fail_to_decode_and_all_others_decode() {
    let Fixture {
        truth,
        files,
        images,
    } = fixture();
    for path in &truth.corrupt {
        assert!(
            image::load_from_memory(&files[path]).is_err(),
            "{path} decodes"
        );
    }
    let undecodable: BTreeSet<&String> = files
        .keys()
        .filter(|path| !images.contains_key(*path))
        .collect();
    let expected: BTreeSet<&String> = truth.corrupt.iter().chain(&truth.skipped).collect();
    assert_eq!(undecodable, expected);
    assert_eq!(truth.image_count, images.len());
    assert_eq!(truth.corrupt.len(), 3);
    assert!(truth.corrupt.iter().any(|path| files[path].is_empty()));
    assert!(truth.skipped.contains(&"train/README.txt".to_string()));
    assert!(
        truth
            .skipped
            .iter()
            .any(|path| path.ends_with("/.DS_Store"))
    );
}

#[test]
fn planted_pairs_and_labels_sit_in_the_folders_they_claim() {
    let truth = &fixture().truth;
    let kinds: BTreeSet<&str> = truth.near_pairs.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["color", "flip", "jpeg", "resize", "shift"])
    );
    for pair in &truth.near_pairs {
        assert!(pair.original.starts_with("train/") && pair.copy.starts_with("train/"));
        assert_eq!(class_of(&pair.original), class_of(&pair.copy), "{pair:?}");
    }
    assert_eq!(truth.leakage.len(), 8);
    for pair in &truth.leakage {
        assert!(pair.original.starts_with("train/"), "{pair:?}");
        assert!(pair.copy.starts_with("test/"), "{pair:?}");
        assert_eq!(class_of(&pair.original), class_of(&pair.copy), "{pair:?}");
    }
    assert_eq!(truth.conflicting_labels.len(), 1);
    for group in &truth.conflicting_labels {
        let classes: BTreeSet<&str> = group.iter().map(|path| class_of(path)).collect();
        assert!(classes.len() > 1, "{group:?} agrees on its label");
    }
    assert_eq!(truth.mislabelled.len(), 13);
    assert!(
        truth
            .mislabelled
            .iter()
            .any(|m| m.path.starts_with("test/"))
    );
    for mislabel in &truth.mislabelled {
        assert_eq!(class_of(&mislabel.path), mislabel.given);
        assert_ne!(mislabel.given, mislabel.true_label);
    }
    // A file that is the original of two plants would make the truth ambiguous.
    let mut originals = BTreeSet::new();
    let pair_originals = truth
        .near_pairs
        .iter()
        .chain(&truth.leakage)
        .map(|p| &p.original);
    for original in pair_originals.chain(truth.exact_pixel_groups.iter().flatten()) {
        assert!(
            originals.insert(original),
            "{original} is used by two plants"
        );
    }
}

#[test]
fn extremes_are_extreme_and_ordinary_images_are_not() {
    let Fixture { truth, images, .. } = fixture();
    for path in &truth.dark {
        let measures = brightness_measures(&images[path]);
        assert!(measures.iter().all(|&m| m < 0.08), "{path}: {measures:?}");
    }
    for path in &truth.bright {
        let measures = brightness_measures(&images[path]);
        assert!(measures.iter().all(|&m| m > 0.92), "{path}: {measures:?}");
    }
    let per_measure = |paths: &[String], pick: fn(f32, f32) -> f32, start: f32| {
        paths.iter().fold([start; 4], |acc, path| {
            let measures = brightness_measures(&images[path]);
            std::array::from_fn(|k| pick(acc[k], measures[k]))
        })
    };
    let darkest_ordinary_floor = per_measure(&truth.dark, f32::max, 0.0);
    let brightest_ordinary_ceiling = per_measure(&truth.bright, f32::min, 1.0);
    for path in &truth.low_information {
        let pixels = images[path].to_rgb8();
        let first = pixels.get_pixel(0, 0).0;
        let nearly_uniform = pixels
            .pixels()
            .all(|p| p.0.into_iter().zip(first).all(|(a, b)| a.abs_diff(b) <= 1));
        assert!(nearly_uniform, "{path} is not nearly uniform");
    }
    let greyscale: BTreeSet<&String> = truth.greyscale.iter().collect();
    for (path, image) in images {
        let grey = image.color() == ColorType::L8;
        assert_eq!(
            grey,
            greyscale.contains(path),
            "{path}: colour type {:?}",
            image.color()
        );
    }
    let blurriest_plant = truth
        .blurry
        .iter()
        .map(|path| laplacian_variance(&images[path]))
        .fold(0.0, f32::max);
    let planted: BTreeSet<&String> = [
        &truth.dark,
        &truth.bright,
        &truth.blurry,
        &truth.low_information,
    ]
    .into_iter()
    .flatten()
    .collect();
    for (path, image) in images.iter().filter(|(path, _)| !planted.contains(path)) {
        let measures = brightness_measures(image);
        // Whichever definition a report uses, the plants must be the extremes; and by the
        // usual ones (mean of channels, luma) no ordinary image is close to a threshold.
        for (k, &measure) in measures.iter().enumerate() {
            assert!(
                darkest_ordinary_floor[k] < measure && measure < brightest_ordinary_ceiling[k],
                "{path} is an unplanted brightness extreme: {measures:?}"
            );
        }
        assert!(
            measures[..2].iter().all(|&m| (0.1..0.9).contains(&m)),
            "{path} is nearly a brightness extreme: {measures:?}"
        );
        let sharpness = laplacian_variance(image);
        assert!(
            sharpness > 4.0 * blurriest_plant,
            "{path} is nearly as blurry as the blurred plants: {sharpness} vs {blurriest_plant}"
        );
    }
}

#[test]
fn classes_are_separable_so_mislabels_stand_out() {
    let Fixture { truth, images, .. } = fixture();
    // Greyscale images have no hue; corrupt ones are not in `images`.
    let known: Vec<(&String, Vec<f32>)> = images
        .iter()
        .filter(|(path, _)| !truth.greyscale.contains(path))
        .map(|(path, image)| (path, simple_features(image)))
        .collect();
    let vote = |query: &str| -> String {
        let features = &known
            .iter()
            .find(|(path, _)| *path == query)
            .expect("known")
            .1;
        let mut nearest: Vec<(f32, &str)> = known
            .iter()
            .filter(|(path, _)| *path != query)
            .map(|(path, other)| {
                let distance = features.iter().zip(other).map(|(a, b)| (a - b).abs()).sum();
                (distance, class_of(path))
            })
            .collect();
        nearest.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, class) in &nearest[..5] {
            *votes.entry(class).or_default() += 1;
        }
        let top = votes
            .into_iter()
            .max_by_key(|&(_, count)| count)
            .expect("votes");
        top.0.to_string()
    };
    let planted = planted_paths(truth);
    let ordinary: Vec<&String> = known
        .iter()
        .map(|(path, _)| *path)
        .filter(|path| !planted.contains(*path))
        .step_by(13)
        .collect();
    let right = ordinary
        .iter()
        .filter(|path| vote(path) == class_of(path))
        .count();
    assert!(
        right * 100 >= ordinary.len() * 98,
        "a 5-NN on simple features gets only {right} of {} ordinary images right",
        ordinary.len()
    );
    let caught = truth
        .mislabelled
        .iter()
        .filter(|m| vote(&m.path) == m.true_label)
        .count();
    assert_eq!(
        caught,
        truth.mislabelled.len(),
        "some mislabelled images do not look like their true class"
    );
}

#[test]
fn unplanted_images_are_not_near_duplicates() {
    let Fixture { truth, images, .. } = fixture();
    let thumbnail = |path: &str| -> Vec<i32> {
        let small = imageops::resize(&images[path].to_rgb8(), 8, 8, ResizeFilter::Triangle);
        small.into_raw().into_iter().map(i32::from).collect()
    };
    // Mean absolute difference of 8x8 RGB thumbnails, in 0..255 levels.
    let distance = |a: &[i32], b: &[i32]| {
        a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).sum::<u32>() as f32 / a.len() as f32
    };
    let planted = planted_paths(truth);
    let mut ordinary: Vec<([f32; 3], &String, Vec<i32>)> = images
        .keys()
        .filter(|path| !planted.contains(*path))
        .map(|path| {
            let pixels = thumbnail(path);
            let mut means = [0f32; 3];
            for rgb in pixels.chunks_exact(3) {
                for c in 0..3 {
                    means[c] += rgb[c] as f32 / 64.0;
                }
            }
            (means, path, pixels)
        })
        .collect();
    // The distance of two thumbnails is at least the mean over channels of the difference
    // of their channel means, which prunes nearly all pairs cheaply: sort by overall mean
    // and compare only neighbours.
    let overall = |means: &[f32; 3]| means.iter().sum::<f32>() / 3.0;
    ordinary.sort_by(|a, b| overall(&a.0).total_cmp(&overall(&b.0)));
    let limit = 5.0;
    for (i, (means, path, pixels)) in ordinary.iter().enumerate() {
        for (other_means, other_path, other_pixels) in &ordinary[i + 1..] {
            if overall(other_means) - overall(means) >= limit {
                break;
            }
            let bound = (0..3)
                .map(|c| (means[c] - other_means[c]).abs())
                .sum::<f32>()
                / 3.0;
            if bound >= limit {
                continue;
            }
            let d = distance(pixels, other_pixels);
            assert!(
                d >= limit,
                "{path} and {other_path} are {d} apart: unplanted near duplicates"
            );
        }
    }
    // And the planted re-encodes and resizes are far closer than that.
    for pair in truth.near_pairs.iter().chain(&truth.leakage) {
        if pair.kind == "jpeg" || pair.kind == "resize" {
            let d = distance(&thumbnail(&pair.original), &thumbnail(&pair.copy));
            assert!(d < limit / 2.0, "{pair:?} is {d} apart");
        }
    }
}

#[test]
fn refuses_a_folder_that_is_not_empty() {
    let temp = tempfile::tempdir().expect("creating a temp dir");
    fs::write(temp.path().join("keep.txt"), "mine").expect("writing a file");
    let err = generate(temp.path(), 1).expect_err("a non-empty folder must be refused");
    assert!(
        format!("{err:#}").contains(&temp.path().display().to_string()),
        "{err:#}"
    );
    assert_eq!(fs::read_dir(temp.path()).expect("listing").count(), 1);
}
