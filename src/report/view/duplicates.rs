//! The report's Duplicates section: leakage pairs, near pairs, label conflicts and exact
//! groups as side-by-side galleries, closest first, with counts per class, and the alerts
//! the overview shows for them. Everything shown is a prefix of what report.json lists.
//!
//! What counts as a duplicate is the dedup stage's decision; this module only selects, counts
//! and words its findings, and never re-compares images.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::stages::dedup::{DedupArtifact, DuplicatePair, MatchKind};
use crate::text::{plural, thousands};

use super::{Alert, RenderInput, Thumb, thumb};

/// Pairs shown per gallery; report.json has them all.
const PAIRS_SHOWN: usize = 80;
/// Groups shown per gallery.
const GROUPS_SHOWN: usize = 40;
/// Members shown per group; a long chain of look-alikes would otherwise fill the page.
const MEMBERS_SHOWN: usize = 16;

#[derive(Debug, Serialize)]
pub struct DuplicatesView {
    /// One sentence with every count.
    pub summary: String,
    /// How near duplicates were found, in a sentence.
    pub method: String,
    pub leakage: Gallery<PairView>,
    pub near: Gallery<PairView>,
    /// The second tier: very similar pairs to review, any split, with why each is borderline.
    pub possible: Gallery<PairView>,
    pub conflicting: Gallery<GroupView>,
    pub exact: Gallery<GroupView>,
    pub per_class: Vec<ClassDuplicates>,
    pub leakage_heading: String,
}

#[derive(Debug, Serialize)]
pub struct Gallery<T> {
    pub total: String,
    /// The total with its noun: "1 pair", "8 groups".
    pub count: String,
    pub shown: Vec<T>,
    /// "Showing the closest 120 of 431; all are in report.json." or empty.
    pub note: String,
}

#[derive(Debug, Serialize)]
pub struct PairView {
    pub a: Thumb,
    pub b: Thumb,
    pub distance: String,
    pub kind: String,
    /// For a possible copy, what kept it out of the confident tier; else empty.
    pub why: String,
    /// Judged "not a duplicate" in the review file (shown, marked, not an open finding).
    pub reviewed: bool,
}

#[derive(Debug, Serialize)]
pub struct GroupView {
    pub kind: String,
    pub members: Vec<Thumb>,
    /// "and 56 more" when the group is longer than what is shown, else empty.
    pub more: String,
}

fn group_of(input: &RenderInput, kind: String, members: &[usize]) -> GroupView {
    GroupView {
        kind,
        members: members
            .iter()
            .take(MEMBERS_SHOWN)
            .map(|&i| thumb(input.ingested, i))
            .collect(),
        more: if members.len() > MEMBERS_SHOWN {
            format!(
                "and {} more",
                thousands((members.len() - MEMBERS_SHOWN) as u64)
            )
        } else {
            String::new()
        },
    }
}

#[derive(Debug, Serialize)]
pub struct ClassDuplicates {
    pub class: String,
    pub in_groups: String,
    pub leaked: String,
    pub near: String,
}

fn gallery<T>(shown: Vec<T>, total: usize, what: &'static str) -> Gallery<T> {
    let one = what.strip_suffix('s').unwrap_or(what);
    let note = if shown.len() < total {
        format!(
            "Showing the first {} of {} {what}; all are in report.json.",
            shown.len(),
            thousands(total as u64)
        )
    } else {
        String::new()
    };
    Gallery {
        total: thousands(total as u64),
        count: format!(
            "{} {}",
            thousands(total as u64),
            if total == 1 { one } else { what }
        ),
        shown,
        note,
    }
}

fn pair_view(input: &RenderInput, pair: &DuplicatePair) -> PairView {
    PairView {
        a: thumb(input.ingested, pair.a),
        b: thumb(input.ingested, pair.b),
        distance: format!("{:.3}", pair.distance),
        kind: pair.kind.describe().to_string(),
        why: String::new(),
        reviewed: crate::report::review::pair_reviewed(input, pair.a, pair.b),
    }
}

pub fn build(input: &RenderInput) -> DuplicatesView {
    let dedup = input.dedup;
    let images = &input.ingested.artifact.images;
    let config = &dedup.settings;

    let leakage: Vec<PairView> = dedup
        .cross_split
        .iter()
        .take(PAIRS_SHOWN)
        .map(|p| pair_view(input, p))
        .collect();
    let within: Vec<&DuplicatePair> = dedup
        .near_pairs
        .iter()
        .filter(|p| images[p.a].split == images[p.b].split)
        .collect();
    let near: Vec<PairView> = within
        .iter()
        .take(PAIRS_SHOWN)
        .map(|p| pair_view(input, p))
        .collect();
    let possible: Vec<PairView> = dedup
        .possible_pairs
        .iter()
        .take(PAIRS_SHOWN)
        .map(|p| PairView {
            why: p.why.describe().to_string(),
            ..pair_view(input, &p.pair)
        })
        .collect();
    let group_view = |gi: usize| {
        let group = &dedup.groups[gi];
        let kinds: BTreeSet<&str> = group
            .exact
            .iter()
            .map(|&e| dedup.exact_groups[e].kind.describe())
            .chain(
                group
                    .near
                    .iter()
                    .map(|&p| dedup.near_pairs[p].kind.describe()),
            )
            .collect();
        let kind = kinds.into_iter().collect::<Vec<_>>().join(", ");
        group_of(input, kind, &group.members)
    };
    let conflicting: Vec<GroupView> = dedup
        .conflicting_labels
        .iter()
        .take(GROUPS_SHOWN)
        .map(|&gi| group_view(gi))
        .collect();
    let exact: Vec<GroupView> = dedup
        .exact_groups
        .iter()
        .take(GROUPS_SHOWN)
        .map(|g| group_of(input, g.kind.describe().to_string(), &g.members))
        .collect();

    // Per class: images in any group, later-split images with a copy in an earlier split,
    // and near pairs (counted for the first image's class).
    let mut per_class: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for group in &dedup.groups {
        for &i in &group.members {
            per_class.entry(&images[i].label).or_default()[0] += 1;
        }
    }
    let leaked: BTreeSet<usize> = dedup.cross_split.iter().map(|p| p.a).collect();
    for &i in &leaked {
        per_class.entry(&images[i].label).or_default()[1] += 1;
    }
    for pair in &dedup.near_pairs {
        per_class.entry(&images[pair.a].label).or_default()[2] += 1;
    }
    let per_class = per_class
        .into_iter()
        .map(|(class, [in_groups, leaked, near])| ClassDuplicates {
            class: class.to_string(),
            in_groups: thousands(in_groups as u64),
            leaked: thousands(leaked as u64),
            near: thousands(near as u64),
        })
        .collect();

    let summary = format!(
        "{}. {} {} across splits; {} {} with conflicting labels.",
        group_counts(dedup),
        thousands(leaked.len() as u64),
        plural(
            leaked.len() as u64,
            "image has a copy",
            "images have a copy"
        ),
        thousands(dedup.conflicting_labels.len() as u64),
        plural(dedup.conflicting_labels.len() as u64, "group", "groups"),
    );
    let method = if config.near {
        format!(
            "Near duplicates: two pictures whose distance is at most {:.2} once aligned (shifts of up to {} px on a 32x32 version, crops of either picture up to 1.28x{}); \
             pairs up to {:.2} are listed as possible copies to review. \
             Distance 0 is the same picture; it grows as grey levels, colours (each channel on its own scale) or fine detail disagree. {} distinct pictures searched, {} candidate pairs checked.",
            config.near_threshold,
            config.max_shift,
            if config.mirrored {
                ", mirror images"
            } else {
                ""
            },
            config.possible_threshold.max(config.near_threshold),
            thousands(dedup.search.pictures as u64),
            thousands(dedup.search.checked as u64),
        )
    } else {
        "Near duplicates were not searched (dedup.near = false).".to_string()
    };
    DuplicatesView {
        summary,
        method,
        leakage_heading: leakage_heading(input),
        leakage: gallery(leakage, dedup.cross_split.len(), "pairs"),
        near: gallery(near, within.len(), "pairs"),
        possible: gallery(possible, dedup.possible_pairs.len(), "pairs"),
        conflicting: gallery(conflicting, dedup.conflicting_labels.len(), "groups"),
        exact: gallery(exact, dedup.exact_groups.len(), "groups"),
        per_class,
    }
}

/// "Leakage: `test` images with a copy in `train`", from the splits that actually leak.
fn leakage_heading(input: &RenderInput) -> String {
    let images = &input.ingested.artifact.images;
    let splits: BTreeSet<(String, String)> = input
        .dedup
        .cross_split
        .iter()
        .map(|p| {
            let name = |i: usize| images[i].split.clone().unwrap_or_default();
            (name(p.a), name(p.b))
        })
        .collect();
    match splits.len() {
        0 => "Leakage between splits".to_string(),
        1 => {
            let (later, earlier) = splits.into_iter().next().unwrap_or_default();
            format!("Leakage: `{later}` images with a copy in `{earlier}`")
        }
        _ => "Leakage: images with a copy in another split".to_string(),
    }
}

/// The overview's alerts about duplicates, most serious first.
pub fn alerts(input: &RenderInput) -> Vec<Alert> {
    let dedup = input.dedup;
    let images = &input.ingested.artifact.images;
    let mut alerts = Vec::new();
    // Per (later split, earlier split): the later split's images with a copy, exact or near.
    let mut leaks: BTreeMap<(String, String), (BTreeSet<usize>, BTreeSet<usize>)> = BTreeMap::new();
    for pair in &dedup.cross_split {
        let name = |i: usize| images[i].split.clone().unwrap_or_default();
        let entry = leaks.entry((name(pair.a), name(pair.b))).or_default();
        match pair.kind {
            MatchKind::ExactBytes | MatchKind::ExactPixels => entry.0.insert(pair.a),
            MatchKind::Near | MatchKind::Mirrored => entry.1.insert(pair.a),
        };
    }
    for ((later, earlier), (exact, near)) in leaks {
        let near: BTreeSet<usize> = near.difference(&exact).copied().collect();
        let total = exact.len() + near.len();
        alerts.push(Alert {
            level: "warn",
            text: format!(
                "{} `{later}` {} also {} in `{earlier}` ({} exact, {} near {}): train/test leakage",
                thousands(total as u64),
                plural(total as u64, "image", "images"),
                plural(total as u64, "appears", "appear"),
                thousands(exact.len() as u64),
                thousands(near.len() as u64),
                plural(near.len() as u64, "copy", "copies"),
            ),
        });
    }
    if !dedup.conflicting_labels.is_empty() {
        let n = dedup.conflicting_labels.len();
        alerts.push(Alert {
            level: "warn",
            text: format!(
                "{} {} of duplicates {} different labels (see Duplicates)",
                thousands(n as u64),
                plural(n as u64, "group", "groups"),
                plural(n as u64, "carries", "carry")
            ),
        });
    }
    alerts
}

/// The informational alert, shown after the warnings.
pub fn info_alert(input: &RenderInput) -> Option<Alert> {
    let dedup = input.dedup;
    if dedup.groups.is_empty() {
        return None;
    }
    Some(Alert {
        level: "info",
        text: group_counts(dedup),
    })
}

/// "761 groups of duplicates (1,795 images; 0 exact groups, 1,211 near-duplicate pairs)",
/// for the section's summary and the overview's alert.
fn group_counts(dedup: &DedupArtifact) -> String {
    let images: usize = dedup.groups.iter().map(|g| g.members.len()).sum();
    format!(
        "{} {} of duplicates ({} images; {} exact {}, {} near-duplicate {})",
        thousands(dedup.groups.len() as u64),
        plural(dedup.groups.len() as u64, "group", "groups"),
        thousands(images as u64),
        thousands(dedup.exact_groups.len() as u64),
        plural(dedup.exact_groups.len() as u64, "group", "groups"),
        thousands(dedup.near_pairs.len() as u64),
        plural(dedup.near_pairs.len() as u64, "pair", "pairs"),
    )
}
