//! The `aldente demo` dataset: a small synthetic image-classification dataset with planted issues.
//!
//! [`generate`] draws six classes of 32x32 pictures (checkers, circles, rings, squares, stripes,
//! triangles) into `dir/train/<class>/` and `dir/test/<class>/`, then plants every kind of problem
//! the report looks for: exact and near duplicates, train/test leakage, a duplicate whose labels
//! disagree, wrong labels, very dark, bright, blurry, featureless and greyscale images, unreadable
//! files and non-image files. It returns a [`DemoTruth`] naming every planted file, which the
//! report's own tests use as ground truth, so the truth must be exact and complete: each class is
//! drawn in its own band of hues with its own shapes and every picture carries random geometry
//! and per-pixel noise, so that no two ordinary images are alike and no planted issue arises
//! by chance.
//!
//! Invariants:
//! - Determinism: the same seed gives byte-identical files on a given machine. Everything random
//!   comes from one `ChaCha8Rng` consumed in a fixed order, files are named and written in a fixed
//!   order, no hash-map order is ever observed, and the drawing code uses only arithmetic and
//!   `sqrt` (no trigonometry), whose results IEEE 754 fixes exactly.
//! - Bump [`DEMO_VERSION`] whenever the output for a given seed changes, so that a cached demo
//!   folder is regenerated.
//! - It never writes outside `dir`: every path is `dir` joined with a split, a class name from
//!   [`CLASSES`] and a generated file name, and it refuses a `dir` that already holds anything.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::imageops::{self, FilterType as ResizeFilter};
use image::{ExtendedColorType, GrayImage, ImageEncoder, Rgb, RgbImage};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Bump when the generated dataset changes, so a cached demo folder is regenerated.
pub const DEMO_VERSION: u32 = 1;

/// What [`generate`] planted, as paths relative to the dataset folder with `/` separators.
///
/// Every list is sorted, and so is every group inside a list, so two truths compare equal exactly
/// when they describe the same dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoTruth {
    pub seed: u64,
    pub version: u32,
    /// Class folder names, sorted.
    pub classes: Vec<String>,
    /// Every group of two or more files with identical bytes, across the whole dataset: the
    /// duplicates planted inside train, and also the exact `leakage` copies and the
    /// `conflicting_labels` pair, which are byte copies too.
    pub exact_byte_groups: Vec<Vec<String>>,
    /// Every group of files whose decoded pixels are identical although their bytes all differ
    /// (the same pixels saved as PNG with another compression level and filter).
    pub exact_pixel_groups: Vec<Vec<String>>,
    /// Near duplicates inside train, in the same class, one pair per kind. Near copies across
    /// splits are in `leakage` instead.
    pub near_pairs: Vec<NearPair>,
    /// Test images copied from train images of the same class: `original` is the train file,
    /// `copy` the test file, `kind` is "exact" (same bytes) or a near-duplicate kind.
    pub leakage: Vec<NearPair>,
    /// Groups of identical files that sit in different class folders.
    pub conflicting_labels: Vec<Vec<String>>,
    /// Images drawn as one class and filed under another. Includes the copy of the
    /// `conflicting_labels` pair that sits in the wrong folder, since its label is wrong too.
    pub mislabelled: Vec<Mislabel>,
    /// Mean brightness below 0.08 however it is measured (mean of R, G, B, of luma, or of the
    /// brightest channel).
    pub dark: Vec<String>,
    /// Mean brightness above 0.92 however it is measured (mean of R, G, B, of luma, or of the
    /// darkest channel).
    pub bright: Vec<String>,
    /// Images blurred with a gaussian of sigma 3. The `low_information` images have no edges
    /// at all, so a sharpness measure ranks them as blurry too.
    pub blurry: Vec<String>,
    /// Nearly uniform images (one colour, with at most one level of noise per channel).
    pub low_information: Vec<String>,
    /// Images stored as single-channel 8-bit PNGs in an otherwise RGB dataset.
    pub greyscale: Vec<String>,
    /// Files with an image extension that must be reported as unreadable.
    pub corrupt: Vec<String>,
    /// Non-image files that must be listed as skipped.
    pub skipped: Vec<String>,
    /// Number of files that decode as images.
    pub image_count: usize,
    /// Number of files written, readable or not.
    pub file_count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearPair {
    pub original: String,
    pub copy: String,
    /// "exact" (leakage only), "jpeg", "resize", "shift", "color" or "flip".
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mislabel {
    pub path: String,
    /// The class folder the file is in.
    pub given: String,
    /// The class it was drawn as.
    pub true_label: String,
}

/// Class folder names, sorted, so an index into this array is also the class's rank.
const CLASSES: [&str; 6] = [
    "checkers",
    "circles",
    "rings",
    "squares",
    "stripes",
    "triangles",
];

/// Centre of each class's hue band, in degrees. Spacing the bands 60 degrees apart makes the
/// classes separable by colour alone, so a kNN on simple features recovers the planted labels.
const CLASS_HUES: [f32; 6] = [300.0, 0.0, 180.0, 240.0, 120.0, 60.0];
const HUE_JITTER: f32 = 18.0;

/// "triangles" gets a quarter of the images, so the class-imbalance alert has something to say.
const MINORITY_CLASS: usize = 5;
const TRAIN_PER_CLASS: usize = 400;
const TEST_PER_CLASS: usize = 80;

/// Side of the square in which shapes are designed; other image sizes stretch it.
const DESIGN: f32 = 32.0;
/// The handful of odd sizes, so the size distribution is not a single spike.
const ODD_SIZES: [(u32, u32); 4] = [(48, 40), (64, 64), (40, 32), (24, 24)];
const ODD_SIZE_SHARE: f64 = 0.04;
const JPEG_SHARE: f64 = 0.12;
const JPEG_QUALITY: u8 = 90;
/// Per-pixel, per-channel noise amplitude, in 0..255 levels.
const NOISE: i32 = 8;

/// How ordinary PNGs are compressed; exact-pixel copies use the other settings below, so that
/// the same pixels come out as different bytes.
const ORDINARY_PNG: (CompressionType, PngFilter) = (CompressionType::Default, PngFilter::Adaptive);
const PIXEL_COPY_PNG: [(CompressionType, PngFilter); 2] = [
    (CompressionType::Best, PngFilter::NoFilter),
    (CompressionType::Fast, PngFilter::Paeth),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Split {
    Train,
    Test,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NearKind {
    Jpeg,
    Resize,
    Shift,
    Color,
    Flip,
}

impl NearKind {
    const ALL: [NearKind; 5] = [
        NearKind::Jpeg,
        NearKind::Resize,
        NearKind::Shift,
        NearKind::Color,
        NearKind::Flip,
    ];

    fn name(self) -> &'static str {
        match self {
            NearKind::Jpeg => "jpeg",
            NearKind::Resize => "resize",
            NearKind::Shift => "shift",
            NearKind::Color => "color",
            NearKind::Flip => "flip",
        }
    }
}

/// One file to write. Its path is only known once its folder has been shuffled and numbered,
/// so everything planted refers to files by their index in `Dataset::files`.
struct File {
    split: Split,
    /// `None` for a file at split level.
    class: Option<usize>,
    /// A fixed name, or `None` to be numbered within its folder.
    name: Option<&'static str>,
    ext: &'static str,
    bytes: Vec<u8>,
}

/// An ordinary train image that planted copies may be made from.
struct Source {
    id: usize,
    class: usize,
    pixels: RgbImage,
}

#[derive(Default)]
struct Planted {
    exact_byte_groups: Vec<Vec<usize>>,
    exact_pixel_groups: Vec<Vec<usize>>,
    near_pairs: Vec<(usize, usize, &'static str)>,
    leakage: Vec<(usize, usize, &'static str)>,
    conflicting_labels: Vec<Vec<usize>>,
    /// (file, given class, true class)
    mislabelled: Vec<(usize, usize, usize)>,
    dark: Vec<usize>,
    bright: Vec<usize>,
    blurry: Vec<usize>,
    low_information: Vec<usize>,
    greyscale: Vec<usize>,
    corrupt: Vec<usize>,
    skipped: Vec<usize>,
}

struct Dataset {
    rng: ChaCha8Rng,
    files: Vec<File>,
    /// Per class, ordinary train PNGs not yet used as the source of a plant. Each plant takes
    /// its own, so that no file is the original of two plants and no planted copy is ever a
    /// source: the truth then has exactly one reading.
    sources: Vec<Vec<Source>>,
    /// Where the round-robin over classes for the next source starts, to spread plants evenly.
    next_source_class: usize,
    planted: Planted,
}

/// Writes the demo dataset for `seed` into `dir`, which must be absent or empty, and returns
/// what was planted in it.
pub fn generate(dir: &Path, seed: u64) -> Result<DemoTruth> {
    ensure_empty_or_absent(dir)?;
    let mut dataset = Dataset {
        rng: ChaCha8Rng::seed_from_u64(seed),
        files: Vec::new(),
        sources: (0..CLASSES.len()).map(|_| Vec::new()).collect(),
        next_source_class: 0,
        planted: Planted::default(),
    };
    dataset.draw_ordinary()?;
    dataset.plant_exact_byte_duplicates()?;
    dataset.plant_exact_pixel_duplicates()?;
    dataset.plant_near_duplicates()?;
    dataset.plant_leakage()?;
    dataset.plant_conflicting_labels()?;
    dataset.plant_mislabelled()?;
    dataset.plant_extremes()?;
    dataset.plant_unreadable()?;
    dataset.plant_non_images(seed);
    let paths = dataset.assign_paths();
    write_files(dir, &dataset.files, &paths)?;
    Ok(dataset.truth(seed, &paths))
}

fn ensure_empty_or_absent(dir: &Path) -> Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "refusing to generate the demo dataset into {}: it exists and is not empty",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("reading {}", dir.display())),
    }
}

impl Dataset {
    fn push(&mut self, split: Split, class: usize, ext: &'static str, bytes: Vec<u8>) -> usize {
        self.files.push(File {
            split,
            class: Some(class),
            name: None,
            ext,
            bytes,
        });
        self.files.len() - 1
    }

    fn draw_ordinary(&mut self) -> Result<()> {
        for split in [Split::Train, Split::Test] {
            for class in 0..CLASSES.len() {
                let per_class = match split {
                    Split::Train => TRAIN_PER_CLASS,
                    Split::Test => TEST_PER_CLASS,
                };
                let count = if class == MINORITY_CLASS {
                    per_class / 4
                } else {
                    per_class
                };
                for _ in 0..count {
                    let (width, height) = if self.rng.random_bool(ODD_SIZE_SHARE) {
                        ODD_SIZES[self.rng.random_range(0..ODD_SIZES.len())]
                    } else {
                        (32, 32)
                    };
                    let pixels = draw(&mut self.rng, class, width, height);
                    if self.rng.random_bool(JPEG_SHARE) {
                        let bytes = encode_jpeg(&pixels, JPEG_QUALITY)?;
                        self.push(split, class, "jpg", bytes);
                    } else {
                        let bytes = encode_png(&pixels, ORDINARY_PNG)?;
                        let id = self.push(split, class, "png", bytes);
                        // Sources must be plain 32x32 PNGs so that every kind of copy
                        // (exact-pixel re-encodes included) can be made from any of them.
                        if split == Split::Train && (width, height) == (32, 32) {
                            self.sources[class].push(Source { id, class, pixels });
                        }
                    }
                }
            }
        }
        for pool in &mut self.sources {
            pool.shuffle(&mut self.rng);
        }
        Ok(())
    }

    /// Takes an unused source image, visiting classes in turn so plants spread over classes.
    fn take_source(&mut self) -> Result<Source> {
        for _ in 0..CLASSES.len() {
            let class = self.next_source_class;
            self.next_source_class = (self.next_source_class + 1) % CLASSES.len();
            if let Some(source) = self.sources[class].pop() {
                return Ok(source);
            }
        }
        // Hundreds of sources per class against a few dozen plants: running out means the
        // constants above were changed carelessly, not that a seed was unlucky.
        bail!("the demo ran out of source images for planted copies")
    }

    fn plant_exact_byte_duplicates(&mut self) -> Result<()> {
        for group_size in [2, 3, 2] {
            let source = self.take_source()?;
            let mut group = vec![source.id];
            for _ in 1..group_size {
                let bytes = self.files[source.id].bytes.clone();
                group.push(self.push(Split::Train, source.class, "png", bytes));
            }
            self.planted.exact_byte_groups.push(group);
        }
        Ok(())
    }

    fn plant_exact_pixel_duplicates(&mut self) -> Result<()> {
        for group_size in [2, 3] {
            let source = self.take_source()?;
            let mut group = vec![source.id];
            for settings in &PIXEL_COPY_PNG[..group_size - 1] {
                let bytes = encode_png(&source.pixels, *settings)?;
                // The point of this group is "same pixels, different bytes"; an encoder that
                // ignored its settings would silently turn it into an exact-byte group.
                ensure!(
                    group.iter().all(|&id| self.files[id].bytes != bytes),
                    "PNG settings {settings:?} reproduced the bytes of another encoding"
                );
                group.push(self.push(Split::Train, source.class, "png", bytes));
            }
            self.planted.exact_pixel_groups.push(group);
        }
        Ok(())
    }

    fn plant_near_duplicates(&mut self) -> Result<()> {
        for kind in NearKind::ALL {
            let source = self.take_source()?;
            let (ext, bytes) = near_copy(&mut self.rng, &source.pixels, kind)?;
            let copy = self.push(Split::Train, source.class, ext, bytes);
            self.planted.near_pairs.push((source.id, copy, kind.name()));
        }
        Ok(())
    }

    fn plant_leakage(&mut self) -> Result<()> {
        for _ in 0..4 {
            let source = self.take_source()?;
            let bytes = self.files[source.id].bytes.clone();
            let copy = self.push(Split::Test, source.class, "png", bytes);
            self.planted.leakage.push((source.id, copy, "exact"));
            self.planted.exact_byte_groups.push(vec![source.id, copy]);
        }
        for kind in [
            NearKind::Jpeg,
            NearKind::Shift,
            NearKind::Jpeg,
            NearKind::Shift,
        ] {
            let source = self.take_source()?;
            let (ext, bytes) = near_copy(&mut self.rng, &source.pixels, kind)?;
            let copy = self.push(Split::Test, source.class, ext, bytes);
            self.planted.leakage.push((source.id, copy, kind.name()));
        }
        Ok(())
    }

    fn plant_conflicting_labels(&mut self) -> Result<()> {
        let source = self.take_source()?;
        let other = other_class(&mut self.rng, source.class);
        let bytes = self.files[source.id].bytes.clone();
        let copy = self.push(Split::Train, other, "png", bytes);
        self.planted.conflicting_labels.push(vec![source.id, copy]);
        self.planted.exact_byte_groups.push(vec![source.id, copy]);
        self.planted.mislabelled.push((copy, other, source.class));
        Ok(())
    }

    fn plant_mislabelled(&mut self) -> Result<()> {
        for i in 0..12 {
            let split = if i % 3 == 2 {
                Split::Test
            } else {
                Split::Train
            };
            let true_class = i % CLASSES.len();
            let given = other_class(&mut self.rng, true_class);
            let pixels = draw(&mut self.rng, true_class, 32, 32);
            let id = self.push(split, given, "png", encode_png(&pixels, ORDINARY_PNG)?);
            self.planted.mislabelled.push((id, given, true_class));
        }
        Ok(())
    }

    /// Dark, bright, blurry, featureless and greyscale images, each set spread over distinct
    /// classes: within one class they would look alike (two near-black pictures of the same
    /// colour band) and become near duplicates nobody planted.
    fn plant_extremes(&mut self) -> Result<()> {
        for extreme in [
            Extreme::Dark,
            Extreme::Bright,
            Extreme::Blurry,
            Extreme::LowInformation,
            Extreme::Greyscale,
        ] {
            let count = if extreme == Extreme::Greyscale { 3 } else { 4 };
            let mut classes: Vec<usize> = (0..CLASSES.len()).collect();
            classes.shuffle(&mut self.rng);
            for (i, &class) in classes[..count].iter().enumerate() {
                // One of each set goes to test, so the extremes are not a train-only story.
                let split = if i == 3 { Split::Test } else { Split::Train };
                let bytes = match extreme {
                    Extreme::Dark => {
                        encode_png(&darken(&draw(&mut self.rng, class, 32, 32)), ORDINARY_PNG)?
                    }
                    Extreme::Bright => {
                        encode_png(&brighten(&draw(&mut self.rng, class, 32, 32)), ORDINARY_PNG)?
                    }
                    Extreme::Blurry => {
                        let sharp = draw(&mut self.rng, class, 32, 32);
                        encode_png(&imageops::blur(&sharp, 3.0), ORDINARY_PNG)?
                    }
                    Extreme::LowInformation => {
                        encode_png(&nearly_uniform(&mut self.rng, class), ORDINARY_PNG)?
                    }
                    Extreme::Greyscale => {
                        let colour = draw(&mut self.rng, class, 32, 32);
                        encode_grey_png(&image::DynamicImage::ImageRgb8(colour).to_luma8())?
                    }
                };
                let id = self.push(split, class, "png", bytes);
                let list = match extreme {
                    Extreme::Dark => &mut self.planted.dark,
                    Extreme::Bright => &mut self.planted.bright,
                    Extreme::Blurry => &mut self.planted.blurry,
                    Extreme::LowInformation => &mut self.planted.low_information,
                    Extreme::Greyscale => &mut self.planted.greyscale,
                };
                list.push(id);
            }
        }
        Ok(())
    }

    fn plant_unreadable(&mut self) -> Result<()> {
        let class = self.rng.random_range(0..CLASSES.len());
        let whole = encode_jpeg(&draw(&mut self.rng, class, 32, 32), JPEG_QUALITY)?;
        let truncated = whole[..whole.len() / 2].to_vec();
        let id = self.push(Split::Train, class, "jpg", truncated);
        self.planted.corrupt.push(id);

        let class = self.rng.random_range(0..CLASSES.len());
        let id = self.push(Split::Train, class, "png", Vec::new());
        self.planted.corrupt.push(id);

        let class = self.rng.random_range(0..CLASSES.len());
        let id = self.push(
            Split::Test,
            class,
            "jpg",
            b"this is not an image\n".to_vec(),
        );
        self.files[id].name = Some("notes.jpg");
        self.planted.corrupt.push(id);
        Ok(())
    }

    fn plant_non_images(&mut self, seed: u64) {
        let readme = format!(
            "Synthetic dataset written by `aldente demo` (seed {seed}, demo version \
             {DEMO_VERSION}).\nIt has planted problems for the report to find. This file is not \
             an image: aldente lists it as skipped.\n"
        );
        self.files.push(File {
            split: Split::Train,
            class: None,
            name: Some("README.txt"),
            ext: "txt",
            bytes: readme.into_bytes(),
        });
        self.planted.skipped.push(self.files.len() - 1);

        // The debris macOS leaves in every folder a Finder has opened.
        let class = self.rng.random_range(0..CLASSES.len());
        let id = self.push(
            Split::Train,
            class,
            "",
            b"\0\0\0\x01Bud1\0\0\x10\0".to_vec(),
        );
        self.files[id].name = Some(".DS_Store");
        self.planted.skipped.push(id);
    }

    /// Numbers the files of each folder in a shuffled order, so planted files sit among the
    /// ordinary ones instead of at the end, and returns each file's relative path.
    fn assign_paths(&mut self) -> Vec<String> {
        let mut paths = vec![String::new(); self.files.len()];
        for split in [Split::Train, Split::Test] {
            let mut split_level: Vec<usize> = (0..self.files.len())
                .filter(|&id| self.files[id].split == split && self.files[id].class.is_none())
                .collect();
            split_level.sort_unstable();
            for id in split_level {
                let name = self.files[id].name.unwrap_or("unnamed");
                paths[id] = format!("{}/{name}", split.name());
            }
            for class in 0..CLASSES.len() {
                let mut folder: Vec<usize> = (0..self.files.len())
                    .filter(|&id| {
                        self.files[id].split == split && self.files[id].class == Some(class)
                    })
                    .collect();
                folder.shuffle(&mut self.rng);
                let mut number = 0;
                for id in folder {
                    let file = &self.files[id];
                    let name = match file.name {
                        Some(name) => name.to_string(),
                        None => {
                            number += 1;
                            format!("{:04}.{}", number - 1, file.ext)
                        }
                    };
                    paths[id] = format!("{}/{}/{name}", split.name(), CLASSES[class]);
                }
            }
        }
        paths
    }

    fn truth(&self, seed: u64, paths: &[String]) -> DemoTruth {
        let planted = &self.planted;
        let list = |ids: &[usize]| sorted(ids.iter().map(|&id| paths[id].clone()).collect());
        let groups = |groups: &[Vec<usize>]| sorted(groups.iter().map(|g| list(g)).collect());
        let pairs = |pairs: &[(usize, usize, &str)]| {
            let mut pairs: Vec<NearPair> = pairs
                .iter()
                .map(|&(original, copy, kind)| NearPair {
                    original: paths[original].clone(),
                    copy: paths[copy].clone(),
                    kind: kind.to_string(),
                })
                .collect();
            pairs.sort_by(|a, b| (&a.original, &a.copy).cmp(&(&b.original, &b.copy)));
            pairs
        };
        let mut mislabelled: Vec<Mislabel> = planted
            .mislabelled
            .iter()
            .map(|&(id, given, true_class)| Mislabel {
                path: paths[id].clone(),
                given: CLASSES[given].to_string(),
                true_label: CLASSES[true_class].to_string(),
            })
            .collect();
        mislabelled.sort_by(|a, b| a.path.cmp(&b.path));
        let unreadable = planted.corrupt.len() + planted.skipped.len();
        DemoTruth {
            seed,
            version: DEMO_VERSION,
            classes: CLASSES.iter().map(|c| c.to_string()).collect(),
            exact_byte_groups: groups(&planted.exact_byte_groups),
            exact_pixel_groups: groups(&planted.exact_pixel_groups),
            near_pairs: pairs(&planted.near_pairs),
            leakage: pairs(&planted.leakage),
            conflicting_labels: groups(&planted.conflicting_labels),
            mislabelled,
            dark: list(&planted.dark),
            bright: list(&planted.bright),
            blurry: list(&planted.blurry),
            low_information: list(&planted.low_information),
            greyscale: list(&planted.greyscale),
            corrupt: list(&planted.corrupt),
            skipped: list(&planted.skipped),
            image_count: self.files.len() - unreadable,
            file_count: self.files.len(),
        }
    }
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

fn write_files(dir: &Path, files: &[File], paths: &[String]) -> Result<()> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by(|&a, &b| paths[a].cmp(&paths[b]));
    for id in order {
        let path = dir.join(&paths[id]);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("creating folder {}", parent.display()))?;
        }
        fs::write(&path, &files[id].bytes)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn other_class(rng: &mut ChaCha8Rng, class: usize) -> usize {
    (class + rng.random_range(1..CLASSES.len())) % CLASSES.len()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extreme {
    Dark,
    Bright,
    Blurry,
    LowInformation,
    Greyscale,
}

// ---------------------------------------------------------------------------------------------
// Copies and extremes

fn near_copy(
    rng: &mut ChaCha8Rng,
    pixels: &RgbImage,
    kind: NearKind,
) -> Result<(&'static str, Vec<u8>)> {
    Ok(match kind {
        NearKind::Jpeg => ("jpg", encode_jpeg(pixels, 60)?),
        NearKind::Resize => {
            let side = if rng.random_bool(0.5) { 40 } else { 28 };
            let resized = imageops::resize(pixels, side, side, ResizeFilter::Triangle);
            ("png", encode_png(&resized, ORDINARY_PNG)?)
        }
        NearKind::Shift => {
            let steps = [-3, -2, 2, 3];
            let dx = steps[rng.random_range(0..steps.len())];
            let dy = [-2, 0, 2][rng.random_range(0..3)];
            ("png", encode_png(&shift(pixels, dx, dy), ORDINARY_PNG)?)
        }
        NearKind::Color => {
            let mut brighter = pixels.clone();
            for channel in brighter.iter_mut() {
                *channel = channel.saturating_add(20);
            }
            ("png", encode_png(&brighter, ORDINARY_PNG)?)
        }
        NearKind::Flip => (
            "png",
            encode_png(&imageops::flip_horizontal(pixels), ORDINARY_PNG)?,
        ),
    })
}

/// Moves the picture by (dx, dy), repeating the edge pixels into the uncovered border, the way
/// a crop-and-pad augmentation would.
fn shift(pixels: &RgbImage, dx: i32, dy: i32) -> RgbImage {
    let (width, height) = pixels.dimensions();
    RgbImage::from_fn(width, height, |x, y| {
        let from_x = (x as i32 - dx).clamp(0, width as i32 - 1) as u32;
        let from_y = (y as i32 - dy).clamp(0, height as i32 - 1) as u32;
        *pixels.get_pixel(from_x, from_y)
    })
}

/// Scales the picture down until the mean of each pixel's brightest channel is 0.045; every
/// other brightness measure (mean of channels, luma) is at most that.
fn darken(pixels: &RgbImage) -> RgbImage {
    let brightest = pixels
        .pixels()
        .map(|p| f32::from(p.0.into_iter().max().unwrap_or(0)))
        .sum::<f32>()
        / (pixels.width() * pixels.height()) as f32
        / 255.0;
    let gain = (0.045 / brightest.max(1e-3)).min(1.0);
    let mut dark = pixels.clone();
    for channel in dark.iter_mut() {
        *channel = (f32::from(*channel) * gain).round() as u8;
    }
    dark
}

/// The mirror of [`darken`]: pulls every channel towards white until the mean of each pixel's
/// darkest channel is 0.955.
fn brighten(pixels: &RgbImage) -> RgbImage {
    let darkest = pixels
        .pixels()
        .map(|p| f32::from(p.0.into_iter().min().unwrap_or(0)))
        .sum::<f32>()
        / (pixels.width() * pixels.height()) as f32
        / 255.0;
    let gain = (0.045 / (1.0 - darkest).max(1e-3)).min(1.0);
    let mut bright = pixels.clone();
    for channel in bright.iter_mut() {
        *channel = 255 - (f32::from(255 - *channel) * gain).round() as u8;
    }
    bright
}

/// One mid-bright colour from the class's band with a one-level flicker, so the file is not
/// trivially constant but carries almost no information.
fn nearly_uniform(rng: &mut ChaCha8Rng, class: usize) -> RgbImage {
    let hue = CLASS_HUES[class] + rng.random_range(-HUE_JITTER..HUE_JITTER);
    let base = hsv_to_rgb(hue, 0.5, 0.6);
    let base = base.map(|c| (c * 255.0).round() as u8);
    RgbImage::from_fn(32, 32, |_, _| {
        Rgb(base.map(|c| c.saturating_add(u8::from(rng.random_bool(0.2)))))
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn encode_png(
    pixels: &RgbImage,
    (compression, filter): (CompressionType, PngFilter),
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(&mut bytes, compression, filter)
        .write_image(
            pixels,
            pixels.width(),
            pixels.height(),
            ExtendedColorType::Rgb8,
        )
        .context("encoding a demo image as PNG")?;
    Ok(bytes)
}

fn encode_grey_png(pixels: &GrayImage) -> Result<Vec<u8>> {
    let (compression, filter) = ORDINARY_PNG;
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(&mut bytes, compression, filter)
        .write_image(
            pixels,
            pixels.width(),
            pixels.height(),
            ExtendedColorType::L8,
        )
        .context("encoding a demo image as greyscale PNG")?;
    Ok(bytes)
}

fn encode_jpeg(pixels: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, quality)
        .write_image(
            pixels,
            pixels.width(),
            pixels.height(),
            ExtendedColorType::Rgb8,
        )
        .context("encoding a demo image as JPEG")?;
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------------
// Drawing

/// A shape in design coordinates (a 32x32 square, stretched to the image's size).
enum Shape {
    Disc {
        cx: f32,
        cy: f32,
        radius: f32,
    },
    Ring {
        cx: f32,
        cy: f32,
        outer: f32,
        inner: f32,
    },
    /// A square turned by the angle whose cosine and sine are `cos` and `sin`.
    Square {
        cx: f32,
        cy: f32,
        half: f32,
        cos: f32,
        sin: f32,
    },
    Triangle {
        corners: [(f32, f32); 3],
    },
    /// Parallel bands across the whole image, perpendicular to the unit vector (nx, ny).
    Stripes {
        nx: f32,
        ny: f32,
        period: f32,
        duty: f32,
        phase: f32,
    },
    Checkers {
        cell: f32,
        ox: f32,
        oy: f32,
        cos: f32,
        sin: f32,
    },
}

impl Shape {
    fn contains(&self, u: f32, v: f32) -> bool {
        match *self {
            Shape::Disc { cx, cy, radius } => {
                (u - cx).powi(2) + (v - cy).powi(2) <= radius * radius
            }
            Shape::Ring {
                cx,
                cy,
                outer,
                inner,
            } => {
                let d2 = (u - cx).powi(2) + (v - cy).powi(2);
                d2 <= outer * outer && d2 >= inner * inner
            }
            Shape::Square {
                cx,
                cy,
                half,
                cos,
                sin,
            } => {
                let (du, dv) = (u - cx, v - cy);
                (du * cos + dv * sin).abs() <= half && (dv * cos - du * sin).abs() <= half
            }
            Shape::Triangle { corners } => {
                let side = |(ax, ay): (f32, f32), (bx, by): (f32, f32)| {
                    (bx - ax) * (v - ay) - (by - ay) * (u - ax)
                };
                let s = [
                    side(corners[0], corners[1]),
                    side(corners[1], corners[2]),
                    side(corners[2], corners[0]),
                ];
                s.iter().all(|&x| x >= 0.0) || s.iter().all(|&x| x <= 0.0)
            }
            Shape::Stripes {
                nx,
                ny,
                period,
                duty,
                phase,
            } => {
                let t = (u * nx + v * ny) / period + phase;
                t - t.floor() < duty
            }
            Shape::Checkers {
                cell,
                ox,
                oy,
                cos,
                sin,
            } => {
                let (ru, rv) = (u * cos + v * sin + ox, v * cos - u * sin + oy);
                ((ru / cell).floor() + (rv / cell).floor()).rem_euclid(2.0) < 0.5
            }
        }
    }
}

struct Scene {
    /// Background colour at the design centre, 0..1 per channel.
    background: [f32; 3],
    /// Change of background brightness per design unit along u and v: a soft light gradient.
    slope: (f32, f32),
    /// Drawn in order; later shapes cover earlier ones.
    shapes: Vec<(Shape, [f32; 3])>,
}

fn draw(rng: &mut ChaCha8Rng, class: usize, width: u32, height: u32) -> RgbImage {
    let scene = scene(rng, class);
    render(rng, &scene, width, height)
}

fn scene(rng: &mut ChaCha8Rng, class: usize) -> Scene {
    // Mostly dark backgrounds, some light ones, never near black or white: the dark and bright
    // plants must be the only images at the ends of the brightness scale.
    let value = if rng.random_bool(0.75) {
        rng.random_range(0.15..0.45)
    } else {
        rng.random_range(0.7..0.85)
    };
    let background = hsv_to_rgb(
        rng.random_range(0.0..360.0),
        rng.random_range(0.0..0.2),
        value,
    );
    let slope = (
        rng.random_range(-0.004..0.004),
        rng.random_range(-0.004..0.004),
    );
    let mut shapes = Vec::new();
    match CLASSES[class] {
        "circles" => {
            for _ in 0..rng.random_range(1..=3) {
                let radius = rng.random_range(3.5..9.0);
                let shape = Shape::Disc {
                    cx: rng.random_range(3.0..29.0),
                    cy: rng.random_range(3.0..29.0),
                    radius,
                };
                shapes.push((shape, class_colour(rng, class)));
            }
        }
        "rings" => {
            for _ in 0..rng.random_range(1..=2) {
                let outer = rng.random_range(6.0..13.0);
                let shape = Shape::Ring {
                    cx: rng.random_range(8.0..24.0),
                    cy: rng.random_range(8.0..24.0),
                    outer,
                    inner: outer - rng.random_range(2.0..3.5),
                };
                shapes.push((shape, class_colour(rng, class)));
            }
        }
        "squares" => {
            for _ in 0..rng.random_range(1..=3) {
                let (cos, sin) = small_rotation(rng, 0.27);
                let shape = Shape::Square {
                    cx: rng.random_range(4.0..28.0),
                    cy: rng.random_range(4.0..28.0),
                    half: rng.random_range(3.0..8.0),
                    cos,
                    sin,
                };
                shapes.push((shape, class_colour(rng, class)));
            }
        }
        "triangles" => {
            for _ in 0..rng.random_range(1..=2) {
                let (cx, cy) = (rng.random_range(8.0..24.0), rng.random_range(8.0..24.0));
                let radius = rng.random_range(6.0..13.0);
                let (cos, sin) = unit_vector(rng);
                // The other two corners are the first turned by 120 and 240 degrees.
                let (c120, s120) = (-0.5, 3f32.sqrt() / 2.0);
                let turn = |(x, y): (f32, f32)| (x * c120 - y * s120, x * s120 + y * c120);
                let first = (cos * radius, sin * radius);
                let second = turn(first);
                let third = turn(second);
                let mut corners = [first, second, third];
                for corner in &mut corners {
                    corner.0 += cx + rng.random_range(-1.5..1.5);
                    corner.1 += cy + rng.random_range(-1.5..1.5);
                }
                shapes.push((Shape::Triangle { corners }, class_colour(rng, class)));
            }
        }
        "stripes" => {
            let (nx, ny) = unit_vector(rng);
            let shape = Shape::Stripes {
                nx,
                ny,
                period: rng.random_range(5.0..10.0),
                duty: rng.random_range(0.35..0.65),
                phase: rng.random_range(0.0..1.0),
            };
            shapes.push((shape, class_colour(rng, class)));
        }
        "checkers" => {
            let (cos, sin) = small_rotation(rng, 0.18);
            let cell = rng.random_range(3.5..8.0);
            let shape = Shape::Checkers {
                cell,
                ox: rng.random_range(0.0..cell * 2.0),
                oy: rng.random_range(0.0..cell * 2.0),
                cos,
                sin,
            };
            shapes.push((shape, class_colour(rng, class)));
        }
        other => unreachable!("no drawing for class {other}"),
    }
    Scene {
        background,
        slope,
        shapes,
    }
}

/// Renders with 2x2 supersampling (soft edges, like a photographed object) and adds noise, so
/// that no two images are pixel-alike even when their geometry happens to be.
fn render(rng: &mut ChaCha8Rng, scene: &Scene, width: u32, height: u32) -> RgbImage {
    let (scale_u, scale_v) = (DESIGN / width as f32, DESIGN / height as f32);
    let mut image = RgbImage::new(width, height);
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        let mut sum = [0f32; 3];
        for (sx, sy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
            let u = (x as f32 + sx) * scale_u;
            let v = (y as f32 + sy) * scale_v;
            let covering = scene
                .shapes
                .iter()
                .rev()
                .find(|(shape, _)| shape.contains(u, v));
            let colour = match covering {
                Some((_, colour)) => *colour,
                None => {
                    let lift =
                        (u - DESIGN / 2.0) * scene.slope.0 + (v - DESIGN / 2.0) * scene.slope.1;
                    scene.background.map(|c| c + lift)
                }
            };
            for (total, c) in sum.iter_mut().zip(colour) {
                *total += c;
            }
        }
        for (channel, total) in pixel.0.iter_mut().zip(sum) {
            let level = (total / 4.0 * 255.0).round() as i32 + rng.random_range(-NOISE..=NOISE);
            *channel = level.clamp(0, 255) as u8;
        }
    }
    image
}

fn class_colour(rng: &mut ChaCha8Rng, class: usize) -> [f32; 3] {
    hsv_to_rgb(
        CLASS_HUES[class] + rng.random_range(-HUE_JITTER..HUE_JITTER),
        rng.random_range(0.55..0.95),
        rng.random_range(0.6..0.95),
    )
}

/// A uniformly random direction, by rejection sampling in the unit disc (no trigonometry, so
/// the result is the same on every platform).
fn unit_vector(rng: &mut ChaCha8Rng) -> (f32, f32) {
    loop {
        let (x, y): (f32, f32) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        let length = (x * x + y * y).sqrt();
        if (0.25..=1.0).contains(&length) {
            return (x / length, y / length);
        }
    }
}

/// Cosine and sine of a random angle of at most about `max_slope` radians either way.
fn small_rotation(rng: &mut ChaCha8Rng, max_slope: f32) -> (f32, f32) {
    let slope: f32 = rng.random_range(-max_slope..max_slope);
    let length = (1.0 + slope * slope).sqrt();
    (1.0 / length, slope / length)
}

/// `hue` in degrees (any value, wrapped), `saturation` and `value` in 0..1.
fn hsv_to_rgb(hue: f32, saturation: f32, value: f32) -> [f32; 3] {
    let h = hue.rem_euclid(360.0) / 60.0;
    let chroma = value * saturation;
    let x = chroma * (1.0 - (h.rem_euclid(2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (chroma, x, 0.0),
        1 => (x, chroma, 0.0),
        2 => (0.0, chroma, x),
        3 => (0.0, x, chroma),
        4 => (x, 0.0, chroma),
        _ => (chroma, 0.0, x),
    };
    let m = value - chroma;
    [r + m, g + m, b + m]
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    use image::DynamicImage;

    use super::*;

    fn generate_fresh(seed: u64) -> (tempfile::TempDir, DemoTruth) {
        let temp = tempfile::tempdir().expect("creating a temp dir");
        let truth = generate(&temp.path().join("demo"), seed).expect("generating the demo");
        (temp, truth)
    }

    fn root(temp: &tempfile::TempDir) -> PathBuf {
        temp.path().join("demo")
    }

    /// Every file under `dir`, by relative `/`-separated path.
    fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        fn walk(dir: &Path, prefix: &str, files: &mut BTreeMap<String, Vec<u8>>) {
            for entry in fs::read_dir(dir).expect("listing a demo folder") {
                let entry = entry.expect("reading a directory entry");
                let name = entry.file_name().into_string().expect("UTF-8 file name");
                let relative = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                if entry.file_type().expect("file type").is_dir() {
                    walk(&entry.path(), &relative, files);
                } else {
                    files.insert(
                        relative,
                        fs::read(entry.path()).expect("reading a demo file"),
                    );
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(dir, "", &mut files);
        files
    }

    fn decoded(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, DynamicImage> {
        files
            .iter()
            .filter_map(|(path, bytes)| Some((path.clone(), image::load_from_memory(bytes).ok()?)))
            .collect()
    }

    fn class_of(path: &str) -> &str {
        path.split('/').nth(1).expect("a class folder in the path")
    }

    fn groups_of<K: Ord>(keyed: impl Iterator<Item = (K, String)>) -> Vec<Vec<String>> {
        let mut groups: BTreeMap<K, Vec<String>> = BTreeMap::new();
        for (key, path) in keyed {
            groups.entry(key).or_default().push(path);
        }
        let mut groups: Vec<Vec<String>> = groups.into_values().filter(|g| g.len() > 1).collect();
        for group in &mut groups {
            group.sort();
        }
        groups.sort();
        groups
    }

    /// Brightness of an image on a 0..1 scale, as the mean over pixels of `per_pixel`.
    fn mean_of(image: &DynamicImage, per_pixel: impl Fn([u8; 3]) -> f32) -> f32 {
        let rgb = image.to_rgb8();
        rgb.pixels().map(|p| per_pixel(p.0)).sum::<f32>() / rgb.pixels().len() as f32 / 255.0
    }

    fn brightness_measures(image: &DynamicImage) -> [f32; 4] {
        [
            mean_of(image, |[r, g, b]| {
                (f32::from(r) + f32::from(g) + f32::from(b)) / 3.0
            }),
            mean_of(image, |[r, g, b]| {
                0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
            }),
            mean_of(image, |p| f32::from(p.into_iter().max().unwrap_or(0))),
            mean_of(image, |p| f32::from(p.into_iter().min().unwrap_or(0))),
        ]
    }

    /// Mean absolute difference between horizontally and vertically adjacent luma values.
    fn sharpness(image: &DynamicImage) -> f32 {
        let luma = image.to_luma8();
        let (width, height) = luma.dimensions();
        let mut total = 0u32;
        let mut count = 0u32;
        for y in 0..height {
            for x in 0..width {
                let here = i32::from(luma.get_pixel(x, y).0[0]);
                if x + 1 < width {
                    total += here.abs_diff(i32::from(luma.get_pixel(x + 1, y).0[0]));
                    count += 1;
                }
                if y + 1 < height {
                    total += here.abs_diff(i32::from(luma.get_pixel(x, y + 1).0[0]));
                    count += 1;
                }
            }
        }
        total as f32 / count as f32
    }

    fn all_truth_paths(truth: &DemoTruth) -> BTreeSet<String> {
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

    #[test]
    fn same_seed_gives_identical_files_and_truth() {
        let (first_dir, first) = generate_fresh(7);
        let (second_dir, second) = generate_fresh(7);
        assert_eq!(first, second);
        // Comparing whole trees also catches a file present in one run only.
        assert!(read_tree(&root(&first_dir)) == read_tree(&root(&second_dir)));
    }

    #[test]
    fn different_seed_gives_different_files() {
        let (first_dir, first) = generate_fresh(7);
        let (second_dir, second) = generate_fresh(8);
        assert_ne!(first, second);
        let first_files = read_tree(&root(&first_dir));
        let second_files = read_tree(&root(&second_dir));
        let same = first_files
            .iter()
            .filter(|(path, bytes)| second_files.get(*path) == Some(bytes))
            .count();
        // Only the fixed-content files (the empty PNG, notes.jpg, .DS_Store) may coincide.
        assert!(same <= 3, "{same} files are identical across seeds");
    }

    #[test]
    fn truth_names_existing_files_and_counts_them_all() {
        let (temp, truth) = generate_fresh(1);
        let files = read_tree(&root(&temp));
        for path in all_truth_paths(&truth) {
            assert!(
                files.contains_key(&path),
                "{path} is in the truth but was not written"
            );
        }
        assert_eq!(truth.file_count, files.len());
        assert_eq!(truth.version, DEMO_VERSION);
        assert_eq!(truth.seed, 1);
        assert_eq!(truth.classes, CLASSES.map(String::from).to_vec());
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
    fn exact_byte_groups_are_every_set_of_identical_files() {
        let (temp, truth) = generate_fresh(2);
        let files = read_tree(&root(&temp));
        let readable = decoded(&files);
        let by_bytes = groups_of(
            readable
                .keys()
                .map(|path| (files[path].clone(), path.clone())),
        );
        assert_eq!(truth.exact_byte_groups, by_bytes);
        assert_eq!(truth.exact_byte_groups.len(), 3 + 4 + 1);
    }

    #[test]
    fn exact_pixel_groups_share_pixels_but_never_bytes() {
        let (temp, truth) = generate_fresh(3);
        let files = read_tree(&root(&temp));
        let readable = decoded(&files);
        let by_pixels = groups_of(readable.iter().map(|(path, image)| {
            let key = (
                image.width(),
                image.height(),
                image.color() as u8,
                image.as_bytes().to_vec(),
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
    fn corrupt_files_fail_to_decode_and_the_rest_are_counted() {
        let (temp, truth) = generate_fresh(4);
        let files = read_tree(&root(&temp));
        let readable = decoded(&files);
        for path in &truth.corrupt {
            assert!(
                image::load_from_memory(&files[path]).is_err(),
                "{path} decodes"
            );
        }
        let unreadable: BTreeSet<&String> = files
            .keys()
            .filter(|path| !readable.contains_key(*path))
            .collect();
        let expected: BTreeSet<&String> = truth.corrupt.iter().chain(&truth.skipped).collect();
        assert_eq!(unreadable, expected);
        assert_eq!(truth.image_count, readable.len());
        assert_eq!(truth.corrupt.len(), 3);
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
        let (_temp, truth) = generate_fresh(5);
        let kinds: BTreeSet<&str> = truth.near_pairs.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(
            kinds,
            BTreeSet::from(["color", "flip", "jpeg", "resize", "shift"])
        );
        for pair in &truth.near_pairs {
            assert!(pair.original.starts_with("train/") && pair.copy.starts_with("train/"));
            assert_eq!(class_of(&pair.original), class_of(&pair.copy));
        }
        assert_eq!(truth.leakage.len(), 8);
        for pair in &truth.leakage {
            assert!(pair.original.starts_with("train/"), "{pair:?}");
            assert!(pair.copy.starts_with("test/"), "{pair:?}");
            assert_eq!(class_of(&pair.original), class_of(&pair.copy));
        }
        for group in &truth.conflicting_labels {
            let classes: BTreeSet<&str> = group.iter().map(|p| class_of(p)).collect();
            assert!(classes.len() > 1, "{group:?} agrees on its label");
        }
        assert_eq!(truth.mislabelled.len(), 13);
        for mislabel in &truth.mislabelled {
            assert_eq!(class_of(&mislabel.path), mislabel.given);
            assert_ne!(mislabel.given, mislabel.true_label);
        }
        // A source shared by two plants would make the truth ambiguous.
        let mut originals = BTreeSet::new();
        for original in truth
            .near_pairs
            .iter()
            .chain(&truth.leakage)
            .map(|p| &p.original)
            .chain(truth.exact_pixel_groups.iter().flatten())
        {
            assert!(
                originals.insert(original),
                "{original} is used by two plants"
            );
        }
    }

    #[test]
    fn extremes_are_extreme_and_ordinary_images_are_not() {
        let (temp, truth) = generate_fresh(6);
        let files = read_tree(&root(&temp));
        let readable = decoded(&files);
        let planted: BTreeSet<&String> = truth
            .dark
            .iter()
            .chain(&truth.bright)
            .chain(&truth.blurry)
            .chain(&truth.low_information)
            .collect();
        for path in &truth.dark {
            let measures = brightness_measures(&readable[path]);
            assert!(measures.iter().all(|&m| m < 0.08), "{path}: {measures:?}");
        }
        for path in &truth.bright {
            let measures = brightness_measures(&readable[path]);
            assert!(measures.iter().all(|&m| m > 0.92), "{path}: {measures:?}");
        }
        for path in &truth.greyscale {
            assert_eq!(readable[path].color(), image::ColorType::L8, "{path}");
        }
        let greyscale: BTreeSet<&String> = truth.greyscale.iter().collect();
        for (path, image) in &readable {
            let grey = image.color() == image::ColorType::L8;
            assert_eq!(grey, greyscale.contains(path), "{path} greyscale mismatch");
        }
        let blurriest_planted = truth
            .blurry
            .iter()
            .map(|path| sharpness(&readable[path]))
            .fold(0.0, f32::max);
        for path in &truth.low_information {
            let image = readable[path].to_rgb8();
            let first = image.get_pixel(0, 0).0;
            let spread = image
                .pixels()
                .flat_map(|p| p.0.into_iter().zip(first).map(|(a, b)| a.abs_diff(b)))
                .max();
            assert!(spread <= Some(1), "{path} is not nearly uniform");
        }
        for (path, image) in readable.iter().filter(|(path, _)| !planted.contains(path)) {
            let measures = brightness_measures(image);
            assert!(
                measures.iter().all(|&m| (0.09..0.91).contains(&m)),
                "{path} is an unplanted brightness extreme: {measures:?}"
            );
            let sharp = sharpness(image);
            assert!(
                sharp > 2.0 * blurriest_planted,
                "{path} is nearly as blurry as the blurred plants: {sharp} vs {blurriest_planted}"
            );
        }
    }

    #[test]
    fn refuses_a_folder_that_is_not_empty() {
        let temp = tempfile::tempdir().expect("creating a temp dir");
        fs::write(temp.path().join("keep.txt"), "mine").expect("writing a file");
        let err = generate(temp.path(), 1).expect_err("a non-empty folder must be refused");
        assert!(format!("{err:#}").contains(&temp.path().display().to_string()));
        assert_eq!(fs::read_dir(temp.path()).expect("listing").count(), 1);
        // An existing empty folder is fine.
        let empty = temp.path().join("empty");
        fs::create_dir(&empty).expect("creating a folder");
        generate(&empty, 1).expect("an empty folder is accepted");
    }
}
