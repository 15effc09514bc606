//! Log-domain Sinkhorn on a symmetric affinity matrix K (m×m) with uniform marginals, and its backward pass.
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
//! and this form never subtracts two large numbers. Likewise for v. Because K is symmetric, the column
//! step is the row step with the roles of u and v swapped, so every pass walks K row by row (contiguous).
//! The reference's early exit (`err < 1e-12`) only fires once the iteration has converged to the last digit,
//! where continuing changes nothing, so it is not reproduced; nor is `v[v > 9e8] = 0`, unreachable for
//! finite inputs of the sizes we accept.

use crate::linalg::exp::{exp_in_place, exp_sum_in_place};
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

/// Rows handed to one rayon task.
const ROW_BLOCK: usize = 8;

/// Row r of softmax((K + 1·wᵀ)/η) into `s`; returns logsumexp((K_r + w)/η).
#[inline]
fn softmax_row<T: Real>(krow: &[T], w: &[T], inv_eta: T, s: &mut [T]) -> T {
    let mut mx = T::from_f64(f64::NEG_INFINITY);
    for ((sj, kj), wj) in s.iter_mut().zip(krow).zip(w) {
        *sj = (*kj + *wj) * inv_eta;
        mx = mx.max(*sj);
    }
    s.iter_mut().for_each(|x| *x -= mx);
    let tot = exp_sum_in_place(s);
    let inv = T::one() / tot;
    s.iter_mut().for_each(|x| *x *= inv);
    mx + tot.ln()
}

/// For every row r: η log μ − η logsumexp_j((K_rj + w_j)/η). With w = v this is the row step (new u); by the
/// symmetry of K, with w = u it is the column step (new v).
fn half_step<T: Real>(k: &[T], w: &[T], m: usize, eta: T, log_marg: T) -> Vec<T> {
    let inv_eta = T::one() / eta;
    let mut out = vec![T::zero(); m];
    out.par_chunks_mut(ROW_BLOCK).enumerate().for_each_init(
        || vec![T::zero(); m],
        |s, (b, o)| {
            for (r, x) in o.iter_mut().enumerate() {
                let lse = softmax_row(&k[(b * ROW_BLOCK + r) * m..][..m], w, inv_eta, s);
                *x = eta * (log_marg - lse);
            }
        },
    );
    out
}

/// Runs `half_iters` half-steps on K (m×m, symmetric) and returns Π = m·exp((K + u + vᵀ)/η) with the trace.
pub fn sinkhorn_forward<T: Real>(k: &[T], m: usize, eta: f64, half_iters: usize) -> SinkhornTrace<T> {
    let eta_t = T::from_f64(eta);
    let log_marg = T::from_f64(-(m as f64).ln());
    let mut u = vec![T::zero(); m];
    let mut v = vec![T::zero(); m];
    let mut u_after = Vec::with_capacity(half_iters);
    let mut v_after = Vec::with_capacity(half_iters);
    for t in 0..half_iters {
        if t % 2 == 0 {
            u = half_step(k, &v, m, eta_t, log_marg);
        } else {
            v = half_step(k, &u, m, eta_t, log_marg);
        }
        u_after.push(u.clone());
        v_after.push(v.clone());
    }
    let inv_eta = T::one() / eta_t;
    let log_m = T::from_f64((m as f64).ln());
    let mut pi = vec![T::zero(); m * m];
    pi.par_chunks_mut(m).enumerate().for_each(|(i, row)| {
        // m·exp(x) = exp(x + log m).
        let ui = u[i] * inv_eta + log_m;
        for ((p, kij), vj) in row.iter_mut().zip(&k[i * m..][..m]).zip(&v) {
            *p = (*kij + *vj) * inv_eta + ui;
        }
        exp_in_place(row);
    });
    SinkhornTrace { pi, u_after, v_after, m, eta: eta_t }
}

/// Given G = ∂L/∂Π (m×m), returns a matrix D whose symmetric part is that of ∂L/∂K: D + Dᵀ = ∂L/∂K + (∂L/∂K)ᵀ.
/// That is all a caller with a symmetric K (a function of C Cᵀ) needs, and it lets the column steps'
/// contributions be written row-wise, transposed.
///
/// Reverse mode through the unrolled iterations. Π_ij = m·exp((K_ij + u_i + v_j)/η) gives
/// ∂L/∂K_ij = G_ij Π_ij/η, ∂L/∂u_i = Σ_j G_ij Π_ij/η, ∂L/∂v_j = Σ_i G_ij Π_ij/η. A row step
/// u_i = η log μ − η lse_j((K_ij + v_j)/η) with s = softmax_j adds −ḡu_i s_ij to ∂K and −Σ_i ḡu_i s_ij to ∂v;
/// a column step is the transpose. `Reference` drops every gradient reaching v (v is detached in
/// `sink_distance.py`), so only the last row step contributes; `Exact` keeps them.
pub fn sinkhorn_backward<T: Real>(k: &[T], trace: &SinkhornTrace<T>, g_pi: &[T], mode: SinkhornGradient) -> Vec<T> {
    let m = trace.m;
    let inv_eta = T::one() / trace.eta;
    let exact = mode == SinkhornGradient::Exact;
    let pi = &trace.pi;
    // ∂L/∂K from the final exp, ∂L/∂u (row sums) and ∂L/∂v (column sums).
    let mut g_k = vec![T::zero(); m * m];
    let mut g_u = vec![T::zero(); m];
    let col_parts: Vec<Vec<T>> = g_k
        .par_chunks_mut(m * ROW_BLOCK)
        .zip(g_u.par_chunks_mut(ROW_BLOCK))
        .enumerate()
        .map(|(b, (rows, gus))| {
            let mut cols = if exact { vec![T::zero(); m] } else { Vec::new() };
            for (r, (row, gu)) in rows.chunks_mut(m).zip(gus.iter_mut()).enumerate() {
                let i = b * ROW_BLOCK + r;
                let mut s = T::zero();
                for ((gk, g), p) in row.iter_mut().zip(&g_pi[i * m..][..m]).zip(&pi[i * m..][..m]) {
                    *gk = *g * *p * inv_eta;
                    s += *gk;
                }
                *gu = s;
                if exact {
                    cols.iter_mut().zip(row.iter()).for_each(|(c, x)| *c += *x);
                }
            }
            cols
        })
        .collect();
    let mut g_v = vec![T::zero(); m];
    if exact {
        sum_into(&mut g_v, &col_parts);
    }
    let zeros = vec![T::zero(); m];
    let half_iters = trace.u_after.len();
    for t in (0..half_iters).rev() {
        if t % 2 == 0 {
            // Row step t read v as it was before it (a row step leaves v unchanged). When it is the last
            // half-step, its softmax rows are Π's rows.
            let v_in = if t == 0 { &zeros } else { &trace.v_after[t - 1] };
            let known = if t + 1 == half_iters { Some(pi.as_slice()) } else { None };
            let add_v = softmax_backward(k, v_in, &g_u, m, inv_eta, known, exact, &mut g_k);
            if exact {
                g_v.iter_mut().zip(&add_v).for_each(|(a, b)| *a += *b);
            }
            g_u.iter_mut().for_each(|x| *x = T::zero());
        } else if exact {
            // Column step: by symmetry, row j of softmax((K + uᵀ)/η); its ∂K lands transposed (see above).
            let add_u = softmax_backward(k, &trace.u_after[t - 1], &g_v, m, inv_eta, None, true, &mut g_k);
            g_u.iter_mut().zip(&add_u).for_each(|(a, b)| *a += *b);
            g_v.iter_mut().for_each(|x| *x = T::zero());
        }
    }
    g_k
}

fn sum_into<T: Real>(out: &mut [T], parts: &[Vec<T>]) {
    for p in parts {
        out.iter_mut().zip(p).for_each(|(a, b)| *a += *b);
    }
}

/// For each row r with S_r = softmax((K_r + w)/η) (or `known` rows): g_K_r −= g_r·S_r, and (if `want_acc`)
/// returns −Σ_r g_r·S_r.
#[allow(clippy::too_many_arguments)]
fn softmax_backward<T: Real>(
    k: &[T],
    w: &[T],
    g: &[T],
    m: usize,
    inv_eta: T,
    known: Option<&[T]>,
    want_acc: bool,
    g_k: &mut [T],
) -> Vec<T> {
    let parts: Vec<Vec<T>> = g_k
        .par_chunks_mut(m * ROW_BLOCK)
        .enumerate()
        .map(|(b, rows)| {
            let mut acc = if want_acc { vec![T::zero(); m] } else { Vec::new() };
            let mut s = vec![T::zero(); m];
            for (r, gk_row) in rows.chunks_mut(m).enumerate() {
                let i = b * ROW_BLOCK + r;
                if g[i] == T::zero() {
                    continue;
                }
                let srow: &[T] = match known {
                    Some(p) => &p[i * m..][..m],
                    None => {
                        softmax_row(&k[i * m..][..m], w, inv_eta, &mut s);
                        &s
                    }
                };
                let c = g[i];
                for (gk, sj) in gk_row.iter_mut().zip(srow) {
                    *gk -= c * *sj;
                }
                if want_acc {
                    acc.iter_mut().zip(srow).for_each(|(a, sj)| *a -= c * *sj);
                }
            }
            acc
        })
        .collect();
    let mut out = vec![T::zero(); m];
    if want_acc {
        sum_into(&mut out, &parts);
    }
    out
}
