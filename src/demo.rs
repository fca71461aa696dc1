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
//! - Determinism: the same seed gives byte-identical files. Everything random comes from one
//!   `ChaCha8Rng` consumed in a fixed order, files are named and written in a fixed order, and
//!   no hash-map order is ever observed. The drawing code also keeps to arithmetic and `sqrt`,
//!   whose results IEEE 754 fixes exactly, so that other platforms very likely agree too; only
//!   the blurred plants go through a platform `exp` (in `image`'s gaussian kernel).
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
use rand::{Rng, RngExt, SeedableRng};
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
    let (files, truth) = build(seed)?;
    write_files(dir, &files)?;
    Ok(truth)
}

/// Every file of the dataset as its relative path and bytes, sorted by path.
type Files = Vec<(String, Vec<u8>)>;

/// The whole dataset in memory, and its truth. Kept apart from writing so that tests can check
/// determinism without touching disk.
fn build(seed: u64) -> Result<(Files, DemoTruth)> {
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
    let truth = dataset.truth(seed, &paths);
    let bytes = dataset.files.into_iter().map(|file| file.bytes);
    let mut files: Files = paths.into_iter().zip(bytes).collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((files, truth))
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
        Err(err) => Err(err).with_context(|| format!("could not read {}", dir.display())),
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
                // The fourth of a set goes to test, so the extremes are not a train-only story.
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
        // The decoder accepts a JPEG cut anywhere in its compressed data (it greys out the
        // missing rows), so the cut goes halfway into the headers, before the start of scan.
        let start_of_scan = whole
            .windows(2)
            .position(|marker| marker == [0xFF, 0xDA])
            .context("the JPEG encoder wrote no start-of-scan marker")?;
        let truncated = whole[..start_of_scan / 2].to_vec();
        ensure!(
            image::load_from_memory(&truncated).is_err(),
            "a truncated JPEG still decodes, so it cannot be planted as unreadable"
        );
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
        // `None` is the split folder itself, where README.txt sits.
        let folders = std::iter::once(None).chain((0..CLASSES.len()).map(Some));
        for (class, split) in
            folders.flat_map(|class| [(class, Split::Train), (class, Split::Test)])
        {
            let mut folder: Vec<usize> = (0..self.files.len())
                .filter(|&id| self.files[id].split == split && self.files[id].class == class)
                .collect();
            folder.shuffle(&mut self.rng);
            let folder_path = match class {
                Some(class) => format!("{}/{}", split.name(), CLASSES[class]),
                None => split.name().to_string(),
            };
            let mut number = 0;
            for id in folder {
                let file = &self.files[id];
                paths[id] = match file.name {
                    Some(name) => format!("{folder_path}/{name}"),
                    None => {
                        number += 1;
                        format!("{folder_path}/{:04}.{}", number - 1, file.ext)
                    }
                };
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

/// Plain writes, not `fsutil::write_atomic`: a temporary file and a rename per image would double
/// the cost of the demo, and buy nothing, since a half-written folder is never trusted (the
/// caller records the truth only after `generate` returns, and regenerates without it).
fn write_files(dir: &Path, files: &Files) -> Result<()> {
    let mut folder_made: Option<&str> = None;
    for (relative, bytes) in files {
        let folder = relative.rsplit_once('/').map_or("", |(folder, _)| folder);
        if folder_made != Some(folder) {
            crate::fsutil::create_dir_all(&dir.join(folder))?;
            folder_made = Some(folder);
        }
        let path = dir.join(relative);
        fs::write(&path, bytes).with_context(|| format!("could not write {}", path.display()))?;
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
            // Along one axis only: a diagonal move of 3 px each way would be a bigger change
            // than "a slightly different crop" is meant to be.
            let steps = [-3, -2, 2, 3];
            let step = steps[rng.random_range(0..steps.len())];
            let (dx, dy) = if rng.random_bool(0.5) {
                (step, 0)
            } else {
                (0, step)
            };
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
                (u - cx) * (u - cx) + (v - cy) * (v - cy) <= radius * radius
            }
            Shape::Ring {
                cx,
                cy,
                outer,
                inner,
            } => {
                let d2 = (u - cx) * (u - cx) + (v - cy) * (v - cy);
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
                let (a, b, c) = (
                    side(corners[0], corners[1]),
                    side(corners[1], corners[2]),
                    side(corners[2], corners[0]),
                );
                (a >= 0.0 && b >= 0.0 && c >= 0.0) || (a <= 0.0 && b <= 0.0 && c <= 0.0)
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

const MOTTLE_CELL: f32 = 8.0;
const MOTTLE_GRID: usize = 5;

struct Light {
    cx: f32,
    cy: f32,
    radius: f32,
    strength: f32,
}

struct Scene {
    /// Background colour at the design centre, 0..1 per channel.
    background: [f32; 3],
    /// Brightness added to the background at the corners of a grid of `MOTTLE_CELL`-unit cells,
    /// blended in between: a blotchy backdrop, different in every image, so that pictures with
    /// a small shape on a plain ground do not all shrink to the same thumbnail.
    mottle: [[f32; MOTTLE_GRID]; MOTTLE_GRID],
    /// A soft spotlight over the whole picture, dimming it away from the centre (cx, cy), by up
    /// to `strength` at distances well beyond `radius`. It varies the low frequencies that
    /// thumbnails and perceptual hashes see; without it two fine checkerboards in similar
    /// colours shrink to the same flat thumbnail and look like near duplicates nobody planted.
    light: Light,
    /// Drawn in order; later shapes cover earlier ones.
    shapes: Vec<(Shape, [f32; 3])>,
}

impl Light {
    /// Multiplier of the scene's colours at (u, v).
    fn at(&self, u: f32, v: f32) -> f32 {
        let distance2 = (u - self.cx) * (u - self.cx) + (v - self.cy) * (v - self.cy);
        1.0 - self.strength + self.strength / (1.0 + distance2 / (self.radius * self.radius))
    }
}

impl Scene {
    /// The colour of the topmost shape covering (u, v), if any.
    fn shape_colour_at(&self, u: f32, v: f32) -> Option<[f32; 3]> {
        for (shape, colour) in self.shapes.iter().rev() {
            if shape.contains(u, v) {
                return Some(*colour);
            }
        }
        None
    }

    fn mottle_at(&self, u: f32, v: f32) -> f32 {
        let (gu, gv) = (u / MOTTLE_CELL, v / MOTTLE_CELL);
        let last = MOTTLE_GRID - 2;
        let (iu, iv) = ((gu as usize).min(last), (gv as usize).min(last));
        let (fu, fv) = (gu - iu as f32, gv - iv as f32);
        let row = |r: &[f32; MOTTLE_GRID]| r[iu] * (1.0 - fu) + r[iu + 1] * fu;
        row(&self.mottle[iv]) * (1.0 - fv) + row(&self.mottle[iv + 1]) * fv
    }
}

fn draw(rng: &mut ChaCha8Rng, class: usize, width: u32, height: u32) -> RgbImage {
    let scene = scene(rng, class);
    render(rng, &scene, width, height)
}

fn scene(rng: &mut ChaCha8Rng, class: usize) -> Scene {
    // Mostly dark backgrounds, some light ones, never near black or white: the dark and bright
    // plants must be the only images at the ends of the brightness scale.
    let value = if rng.random_bool(0.75) {
        rng.random_range(0.2..0.45)
    } else {
        rng.random_range(0.7..0.85)
    };
    let background = hsv_to_rgb(
        rng.random_range(0.0..360.0),
        rng.random_range(0.0..0.1),
        value,
    );
    let mut mottle = [[0.0; MOTTLE_GRID]; MOTTLE_GRID];
    for lift in mottle.iter_mut().flatten() {
        *lift = rng.random_range(-0.3..0.3);
    }
    let light = Light {
        cx: rng.random_range(0.0..DESIGN),
        cy: rng.random_range(0.0..DESIGN),
        radius: rng.random_range(8.0..20.0),
        strength: rng.random_range(0.0..0.35),
    };
    let mut shapes = Vec::new();
    match CLASSES[class] {
        "circles" => {
            for _ in 0..rng.random_range(1..=3) {
                let radius = rng.random_range(4.5..9.5);
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
                    half: rng.random_range(3.5..8.0),
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
                period: rng.random_range(6.0..12.0),
                duty: rng.random_range(0.35..0.65),
                phase: rng.random_range(0.0..1.0),
            };
            shapes.push((shape, class_colour(rng, class)));
        }
        "checkers" => {
            let (cos, sin) = small_rotation(rng, 0.18);
            let cell = rng.random_range(5.0..10.0);
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
        mottle,
        light,
        shapes,
    }
}

/// Renders with 2x2 supersampling (soft edges, like a photographed object) and adds noise, so
/// that no two images are pixel-alike even when their geometry happens to be.
///
/// Plain loops and one bulk draw of noise bytes: this is the only hot loop of the demo, and
/// tests and `aldente demo` in a debug build run it unoptimised.
fn render(rng: &mut ChaCha8Rng, scene: &Scene, width: u32, height: u32) -> RgbImage {
    const SUBSAMPLES: [(f32, f32); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];
    let (scale_u, scale_v) = (DESIGN / width as f32, DESIGN / height as f32);
    let mut noise = vec![0u8; width as usize * height as usize * 3];
    rng.fill_bytes(&mut noise);
    let mut image = RgbImage::new(width, height);
    let channels: &mut [u8] = &mut image;
    let mut i = 0;
    for y in 0..height {
        for x in 0..width {
            // Light and mottle vary slowly, so the pixel centre stands for all four samples.
            let (centre_u, centre_v) = ((x as f32 + 0.5) * scale_u, (y as f32 + 0.5) * scale_v);
            let lit = scene.light.at(centre_u, centre_v) / 4.0 * 255.0;
            let lift = scene.mottle_at(centre_u, centre_v);
            let [r, g, b] = scene.background;
            let backdrop = [r + lift, g + lift, b + lift];
            let mut sum = [0f32; 3];
            for (sx, sy) in SUBSAMPLES {
                let (u, v) = ((x as f32 + sx) * scale_u, (y as f32 + sy) * scale_v);
                let [r, g, b] = scene.shape_colour_at(u, v).unwrap_or(backdrop);
                sum = [sum[0] + r, sum[1] + g, sum[2] + b];
            }
            for total in sum {
                // Uniform in -NOISE..=NOISE, but for -NOISE coming up once more in 256 draws.
                let jitter = i32::from(noise[i]) % (2 * NOISE + 1) - NOISE;
                let level = (total * lit).round() as i32 + jitter;
                channels[i] = level.clamp(0, 255) as u8;
                i += 1;
            }
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
    use std::sync::OnceLock;

    use image::{ColorType, DynamicImage};

    use super::*;

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
                .filter_map(|(path, bytes)| {
                    Some((path.clone(), image::load_from_memory(bytes).ok()?))
                })
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
}
