//! Row-wise helpers on row-major f32 matrices shared by the CLIP engine, clustering and labeling, and the
//! `simd!` macro that compiles such loops for AVX-512 / AVX2 with a run-time pick (the crate is built for
//! baseline x86-64).

/// Defines `pub fn $name(args)` that runs `$body` compiled with AVX-512 (or AVX2+FMA) when the CPU has it.
/// The body may only call `#[inline(always)]` helpers, so that they are compiled with the same features.
macro_rules! simd {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $body
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $body
                if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") {
                    // SAFETY: the CPU supports the features the function was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            #[allow(unreachable_code)]
            {
                fn generic($($arg: $ty),*) $body
                generic($($arg),*)
            }
        }
    };
}
pub(crate) use simd;

simd! {
    /// x ← x / ‖x‖₂ for each row of width `d` (rows of zero norm are left as they are). Rows whose squares
    /// overflow or underflow f32 (entries beyond about 1e19 or below 1e-19) are scaled by their largest
    /// entry first, so features of any finite magnitude come out as unit rows.
    pub fn l2_normalize_rows(x: &mut [f32], d: usize) {
        for row in x.chunks_exact_mut(d) {
            let mut acc = [0.0f32; 16];
            let mut chunks = row.chunks_exact(16);
            for c in &mut chunks {
                for i in 0..16 {
                    acc[i] += c[i] * c[i];
                }
            }
            let mut s: f32 = chunks.remainder().iter().map(|v| v * v).sum();
            for a in acc {
                s += a;
            }
            if !(s.is_finite() && s > 1e-30) {
                // f64 holds the square of any finite f32.
                let s64: f64 = row.iter().map(|&v| v as f64 * v as f64).sum();
                if s64 > 0.0 && s64.is_finite() {
                    let inv = 1.0 / s64.sqrt();
                    row.iter_mut().for_each(|v| *v = (*v as f64 * inv) as f32);
                }
                continue;
            }
            let inv = 1.0 / s.sqrt();
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Rows of any finite magnitude become unit rows (their squares overflow or underflow in f32).
    #[test]
    fn normalises_huge_and_tiny_rows() {
        for scale in [1.0f32, 1e20, 1e38, 1e-20, 1e-40] {
            let mut x: Vec<f32> = (0..40).map(|i| scale * ((i % 7) as f32 - 3.0)).collect();
            super::l2_normalize_rows(&mut x, 20);
            for row in x.chunks(20) {
                let n: f64 = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
                assert!((n - 1.0).abs() < 1e-5, "scale {scale}: norm {n}");
            }
        }
        let mut zero = vec![0.0f32; 8];
        super::l2_normalize_rows(&mut zero, 4);
        assert!(zero.iter().all(|&v| v == 0.0));
    }
}
