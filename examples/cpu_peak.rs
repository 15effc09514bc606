//! The CPU's arithmetic ceiling, to read the CLIP benchmarks against (docs/clip_cpu.md): f32 FMA and int8
//! VNNI throughput of 12 independent accumulator chains per thread, on 1 and 2 threads (AVX-512 only).
//!
//!   cargo run --release --example cpu_peak

#[cfg(target_arch = "x86_64")]
mod peak {
    use std::arch::x86_64::*;

    /// 12 independent f32 FMA chains of 16 lanes (more than the FMA latency × ports, so the ports saturate).
    #[target_feature(enable = "avx512f")]
    pub fn fma(iters: u64) -> f32 {
        let mut acc = [_mm512_set1_ps(1.0); 12];
        let (b, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, b, c);
            }
        }
        _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a)))
    }

    /// 12 independent `vpdpbusd` chains (64 u8·s8 products each).
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub fn vnni(iters: u64) -> i32 {
        let mut acc = [_mm512_setzero_si512(); 12];
        let (b, c) = (_mm512_set1_epi8(3), _mm512_set1_epi8(5));
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_dpbusd_epi32(*a, b, c);
            }
        }
        _mm512_reduce_add_epi32(acc.iter().fold(_mm512_setzero_si512(), |s, &a| _mm512_add_epi32(s, a)))
    }
}

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::time::Instant;
    if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni")) {
        println!("skipped: this CPU has no AVX-512 VNNI");
        return;
    }
    let iters = 100_000_000u64;
    // Giga-operations per second over `threads` threads running `f`, `ops` per iteration each.
    let rate = |threads: usize, ops: f64, f: fn(u64) -> f64| {
        let t = Instant::now();
        let hs: Vec<_> = (0..threads).map(|_| std::thread::spawn(move || std::hint::black_box(f(iters)))).collect();
        hs.into_iter().for_each(|h| {
            h.join().unwrap();
        });
        threads as f64 * iters as f64 * ops / t.elapsed().as_secs_f64() / 1e9
    };
    // SAFETY (both closures): the features were detected above.
    let fma: fn(u64) -> f64 = |n| unsafe { peak::fma(n) as f64 };
    let vnni: fn(u64) -> f64 = |n| unsafe { peak::vnni(n) as f64 };
    println!("threads\tf32 FMA GFLOP/s\tint8 VNNI GOP/s (a multiply-add = 2)");
    for threads in [1, 2] {
        println!("{threads}\t{:.0}\t{:.0}", rate(threads, 12.0 * 16.0 * 2.0, fma), rate(threads, 12.0 * 64.0 * 2.0, vnni));
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("skipped: x86-64 only");
}
