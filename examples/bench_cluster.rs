//! Cluster-stage benchmarks (ours; the PyTorch side is tools/bench/cluster_torch.py). Prints
//! `BENCH<TAB><case><TAB><ms per op>`; run through scripts/bench.sh for the table.
//!
//!     cargo run --release --example bench_cluster [-- --device cuda] [-- --assign-n N]
//!
//! Cases:
//! - `train_step_b1024_in768_h4096_d128`: one full training step (forward in train mode, MLC loss with
//!   Sinkhorn, backward of everything, SGD) at batch 1024, input 768, hidden 4096, d 128, f32; median of 5
//!   steps after 2 untimed ones.
//! - `assign_1.28M_768_k1000`: labelling 1.28 M points of dimension 768 into 1000 clusters with a
//!   hidden-4096/d-128 head (head forward in eval mode + subspace rule). The input is generated chunk by chunk
//!   (3.9 GB would not fit comfortably next to other work), so the time is the sum over chunks of `assign`
//!   alone. `--assign-n N` times N points instead and scales to 1.28 M (printed as such).
//! - `assign_1.28M_768_k1000_neighbors-x`: the same points labelled by the default fit's rule: projection
//!   onto 128 principal directions, then the majority of the 10 nearest of 10,000 labelled reference points.

use rateclust::cluster::assign::{AssignModel, InputSpaceModel};
use rateclust::cluster::input_space::InputSpace;
use rateclust::cluster::params::AssignRule;
use rateclust::cluster::head::{Head, HeadDims, Host};
use rateclust::cluster::clusterer::Clusterer;
use rateclust::cluster::params::FitParams;
use rateclust::cluster::head::train::Trainer;
use rateclust::progress::NoProgress;
use rateclust::rng::Rng;
use rateclust::{Device, DeviceKind};
use std::time::Instant;

fn main() -> rateclust::Result<()> {
    let mut device = DeviceKind::Cpu;
    let mut assign_n: usize = 1_280_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" => device = DeviceKind::parse(&args.next().expect("--device KIND"))?,
            "--assign-n" => assign_n = args.next().expect("--assign-n N").parse().expect("N"),
            other => panic!("unknown argument {other}"),
        }
    }
    let dev = Device::open(device, 0)?;
    eprintln!("device: {}", dev.describe());
    let mut rng = Rng::new(1);

    // Training step.
    let (m, input, hidden, d) = (1024, 768, 4096, 128);
    let params = FitParams { hidden, zdim: d, batch: m, warmup: 1, ..FitParams::default() }.resolve(m);
    let mut head = Head::<f32>::new(HeadDims { input, hidden, zdim: d }, 42)?;
    let x: Vec<f32> = (0..m * input).map(|_| rng.normal() as f32).collect();
    let cpu = Host::new();
    let mut trainer = Trainer::new(&params);
    let mut times = Vec::new();
    for step in 0..7 {
        let t = Instant::now();
        // Step ≥ 2 is past the warm-up (warmup 1): the full MLC step.
        trainer.step(&cpu, &mut head, &x, m, step + 2)?;
        if step >= 2 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    // Where the step goes (stderr only): head forward+backward vs the MLC loss.
    {
        let t = Instant::now();
        let cache = head.forward_train(&cpu, &x, m)?;
        let t_fwd = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let out = rateclust::rate::mlc_loss(&dev, &cache.z, &cache.c, m, d, &params.rate_params(), rateclust::rate::Objective::Mlc)?;
        let t_loss = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let _g = head.backward(&cpu, &x, cache, &out.grad_z, None, Some(&out.grad_c))?;
        let t_bwd = t.elapsed().as_secs_f64() * 1e3;
        eprintln!("  step parts: head forward {t_fwd:.0} ms, MLC loss {t_loss:.0} ms, head backward {t_bwd:.0} ms");
    }
    println!("BENCH\ttrain_step_b1024_in768_h4096_d128\t{:.1}", times[times.len() / 2]);

    // Assignment of 1.28 M points into 1000 clusters.
    let (k, total) = (1000, 1_280_000usize);
    let zdim = d;
    let rank = rateclust::cluster::assign::auto_rank(k, zdim);
    let mut unit = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.normal() as f32).collect() };
    let clusterer = Clusterer::from_parts(
        FitParams { k, hidden, zdim, ..FitParams::default() },
        head.clone(),
        AssignModel { k, zdim, rank, bases: unit(k * rank * zdim), prototypes_z: unit(k * zdim), prototypes_c: unit(k * zdim), input: None },
    );
    let n = assign_n.min(total);
    if n < total {
        eprintln!("assign: timing {n} points, scaled to {total}");
    }
    let secs = time_assign(&clusterer, n, input, &mut rng, "subspace")?;
    println!("BENCH\tassign_1.28M_768_k1000\t{:.0}", secs * 1e3 * total as f64 / n as f64);

    // The default fit's rule: the vote of the 10 nearest of 10,000 reference points in the 128-d input space.
    let (refs, space_rank) = (10_000usize, 128usize);
    let mut r2 = Rng::new(2);
    let mut unit = |len: usize| -> Vec<f32> { (0..len).map(|_| r2.normal() as f32).collect() };
    let space = InputSpace { dim: input, rank: space_rank, mean: unit(input), basis: unit(input * space_rank) };
    let mut reference = unit(refs * space_rank);
    rateclust::linalg::rows::l2_normalize_rows(&mut reference, space_rank);
    let reference_labels: Vec<u32> = (0..refs).map(|i| (i % k) as u32).collect();
    let input_model = InputSpaceModel { space, prototypes: unit(k * space_rank), reference, reference_labels };
    let mut am = clusterer.assign_model.clone();
    am.input = Some(input_model);
    let params = FitParams { k, hidden, zdim, assign_rule: AssignRule::NeighborsInput, ..FitParams::default() };
    let clusterer = Clusterer::from_parts(params, head.clone(), am);
    let secs = time_assign(&clusterer, n, input, &mut rng, "neighbors-x")?;
    println!("BENCH\tassign_1.28M_768_k1000_neighbors-x\t{:.0}", secs * 1e3 * total as f64 / n as f64);
    Ok(())
}

/// Seconds `model.assign` spends on n uniform random points of dimension `input`, generated and labelled
/// in chunks of 65,536 (3.9 GB of input would not fit comfortably next to other work); generation is not timed.
fn time_assign(clusterer: &Clusterer, n: usize, input: usize, rng: &mut Rng, what: &str) -> rateclust::Result<f64> {
    let (mut secs, mut done) = (0.0, 0);
    while done < n {
        let rows = 65_536.min(n - done);
        let xc: Vec<f32> = (0..rows * input).map(|_| rng.uniform() as f32).collect();
        let t = Instant::now();
        let a = clusterer.assign(&xc, rows, &mut NoProgress)?;
        secs += t.elapsed().as_secs_f64();
        assert_eq!(a.labels.len(), rows);
        done += rows;
        eprintln!("  {what}: assigned {done}/{n} ({secs:.1} s so far)");
    }
    Ok(secs)
}
