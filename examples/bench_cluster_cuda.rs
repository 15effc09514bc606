//! Benchmarks of the CPP head on CUDA (issue 3's GPU goals). Prints `BENCH<TAB>case<TAB>ms` lines;
//! `tools/bench/cluster_cuda_torch.py` prints the same cases for PyTorch (AMP), and `scripts/bench.sh
//! cluster_cuda` / `scripts/gpu_check.sh cluster` join them.
//!
//!     cargo run --release --example bench_cluster_cuda        (needs a CUDA GPU; prints SKIP otherwise)
//!
//! Cases (f32 master weights, TF32 tensor-core products, f32 everything else):
//! - `cuda_train_step_b1024_in768_h4096_d128` (goal ≤ 4 ms) and `cuda_train_step_b1024_in768_h2048_d1024`
//!   (goal ≤ 60 ms): one full training step past the warm-up (train-mode forward, MLC loss with Sinkhorn,
//!   backward, two-group SGD) on a device-resident batch; median of the timed steps after 3 untimed ones.
//!   Each step ends by reading the loss back (a synchronisation), as training does.
//! - `cuda_head_forward_1.28M_768_h4096_d128`: eval-mode Z of 1.28 M host points (transfers included).
//! - `cuda_assign_1.28M_768_k1000` (goal < 1 s): `Clusterer::assign_on` on CUDA of 1.28 M host points of
//!   dimension 768 into 1000 clusters (subspace rule), end to end: transfers, the GPU head, the CPU
//!   assignment of each chunk overlapped with the next chunk's GPU forward.

#[path = "common/cuda_bench.rs"]
mod cuda_bench;
use rateclust::cluster::assign::{auto_rank, AssignModel};
use rateclust::cluster::head::{Head, HeadDims};
use rateclust::cluster::head::cuda::CudaHead;
use rateclust::cluster::head::train::StepConfig;
use rateclust::cluster::clusterer::Clusterer;
use rateclust::cluster::params::{AssignRule, FitParams};
use rateclust::device::cuda::CudaDevice;
use rateclust::device::Device;
use rateclust::progress::NoProgress;
use rateclust::rng::Rng;
use rayon::prelude::*;
use std::sync::Arc;
use std::time::Instant;

/// `len` uniform values in [0, 1), generated in parallel (deterministic per 1 M-value block).
fn uniform(len: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0.0f32; len];
    v.par_chunks_mut(1 << 20).enumerate().for_each(|(i, c)| {
        let mut rng = Rng::new(seed.wrapping_add(i as u64));
        c.iter_mut().for_each(|x| *x = rng.uniform() as f32);
    });
    v
}

fn step_case(dev: &Arc<CudaDevice>, hidden: usize, d: usize, reps: usize) -> rateclust::Result<f64> {
    let (m, input) = (1024, 768);
    let params = FitParams { hidden, zdim: d, batch: m, warmup: 1, ..FitParams::default() };
    let head = Head::<f32>::new(HeadDims { input, hidden, zdim: d }, 42)?;
    let mut ch = CudaHead::from_head(dev, &head)?;
    let mut rng = Rng::new(1);
    let x: Vec<f32> = (0..m * input).map(|_| rng.normal() as f32).collect();
    let xb = ch.upload_batch(&x)?;
    let cfg = StepConfig::new(&params);
    // Steps 0 and 1 are the (warmup = 1) TCR steps, the second with the head copy; later steps are full MLC steps.
    ch.step(&cfg, &xb, m, 0)?;
    ch.step(&cfg, &xb, m, 1)?;
    let mut times = Vec::with_capacity(reps);
    for i in 0..reps + 3 {
        let t = Instant::now();
        ch.step(&cfg, &xb, m, 2 + i)?;
        if i >= 3 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn run(dev: &Arc<CudaDevice>) -> rateclust::Result<()> {
    let ms = step_case(dev, 4096, 128, 20)?;
    println!("BENCH\tcuda_train_step_b1024_in768_h4096_d128\t{ms:.3}");
    let ms = step_case(dev, 2048, 1024, 5)?;
    println!("BENCH\tcuda_train_step_b1024_in768_h2048_d1024\t{ms:.3}");

    let (n, input, hidden, d, k) = (1_280_000usize, 768, 4096, 128, 1000);
    let head = Head::<f32>::new(HeadDims { input, hidden, zdim: d }, 42)?;
    let t = Instant::now();
    let x = uniform(n * input, 7);
    eprintln!("  generated {n}×{input} inputs in {:.1} s", t.elapsed().as_secs_f64());

    let ch = CudaHead::from_head(dev, &head)?;
    ch.forward_eval(&x[..4096 * input], 4096, false)?; // warm-up: kernel compilation, cuBLAS heuristics
    let t = Instant::now();
    let (z, _) = ch.forward_eval(&x, n, false)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(z.len(), n * d);
    println!("BENCH\tcuda_head_forward_1.28M_768_h4096_d128\t{ms:.0}");
    drop((ch, z));

    let rank = auto_rank(k, d);
    let basis = uniform(k * rank * d, 8).iter().map(|v| v - 0.5).collect();
    let proto = uniform(k * d, 9).iter().map(|v| v - 0.5).collect::<Vec<f32>>();
    let clusterer = Clusterer::from_parts(
        FitParams { k, hidden, zdim: d, assign_rule: AssignRule::Subspace, ..FitParams::default() },
        head,
        AssignModel { k, zdim: d, rank, bases: basis, prototypes_z: proto.clone(), prototypes_c: proto, input: None },
    );
    let device = Device::Cuda(dev.clone());
    clusterer.assign_on(&device, AssignRule::Subspace, &x[..4096 * input], 4096, &mut NoProgress)?; // warm-up
    let t = Instant::now();
    let a = clusterer.assign_on(&device, AssignRule::Subspace, &x, n, &mut NoProgress)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(a.labels.len(), n);
    println!("BENCH\tcuda_assign_1.28M_768_k1000\t{ms:.0}");
    Ok(())
}

fn main() {
    cuda_bench::run_on_cuda("bench_cluster_cuda", run);
}
