//! Stage 4, dedup: duplicate images, and duplicates that cross splits (train/test leakage)
//! or carry different labels.
//!
//! Exact duplicates only for now: same bytes (content hash) or same decoded pixels (pixel
//! hash, which also catches re-saves with other metadata and lossless re-encodes). Both are
//! a hash-map grouping, linear in the number of images. Near duplicates come later.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::DedupConfig;
use crate::stages::ingest::IngestArtifact;

pub const NAME: &str = "dedup";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchKind {
    ExactBytes,
    ExactPixels,
}

/// A group of images that are the same picture; `members` are image-table indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DuplicateGroup {
    pub kind: MatchKind,
    pub members: Vec<usize>,
}

/// Two images of one group, one of them in another split or class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DuplicatePair {
    pub a: usize,
    pub b: usize,
    pub kind: MatchKind,
    pub distance: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DedupArtifact {
    pub groups: Vec<DuplicateGroup>,
    /// Pairs whose images are in different splits (leakage), test side first.
    pub cross_split: Vec<DuplicatePair>,
    /// Groups whose members carry more than one label.
    pub conflicting_labels: Vec<usize>,
}

pub fn run(ingest: &IngestArtifact, config: &DedupConfig) -> DedupArtifact {
    let mut artifact = DedupArtifact::default();
    if !config.exact {
        return artifact;
    }
    let mut by_pixels: BTreeMap<u128, Vec<usize>> = BTreeMap::new();
    for (index, record) in ingest.images.iter().enumerate() {
        by_pixels.entry(record.pixel_hash).or_default().push(index);
    }
    for members in by_pixels.into_values().filter(|m| m.len() > 1) {
        let same_bytes = members
            .iter()
            .all(|&i| ingest.images[i].content_hash == ingest.images[members[0]].content_hash);
        let kind = if same_bytes {
            MatchKind::ExactBytes
        } else {
            MatchKind::ExactPixels
        };
        artifact.groups.push(DuplicateGroup { kind, members });
    }
    for (group_index, group) in artifact.groups.iter().enumerate() {
        let first = &ingest.images[group.members[0]];
        if group
            .members
            .iter()
            .any(|&i| ingest.images[i].label != first.label)
        {
            artifact.conflicting_labels.push(group_index);
        }
        for (x, &a) in group.members.iter().enumerate() {
            for &b in &group.members[x + 1..] {
                let (sa, sb) = (&ingest.images[a].split, &ingest.images[b].split);
                if sa != sb {
                    // The later split in the usual order (test) goes first: it is the one
                    // whose score the copy inflates.
                    let rank = |s: &Option<String>| {
                        ingest.splits.iter().position(|x| Some(x) == s.as_ref())
                    };
                    let (a, b) = if rank(sa) > rank(sb) { (a, b) } else { (b, a) };
                    artifact.cross_split.push(DuplicatePair {
                        a,
                        b,
                        kind: group.kind,
                        distance: 0.0,
                    });
                }
            }
        }
    }
    artifact
}
