//! Stage 2, sample: a seeded choice of images per class for the report's grids.
//!
//! Each image gets a rank from a hash of (seed, content hash, path); a class shows its
//! lowest-ranked images. The choice is stable: changing, adding or removing one file can
//! only swap that one file in or out of a grid, never reshuffle the rest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::config::SampleConfig;
use crate::stages::ingest::IngestArtifact;

pub const NAME: &str = "sample";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleArtifact {
    /// Per class, indices into the ingest image table, in display order.
    pub per_class: BTreeMap<String, Vec<usize>>,
}

pub fn run(ingest: &IngestArtifact, config: &SampleConfig) -> SampleArtifact {
    let mut ranked: BTreeMap<&str, Vec<(u64, usize)>> = BTreeMap::new();
    for (index, record) in ingest.images.iter().enumerate() {
        let mut hasher = Xxh3::new();
        hasher.update(&config.seed.to_le_bytes());
        hasher.update(&record.content_hash.to_le_bytes());
        hasher.update(record.path.as_bytes());
        ranked
            .entry(record.label.as_str())
            .or_default()
            .push((hasher.digest(), index));
    }
    let per_class = ranked
        .into_iter()
        .map(|(class, mut images)| {
            images.sort_unstable();
            images.truncate(config.per_class);
            (
                class.to_string(),
                images.into_iter().map(|(_, i)| i).collect(),
            )
        })
        .collect();
    SampleArtifact { per_class }
}
