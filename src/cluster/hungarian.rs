//! Minimum-cost assignment on a rectangular cost matrix (the Hungarian method with potentials,
//! Jonker–Volgenant style shortest augmenting paths, O(r²·c) for r ≤ c). Used by clustering accuracy to
//! match predicted clusters to classes; same result as `scipy.optimize.linear_sum_assignment`
//! (the optimal total, not necessarily the same tie-breaking).

/// Pairs `(row, col)` of a minimum-cost assignment of `cost` (rows×cols, row-major): every row is matched
/// when rows ≤ cols, every column otherwise; min(rows, cols) pairs in all, sorted by row.
pub fn min_cost_assignment(cost: &[f64], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    assert_eq!(cost.len(), rows * cols, "cost matrix size");
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    if rows > cols {
        // Solve the transpose, where the shorter side is the rows.
        let t: Vec<f64> = (0..cols * rows).map(|idx| cost[(idx % rows) * cols + idx / rows]).collect();
        let mut pairs: Vec<(usize, usize)> = min_cost_assignment(&t, cols, rows).into_iter().map(|(c, r)| (r, c)).collect();
        pairs.sort_unstable();
        return pairs;
    }
    let (n, m) = (rows, cols);
    let a = |i: usize, j: usize| cost[(i - 1) * m + (j - 1)];
    // 1-based: column 0 is a virtual start; p[j] = row matched to column j (0 = free).
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![0.0f64; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        minv.fill(f64::INFINITY);
        used.fill(false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=m {
                if !used[j] {
                    let cur = a(i0, j) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        // Augment along the path back to the virtual column.
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut pairs: Vec<(usize, usize)> = (1..=m).filter(|&j| p[j] != 0).map(|j| (p[j] - 1, j - 1)).collect();
    pairs.sort_unstable();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exhaustive minimum over all injective maps of the shorter side into the longer one.
    fn brute(cost: &[f64], r: usize, c: usize) -> f64 {
        fn rec(cost: &[f64], r: usize, c: usize, i: usize, used: &mut Vec<bool>, t: bool) -> f64 {
            let (short, long) = if t { (c, r) } else { (r, c) };
            if i == short {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for j in 0..long {
                if !used[j] {
                    used[j] = true;
                    let w = if t { cost[j * c + i] } else { cost[i * c + j] };
                    best = best.min(w + rec(cost, r, c, i + 1, used, t));
                    used[j] = false;
                }
            }
            best
        }
        let t = r > c;
        rec(cost, r, c, 0, &mut vec![false; r.max(c)], t)
    }

    #[test]
    fn optimal_on_small_random_rectangular_matrices() {
        let mut rng = crate::rng::Rng::new(7);
        for &(r, c) in &[(1, 1), (3, 3), (2, 5), (5, 2), (6, 6), (4, 7), (7, 4)] {
            for _ in 0..20 {
                let cost: Vec<f64> = (0..r * c).map(|_| rng.below(10) as f64).collect();
                let pairs = min_cost_assignment(&cost, r, c);
                assert_eq!(pairs.len(), r.min(c));
                let mut rows: Vec<_> = pairs.iter().map(|p| p.0).collect();
                let mut cols: Vec<_> = pairs.iter().map(|p| p.1).collect();
                rows.dedup();
                cols.sort_unstable();
                cols.dedup();
                assert_eq!((rows.len(), cols.len()), (r.min(c), r.min(c)));
                let total: f64 = pairs.iter().map(|&(i, j)| cost[i * c + j]).sum();
                assert_eq!(total, brute(&cost, r, c), "{r}x{c} {cost:?}");
            }
        }
    }
}
