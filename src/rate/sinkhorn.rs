//! Log-domain Sinkhorn on an affinity matrix K (m×m) with uniform marginals, and its backward pass.
//!
//! Mirrors LeslieTrue/CPP `model/sink_distance.py`, `SinkhornDistance.forward` as `main.py` calls it on
//! `self_coeff = |C Cᵀ|` (there `C = -c`, so `M(C,u,v) = (K + u + vᵀ)/η`: a larger affinity gives a larger
//! plan entry; the diagonal is kept). With μ = ν = 1/m, u = v = 0 and half-step t = 0, 1, …:
//!
//! - even t (row step): `u ← η(log μ − logsumexp_j((K_ij + u_i + v_j)/η)) + u`
//! - odd t (column step): `v ← η(log ν − logsumexp_i((K_ij + u_i + v_j)/η)) + v`, then v is detached
//! - plan P = exp((K + u + vᵀ)/η); `main.py` then uses Π = m·P.
//!
//! We evaluate the row step as `u_i = η log μ − η logsumexp_j((K_ij + v_j)/η)`: the old u_i factors out
//! of the logsumexp and cancels, identically in value and in derivative (∂u_new/∂u_old = 1 − Σ_j softmax = 0),
//! and this form never subtracts two large numbers. Likewise for v. The reference's early exit
//! (`err < 1e-12`) only fires once the iteration has converged to the last digit, where continuing changes
//! nothing, so it is not reproduced; nor is `v[v > 9e8] = 0`, unreachable for |K| ≤ 1 inputs of finite size.

use super::SinkhornGradient;
use crate::linalg::Real;
use rayon::prelude::*;

/// What the backward pass needs: the plan and the potentials after every half-step.
pub struct SinkhornTrace<T> {
    /// Π = m · P, m×m row-major (rows sum to 1 after a row step).
    pub pi: Vec<T>,
    /// `u_after[t]`, `v_after[t]`: the potentials after half-step t.
    u_after: Vec<Vec<T>>,
    v_after: Vec<Vec<T>>,
    m: usize,
    eta: T,
}

/// Rows at a time handed to one rayon task (keeps the task count moderate for m up to 16k).
const ROW_BLOCK: usize = 16;

/// For every row i: −η logsumexp_j((K_ij + v_j)/η) + η log μ.
fn row_step<T: Real>(k: &[T], v: &[T], m: usize, eta: T, log_mu: T) -> Vec<T> {
    let inv_eta = T::one() / eta;
    let mut u = vec![T::zero(); m];
    u.par_chunks_mut(ROW_BLOCK).enumerate().for_each(|(b, out)| {
        for (r, ui) in out.iter_mut().enumerate() {
            let row = &k[(b * ROW_BLOCK + r) * m..][..m];
            let mut mx = T::from_f64(f64::NEG_INFINITY);
            for (kij, vj) in row.iter().zip(v) {
                mx = mx.max((*kij + *vj) * inv_eta);
            }
            let mut s = T::zero();
            for (kij, vj) in row.iter().zip(v) {
                s += ((*kij + *vj) * inv_eta - mx).exp();
            }
            *ui = eta * (log_mu - mx - s.ln());
        }
    });
    u
}

/// For every column j: −η logsumexp_i((K_ij + u_i)/η) + η log ν. Walks K row by row (contiguous) with one
/// running max and sum per column; each task owns a block of columns.
fn col_step<T: Real>(k: &[T], u: &[T], m: usize, eta: T, log_nu: T) -> Vec<T> {
    let inv_eta = T::one() / eta;
    const COL_BLOCK: usize = 256;
    let mut v = vec![T::zero(); m];
    v.par_chunks_mut(COL_BLOCK).enumerate().for_each(|(b, out)| {
        let c0 = b * COL_BLOCK;
        let w = out.len();
        let mut mx = vec![T::from_f64(f64::NEG_INFINITY); w];
        for i in 0..m {
            let row = &k[i * m + c0..][..w];
            for (mj, kij) in mx.iter_mut().zip(row) {
                *mj = mj.max((*kij + u[i]) * inv_eta);
            }
        }
        let mut s = vec![T::zero(); w];
        for i in 0..m {
            let row = &k[i * m + c0..][..w];
            for ((sj, kij), mj) in s.iter_mut().zip(row).zip(&mx) {
                *sj += ((*kij + u[i]) * inv_eta - *mj).exp();
            }
        }
        for ((vj, sj), mj) in out.iter_mut().zip(&s).zip(&mx) {
            *vj = eta * (log_nu - *mj - sj.ln());
        }
    });
    v
}

/// Runs `half_iters` half-steps on K (m×m) and returns Π = m·exp((K + u + vᵀ)/η) with the trace.
pub fn sinkhorn_forward<T: Real>(k: &[T], m: usize, eta: f64, half_iters: usize) -> SinkhornTrace<T> {
    let eta_t = T::from_f64(eta);
    let log_marg = T::from_f64(-(m as f64).ln());
    let mut u = vec![T::zero(); m];
    let mut v = vec![T::zero(); m];
    let mut u_after = Vec::with_capacity(half_iters);
    let mut v_after = Vec::with_capacity(half_iters);
    for t in 0..half_iters {
        if t % 2 == 0 {
            u = row_step(k, &v, m, eta_t, log_marg);
        } else {
            v = col_step(k, &u, m, eta_t, log_marg);
        }
        u_after.push(u.clone());
        v_after.push(v.clone());
    }
    let inv_eta = T::one() / eta_t;
    let scale = T::from_usize(m);
    let mut pi = vec![T::zero(); m * m];
    pi.par_chunks_mut(m).enumerate().for_each(|(i, row)| {
        let krow = &k[i * m..][..m];
        for ((p, kij), vj) in row.iter_mut().zip(krow).zip(&v) {
            *p = scale * ((*kij + u[i] + *vj) * inv_eta).exp();
        }
    });
    SinkhornTrace { pi, u_after, v_after, m, eta: eta_t }
}

/// Given G = ∂L/∂Π (m×m), returns ∂L/∂K (m×m) under the chosen gradient semantics.
///
/// Reverse-mode through the unrolled iterations. Π_ij = m·exp((K_ij + u_i + v_j)/η) gives
/// ∂L/∂K_ij = G_ij Π_ij/η, ∂L/∂u_i = Σ_j G_ij Π_ij/η, ∂L/∂v_j = Σ_i G_ij Π_ij/η. A row step
/// u_i = η log μ − η lse_j((K_ij + v_j)/η) with s = softmax_j adds −ḡu_i s_ij to ∂K and −Σ_i ḡu_i s_ij to ∂v;
/// a column step is the transpose. `Reference` drops every gradient reaching v (v is detached in
/// `sink_distance.py`), so only the last row step contributes; `Exact` keeps them.
pub fn sinkhorn_backward<T: Real>(k: &[T], trace: &SinkhornTrace<T>, g_pi: &[T], mode: SinkhornGradient) -> Vec<T> {
    let m = trace.m;
    let eta = trace.eta;
    let inv_eta = T::one() / eta;
    let exact = mode == SinkhornGradient::Exact;
    let pi = &trace.pi;
    // ∂L/∂K from the final exp, and the potentials' gradients.
    let mut g_k = vec![T::zero(); m * m];
    let mut g_u = vec![T::zero(); m];
    g_k.par_chunks_mut(m).zip(g_u.par_iter_mut()).enumerate().for_each(|(i, (row, gu))| {
        let mut s = T::zero();
        for ((gk, g), p) in row.iter_mut().zip(&g_pi[i * m..][..m]).zip(&pi[i * m..][..m]) {
            *gk = *g * *p * inv_eta;
            s += *gk;
        }
        *gu = s;
    });
    let mut g_v = if exact { column_sums(&g_k, m) } else { vec![T::zero(); m] };
    let zeros = vec![T::zero(); m];
    let half_iters = trace.u_after.len();
    for t in (0..half_iters).rev() {
        if t % 2 == 0 {
            // Row step t read v as it was before it (v is unchanged by a row step).
            let v_in = if t == 0 { &zeros } else { &trace.v_after[t - 1] };
            let add_v = row_step_backward(k, v_in, &g_u, m, inv_eta, &mut g_k);
            if exact {
                g_v.iter_mut().zip(&add_v).for_each(|(a, b)| *a += *b);
            }
            g_u.iter_mut().for_each(|x| *x = T::zero());
        } else if exact {
            let u_in = &trace.u_after[t - 1];
            let add_u = col_step_backward(k, u_in, &g_v, m, inv_eta, &mut g_k);
            g_u.iter_mut().zip(&add_u).for_each(|(a, b)| *a += *b);
            g_v.iter_mut().for_each(|x| *x = T::zero());
        }
    }
    g_k
}

fn column_sums<T: Real>(a: &[T], m: usize) -> Vec<T> {
    let mut s = vec![T::zero(); m];
    for row in a.chunks(m) {
        s.iter_mut().zip(row).for_each(|(x, y)| *x += *y);
    }
    s
}

/// Row step backward: g_K_ij −= g_u_i s_ij with s = softmax_j((K_ij + v_j)/η); returns −Σ_i g_u_i s_ij.
fn row_step_backward<T: Real>(k: &[T], v: &[T], g_u: &[T], m: usize, inv_eta: T, g_k: &mut [T]) -> Vec<T> {
    let parts: Vec<Vec<T>> = g_k
        .par_chunks_mut(m * ROW_BLOCK)
        .enumerate()
        .map(|(b, rows)| {
            let mut acc = vec![T::zero(); m];
            let mut s = vec![T::zero(); m];
            for (r, gk_row) in rows.chunks_mut(m).enumerate() {
                let i = b * ROW_BLOCK + r;
                if g_u[i] == T::zero() {
                    continue;
                }
                let krow = &k[i * m..][..m];
                let mut mx = T::from_f64(f64::NEG_INFINITY);
                for (sj, (kij, vj)) in s.iter_mut().zip(krow.iter().zip(v)) {
                    *sj = (*kij + *vj) * inv_eta;
                    mx = mx.max(*sj);
                }
                let mut tot = T::zero();
                for sj in s.iter_mut() {
                    *sj = (*sj - mx).exp();
                    tot += *sj;
                }
                let c = g_u[i] / tot;
                for ((gk, a), sj) in gk_row.iter_mut().zip(acc.iter_mut()).zip(&s) {
                    let d = c * *sj;
                    *gk -= d;
                    *a -= d;
                }
            }
            acc
        })
        .collect();
    let mut out = vec![T::zero(); m];
    for p in parts {
        out.iter_mut().zip(&p).for_each(|(a, b)| *a += *b);
    }
    out
}

/// Column step backward: g_K_ij −= g_v_j t_ij with t = softmax_i((K_ij + u_i)/η); returns −Σ_j g_v_j t_ij.
fn col_step_backward<T: Real>(k: &[T], u: &[T], g_v: &[T], m: usize, inv_eta: T, g_k: &mut [T]) -> Vec<T> {
    // Column log-normalisers first (same walk as the forward column step), then a row-parallel pass.
    let lse = col_step(k, u, m, T::one() / inv_eta, T::zero()); // = −η lse_i((K_ij + u_i)/η)
    let mut out = vec![T::zero(); m];
    g_k.par_chunks_mut(m).zip(out.par_iter_mut()).enumerate().for_each(|(i, (row, o))| {
        let krow = &k[i * m..][..m];
        let mut acc = T::zero();
        for j in 0..m {
            let t = ((krow[j] + u[i] + lse[j]) * inv_eta).exp();
            let d = g_v[j] * t;
            row[j] -= d;
            acc -= d;
        }
        *o = acc;
    });
    out
}
