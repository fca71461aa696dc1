//! `aldente diff`: what changed between two versions of a dataset, matched by content.
//!
//! Each side is what one report run left in its output folder: the ingest table (path,
//! label, split and pixel hash of every image, and its thumbnail), the statistics artifact
//! (class balance, normalisation constants, per-image properties) and report.json (its
//! findings, read through the subset of its contract in [`ReportFindings`]). [`compare`] is a
//! pure function of the two sides; it reads neither the dataset nor the cache.
//!
//! Images are matched by path first: same path and pixels is unchanged; new pixels is
//! `changed`; same pixels with another label or split (a CIFAR record relabelled in place)
//! is `relabelled`. Images whose path exists on one side only are then matched by pixel
//! hash: same pixels under a new path is `moved` when label and split stayed, `relabelled`
//! when they did not; what is left is `added` or `removed`. Findings (duplicate groups,
//! leakage pairs, conflicting-label groups, label-issue candidates) are identified by the
//! pixels of their members, so a finding that merely moved with its files is neither
//! introduced nor resolved. Invariant: every image of the old side is in exactly one of
//! removed, changed, moved, relabelled or unchanged; every image of the new side in exactly
//! one of added, changed, moved, relabelled or unchanged.

pub mod html;
pub mod json;
pub mod markdown;

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::gate::{self, Gate};
use crate::stages::ingest::{ImageRecord, Ingested};
use crate::stages::statistics::StatisticsArtifact;
use crate::stages::statistics::distributions::bin_counts;
use crate::stages::statistics::properties::ImageProperties;
use json::{
    ClassChanges, DiffJson, ImageRef, ImagesJson, IssueJson, Move, PairJson, PairedHistogram,
    PathReason, PropertyJson, SideJson, Spread, StatisticsDiff, Versions, find_changes,
};

pub const HTML: &str = "diff.html";
pub const JSON: &str = "diff.json";
pub const MARKDOWN: &str = "diff.md";

/// One version of the dataset, as its report run left it.
pub struct Side<'a> {
    pub ingested: &'a Ingested,
    pub statistics: &'a StatisticsArtifact,
    pub report: ReportFindings,
}

/// The part of report.json the diff reads (serde ignores the rest, so any report.json of
/// schema 1 will do).
#[derive(Debug, Clone, Deserialize)]
pub struct ReportFindings {
    pub schema_version: u32,
    pub dataset: DatasetIn,
    #[serde(default)]
    pub unreadable: Vec<PathReason>,
    pub duplicates: DuplicatesIn,
    #[serde(default)]
    pub label_issues: Vec<IssueJson>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatasetIn {
    pub root: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DuplicatesIn {
    #[serde(default)]
    pub cross_split: Vec<PairJson>,
    #[serde(default)]
    pub conflicting_labels: Vec<Vec<LabelledIn>>,
    #[serde(default)]
    pub groups: Vec<GroupIn>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GroupIn {
    pub members: Vec<LabelledIn>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LabelledIn {
    pub path: String,
    pub label: String,
}

/// Paths of one side to their pixel hashes. A path report.json names that the table lacks
/// (it cannot happen with both written by one run) gets a hash of its own name, so it is
/// never taken for another picture.
struct Pixels<'a>(HashMap<&'a str, u128>);

impl<'a> Pixels<'a> {
    fn of(images: &'a [ImageRecord]) -> Pixels<'a> {
        Pixels(
            images
                .iter()
                .map(|r| (r.path.as_str(), r.pixel_hash))
                .collect(),
        )
    }

    fn get(&self, path: &str) -> u128 {
        self.0.get(path).copied().unwrap_or_else(|| {
            xxhash_rust::xxh3::xxh3_128(format!("unknown path {path}").as_bytes())
        })
    }

    /// The sorted multiset of a finding's pictures: its identity across versions.
    fn key<'p>(&self, paths: impl IntoIterator<Item = &'p str>) -> Vec<u128> {
        let mut key: Vec<u128> = paths.into_iter().map(|p| self.get(p)).collect();
        key.sort_unstable();
        key
    }
}

fn image_ref(record: &ImageRecord) -> ImageRef {
    ImageRef {
        path: record.path.clone(),
        label: record.label.clone(),
        split: record.split.clone(),
    }
}

fn moved(old: &ImageRecord, new: &ImageRecord) -> Move {
    Move {
        old: image_ref(old),
        new: image_ref(new),
    }
}

/// Image-level changes, matched by path and then by pixels (see the module doc).
fn match_images(old: &[ImageRecord], new: &[ImageRecord]) -> ImagesJson {
    let mut images = ImagesJson::default();
    let old_by_path: HashMap<&str, usize> = old
        .iter()
        .enumerate()
        .map(|(i, r)| (r.path.as_str(), i))
        .collect();
    let mut old_matched = vec![false; old.len()];
    let mut new_only: Vec<usize> = Vec::new();
    for (n, record) in new.iter().enumerate() {
        match old_by_path.get(record.path.as_str()) {
            Some(&o) => {
                old_matched[o] = true;
                let before = &old[o];
                if before.pixel_hash != record.pixel_hash {
                    images.changed.push(moved(before, record));
                } else if before.label != record.label || before.split != record.split {
                    images.relabelled.push(moved(before, record));
                } else {
                    images.unchanged += 1;
                }
            }
            None => new_only.push(n),
        }
    }
    // Pictures that left their path, by pixels; a same-label match is preferred, so a
    // picture copied into two classes pairs with the copy that did not change class.
    let mut by_pixels: HashMap<u128, Vec<usize>> = HashMap::new();
    for (o, record) in old.iter().enumerate().rev() {
        if !old_matched[o] {
            by_pixels.entry(record.pixel_hash).or_default().push(o);
        }
    }
    let mut unmatched_new = Vec::new();
    for pass in 0..2 {
        let candidates = if pass == 0 {
            std::mem::take(&mut new_only)
        } else {
            std::mem::take(&mut unmatched_new)
        };
        for n in candidates {
            let record = &new[n];
            let same_place =
                |o: &usize| old[*o].label == record.label && old[*o].split == record.split;
            let found = by_pixels.get_mut(&record.pixel_hash).and_then(|list| {
                let at = if pass == 0 {
                    list.iter().rposition(same_place)?
                } else {
                    list.len().checked_sub(1)?
                };
                Some(list.remove(at))
            });
            match found {
                Some(o) => {
                    old_matched[o] = true;
                    if same_place(&o) {
                        images.moved.push(moved(&old[o], record));
                    } else {
                        images.relabelled.push(moved(&old[o], record));
                    }
                }
                None if pass == 0 => unmatched_new.push(n),
                None => images.added.push(image_ref(record)),
            }
        }
    }
    for (o, record) in old.iter().enumerate() {
        if !old_matched[o] {
            images.removed.push(image_ref(record));
        }
    }
    images.added.sort_by(|a, b| a.path.cmp(&b.path));
    images.removed.sort_by(|a, b| a.path.cmp(&b.path));
    for list in [
        &mut images.changed,
        &mut images.moved,
        &mut images.relabelled,
    ] {
        list.sort_by(|a, b| a.new.path.cmp(&b.new.path));
    }
    images
}

/// Per class: images on each side and what happened to them.
fn per_class(
    old: &[ImageRecord],
    new: &[ImageRecord],
    images: &ImagesJson,
) -> BTreeMap<String, ClassChanges> {
    let mut classes: BTreeMap<String, ClassChanges> = BTreeMap::new();
    for record in old {
        classes.entry(record.label.clone()).or_default().old += 1;
    }
    for record in new {
        classes.entry(record.label.clone()).or_default().new += 1;
    }
    let mut bump = |class: &str, field: fn(&mut ClassChanges) -> &mut usize| {
        *field(classes.entry(class.to_string()).or_default()) += 1;
    };
    for image in &images.added {
        bump(&image.label, |c| &mut c.added);
    }
    for image in &images.removed {
        bump(&image.label, |c| &mut c.removed);
    }
    for change in &images.changed {
        bump(&change.new.label, |c| &mut c.changed);
    }
    for change in &images.moved {
        bump(&change.new.label, |c| &mut c.moved);
    }
    for change in &images.relabelled {
        bump(&change.old.label, |c| &mut c.relabelled_out);
        bump(&change.new.label, |c| &mut c.relabelled_in);
    }
    classes
}

/// Images per split on each side ("" without splits).
fn per_split(old: &[ImageRecord], new: &[ImageRecord]) -> BTreeMap<String, Versions<usize>> {
    let mut splits: BTreeMap<String, Versions<usize>> = BTreeMap::new();
    for record in old {
        splits
            .entry(record.split.clone().unwrap_or_default())
            .or_default()
            .old += 1;
    }
    for record in new {
        splits
            .entry(record.split.clone().unwrap_or_default())
            .or_default()
            .new += 1;
    }
    splits
}

fn statistics(old: &StatisticsArtifact, new: &StatisticsArtifact) -> StatisticsDiff {
    let mut per_split = BTreeMap::new();
    for split in old.per_split.keys().chain(new.per_split.keys()) {
        per_split.insert(
            split.clone(),
            Versions {
                old: old.per_split.get(split).copied(),
                new: new.per_split.get(split).copied(),
            },
        );
    }
    StatisticsDiff {
        overall: Versions {
            old: old.overall,
            new: new.overall,
        },
        per_split,
    }
}

/// Median and the 10th and 90th percentiles of each image property on each side, and both
/// sides' histograms over one range.
fn properties(old: &Side, new: &Side) -> Vec<PropertyJson> {
    let property = |f: fn(&ImageProperties) -> f32| {
        move |side: &Side| -> Vec<f64> {
            side.statistics
                .properties
                .iter()
                .map(|p| f64::from(f(p)))
                .collect()
        }
    };
    let record = |f: fn(&ImageRecord) -> u32| {
        move |side: &Side| -> Vec<f64> {
            side.ingested
                .artifact
                .images
                .iter()
                .map(|r| f64::from(f(r)))
                .collect()
        }
    };
    type Column<'f> = Box<dyn Fn(&Side) -> Vec<f64> + 'f>;
    let columns: [(&str, Column); 8] = [
        ("brightness", Box::new(property(|p| p.brightness))),
        ("contrast", Box::new(property(|p| p.contrast))),
        ("saturation", Box::new(property(|p| p.saturation))),
        ("sharpness", Box::new(property(|p| p.sharpness))),
        ("entropy", Box::new(property(|p| p.entropy))),
        ("aspect", Box::new(property(|p| p.aspect))),
        ("width", Box::new(record(|r| r.width))),
        ("height", Box::new(record(|r| r.height))),
    ];
    columns
        .iter()
        .map(|(name, values)| {
            let (old_values, new_values) = (values(old), values(new));
            PropertyJson {
                property: name.to_string(),
                histogram: paired_histogram(name, &old_values, &new_values),
                old: Spread::of(old_values),
                new: Spread::of(new_values),
            }
        })
        .collect()
}

/// Bins of each property's paired histogram, as many as the report's.
const PROPERTY_BINS: usize = 30;

/// Both sides binned over the range of both, on the report's scale for the property
/// (sharpness as log10(1 + value)); `None` when neither side has a finite value.
fn paired_histogram(name: &str, old: &[f64], new: &[f64]) -> Option<PairedHistogram> {
    let logarithmic = name == "sharpness";
    let scaled = |values: &[f64]| -> Vec<f64> {
        if logarithmic {
            values
                .iter()
                .map(|v| v.ln_1p() / std::f64::consts::LN_10)
                .collect()
        } else {
            values.to_vec()
        }
    };
    let (old, new) = (scaled(old), scaled(new));
    let finite = || old.iter().chain(&new).copied().filter(|v| v.is_finite());
    let min = finite().fold(f64::INFINITY, f64::min);
    let max = finite().fold(f64::NEG_INFINITY, f64::max);
    if !min.is_finite() {
        return None;
    }
    Some(PairedHistogram {
        scale: if logarithmic {
            "log10(1 + value)"
        } else {
            "value"
        },
        min,
        max,
        old: bin_counts(&old, min, max, PROPERTY_BINS),
        new: bin_counts(&new, min, max, PROPERTY_BINS),
    })
}

/// Findings of each side that the other side has no finding containing (by pixels, with
/// multiplicity): introduced (in new, not contained in any old one) and resolved.
fn contained_in(key: &[u128], others: &[Vec<u128>], index: &HashMap<u128, Vec<usize>>) -> bool {
    let Some(first) = key.first() else {
        return true;
    };
    index.get(first).into_iter().flatten().any(|&g| {
        let other = &others[g];
        // Both sorted: a merge walk decides multiset inclusion.
        let mut at = 0;
        key.iter().all(|h| {
            while at < other.len() && other[at] < *h {
                at += 1;
            }
            if at < other.len() && other[at] == *h {
                at += 1;
                true
            } else {
                false
            }
        })
    })
}

fn index_of(keys: &[Vec<u128>]) -> HashMap<u128, Vec<usize>> {
    let mut index: HashMap<u128, Vec<usize>> = HashMap::new();
    for (g, key) in keys.iter().enumerate() {
        let mut seen = key.clone();
        seen.dedup();
        for h in seen {
            index.entry(h).or_default().push(g);
        }
    }
    index
}

/// (introduced, resolved) indices of two lists of findings given by their pictures.
fn introduced_resolved(old: &[Vec<u128>], new: &[Vec<u128>]) -> (Vec<usize>, Vec<usize>) {
    let (old_index, new_index) = (index_of(old), index_of(new));
    let introduced = (0..new.len())
        .filter(|&g| !contained_in(&new[g], old, &old_index))
        .collect();
    let resolved = (0..old.len())
        .filter(|&g| !contained_in(&old[g], new, &new_index))
        .collect();
    (introduced, resolved)
}

fn side_json(side: &Side) -> SideJson {
    let ingest = &side.ingested.artifact;
    SideJson {
        root: side.report.dataset.root.clone(),
        images: ingest.images.len(),
        classes: ingest.classes.clone(),
        unreadable: side.report.unreadable.len(),
    }
}

/// The diff of two versions, with the gate evaluated over what the new one introduced.
pub fn compare(old: &Side, new: &Side, gate: &Gate, default_imbalance: f64) -> DiffJson {
    let (old_images, new_images) = (&old.ingested.artifact.images, &new.ingested.artifact.images);
    let (old_pixels, new_pixels) = (Pixels::of(old_images), Pixels::of(new_images));
    let images = match_images(old_images, new_images);
    let classes = per_class(old_images, new_images, &images);

    let groups = |side: &Side| -> Vec<Vec<LabelledIn>> {
        side.report
            .duplicates
            .groups
            .iter()
            .map(|g| g.members.clone())
            .collect()
    };
    let group_changes = |old_groups: Vec<Vec<LabelledIn>>, new_groups: Vec<Vec<LabelledIn>>| {
        let keys = |groups: &[Vec<LabelledIn>], pixels: &Pixels| -> Vec<Vec<u128>> {
            groups
                .iter()
                .map(|g| pixels.key(g.iter().map(|m| m.path.as_str())))
                .collect()
        };
        let (introduced, resolved) = introduced_resolved(
            &keys(&old_groups, &old_pixels),
            &keys(&new_groups, &new_pixels),
        );
        let members = |g: &Vec<LabelledIn>| -> Vec<json::LabelledPath> {
            g.iter().map(LabelledIn::to_json).collect()
        };
        find_changes(
            introduced
                .iter()
                .map(|&g| members(&new_groups[g]))
                .collect(),
            resolved.iter().map(|&g| members(&old_groups[g])).collect(),
        )
    };
    let duplicates = group_changes(groups(old), groups(new));
    let conflicting_labels = group_changes(
        old.report.duplicates.conflicting_labels.clone(),
        new.report.duplicates.conflicting_labels.clone(),
    );

    let pair_keys = |pairs: &[PairJson], pixels: &Pixels| -> Vec<Vec<u128>> {
        pairs
            .iter()
            .map(|p| pixels.key([p.a.as_str(), p.b.as_str()]))
            .collect()
    };
    let (old_pairs, new_pairs) = (
        &old.report.duplicates.cross_split,
        &new.report.duplicates.cross_split,
    );
    let (introduced, resolved) = introduced_resolved(
        &pair_keys(old_pairs, &old_pixels),
        &pair_keys(new_pairs, &new_pixels),
    );
    let leakage = find_changes(
        introduced.iter().map(|&p| new_pairs[p].clone()).collect(),
        resolved.iter().map(|&p| old_pairs[p].clone()).collect(),
    );

    // A label issue is its picture and the label it was given: relabelling the picture as
    // suggested resolves it.
    let issue_key =
        |issue: &IssueJson, pixels: &Pixels| (pixels.get(&issue.path), issue.given.clone());
    let old_issues: std::collections::HashSet<(u128, String)> = old
        .report
        .label_issues
        .iter()
        .map(|i| issue_key(i, &old_pixels))
        .collect();
    let new_issues: std::collections::HashSet<(u128, String)> = new
        .report
        .label_issues
        .iter()
        .map(|i| issue_key(i, &new_pixels))
        .collect();
    let label_issues = find_changes(
        new.report
            .label_issues
            .iter()
            .filter(|i| !old_issues.contains(&issue_key(i, &new_pixels)))
            .cloned()
            .collect(),
        old.report
            .label_issues
            .iter()
            .filter(|i| !new_issues.contains(&issue_key(i, &old_pixels)))
            .cloned()
            .collect(),
    );

    // Unreadable files by path: one that stays unreadable is neither.
    let unreadable_paths = |side: &Side| -> std::collections::HashSet<String> {
        side.report
            .unreadable
            .iter()
            .map(|u| u.path.clone())
            .collect()
    };
    let (old_bad, new_bad) = (unreadable_paths(old), unreadable_paths(new));
    let unreadable = json::UnreadableChanges {
        introduced: new
            .report
            .unreadable
            .iter()
            .filter(|u| !old_bad.contains(&u.path))
            .cloned()
            .collect(),
        fixed: old
            .report
            .unreadable
            .iter()
            .filter(|u| !new_bad.contains(&u.path))
            .cloned()
            .collect(),
    };

    let mut diff = DiffJson {
        schema_version: json::SCHEMA_VERSION,
        tool_version: crate::TOOL_VERSION.to_string(),
        old: side_json(old),
        new: side_json(new),
        summary: json::Counts::of(&images),
        images,
        classes,
        splits: per_split(old_images, new_images),
        statistics: statistics(old.statistics, new.statistics),
        properties: properties(old, new),
        duplicates,
        leakage,
        conflicting_labels,
        label_issues,
        unreadable,
        gate: gate::GateOutcome {
            passed: true,
            checks: Vec::new(),
        },
    };
    // The new version's classes (an empty class folder counts, with no images) and labels.
    let counts: BTreeMap<String, usize> = diff
        .classes
        .iter()
        .filter(|(name, c)| c.new > 0 || new.ingested.artifact.classes.contains(name))
        .map(|(name, c)| (name.clone(), c.new))
        .collect();
    diff.gate = gate.evaluate(&gate_findings(&diff, &counts), default_imbalance);
    diff
}

/// What the gate counts in a diff: what the new version introduced, and the new version's
/// class balance.
fn gate_findings(diff: &DiffJson, new_counts: &BTreeMap<String, usize>) -> gate::Findings {
    let members =
        |g: &Vec<json::LabelledPath>| -> Vec<String> { g.iter().map(|m| m.path.clone()).collect() };
    gate::Findings {
        scope: "introduced by the new version",
        leakage: diff
            .leakage
            .introduced
            .iter()
            .map(|p| vec![p.a.clone(), p.b.clone()])
            .collect(),
        conflicting_labels: diff
            .conflicting_labels
            .introduced
            .iter()
            .map(members)
            .collect(),
        unreadable: diff
            .unreadable
            .introduced
            .iter()
            .map(|u| vec![u.path.clone()])
            .collect(),
        duplicates: diff.duplicates.introduced.iter().map(members).collect(),
        label_issues: diff
            .label_issues
            .introduced
            .iter()
            .map(|i| vec![i.path.clone()])
            .collect(),
        imbalance: gate::Imbalance::of(new_counts.iter().map(|(c, n)| (c, *n))),
    }
}

impl LabelledIn {
    fn to_json(&self) -> json::LabelledPath {
        json::LabelledPath {
            path: self.path.clone(),
            label: self.label.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, label: &str, pixel_hash: u128) -> ImageRecord {
        ImageRecord {
            path: path.to_string(),
            split: None,
            label: label.to_string(),
            content_hash: pixel_hash,
            file_size: 1,
            format: "png".into(),
            width: 1,
            height: 1,
            color: "rgb8".into(),
            pixel_hash,
            channel_sum: [0; 3],
            channel_sumsq: [0; 3],
            thumb_width: 1,
            thumb_height: 1,
            thumb_offset: 0,
        }
    }

    /// Two copies of one picture, one of which moves to another class: the copy that stayed
    /// in its class must pair with the one still there, and only the other is relabelled.
    #[test]
    fn a_copy_that_changed_class_pairs_with_its_own_copy_not_the_one_that_stayed() {
        let old = [record("cat/a.png", "cat", 7), record("cat/b.png", "cat", 7)];
        let new = [
            record("cat/a2.png", "cat", 7),
            record("dog/b.png", "dog", 7),
            record("dog/new.png", "dog", 8),
        ];
        let images = match_images(&old, &new);
        assert_eq!(images.moved.len(), 1);
        assert_eq!(images.moved[0].new.path, "cat/a2.png");
        assert_eq!(images.relabelled.len(), 1);
        assert_eq!(images.relabelled[0].new.path, "dog/b.png");
        assert_eq!(images.added.len(), 1);
        assert!(images.removed.is_empty() && images.changed.is_empty());
        assert_eq!(images.unchanged, 0);
    }

    #[test]
    fn a_group_that_grew_is_introduced_and_one_that_shrank_resolved() {
        let old = vec![vec![1, 2], vec![5, 5, 5]];
        let new = vec![vec![1, 2, 3], vec![5, 5]];
        let (introduced, resolved) = introduced_resolved(&old, &new);
        assert_eq!(introduced, [0], "1, 2, 3 is not inside any old group");
        assert_eq!(
            resolved,
            [1],
            "5, 5, 5 lost a copy; 5, 5 is inside it, so not introduced"
        );
        let (introduced, resolved) = introduced_resolved(&old, &old);
        assert!(introduced.is_empty() && resolved.is_empty());
    }
}
