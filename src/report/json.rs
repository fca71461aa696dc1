//! report.json: every finding, for scripts and CI. A stable contract (PRODUCT.md): fields
//! are only ever added; `schema_version` changes if one is removed or changes meaning.
//! Paths are relative to the dataset root with `/` separators.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::stages::dedup::DuplicatePair;
use crate::stages::ingest::RejectKind;
use crate::stages::statistics::ChannelStats;

use super::view::RenderInput;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct ReportJson {
    pub schema_version: u32,
    pub tool_version: String,
    pub dataset: DatasetJson,
    pub unreadable: Vec<PathReason>,
    pub skipped: Vec<PathReason>,
    pub statistics: StatisticsJson,
    pub duplicates: DuplicatesJson,
    pub label_issues: Vec<serde_json::Value>,
    pub outliers: Vec<serde_json::Value>,
    pub embedding: EmbeddingJson,
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
}

#[derive(Debug, Serialize)]
pub struct LabelledPath {
    pub path: String,
    pub label: String,
}

#[derive(Debug, Serialize)]
pub struct EmbeddingJson {
    pub method: String,
    pub points: usize,
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
    let pair = |p: &DuplicatePair| PairJson {
        a: path(p.a),
        b: path(p.b),
        distance: p.distance,
        kind: p.kind.name(),
    };
    ReportJson {
        schema_version: SCHEMA_VERSION,
        tool_version: crate::TOOL_VERSION.to_string(),
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
                            members[1..].iter().map(move |&m| PairJson {
                                a: path(members[0]),
                                b: path(m),
                                distance: 0.0,
                                kind: kind.name(),
                            })
                        })
                        .chain(g.near.iter().map(|&p| pair(&dedup.near_pairs[p])))
                        .collect(),
                })
                .collect(),
        },
        label_issues: Vec::new(),
        outliers: Vec::new(),
        embedding: EmbeddingJson {
            method: input.embed.method.clone(),
            points: input.embed.points,
        },
    }
}
