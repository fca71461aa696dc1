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
//! 5. map ([`map`]): t-SNE of a seeded sample stratified by split and class, at most
//!    `embed.map_points` images. It runs on one thread (for a repeatable map) beside steps 3
//!    and 4, so their timings overlap.
//!
//! Everything is seeded by `embed.seed`: the same data and settings give the same artifact.
//! The stage never touches the cache: the pipeline hands it the previous feature store and
//! stores the one it returns. A damaged store is not an error; every vector is computed
//! again and the artifact says so. Invariant: every index in the artifact is an index into the ingest image table.

pub mod features;
pub mod findings;
pub mod map;
pub mod pca;

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::Axis;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::config::EmbedConfig;
use crate::neighbours::{self, Method, Search};
use crate::stage::Stage;
use crate::stages::ingest::Ingested;

use features::{BuiltinFeatures, Embedder, FeatureStore};

pub const STAGE: Stage = Stage::Embed;
pub const VERSION: u32 = 4;

/// Neighbours shown as evidence beside each label issue and outlier.
pub const EVIDENCE: usize = 8;
/// Every image's neighbours among all the others, exactly (findings and the map's input).
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
    /// The images farthest from their neighbours, highest score first.
    pub outliers: Vec<Finding<f32>>,
    /// `confusion[a][b]`, see [`findings::confusion`].
    pub confusion: Vec<Vec<f32>>,
    /// Per class: neighbour agreement in feature space, on the map, and images mapped.
    pub separation: Vec<ClassSeparation>,
    /// Share of images whose neighbours' weighted vote gives their own label (leave one out).
    pub vote_accuracy: f32,
    pub map: Vec<MapPoint>,
    /// Problems that did not stop the stage (a damaged feature store, say).
    pub notes: Vec<String>,
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
}

/// What the stage hands back besides its artifact: the feature store to keep for the next
/// run, when it gained vectors (`None`: the previous store, if any, is still complete).
pub struct Embedded {
    pub artifact: EmbedArtifact,
    pub store: Option<FeatureStore>,
}

/// Runs the stage. `previous` is the feature store of earlier runs (the pipeline loads it);
/// `notes` are problems met before the stage ran (a damaged store), kept in the artifact.
pub fn run(
    ingested: &Ingested,
    config: &EmbedConfig,
    previous: Option<FeatureStore>,
    notes: Vec<String>,
) -> Embedded {
    let ingest = &ingested.artifact;
    let rows = ingest.images.len();
    let mut artifact = EmbedArtifact {
        method: "none".into(),
        images: rows,
        notes,
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
        };
    }

    // 1. features
    let started = Instant::now();
    let embedder = BuiltinFeatures;
    let key_of = |i: usize| ingest.images[i].pixel_hash;
    let image_of = |i: usize| {
        let r = &ingest.images[i];
        (
            ingested.thumb_bytes(i),
            u32::from(r.thumb_width),
            u32::from(r.thumb_height),
        )
    };
    let (bytes, store, counts) =
        features::compute(&embedder, rows, &key_of, &image_of, previous.as_ref());
    drop(previous);
    // Only a store that gained vectors needs writing again.
    let store = (counts.computed > 0).then_some(store);
    artifact.features = embedder.id();
    artifact.feature_dims = embedder.dims();
    artifact.counts.features_computed = counts.computed;
    artifact.counts.features_reused = counts.reused;
    artifact.counts.features_seconds = started.elapsed().as_secs_f64();

    // 2. reduce
    let started = Instant::now();
    let reduced = pca::reduce(
        &bytes,
        embedder.dims(),
        &embedder.blocks(),
        config.components,
        config.seed,
    );
    drop(bytes);
    let vectors = reduced.vectors;
    artifact.components = vectors.ncols();
    artifact.explained_variance = reduced.explained;
    artifact.counts.pca_seconds = started.elapsed().as_secs_f64();

    // 5. the map, on a thread of its own beside steps 3 and 4 (see map::tsne).
    let chosen = map_sample(ingested, config);
    let sample = vectors.select(Axis(0), &chosen);
    let (map_result, map_seconds) = std::thread::scope(|scope| {
        let map_thread = scope.spawn(move || {
            let started = Instant::now();
            // bhtsne asserts on inputs it does not expect; a failed map must not cost the report.
            let points =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map::tsne(sample.view())));
            (points, started.elapsed().as_secs_f64())
        });
        // 3. neighbours
        let started = Instant::now();
        let neighbours = neighbours::search(
            vectors.view(),
            vectors.view(),
            config.neighbours,
            &ALL_PAIRS,
        );
        artifact.k = neighbours.k();
        artifact.counts.neighbours_seconds = started.elapsed().as_secs_f64();

        // 4. findings
        let started = Instant::now();
        let evidence = findings::Evidence {
            classes: class_count,
            neighbours: findings::neighbour_vote(&neighbours, &labels, class_count),
            model: findings::out_of_fold_model(vectors.view(), &labels, class_count, config.seed),
        };
        let evidence_of = |i: usize| -> Vec<u32> {
            if neighbours.k() == 0 {
                Vec::new()
            } else {
                neighbours.of(i).iter().take(EVIDENCE).copied().collect()
            }
        };
        let issues = findings::label_issues(&evidence, &labels);
        artifact.label_issue_total = issues.len();
        artifact.label_issues = issues
            .into_iter()
            .take(config.label_issues)
            .map(|issue| Finding {
                image: issue.image,
                score: issue.score,
                neighbours: evidence_of(issue.image),
                detail: issue,
            })
            .collect();
        let outlier_scores = findings::outlier_scores(&neighbours, rows);
        let mut by_score: Vec<usize> = (0..rows).collect();
        by_score.sort_by(|&a, &b| {
            outlier_scores[b]
                .total_cmp(&outlier_scores[a])
                .then(a.cmp(&b))
        });
        artifact.outliers = by_score
            .into_iter()
            .take(config.outliers)
            .map(|i| Finding {
                image: i,
                detail: outlier_scores[i],
                score: outlier_scores[i],
                neighbours: evidence_of(i),
            })
            .collect();
        artifact.confusion = findings::confusion(&neighbours, &labels, class_count);
        let right = (0..rows)
            .filter(|&i| {
                let votes = &evidence.neighbours[i * class_count..(i + 1) * class_count];
                let best = (0..class_count)
                    .max_by(|&a, &b| votes[a].total_cmp(&votes[b]).then(b.cmp(&a)))
                    .unwrap_or(0);
                best == labels[i] as usize
            })
            .count();
        artifact.vote_accuracy = right as f32 / rows as f32;
        drop(neighbours);
        artifact.counts.findings_seconds = started.elapsed().as_secs_f64();

        // The thread catches its own panics; a failed join is treated the same way.
        map_thread.join().unwrap_or_else(|panic| (Err(panic), 0.0))
    });
    drop(vectors);
    let started = Instant::now();
    let points = match map_result {
        Ok(points) => points,
        Err(_) => {
            artifact
                .notes
                .push("the t-SNE map could not be computed; it is left out".into());
            Vec::new()
        }
    };
    let mapped_labels: Vec<u32> = chosen.iter().map(|&i| labels[i]).collect();
    let map_agreement = map::neighbour_agreement_2d(&points, &mapped_labels, MAP_AGREEMENT_K);
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
    artifact.map = chosen
        .iter()
        .zip(&points)
        .map(|(&i, p)| MapPoint {
            image: i as u32,
            x: p[0],
            y: p[1],
        })
        .collect();
    if !artifact.map.is_empty() {
        artifact.method = "tsne".into();
    }
    artifact.points = artifact.map.len();
    artifact.labels = labels;
    artifact.counts.map_seconds = map_seconds + started.elapsed().as_secs_f64();
    Embedded { artifact, store }
}

/// At most `map_points` images, stratified by (split, class): each group contributes in
/// proportion to its size (at least one image), its members ranked by a seeded hash of
/// their content and path, so one changed file moves at most itself in or out of the map.
fn map_sample(ingested: &Ingested, config: &EmbedConfig) -> Vec<usize> {
    let images = &ingested.artifact.images;
    let total = images.len();
    if total <= config.map_points {
        return (0..total).collect();
    }
    let mut groups: BTreeMap<(&str, &str), Vec<(u64, usize)>> = BTreeMap::new();
    for (i, r) in images.iter().enumerate() {
        let mut hasher = Xxh3::new();
        hasher.update(&config.seed.to_le_bytes());
        hasher.update(&r.content_hash.to_le_bytes());
        hasher.update(r.path.as_bytes());
        groups
            .entry((r.split.as_deref().unwrap_or(""), r.label.as_str()))
            .or_default()
            .push((hasher.digest(), i));
    }
    let mut chosen = Vec::with_capacity(config.map_points);
    for members in groups.values_mut() {
        members.sort_unstable();
        let quota = (members.len() * config.map_points / total).max(1);
        chosen.extend(members.iter().take(quota).map(|&(_, i)| i));
    }
    chosen.sort_unstable();
    chosen
}
