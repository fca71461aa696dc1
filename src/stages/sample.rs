//! Stage 2, sample: a seeded, stratified choice of images per class for the report's grids.
//!
//! Each image gets a rank from a hash of (seed, content hash, path). A class's grid takes its
//! lowest-ranked images from each split, in proportion to the split's share of the class
//! (at least one from every non-empty split). The choice is stable: changing, adding or
//! removing one file can only swap that one file in or out of a grid, never reshuffle the rest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::config::SampleConfig;
use crate::stage::Stage;
use crate::stages::ingest::IngestArtifact;

pub const STAGE: Stage = Stage::Sample;
pub const VERSION: u32 = 2;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleArtifact {
    /// Per class, indices into the ingest image table, in display order (by split, then rank).
    pub per_class: BTreeMap<String, Vec<usize>>,
}

pub fn run(ingest: &IngestArtifact, config: &SampleConfig) -> SampleArtifact {
    // class -> split -> (rank, index)
    type Ranked<'a> = BTreeMap<&'a str, BTreeMap<&'a str, Vec<(u64, usize)>>>;
    let mut ranked: Ranked = BTreeMap::new();
    for (index, record) in ingest.images.iter().enumerate() {
        let mut hasher = Xxh3::new();
        hasher.update(&config.seed.to_le_bytes());
        hasher.update(&record.content_hash.to_le_bytes());
        hasher.update(record.path.as_bytes());
        ranked
            .entry(record.label.as_str())
            .or_default()
            .entry(record.split.as_deref().unwrap_or(""))
            .or_default()
            .push((hasher.digest(), index));
    }
    let split_order = |split: &str| {
        ingest
            .splits
            .iter()
            .position(|s| s == split)
            .unwrap_or(usize::MAX)
    };
    let per_class = ranked
        .into_iter()
        .map(|(class, splits)| {
            let total: usize = splits.values().map(Vec::len).sum();
            let mut splits: Vec<(&str, Vec<(u64, usize)>)> = splits.into_iter().collect();
            splits.sort_by_key(|(split, _)| split_order(split));
            let quotas = quotas(
                &splits.iter().map(|(_, v)| v.len()).collect::<Vec<_>>(),
                config.per_class.min(total),
            );
            let mut chosen = Vec::new();
            for ((_, mut images), quota) in splits.into_iter().zip(quotas) {
                images.sort_unstable();
                chosen.extend(images.into_iter().take(quota).map(|(_, i)| i));
            }
            (class.to_string(), chosen)
        })
        .collect();
    SampleArtifact { per_class }
}

/// Splits `want` picks over groups of the given sizes in proportion to their sizes (largest
/// remainders), giving every non-empty group at least one when `want` allows.
fn quotas(sizes: &[usize], want: usize) -> Vec<usize> {
    let total: usize = sizes.iter().sum();
    if total == 0 || want == 0 {
        return vec![0; sizes.len()];
    }
    let mut quotas: Vec<usize> = sizes.iter().map(|&n| (n * want / total).min(n)).collect();
    for (q, &n) in quotas.iter_mut().zip(sizes) {
        if n > 0 && *q == 0 && want >= sizes.iter().filter(|&&s| s > 0).count() {
            *q = 1;
        }
    }
    // Hand out what is left to the groups with the largest remainders, then trim any excess
    // from the largest quotas.
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((sizes[i] * want) % total));
    while quotas.iter().sum::<usize>() < want {
        let Some(&i) = order.iter().find(|&&i| quotas[i] < sizes[i]) else {
            break;
        };
        quotas[i] += 1;
        order.rotate_left(1);
    }
    while quotas.iter().sum::<usize>() > want {
        let Some(i) = (0..quotas.len()).max_by_key(|&i| quotas[i]) else {
            break;
        };
        quotas[i] -= 1;
    }
    quotas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_are_proportional_and_cover_small_splits() {
        assert_eq!(quotas(&[5000, 1000], 48), vec![40, 8]);
        assert_eq!(quotas(&[1000, 3], 48).iter().sum::<usize>(), 48);
        assert_eq!(quotas(&[1000, 3], 48)[1], 1);
        assert_eq!(quotas(&[2, 1], 48), vec![2, 1]);
        assert_eq!(quotas(&[0, 10], 4), vec![0, 4]);
    }
}
