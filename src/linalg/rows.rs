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
    /// x ← x / ‖x‖₂ for each row of width `d` (rows of zero norm are left as they are).
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
            if s > 0.0 {
                let inv = 1.0 / s.sqrt();
                for v in row.iter_mut() {
                    *v *= inv;
                }
            }
        }
    }
}
