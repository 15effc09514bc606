//! Benchmarks of the CUDA rate-reduction kernels (issue 2 GPU goals). Prints `BENCH<TAB>case<TAB>ms` lines;
//! `tools/bench/rate_cuda_torch.py` prints the same cases for PyTorch, and `scripts/gpu_check.sh` joins them.
//!
//!     cargo run --release --example bench_rate_cuda            (needs a CUDA GPU; prints SKIP otherwise)
//!
//! Every case runs on device-resident inputs, is warmed up (kernel compilation, memory pool), then timed
//! over many repetitions with a stream synchronisation at the end (wall clock / reps).

#[path = "common/cuda_bench.rs"]
mod cuda_bench;
use rateclust::device::cuda::{CudaDevice, GpuBuf};
use rateclust::rate::cuda::{mlc_loss_device, sinkhorn_device, SpdSolver};
use rateclust::rate::RateParams;
use rateclust::rng::Rng;
use std::time::Instant;

fn time_ms(dev: &CudaDevice, reps: usize, mut f: impl FnMut() -> rateclust::Result<()>) -> rateclust::Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    dev.sync("warm-up")?;
    let t = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    dev.sync("benchmark")?;
    Ok(t.elapsed().as_secs_f64() * 1e3 / reps as f64)
}

fn unit_rows(rng: &mut Rng, m: usize, d: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..m * d).map(|_| rng.normal() as f32).collect();
    for row in x.chunks_mut(d) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= n);
    }
    x
}

/// `batch` diagonally dominant (hence SPD) n×n matrices: 1 on the diagonal plus symmetric noise whose
/// row sums stay below 1/2.
fn spd_batch(rng: &mut Rng, batch: usize, n: usize) -> Vec<f32> {
    let mut a = vec![0.0f32; batch * n * n];
    for mat in a.chunks_mut(n * n) {
        for i in 0..n {
            mat[i * n + i] = 1.0;
            for j in 0..i {
                let v = ((rng.uniform() - 0.5) / n as f64) as f32;
                mat[i * n + j] = v;
                mat[j * n + i] = v;
            }
        }
    }
    a
}

fn run(dev: &CudaDevice) -> rateclust::Result<()> {
    let mut rng = Rng::new(42);
    let params = RateParams::default();

    let a: GpuBuf<f32> = dev.upload(&spd_batch(&mut rng, 1024, 128), "SPD batch")?;
    let fwd = SpdSolver::new(dev, 1024, 128, false)?;
    let ms = time_ms(dev, 200, || fwd.factor(dev, &a))?;
    fwd.logdet(dev)?; // checks every matrix factored
    println!("BENCH\tcuda_logdet_1024x128x128\t{ms:.4}");
    let inv = SpdSolver::new(dev, 1024, 128, true)?;
    let ms = time_ms(dev, 100, || inv.factor(dev, &a))?;
    inv.logdet(dev)?;
    println!("BENCH\tcuda_logdet_inv_1024x128x128\t{ms:.4}");
    drop((a, fwd, inv));

    for (n, reps) in [(4096usize, 50usize), (16384, 10)] {
        let c = dev.upload(&unit_rows(&mut rng, n, 128), "C")?;
        let ms = time_ms(dev, reps, || sinkhorn_device(dev, &c, n, 128, &params).map(|_| ()))?;
        println!("BENCH\tcuda_sinkhorn_n{n}\t{ms:.4}");
    }

    let (m, d) = (1024, 128);
    let z = dev.upload(&unit_rows(&mut rng, m, d), "Z")?;
    let c = dev.upload(&unit_rows(&mut rng, m, d), "C")?;
    let ms = time_ms(dev, 30, || mlc_loss_device(dev, &z, Some(&c), m, d, &params).map(|_| ()))?;
    println!("BENCH\tcuda_mlc_b1024_d128_fwd_bwd\t{ms:.4}");
    let ms = time_ms(dev, 30, || mlc_loss_device(dev, &z, None, m, d, &params).map(|_| ()))?;
    println!("BENCH\tcuda_tcr_b1024_d128_fwd_bwd\t{ms:.4}");
    drop((z, c));

    // The ImageNet configuration's loss (d = 1024: blocked Cholesky, chunked columns); issue 3's GPU step.
    let d = 1024;
    let z = dev.upload(&unit_rows(&mut rng, m, d), "Z")?;
    let c = dev.upload(&unit_rows(&mut rng, m, d), "C")?;
    let ms = time_ms(dev, 3, || mlc_loss_device(dev, &z, Some(&c), m, d, &params).map(|_| ()))?;
    println!("BENCH\tcuda_mlc_b1024_d1024_fwd_bwd\t{ms:.4}");
    Ok(())
}

fn main() {
    cuda_bench::run_on_cuda("bench_rate_cuda", |dev| run(dev));
}
