//! The approximate back end: an inverted file (IVF) over spherical k-means cells.
//!
//! Spherical k-means, trained on a seeded sample of the base, cuts the base into about √N
//! cells; every base row lives in the cell of its nearest centroid, and a query compares
//! itself only with the members of its `probes` nearest cells, by the exact search of
//! [`super::exact`] on each cell (so every similarity it reports is the exact one).
//!
//! Cost: assigning N rows to √N centroids is N·√N·d, and each query visits `probes` cells of
//! about √N members, so the whole search is about N·√N·d multiply-adds instead of N²·d. At
//! 60,000 rows that is ~250 times less than all pairs; at a million, ~1,000 times less
//! (about 10¹² multiply-adds for 192 dimensions, a couple of minutes on two cores).
//!
//! Where it differs from the exact search: a true neighbour in an unprobed cell is missed
//! (and the row may come out shorter than `k`), and among equal similarities from different
//! cells the one kept is decided by the order of the merge below, not by the lower row. The
//! merge is dedup's original one, kept as it was so that its candidates did not move.

use ndarray::{Array2, ArrayView2, s};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::{Neighbours, exact};

const KMEANS_ROUNDS: usize = 6;
/// Points per centroid used to train the centroids.
const TRAIN_PER_CELL: usize = 40;
/// Queries compared with a cell at once, which bounds the copy of their rows.
const QUERY_CHUNK: usize = 2_048;

/// Each query's up to `k` most similar base rows among its `probes` nearest cells. `k` is
/// at most the rows of `base` available (less one with `same_set`) and at least 1.
pub(super) fn search(
    queries: ArrayView2<f32>,
    base: ArrayView2<f32>,
    k: usize,
    same_set: bool,
    probes: usize,
    seed: u64,
) -> Neighbours {
    debug_assert!(probes > 0, "an IVF search must probe at least one cell");
    let n = base.nrows();
    let centroids = train_centroids(base, (n as f64).sqrt().round() as usize, seed);
    let mut cells = vec![Vec::new(); centroids.nrows()];
    let assigned = exact::best(base, centroids.view(), 1, false);
    for i in 0..n {
        // A row comparable with no centroid (NaN) could be no one's neighbour anyway.
        if let Some(&c) = assigned.of(i).first() {
            cells[c as usize].push(i as u32);
        }
    }
    let probed = exact::best(
        queries,
        centroids.view(),
        probes.min(centroids.nrows()),
        false,
    );

    // Which queries visit each cell.
    let mut visitors: Vec<Vec<u32>> = vec![Vec::new(); cells.len()];
    for q in 0..queries.nrows() {
        for &c in probed.of(q) {
            visitors[c as usize].push(q as u32);
        }
    }

    // A query's own row may be among a cell's best; one more per cell leaves `k` others.
    let per_cell = k + usize::from(same_set);
    let mut found: Vec<(u32, u32, f32)> = cells
        .par_iter()
        .zip(visitors.par_iter())
        .flat_map_iter(|(members, visiting)| {
            let mut out = Vec::new();
            if members.is_empty() || visiting.is_empty() {
                return out.into_iter();
            }
            let member_rows = super::gather(base, &to_usize(members));
            for chunk in visiting.chunks(QUERY_CHUNK) {
                let query_rows = super::gather(queries, &to_usize(chunk));
                let best = exact::best(query_rows.view(), member_rows.view(), per_cell, false);
                for (r, &q) in chunk.iter().enumerate() {
                    for (&j, &sim) in best.of(r).iter().zip(best.similarities(r)) {
                        let j = members[j as usize];
                        if !(same_set && j == q) {
                            out.push((q, j, sim));
                        }
                    }
                }
            }
            out.into_iter()
        })
        .collect();

    // Unstable and by similarity only: which of two tied rows from different cells comes
    // first is this sort's (deterministic) choice. Dedup's candidates were made this way.
    found.par_sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.2.total_cmp(&a.2)));
    let mut result = Neighbours::empty(queries.nrows(), k);
    for (q, j, sim) in found {
        let q = q as usize;
        let filled = result.filled[q] as usize;
        if filled < k {
            result.index[q * k + filled] = j;
            result.similarity[q * k + filled] = sim;
            result.filled[q] += 1;
        }
    }
    result
}

fn to_usize(indices: &[u32]) -> Vec<usize> {
    indices.iter().map(|&i| i as usize).collect()
}

/// Spherical k-means on a seeded sample of the base: unit-length centroids.
fn train_centroids(base: ArrayView2<f32>, count: usize, seed: u64) -> Array2<f32> {
    let n = base.nrows();
    let count = count.clamp(1, n);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let train = super::gather(base, &order[..(count * TRAIN_PER_CELL).min(n)]);
    let mut centroids = train.slice(s![..count, ..]).to_owned();
    for _ in 0..KMEANS_ROUNDS {
        let nearest = exact::best(train.view(), centroids.view(), 1, false);
        let mut sums = Array2::<f32>::zeros(centroids.raw_dim());
        let mut sizes = vec![0usize; count];
        for (i, row) in train.outer_iter().enumerate() {
            if let Some(&c) = nearest.of(i).first() {
                sums.row_mut(c as usize).scaled_add(1.0, &row);
                sizes[c as usize] += 1;
            }
        }
        for (c, mut centroid) in centroids.outer_iter_mut().enumerate() {
            let norm = sums.row(c).dot(&sums.row(c)).sqrt();
            // An empty cell keeps its old centroid rather than collapsing to zero.
            if sizes[c] > 0 && norm > 1e-6 {
                centroid.assign(&(&sums.row(c) / norm));
            }
        }
    }
    centroids
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    fn unit_rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rows = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0));
        for mut row in rows.outer_iter_mut() {
            let norm = row.dot(&row).sqrt();
            row /= norm;
        }
        rows
    }

    /// The cell search must find what an exhaustive search finds for near copies, which is
    /// what dedup uses it for: perturbed copies of base rows must come back as their source.
    #[test]
    fn the_cell_search_finds_perturbed_copies_like_brute_force() {
        let d = 32;
        let base = unit_rows(10_192, d, 1);
        let noise = unit_rows(300, d, 2);
        let mut queries = base.slice(s![..300, ..]).to_owned();
        queries.scaled_add(0.15, &noise);
        for mut row in queries.outer_iter_mut() {
            let norm = row.dot(&row).sqrt();
            row /= norm;
        }
        let found = search(queries.view(), base.view(), 3, false, 6, 9);
        let hits = (0..300)
            .filter(|&q| found.of(q).first().map(|&j| j as usize) == Some(q))
            .count();
        assert_eq!(hits, 300);
    }
}
