//! Benchmark of the CPU rate-reduction core (issue 2), float32. Prints `BENCH<TAB>case<TAB>ms per op`
//! (median of several runs after a warm-up); `tools/bench/rate_torch.py` prints the same cases for PyTorch.
//!
//!   cargo run --release --example bench_rate [-- reps]
//!
//! Cases:
//! - `logdet_1024x128x128_fwd_bwd`: log-dets of 1024 SPD 128×128 matrices and their gradient (A⁻¹).
//! - `mlc_loss_b1024_d128_fwd_bwd`: the whole MLC loss (|CCᵀ|, Sinkhorn, R, R_c, ‖Π‖²) forward and
//!   backward to Z and C, m = 1024, d = 128.

use rateclust::linalg::cholesky::logdet_inverse_batch;
use rateclust::linalg::{gemm, Trans};
use rateclust::rate::{mlc_loss, Objective, RateParams};
use rateclust::rng::Rng;
use rateclust::Device;
use std::time::Instant;

/// Process CPU time in ms (all threads): printed beside the wall time because these machines are shared,
/// and CPU time is less sensitive to other processes than wall time.
fn cpu_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 * 1e-6
}

/// Median wall time in ms over `reps` runs after a warm-up; the median CPU time goes to stderr.
fn median_ms(case: &str, reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = (0..reps)
        .map(|_| {
            let (s, c) = (Instant::now(), cpu_ms());
            f();
            (s.elapsed().as_secs_f64() * 1e3, cpu_ms() - c)
        })
        .unzip();
    wall.sort_by(|a, b| a.partial_cmp(b).unwrap());
    cpu.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!("{case}: median CPU time {:.1} ms on {} threads", cpu[reps / 2], rayon::current_num_threads());
    wall[reps / 2]
}

fn normalised(rng: &mut Rng, m: usize, d: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..m * d).map(|_| rng.normal() as f32).collect();
    for row in x.chunks_mut(d) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= n);
    }
    x
}

fn main() {
    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut rng = Rng::new(42);

    // Batched log-det: A_b = I + X_bᵀX_b / 128 with X_b 256×128 Gaussian (well-conditioned SPD).
    let (batch, n) = (1024, 128);
    let mut mats = vec![0.0f32; batch * n * n];
    for a in mats.chunks_mut(n * n) {
        let x: Vec<f32> = (0..256 * n).map(|_| rng.normal() as f32).collect();
        gemm(n, n, 256, 1.0 / 128.0, &x, n, Trans::Yes, &x, n, Trans::No, 0.0, a, n);
        for k in 0..n {
            a[k * n + k] += 1.0;
        }
    }
    let mut work = mats.clone();
    let mut sink = 0.0f32;
    let ms = median_ms("logdet_1024x128x128_fwd_bwd", reps, || {
        work.copy_from_slice(&mats);
        let ld = logdet_inverse_batch(&mut work, n, batch).expect("SPD");
        sink += ld.iter().sum::<f32>() + work[0];
    });
    println!("BENCH\tlogdet_1024x128x128_fwd_bwd\t{ms:.2}");

    let (m, d) = (1024, 128);
    let z = normalised(&mut rng, m, d);
    let c = normalised(&mut rng, m, d);
    let p = RateParams::default();
    let ms = median_ms("mlc_loss_b1024_d128_fwd_bwd", reps, || {
        let out = mlc_loss(&Device::Cpu, &z, &c, m, d, &p, Objective::Mlc).expect("mlc_loss");
        sink += out.loss + out.grad_z[0] + out.grad_c[0];
    });
    println!("BENCH\tmlc_loss_b1024_d128_fwd_bwd\t{ms:.2}");
    eprintln!("(checksum {sink})");
}
