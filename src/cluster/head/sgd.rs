//! SGD with momentum, exactly PyTorch's `torch.optim.SGD` (dampening 0, no Nesterov) for trajectory parity
//! (docs/design.md §1): g ← ∇ + wd·p; buf ← g on a parameter's first update, else μ·buf + g; p ← p − lr·buf.
//! A parameter whose gradient is `None` is skipped entirely: no decay, no momentum update.

use super::{HeadGrads, CLUSTER_PARAMS, N_PARAMS};
use crate::linalg::Real;
use rayon::prelude::*;

/// One parameter group's hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdGroup {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
}

/// The optimizer state of the head: two groups (MLP + subspace head; cluster head) and one momentum
/// buffer per parameter, created on its first update.
#[derive(Debug, Clone)]
pub struct Sgd<T> {
    pub backbone: SgdGroup,
    pub cluster: SgdGroup,
    buf: [Option<Vec<T>>; N_PARAMS],
}

impl<T: Real> Sgd<T> {
    pub fn new(backbone: SgdGroup, cluster: SgdGroup) -> Self {
        Sgd { backbone, cluster, buf: Default::default() }
    }

    fn group(&self, i: usize) -> SgdGroup {
        if CLUSTER_PARAMS.contains(&i) {
            self.cluster
        } else {
            self.backbone
        }
    }

    /// Applies one step to `params` (the head's tensors, same order as the gradients).
    pub fn step(&mut self, params: &mut [Vec<T>; N_PARAMS], grads: &HeadGrads<T>) {
        for i in 0..N_PARAMS {
            let Some(g) = &grads[i] else { continue };
            let SgdGroup { lr, momentum, weight_decay } = self.group(i);
            let (lr, mu, wd) = (T::from_f64(lr), T::from_f64(momentum), T::from_f64(weight_decay));
            let p = &mut params[i];
            let first = self.buf[i].is_none();
            let buf = self.buf[i].get_or_insert_with(|| vec![T::zero(); p.len()]);
            const CH: usize = 1 << 14;
            p.par_chunks_mut(CH).zip(buf.par_chunks_mut(CH)).zip(g.par_chunks(CH)).for_each(|((pc, bc), gc)| {
                for k in 0..pc.len() {
                    let gk = gc[k] + wd * pc[k];
                    bc[k] = if first || momentum == 0.0 { gk } else { mu * bc[k] + gk };
                    pc[k] -= lr * bc[k];
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_pytorch_update_rule_and_skips_missing_gradients() {
        let g = SgdGroup { lr: 0.1, momentum: 0.9, weight_decay: 0.01 };
        let mut opt = Sgd::<f64>::new(g, SgdGroup { weight_decay: 0.5, ..g });
        let mut p: [Vec<f64>; N_PARAMS] = std::array::from_fn(|_| vec![1.0]);
        let mut grads: HeadGrads<f64> = std::array::from_fn(|_| Some(vec![2.0]));
        grads[CLUSTER_PARAMS[0]] = None;
        opt.step(&mut p, &grads);
        // First step: buf = g + wd p = 2.01; p = 1 - 0.1·2.01.
        assert!((p[0][0] - (1.0 - 0.201)).abs() < 1e-15);
        assert_eq!(p[CLUSTER_PARAMS[0]][0], 1.0, "no gradient: untouched");
        // The cluster bias (group 2) used wd 0.5.
        assert!((p[CLUSTER_PARAMS[1]][0] - (1.0 - 0.1 * 2.5)).abs() < 1e-15);
        let p0 = p[0][0];
        opt.step(&mut p, &grads);
        let buf = 0.9 * 2.01 + (2.0 + 0.01 * p0);
        assert!((p[0][0] - (p0 - 0.1 * buf)).abs() < 1e-15);
    }
}
