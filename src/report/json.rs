//! report.json: every finding, for scripts and CI. A stable contract (PRODUCT.md): fields
//! are only ever added; `schema_version` changes if one is removed or changes meaning.
//! Paths are relative to the dataset root with `/` separators.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::gate::{Findings, GateOutcome, Imbalance};
use crate::stages::dedup::DuplicatePair;
use crate::stages::ingest::RejectKind;
use crate::stages::statistics::ChannelStats;

use super::view::RenderInput;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct ReportJson {
    pub schema_version: u32,
    pub tool_version: String,
    /// A stable id of the dataset version (every image's path and content hash): the
    /// browser keys the decisions it stores by it.
    pub report_id: String,
    pub dataset: DatasetJson,
    pub unreadable: Vec<PathReason>,
    pub skipped: Vec<PathReason>,
    pub statistics: StatisticsJson,
    pub duplicates: DuplicatesJson,
    pub label_issues: Vec<LabelIssueJson>,
    pub outliers: Vec<OutlierJson>,
    pub embedding: EmbeddingJson,
    /// The `--fail-on` checks and what they found (`checks` is empty without a gate).
    pub gate: GateOutcome,
    /// What the review file (aldente-review.json) settled: counts of reviewed findings.
    pub review: super::review::ReviewJson,
}

#[derive(Debug, Serialize)]
pub struct DatasetJson {
    /// The dataset folder's name (never an absolute path: reports are shared).
    pub root: String,
    pub layout: String,
    pub images: usize,
    pub classes: Vec<String>,
    pub splits: BTreeMap<String, usize>,
    /// class -> count over all splits.
    pub class_counts: BTreeMap<String, usize>,
    /// class -> split -> count.
    pub class_split_counts: BTreeMap<String, BTreeMap<String, usize>>,
    pub formats: BTreeMap<String, usize>,
    pub color_types: BTreeMap<String, usize>,
    pub sizes: BTreeMap<String, usize>,
    pub total_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct PathReason {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct StatisticsJson {
    /// Per-channel (R, G, B) mean on a 0..1 scale, over all analysed pixels.
    pub mean: [f64; 3],
    pub std: [f64; 3],
    pub pixels: u64,
    pub per_split: BTreeMap<String, ChannelStats>,
}

#[derive(Debug, Serialize)]
pub struct DuplicatesJson {
    pub exact_groups: Vec<Vec<String>>,
    pub near_pairs: Vec<PairJson>,
    pub cross_split: Vec<PairJson>,
    pub conflicting_labels: Vec<Vec<LabelledPath>>,
    /// The second tier: pairs close enough to review but not confidently copies, closest
    /// first, each with `tier` "possible" and `why` (what kept it out of the first tier:
    /// "colour", "detail" or "grey"). They are in no other list: `near_pairs`,
    /// `cross_split` and `groups` hold copies only (`tier` "copy").
    pub possible_pairs: Vec<PairJson>,
    /// Connected components of exact groups and near pairs, each with the pairs that join it.
    pub groups: Vec<GroupJson>,
}

#[derive(Debug, Serialize)]
pub struct GroupJson {
    pub members: Vec<LabelledPath>,
    pub pairs: Vec<PairJson>,
}

#[derive(Debug, Serialize)]
pub struct PairJson {
    pub a: String,
    pub b: String,
    pub distance: f64,
    pub kind: &'static str,
    /// "copy" (confident) or "possible" (to review); see `possible_pairs`.
    pub tier: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<&'static str>,
    /// The content hashes of `a` and `b` (as in images.parquet), for decisions.json.
    pub a_content_hash: String,
    pub b_content_hash: String,
    /// Judged "not a duplicate" in the review file: listed, but not an open finding.
    pub reviewed: bool,
}

#[derive(Debug, Serialize)]
pub struct LabelledPath {
    pub path: String,
    pub label: String,
}

/// A likely label error (a candidate for review), highest score first.
#[derive(Debug, Serialize)]
pub struct LabelIssueJson {
    pub path: String,
    /// The file's content hash (as in images.parquet), for decisions.json.
    pub content_hash: String,
    /// Judged "label is correct" (with this label) in the review file: not an open finding.
    pub reviewed: bool,
    pub given: String,
    pub suggested: String,
    /// The split the image is in (absent without splits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// Cosine similarity to the nearest reference image of `suggested` minus that to the
    /// nearest of `given` (reference: the training split when there is one), times
    /// (1 - vote_given) and (1 - model_given).
    pub score: f64,
    pub nearest_given: f64,
    pub nearest_suggested: f64,
    /// The neighbours' weighted vote for `given` and for `suggested`.
    pub vote_given: f64,
    pub vote_suggested: f64,
    /// The out-of-fold linear model's probability of `given` and of `suggested`.
    pub model_given: f64,
    pub model_suggested: f64,
    /// Nearest images, most similar first.
    pub neighbours: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct OutlierJson {
    pub path: String,
    /// 1 - mean cosine similarity to its nearest neighbours.
    pub score: f64,
    pub neighbours: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct EmbeddingJson {
    /// "tsne", or "none" when nothing was embedded.
    pub method: String,
    /// Images on the map.
    pub points: usize,
    pub images: usize,
    pub features: String,
    pub feature_dims: usize,
    pub components: usize,
    pub neighbours: usize,
    /// Share of images whose neighbours' weighted vote gives their own label.
    pub vote_accuracy: f64,
    /// Images whose evidence prefers another label (`label_issues` holds the first ones).
    pub label_issue_total: usize,
    /// class -> class -> share of the first class's neighbour slots held by the second.
    pub confusion: BTreeMap<String, BTreeMap<String, f64>>,
    /// class -> neighbour agreement in feature space and on the map.
    pub separation: BTreeMap<String, SeparationJson>,
    /// Map coordinates in -1..1, one per mapped image.
    pub map: Vec<MapPointJson>,
}

#[derive(Debug, Serialize)]
pub struct SeparationJson {
    pub images: usize,
    pub feature_agreement: f64,
    pub mapped: usize,
    pub map_agreement: f64,
}

#[derive(Debug, Serialize)]
pub struct MapPointJson {
    pub path: String,
    pub x: f64,
    pub y: f64,
}

/// Rounds for a readable report.json (four decimals is far below the scores' precision).
fn round4(v: f32) -> f64 {
    (f64::from(v) * 1e4).round() / 1e4
}

/// Class names in the order of embed's class indices: the dataset's classes, then any label
/// met only on an image. images.parquet names suggested labels with the same list.
pub(crate) fn class_names(ingest: &crate::stages::ingest::IngestArtifact) -> Vec<String> {
    let mut classes = ingest.classes.clone();
    for record in &ingest.images {
        if !classes.contains(&record.label) {
            classes.push(record.label.clone());
        }
    }
    classes
}

/// `label_issues`, `outliers` and `embedding`, from the embed artifact.
fn embedding_json(input: &RenderInput) -> (Vec<LabelIssueJson>, Vec<OutlierJson>, EmbeddingJson) {
    let ingest = &input.ingested.artifact;
    let embed = input.embed;
    let path = |i: usize| {
        ingest
            .images
            .get(i)
            .map(|r| r.path.clone())
            .unwrap_or_default()
    };
    let classes = class_names(ingest);
    let name = |c: usize| classes.get(c).cloned().unwrap_or_default();
    let paths = |list: &[u32]| list.iter().map(|&j| path(j as usize)).collect();
    let issues = embed
        .label_issues
        .iter()
        .map(|f| LabelIssueJson {
            path: path(f.image),
            content_hash: super::review::content_hash(input, f.image),
            reviewed: super::review::label_issue_reviewed(input, f.image),
            given: name(f.detail.given as usize),
            suggested: name(f.detail.suggested as usize),
            split: ingest.images.get(f.image).and_then(|r| r.split.clone()),
            score: round4(f.score),
            nearest_given: round4(f.detail.nearest_given),
            nearest_suggested: round4(f.detail.nearest_suggested),
            vote_given: round4(f.detail.vote_given),
            vote_suggested: round4(f.detail.vote_suggested),
            model_given: round4(f.detail.model_given),
            model_suggested: round4(f.detail.model_suggested),
            neighbours: paths(&f.neighbours),
        })
        .collect();
    let outliers = embed
        .outliers
        .iter()
        .map(|f| OutlierJson {
            path: path(f.image),
            score: round4(f.score),
            neighbours: paths(&f.neighbours),
        })
        .collect();
    let embedding = EmbeddingJson {
        method: embed.method.clone(),
        points: embed.points,
        images: embed.images,
        features: embed.features.clone(),
        feature_dims: embed.feature_dims,
        components: embed.components,
        neighbours: embed.k,
        vote_accuracy: round4(embed.vote_accuracy),
        label_issue_total: embed.label_issue_total,
        confusion: embed
            .confusion
            .iter()
            .enumerate()
            .map(|(a, row)| {
                (
                    name(a),
                    row.iter()
                        .enumerate()
                        .map(|(b, &v)| (name(b), round4(v)))
                        .collect(),
                )
            })
            .collect(),
        separation: embed
            .separation
            .iter()
            .enumerate()
            .map(|(c, s)| {
                (
                    name(c),
                    SeparationJson {
                        images: s.images,
                        feature_agreement: round4(s.feature_agreement),
                        mapped: s.mapped,
                        map_agreement: round4(s.map_agreement),
                    },
                )
            })
            .collect(),
        map: embed
            .map
            .iter()
            .map(|p| MapPointJson {
                path: path(p.image as usize),
                x: round4(p.x),
                y: round4(p.y),
            })
            .collect(),
    };
    (issues, outliers, embedding)
}

pub fn build(input: &RenderInput) -> ReportJson {
    let ingest = &input.ingested.artifact;
    let stats = input.statistics;
    let path = |i: usize| ingest.images[i].path.clone();
    let reasons = |kind: RejectKind| {
        ingest
            .rejected
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| PathReason {
                path: r.path.clone(),
                reason: r.reason.clone(),
            })
            .collect::<Vec<_>>()
    };
    let mut skipped: Vec<PathReason> = ingest
        .skipped
        .iter()
        .map(|n| PathReason {
            path: n.path.clone(),
            reason: n.reason.clone(),
        })
        .collect();
    skipped.extend(reasons(RejectKind::NotImage));

    let dedup = input.dedup;
    let labelled = |i: usize| LabelledPath {
        path: path(i),
        label: ingest.images[i].label.clone(),
    };
    let pair_of = |a: usize, b: usize, distance: f64, kind: &'static str| PairJson {
        a: path(a),
        b: path(b),
        distance,
        kind,
        tier: "copy",
        why: None,
        a_content_hash: super::review::content_hash(input, a),
        b_content_hash: super::review::content_hash(input, b),
        reviewed: super::review::pair_reviewed(input, a, b),
    };
    let pair = |p: &DuplicatePair| pair_of(p.a, p.b, p.distance, p.kind.name());
    let (label_issues, outliers, embedding) = embedding_json(input);
    ReportJson {
        schema_version: SCHEMA_VERSION,
        tool_version: crate::TOOL_VERSION.to_string(),
        report_id: super::review::report_id(ingest),
        dataset: DatasetJson {
            root: input.dataset_name.clone(),
            layout: ingest.kind.describe().to_string(),
            images: ingest.images.len(),
            classes: ingest.classes.clone(),
            splits: stats
                .split_counts
                .iter()
                .filter(|(s, _)| !s.is_empty())
                .map(|(s, n)| (s.clone(), *n))
                .collect(),
            class_counts: stats
                .class_counts
                .iter()
                .map(|(c, m)| (c.clone(), m.values().sum()))
                .collect(),
            class_split_counts: stats.class_counts.clone(),
            formats: stats.formats.clone(),
            color_types: stats.colors.clone(),
            sizes: stats.sizes.clone(),
            total_bytes: stats.total_bytes,
        },
        unreadable: reasons(RejectKind::Unreadable),
        skipped,
        statistics: StatisticsJson {
            mean: stats.overall.mean,
            std: stats.overall.std,
            pixels: stats.overall.pixels,
            per_split: stats.per_split.clone(),
        },
        duplicates: DuplicatesJson {
            exact_groups: dedup
                .exact_groups
                .iter()
                .map(|g| g.members.iter().map(|&i| path(i)).collect())
                .collect(),
            near_pairs: dedup.near_pairs.iter().map(pair).collect(),
            cross_split: dedup.cross_split.iter().map(pair).collect(),
            possible_pairs: dedup
                .possible_pairs
                .iter()
                .map(|p| PairJson {
                    tier: "possible",
                    why: Some(p.why.name()),
                    ..pair(&p.pair)
                })
                .collect(),
            conflicting_labels: dedup
                .conflicting_labels
                .iter()
                .map(|&g| {
                    dedup.groups[g]
                        .members
                        .iter()
                        .map(|&i| labelled(i))
                        .collect()
                })
                .collect(),
            groups: dedup
                .groups
                .iter()
                .map(|g| GroupJson {
                    members: g.members.iter().map(|&i| labelled(i)).collect(),
                    pairs: g
                        .exact
                        .iter()
                        .flat_map(|&e| {
                            let members = &dedup.exact_groups[e].members;
                            let kind = dedup.exact_groups[e].kind;
                            members[1..]
                                .iter()
                                .map(move |&m| pair_of(members[0], m, 0.0, kind.name()))
                        })
                        .chain(g.near.iter().map(|&p| pair(&dedup.near_pairs[p])))
                        .collect(),
                })
                .collect(),
        },
        label_issues,
        outliers,
        embedding,
        gate: GateOutcome {
            passed: true,
            checks: Vec::new(),
        },
        review: super::review::counts(input),
    }
}

/// What the gate counts in a report: every open finding (there is no older version to
/// compare). A reviewed finding is not open: a pair judged "not a duplicate", a group all of
/// whose pairs were, a label judged correct.
pub fn gate_findings(report: &ReportJson) -> Findings {
    let duplicates = &report.duplicates;
    let pair = |p: &PairJson| vec![p.a.clone(), p.b.clone()];
    let members = |g: &[LabelledPath]| g.iter().map(|m| m.path.clone()).collect::<Vec<_>>();
    let open_groups: Vec<&GroupJson> = duplicates
        .groups
        .iter()
        .filter(|g| g.pairs.iter().any(|p| !p.reviewed))
        .collect();
    let open_members: std::collections::HashSet<Vec<String>> =
        open_groups.iter().map(|g| members(&g.members)).collect();
    Findings {
        scope: "in the report",
        leakage: duplicates
            .cross_split
            .iter()
            .filter(|p| !p.reviewed)
            .map(pair)
            .collect(),
        conflicting_labels: duplicates
            .conflicting_labels
            .iter()
            .map(|g| members(g))
            .filter(|m| open_members.contains(m))
            .collect(),
        unreadable: report
            .unreadable
            .iter()
            .map(|u| vec![u.path.clone()])
            .collect(),
        duplicates: open_groups.iter().map(|g| members(&g.members)).collect(),
        label_issues: report
            .label_issues
            .iter()
            .filter(|l| !l.reviewed)
            .map(|l| vec![l.path.clone()])
            .collect(),
        imbalance: Imbalance::of(report.dataset.class_counts.iter().map(|(c, n)| (c, *n))),
    }
}
