//! The 2-D map: t-SNE of a seeded sample, by the bhtsne crate's FFT-interpolated
//! gradient (FIt-SNE; Barnes-Hut below 5,000 points) fed with neighbours computed here.
//!
//! bhtsne's own neighbour search (a vantage-point tree) took most of its time on CIFAR-10;
//! the exact blocked search of [`crate::neighbours`] is much faster, so the neighbours are
//! passed in. The schedule is openTSNE's: start from the first two principal components scaled to
//! a standard deviation of 1e-4, early exaggeration 12 for 250 iterations with momentum 0.5
//! and learning rate N/12, then 500 iterations with momentum 0.8 and learning rate N. Nothing
//! random is left and the fit runs on one thread (see [`tsne`]), so the same data give the
//! same map. Measured on 10,000 CIFAR-10 images: 2-D 10-nearest-neighbour label agreement
//! 0.330, openTSNE 1.x with defaults on the same vectors 0.329.

use ndarray::ArrayView2;

use crate::neighbours::Neighbours;

/// Perplexity of the map (openTSNE's and scikit-learn's default).
const PERPLEXITY: f32 = 30.0;
const EXAGGERATION_ITERATIONS: usize = 250;
pub const ITERATIONS: usize = 750;
const EXAGGERATION: f32 = 12.0;

/// Iterations of a map that starts from the last run's coordinates: no early exaggeration
/// (the clusters are already formed), the late phase's momentum and rate.
pub const WARM_ITERATIONS: usize = 30;

/// Where the optimisation starts.
pub enum Start {
    /// The first two principal components, openTSNE's schedule in full.
    Scratch,
    /// These raw coordinates (one per row, as [`Map::raw`] holds them), briefly optimised.
    From(Vec<[f32; 2]>),
}

/// A map: per row its coordinates scaled into -1..1, the raw t-SNE coordinates (where a
/// later run can start), and the iterations run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    pub points: Vec<[f32; 2]>,
    pub raw: Vec<[f32; 2]>,
    pub iterations: usize,
}

/// Neighbours the map reads for `n` points (three times the perplexity, as bhtsne asks).
pub fn neighbours_needed(n: usize) -> usize {
    let perplexity = perplexity(n);
    if perplexity < 2.0 {
        0
    } else {
        ((3.0 * perplexity) as usize).min(n.saturating_sub(1))
    }
}

fn perplexity(n: usize) -> f32 {
    // bhtsne needs at least 3 x perplexity + 1 points; small datasets use a smaller one.
    PERPLEXITY.min(((n as f32 - 1.0) / 3.0).floor() - 1.0)
}

/// 2-D coordinates of each row of `vectors` (unit rows, first columns = leading principal
/// components), scaled into -1..1, from `neighbours` (each row's
/// [`neighbours_needed`] most similar rows, exactly).
///
/// Runs on a one-thread pool of its own: bhtsne sums forces with rayon's parallel
/// reductions, whose float rounding depends on how work was stolen, and t-SNE amplifies
/// such differences into a different map (measured: two runs on two threads gave two maps).
/// One thread makes the map a function of the data, the start and the seed. The stage runs
/// the map beside the neighbour search, so the second core is not idle.
pub fn tsne(vectors: ArrayView2<f32>, neighbours: &Neighbours, start: Start) -> Map {
    match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool.install(|| tsne_here(vectors, neighbours, start)),
        // Without a pool of its own the map is still right, only not bit-for-bit repeatable.
        Err(_) => tsne_here(vectors, neighbours, start),
    }
}

fn tsne_here(vectors: ArrayView2<f32>, neighbours: &Neighbours, start: Start) -> Map {
    let n = vectors.nrows();
    if n == 0 {
        return Map::default();
    }
    let perplexity = perplexity(n);
    let k = neighbours_needed(n);
    if perplexity < 2.0 || vectors.ncols() < 2 || k == 0 || neighbours.rows() != n {
        let init = pca_start(vectors);
        return Map {
            points: scale_into_unit_box(init.clone()),
            raw: init,
            iterations: 0,
        };
    }
    let table: Vec<Vec<bhtsne::Neighbor<f32>>> = (0..n)
        .map(|i| {
            neighbours
                .of(i)
                .iter()
                .zip(neighbours.similarities(i))
                .take(k)
                .map(|(&index, &sim)| bhtsne::Neighbor {
                    index: index as usize,
                    // Euclidean distance between unit vectors.
                    distance: (2.0 - 2.0 * sim).max(0.0).sqrt(),
                })
                .collect()
        })
        .collect();
    let samples: Vec<usize> = (0..n).collect();
    let late = |initial: Vec<f32>, epochs: usize| {
        let mut late: bhtsne::tSNE<f32, usize, 2> = bhtsne::tSNE::new(&samples);
        late.perplexity(perplexity)
            .epochs(epochs)
            .early_exaggeration(1.0)
            .stop_lying_epoch(0)
            .momentum(0.8)
            .final_momentum(0.8)
            .learning_rate(learning_rate(n, 1.0))
            .initial_embedding(initial);
        fit(&mut late, &table, n);
        late.embedding()
    };
    let (y, iterations) = match start {
        Start::From(raw) if raw.len() == n => {
            let flat: Vec<f32> = raw.iter().flat_map(|p| *p).collect();
            (late(flat, WARM_ITERATIONS), WARM_ITERATIONS)
        }
        _ => {
            let flat: Vec<f32> = pca_start(vectors).iter().flat_map(|p| *p).collect();
            // Two fits, as openTSNE's two phases: each with its own learning rate (bhtsne
            // keeps one rate per fit), the second starting where the first ended.
            let mut early: bhtsne::tSNE<f32, usize, 2> = bhtsne::tSNE::new(&samples);
            early
                .perplexity(perplexity)
                .epochs(EXAGGERATION_ITERATIONS)
                .early_exaggeration(EXAGGERATION)
                .stop_lying_epoch(EXAGGERATION_ITERATIONS)
                .momentum_switch_epoch(EXAGGERATION_ITERATIONS)
                .momentum(0.5)
                .final_momentum(0.5)
                .learning_rate(learning_rate(n, EXAGGERATION))
                .initial_embedding(flat);
            fit(&mut early, &table, n);
            (
                late(early.embedding(), ITERATIONS - EXAGGERATION_ITERATIONS),
                ITERATIONS,
            )
        }
    };
    let raw: Vec<[f32; 2]> = y.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
    Map {
        points: scale_into_unit_box(raw.clone()),
        raw,
        iterations,
    }
}

/// Below this many points the Barnes-Hut gradient is used: the FFT-interpolated one has a
/// fixed cost per iteration (its smallest grid) that dominates small maps.
const FFT_FROM: usize = 5_000;
/// Barnes-Hut accuracy (the usual 0.5).
const THETA: f32 = 0.5;

fn fit(tsne: &mut bhtsne::tSNE<f32, usize, 2>, table: &[Vec<bhtsne::Neighbor<f32>>], n: usize) {
    if n >= FFT_FROM {
        tsne.fit_sne_with_neighbors(table);
    } else {
        tsne.barnes_hut_with_neighbors(THETA, table);
    }
}

/// openTSNE's "auto" rate, N / exaggeration (at least 200; bhtsne's gradient, like
/// openTSNE's, has no factor 4).
fn learning_rate(n: usize, exaggeration: f32) -> f32 {
    (n as f32 / exaggeration).max(200.0)
}

/// The first two columns, centred and scaled so the first has standard deviation 1e-4.
fn pca_start(vectors: ArrayView2<f32>) -> Vec<[f32; 2]> {
    let n = vectors.nrows();
    let column = |c: usize| -> Vec<f32> {
        if c < vectors.ncols() {
            vectors.column(c).to_vec()
        } else {
            vec![0.0; n]
        }
    };
    let (x, y) = (column(0), column(1));
    let mean = |v: &[f32]| v.iter().sum::<f32>() / n as f32;
    let (mx, my) = (mean(&x), mean(&y));
    let std = (x.iter().map(|v| (v - mx) * (v - mx)).sum::<f32>() / n as f32).sqrt();
    let scale = if std > 0.0 { 1e-4 / std } else { 1.0 };
    x.iter()
        .zip(&y)
        .map(|(a, b)| [(a - mx) * scale, (b - my) * scale])
        .collect()
}

/// Centres the points and scales them so the larger extent spans -1..1.
fn scale_into_unit_box(points: Vec<[f32; 2]>) -> Vec<[f32; 2]> {
    let finite = |v: f32| if v.is_finite() { v } else { 0.0 };
    let points: Vec<[f32; 2]> = points
        .iter()
        .map(|p| [finite(p[0]), finite(p[1])])
        .collect();
    let (mut lo, mut hi) = ([f32::MAX; 2], [f32::MIN; 2]);
    for p in &points {
        for a in 0..2 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    let half = ((hi[0] - lo[0]).max(hi[1] - lo[1]) / 2.0).max(f32::MIN_POSITIVE);
    let centre = [(hi[0] + lo[0]) / 2.0, (hi[1] + lo[1]) / 2.0];
    points
        .iter()
        .map(|p| [(p[0] - centre[0]) / half, (p[1] - centre[1]) / half])
        .collect()
}

/// Share of each point's `k` nearest neighbours on the map (Euclidean, 2-D) that carry its
/// label, per point. The measure of how well the map keeps classes together.
pub fn neighbour_agreement_2d(points: &[[f32; 2]], labels: &[u32], k: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let n = points.len();
    let k = k.min(n.saturating_sub(1));
    if k == 0 {
        return vec![1.0; n];
    }
    // A uniform grid with about 4 points a cell; search rings of cells outwards until the
    // k-th distance found is inside the searched square.
    let cells = ((n as f32 / 4.0).sqrt().ceil() as usize).max(1);
    let cell_of = |v: f32| (((v + 1.0) / 2.0 * cells as f32) as isize).clamp(0, cells as isize - 1);
    let mut grid: Vec<Vec<u32>> = vec![Vec::new(); cells * cells];
    for (i, p) in points.iter().enumerate() {
        grid[cell_of(p[1]) as usize * cells + cell_of(p[0]) as usize].push(i as u32);
    }
    let cell_size = 2.0 / cells as f32;
    (0..n)
        .into_par_iter()
        .map(|i| {
            let p = points[i];
            let (cx, cy) = (cell_of(p[0]), cell_of(p[1]));
            let mut best: Vec<(f32, u32)> = Vec::new();
            let mut ring = 0isize;
            loop {
                for gy in cy - ring..=cy + ring {
                    for gx in cx - ring..=cx + ring {
                        let on_ring = (gy - cy).abs() == ring || (gx - cx).abs() == ring;
                        if !on_ring
                            || gx < 0
                            || gy < 0
                            || gx >= cells as isize
                            || gy >= cells as isize
                        {
                            continue;
                        }
                        for &j in &grid[gy as usize * cells + gx as usize] {
                            if j as usize != i {
                                let q = points[j as usize];
                                let d = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2);
                                best.push((d, j));
                            }
                        }
                    }
                }
                best.sort_by(|a, b| a.0.total_cmp(&b.0));
                best.truncate(k);
                let reach = ring as f32 * cell_size;
                let covered = ring as usize >= cells;
                if covered || (best.len() == k && best[k - 1].0.sqrt() <= reach) {
                    break;
                }
                ring += 1;
            }
            let same = best
                .iter()
                .filter(|(_, j)| labels[*j as usize] == labels[i])
                .count();
            same as f32 / best.len().max(1) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn map_of(v: ndarray::ArrayView2<f32>) -> Map {
        let table = crate::neighbours::deep::deep(v, neighbours_needed(v.nrows()));
        tsne(v, &table.top(neighbours_needed(v.nrows())), Start::Scratch)
    }

    fn clusters(n: usize) -> (Array2<f32>, Vec<u32>) {
        let mut state = 11u32;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 1000) as f32 / 10_000.0
        };
        let labels: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
        let mut v = Array2::from_shape_fn((n, 4), |(i, c)| {
            f32::from(u8::from(labels[i] as usize == c)) + noise()
        });
        for mut row in v.rows_mut() {
            let norm = row.dot(&row).sqrt();
            row /= norm;
        }
        (v, labels)
    }

    #[test]
    fn separated_clusters_stay_separated_and_the_map_is_deterministic() {
        let (v, labels) = clusters(300);
        let a = map_of(v.view()).points;
        let b = map_of(v.view()).points;
        assert_eq!(a, b);
        assert_eq!(a.len(), 300);
        let agreement = neighbour_agreement_2d(&a, &labels, 10);
        let mean = agreement.iter().sum::<f32>() / agreement.len() as f32;
        assert!(mean > 0.95, "{mean}");
        assert!(a.iter().all(|p| p[0].abs() <= 1.0 && p[1].abs() <= 1.0));
    }

    #[test]
    fn tiny_inputs_give_a_point_each() {
        for n in 0..6 {
            let (v, _) = clusters(n);
            assert_eq!(map_of(v.view()).points.len(), n);
        }
    }
}
