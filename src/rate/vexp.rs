//! exp over a slice, vectorisable: the Sinkhorn iterations and the plan take m² exponentials per
//! half-step, and a scalar libm `expf` call per element dominated them. For f32 a branch-free
//! Cody–Waite reduction plus a degree-6 polynomial (Cephes `expf` coefficients), which the compiler turns into
//! SIMD; relative error ≤ 2 ulp on [−87, 88], 0 below −87 (instead of
//! a subnormal), saturating at exp(88) above. f64 keeps the libm `exp` (it is the accuracy reference).

use crate::linalg::Real;
use std::any::TypeId;

/// xs[i] ← exp(xs[i]).
pub fn exp_in_place<T: Real>(xs: &mut [T]) {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: T is f32 (checked just above), so the slice has the same layout.
        let xs: &mut [f32] = unsafe { &mut *(xs as *mut [T] as *mut [f32]) };
        exp_f32(xs);
    } else {
        xs.iter_mut().for_each(|x| *x = x.exp());
    }
}

/// Σ exp(xs[i]) with xs[i] ← exp(xs[i]).
pub fn exp_sum_in_place<T: Real>(xs: &mut [T]) -> T {
    exp_in_place(xs);
    // Pairwise-ish: sum in 8 lanes so that f32 rounding grows slowly and the loop vectorises.
    let mut lanes = [T::zero(); 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += *x;
        }
    }
    let mut s = T::zero();
    for x in chunks.remainder() {
        s += *x;
    }
    lanes.iter().fold(s, |a, b| a + *b)
}

#[inline(always)]
fn exp1(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer n, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let tiny = x < -87.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5e-1;
    let y = p * r2 + r + 1.0;
    // 2ⁿ from n's bits (no float→int conversion, which keeps the loop vectorisable).
    let n_int = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let e = y * f32::from_bits((n_int.wrapping_add(127) as u32) << 23);
    if tiny {
        0.0
    } else {
        e
    }
}

fn exp_f32_portable(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        *x = exp1(*x);
    }
}

/// The same loop compiled for AVX-512 (16 lanes); chosen at run time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn exp_f32_avx512(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        *x = exp1(*x);
    }
}

/// The same loop compiled for AVX2 + FMA (8 lanes); chosen at run time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_f32_avx2(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        *x = exp1(*x);
    }
}

fn exp_f32(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above); it implies AVX2 and FMA on every CPU that has it.
            return unsafe { exp_f32_avx512(xs) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked above).
            return unsafe { exp_f32_avx2(xs) };
        }
    }
    exp_f32_portable(xs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_exp_matches_libm_to_2_ulp() {
        let mut worst = 0.0f64;
        let mut xs: Vec<f32> = (0..200_001).map(|i| -87.0 + 175.0 * i as f32 / 200_000.0).collect();
        let want: Vec<f64> = xs.iter().map(|&x| (x as f64).exp()).collect();
        exp_in_place(&mut xs);
        for (g, w) in xs.iter().zip(&want) {
            worst = worst.max(((*g as f64) - w).abs() / w);
        }
        assert!(worst < 2.5e-7, "max relative error {worst:e}");
        let mut p: Vec<f32> = (0..1000).map(|i| -87.0 + 0.175 * i as f32).collect();
        let mut q = p.clone();
        exp_f32(&mut p);
        exp_f32_portable(&mut q);
        assert_eq!(p, q, "the SIMD and portable builds must agree bit for bit");
        let mut under = [-88.0f32, -1000.0];
        exp_in_place(&mut under);
        assert_eq!(under, [0.0, 0.0]);
        let mut s = vec![0.0f32, 1.0, -1.0];
        let t = exp_sum_in_place(&mut s);
        assert!((t as f64 - (1.0 + 1f64.exp() + (-1f64).exp())).abs() < 1e-6);
    }
}
