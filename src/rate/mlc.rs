//! The MLC loss on the CPU: forward value and the hand-written backward pass with respect to Z and C.
//!
//! Mirrors LeslieTrue/CPP `main.py`'s training step: `self_coeff = (logits @ logits.T).abs()`,
//! `Pi = sink_layer(self_coeff)[0] * n`, then `loss = MLCLoss(eps=0.1, gamma)(z, Pi) + pigam·0.5·‖Pi‖²`
//! (after warm-up) or `TotalCodingRate(eps=0.1)(z)` = −R(Z) (during warm-up, Π unused).

use super::coding::{rate_c_with_grads, rate_with_grad, RateC};
use super::convert;
use super::sinkhorn::{sinkhorn_backward, sinkhorn_forward, SinkhornTrace};
use super::{MlcOutput, Objective, RateParams};
use crate::error::Result;
use crate::linalg::{gemm, Real, Trans};
use rayon::prelude::*;

/// A = C Cᵀ (m×m), exactly symmetric (the upper triangle mirrored: the GEMM may round A_ij and A_ji
/// differently, and Sinkhorn relies on K = |A| being symmetric).
fn affinity<T: Real>(c: &[T], m: usize, d: usize) -> Vec<T> {
    let mut a = vec![T::zero(); m * m];
    gemm(m, m, d, T::one(), c, d, Trans::No, c, d, Trans::Yes, T::zero(), &mut a, m);
    const B: usize = 64;
    for i0 in (0..m).step_by(B) {
        for j0 in (0..=i0).step_by(B) {
            for i in i0..(i0 + B).min(m) {
                for j in j0..(j0 + B).min(i) {
                    a[i * m + j] = a[j * m + i];
                }
            }
        }
    }
    a
}

/// Π = m · Sinkhorn_η(|C Cᵀ|) and what its backward pass needs: (A = C Cᵀ, K = |A|, trace).
pub(crate) fn membership_trace<T: Real>(c: &[T], m: usize, d: usize, params: &RateParams) -> (Vec<T>, Vec<T>, SinkhornTrace<T>) {
    let a = affinity(c, m, d);
    let k: Vec<T> = a.par_iter().map(|x| x.abs()).collect();
    let trace = sinkhorn_forward(&k, m, params.eta, params.sinkhorn_half_iters);
    (a, k, trace)
}

/// Largest d/ε² for which f32 inputs keep f32 internals in the coding rates. Every M = I + αG there has
/// cond(M) ≤ 1 + d/ε² (‖z_i‖ = 1 gives λ_max(αG) ≤ d/ε²), and forming and factoring M in f32 perturbs its
/// small eigenvalues by about cond·2⁻²⁴; at 2048 that stays near 1e-4 relative. Beyond (e.g. d = 1024 with
/// ε² = 0.1) the coding rates of f32 inputs run in f64, which keeps the f32 path within 1e-3 of f64.
const F32_COND_LIMIT: f64 = 2048.0;

fn wants_f64_internals<T: Real>(d: usize, eps_sq: f64) -> bool {
    T::NAME == "f32" && d as f64 / eps_sq > F32_COND_LIMIT
}

/// R(Z) and ∂R/∂Z, in f64 internally where f32 would be too coarse (see `F32_COND_LIMIT`).
fn rate_part<T: Real>(z: &[T], m: usize, d: usize, eps_sq: f64) -> Result<(T, Vec<T>)> {
    if wants_f64_internals::<T>(d, eps_sq) {
        let (r, g) = rate_with_grad::<f64>(&convert(z), m, d, eps_sq, true)?;
        return Ok((T::from_f64(r), convert(&g)));
    }
    rate_with_grad(z, m, d, eps_sq, true)
}

/// R_c(Z, Π) and its gradients, in f64 internally where f32 would be too coarse.
fn rate_c_part<T: Real>(z: &[T], pi: &[T], m: usize, d: usize, eps_sq: f64) -> Result<RateC<T>> {
    if wants_f64_internals::<T>(d, eps_sq) {
        let r = rate_c_with_grads::<f64>(&convert(z), &convert(pi), m, d, eps_sq)?;
        return Ok(RateC { value: T::from_f64(r.value), grad_z: convert(&r.grad_z), grad_pi: convert(&r.grad_pi) });
    }
    rate_c_with_grads(z, pi, m, d, eps_sq)
}

/// Forward and backward of the TCR or MLC loss (inputs already validated).
pub(crate) fn loss<T: Real>(
    z: &[T],
    c: &[T],
    m: usize,
    d: usize,
    params: &RateParams,
    objective: Objective,
) -> Result<MlcOutput<T>> {
    let (rate, grad_rate) = rate_part(z, m, d, params.eps_sq)?;
    if objective == Objective::Tcr {
        let grad_z = grad_rate.into_iter().map(|g| -g).collect();
        return Ok(MlcOutput { loss: -rate, rate, rate_c: T::zero(), pi_penalty: T::zero(), grad_z, grad_c: Vec::new() });
    }
    let (a, k, trace) = membership_trace(c, m, d, params);
    let pi = &trace.pi;
    let rc = rate_c_part(z, pi, m, d, params.eps_sq)?;
    let gamma = T::from_f64(params.gamma);
    let lambda = T::from_f64(params.lambda);
    // Fixed-size chunks summed in order: rayon's `sum` splits adaptively (work stealing), which would make the
    // loss's last bits depend on thread timing, and a fit must repeat exactly for a seed.
    let pi_sq: T = pi.par_chunks(4096).map(|c| c.iter().map(|p| *p * *p).sum::<T>()).collect::<Vec<T>>().into_iter().sum();
    let pi_penalty = T::from_f64(0.5) * lambda * pi_sq;
    let loss = -rate + gamma * rc.value + pi_penalty;

    let grad_z: Vec<T> = grad_rate.iter().zip(&rc.grad_z).map(|(r, q)| gamma * *q - *r).collect();
    // ∂loss/∂Π = γ ∂R_c/∂Π + λ Π.
    let g_pi: Vec<T> = rc.grad_pi.par_iter().zip(pi.par_iter()).map(|(g, p)| gamma * *g + lambda * *p).collect();
    // Only the symmetric part of this ∂L/∂K is meaningful (see sinkhorn_backward); the product below uses
    // G_A + G_Aᵀ, so that is all it needs.
    let mut g_a = sinkhorn_backward(&k, &trace, &g_pi, params.gradient);
    // Through K = |A|: ∂/∂A = ∂/∂K · sign(A) (sign(0) = 0, as torch's abs backward).
    g_a.par_iter_mut().zip(a.par_iter()).for_each(|(g, x)| {
        *g = if *x > T::zero() {
            *g
        } else if *x < T::zero() {
            -*g
        } else {
            T::zero()
        }
    });
    // Through A = C Cᵀ: ∂/∂C = (G_A + G_Aᵀ) C.
    let mut grad_c = vec![T::zero(); m * d];
    gemm(m, d, m, T::one(), &g_a, m, Trans::No, c, d, Trans::No, T::zero(), &mut grad_c, d);
    gemm(m, d, m, T::one(), &g_a, m, Trans::Yes, c, d, Trans::No, T::one(), &mut grad_c, d);
    Ok(MlcOutput { loss, rate, rate_c: rc.value, pi_penalty, grad_z, grad_c })
}
