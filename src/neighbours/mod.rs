//! Nearest neighbours by cosine similarity: the one search behind dedup's candidate pairs and
//! embed's neighbours, so that a faster or incremental search changes one place.
//!
//! Rows are unit vectors (or zero), so a dot product is the cosine similarity and a block of
//! similarities is one matrix product. [`search`] gives every query its `k` most similar
//! base rows, best first, in one [`Neighbours`] table. Two back ends:
//!
//! - [`Method::Exact`] (`exact.rs`): every query against every base row in blocks.
//!   `queries x base x dims` multiply-adds: about 2 x 10^11 for CIFAR-10's 60,000 images at
//!   64 dimensions, seconds on two cores, but it grows with the square of the dataset.
//!   Exact: the result is the true top `k`, ties going to the lower base row.
//! - [`Method::Ivf`] (`ivf.rs`): an inverted file over spherical k-means cells, about
//!   `N x sqrt(N) x dims` (~250 times less than exact at 60,000 rows, ~1,000 at a million).
//!   Approximate: a query sees only the base rows of its `probes` nearest cells, so it misses
//!   a true neighbour whose cell it did not probe, and its row can then be shorter than `k`
//!   (when the probed cells hold fewer rows) or hold a less similar row in place of the missed
//!   one. Among equal similarities it is not "lowest row first": which of two tied rows is
//!   kept depends on the cells. Similarities it does return are exactly the exact search's.
//!   Built for near copies, which sit far closer to each other than to anything else and so
//!   share a cell or a neighbouring one.
//! - [`Method::Auto`]: exact below a base size, IVF from there on.
//!
//! Invariants: a similarity is the same bits whichever back end, block or cell computed it
//! (see `exact.rs`); NaN similarities (non-finite input) never enter a row; rows are sorted by
//! descending similarity; with `same_set`, a query never gets itself. Nothing here is random
//! except the IVF's training sample, seeded by the caller.

pub mod deep;
mod exact;
mod ivf;

use ndarray::ArrayView2;

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    pub method: Method,
    /// Query `i` and base row `i` are the same point (all pairs within one set): a query is
    /// never its own neighbour. Queries and base must then have the same rows.
    pub same_set: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Every query against every base row. Rows always hold exactly `k` neighbours: a row
    /// that found fewer comparable ones (NaN similarities) is padded with distinct arbitrary
    /// base rows at similarity 0, so that it is well formed.
    Exact,
    /// Each query against the base rows in its `probes` nearest of about sqrt(N) k-means
    /// cells, trained on a sample drawn with `seed`. Rows are never padded.
    Ivf { probes: usize, seed: u64 },
    /// [`Method::Exact`] when the base has fewer than `exact_below` rows, else [`Method::Ivf`].
    Auto {
        exact_below: usize,
        probes: usize,
        seed: u64,
    },
}

/// Every query's most similar base rows, best first: row-major `queries x k` slots, of which
/// row `q` fills the first [`Neighbours::of`]`(q).len()` (all `k` unless the IVF found fewer).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Neighbours {
    k: usize,
    index: Vec<u32>,
    similarity: Vec<f32>,
    /// Filled slots per row, at most `k`.
    filled: Vec<u32>,
}

impl Neighbours {
    /// `rows` empty rows of `k` slots; a back end fills them.
    fn empty(rows: usize, k: usize) -> Self {
        Neighbours {
            k,
            index: vec![0; rows * k],
            similarity: vec![f32::NEG_INFINITY; rows * k],
            filled: vec![0; rows],
        }
    }

    /// Neighbours per row: the `k` asked for, capped at the base rows available.
    pub fn k(&self) -> usize {
        self.k
    }

    /// One per query.
    pub fn rows(&self) -> usize {
        self.filled.len()
    }

    /// Row `row`'s base rows, most similar first.
    pub fn of(&self, row: usize) -> &[u32] {
        &self.index[row * self.k..row * self.k + self.filled[row] as usize]
    }

    /// Their similarities, in the same order.
    pub fn similarities(&self, row: usize) -> &[f32] {
        &self.similarity[row * self.k..row * self.k + self.filled[row] as usize]
    }
}

/// The `k` most similar rows of `base` to each row of `queries`, by `search`. `k` is capped
/// at the rows of `base` (less the query itself with `same_set`).
pub fn search(
    queries: ArrayView2<f32>,
    base: ArrayView2<f32>,
    k: usize,
    search: &Search,
) -> Neighbours {
    debug_assert_eq!(queries.ncols(), base.ncols());
    debug_assert!(!search.same_set || queries.nrows() == base.nrows());
    let available = base.nrows().saturating_sub(usize::from(search.same_set));
    let k = k.min(available);
    if k == 0 || queries.nrows() == 0 {
        return Neighbours::empty(queries.nrows(), k);
    }
    let ivf = match search.method {
        Method::Exact => None,
        Method::Ivf { probes, seed } => Some((probes, seed)),
        Method::Auto {
            exact_below,
            probes,
            seed,
        } => (base.nrows() >= exact_below).then_some((probes, seed)),
    };
    match ivf {
        None => exact::search(queries, base, k, search.same_set),
        Some((probes, seed)) => ivf::search(queries, base, k, search.same_set, probes, seed),
    }
}

/// Every similarity of `queries` to `base` (`queries x base`), computed exactly as [`search`]
/// computes it, to the bit: for work that must agree with an earlier search, such as dedup's
/// incremental update of its candidate lists.
pub fn similarities(queries: ArrayView2<f32>, base: ArrayView2<f32>) -> ndarray::Array2<f32> {
    queries.dot(&base.t())
}

/// The similarities of row `query` of `vectors` to its rows `others`, appended to `out`
/// as `(row, similarity)`: the same bits as [`search`] gives each pair, without a matrix
/// product per row (which costs ~100 times the arithmetic in packing and dispatch for one
/// row against a few dozen: measured with perf on CIFAR-10's repair).
///
/// matrixmultiply computes each entry of a product as one chain of multiply-adds over the
/// dimensions, from zero, in order, in chunks of its `kc` (256 for f32); its FMA kernel,
/// chosen when the CPU has FMA and AVX2, fuses each step. Up to 256 dimensions on such a CPU
/// the same chains are computed here, eight at a time (independent chains, so the CPU
/// overlaps them); otherwise each pair falls back to a 1 x 1 product.
pub fn similarities_of(
    vectors: ArrayView2<f32>,
    query: usize,
    others: &[u32],
    out: &mut Vec<(u32, f32)>,
) {
    let x = vectors.row(query);
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = x.as_slice()
        && x.len() <= 256
        && vectors.is_standard_layout()
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("avx2")
    {
        let all = vectors
            .as_slice()
            .expect("a standard-layout matrix is one slice");
        let dims = x.len();
        let row = |j: u32| &all[j as usize * dims..(j as usize + 1) * dims];
        for group in others.chunks(LANES) {
            let mut rows = [x; LANES];
            for (slot, &j) in rows.iter_mut().zip(group) {
                *slot = row(j);
            }
            // SAFETY: the CPU has FMA (checked just above).
            let sums = unsafe { fused_chains(x, &rows) };
            out.extend(group.iter().copied().zip(sums));
        }
        return;
    }
    for &j in others {
        let y = vectors.row(j as usize);
        let sim = x
            .to_shape((1, x.len()))
            .expect("a row in its own shape")
            .dot(&y.to_shape((y.len(), 1)).expect("a row as a column"))[[0, 0]];
        out.push((j, sim));
    }
}

const LANES: usize = 8;

/// `LANES` chains `acc = x[k] * y[k] + acc` (fused), from zero, in order of `k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn fused_chains(x: &[f32], ys: &[&[f32]; LANES]) -> [f32; LANES] {
    let mut acc = [0f32; LANES];
    for (k, &a) in x.iter().enumerate() {
        for (sum, y) in acc.iter_mut().zip(ys) {
            *sum = a.mul_add(y[k], *sum);
        }
    }
    acc
}

/// Rows `index` of `vectors`, in that order: the same values and layout as ndarray's
/// `select(Axis(0), index)` (so every product with it is the same to the bit), without its
/// general path, which builds the copy by repeated
/// appends (several times slower, measured with perf on CIFAR-10).
pub fn gather(vectors: ArrayView2<f32>, index: &[usize]) -> ndarray::Array2<f32> {
    let dims = vectors.ncols();
    let mut values = Vec::with_capacity(index.len() * dims);
    for &i in index {
        let row = vectors.row(i);
        match row.as_slice() {
            Some(row) => values.extend_from_slice(row),
            None => values.extend(row.iter().copied()),
        }
    }
    ndarray::Array2::from_shape_vec((index.len(), dims), values)
        .expect("index.len() rows of dims values")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Axis};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const EXACT: Search = Search {
        method: Method::Exact,
        same_set: false,
    };

    fn normalise(mut rows: Array2<f32>) -> Array2<f32> {
        for mut row in rows.axis_iter_mut(Axis(0)) {
            let norm = row.dot(&row).sqrt();
            row /= norm;
        }
        rows
    }

    fn random_rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        normalise(Array2::from_shape_fn((n, d), |_| {
            rng.random_range(-1.0f32..1.0)
        }))
    }

    /// `clusters` random centres, each point one of them plus a little noise.
    fn clustered_rows(n: usize, d: usize, clusters: usize, seed: u64) -> Array2<f32> {
        let centres = random_rows(clusters, d, seed);
        let noise = random_rows(n, d, seed + 1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 2);
        let mut rows = Array2::zeros((n, d));
        for (i, mut row) in rows.axis_iter_mut(Axis(0)).enumerate() {
            row.assign(&centres.row(rng.random_range(0..clusters)));
            row.scaled_add(0.3, &noise.row(i));
        }
        normalise(rows)
    }

    /// Every pair by a plain loop: (base row, similarity), best first, ties to the lower row.
    fn brute_force(queries: &Array2<f32>, base: &Array2<f32>, q: usize) -> Vec<(u32, f32)> {
        let mut all: Vec<(u32, f32)> = (0..base.nrows())
            .map(|b| (b as u32, queries.row(q).dot(&base.row(b))))
            .collect();
        all.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        all
    }

    #[test]
    fn exact_search_matches_brute_force() {
        // Sizes straddle the query and candidate blocks.
        let queries = random_rows(300, 7, 1);
        let base = random_rows(2_500, 7, 2);
        let found = search(queries.view(), base.view(), 5, &EXACT);
        assert_eq!((found.rows(), found.k()), (300, 5));
        for q in 0..300 {
            let want = brute_force(&queries, &base, q);
            assert_eq!(
                found.of(q),
                want[..5].iter().map(|p| p.0).collect::<Vec<_>>()
            );
            for (got, want) in found.similarities(q).iter().zip(&want) {
                // The loop sums in another order than the matrix product.
                assert!((got - want.1).abs() < 1e-5, "{got} vs {}", want.1);
            }
        }
    }

    /// Dedup's and embed's numbers may not move when they share one search: a similarity must
    /// not depend on which block or cell it was computed in.
    #[test]
    fn a_similarity_does_not_depend_on_the_block_that_computed_it() {
        let rows = random_rows(3_000, 64, 3);
        let whole = search(rows.view(), rows.view(), 3, &EXACT);
        for start in [0, 1, 129, 2_999] {
            let part = rows.slice(ndarray::s![start..start + 1, ..]);
            let alone = search(part, rows.view(), 3, &EXACT);
            assert_eq!(alone.of(0), whole.of(start));
            let bits = |s: &[f32]| s.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(alone.similarities(0)), bits(whole.similarities(start)));
        }
    }

    /// Dedup's incremental update compares similarities it computes alone with thresholds
    /// a whole search computed: the two must be the same bits.
    #[test]
    fn similarities_are_the_searchs_bits() {
        let rows = random_rows(2_000, 192, 14);
        let whole = search(rows.view(), rows.view(), 4, &EXACT);
        for q in [0, 7, 1_999] {
            for (&j, &sim) in whole.of(q).iter().zip(whole.similarities(q)) {
                let alone = similarities(
                    rows.slice(ndarray::s![q..q + 1, ..]),
                    rows.slice(ndarray::s![j as usize..j as usize + 1, ..]),
                );
                assert_eq!(alone[[0, 0]].to_bits(), sim.to_bits());
            }
        }
    }

    /// The repair rescores old lists one pair at a time; its similarities must be the bits
    /// a whole search gives, at any width (the fused path up to 256, the product beyond).
    #[test]
    fn one_similarity_is_the_searchs_bits() {
        for dims in [3, 100, 256, 300] {
            let rows = random_rows(700, dims, dims as u64);
            for q in [0, 9, 699] {
                // Eleven: one group of eight and a short one.
                let whole = search(
                    rows.slice(ndarray::s![q..q + 1, ..]),
                    rows.view(),
                    11,
                    &EXACT,
                );
                let mut alone = Vec::new();
                similarities_of(rows.view(), q, whole.of(0), &mut alone);
                assert_eq!(alone.len(), 11);
                for ((&j, &sim), (k, got)) in
                    whole.of(0).iter().zip(whole.similarities(0)).zip(alone)
                {
                    assert_eq!(
                        (k, got.to_bits()),
                        (j, sim.to_bits()),
                        "{dims} dims, {q} and {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn gather_copies_the_rows_asked_in_order() {
        let rows = random_rows(50, 7, 2);
        let index = [4, 0, 4, 49];
        assert_eq!(gather(rows.view(), &index), rows.select(Axis(0), &index));
        let columns = rows.t();
        let picked = gather(columns, &[6, 1]);
        assert_eq!(picked, columns.select(Axis(0), &[6, 1]));
    }

    #[test]
    fn exact_ties_go_to_the_lower_row() {
        let base = Array2::from_shape_fn((6, 2), |(i, c)| if c == i % 2 { 1.0 } else { 0.0 });
        let query = Array2::from_shape_vec((1, 2), vec![1.0, 0.0]).unwrap();
        let found = search(query.view(), base.view(), 2, &EXACT);
        assert_eq!(found.of(0), [0, 2]);
    }

    #[test]
    fn the_ivf_recalls_the_exact_neighbours_on_clustered_data() {
        let rows = clustered_rows(12_000, 16, 60, 4);
        let k = 10;
        let all_pairs = |method| {
            search(
                rows.view(),
                rows.view(),
                k,
                &Search {
                    method,
                    same_set: true,
                },
            )
        };
        let exact = all_pairs(Method::Exact);
        let ivf = all_pairs(Method::Ivf { probes: 6, seed: 5 });
        let mut hits = 0;
        for q in 0..rows.nrows() {
            // What both found, both scored to the bit, though the IVF multiplied other blocks.
            for (j, sim) in ivf.of(q).iter().zip(ivf.similarities(q)) {
                if let Some(at) = exact.of(q).iter().position(|e| e == j) {
                    assert_eq!(sim.to_bits(), exact.similarities(q)[at].to_bits());
                    hits += 1;
                }
            }
        }
        let recall = hits as f64 / (rows.nrows() * k) as f64;
        assert!(recall > 0.9, "recall {recall}");
    }

    #[test]
    fn auto_switches_to_the_ivf_at_its_threshold() {
        let rows = clustered_rows(1_000, 8, 10, 6);
        let auto = |exact_below| Search {
            method: Method::Auto {
                exact_below,
                probes: 1,
                seed: 7,
            },
            same_set: true,
        };
        let exact = Search {
            method: Method::Exact,
            same_set: true,
        };
        let ivf = Search {
            method: Method::Ivf { probes: 1, seed: 7 },
            same_set: true,
        };
        let run = |how: &Search| search(rows.view(), rows.view(), 4, how);
        assert_eq!(run(&auto(1_001)), run(&exact));
        assert_eq!(run(&auto(1_000)), run(&ivf));
        // One probe of ~32 cells misses some neighbours, so the two really differ.
        assert_ne!(run(&ivf), run(&exact));
    }

    #[test]
    fn same_set_never_returns_the_query_itself() {
        // Duplicated rows: each row's copy ties with itself at similarity 1.
        let half = random_rows(5_000, 4, 8);
        let rows = ndarray::concatenate(Axis(0), &[half.view(), half.view()]).unwrap();
        for method in [Method::Exact, Method::Ivf { probes: 3, seed: 9 }] {
            let how = Search {
                method,
                same_set: true,
            };
            let found = search(rows.view(), rows.view(), 3, &how);
            for q in 0..rows.nrows() {
                assert!(!found.of(q).contains(&(q as u32)), "{method:?} row {q}");
            }
        }
    }

    #[test]
    fn k_larger_than_the_base_is_capped() {
        let queries = random_rows(4, 3, 10);
        let base = random_rows(3, 3, 11);
        let found = search(queries.view(), base.view(), 10, &EXACT);
        assert_eq!(found.k(), 3);
        for q in 0..4 {
            let mut got = found.of(q).to_vec();
            got.sort_unstable();
            assert_eq!(got, [0, 1, 2]);
        }
        let within = Search {
            method: Method::Ivf { probes: 2, seed: 1 },
            same_set: true,
        };
        let found = search(base.view(), base.view(), 10, &within);
        assert_eq!(found.k(), 2);
        assert!((0..3).all(|q| found.of(q).len() == 2));
    }

    #[test]
    fn empty_inputs_give_empty_rows() {
        let none = Array2::<f32>::zeros((0, 3));
        let some = random_rows(5, 3, 12);
        for method in [Method::Exact, Method::Ivf { probes: 2, seed: 1 }] {
            let how = Search {
                method,
                same_set: false,
            };
            let found = search(some.view(), none.view(), 4, &how);
            assert_eq!((found.rows(), found.k()), (5, 0));
            assert!((0..5).all(|q| found.of(q).is_empty() && found.similarities(q).is_empty()));
            let found = search(none.view(), some.view(), 4, &how);
            assert_eq!(found.rows(), 0);
            assert_eq!(search(some.view(), some.view(), 0, &how).k(), 0);
        }
        // A single point has no neighbour but itself.
        let one = Array2::<f32>::ones((1, 3));
        let within = Search {
            method: Method::Exact,
            same_set: true,
        };
        assert_eq!(search(one.view(), one.view(), 5, &within).k(), 0);
    }

    #[test]
    fn exact_rows_without_comparable_neighbours_are_padded_with_distinct_other_rows() {
        let mut rows = random_rows(6, 3, 13);
        rows.row_mut(2).fill(f32::NAN);
        let within = Search {
            method: Method::Exact,
            same_set: true,
        };
        let found = search(rows.view(), rows.view(), 3, &within);
        assert_eq!(found.of(2), [0, 1, 3]);
        assert_eq!(found.similarities(2), [0.0, 0.0, 0.0]);
        for q in 0..6 {
            let mut row = found.of(q).to_vec();
            row.sort_unstable();
            row.dedup();
            assert_eq!(row.len(), 3);
            assert!(!row.contains(&(q as u32)));
        }
    }
}
