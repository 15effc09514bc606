//! External clustering metrics against ground-truth classes, matching scikit-learn: clustering accuracy
//! (best one-to-one matching of clusters to classes, Hungarian), NMI (`normalized_mutual_info_score`,
//! arithmetic mean) and ARI (`adjusted_rand_score`). Label values are arbitrary integers; the number of
//! clusters need not equal the number of classes.
//!
//! The matching behind accuracy is `pathfinding`'s Kuhn–Munkres (the optimum `scipy.optimize.linear_sum_assignment`
//! finds; ties may pair differently, the matched total is the same).

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;
use crate::error::Result;
use crate::invalid_arg;

/// ACC, NMI and ARI of one labelling.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    pub acc: f64,
    pub nmi: f64,
    pub ari: f64,
}

/// The contingency table: counts[i * classes + j] = #points in predicted cluster i and true class j.
struct Contingency {
    counts: Vec<u64>,
    clusters: usize,
    classes: usize,
    n: usize,
}

/// Largest clusters × classes table the metrics build (64 M cells, 512 MB).
pub const MAX_TABLE_CELLS: usize = 1 << 26;

impl Contingency {
    fn new(pred: &[i64], truth: &[i64]) -> Result<Self> {
        if pred.len() != truth.len() {
            return Err(invalid_arg!("pred has {} labels but truth has {}", pred.len(), truth.len()));
        }
        if pred.is_empty() {
            return Err(invalid_arg!("pred and truth are empty"));
        }
        let (pi, clusters) = dense_ids(pred);
        let (ti, classes) = dense_ids(truth);
        // The table is dense (and ACC's matching is cubic in it): 100,000 distinct labels on each side asked
        // for 80 GB and aborted the process. Clustering metrics over that many groups mean little anyway.
        if clusters.saturating_mul(classes) > MAX_TABLE_CELLS {
            return Err(invalid_arg!(
                "{clusters} distinct predicted labels × {classes} distinct true labels exceed the {MAX_TABLE_CELLS}-cell contingency table the metrics support"
            ));
        }
        let mut counts = vec![0u64; clusters * classes];
        for (&a, &b) in pi.iter().zip(&ti) {
            counts[a * classes + b] += 1;
        }
        Ok(Contingency { counts, clusters, classes, n: pred.len() })
    }

    fn row_sums(&self) -> Vec<u64> {
        self.counts.chunks(self.classes).map(|r| r.iter().sum()).collect()
    }

    fn col_sums(&self) -> Vec<u64> {
        let mut s = vec![0u64; self.classes];
        for r in self.counts.chunks(self.classes) {
            s.iter_mut().zip(r).for_each(|(a, &b)| *a += b);
        }
        s
    }
}

/// Maps labels to 0..k in order of their sorted distinct values.
fn dense_ids(labels: &[i64]) -> (Vec<usize>, usize) {
    let mut uniq = labels.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    let ids = labels.iter().map(|l| uniq.binary_search(l).unwrap()).collect();
    (ids, uniq.len())
}

/// Clustering accuracy: the fraction of points whose cluster is matched to their class under the best
/// one-to-one matching of clusters to classes (unmatched clusters count as wrong), as computed with
/// `scipy.optimize.linear_sum_assignment` on the contingency table.
pub fn accuracy(pred: &[i64], truth: &[i64]) -> Result<f64> {
    let c = Contingency::new(pred, truth)?;
    Ok(accuracy_of(&c))
}

/// Fraction of points on the best one-to-one matching of clusters to classes (maximum matched count).
fn accuracy_of(c: &Contingency) -> f64 {
    // Kuhn–Munkres wants no more rows than columns: put the shorter side on the rows.
    let (rows, cols) = (c.clusters.min(c.classes), c.clusters.max(c.classes));
    let count = |r: usize, col: usize| if c.clusters <= c.classes { c.counts[r * c.classes + col] } else { c.counts[col * c.classes + r] };
    // Counts are at most n, far inside i64.
    let weights: Vec<i64> = (0..rows * cols).map(|i| count(i / cols, i % cols) as i64).collect();
    let Ok(table) = Matrix::from_vec(rows, cols, weights) else {
        return 0.0; // unreachable: the vector has rows × cols entries
    };
    let (matched, _) = kuhn_munkres(&table);
    matched as f64 / c.n as f64
}

fn entropy(sums: &[u64], n: usize) -> f64 {
    let n = n as f64;
    -sums.iter().filter(|&&s| s > 0).map(|&s| (s as f64 / n) * (s as f64 / n).ln()).sum::<f64>()
}

/// Normalized mutual information, sklearn's `normalized_mutual_info_score` with the arithmetic mean:
/// MI / ((H(pred) + H(truth)) / 2); 1 when both labellings have a single group, 0 when MI is 0.
pub fn nmi(pred: &[i64], truth: &[i64]) -> Result<f64> {
    let c = Contingency::new(pred, truth)?;
    Ok(nmi_of(&c))
}

fn nmi_of(c: &Contingency) -> f64 {
    // sklearn's special case: no split on either side is a perfect match.
    if c.clusters == 1 && c.classes == 1 {
        return 1.0;
    }
    let (a, b) = (c.row_sums(), c.col_sums());
    if a.len() == 1 || b.len() == 1 {
        return 0.0;
    }
    let n = c.n as f64;
    let mut mi = 0.0;
    for i in 0..c.clusters {
        for j in 0..c.classes {
            let nij = c.counts[i * c.classes + j];
            if nij > 0 {
                let nij = nij as f64;
                mi += nij / n * (n * nij / (a[i] as f64 * b[j] as f64)).ln();
            }
        }
    }
    let mi = mi.max(0.0);
    if mi == 0.0 {
        return 0.0;
    }
    let norm = (entropy(&a, c.n) + entropy(&b, c.n)) / 2.0;
    mi / norm
}

/// Adjusted Rand index, sklearn's `adjusted_rand_score` (pair-counting form, exact integer pair counts).
pub fn ari(pred: &[i64], truth: &[i64]) -> Result<f64> {
    let c = Contingency::new(pred, truth)?;
    Ok(ari_of(&c))
}

fn ari_of(c: &Contingency) -> f64 {
    // Mirrors sklearn.metrics.cluster.pair_confusion_matrix; i128 keeps n⁴-sized products exact.
    let n = c.n as i128;
    let sq = |v: &[u64]| v.iter().map(|&x| (x as i128) * (x as i128)).sum::<i128>();
    let sum_squares = sq(&c.counts);
    let sa = sq(&c.row_sums());
    let sb = sq(&c.col_sums());
    let tp = sum_squares - n;
    let fp = sa - sum_squares; // same cluster, different class
    let fn_ = sb - sum_squares; // same class, different cluster
    let tn = n * n - fp - fn_ - sum_squares;
    if fn_ == 0 && fp == 0 {
        return 1.0;
    }
    let num = 2.0 * ((tp * tn - fn_ * fp) as f64);
    let den = ((tp + fn_) * (fn_ + tn) + (tp + fp) * (fp + tn)) as f64;
    num / den
}

/// All three scores from one contingency table.
pub fn scores(pred: &[i64], truth: &[i64]) -> Result<Scores> {
    let c = Contingency::new(pred, truth)?;
    Ok(Scores { acc: accuracy_of(&c), nmi: nmi_of(&c), ari: ari_of(&c) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Largest matched count over every one-to-one map of the shorter side into the longer one.
    fn brute(table: &[Vec<u64>]) -> u64 {
        fn rec(t: &[Vec<u64>], i: usize, used: &mut Vec<bool>) -> u64 {
            if i == t.len() {
                return 0;
            }
            let mut best = rec(t, i + 1, used); // row i unmatched (more rows than columns)
            for j in 0..used.len() {
                if !used[j] {
                    used[j] = true;
                    best = best.max(t[i][j] + rec(t, i + 1, used));
                    used[j] = false;
                }
            }
            best
        }
        rec(table, 0, &mut vec![false; table[0].len()])
    }

    #[test]
    fn accuracy_is_the_best_matching_on_rectangular_tables() {
        let mut rng = crate::rng::Rng::new(7);
        for &(clusters, classes) in &[(1, 1), (3, 3), (2, 5), (5, 2), (6, 6), (4, 7), (7, 4)] {
            for _ in 0..20 {
                let n = 60;
                let pred: Vec<i64> = (0..n).map(|_| rng.below(clusters) as i64).collect();
                let truth: Vec<i64> = (0..n).map(|_| rng.below(classes) as i64).collect();
                // The table over the labels that occur, as the metrics build it.
                let mut ps: Vec<i64> = pred.clone();
                ps.sort_unstable();
                ps.dedup();
                let mut ts: Vec<i64> = truth.clone();
                ts.sort_unstable();
                ts.dedup();
                let mut table = vec![vec![0u64; ts.len()]; ps.len()];
                for (p, t) in pred.iter().zip(&truth) {
                    table[ps.binary_search(p).unwrap()][ts.binary_search(t).unwrap()] += 1;
                }
                let want = brute(&table) as f64 / n as f64;
                assert_eq!(accuracy(&pred, &truth).unwrap(), want, "{clusters}×{classes}: {table:?}");
            }
        }
    }
}
