//! The exact back end: every query against every base row, as blocked matrix products.
//!
//! A block of `QUERY_BLOCK` queries against a chunk of `BASE_CHUNK` base rows is one matrix
//! product (ndarray's, SIMD-tuned), and each query keeps its best `k` in a small sorted list;
//! query blocks run in parallel. Cost: `queries x base x dims` multiply-adds.
//!
//! The blocking never changes a similarity. ndarray multiplies f32 matrices with
//! matrixmultiply's `sgemm`, which computes each entry as one dot product, accumulated over
//! the dimensions in chunks whose size depends only on the CPU's kernel, never on how many
//! rows or columns the product has. So a pair scores the same bits here, in a cell of the
//! IVF, or in dedup's old 2,048-query blocks against a whole cell, which is what keeps
//! dedup's candidates and embed's neighbours identical to the searches they replaced
//! (`a_similarity_does_not_depend_on_the_block_that_computed_it` checks it).
//!
//! Selection: a row enters a list only when strictly more similar than the list's last
//! entry, and goes after the entries at least as similar, so ties go to the lower base row
//! and NaN never enters. Dedup's old selection admitted NaN; its descriptors are never NaN
//! (zero-length ones are zeroed, not divided), so that difference cannot show.

use ndarray::{ArrayView2, Axis, s};
use rayon::prelude::*;

use super::Neighbours;

const QUERY_BLOCK: usize = 128;
const BASE_CHUNK: usize = 1024;

/// The exact search: [`best`], then rows short of `k` padded. `k` is at most the rows of
/// `base` available (less one with `same_set`).
pub(super) fn search(
    queries: ArrayView2<f32>,
    base: ArrayView2<f32>,
    k: usize,
    same_set: bool,
) -> Neighbours {
    let mut found = best(queries, base, k, same_set);
    pad(&mut found, same_set);
    found
}

/// Each query's up to `k` most similar base rows, unpadded: a row is short when fewer than
/// `k` base rows were comparable (fewer rows than `k`, or NaN similarities).
pub(super) fn best(
    queries: ArrayView2<f32>,
    base: ArrayView2<f32>,
    k: usize,
    same_set: bool,
) -> Neighbours {
    let rows = queries.nrows();
    let mut found = Neighbours::empty(rows, k);
    if k == 0 || rows == 0 {
        return found;
    }
    found
        .index
        .par_chunks_mut(QUERY_BLOCK * k)
        .zip(found.similarity.par_chunks_mut(QUERY_BLOCK * k))
        .enumerate()
        .for_each(|(block, (best_index, best_sim))| {
            let start = block * QUERY_BLOCK;
            let end = (start + QUERY_BLOCK).min(rows);
            let query = queries.slice(s![start..end, ..]);
            for (chunk, candidate) in base.axis_chunks_iter(Axis(0), BASE_CHUNK).enumerate() {
                let offset = chunk * BASE_CHUNK;
                let sims = query.dot(&candidate.t());
                for (r, row) in sims.axis_iter(Axis(0)).enumerate() {
                    let q = start + r;
                    let top_index = &mut best_index[r * k..(r + 1) * k];
                    let top_sim = &mut best_sim[r * k..(r + 1) * k];
                    let mut threshold = top_sim[k - 1];
                    for (c, &sim) in row.iter().enumerate() {
                        // NaN never enters: the comparison is false.
                        if sim > threshold {
                            let candidate_index = offset + c;
                            if same_set && candidate_index == q {
                                continue;
                            }
                            insert(top_index, top_sim, candidate_index as u32, sim);
                            threshold = top_sim[k - 1];
                        }
                    }
                }
            }
        });
    // Entries are sorted, so the filled ones are the finite prefix.
    for (filled, sims) in found.filled.iter_mut().zip(found.similarity.chunks(k)) {
        *filled = sims.partition_point(|&s| s > f32::NEG_INFINITY) as u32;
    }
    found
}

/// Rows that found fewer than `k` comparable neighbours get arbitrary distinct other rows
/// at similarity 0, so that every row is well formed.
pub(super) fn pad(found: &mut Neighbours, same_set: bool) {
    let k = found.k;
    for q in 0..found.rows() {
        let mut next = 0u32;
        for slot in found.filled[q] as usize..k {
            while (same_set && next as usize == q)
                || found.index[q * k..q * k + slot].contains(&next)
            {
                next += 1;
            }
            found.index[q * k + slot] = next;
            found.similarity[q * k + slot] = 0.0;
            next += 1;
        }
        found.filled[q] = k as u32;
    }
}

/// Inserts into a list sorted by descending similarity, dropping the last entry.
fn insert(index: &mut [u32], sim: &mut [f32], new_index: u32, new_sim: f32) {
    let mut at = sim.len() - 1;
    while at > 0 && sim[at - 1] < new_sim {
        sim[at] = sim[at - 1];
        index[at] = index[at - 1];
        at -= 1;
    }
    sim[at] = new_sim;
    index[at] = new_index;
}
