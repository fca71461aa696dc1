//! diff.json: what changed between two versions, for scripts and CI. A stable contract like
//! report.json (documented in ../shared/PRODUCT.md's terms in README.md, "aldente diff"):
//! fields are only ever added; `schema_version` changes if one is removed or changes meaning.
//! Paths are relative to each version's dataset root with `/` separators; `old` paths name
//! files of the old version, `new` paths files of the new one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gate::GateOutcome;
use crate::stages::statistics::ChannelStats;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct DiffJson {
    pub schema_version: u32,
    pub tool_version: String,
    pub old: SideJson,
    pub new: SideJson,
    /// How many images are in each category of `images`.
    pub summary: Counts,
    pub images: ImagesJson,
    /// class -> images on each side and what happened to them.
    pub classes: BTreeMap<String, ClassChanges>,
    /// split ("" without splits) -> images on each side.
    pub splits: BTreeMap<String, Versions<usize>>,
    /// Normalisation constants (0..1 scale) on each side.
    pub statistics: StatisticsDiff,
    /// Per-image property spreads on each side.
    pub properties: Vec<PropertyJson>,
    /// Groups of copies (report.json's `duplicates.groups`).
    pub duplicates: FindingChanges<Vec<LabelledPath>>,
    /// Pairs of copies across splits (report.json's `duplicates.cross_split`).
    pub leakage: FindingChanges<PairJson>,
    /// Groups of copies whose labels disagree.
    pub conflicting_labels: FindingChanges<Vec<LabelledPath>>,
    /// Label-issue candidates (report.json's `label_issues`), by picture and given label.
    pub label_issues: FindingChanges<IssueJson>,
    pub unreadable: UnreadableChanges,
    /// The `--fail-on` checks over what the new version introduced (`checks` is empty
    /// without a gate).
    pub gate: GateOutcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct SideJson {
    /// The dataset folder's name.
    pub root: String,
    pub images: usize,
    pub classes: Vec<String>,
    pub unreadable: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub moved: usize,
    pub relabelled: usize,
    pub unchanged: usize,
}

impl Counts {
    pub fn of(images: &ImagesJson) -> Counts {
        Counts {
            added: images.added.len(),
            removed: images.removed.len(),
            changed: images.changed.len(),
            moved: images.moved.len(),
            relabelled: images.relabelled.len(),
            unchanged: images.unchanged,
        }
    }
}

/// Every image of either version, in one category, each list sorted by (new) path.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImagesJson {
    /// In the new version only (no image of the old one has its path or its pixels).
    pub added: Vec<ImageRef>,
    /// In the old version only.
    pub removed: Vec<ImageRef>,
    /// Same path, new pixels.
    pub changed: Vec<Move>,
    /// Same pixels, new path, same label and split.
    pub moved: Vec<Move>,
    /// Same pixels, another label or split (moved to another class or split folder, or a
    /// record relabelled in place).
    pub relabelled: Vec<Move>,
    /// Same path, same pixels, same label and split.
    pub unchanged: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageRef {
    pub path: String,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
}

/// One image in both versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Move {
    pub old: ImageRef,
    pub new: ImageRef,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClassChanges {
    /// Images with this label in the old and the new version.
    pub old: usize,
    pub new: usize,
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub moved: usize,
    /// Relabelled into this class, and out of it.
    pub relabelled_in: usize,
    pub relabelled_out: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Versions<T> {
    pub old: T,
    pub new: T,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatisticsDiff {
    pub overall: Versions<ChannelStats>,
    /// A split on one side only has `null` on the other.
    pub per_split: BTreeMap<String, Versions<Option<ChannelStats>>>,
}

/// A property's spread on each side (`null` without images).
#[derive(Debug, Clone, Serialize)]
pub struct PropertyJson {
    /// "brightness", "contrast", "saturation", "sharpness" (Laplacian variance), "entropy",
    /// "aspect", "width", "height", as in report.json.
    pub property: String,
    pub old: Option<Spread>,
    pub new: Option<Spread>,
    /// Both versions binned over one range, so they overlay (`null` without images).
    pub histogram: Option<PairedHistogram>,
}

/// A property's histogram on each side: `bins` equal-width bins from `min` to `max` (the
/// smallest and largest value over both versions), on the scale `scale` names.
#[derive(Debug, Clone, Serialize)]
pub struct PairedHistogram {
    /// "value", or "log10(1 + value)" for sharpness, which spans orders of magnitude.
    pub scale: &'static str,
    pub min: f64,
    pub max: f64,
    pub old: Vec<usize>,
    pub new: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub p10: f64,
    pub median: f64,
    pub p90: f64,
}

impl Spread {
    pub fn of(mut values: Vec<f64>) -> Option<Spread> {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let index = ((values.len() - 1) as f64 * q).round() as usize;
            round4(values[index])
        };
        Some(Spread {
            mean: round4(values.iter().sum::<f64>() / values.len() as f64),
            p10: at(0.1),
            median: at(0.5),
            p90: at(0.9),
        })
    }
}

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// Findings the new version has and the old did not (`introduced`, new paths), and the
/// reverse (`resolved`, old paths). A finding is identified by its pictures: a group that
/// gained a member is introduced, one that lost a member resolved (and the smaller group
/// that remains is not introduced).
#[derive(Debug, Clone, Serialize)]
pub struct FindingChanges<T> {
    pub introduced: Vec<T>,
    pub resolved: Vec<T>,
}

pub fn find_changes<T>(introduced: Vec<T>, resolved: Vec<T>) -> FindingChanges<T> {
    FindingChanges {
        introduced,
        resolved,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnreadableChanges {
    /// Unreadable in the new version, not (at that path) in the old one.
    pub introduced: Vec<PathReason>,
    /// Unreadable in the old version and readable or gone in the new one.
    pub fixed: Vec<PathReason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathReason {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledPath {
    pub path: String,
    pub label: String,
}

/// A pair as report.json has it (`kind` and `distance` kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairJson {
    pub a: String,
    pub b: String,
    #[serde(default)]
    pub distance: f64,
    #[serde(default)]
    pub kind: String,
}

/// A label-issue candidate as report.json has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueJson {
    pub path: String,
    pub given: String,
    pub suggested: String,
    #[serde(default)]
    pub score: f64,
}
