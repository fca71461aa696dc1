//! Stage 5, embed: a feature vector per image, nearest neighbours, likely label errors,
//! outliers, class confusion and the 2-D map.
//!
//! Steps, each timed in the artifact (and so in run.json):
//! 1. features ([`features`]): per image, cached by pixel hash across runs, so a relabel or a
//!    few changed files recompute only the vectors of new pixels;
//! 2. reduce ([`pca`]): standardise, PCA to `embed.components`, unit rows;
//! 3. neighbours ([`crate::neighbours`]): exact cosine `embed.neighbours` nearest of every
//!    image;
//! 4. findings ([`findings`]): label issues (neighbour vote + out-of-fold linear model),
//!    outliers, the class-confusion matrix, per-class neighbour agreement;
//! 5. map ([`map`]): t-SNE of a seeded sample chosen by pixels ([`map_sample`]), at most
//!    `embed.map_points` images. It runs on one thread (for a repeatable map) beside steps 3
//!    and 4, so their timings overlap.
//!
//! Steps 1-3 and 5 read pixels only; they form the [`PixelPart`], computed in canonical row
//! order (images by pixel hash) and reused whole while the pictures are the same, so a
//! relabel reruns step 4 alone and a rerun's artifact equals a cold run's. Step 4 reads the
//! labels in the same canonical order; indices are mapped back to the image table at the end.
//!
//! Everything is seeded by `embed.seed`: the same data and settings give the same artifact.
//! The stage never touches the cache: the pipeline hands it the previous pixel part (and,
//! when that must be redone, the feature store) and stores what it returns. A damaged store
//! is not an error; every vector is computed again and the artifact says so. Invariant:
//! every index in the artifact is an index into the ingest image table.

pub mod features;
pub mod findings;
pub mod map;
pub mod onnx;
pub mod pca;

use std::time::Instant;

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::config::EmbedConfig;
use crate::neighbours::Neighbours;
use crate::neighbours::deep::{self, Deep};
#[cfg(test)]
use crate::neighbours::{Method, Search};
use crate::progress::Progress;
use crate::stage::Stage;
use crate::stages::ingest::Ingested;

use features::{BuiltinFeatures, Embedder, Encoding, FeatureStore};
use onnx::OnnxEmbedder;

pub const STAGE: Stage = Stage::Embed;
/// 5: canonical row order, a pixel-only map sample, and the pixel part reused across relabels.
/// 6: model features; label issues ranked by the nearest reference image per class.
/// 7: the PCA fitted on rows chosen by pixels; deep neighbour tables repaired across
/// changes; the out-of-fold model is a linear discriminant fitted from sums (findings.rs).
pub const VERSION: u32 = 7;

/// Neighbours kept beyond `embed.neighbours` (and beyond the map's) in the stored tables:
/// the margin that lets the next run repair them instead of searching (see
/// [`crate::neighbours::deep`]).
/// Measured on CIFAR-10 after 100 changed pictures (the new basis moves every row by
/// about 0.003): with 12, 11,032 of 60,000 rows had to be searched again; with 28, 415
/// (the 400 new or most-moved rows and 15 others). After 300 changed, added and removed
/// (rows move by about 0.0055): with 28, 3,315; with 80, 500 (only the new and most-moved
/// rows), at no measurable cost to the cold search.
const DEPTH_MARGIN: usize = 80;
/// The same for the map's table, whose repair need not be exact (see [`deep::Want::Close`]).
const MAP_DEPTH_MARGIN: usize = 28;
/// A rerun repairs its neighbour tables from the [`Reference`] when at most this share of
/// its rows are pictures new since (or gone); beyond it, everything is searched again.
const REPAIR_AT_MOST: f64 = 0.05;

/// Neighbours shown as evidence beside each label issue and outlier.
pub const EVIDENCE: usize = 8;
/// Every image's neighbours among all the others, exactly (the tests' reference search).
#[cfg(test)]
pub(crate) const ALL_PAIRS: Search = Search {
    method: Method::Exact,
    same_set: true,
};
/// Neighbours on the map that define its per-class agreement.
const MAP_AGREEMENT_K: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbedArtifact {
    /// "tsne" when a map was made, "none" when there was nothing to embed.
    pub method: String,
    /// Images on the map.
    pub points: usize,
    /// Images embedded (all analysed images).
    pub images: usize,
    /// The feature source, e.g. `builtin-hog-colour-v2`.
    pub features: String,
    pub feature_dims: usize,
    pub components: usize,
    /// Share of the standardised feature variance the components keep.
    pub explained_variance: f64,
    /// Neighbours per image.
    pub k: usize,
    pub counts: EmbedCounts,
    /// Indices into `classes` of the ingest artifact, per image.
    pub labels: Vec<u32>,
    /// All images whose evidence prefers another label, highest score first, each with its
    /// nearest neighbours as evidence (capped at `embed.label_issues`).
    pub label_issues: Vec<Finding<findings::LabelIssue>>,
    /// How many images the evidence would relabel in all (before the cap).
    pub label_issue_total: usize,
    /// Candidates per split before the cap (split name; "" without splits).
    #[serde(default)]
    pub label_issue_split_totals: std::collections::BTreeMap<String, usize>,
    /// The split whose images anchor the label-issue ranking; none: every image.
    #[serde(default)]
    pub reference_split: Option<String>,
    /// The images farthest from their neighbours, highest score first.
    pub outliers: Vec<Finding<f32>>,
    /// `confusion[a][b]`, see [`findings::confusion`].
    pub confusion: Vec<Vec<f32>>,
    /// Per class: neighbour agreement in feature space, on the map, and images mapped.
    pub separation: Vec<ClassSeparation>,
    /// Share of images whose neighbours' weighted vote gives their own label (leave one out).
    pub vote_accuracy: f32,
    pub map: Vec<MapPoint>,
    /// The map was started from an earlier run's coordinates and refined briefly, not drawn
    /// from scratch (the report says which; `--force=embed` draws it from scratch).
    #[serde(default)]
    pub map_warm: bool,
    /// The user's model, when it was the feature source.
    #[serde(default)]
    pub model: Option<ModelInfo>,
    /// Problems that did not stop the stage (a damaged feature store, say).
    pub notes: Vec<String>,
}

/// What the report says of a model used as the feature source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The file's name (not its folder: reports are shared).
    pub file: String,
    /// xxh3 of its bytes, hex.
    pub hash: String,
    /// e.g. "3 x 32 x 32 (channels first)".
    pub input: String,
    pub output: String,
    pub pixels: String,
    /// Its class scores were the label issues' model witness (`embed.model_is_classifier`).
    #[serde(default)]
    pub classifier: bool,
}

impl ModelInfo {
    fn of(model: &OnnxEmbedder, pixels: &str) -> ModelInfo {
        ModelInfo {
            file: model
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            hash: format!("{:016x}", model.hash),
            input: match model.layout {
                onnx::Layout::ChannelsFirst => {
                    format!("3 x {} x {} (channels first)", model.height, model.width)
                }
                onnx::Layout::ChannelsLast => {
                    format!("{} x {} x 3 (channels last)", model.height, model.width)
                }
            },
            output: model.output.clone(),
            pixels: pixels.to_string(),
            classifier: false,
        }
    }
}

/// One finding about an image, with the image's nearest neighbours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding<T> {
    pub image: usize,
    pub detail: T,
    pub score: f32,
    pub neighbours: Vec<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassSeparation {
    pub images: usize,
    pub mapped: usize,
    pub feature_agreement: f32,
    pub map_agreement: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MapPoint {
    pub image: u32,
    pub x: f32,
    pub y: f32,
}

/// Work done and time taken, per step; copied into run.json.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbedCounts {
    pub features_computed: usize,
    pub features_reused: usize,
    pub features_seconds: f64,
    pub pca_seconds: f64,
    pub neighbours_seconds: f64,
    pub findings_seconds: f64,
    pub map_seconds: f64,
    /// The pixel part (vectors, neighbours, map) came from the last run: a relabel.
    #[serde(default)]
    pub pixel_part_reused: bool,
    /// Rows whose neighbours were searched in this run.
    #[serde(default)]
    pub neighbours_searched: usize,
    /// t-SNE iterations run in this run.
    #[serde(default)]
    pub map_iterations: usize,
    /// Rows whose neighbours were repaired from the last run's instead of searched.
    #[serde(default)]
    pub neighbours_repaired: usize,
    /// The map started from the last run's coordinates (a few pictures changed).
    #[serde(default)]
    pub map_warm: bool,
}

/// The part of the stage that depends on pixels alone, in canonical row order (images sorted
/// by pixel hash, then by their place in the table): the reduced vectors, every row's
/// neighbours and the map. It is reused as long as the pictures (with their multiplicity) and
/// the settings it reads are the same, so a relabel or a moved file redoes none of it.
/// Images with the same pixels have the same vector, so which of them takes which of their
/// rows changes nothing in canonical space.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PixelPart {
    /// [`pixel_key`] of the inputs it was made from.
    pub key: u64,
    pub features: String,
    pub feature_dims: usize,
    pub explained: f64,
    pub rows: usize,
    pub components: usize,
    /// [`settings_key`] of the inputs: a part made with the same settings can be repaired
    /// into the next one when only some pictures changed.
    pub settings: u64,
    /// Per canonical row, the pixel hash: which rows of the next run are the same pictures.
    pub pixels: Vec<u128>,
    /// `rows x components`, row-major.
    pub vectors: Vec<f32>,
    /// Every row's `embed.neighbours` nearest, exactly.
    pub neighbours: Neighbours,
    /// Canonical rows on the map, ascending, and their coordinates.
    pub map_rows: Vec<u32>,
    pub map_points: Vec<[f32; 2]>,
    /// The map's raw t-SNE coordinates, where a map of nearly the same points starts.
    pub map_raw: Vec<[f32; 2]>,
    /// The map was started from the last run's coordinates, not from scratch.
    pub map_warm: bool,
    pub map_failed: bool,
    /// A classifier model's class probabilities, `rows x score_classes` (softmax of its
    /// output unless it gave probabilities); empty when the model is not used as one.
    #[serde(default)]
    pub scores: Vec<f32>,
    #[serde(default)]
    pub score_classes: usize,
}

/// What the last computation from scratch left for reruns to repair from: its pictures,
/// vectors and deep neighbour tables (every row's, and the mapped rows' among each other).
/// Written only by a run that searched everything, so each repair starts from exact
/// tables and the bounds of [`crate::neighbours::deep`] do not loosen from run to run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// [`settings_key`] it was made with.
    pub settings: u64,
    /// Per row (canonical order of that run), the pixel hash.
    pub pixels: Vec<u128>,
    pub components: usize,
    /// `rows x components`, row-major.
    pub vectors: Vec<f32>,
    /// Every row's neighbours, `DEPTH_MARGIN` deeper than `embed.neighbours`.
    pub table: Deep,
    /// Its rows on its map, ascending, and their neighbours among each other.
    pub map_rows: Vec<u32>,
    pub map_table: Deep,
}

impl Reference {
    fn vectors(&self) -> ArrayView2<'_, f32> {
        let rows = self.pixels.len();
        ArrayView2::from_shape((rows, self.components), &self.vectors)
            .unwrap_or_else(|_| ArrayView2::from_shape((0, 0), &[]).expect("empty"))
    }
}

/// Loads the reference of earlier runs, if one can be read.
pub type LoadReference<'a> = dyn Fn() -> Option<Reference> + 'a;

/// Loads the stored vectors of the feature source with the given id, with notes.
pub type LoadStore<'a> = dyn Fn(&str) -> (Option<FeatureStore>, Vec<String>) + 'a;

/// What the pipeline hands the stage from earlier runs.
pub struct Previous<'a> {
    /// The pixel part of the last run, if one could be read.
    pub pixel: Option<PixelPart>,
    /// Loads the feature store of the feature source with this id (and notes about a
    /// damaged one); called only when the pixel part must be computed again.
    pub features: &'a LoadStore<'a>,
    /// Loads the reference to repair neighbour tables from; called only then, too.
    pub reference: &'a LoadReference<'a>,
}

/// What the stage hands back besides its artifact: what to keep for the next run, each only
/// when it changed (`None`: the stored one is still right).
pub struct Embedded {
    pub artifact: EmbedArtifact,
    pub store: Option<FeatureStore>,
    pub pixel: Option<PixelPart>,
    /// A new reference, when everything was searched in this run.
    pub reference: Option<Reference>,
}

/// Runs the stage on the images of `ingested`, reusing what `previous` still covers. The
/// features come from `model` when there is one, else from the built-in [`BuiltinFeatures`].
pub fn run(
    ingested: &Ingested,
    config: &EmbedConfig,
    previous: Previous,
    model: Option<&OnnxEmbedder>,
    progress: &Progress,
) -> Embedded {
    let ingest = &ingested.artifact;
    let rows = ingest.images.len();
    let mut artifact = EmbedArtifact {
        method: "none".into(),
        images: rows,
        ..Default::default()
    };
    // Labels as class indices; a label outside the class list (cannot happen for discovered
    // datasets) gets an index of its own rather than a panic.
    let mut classes: Vec<String> = ingest.classes.clone();
    let labels: Vec<u32> = ingest
        .images
        .iter()
        .map(|r| match classes.iter().position(|c| *c == r.label) {
            Some(i) => i as u32,
            None => {
                classes.push(r.label.clone());
                (classes.len() - 1) as u32
            }
        })
        .collect();
    let class_count = classes.len();
    if rows == 0 {
        return Embedded {
            artifact,
            store: None,
            pixel: None,
            reference: None,
        };
    }
    artifact.model = model.map(|m| ModelInfo::of(m, config.model_pixels.name()));
    let builtin = BuiltinFeatures;
    let embedder: &dyn Embedder = match model {
        Some(model) => model,
        None => &builtin,
    };
    let order = canonical_order(ingested);
    let key = pixel_key(ingested, &order, config, embedder);
    let canonical_labels: Vec<u32> = order.iter().map(|&i| labels[i]).collect();
    let reference_split = reference_split(ingest);
    let reference: Vec<bool> = order
        .iter()
        .map(|&i| reference_split.is_none() || ingest.images[i].split == reference_split)
        .collect();
    artifact.reference_split = reference_split.clone();
    let label_level = Labels {
        labels: &canonical_labels,
        reference: &reference,
        classes: class_count,
        config,
    };

    let settings = settings_key(ingested, config, embedder);
    let (part, found, store, fresh_part, reference) = match previous.pixel {
        Some(part) if part.key == key && part.rows == rows => {
            let started = Instant::now();
            let found = label_level.findings(
                part_vectors(&part),
                &part.neighbours,
                usable_scores(&part, class_count, rows),
            );
            artifact.counts.findings_seconds = started.elapsed().as_secs_f64();
            artifact.counts.pixel_part_reused = true;
            (part, found, None, false, None)
        }
        other => {
            let (features, notes) = (previous.features)(&embedder.id());
            artifact.notes.extend(notes);
            let reference = (previous.reference)().filter(|r| r.settings == settings);
            let (part, found, store, reference) = compute_pixel_part(
                ingested,
                &order,
                (key, settings),
                config,
                embedder,
                features,
                (other, reference),
                &label_level,
                &mut artifact.counts,
                progress,
            );
            (part, found, store, true, reference)
        }
    };
    let neighbours = &part.neighbours;
    if part.map_failed {
        artifact
            .notes
            .push("the t-SNE map could not be computed; it is left out".into());
    }
    if let Some(model) = model {
        let side = ingest.decoded_with.thumbnail_size;
        let needs = model.height.max(model.width);
        if needs > side as usize {
            artifact.notes.push(format!(
                "the model reads {}x{} pixels, but images are fed from {side}-px thumbnails \
                 (upscaled); set ingest.thumbnail_size = {needs} for full detail",
                model.width, model.height
            ));
        }
    }
    if let Some(info) = artifact.model.as_mut() {
        info.classifier = usable_scores(&part, class_count, rows).is_some();
        if config.model_is_classifier && !info.classifier {
            artifact.notes.push(format!(
                "embed.model_is_classifier is set, but the model gives {} values an image for \
                 {class_count} classes; its output was used as an embedding only, and the label \
                 issues' model witness is a linear model trained on it",
                part.feature_dims
            ));
        }
    }
    artifact.features = part.features.clone();
    artifact.feature_dims = part.feature_dims;
    artifact.components = part.components;
    artifact.explained_variance = part.explained;
    artifact.k = neighbours.k();

    // Back from canonical rows to image-table indices.
    let image = |row: u32| order[row as usize] as u32;
    let evidence_of = |row: usize| -> Vec<u32> {
        neighbours
            .of(row)
            .iter()
            .take(EVIDENCE)
            .map(|&n| image(n))
            .collect()
    };
    artifact.label_issue_total = found.issues.len();
    // The first `label_issues` of each split: a test split's errors must not be crowded
    // out by a larger training split's.
    for issue in &found.issues {
        let split = ingest.images[order[issue.image]].split.clone();
        *artifact
            .label_issue_split_totals
            .entry(split.unwrap_or_default())
            .or_default() += 1;
    }
    let mut kept_per_split: std::collections::HashMap<Option<&str>, usize> = Default::default();
    artifact.label_issues = found
        .issues
        .into_iter()
        .filter(|issue| {
            let kept = kept_per_split
                .entry(ingest.images[order[issue.image]].split.as_deref())
                .or_default();
            *kept += 1;
            *kept <= config.label_issues
        })
        .map(|mut issue| {
            let row = issue.image;
            issue.image = order[row];
            Finding {
                image: issue.image,
                score: issue.score,
                neighbours: evidence_of(row),
                detail: issue,
            }
        })
        .collect();
    artifact.outliers = found
        .outliers
        .into_iter()
        .map(|(row, score)| Finding {
            image: order[row],
            detail: score,
            score,
            neighbours: evidence_of(row),
        })
        .collect();
    artifact.confusion = found.confusion;
    artifact.vote_accuracy = found.vote_accuracy;

    let started = Instant::now();
    let mapped_labels: Vec<u32> = part
        .map_rows
        .iter()
        .map(|&r| canonical_labels[r as usize])
        .collect();
    let map_agreement =
        map::neighbour_agreement_2d(&part.map_points, &mapped_labels, MAP_AGREEMENT_K);
    artifact.separation = (0..class_count)
        .map(|c| ClassSeparation {
            images: labels.iter().filter(|&&l| l as usize == c).count(),
            feature_agreement: artifact.confusion[c][c],
            ..Default::default()
        })
        .collect();
    let mut agreement_sums = vec![0f32; class_count];
    for (&label, &agreement) in mapped_labels.iter().zip(&map_agreement) {
        agreement_sums[label as usize] += agreement;
        artifact.separation[label as usize].mapped += 1;
    }
    for (s, sum) in artifact.separation.iter_mut().zip(agreement_sums) {
        s.map_agreement = if s.mapped > 0 {
            sum / s.mapped as f32
        } else {
            0.0
        };
    }
    artifact.map = part
        .map_rows
        .iter()
        .zip(&part.map_points)
        .map(|(&row, p)| MapPoint {
            image: image(row),
            x: p[0],
            y: p[1],
        })
        .collect();
    artifact.map.sort_by_key(|p| p.image);
    if !artifact.map.is_empty() {
        artifact.method = "tsne".into();
    }
    artifact.points = artifact.map.len();
    artifact.map_warm = part.map_warm;
    artifact.labels = labels;
    artifact.counts.map_seconds += started.elapsed().as_secs_f64();
    Embedded {
        artifact,
        store,
        pixel: fresh_part.then_some(part),
        reference,
    }
}

/// Image-table indices in canonical order: by pixel hash, then by place in the table.
fn canonical_order(ingested: &Ingested) -> Vec<usize> {
    let images = &ingested.artifact.images;
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.sort_by_key(|&i| (images[i].pixel_hash, i));
    order
}

/// What the pixel part depends on: the pictures in canonical order (so their multiplicity)
/// and [`settings_key`]. Labels, paths and the other settings (how many findings to keep)
/// are not in it.
fn pixel_key(
    ingested: &Ingested,
    order: &[usize],
    config: &EmbedConfig,
    embedder: &dyn Embedder,
) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(&settings_key(ingested, config, embedder).to_le_bytes());
    for &i in order {
        hasher.update(&ingested.artifact.images[i].pixel_hash.to_le_bytes());
    }
    hasher.digest()
}

/// What the pixel part depends on besides the pictures: how their thumbnails were made, the
/// feature source and the settings it reads.
fn settings_key(ingested: &Ingested, config: &EmbedConfig, embedder: &dyn Embedder) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(&VERSION.to_le_bytes());
    hasher.update(embedder.id().as_bytes());
    hasher.update(&(embedder.dims() as u64).to_le_bytes());
    let decoded = &ingested.artifact.decoded_with;
    hasher.update(&u64::from(decoded.thumbnail_size).to_le_bytes());
    for setting in [
        config.seed,
        config.components as u64,
        config.neighbours as u64,
        config.map_points as u64,
        u64::from(config.model_is_classifier),
    ] {
        hasher.update(&setting.to_le_bytes());
    }
    hasher.digest()
}

/// A classifier's probabilities from the part, when they cover the dataset's classes.
fn usable_scores(part: &PixelPart, classes: usize, rows: usize) -> Option<&[f32]> {
    covering(&part.scores, part.score_classes, classes, rows)
}

/// `scores` (`score_classes` per row), when they cover `rows` rows of `classes` classes.
fn covering(scores: &[f32], score_classes: usize, classes: usize, rows: usize) -> Option<&[f32]> {
    (score_classes == classes && scores.len() == rows * classes).then_some(scores)
}

/// The part's vectors as a matrix, borrowed (a relabel must not copy them); a part whose
/// sizes do not match its data reads as vectors of no components.
fn part_vectors(part: &PixelPart) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((part.rows, part.components), &part.vectors)
        .unwrap_or_else(|_| ArrayView2::from_shape((part.rows, 0), &[]).expect("empty rows"))
}

/// Features, reduction, neighbours and the map, with the label-level findings computed
/// beside the map (which runs on a thread of its own, see [`map::tsne`]). With a
/// `reference` made with the same settings and few pictures changed since, the neighbour
/// tables are repaired from its tables, and the map starts from `old`'s coordinates (the
/// last run's part). A new reference comes back when everything was searched.
#[allow(clippy::too_many_arguments)]
fn compute_pixel_part(
    ingested: &Ingested,
    order: &[usize],
    (key, settings): (u64, u64),
    config: &EmbedConfig,
    embedder: &dyn Embedder,
    previous_store: Option<FeatureStore>,
    (old, reference): (Option<PixelPart>, Option<Reference>),
    label_level: &Labels,
    counts: &mut EmbedCounts,
    progress: &Progress,
) -> (PixelPart, Found, Option<FeatureStore>, Option<Reference>) {
    let ingest = &ingested.artifact;
    let rows = order.len();

    // 1. features
    let started = Instant::now();
    let key_of = |row: usize| ingest.images[order[row]].pixel_hash;
    let image_of = |row: usize| {
        let i = order[row];
        let r = &ingest.images[i];
        (
            ingested.thumb_bytes(i),
            u32::from(r.thumb_width),
            u32::from(r.thumb_height),
        )
    };
    let (bytes, store, feature_counts) = features::compute(
        embedder,
        rows,
        &key_of,
        &image_of,
        previous_store.as_ref(),
        progress,
    );
    drop(previous_store);
    // Only a store that gained vectors needs writing again.
    let store = (feature_counts.computed > 0).then_some(store);
    counts.features_computed = feature_counts.computed;
    counts.features_reused = feature_counts.reused;
    counts.features_seconds = started.elapsed().as_secs_f64();

    // 2. reduce
    let started = Instant::now();
    // A model's vectors, decoded once for the PCA and (for a classifier) its scores.
    let floats = (embedder.encoding() == Encoding::Float).then(|| floats(&bytes));
    let (scores, score_classes) = match &floats {
        Some(values) if config.model_is_classifier => class_probabilities(values, embedder.dims()),
        _ => (Vec::new(), 0),
    };
    let fit_rows = fit_sample(ingested, order, config);
    let dims = embedder.dims();
    let blocks = embedder.blocks();
    let (vectors, explained) = match &floats {
        None => {
            let t = pca::fit(
                &bytes,
                dims,
                &blocks,
                pca::Scaling::PerValue,
                config.components,
                &fit_rows,
                config.seed,
            );
            (pca::project(&bytes, dims, &t), t.explained)
        }
        Some(floats) => {
            let t = pca::fit(
                floats,
                dims,
                &blocks,
                pca::Scaling::Centred,
                config.components,
                &fit_rows,
                config.seed,
            );
            (pca::project(floats, dims, &t), t.explained)
        }
    };
    drop(floats);
    drop(bytes);
    counts.pca_seconds = started.elapsed().as_secs_f64();

    // Which rows are the reference's pictures, when few changed since.
    let pixels: Vec<u128> = order.iter().map(|&i| ingest.images[i].pixel_hash).collect();
    let components = vectors.ncols();
    let reference = reference.and_then(|reference| {
        let ref_rows = reference.pixels.len();
        let ref_of = old_rows(&pixels, &reference.pixels);
        let kept = ref_of.iter().flatten().count();
        let changed = (rows - kept).max(ref_rows.saturating_sub(kept));
        let usable = reference.vectors.len() == ref_rows * reference.components
            && reference.components == components
            && (changed as f64) <= REPAIR_AT_MOST * rows as f64;
        usable.then_some((reference, ref_of))
    });

    // 5. the map's input: its rows' neighbours among each other, repaired or searched.
    let started = Instant::now();
    let map_rows = map_sample(ingested, order, config);
    let chosen: Vec<usize> = map_rows.iter().map(|&r| r as usize).collect();
    let sample = crate::neighbours::gather(vectors.view(), &chosen);
    let map_k = map::neighbours_needed(chosen.len());
    // The mapped rows' places among a map's rows, through a row mapping to its run.
    let places = |row_of: &[Option<u32>], on_map: &[u32]| -> Vec<Option<u32>> {
        chosen
            .iter()
            .map(|&r| row_of[r].and_then(|o| on_map.binary_search(&o).ok().map(|p| p as u32)))
            .collect()
    };
    let repaired_map = reference.as_ref().and_then(|(reference, ref_of)| {
        let ref_vectors = reference.vectors();
        let rows_on_map: Vec<usize> = reference.map_rows.iter().map(|&r| r as usize).collect();
        if rows_on_map.iter().any(|&r| r >= ref_vectors.nrows()) {
            return None;
        }
        let ref_sample = crate::neighbours::gather(ref_vectors, &rows_on_map);
        deep::repair(
            sample.view(),
            &reference.map_table,
            ref_sample.view(),
            &places(ref_of, &reference.map_rows),
            map_k,
            // The warm map's coordinates are not compared with a cold map's (its 10-NN
            // label agreement is): near-exact input neighbours are enough for 30 steps.
            deep::Want::Close,
        )
        .map(|(table, _)| table)
    });
    let map_table = repaired_map
        .clone()
        .unwrap_or_else(|| deep::deep(sample.view(), map_k + MAP_DEPTH_MARGIN));
    let map_neighbours = map_table.top(map_k);
    // A map of nearly the same points starts where the last one ended.
    let map_start = match (&repaired_map, &old) {
        (Some(_), Some(old))
            if !old.map_failed
                && old.map_raw.len() == old.map_rows.len()
                && old.pixels.len() == old.rows =>
        {
            let old_of = old_rows(&pixels, &old.pixels);
            let on_old_map = places(&old_of, &old.map_rows);
            map::Start::From(warm_start(&map_neighbours, &on_old_map, &old.map_raw))
        }
        _ => map::Start::Scratch,
    };
    let warm = matches!(map_start, map::Start::From(_));
    let map_prepared = started.elapsed().as_secs_f64();
    let (map_result, map_seconds, table, found) = std::thread::scope(|scope| {
        let map_thread = scope.spawn(move || {
            let started = Instant::now();
            // bhtsne asserts on inputs it does not expect; a failed map must not cost the report.
            let map = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                map::tsne(sample.view(), &map_neighbours, map_start)
            }));
            (map, started.elapsed().as_secs_f64())
        });
        // 3. neighbours
        let started = Instant::now();
        let repaired = reference.as_ref().and_then(|(reference, ref_of)| {
            deep::repair(
                vectors.view(),
                &reference.table,
                reference.vectors(),
                ref_of,
                config.neighbours.min(rows.saturating_sub(1)),
                deep::Want::Exact,
            )
        });
        let table = match repaired {
            Some((table, work)) => {
                counts.neighbours_searched = work.searched;
                counts.neighbours_repaired = rows - work.searched;
                Err(table)
            }
            None => {
                counts.neighbours_searched = rows;
                Ok(deep::deep(vectors.view(), config.neighbours + DEPTH_MARGIN))
            }
        };
        counts.neighbours_seconds = started.elapsed().as_secs_f64();

        // 4. findings
        let started = Instant::now();
        let neighbours = match &table {
            Ok(table) | Err(table) => table.top(config.neighbours),
        };
        let usable = covering(&scores, score_classes, label_level.classes, rows);
        let found = label_level.findings(vectors.view(), &neighbours, usable);
        counts.findings_seconds = started.elapsed().as_secs_f64();

        // The thread catches its own panics; a failed join is treated the same way.
        let (map, seconds) = map_thread.join().unwrap_or_else(|panic| (Err(panic), 0.0));
        (
            map,
            seconds,
            table
                .map(|t| (t, neighbours.clone()))
                .map_err(|_| neighbours),
            found,
        )
    });
    counts.map_seconds = map_prepared + map_seconds;
    let (map, map_failed) = match map_result {
        Ok(map) => (map, false),
        Err(_) => (map::Map::default(), true),
    };
    counts.map_iterations = map.iterations;
    counts.map_warm = warm && !map_failed;
    // A table searched in full is the next reference (with the map's, searched or not).
    let (neighbours, fresh) = match table {
        Ok((table, neighbours)) => (neighbours, Some(table)),
        Err(neighbours) => (neighbours, None),
    };
    let vectors: Vec<f32> = if vectors.is_standard_layout() {
        // pca builds the matrix from a row-major Vec, so its buffer is the rows in order.
        vectors.into_raw_vec_and_offset().0
    } else {
        vectors.iter().copied().collect()
    };
    let new_reference = fresh.map(|table| Reference {
        settings,
        pixels: pixels.clone(),
        components,
        vectors: vectors.clone(),
        table,
        map_rows: if map_failed {
            Vec::new()
        } else {
            map_rows.clone()
        },
        map_table: if map_failed {
            Deep::default()
        } else {
            map_table
        },
    });
    let part = PixelPart {
        key,
        settings,
        features: embedder.id(),
        feature_dims: embedder.dims(),
        explained,
        rows,
        components,
        pixels,
        vectors,
        neighbours,
        map_rows: if map_failed { Vec::new() } else { map_rows },
        map_points: map.points,
        map_raw: map.raw,
        map_warm: counts.map_warm,
        map_failed,
        scores,
        score_classes,
    };
    (part, found, store, new_reference)
}

/// Where each mapped row starts: its place on the last map, or, for a picture new to the
/// map, the mean place of its neighbours that were on it (the centre when none were).
fn warm_start(
    neighbours: &Neighbours,
    old_of: &[Option<u32>],
    old_raw: &[[f32; 2]],
) -> Vec<[f32; 2]> {
    (0..old_of.len())
        .map(|r| match old_of[r] {
            Some(o) => old_raw[o as usize],
            None => {
                let placed: Vec<[f32; 2]> = neighbours
                    .of(r)
                    .iter()
                    .filter_map(|&n| old_of[n as usize])
                    .take(MAP_AGREEMENT_K)
                    .map(|o| old_raw[o as usize])
                    .collect();
                let count = placed.len().max(1) as f32;
                let (x, y) = placed
                    .iter()
                    .fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
                [x / count, y / count]
            }
        })
        .collect()
}

/// The split whose images anchor the label-issue ranking: "train" (any case) when there is
/// one, else the largest split (the first by name on a tie); none when the dataset has no
/// splits (every image is then a reference for the others).
fn reference_split(ingest: &crate::stages::ingest::IngestArtifact) -> Option<String> {
    if let Some(train) = ingest
        .splits
        .iter()
        .find(|s| s.eq_ignore_ascii_case("train"))
    {
        return Some(train.clone());
    }
    let mut sizes: std::collections::BTreeMap<&str, usize> = Default::default();
    for image in &ingest.images {
        if let Some(split) = image.split.as_deref() {
            *sizes.entry(split).or_default() += 1;
        }
    }
    sizes
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(split, _)| split.to_string())
}

/// Stored little-endian `f32` vectors as values; a value that is not finite reads as 0.
fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .map(|v| if v.is_finite() { v } else { 0.0 })
        .collect()
}

/// A classifier's output rows (`classes` values each) as probabilities: as they are when
/// every row already is a distribution (non-negative, summing to 1), else their softmax.
fn class_probabilities(values: &[f32], classes: usize) -> (Vec<f32>, usize) {
    if classes < 2 {
        return (Vec::new(), 0);
    }
    let mut values = values.to_vec();
    let distributions = values
        .chunks_exact(classes)
        .all(|row| row.iter().all(|&p| p >= 0.0) && (row.iter().sum::<f32>() - 1.0).abs() < 1e-3);
    if !distributions {
        for row in values.chunks_exact_mut(classes) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            row.iter_mut().for_each(|v| *v = (*v - max).exp());
            let sum: f32 = row.iter().sum();
            row.iter_mut()
                .for_each(|v| *v /= sum.max(f32::MIN_POSITIVE));
        }
    }
    (values, classes)
}

/// The label-level half: everything that reads labels, computed from the pixel part.
struct Labels<'a> {
    /// Per canonical row.
    labels: &'a [u32],
    /// Per canonical row: whether it is a reference image for label issues.
    reference: &'a [bool],
    classes: usize,
    config: &'a EmbedConfig,
}

/// Label-level findings in canonical rows.
struct Found {
    issues: Vec<findings::LabelIssue>,
    outliers: Vec<(usize, f32)>,
    confusion: Vec<Vec<f32>>,
    vote_accuracy: f32,
}

impl Labels<'_> {
    /// `scores`: a classifier model's probabilities (canonical rows, one per class), which
    /// replace the out-of-fold linear model when given.
    fn findings(
        &self,
        vectors: ArrayView2<f32>,
        neighbours: &Neighbours,
        scores: Option<&[f32]>,
    ) -> Found {
        let (labels, classes) = (self.labels, self.classes);
        let rows = labels.len();
        let model = match scores {
            Some(scores) => scores.to_vec(),
            None => findings::out_of_fold_model(vectors, labels, classes, self.config.seed),
        };
        let evidence = findings::Evidence {
            classes,
            neighbours: findings::neighbour_vote(neighbours, labels, classes),
            model,
        };
        let issues = findings::label_issues(
            vectors,
            neighbours,
            labels,
            classes,
            self.reference,
            &evidence,
        );
        let outlier_scores = findings::outlier_scores(neighbours, rows);
        let mut by_score: Vec<usize> = (0..rows).collect();
        by_score.sort_by(|&a, &b| {
            outlier_scores[b]
                .total_cmp(&outlier_scores[a])
                .then(a.cmp(&b))
        });
        let outliers = by_score
            .into_iter()
            .take(self.config.outliers)
            .map(|i| (i, outlier_scores[i]))
            .collect();
        let right = (0..rows)
            .filter(|&i| {
                let votes = &evidence.neighbours[i * classes..(i + 1) * classes];
                let best = (0..classes)
                    .max_by(|&a, &b| votes[a].total_cmp(&votes[b]).then(b.cmp(&a)))
                    .unwrap_or(0);
                best == labels[i] as usize
            })
            .count();
        Found {
            issues,
            outliers,
            confusion: findings::confusion(neighbours, labels, classes),
            vote_accuracy: right as f32 / rows as f32,
        }
    }
}

/// At most `map_points` canonical rows, ascending, chosen by [`pixel_sample`]. Pixels only,
/// so a relabel never changes the map; one changed file moves at most itself in or out of
/// it. Classes are kept in proportion by chance, not by quota: a quota would tie the map to
/// the labels.
fn map_sample(ingested: &Ingested, order: &[usize], config: &EmbedConfig) -> Vec<u32> {
    pixel_sample(ingested, order, config.seed, config.map_points)
}

/// The rows that fit the PCA: at most [`pca::fit_rows`], chosen by [`pixel_sample`] with a
/// seed of their own, so that a few changed pictures change the fit by a few rows.
fn fit_sample(ingested: &Ingested, order: &[usize], config: &EmbedConfig) -> Vec<usize> {
    pixel_sample(ingested, order, config.seed ^ 0x9ca_f17, pca::fit_rows())
        .into_iter()
        .map(|r| r as usize)
        .collect()
}

/// At most `count` canonical rows, ascending: those with the lowest seeded hash of their
/// pixels (and, for identical pictures, which copy they are).
fn pixel_sample(ingested: &Ingested, order: &[usize], seed: u64, count: usize) -> Vec<u32> {
    let images = &ingested.artifact.images;
    let total = order.len();
    if total <= count {
        return (0..total as u32).collect();
    }
    let mut ranked: Vec<(u64, u32)> = Vec::with_capacity(total);
    let mut copy = 0u64;
    for (row, &i) in order.iter().enumerate() {
        let pixels = images[i].pixel_hash;
        copy = if row > 0 && images[order[row - 1]].pixel_hash == pixels {
            copy + 1
        } else {
            0
        };
        let mut hasher = Xxh3::new();
        hasher.update(&seed.to_le_bytes());
        hasher.update(&pixels.to_le_bytes());
        hasher.update(&copy.to_le_bytes());
        ranked.push((hasher.digest(), row as u32));
    }
    ranked.sort_unstable();
    let mut chosen: Vec<u32> = ranked.into_iter().take(count).map(|(_, row)| row).collect();
    chosen.sort_unstable();
    chosen
}

/// For each row of `pixels` (canonical order: sorted, copies of a picture side by side), the
/// row of the same picture (the same copy of it) in `old`, the last run's canonical pixels.
fn old_rows(pixels: &[u128], old: &[u128]) -> Vec<Option<u32>> {
    let mut out = Vec::with_capacity(pixels.len());
    let mut at = 0usize;
    for (row, &p) in pixels.iter().enumerate() {
        let copy = if row > 0 && pixels[row - 1] == p {
            match out.last() {
                Some(&Some(prev)) => Some(prev + 1),
                _ => None,
            }
        } else {
            while at < old.len() && old[at] < p {
                at += 1;
            }
            (at < old.len()).then_some(at as u32)
        };
        out.push(copy.filter(|&o| old.get(o as usize) == Some(&p)));
    }
    out
}
