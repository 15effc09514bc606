//! e^x in f32, written once for every hot loop that takes exponentials: the Sinkhorn iterations and plan
//! (m² per half-step) and the CLIP towers' softmax and activations. A scalar libm `expf` call per element
//! dominated those loops; this one is branch-free (Cody–Waite reduction plus the degree-6 polynomial of
//! Cephes `expf`), so the compiler turns loops over it into SIMD. Relative error ≤ 2 ulp on [−87, 88];
//! 0 below −87 (instead of a subnormal); saturating at e^88 above. f64 keeps the libm `exp` (it is the
//! accuracy reference).

use super::rows::simd;
use super::Real;
use std::any::TypeId;

/// e^x, inlined into the caller's loop (see the module comment for its accuracy and range).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer n (no `round()` call, which does not vectorise
    // everywhere), which then sits in t's low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let tiny = x < -87.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5e-1; // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let y = p * r * r + r + 1.0;
    // 2ⁿ from t's bits: bits(t) = bits(ROUND) + n, so the biased exponent n + 127 is integer arithmetic.
    // `n as i32` gives the same value but does not vectorise: Rust's saturating float → int cast becomes
    // a scalar conversion per lane (it made the CLIP GELU 5× slower).
    let e = y * f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    if tiny {
        0.0
    } else {
        e
    }
}

simd! {
    /// xs[i] ← exp(xs[i]) in f32, compiled for the CPU's vector width.
    fn exp_slice_f32(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = exp_f32(*x);
        }
    }
}

/// xs[i] ← exp(xs[i]).
pub fn exp_in_place<T: Real>(xs: &mut [T]) {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: T is f32 (checked just above), so the slice has the same layout.
        let xs: &mut [f32] = unsafe { &mut *(xs as *mut [T] as *mut [f32]) };
        exp_slice_f32(xs);
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
        let p: Vec<f32> = (0..1000).map(|i| -87.0 + 0.175 * i as f32).collect();
        let mut simd = p.clone();
        exp_slice_f32(&mut simd);
        let scalar: Vec<f32> = p.iter().map(|&x| exp_f32(x)).collect();
        assert_eq!(simd, scalar, "the SIMD and scalar builds must agree bit for bit");
        let mut under = [-88.0f32, -1000.0, f32::NEG_INFINITY];
        exp_in_place(&mut under);
        assert_eq!(under, [0.0, 0.0, 0.0]);
        let mut s = vec![0.0f32, 1.0, -1.0];
        let t = exp_sum_in_place(&mut s);
        assert!((t as f64 - (1.0 + 1f64.exp() + (-1f64).exp())).abs() < 1e-6);
    }
}
