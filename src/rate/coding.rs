//! Coding rates and their analytic gradients (docs/design.md §1).
//!
//! Mirrors LeslieTrue/CPP `loss/loss_fn.py`, `MLCLoss`: `compute_discrimn_loss` is R(Z) (W = Zᵀ,
//! scalar = d/(m ε²)) and `compute_compress_loss` is R_c(Z, Π) (trPi = column sums of Π + 1e-8, the
//! j-th Gram matrix is Zᵀ diag(Π_:,j) Z, weighted by trPi_j/(2m)).
//!
//! Gradients (M = I + αG, d logdet M = tr(M⁻¹ dM)):
//! - R = ½ logdet(I + α₀ZᵀZ), α₀ = d/(mε²): ∂R/∂Z = α₀ Z M₀⁻¹.
//! - R_c = Σ_j (τ_j/2m) logdet M_j, τ_j = Σ_i Π_ij + 1e-8, α_j = d/(τ_j ε²), M_j = I + α_j Zᵀdiag(Π_:,j)Z:
//!   ∂R_c/∂z_i = (d/(mε²)) Σ_j Π_ij M_j⁻¹ z_i, and
//!   ∂R_c/∂Π_ij = (logdet M_j − d + tr M_j⁻¹)/(2m) + (d/(2mε²)) z_iᵀ M_j⁻¹ z_i
//!   (the first part is through τ_j, using α_j tr(M_j⁻¹G_j) = d − tr M_j⁻¹).

use crate::error::Result;
use crate::linalg::cholesky::{logdet_inverse_upper, logdet_lower_inverse_in_place};
use crate::linalg::{gemm, Real, Trans};
use rayon::prelude::*;

/// R(Z) = ½ logdet(I + d/(m ε²) ZᵀZ) and, if `want_grad`, ∂R/∂Z (m×d).
pub fn rate_with_grad<T: Real>(z: &[T], m: usize, d: usize, eps_sq: f64, want_grad: bool) -> Result<(T, Vec<T>)> {
    let alpha = T::from_f64(d as f64 / (m as f64 * eps_sq));
    let mut a = vec![T::zero(); d * d];
    gemm(d, d, m, alpha, z, d, Trans::Yes, z, d, Trans::No, T::zero(), &mut a, d);
    for k in 0..d {
        a[k * d + k] += T::one();
    }
    let mut work = vec![T::zero(); d * d];
    let logdet = logdet_lower_inverse_in_place(&mut a, d, &mut work, "R(Z): I + d/(mε²)ZᵀZ")?;
    let half = T::from_f64(0.5);
    if !want_grad {
        return Ok((half * logdet, Vec::new()));
    }
    // Z M⁻¹ = (Z L⁻ᵀ) L⁻¹ (see linalg::cholesky on why not through M⁻¹).
    let mut w = vec![T::zero(); m * d];
    gemm(m, d, d, T::one(), z, d, Trans::No, &a, d, Trans::Yes, T::zero(), &mut w, d);
    let mut g = vec![T::zero(); m * d];
    gemm(m, d, d, alpha, &w, d, Trans::No, &a, d, Trans::No, T::zero(), &mut g, d);
    Ok((half * logdet, g))
}

/// R_c(Z, Π) with ∂R_c/∂Z (m×d) and ∂R_c/∂Π (m×m). Π is m×m row-major, entries ≥ 0.
pub struct RateC<T> {
    pub value: T,
    pub grad_z: Vec<T>,
    pub grad_pi: Vec<T>,
}

/// Per-task scratch for the per-cluster (per-column j) work.
struct Scratch<T> {
    scaled: Vec<T>, // diag(Π_:,j) Z, m×d
    gram: Vec<T>,   // M_j, then L_j⁻¹ (M_j = L_j L_jᵀ), d×d
    work: Vec<T>,   // d×d
    zl: Vec<T>,     // Z L_j⁻ᵀ, m×d
    zm: Vec<T>,     // Z M_j⁻¹ = Z L_j⁻ᵀ L_j⁻¹, m×d
    grad_z: Vec<T>, // this task's share of ∂R_c/∂Z, m×d
    value: T,
}

impl<T: Real> Scratch<T> {
    fn new(m: usize, d: usize) -> Self {
        Scratch {
            scaled: vec![T::zero(); m * d],
            gram: vec![T::zero(); d * d],
            work: vec![T::zero(); d * d],
            zl: vec![T::zero(); m * d],
            zm: vec![T::zero(); m * d],
            grad_z: vec![T::zero(); m * d],
            value: T::zero(),
        }
    }
    fn bytes(m: usize, d: usize) -> usize {
        (5 * m * d + 2 * d * d) * std::mem::size_of::<T>()
    }
}

/// Host memory we allow the per-task scratch of R_c to take; above it, fewer tasks run at once.
const SCRATCH_BUDGET_BYTES: usize = 1 << 30;

/// Host memory the packed formulation may take for its two m × d(d+1)/2 arrays; above it we fall back to
/// the per-cluster formulation, whose memory is O(m·d) per task.
const PACKED_BUDGET_BYTES: usize = 768 << 20;

/// R_c(Z, Π) and its gradients, choosing the formulation: packed (three large GEMMs, fastest) when d ≤ m and
/// 2·m·d(d+1)/2 values fit in `PACKED_BUDGET_BYTES`; per cluster otherwise. For d > m the m full d×d
/// inverses of the packed form (≈ d³ each) cost more than its GEMMs save, and the per-cluster form needs only
/// the triangular L⁻¹ (≈ ⅔d³) plus O(m·d²) products.
pub fn rate_c_with_grads<T: Real>(z: &[T], pi: &[T], m: usize, d: usize, eps_sq: f64) -> Result<RateC<T>> {
    let packed_bytes = (2 * m).saturating_mul(d * (d + 1) / 2).saturating_mul(std::mem::size_of::<T>());
    if d <= m && packed_bytes <= PACKED_BUDGET_BYTES {
        rate_c_packed(z, pi, m, d, eps_sq)
    } else {
        rate_c_per_cluster(z, pi, m, d, eps_sq)
    }
}

/// τ_j: column sums of Π (+1e-8 as the reference).
fn cluster_sizes<T: Real>(pi: &[T], m: usize) -> Vec<T> {
    let mut tau = vec![T::from_f64(1e-8); m];
    for row in pi.chunks(m) {
        tau.iter_mut().zip(row).for_each(|(t, p)| *t += *p);
    }
    tau
}

/// Offset of row a of a packed upper triangle (row-major, d columns): element (a, b), b ≥ a, is at
/// `packed_row(a, d) + b − a`.
#[inline]
fn packed_row(a: usize, d: usize) -> usize {
    a * (2 * d - a + 1) / 2
}

/// R_c in the packed formulation. With y_i = the upper triangle of z_i z_iᵀ (length P = d(d+1)/2) stacked in
/// Y (m×P), every Gram matrix at once is a GEMM: G_j = row j of Πᵀ Y. With n_j = the upper triangle of
/// M_j⁻¹, off-diagonal entries doubled (N, m×P): z_iᵀ M_j⁻¹ z_i = (Y Nᵀ)_ij, and Σ_j Π_ij M_j⁻¹ is row i
/// of Π N (off-diagonals halved back). Symmetry halves the work of the per-cluster form, and large GEMMs run
/// near peak. M_j⁻¹ comes from the Cholesky factor (faer's L⁻ᵀL⁻¹); since M_j ⪰ I, ‖M_j⁻¹‖ ≤ 1 and its
/// rounding errors stay at the level of forming M_j itself.
pub fn rate_c_packed<T: Real>(z: &[T], pi: &[T], m: usize, d: usize, eps_sq: f64) -> Result<RateC<T>> {
    let p = d * (d + 1) / 2;
    let tau = cluster_sizes(pi, m);
    let mut y = vec![T::zero(); m * p];
    y.par_chunks_mut(p).zip(z.par_chunks(d)).for_each(|(yi, zi)| {
        for a in 0..d {
            let za = zi[a];
            for (o, zb) in yi[packed_row(a, d)..][..d - a].iter_mut().zip(&zi[a..]) {
                *o = za * *zb;
            }
        }
    });
    // G (m×P): row j = packed Zᵀ diag(Π_:,j) Z; then overwritten by the packed M_j⁻¹ (off-diagonals doubled).
    let mut g = vec![T::zero(); m * p];
    // Πᵀ materialised first: faer ran this product ~15% slower with a transposed left operand, and the
    // transpose costs little (m² elements).
    let mut pi_t = vec![T::zero(); m * m];
    transpose(pi, &mut pi_t, m);
    gemm(m, p, m, T::one(), &pi_t, m, Trans::No, &y, p, Trans::No, T::zero(), &mut g, p);
    drop(pi_t);
    let per_cluster: Vec<Result<(T, T)>> = g
        .par_chunks_mut(p)
        .enumerate()
        .map_init(
            || (vec![T::zero(); d * d], vec![T::zero(); d * d]),
            |(full, work), (j, gj)| {
                let alpha = T::from_f64(d as f64 / eps_sq) / tau[j];
                // Only the row-major upper triangle of M_j is filled: it is all logdet_inverse_upper reads.
                for a in 0..d {
                    let row = &gj[packed_row(a, d)..][..d - a];
                    for (o, v) in full[a * d + a..(a + 1) * d].iter_mut().zip(row) {
                        *o = alpha * *v;
                    }
                    full[a * d + a] += T::one();
                }
                let logdet = logdet_inverse_upper(full, d, work, &format!("R_c: M_{j} = I + α_j Zᵀdiag(Π_:,{j})Z"))?;
                let two = T::one() + T::one();
                let mut tr_inv = T::zero();
                for a in 0..d {
                    let src = &work[a * d + a..(a + 1) * d];
                    tr_inv += src[0];
                    let row = &mut gj[packed_row(a, d)..][..d - a];
                    row[0] = src[0];
                    for (o, v) in row[1..].iter_mut().zip(&src[1..]) {
                        *o = two * *v;
                    }
                }
                Ok((logdet, tr_inv))
            },
        )
        .collect();
    let two_m = T::from_usize(2 * m);
    let mut value = T::zero();
    let mut through_tau = vec![T::zero(); m];
    for (j, r) in per_cluster.into_iter().enumerate() {
        let (logdet, tr_inv) = r?;
        value += tau[j] * logdet / two_m;
        through_tau[j] = (logdet - T::from_usize(d) + tr_inv) / two_m;
    }
    let n = g;
    // ∂R_c/∂Π_ij = through_tau_j + (d/(2mε²)) z_iᵀ M_j⁻¹ z_i.
    let c_q = T::from_f64(d as f64 / (2.0 * m as f64 * eps_sq));
    let mut grad_pi = vec![T::zero(); m * m];
    gemm(m, m, p, c_q, &y, p, Trans::No, &n, p, Trans::Yes, T::zero(), &mut grad_pi, m);
    grad_pi.par_chunks_mut(m).for_each(|row| row.iter_mut().zip(&through_tau).for_each(|(g, t)| *g += *t));
    // ∂R_c/∂z_i = (d/(mε²)) (Σ_j Π_ij M_j⁻¹) z_i. Π N goes into Y's buffer (Y is no longer needed): one
    // large GEMM runs markedly faster than row blocks of it.
    let mut h = y;
    gemm(m, p, m, T::one(), pi, m, Trans::No, &n, p, Trans::No, T::zero(), &mut h, p);
    let c_z = c_q + c_q;
    let half = T::from_f64(0.5);
    let mut grad_z = vec![T::zero(); m * d];
    grad_z.par_chunks_mut(d).zip(h.par_chunks(p)).zip(z.par_chunks(d)).for_each(|((gi, hi), zi)| {
        // (H_i z_i)_a = h_aa z_a + ½ Σ_{b≠a} h_ab z_b with the stored off-diagonals h_ab doubled; each
        // stored pair (a, b > a) feeds both a and b.
        for a in 0..d {
            let row = &hi[packed_row(a, d)..][..d - a];
            let (ga, g_rest) = gi[a..].split_first_mut().expect("a < d");
            let za = zi[a];
            let w = c_z * half * za;
            let mut acc = T::zero();
            for ((hv, zb), gb) in row[1..].iter().zip(&zi[a + 1..]).zip(g_rest.iter_mut()) {
                acc += *hv * *zb;
                *gb += w * *hv;
            }
            *ga += c_z * (row[0] * za + half * acc);
        }
    });
    Ok(RateC { value, grad_z, grad_pi })
}

/// R_c cluster by cluster: for each j, M_j by a GEMM on diag(Π_:,j)Z, its Cholesky factor, and Z M_j⁻¹ as
/// (Z L⁻ᵀ)L⁻¹. Memory O(m·d) per task; used when the packed form would not fit.
pub fn rate_c_per_cluster<T: Real>(z: &[T], pi: &[T], m: usize, d: usize, eps_sq: f64) -> Result<RateC<T>> {
    let tau = cluster_sizes(pi, m);
    // ∂R_c/∂Π is produced column by column: build its transpose (row j = column j), transpose at the end.
    let mut grad_pi_t = vec![T::zero(); m * m];
    let tasks = (rayon::current_num_threads() * 4).min(m).max(1);
    let tasks = tasks.min((SCRATCH_BUDGET_BYTES / Scratch::<T>::bytes(m, d)).max(1));
    let per = m.div_ceil(tasks);
    let partials: Vec<Result<Scratch<T>>> = grad_pi_t
        .par_chunks_mut(per * m)
        .enumerate()
        .map(|(b, gcols)| {
            let mut s = Scratch::new(m, d);
            for (r, gcol) in gcols.chunks_mut(m).enumerate() {
                column_term(z, pi, &tau, m, d, eps_sq, b * per + r, gcol, &mut s)?;
            }
            Ok(s)
        })
        .collect();
    let mut value = T::zero();
    let mut grad_z = vec![T::zero(); m * d];
    for p in partials {
        let p = p?;
        value += p.value;
        grad_z.iter_mut().zip(&p.grad_z).for_each(|(a, b)| *a += *b);
    }
    let mut grad_pi = vec![T::zero(); m * m];
    transpose(&grad_pi_t, &mut grad_pi, m);
    Ok(RateC { value, grad_z, grad_pi })
}

/// Everything that cluster j contributes: value, column j of ∂R_c/∂Π (into `gcol`), share of ∂R_c/∂Z.
#[allow(clippy::too_many_arguments)]
fn column_term<T: Real>(
    z: &[T],
    pi: &[T],
    tau: &[T],
    m: usize,
    d: usize,
    eps_sq: f64,
    j: usize,
    gcol: &mut [T],
    s: &mut Scratch<T>,
) -> Result<()> {
    let tau_j = tau[j];
    let alpha = T::from_f64(d as f64 / eps_sq) / tau_j;
    for i in 0..m {
        let p = pi[i * m + j];
        for (o, x) in s.scaled[i * d..][..d].iter_mut().zip(&z[i * d..][..d]) {
            *o = p * *x;
        }
    }
    // M_j = I + α_j Zᵀ diag(π_j) Z.
    gemm(d, d, m, alpha, z, d, Trans::Yes, &s.scaled, d, Trans::No, T::zero(), &mut s.gram, d);
    for k in 0..d {
        s.gram[k * d + k] += T::one();
    }
    let logdet = logdet_lower_inverse_in_place(&mut s.gram, d, &mut s.work, &format!("R_c: M_{j} = I + α_j Zᵀdiag(Π_:,{j})Z"))?;
    // tr M⁻¹ = ‖L⁻¹‖²_F.
    let tr_inv: T = s.gram.iter().map(|x| *x * *x).sum();
    let two_m = T::from_usize(2 * m);
    s.value += tau_j * logdet / two_m;
    // Z L⁻ᵀ gives z_iᵀM_j⁻¹z_i = ‖(Z L⁻ᵀ)_i‖²; (Z L⁻ᵀ) L⁻¹ = Z M_j⁻¹ gives M_j⁻¹z_i.
    gemm(m, d, d, T::one(), z, d, Trans::No, &s.gram, d, Trans::Yes, T::zero(), &mut s.zl, d);
    gemm(m, d, d, T::one(), &s.zl, d, Trans::No, &s.gram, d, Trans::No, T::zero(), &mut s.zm, d);
    let through_tau = (logdet - T::from_usize(d) + tr_inv) / two_m;
    let c_q = T::from_f64(d as f64 / (2.0 * m as f64 * eps_sq));
    let c_z = c_q + c_q;
    for i in 0..m {
        let zm_i = &s.zm[i * d..][..d];
        let q: T = s.zl[i * d..][..d].iter().map(|a| *a * *a).sum();
        gcol[i] = through_tau + c_q * q;
        let w = c_z * pi[i * m + j];
        for (g, v) in s.grad_z[i * d..][..d].iter_mut().zip(zm_i) {
            *g += w * *v;
        }
    }
    Ok(())
}

fn transpose<T: Real>(src: &[T], dst: &mut [T], m: usize) {
    const B: usize = 32;
    dst.par_chunks_mut(m * B).enumerate().for_each(|(bi, rows)| {
        let i0 = bi * B;
        let nrows = rows.len() / m;
        for j0 in (0..m).step_by(B) {
            for r in 0..nrows {
                for j in j0..(j0 + B).min(m) {
                    rows[r * m + j] = src[j * m + i0 + r];
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn packed_and_per_cluster_forms_agree() {
        let mut rng = Rng::new(9);
        for (m, d) in [(20, 7), (6, 30), (33, 16)] {
            let z: Vec<f64> = (0..m * d).map(|_| rng.normal() * 0.3).collect();
            let mut pi: Vec<f64> = (0..m * m).map(|_| rng.uniform()).collect();
            for row in pi.chunks_mut(m) {
                let s: f64 = row.iter().sum();
                row.iter_mut().for_each(|x| *x /= s);
            }
            let a = rate_c_packed(&z, &pi, m, d, 0.1).unwrap();
            let b = rate_c_per_cluster(&z, &pi, m, d, 0.1).unwrap();
            let close = |x: &[f64], y: &[f64]| x.iter().zip(y).all(|(p, q)| (p - q).abs() <= 1e-10 * (1.0 + q.abs()));
            assert!(close(&[a.value], &[b.value]), "m={m} d={d}: value");
            assert!(close(&a.grad_z, &b.grad_z), "m={m} d={d}: grad_z");
            assert!(close(&a.grad_pi, &b.grad_pi), "m={m} d={d}: grad_pi");
        }
    }
}
