//! An exact all-pairs table that a rerun can repair instead of searching again.
//!
//! [`Deep`] keeps each row's neighbours a little deeper than asked, and with them a bound: no
//! row missing from the list is more similar than it. When the vectors move (a new PCA basis
//! after a few pictures changed) and rows come and go, [`repair`] rebuilds the table from the
//! old one:
//!
//! - each surviving row has drifted by `eps` (the length of its vector's change), so a pair's
//!   similarity moved by at most `eps_a + eps_b` (unit or zero rows);
//! - the new pictures and the rows that drifted most are "hot": they are searched in full,
//!   and every row is compared with all of them (one matrix product each way);
//! - every other row rescores its old list and takes in its best hot rows; a row whose old
//!   list bounded the rest by `bound` now bounds it by `bound + eps_row + eps_rest + SLACK`
//!   (`eps_rest`: the largest drift among rows that are not hot). Entries above the new bound
//!   are certain: nothing outside the list can come between them. When fewer than the asked
//!   `k` are certain, the row is searched in full.
//!
//! So the result's first `k` entries of every row are exactly those of a full search on the
//! new vectors, bit for bit: every similarity is computed with the row as the query and the
//! other as the base, as the full search computes it (see `exact.rs` on why the block does
//! not matter), and ties go to the lower row in both. Only the entries beyond the certain
//! prefix, and the bounds, can differ from a full search's; they are the table's own
//! bookkeeping and are never reported.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Neighbours, exact};

/// Rounding of the similarities on both sides: a product of two unit vectors of `d` values is
/// off by at most about `d x 6e-8` (6e-6 at 96 dimensions) each time it is computed.
const SLACK: f32 = 3e-5;

/// One row's list (row, similarity; best first) and its bound.
type Listed = (Vec<(u32, f32)>, f32);

/// A same-set neighbour table with a bound per row; see the module doc.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deep {
    pub neighbours: Neighbours,
    /// Per row: no row absent from its list is more similar (`-inf`: the list holds every
    /// other row; `+inf`: nothing is known, the next repair searches the row in full).
    pub bounds: Vec<f32>,
}

/// Work done by [`repair`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Repaired {
    /// Rows searched against every row: the hot ones and those whose list was not certain.
    pub searched: usize,
    /// Hot rows: new pictures and the most drifted.
    pub hot: usize,
    /// Largest drift among the rows that were repaired, not searched.
    pub drift: f32,
}

/// Every row's `depth` most similar other rows, exactly, with their bounds.
pub fn deep(vectors: ArrayView2<f32>, depth: usize) -> Deep {
    let rows = vectors.nrows();
    let depth = depth.min(rows.saturating_sub(1));
    let found = exact::best(vectors, vectors, depth, true);
    let bounds = (0..rows)
        .map(|r| {
            let sims = found.similarities(r);
            if sims.len() < depth {
                f32::INFINITY
            } else if rows - 1 <= depth {
                f32::NEG_INFINITY
            } else {
                sims.last().copied().unwrap_or(f32::INFINITY)
            }
        })
        .collect();
    Deep {
        neighbours: found,
        bounds,
    }
}

impl Deep {
    /// The first `k` of every row, as a full search for `k` gives them (rows short of `k`
    /// padded as the exact search pads them).
    pub fn top(&self, k: usize) -> Neighbours {
        let rows = self.neighbours.rows();
        let k = k.min(self.neighbours.k);
        let mut out = Neighbours::empty(rows, k);
        for r in 0..rows {
            let take = self.neighbours.of(r).len().min(k);
            out.index[r * k..r * k + take].copy_from_slice(&self.neighbours.of(r)[..take]);
            out.similarity[r * k..r * k + take]
                .copy_from_slice(&self.neighbours.similarities(r)[..take]);
            out.filled[r] = take as u32;
        }
        exact::pad(&mut out, true);
        out
    }

    pub fn depth(&self) -> usize {
        self.neighbours.k
    }
}

/// What a repair must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Every row's first `needed` entries exactly as a full search gives them.
    Exact,
    /// Rows whose lists cannot be proven exact keep their rescored old lists (the old
    /// neighbours that remain, with the new pictures among them placed exactly) instead of
    /// being searched: for a warm-started map, whose coordinates are not compared with a
    /// cold run's. Only rows left with fewer than `needed` entries are searched.
    Close,
}

/// The table of `vectors` from `old`, the table of `old_vectors`: `old_of[r]` is the old row
/// of new row `r` (the same picture), `None` for a new picture. Every row's first `needed`
/// entries come out exactly as [`deep`] on `vectors` gives them. `None` when `old` cannot be
/// repaired into a table of the same depth (another depth or width): search in full.
pub fn repair(
    vectors: ArrayView2<f32>,
    old: &Deep,
    old_vectors: ArrayView2<f32>,
    old_of: &[Option<u32>],
    needed: usize,
    want: Want,
) -> Option<(Deep, Repaired)> {
    let rows = vectors.nrows();
    let old_rows = old_vectors.nrows();
    let depth = old.depth();
    let usable = old_of.len() == rows
        && old.neighbours.rows() == old_rows
        && old.bounds.len() == old_rows
        && old_vectors.ncols() == vectors.ncols()
        && needed <= depth
        && depth == depth.min(rows.saturating_sub(1))
        && old_of.iter().flatten().all(|&o| (o as usize) < old_rows);
    if !usable || depth == 0 {
        return None;
    }
    let mut new_of_old = vec![None; old_rows];
    for (r, &o) in old_of.iter().enumerate() {
        if let Some(o) = o {
            new_of_old[o as usize] = Some(r as u32);
        }
    }
    // The old vectors turned to face the new ones: similarities do not change under a
    // rotation, and a new PCA basis is mostly the old one turned within its span.
    let (turned, skew) = turned(vectors, old_vectors, old_of);
    let drift: Vec<f32> = (0..rows)
        .into_par_iter()
        .map(|r| match old_of[r] {
            Some(o) => {
                let d: f64 = vectors
                    .row(r)
                    .iter()
                    .zip(turned.row(o as usize))
                    .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                    .sum();
                d.sqrt() as f32
            }
            None => f32::INFINITY,
        })
        .collect();

    // Hot: the new pictures, and the most drifted rows (which would loosen every bound).
    let mut by_drift: Vec<usize> = (0..rows).collect();
    by_drift.sort_by(|&a, &b| drift[b].total_cmp(&drift[a]).then(a.cmp(&b)));
    let new = drift.iter().filter(|d| d.is_infinite()).count();
    let hot_count = (new + hot_extra(rows)).min(rows);
    let mut hot: Vec<usize> = by_drift[..hot_count].to_vec();
    hot.sort_unstable();
    let rest_drift = by_drift.get(hot_count).map_or(0.0, |&r| drift[r]);
    let mut is_hot = vec![false; rows];
    for &h in &hot {
        is_hot[h] = true;
    }
    let hot_vectors = super::gather(vectors, &hot);
    // Every row's best hot rows (as indices into `hot`), the row as the query.
    // Only `needed` of them: a hot row beyond those raises the row's bound to the last one
    // kept, which lies below the row's `needed` best unless the hot rows crowd it (then the
    // row is searched). Keeping `depth` cost more in selection than the product itself.
    let hot_depth = needed.min(hot.len());
    let reverse = exact::best(vectors, hot_vectors.view(), hot_depth, false);

    // Each row not hot: its old list rescored plus its best hot rows, or None to search.
    let repaired: Vec<Option<Listed>> = (0..rows)
        .into_par_iter()
        .map(|r| {
            if is_hot[r] {
                return None;
            }
            let o = old_of[r]? as usize;
            let old_bound = old.bounds[o];
            if old_bound == f32::INFINITY {
                return None;
            }
            let survivors: Vec<u32> = old
                .neighbours
                .of(o)
                .iter()
                .filter_map(|&j| new_of_old[j as usize])
                .filter(|&j| !is_hot[j as usize])
                .collect();
            let mut list: Vec<(u32, f32)> = Vec::with_capacity(survivors.len() + hot_depth);
            super::similarities_of(vectors, r, &survivors, &mut list);
            let mut bound = old_bound + drift[r] + rest_drift + skew + SLACK;
            let best_hot = reverse.similarities(r);
            if best_hot.len() < hot_depth {
                return None;
            }
            if hot.len() > hot_depth
                && let Some(&last) = best_hot.last()
            {
                bound = bound.max(last);
            }
            list.extend(
                reverse
                    .of(r)
                    .iter()
                    .map(|&h| hot[h as usize] as u32)
                    .zip(best_hot.iter().copied()),
            );
            list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            if list.len() > depth {
                bound = bound.max(list[depth].1);
                list.truncate(depth);
            }
            let certain = list.iter().take_while(|e| e.1 > bound).count();
            match want {
                Want::Exact => (certain >= needed).then_some((list, bound)),
                // Not a bound any more: a later repair from this table searches the row.
                Want::Close if certain < needed => {
                    (list.len() >= needed).then_some((list, f32::INFINITY))
                }
                Want::Close => Some((list, bound)),
            }
        })
        .collect();

    // The hot rows and the uncertain ones, searched in full.
    let search: Vec<usize> = (0..rows).filter(|&r| repaired[r].is_none()).collect();
    let searched = full_rows(vectors, &search, depth);
    let mut table = Deep {
        neighbours: Neighbours::empty(rows, depth),
        bounds: vec![f32::INFINITY; rows],
    };
    let mut put = |r: usize, list: &[(u32, f32)], bound: f32| {
        for (slot, &(j, s)) in list.iter().enumerate() {
            table.neighbours.index[r * depth + slot] = j;
            table.neighbours.similarity[r * depth + slot] = s;
        }
        table.neighbours.filled[r] = list.len() as u32;
        table.bounds[r] = bound;
    };
    for (r, entry) in repaired.iter().enumerate() {
        if let Some((list, bound)) = entry {
            put(r, list, *bound);
        }
    }
    for (&r, (list, bound)) in search.iter().zip(&searched) {
        put(r, list, *bound);
    }
    let drift = (0..rows)
        .filter(|&r| repaired[r].is_some())
        .map(|r| drift[r])
        .fold(0f32, f32::max);
    Some((
        table,
        Repaired {
            searched: search.len(),
            hot: hot.len(),
            drift,
        },
    ))
}

/// `old_vectors` times the orthogonal matrix that brings them closest to their rows in
/// `vectors` (orthogonal Procrustes: `R = M (M^T M)^(-1/2)` for `M` the new rows' products
/// with the old), and a bound on how far the turn is from a true rotation: turned rows'
/// products differ from the old ones by at most this (and their lengths from 1 as much).
fn turned(
    vectors: ArrayView2<f32>,
    old_vectors: ArrayView2<f32>,
    old_of: &[Option<u32>],
) -> (Array2<f32>, f32) {
    let d = vectors.ncols();
    let (new_rows, old_rows): (Vec<usize>, Vec<usize>) = old_of
        .iter()
        .enumerate()
        .filter_map(|(r, o)| o.map(|o| (r, o as usize)))
        .unzip();
    let a = super::gather(vectors, &new_rows);
    let b = super::gather(old_vectors, &old_rows);
    // Row r of the result is R applied to old row r: turned = old x R^T, R = M (M^T M)^-1/2,
    // M = sum of new_r old_r^T = a^T b. M only chooses the turn (R is orthogonal whatever M
    // is, up to the `skew` measured below), so f32 sums are enough for it.
    let m = a.t().dot(&b).mapv(f64::from);
    drop((a, b));
    let (values, w) = jacobi_eigen(m.t().dot(&m));
    let top = values.iter().copied().fold(0f64, f64::max);
    let mut inverse_root = Array2::<f64>::zeros((d, d));
    for (c, &value) in values.iter().enumerate() {
        if value > top * 1e-12 && value > 0.0 {
            let column = w.column(c);
            let scale = value.sqrt().recip();
            for i in 0..d {
                for j in 0..d {
                    inverse_root[[i, j]] += column[i] * column[j] * scale;
                }
            }
        }
    }
    let rotation = m.dot(&inverse_root);
    let gap = rotation.t().dot(&rotation) - Array2::<f64>::eye(d);
    // The Frobenius norm bounds the spectral one; doubled for the rounding of the product.
    let skew = 2.0 * gap.iter().map(|v| v * v).sum::<f64>().sqrt() + 1e-6;
    let turned = old_vectors.dot(&rotation.t().mapv(|v| v as f32));
    (turned, skew as f32)
}

/// Rows besides the new pictures searched in full because they drifted most: enough to keep
/// a rare large drift from loosening every other row's bound, few enough to cost little.
fn hot_extra(rows: usize) -> usize {
    (rows / 200).clamp(16, 2_048)
}

/// The full lists of `which` (rows of `vectors`) at `depth`, each with its bound, as
/// [`deep`] would give them.
fn full_rows(
    vectors: ArrayView2<f32>,
    which: &[usize],
    depth: usize,
) -> Vec<(Vec<(u32, f32)>, f32)> {
    if which.is_empty() {
        return Vec::new();
    }
    let rows = vectors.nrows();
    let queries: Array2<f32> = super::gather(vectors, which);
    // One more than asked: the row itself is among them (unless tied copies outrank it).
    let found = exact::best(queries.view(), vectors, (depth + 1).min(rows), false);
    which
        .iter()
        .enumerate()
        .map(|(q, &r)| {
            let all: Vec<(u32, f32)> = found
                .of(q)
                .iter()
                .copied()
                .zip(found.similarities(q).iter().copied())
                .collect();
            let complete = all.len() == (depth + 1).min(rows);
            let others: Vec<(u32, f32)> =
                all.iter().copied().filter(|e| e.0 as usize != r).collect();
            let bound = if !complete {
                f32::INFINITY
            } else if rows - 1 <= depth {
                f32::NEG_INFINITY
            } else if others.len() > depth {
                others[depth].1
            } else {
                all.last().map_or(f32::INFINITY, |e| e.1)
            };
            let mut list = others;
            list.truncate(depth);
            (list, bound)
        })
        .collect()
}

/// Eigenvalues and eigenvectors (columns) of a small symmetric matrix by cyclic Jacobi (the
/// turn of [`repair`], and the PCA's small projected problem).
pub fn jacobi_eigen(mut a: Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut v = Array2::<f64>::eye(n);
    // Done when the off-diagonal mass is a rounding error of the whole: relative, so that a
    // matrix of large entries (the turn's, ~10^9) stops after as few sweeps as one of small.
    let whole: f64 = a.iter().map(|v| v * v).sum();
    for _sweep in 0..60 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]] * a[[i, j]])
            .sum();
        if off <= 1e-26 * whole {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[[p, q]];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[[k, p]];
                    let akq = a[[k, q]];
                    a[[k, p]] = c * akp - s * akq;
                    a[[k, q]] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[[p, k]];
                    let aqk = a[[q, k]];
                    a[[p, k]] = c * apk - s * aqk;
                    a[[q, k]] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[[k, p]];
                    let vkq = v[[k, q]];
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    let values = (0..n).map(|i| a[[i, i]]).collect();
    (values, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn unit_rows(rows: &mut Array2<f32>) {
        for mut row in rows.rows_mut() {
            let norm = row.dot(&row).sqrt();
            row /= norm;
        }
    }

    /// Old vectors, the new ones (every old row but the first five, turned and nudged, then
    /// ten new rows), and the old row of each new one.
    fn moved(seed: u64) -> (Array2<f32>, Array2<f32>, Vec<Option<u32>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (rows, dims) = (600, 8);
        let mut old = Array2::from_shape_fn((rows, dims), |_| rng.random_range(-1.0f32..1.0));
        unit_rows(&mut old);
        // A rotation in the first plane, so that drift measured without turning would be large.
        let (c, s) = (0.6f32, 0.8f32);
        let mut new_rows = Vec::new();
        let mut old_of = Vec::new();
        for r in 5..rows {
            let mut v = old.row(r).to_vec();
            let (a, b) = (v[0], v[1]);
            v[0] = c * a - s * b;
            v[1] = s * a + c * b;
            for x in v.iter_mut() {
                *x += rng.random_range(-0.002f32..0.002);
            }
            new_rows.push(v);
            old_of.push(Some(r as u32));
        }
        for _ in 0..10 {
            new_rows.push((0..dims).map(|_| rng.random_range(-1.0f32..1.0)).collect());
            old_of.push(None);
        }
        let mut new = Array2::from_shape_vec(
            (new_rows.len(), dims),
            new_rows.into_iter().flatten().collect(),
        )
        .unwrap();
        unit_rows(&mut new);
        (old, new, old_of)
    }

    #[test]
    fn a_repaired_table_gives_exactly_the_full_search_and_searches_few_rows() {
        for seed in 0..3 {
            let (old, new, old_of) = moved(seed);
            let reference = deep(old.view(), 30);
            let (table, work) =
                repair(new.view(), &reference, old.view(), &old_of, 10, Want::Exact).unwrap();
            let full = deep(new.view(), 30).top(10);
            let got = table.top(10);
            for r in 0..new.nrows() {
                assert_eq!(got.of(r), full.of(r), "row {r}");
                let bits = |s: &[f32]| s.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(got.similarities(r)), bits(full.similarities(r)));
            }
            assert!(work.searched < new.nrows() / 2, "{work:?}");
            assert!(work.searched >= 10, "the new rows are searched: {work:?}");
        }
    }

    /// Drift larger than the lists' gaps: an exact repair must search many rows; a close one
    /// searches fewer, and its lists are still nearly the full search's.
    #[test]
    fn a_close_repair_searches_less_and_stays_near_the_full_search() {
        let (old, mut new, old_of) = moved(11);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        new.mapv_inplace(|v| v + rng.random_range(-0.03f32..0.03));
        unit_rows(&mut new);
        let reference = deep(old.view(), 30);
        let (_, exact) =
            repair(new.view(), &reference, old.view(), &old_of, 10, Want::Exact).unwrap();
        let (close, work) =
            repair(new.view(), &reference, old.view(), &old_of, 10, Want::Close).unwrap();
        assert!(work.searched < exact.searched, "{work:?} vs {exact:?}");
        let full = deep(new.view(), 30).top(10);
        let got = close.top(10);
        let mut shared = 0;
        for r in 0..new.nrows() {
            assert_eq!(got.of(r).len(), 10, "row {r} is complete");
            shared += got.of(r).iter().filter(|j| full.of(r).contains(j)).count();
        }
        let recall = shared as f64 / (10 * new.nrows()) as f64;
        assert!(recall > 0.9, "recall {recall}");
    }

    #[test]
    fn a_table_of_another_depth_or_width_is_not_repaired() {
        let (old, new, old_of) = moved(7);
        let reference = deep(old.view(), 30);
        assert!(repair(new.view(), &reference, old.view(), &old_of, 31, Want::Exact).is_none());
        let narrow = new.slice(ndarray::s![.., ..4]).to_owned();
        assert!(
            repair(
                narrow.view(),
                &reference,
                old.view(),
                &old_of,
                10,
                Want::Exact
            )
            .is_none()
        );
    }
}
