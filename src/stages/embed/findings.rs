//! What the neighbours say: likely label errors, outliers and which classes overlap.
//!
//! A likely label error is an image nearer to an image of another class than to any image
//! of its own, among the reference images (the training split when there is one), weighed by
//! two more witnesses: the similarity-weighted vote of its nearest neighbours, and the
//! probability a linear classifier (softmax regression on the reduced vectors) gives each
//! class when it was trained without that image (out-of-fold, 5 folds). See
//! [`label_issues`] for the score and why. These are candidates for review, not verdicts.
//!
//! An outlier is an image far from everything: 1 - the mean cosine similarity of its
//! nearest neighbours. The class-confusion matrix counts, per class, which classes hold
//! the neighbour slots of its images.

use ndarray::{Array2, ArrayView2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::neighbours::{Neighbours, gather};

/// Sharpness of the neighbour vote: a neighbour at similarity `s` weighs `exp(VOTE * s)`.
/// Measured on CIFAR-10: weighted votes classify 2-3 points better than plain counts.
const VOTE_SHARPNESS: f32 = 10.0;
const FOLDS: usize = 5;

/// Per image, the evidence for each class (rows sum to 1), from the two witnesses.
pub struct Evidence {
    pub classes: usize,
    pub neighbours: Vec<f32>,
    pub model: Vec<f32>,
}

/// The similarity-weighted neighbour vote of every image.
pub fn neighbour_vote(neighbours: &Neighbours, labels: &[u32], classes: usize) -> Vec<f32> {
    let rows = labels.len();
    let mut votes = vec![0f32; rows * classes];
    if neighbours.k() == 0 {
        // No neighbours: the vote is the image's own label, never evidence against it.
        for (i, &l) in labels.iter().enumerate() {
            votes[i * classes + l as usize] = 1.0;
        }
        return votes;
    }
    votes
        .par_chunks_mut(classes)
        .enumerate()
        .for_each(|(i, out)| {
            let sims = neighbours.similarities(i);
            let top = sims[0];
            let mut total = 0.0;
            for (&j, &s) in neighbours.of(i).iter().zip(sims) {
                let w = (VOTE_SHARPNESS * (s - top)).exp();
                out[labels[j as usize] as usize] += w;
                total += w;
            }
            for v in out.iter_mut() {
                *v /= total.max(f32::MIN_POSITIVE);
            }
        });
    votes
}

/// Out-of-fold class probabilities from a linear discriminant (LDA: Gaussian classes with
/// one shared covariance) on `vectors`: each image's row comes from a model fitted on the
/// other folds. The folds are seeded.
///
/// Why LDA and not softmax regression trained by gradient descent (as before): both give a
/// linear softmax over classes, but LDA is fitted in closed form from sums (per class and
/// fold: count and vector sum; per fold: the Gram matrix of the vectors), a few
/// milliseconds instead of 12 epochs of mini-batches over every fold, which were a third of
/// a relabel rerun on CIFAR-10. Measured on CIFAR-10's confirmed test label errors with the
/// built-in features (bench/score_truth.sh), see the commit that made the switch.
pub fn out_of_fold_model(
    vectors: ArrayView2<f32>,
    labels: &[u32],
    classes: usize,
    seed: u64,
) -> Vec<f32> {
    let rows = labels.len();
    let mut probabilities = vec![0f32; rows * classes];
    if rows < FOLDS * 2 || classes < 2 {
        for (i, &l) in labels.iter().enumerate() {
            probabilities[i * classes + l as usize] = 1.0;
        }
        return probabilities;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xf01d);
    let mut order: Vec<usize> = (0..rows).collect();
    for i in (1..rows).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    let mut fold_of = vec![0usize; rows];
    for (position, &i) in order.iter().enumerate() {
        fold_of[i] = position % FOLDS;
    }
    let held: Vec<Vec<usize>> = (0..FOLDS)
        .map(|fold| (0..rows).filter(|&i| fold_of[i] == fold).collect())
        .collect();
    // Per fold: the Gram matrix, and per class the count and the vector sum.
    let sums: Vec<FoldSums> = held
        .par_iter()
        .map(|rows_of_fold| FoldSums::of(vectors, labels, classes, rows_of_fold))
        .collect();
    let per_fold: Vec<Array2<f32>> = (0..FOLDS)
        .into_par_iter()
        .map(|fold| {
            let mut train = FoldSums::zero(vectors.ncols(), classes);
            for (other, part) in sums.iter().enumerate() {
                if other != fold {
                    train.add(part);
                }
            }
            let (weights, bias) = train.discriminant();
            let x = gather(vectors, &held[fold]);
            let mut logits = x.dot(&weights);
            logits += &bias;
            softmax_rows(&mut logits);
            logits
        })
        .collect();
    for (fold_rows, held_probabilities) in held.iter().zip(per_fold) {
        for (&i, row) in fold_rows.iter().zip(held_probabilities.rows()) {
            for (c, &p) in row.iter().enumerate() {
                probabilities[i * classes + c] = p;
            }
        }
    }
    probabilities
}

/// What a linear discriminant needs of a set of rows, all of it sums (so the training set
/// of a fold is the sum of the other folds' parts).
struct FoldSums {
    dims: usize,
    /// `dims x dims`, row-major: the sum of `x xᵀ`.
    gram: Vec<f64>,
    /// Per class: images, and the sum of their vectors (`classes x dims`).
    counts: Vec<u64>,
    class_sums: Vec<f64>,
}

impl FoldSums {
    fn zero(dims: usize, classes: usize) -> FoldSums {
        FoldSums {
            dims,
            gram: vec![0.0; dims * dims],
            counts: vec![0; classes],
            class_sums: vec![0.0; classes * dims],
        }
    }

    fn of(vectors: ArrayView2<f32>, labels: &[u32], classes: usize, rows: &[usize]) -> FoldSums {
        let dims = vectors.ncols();
        let mut sums = FoldSums::zero(dims, classes);
        let x = gather(vectors, rows);
        let gram = x.t().dot(&x);
        for (out, &g) in sums.gram.iter_mut().zip(gram.iter()) {
            *out = f64::from(g);
        }
        for (&i, row) in rows.iter().zip(x.rows()) {
            let c = labels[i] as usize;
            sums.counts[c] += 1;
            for (out, &v) in sums.class_sums[c * dims..(c + 1) * dims]
                .iter_mut()
                .zip(row)
            {
                *out += f64::from(v);
            }
        }
        sums
    }

    fn add(&mut self, other: &FoldSums) {
        for (a, b) in self.gram.iter_mut().zip(&other.gram) {
            *a += b;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        for (a, b) in self.class_sums.iter_mut().zip(&other.class_sums) {
            *a += b;
        }
    }

    /// Weights (`dims x classes`) and bias of the discriminant
    /// `xᵀ Σ⁻¹ μ_c - ½ μ_cᵀ Σ⁻¹ μ_c + ln π_c`, Σ the pooled within-class covariance. A
    /// class without images gets a bias of -inf (probability 0).
    fn discriminant(&self) -> (Array2<f32>, ndarray::Array1<f32>) {
        let (dims, classes) = (self.dims, self.counts.len());
        let total: u64 = self.counts.iter().sum();
        let present = self.counts.iter().filter(|&&n| n > 0).count() as u64;
        // Within-class scatter: Σ x xᵀ - Σ_c s_c s_cᵀ / n_c, then the covariance.
        let mut covariance = self.gram.clone();
        for (c, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let s = &self.class_sums[c * dims..(c + 1) * dims];
            for a in 0..dims {
                for b in 0..dims {
                    covariance[a * dims + b] -= s[a] * s[b] / n as f64;
                }
            }
        }
        let degrees = total.saturating_sub(present).max(1) as f64;
        covariance.iter_mut().for_each(|v| *v /= degrees);
        // Shrinkage towards the mean variance keeps Σ invertible (a dimension without
        // spread) and the model from trusting a covariance estimated from few images.
        let mean_variance =
            (0..dims).map(|a| covariance[a * dims + a]).sum::<f64>() / dims.max(1) as f64;
        let ridge = SHRINKAGE * mean_variance.max(f64::MIN_POSITIVE);
        for a in 0..dims {
            covariance[a * dims + a] += ridge;
        }
        let factor = cholesky(&covariance, dims);
        let mut weights = Array2::<f32>::zeros((dims, classes));
        let mut bias = ndarray::Array1::<f32>::zeros(classes);
        for (c, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                bias[c] = f32::NEG_INFINITY;
                continue;
            }
            let mean: Vec<f64> = self.class_sums[c * dims..(c + 1) * dims]
                .iter()
                .map(|&s| s / n as f64)
                .collect();
            let solved = match &factor {
                Some(l) => cholesky_solve(l, dims, &mean),
                // Not positive definite even with shrinkage (cannot happen for finite
                // vectors): fall back to nearest class mean.
                None => mean.clone(),
            };
            let offset: f64 = mean.iter().zip(&solved).map(|(m, w)| m * w).sum();
            for (a, &w) in solved.iter().enumerate() {
                weights[[a, c]] = w as f32;
            }
            bias[c] = (-0.5 * offset + (n as f64 / total as f64).ln()) as f32;
        }
        (weights, bias)
    }
}

/// Shrinkage of the pooled covariance: `Σ + SHRINKAGE · mean variance · I`. Chosen from
/// 0.001, 0.1 and 1 as the only one that keeps the demo's planted label errors (a few hundred
/// images, so a covariance of 96 dimensions from few per class) all on top, as the gradient-
/// trained model did (tests/all/embed.rs); on CIFAR-10 it gives the same label-error counts
/// as that model on the same data (top 50/100/200 test candidates: 2/4/4 both).
const SHRINKAGE: f64 = 1.0;

/// The lower Cholesky factor of a symmetric `n x n` matrix (row-major); `None` when it is
/// not positive definite.
fn cholesky(matrix: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut sum = matrix[i * n + j];
            for k in 0..j {
                sum -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return None;
                }
                l[i * n + i] = sum.sqrt();
            } else {
                l[i * n + j] = sum / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solves `L Lᵀ x = b` for the factor of [`cholesky`].
fn cholesky_solve(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut y = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            y[i] -= l[i * n + k] * y[k];
        }
        y[i] /= l[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= l[k * n + i] * y[k];
        }
        y[i] /= l[i * n + i];
    }
    y
}

fn softmax_rows(logits: &mut Array2<f32>) {
    for mut row in logits.rows_mut() {
        let max = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|v| v / sum.max(f32::MIN_POSITIVE));
    }
}

/// A likely label error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelIssue {
    pub image: usize,
    pub given: u32,
    pub suggested: u32,
    /// How much closer the image is to the nearest reference image of the suggested class
    /// than to the nearest of its given class (a difference of cosine similarities), times
    /// the doubt of the two other witnesses: (1 - vote for the given label) and (1 - the
    /// model's probability of it).
    pub score: f32,
    /// Similarity to the nearest reference image of the given and of the suggested class.
    #[serde(default)]
    pub nearest_given: f32,
    #[serde(default)]
    pub nearest_suggested: f32,
    /// The neighbour vote and the model's probability for the given and suggested labels.
    pub vote_given: f32,
    pub vote_suggested: f32,
    pub model_given: f32,
    pub model_suggested: f32,
}

/// Every image that is closer to a reference image of another class than to any reference
/// image of its own, and that neither the vote nor the model is sure of, highest score first
/// (ties: lower row). Score: the similarity margin times (1 - vote for the given label) times
/// (1 - model probability of it); no constant is tuned.
///
/// Why: measured on CIFAR-10's confirmed test label errors (the half we have), with a CNN's
/// embedding, ranking by the margin of neighbour votes or of out-of-fold probabilities
/// (cleanlab's margin) put 7 of 30 in the top 200 test candidates, the similarity margin 10;
/// with the built-in features 3-5 and 5. A probability saturates and a vote cannot tell how
/// far away the given class is: a wrongly labelled image is far from *every* image of its
/// given class, a merely hard one near images of both. The margin alone is fooled by two
/// similar images sharing a wrong label (each is the other's nearest of "its" class); the
/// two doubts, which see all neighbours, keep those near the top (measured on the demo's
/// planted pairs) and cost nothing on CIFAR-10 (10 of 30 either way; built-in 5).
///
/// `reference[j]`: whether row `j` is a reference image (the training split, when there is
/// one: a model trained on it has pulled its images onto their labels, so they are the
/// anchors; other test images are not). An image is never its own reference.
///
/// Exact, and cheap: the nearest reference image of a class that appears among an image's
/// listed neighbours is the first such neighbour (anything not listed is less similar than
/// the last listed). Only when the given class is missing from the list is that class's
/// nearest found by a scan of its reference images, and all classes when no listed
/// neighbour is a reference image.
pub fn label_issues(
    vectors: ArrayView2<f32>,
    neighbours: &Neighbours,
    labels: &[u32],
    classes: usize,
    reference: &[bool],
    evidence: &Evidence,
) -> Vec<LabelIssue> {
    let rows = labels.len();
    let mut by_class: Vec<Vec<u32>> = vec![Vec::new(); classes];
    for (j, &l) in labels.iter().enumerate() {
        if reference[j] {
            by_class[l as usize].push(j as u32);
        }
    }
    // 1. From the lists: the first listed reference neighbour of each class.
    let mut nearest: Vec<Vec<Option<f32>>> = (0..rows)
        .into_par_iter()
        .map(|i| {
            let mut nearest: Vec<Option<f32>> = vec![None; classes];
            if neighbours.k() > 0 {
                for (&j, &s) in neighbours.of(i).iter().zip(neighbours.similarities(i)) {
                    let j = j as usize;
                    if reference[j] && j != i && nearest[labels[j] as usize].is_none() {
                        nearest[labels[j] as usize] = Some(s);
                    }
                }
            }
            nearest
        })
        .collect();
    // 2. What the lists lack, by class: the given class when it is not listed, every class
    // when no listed neighbour is a reference image; found by matrix products against the
    // class's reference images, a block of rows at a time.
    let mut wanted: Vec<Vec<u32>> = vec![Vec::new(); classes];
    for (i, found) in nearest.iter().enumerate() {
        if found.iter().all(Option::is_none) {
            wanted.iter_mut().for_each(|w| w.push(i as u32));
        } else if found[labels[i] as usize].is_none() {
            wanted[labels[i] as usize].push(i as u32);
        }
    }
    const BLOCK: usize = 256;
    for (c, rows_wanted) in wanted.iter().enumerate() {
        let members = &by_class[c];
        if rows_wanted.is_empty() || members.is_empty() {
            continue;
        }
        let member_index: Vec<usize> = members.iter().map(|&j| j as usize).collect();
        let base = gather(vectors, &member_index);
        let found: Vec<(u32, Option<f32>)> = rows_wanted
            .par_chunks(BLOCK)
            .flat_map_iter(|block| {
                let index: Vec<usize> = block.iter().map(|&i| i as usize).collect();
                let similarities = gather(vectors, &index).dot(&base.t());
                block
                    .iter()
                    .zip(similarities.rows())
                    .map(|(&i, row)| {
                        let best = row
                            .iter()
                            .zip(members)
                            .filter(|&(_, &j)| j != i)
                            .map(|(&s, _)| s)
                            .max_by(f32::total_cmp);
                        (i, best)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        for (i, best) in found {
            nearest[i as usize][c] = best;
        }
    }
    // 3. The candidates.
    let mut issues: Vec<LabelIssue> = nearest
        .into_par_iter()
        .enumerate()
        .filter_map(|(i, nearest)| {
            let given = labels[i] as usize;
            // Classes missing from the list are less similar than every listed one, so the
            // best other class, when any is listed, is exact.
            let (suggested, best) = nearest
                .iter()
                .enumerate()
                .filter(|&(c, _)| c != given)
                .filter_map(|(c, s)| s.map(|s| (c, s)))
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
            // No reference image of the given class at all: nothing to compare with.
            let own = nearest[given]?;
            let vote_given = evidence.neighbours[i * classes + given];
            let model_given = evidence.model[i * classes + given];
            let score = (best - own) * (1.0 - vote_given) * (1.0 - model_given);
            (score > 0.0).then(|| LabelIssue {
                image: i,
                given: given as u32,
                suggested: suggested as u32,
                score,
                nearest_given: own,
                nearest_suggested: best,
                vote_given: evidence.neighbours[i * classes + given],
                vote_suggested: evidence.neighbours[i * classes + suggested],
                model_given: evidence.model[i * classes + given],
                model_suggested: evidence.model[i * classes + suggested],
            })
        })
        .collect();
    issues.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.image.cmp(&b.image)));
    issues
}

/// Per image, 1 - mean similarity to its neighbours.
pub fn outlier_scores(neighbours: &Neighbours, rows: usize) -> Vec<f32> {
    (0..rows)
        .map(|i| {
            if neighbours.k() == 0 {
                return 0.0;
            }
            let sims = neighbours.similarities(i);
            1.0 - sims.iter().sum::<f32>() / sims.len() as f32
        })
        .collect()
}

/// `confusion[a][b]`: the share of the neighbour slots of class `a`'s images held by
/// images of class `b`. The diagonal is each class's neighbour agreement.
pub fn confusion(neighbours: &Neighbours, labels: &[u32], classes: usize) -> Vec<Vec<f32>> {
    let mut counts = vec![vec![0u64; classes]; classes];
    for (i, &a) in labels.iter().enumerate() {
        if neighbours.k() == 0 {
            break;
        }
        for &j in neighbours.of(i) {
            counts[a as usize][labels[j as usize] as usize] += 1;
        }
    }
    counts
        .into_iter()
        .map(|row| {
            let total: u64 = row.iter().sum();
            row.into_iter()
                .map(|n| {
                    if total == 0 {
                        0.0
                    } else {
                        n as f32 / total as f32
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neighbours;
    use crate::stages::embed::ALL_PAIRS;

    /// Three tight clusters; image 0 sits in cluster 0 but is labelled 2.
    fn planted() -> (Array2<f32>, Vec<u32>) {
        let n = 90;
        let mut state = 5u32;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 1000) as f32 / 5000.0
        };
        let mut v =
            Array2::from_shape_fn((n, 3), |(i, c)| f32::from(u8::from(i % 3 == c)) + noise());
        for mut row in v.rows_mut() {
            let norm = row.dot(&row).sqrt();
            row /= norm;
        }
        let mut labels: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
        labels[0] = 2;
        (v, labels)
    }

    #[test]
    fn a_planted_wrong_label_tops_the_list_with_the_right_suggestion() {
        let (v, labels) = planted();
        let neighbours = neighbours::search(v.view(), v.view(), 10, &ALL_PAIRS);
        let evidence = Evidence {
            classes: 3,
            neighbours: neighbour_vote(&neighbours, &labels, 3),
            model: out_of_fold_model(v.view(), &labels, 3, 1),
        };
        let everyone = vec![true; labels.len()];
        let issues = label_issues(v.view(), &neighbours, &labels, 3, &everyone, &evidence);
        assert_eq!(issues[0].image, 0, "{issues:?}");
        assert_eq!(issues[0].suggested, 0);
        assert!(issues[0].score > 0.4, "{issues:?}");
        // Its cluster-mates, whose nearest image is now the mislabelled one, may follow, but
        // only by a hair.
        assert!(issues[1..].iter().all(|x| x.score < 0.01), "{issues:?}");
        // With few neighbours the given class is missing from image 0's list; its nearest
        // image of class 2 is then found by a scan, and the result is the same.
        let few = neighbours::search(v.view(), v.view(), 2, &ALL_PAIRS);
        let scanned = label_issues(v.view(), &few, &labels, 3, &everyone, &evidence);
        assert_eq!(scanned[0].image, 0);
        assert_eq!(scanned[0].nearest_given, issues[0].nearest_given);
        assert_eq!(scanned[0].nearest_suggested, issues[0].nearest_suggested);
        // Only images of the reference set count as anchors: with cluster 0 out of it,
        // image 0 has no anchor of its true class and is not listed.
        let reference: Vec<bool> = (0..labels.len()).map(|i| i % 3 != 0).collect();
        let anchored = label_issues(v.view(), &neighbours, &labels, 3, &reference, &evidence);
        assert!(anchored.iter().all(|x| x.suggested != 0), "{anchored:?}");
        assert!(!anchored.is_empty());
        let confusion = confusion(&neighbours, &labels, 3);
        assert!(confusion[1][1] > 0.99);
        assert!(confusion[2][0] > 0.0);
    }

    #[test]
    fn the_out_of_fold_model_doubts_the_planted_label_and_trusts_the_others() {
        let (v, labels) = planted();
        let p = out_of_fold_model(v.view(), &labels, 3, 4);
        for (i, row) in p.chunks(3).enumerate() {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{i}: {row:?}");
            if i > 0 {
                assert!(row[labels[i] as usize] > 0.9, "{i}: {row:?}");
            }
        }
        // Image 0 sits in cluster 0; the model never saw it, so it does not believe label 2.
        assert!(p[2] < 0.1 && p[0] > 0.9, "{:?}", &p[..3]);
    }

    #[test]
    fn the_model_is_deterministic_for_a_seed() {
        let (v, labels) = planted();
        assert_eq!(
            out_of_fold_model(v.view(), &labels, 3, 9),
            out_of_fold_model(v.view(), &labels, 3, 9)
        );
    }
}
