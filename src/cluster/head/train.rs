//! Training the CPP head (docs/design.md §1): `steps` batches cut from seeded shuffles with `drop_last`, TCR warm-up for steps
//! 0..=warmup, then the subspace head copied into the cluster head and the MLC loss; SGD with two groups.
//! Mirrors the reference training loop (LeslieTrue/CPP `main.py`), restated in
//! tools/golden/cluster_head_goldens.py.

use super::backend::check_rows;
use super::sgd::{Sgd, SgdGroup};
use super::{Head, HeadBackend, HeadOf, Host};
use crate::cluster::params::FitParams;
use crate::device::cuda::Gpu;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::linalg::Real;
use crate::progress::{report, Progress};
use crate::rate::cuda::CHUNK_BUDGET_BYTES;
use crate::rate::{convert, RateParams};
use crate::rng::Rng;

/// Which rows make up each step's batch.
pub enum BatchOrder<'a> {
    /// Each epoch a Fisher–Yates shuffle of 0..n from `Rng::new(seed)`, cut into full batches (drop_last).
    Shuffled,
    /// Given batches, one per step (tests replaying the PyTorch restatement's order).
    Explicit(&'a [Vec<usize>]),
}

/// What happened during training.
#[derive(Debug, Clone, Default)]
pub struct TrainLog {
    /// Loss of every step.
    pub losses: Vec<f64>,
}

/// The batches of every step for n points under `params` (resolved: `steps` and `batch` set): passes of
/// seeded shuffles, each cut into full batches (drop_last), until there are `steps` batches. A batch
/// larger than n is cut down to n. Lazy: one pass of n indices is held at a time, whatever `steps` is
/// (building every step's batch up front asked for steps × batch indices: 40 GB at 10 M steps).
pub fn shuffled_batches(n: usize, params: &FitParams) -> ShuffledBatches {
    let batch = params.batch.min(n).max(1);
    // n = 0 gives no batch at all.
    let left = if n == 0 { 0 } else { params.steps };
    ShuffledBatches { rng: Rng::new(params.seed.wrapping_add(0x5EED_0F_BA7C4)), n, batch, left, pass: Vec::new(), pos: 0 }
}

/// The iterator of [`shuffled_batches`].
pub struct ShuffledBatches {
    rng: Rng,
    n: usize,
    batch: usize,
    left: usize,
    pass: Vec<usize>,
    pos: usize,
}

impl Iterator for ShuffledBatches {
    type Item = Vec<usize>;
    fn next(&mut self) -> Option<Vec<usize>> {
        if self.left == 0 {
            return None;
        }
        if self.pos + self.batch > self.pass.len() {
            self.pass = (0..self.n).collect();
            self.rng.shuffle(&mut self.pass);
            self.pos = 0;
        }
        let b = self.pass[self.pos..self.pos + self.batch].to_vec();
        self.pos += self.batch;
        self.left -= 1;
        Some(b)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// The batches a training run steps through, one at a time, and how many there are.
pub struct Batches<'a> {
    pub total: usize,
    pub iter: Box<dyn Iterator<Item = Vec<usize>> + 'a>,
}

/// The two SGD groups of `params`: (MLP + subspace head, cluster head).
pub fn sgd_groups(params: &FitParams) -> (SgdGroup, SgdGroup) {
    (
        SgdGroup { lr: params.lr, momentum: params.momentum, weight_decay: params.weight_decay },
        SgdGroup { lr: params.lr_cluster, momentum: params.momentum, weight_decay: params.weight_decay_cluster },
    )
}

/// The constants of a training step (from [`FitParams`]).
#[derive(Debug, Clone)]
pub struct StepConfig {
    pub warmup: usize,
    pub single_head: bool,
    pub rate: RateParams,
    /// (MLP + subspace head, cluster head).
    pub groups: (SgdGroup, SgdGroup),
    /// Device bytes the loss's per-chunk workspaces may take (CUDA only).
    pub loss_budget: usize,
}

impl StepConfig {
    /// Automatic (zero) settings in `params` are resolved first ([`FitParams::resolve`]).
    pub fn new(params: &FitParams) -> Self {
        let params = &params.resolve(params.batch.max(2));
        StepConfig { warmup: params.warmup, single_head: params.single_head, rate: params.rate_params(), groups: sgd_groups(params), loss_budget: CHUNK_BUDGET_BYTES }
    }
}

/// One optimisation step's state on backend `B`: the optimizer and the step's constants. [`train`] drives
/// it over the batches; benchmarks time [`Trainer::step`] alone.
pub struct Trainer<B: HeadBackend + ?Sized> {
    pub opt: Sgd<B>,
    pub cfg: StepConfig,
}

impl<B: HeadBackend + ?Sized> Trainer<B> {
    /// Automatic (zero) settings in `params` are resolved first ([`FitParams::resolve`]).
    pub fn new(params: &FitParams) -> Self {
        Trainer { opt: Sgd::default(), cfg: StepConfig::new(params) }
    }

    /// Step number `step` on the batch `xb` (m×input): forward (train mode), TCR loss while
    /// `step <= warmup` else MLC (Π from C, or from Z with `single_head`), backward, SGD; copies the
    /// subspace head into the cluster head after step `warmup`. Returns the loss.
    pub fn step(&mut self, b: &B, head: &mut HeadOf<B>, xb: &B::Buf, m: usize, step: usize) -> Result<f64> {
        train_step(b, head, &mut self.opt, &self.cfg, xb, m, step)
    }
}

/// [`Trainer::step`] with the optimizer state and the constants given separately (a `CudaHead` keeps
/// its momentum buffers beside the head).
pub(crate) fn train_step<B: HeadBackend + ?Sized>(b: &B, head: &mut HeadOf<B>, opt: &mut Sgd<B>, cfg: &StepConfig, xb: &B::Buf, m: usize, step: usize) -> Result<f64> {
    let d = head.dims.zdim;
    let cache = head.forward_train(b, xb, m)?;
    let (loss, grads) = if step <= cfg.warmup {
        let out = b.loss(&cache.z, None, m, d, &cfg.rate, cfg.loss_budget)?;
        (out.loss, head.backward(b, xb, cache, &out.grad_z, None, None)?)
    } else if cfg.single_head {
        // Π from Z: Z feeds both arguments, so its gradient is the sum of both.
        let out = b.loss(&cache.z, Some(&cache.z), m, d, &cfg.rate, cfg.loss_budget)?;
        (out.loss, head.backward(b, xb, cache, &out.grad_z, out.grad_c.as_ref(), None)?)
    } else {
        let out = b.loss(&cache.z, Some(&cache.c), m, d, &cfg.rate, cfg.loss_budget)?;
        (out.loss, head.backward(b, xb, cache, &out.grad_z, None, out.grad_c.as_ref())?)
    };
    check_loss(loss, step)?;
    opt.step(b, cfg.groups, &mut head.p, &grads)?;
    if step == cfg.warmup {
        head.copy_subspace_to_cluster(b)?;
    }
    Ok(loss)
}

/// Trains `head` in place on `x` (n×input). Progress stage "train", one tick per step. On a CUDA device
/// the features go to the device once, each step gathers its batch there and runs there in f32 (TF32
/// products) whatever `T`, and the trained head comes back into `head` at the end.
pub fn train<T: Real>(
    head: &mut Head<T>,
    x: &[T],
    n: usize,
    params: &FitParams,
    device: &Device,
    order: BatchOrder<'_>,
    progress: &mut dyn Progress,
) -> Result<TrainLog> {
    let params = &params.resolve(n);
    check_rows(head.dims, x.len(), n, "features")?;
    let batches = match order {
        BatchOrder::Shuffled => {
            let b = shuffled_batches(n, params);
            Batches { total: b.size_hint().0, iter: Box::new(b) }
        }
        BatchOrder::Explicit(b) => Batches { total: b.len(), iter: Box::new(b.iter().cloned()) },
    };
    let losses = match device {
        Device::Cpu => run(&Host::new(), head, x, n, params, batches, progress)?,
        Device::Cuda(dev) => {
            let g: &dyn Gpu = &**dev;
            let mut on_device = HeadOf::upload(g, &head.cast::<f32>())?;
            let losses = run(g, &mut on_device, &convert::<T, f32>(x), n, params, batches, progress)?;
            *head = on_device.download(g)?.cast();
            losses
        }
    };
    check_weights(head)?;
    Ok(TrainLog { losses })
}

/// The training loop on backend `b`: every batch gathered from the features, one [`Trainer::step`] each.
pub(crate) fn run<B: HeadBackend + ?Sized>(
    b: &B,
    head: &mut HeadOf<B>,
    x: &[B::T],
    n: usize,
    params: &FitParams,
    batches: Batches<'_>,
    progress: &mut dyn Progress,
) -> Result<Vec<f64>> {
    let features = b.features(x)?;
    let mut trainer = Trainer::new(params);
    let total = batches.total as u64;
    let mut losses = Vec::with_capacity(batches.total);
    report(progress, "train", 0, total)?;
    for (step, rows) in batches.iter.enumerate() {
        let xb = b.gather(&features, &rows, n, head.dims.input)?;
        losses.push(trainer.step(b, head, &xb, rows.len(), step)?);
        report(progress, "train", step as u64 + 1, total)?;
    }
    Ok(losses)
}

/// Every step's loss is checked ([`check_loss`]), but BatchNorm's running statistics are not part of the
/// loss: with raw features of magnitude 1e30 the loss stayed finite while the running variance overflowed,
/// and the head was saved into a model `assign` then refused as corrupt.
fn check_weights<T: Real>(head: &Head<T>) -> Result<()> {
    let finite = head.p.iter().chain([&head.running_mean, &head.running_var]).all(|t| t.iter().all(|v| v.to_f64().is_finite()));
    if finite {
        Ok(())
    } else {
        Err(Error::Numerical(
            "training diverged (the head's weights or running statistics became non-finite); with raw (unnormalised) input, features this large overflow the head: keep the default L2 normalisation or scale the features down".into(),
        ))
    }
}

fn check_loss(loss: f64, step: usize) -> Result<()> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(Error::Numerical(format!("the training loss became {loss} at step {step} (lower `lr` or raise `eta`)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passes of shuffles cut into full batches, the last partial batch of each pass dropped, `steps` in
    /// all; n = 0 gives none; 10 M steps cost nothing until they are taken.
    #[test]
    fn shuffled_batches_are_lazy_full_passes() {
        let p = FitParams { batch: 4, steps: 7, seed: 3, ..FitParams::default() };
        let b: Vec<Vec<usize>> = shuffled_batches(10, &p).collect();
        assert_eq!(b.len(), 7);
        assert!(b.iter().all(|x| x.len() == 4));
        // Each pass of 10 gives 2 batches of 4 distinct rows.
        for pass in b.chunks(2) {
            let mut rows: Vec<usize> = pass.concat();
            rows.sort();
            rows.dedup();
            assert_eq!(rows.len(), 4 * pass.len());
        }
        assert_ne!(b[0], b[2], "a new shuffle per pass");
        assert_eq!(shuffled_batches(0, &p).count(), 0);
        assert_eq!(shuffled_batches(3, &p).next().unwrap().len(), 3, "a batch larger than n is cut to n");
        let huge = FitParams { batch: 512, steps: 10_000_000, ..FitParams::default() };
        let it = shuffled_batches(1000, &huge);
        assert_eq!(it.size_hint(), (10_000_000, Some(10_000_000)));
        assert_eq!(it.take(3).count(), 3);
    }
}
