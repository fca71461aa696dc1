//! The plan of the demo dataset: which files it holds, in which split and class folder, what is
//! planted in each, and the [`DemoTruth`] that records it.
//!
//! [`build`] runs the whole plan in memory, one step per kind of plant, and returns every file's
//! relative path and bytes with the truth; the parent module writes them. Pictures come from
//! `scene`, planted variants from `edits`, bytes from `encode`.
//!
//! Invariants:
//! - The one `ChaCha8Rng` is consumed in the order [`build`] calls its steps, and within a step
//!   in the order of its loops; reordering a step, a loop or a draw changes every file after it
//!   (and calls for a bump of `DEMO_VERSION`).
//! - Until [`Dataset::assign_paths`], plants refer to files by their index in `Dataset::files`.
//! - Each plant takes its own source image, so no file is the original of two plants and no
//!   planted copy is ever a source: the truth has exactly one reading.
//!
//! It never touches the disk and never iterates a hash map.

use anyhow::{Result, bail, ensure};
use image::{RgbImage, imageops};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::edits::{NearKind, brighten, darken, near_copy};
use super::encode::{
    JPEG_QUALITY, ORDINARY_PNG, PIXEL_COPY_PNG, encode_grey_png, encode_jpeg, encode_png,
    truncated_jpeg,
};
use super::scene::{draw, nearly_uniform};
use super::{CLASSES, DEMO_VERSION, DemoTruth, Mislabel, NearPair};

/// "triangles" gets a quarter of the images, so the class-imbalance alert has something to say.
const MINORITY_CLASS: usize = 5;
const TRAIN_PER_CLASS: usize = 400;
const TEST_PER_CLASS: usize = 80;
/// The handful of odd sizes, so the size distribution is not a single spike.
const ODD_SIZES: [(u32, u32); 4] = [(48, 40), (64, 64), (40, 32), (24, 24)];
const ODD_SIZE_SHARE: f64 = 0.04;
const JPEG_SHARE: f64 = 0.12;

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

/// Every file of the dataset as its relative path and bytes, sorted by path.
pub(super) type Files = Vec<(String, Vec<u8>)>;

/// The whole dataset in memory, and its truth. Kept apart from writing so that tests can check
/// determinism without touching disk.
pub(super) fn build(seed: u64) -> Result<(Files, DemoTruth)> {
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
        let truncated = truncated_jpeg(&draw(&mut self.rng, class, 32, 32))?;
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
