//! SGD with momentum, exactly PyTorch's `torch.optim.SGD` (dampening 0, no Nesterov) for trajectory parity
//! (docs/design.md §1): g ← ∇ + wd·p; buf ← g on a parameter's first update, else μ·buf + g; p ← p − lr·buf.
//! A parameter whose gradient is `None` is skipped entirely: no decay, no momentum update.

use super::{GradsOf, HeadBackend, CLUSTER_PARAMS, N_PARAMS};
use crate::error::Result;

/// One parameter group's hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdGroup {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
}

/// The optimizer state of the head on backend `B`: one momentum buffer per parameter, created on its first
/// update.
pub struct Sgd<B: HeadBackend + ?Sized> {
    buf: [Option<B::Buf>; N_PARAMS],
}

impl<B: HeadBackend + ?Sized> Default for Sgd<B> {
    fn default() -> Self {
        Sgd { buf: Default::default() }
    }
}

impl<B: HeadBackend + ?Sized> Sgd<B> {
    /// Applies one step to `params` (the head's tensors, same order as the gradients) with the groups
    /// (MLP + subspace head, cluster head).
    pub fn step(&mut self, b: &B, groups: (SgdGroup, SgdGroup), params: &mut [B::Buf; N_PARAMS], grads: &GradsOf<B>) -> Result<()> {
        for i in 0..N_PARAMS {
            let Some(g) = &grads[i] else { continue };
            let group = if CLUSTER_PARAMS.contains(&i) { groups.1 } else { groups.0 };
            // Without momentum the buffer is never read: every update is a first one.
            let first = self.buf[i].is_none() || group.momentum == 0.0;
            let buf = match &mut self.buf[i] {
                Some(buf) => buf,
                empty => empty.insert(b.alloc(b.len(&params[i]), "SGD momentum buffer")?),
            };
            b.sgd(&mut params[i], buf, g, group, first)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::head::{HeadGrads, Host};

    #[test]
    fn follows_pytorch_update_rule_and_skips_missing_gradients() {
        let g = SgdGroup { lr: 0.1, momentum: 0.9, weight_decay: 0.01 };
        let cpu = Host::<f64>::new();
        let groups = (g, SgdGroup { weight_decay: 0.5, ..g });
        let mut opt = Sgd::default();
        let mut p: [Vec<f64>; N_PARAMS] = std::array::from_fn(|_| vec![1.0]);
        let mut grads: HeadGrads<f64> = std::array::from_fn(|_| Some(vec![2.0]));
        grads[CLUSTER_PARAMS[0]] = None;
        opt.step(&cpu, groups, &mut p, &grads).unwrap();
        // First step: buf = g + wd p = 2.01; p = 1 - 0.1·2.01.
        assert!((p[0][0] - (1.0 - 0.201)).abs() < 1e-15);
        assert_eq!(p[CLUSTER_PARAMS[0]][0], 1.0, "no gradient: untouched");
        // The cluster bias (group 2) used wd 0.5.
        assert!((p[CLUSTER_PARAMS[1]][0] - (1.0 - 0.1 * 2.5)).abs() < 1e-15);
        let p0 = p[0][0];
        opt.step(&cpu, groups, &mut p, &grads).unwrap();
        let buf = 0.9 * 2.01 + (2.0 + 0.01 * p0);
        assert!((p[0][0] - (p0 - 0.1 * buf)).abs() < 1e-15);
    }
}
