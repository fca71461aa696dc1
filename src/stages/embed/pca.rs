//! From stored byte vectors to the compact vectors every later step compares: standardise
//! each value, give each block of the vector its share of the variance, reduce by PCA, and
//! scale each row to unit length (so a dot product is the cosine similarity).
//!
//! PCA is fitted on a seeded subsample (the covariance of 12,000 images is as good as that
//! of 60,000 for 100 components) by subspace iteration on the covariance, followed by an
//! exact eigen-decomposition (cyclic Jacobi) of the small projected matrix. ndarray's
//! matrix product does the heavy part; no LAPACK is needed.

use ndarray::{Array1, Array2, ArrayView2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::features::Block;
use crate::neighbours::deep::jacobi_eigen;

/// Rows used to fit the PCA at most.
const FIT_ROWS: usize = 12_000;
/// Subspace-iteration steps; the leading 100 components of image features settle in fewer.
const ITERATIONS: usize = 12;
/// Extra directions carried along so that the last wanted components converge too.
const OVERSAMPLE: usize = 16;

/// The reduced vectors: `rows x components`, each row of unit length (or zero).
pub struct Reduced {
    pub vectors: Array2<f32>,
    /// Share of the (weighted) variance the components keep.
    pub explained: f64,
}

/// A stored feature value: a byte (built-in features) or a float (a model's output).
pub trait Value: Copy + Send + Sync {
    fn get(self) -> f32;
}

impl Value for u8 {
    fn get(self) -> f32 {
        f32::from(self)
    }
}

impl Value for f32 {
    fn get(self) -> f32 {
        self
    }
}

/// How values are put on one scale before the PCA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    /// Each value to unit variance, then each block to its weight: for hand-made features,
    /// whose values measure different things.
    PerValue,
    /// Centred only: a model's embedding space keeps its own geometry.
    Centred,
}

/// What [`fit`] learns and [`project`] applies: per value a mean and a factor, then the
/// basis. A function of the fitted rows' values (and of all rows' sums), so a rerun whose
/// fit is the same gives the same bits for every row.
pub struct Transform {
    mean: Vec<f32>,
    scale: Vec<f32>,
    /// `dims x components`.
    basis: Array2<f32>,
    /// Share of the (weighted) variance the components keep.
    pub explained: f64,
}

impl Transform {
    pub fn components(&self) -> usize {
        self.basis.ncols()
    }
}

/// Standardises, weights by block, reduces to `components` by PCA and normalises rows.
/// The PCA is fitted on the rows `fit` when given, else on a seeded subsample.
pub fn reduce<T: Value>(
    bytes: &[T],
    dims: usize,
    blocks: &[Block],
    scaling: Scaling,
    components: usize,
    seed: u64,
) -> Reduced {
    let rows = bytes.len().checked_div(dims).unwrap_or(0);
    if rows == 0 || dims == 0 {
        return Reduced {
            vectors: Array2::zeros((rows, 0)),
            explained: 0.0,
        };
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9ca);
    let chosen: Vec<usize> = if rows <= FIT_ROWS {
        (0..rows).collect()
    } else {
        let mut chosen: Vec<usize> = (0..rows).collect();
        for i in 0..FIT_ROWS {
            let j = rng.random_range(i..rows);
            chosen.swap(i, j);
        }
        chosen.truncate(FIT_ROWS);
        chosen.sort_unstable();
        chosen
    };
    let transform = fit(bytes, dims, blocks, scaling, components, &chosen, seed);
    Reduced {
        vectors: project(bytes, dims, &transform),
        explained: transform.explained,
    }
}

/// At most this many rows fit the PCA; callers choose which (see [`fit`]).
pub const fn fit_rows() -> usize {
    FIT_ROWS
}

/// Learns the standardisation from every row's sums and the PCA basis from the rows `fit`
/// (ascending row numbers, at most [`fit_rows`] useful). `rows x dims` values in `bytes`.
pub fn fit<T: Value>(
    bytes: &[T],
    dims: usize,
    blocks: &[Block],
    scaling: Scaling,
    components: usize,
    fit: &[usize],
    seed: u64,
) -> Transform {
    let (mean, scale) = standardisation(bytes, dims, blocks, scaling);
    let standardise = |row: &[T], out: &mut [f32]| {
        for j in 0..dims {
            out[j] = (row[j].get() - mean[j]) * scale[j];
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9ca);
    let mut sample = vec![0f32; fit.len() * dims];
    sample
        .par_chunks_mut(dims.max(1))
        .zip(fit.par_iter())
        .for_each(|(out, &i)| standardise(&bytes[i * dims..(i + 1) * dims], out));
    let sample = Array2::from_shape_vec((fit.len(), dims), sample)
        .expect("the sample has fit.len() rows of dims values");
    let covariance = sample.t().dot(&sample) / fit.len().max(1) as f32;
    drop(sample);
    let components = components.min(dims).max(1);
    let (basis, eigenvalues) = top_eigenvectors(covariance.view(), components, &mut rng);
    let total: f64 = covariance.diag().iter().map(|&v| f64::from(v)).sum();
    let kept: f64 = eigenvalues.iter().sum();
    Transform {
        mean,
        scale,
        basis,
        explained: if total > 0.0 { kept / total } else { 0.0 },
    }
}

/// Every row through `transform`, each scaled to unit length (or zero). A row's result
/// depends on that row alone (see `neighbours::exact` on the matrix product's bits).
pub fn project<T: Value>(bytes: &[T], dims: usize, transform: &Transform) -> Array2<f32> {
    let rows = bytes.len().checked_div(dims).unwrap_or(0);
    let components = transform.components();
    let (mean, scale, basis) = (&transform.mean, &transform.scale, &transform.basis);
    // Project every row, a block of rows at a time.
    const BLOCK: usize = 1024;
    let mut vectors = vec![0f32; rows * components];
    vectors
        .par_chunks_mut((BLOCK * components).max(1))
        .enumerate()
        .for_each(|(b, out)| {
            let start = b * BLOCK;
            let n = out.len() / components;
            let mut x = vec![0f32; n * dims];
            for (r, row) in x.chunks_exact_mut(dims).enumerate() {
                let i = start + r;
                for (j, o) in row.iter_mut().enumerate() {
                    *o = (bytes[i * dims + j].get() - mean[j]) * scale[j];
                }
            }
            let x = Array2::from_shape_vec((n, dims), x).expect("n rows of dims values");
            let projected = x.dot(basis);
            for (row, source) in out.chunks_exact_mut(components).zip(projected.rows()) {
                let norm = source.dot(&source).sqrt();
                for (o, &v) in row.iter_mut().zip(source.iter()) {
                    *o = if norm > 0.0 { v / norm } else { 0.0 };
                }
            }
        });
    Array2::from_shape_vec((rows, components), vectors).expect("rows x components values")
}

/// Per value: the mean, and the factor that gives it unit variance times the square root of
/// its block's weight over its block's length, so that every block carries its weight in
/// total variance whatever its length (a 576-value block must not drown a 48-value one).
/// Constant values get factor 0; values beyond the blocks count as one block of weight 1.
fn standardisation<T: Value>(
    bytes: &[T],
    dims: usize,
    blocks: &[Block],
    scaling: Scaling,
) -> (Vec<f32>, Vec<f32>) {
    let rows = bytes.len() / dims;
    // Partial sums over fixed runs of rows, added in order: the same result whatever the
    // threads (and, for bytes, exact: integer sums stay far below 2^53).
    const RUN: usize = 4096;
    let partial: Vec<(Vec<f64>, Vec<f64>)> = bytes
        .par_chunks(RUN * dims)
        .map(|run| {
            let (mut s, mut q) = (vec![0f64; dims], vec![0f64; dims]);
            for row in run.chunks_exact(dims) {
                for (j, &v) in row.iter().enumerate() {
                    let v = f64::from(v.get());
                    s[j] += v;
                    q[j] += v * v;
                }
            }
            (s, q)
        })
        .collect();
    let (mut sum, mut sumsq) = (vec![0f64; dims], vec![0f64; dims]);
    for (s, q) in partial {
        for j in 0..dims {
            sum[j] += s[j];
            sumsq[j] += q[j];
        }
    }
    let mut block_of = Vec::with_capacity(dims);
    for block in blocks {
        block_of.extend(std::iter::repeat_n(*block, block.len));
    }
    let rest = Block::new(dims.saturating_sub(block_of.len()), 1.0);
    block_of.resize(dims, rest);
    let mut mean = vec![0f32; dims];
    let mut scale = vec![0f32; dims];
    for j in 0..dims {
        let m = sum[j] / rows as f64;
        let var = (sumsq[j] / rows as f64 - m * m).max(0.0);
        mean[j] = m as f32;
        scale[j] = if scaling == Scaling::Centred {
            1.0
        } else if var > 1e-9 {
            let Block { len, weight } = block_of[j];
            (weight.sqrt() / (var.sqrt() * (len as f64).sqrt())) as f32
        } else {
            0.0
        };
    }
    (mean, scale)
}

/// The `k` leading eigenvectors (as columns) and eigenvalues of a symmetric matrix.
fn top_eigenvectors(
    matrix: ArrayView2<f32>,
    k: usize,
    rng: &mut ChaCha8Rng,
) -> (Array2<f32>, Vec<f64>) {
    let n = matrix.nrows();
    let m = (k + OVERSAMPLE).min(n);
    let mut q = Array2::<f32>::from_shape_fn((n, m), |_| rng.random::<f32>() - 0.5);
    orthonormalise(&mut q);
    for _ in 0..ITERATIONS {
        q = matrix.dot(&q);
        orthonormalise(&mut q);
    }
    let projected = q.t().dot(&matrix.dot(&q));
    let small = projected.mapv(f64::from);
    let (values, vectors) = jacobi_eigen(small);
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut rotation = Array2::<f32>::zeros((m, k));
    for (c, &o) in order.iter().take(k).enumerate() {
        for r in 0..m {
            rotation[[r, c]] = vectors[[r, o]] as f32;
        }
    }
    let eigenvalues = order.iter().take(k).map(|&o| values[o].max(0.0)).collect();
    let mut basis = q.dot(&rotation);
    // An eigenvector's sign is arbitrary; fix it (the one whose dot with a fixed seeded
    // direction is positive), so that nearly the same data give nearly the same vectors.
    let mut sign_rng = ChaCha8Rng::seed_from_u64(0x5197);
    let direction: Vec<f32> = (0..n).map(|_| sign_rng.random::<f32>() - 0.5).collect();
    for mut column in basis.columns_mut() {
        let dot: f32 = column.iter().zip(&direction).map(|(a, b)| a * b).sum();
        if dot < 0.0 {
            column.mapv_inplace(|v| -v);
        }
    }
    (basis, eigenvalues)
}

/// Modified Gram-Schmidt on the columns, in f64 for stability; a column that vanishes is
/// left at zero.
fn orthonormalise(q: &mut Array2<f32>) {
    let mut a = q.mapv(f64::from);
    for c in 0..a.ncols() {
        for p in 0..c {
            let dot = a.column(c).dot(&a.column(p));
            let prev: Array1<f64> = a.column(p).to_owned();
            a.column_mut(c).scaled_add(-dot, &prev);
        }
        let norm = a.column(c).dot(&a.column(c)).sqrt();
        if norm > 1e-12 {
            a.column_mut(c).mapv_inplace(|v| v / norm);
        } else {
            a.column_mut(c).fill(0.0);
        }
    }
    q.assign(&a.mapv(|v| v as f32));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_finds_known_eigenvalues() {
        let a = ndarray::arr2(&[[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 5.0]]);
        let (mut values, _) = jacobi_eigen(a);
        values.sort_by(f64::total_cmp);
        for (got, want) in values.iter().zip([1.0, 3.0, 5.0]) {
            assert!((got - want).abs() < 1e-9, "{values:?}");
        }
    }

    #[test]
    fn leading_direction_of_stretched_data_is_found() {
        // Points along (1, 1, 0) with small noise: the first component is that direction.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let rows = 500;
        let bytes: Vec<u8> = (0..rows)
            .flat_map(|_| {
                let t: f32 = rng.random::<f32>() * 200.0;
                let noise = |r: &mut ChaCha8Rng| r.random::<f32>() * 4.0;
                [
                    (t + noise(&mut rng)) as u8,
                    (t + noise(&mut rng)) as u8,
                    noise(&mut rng) as u8 + 100,
                ]
            })
            .collect();
        let reduced = reduce(
            &bytes,
            3,
            &[Block {
                len: 3,
                weight: 1.0,
            }],
            Scaling::PerValue,
            1,
            7,
        );
        assert_eq!(reduced.vectors.dim(), (rows, 1));
        assert!(reduced.explained > 0.6, "{}", reduced.explained);
    }
}
