"""The one PyTorch restatement of the CPP head, its MLC loss and its training step (docs/design.md §1, mirroring
LeslieTrue/CPP), shared by the golden script and the reference benchmarks:
  tools/golden/cluster_head_goldens.py   float64 goldens (imports it directly: same folder)
  tools/bench/cluster_torch.py           CPU float32 benchmark
  tools/bench/cluster_cuda_torch.py      CUDA AMP benchmark
Scripts in tools/bench import it as tools/bench/rate_torch.py imports rate_goldens:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "golden"))
    from cpp_head_torch import Head, mlc, sgd_two_groups, train_step

Not a script: nothing runs on import. Everything follows the dtype and device of its inputs (the goldens set
torch's default dtype to float64). Changing the order of operations here changes the goldens' bits: rerun
tools/golden/cluster_head_goldens.py (its docstring says how) and check tests/cluster_head.rs.

What it restates:
  head: pre_feature = Linear(in,h) -> BatchNorm1d(h) -> ReLU -> Linear(h,h) -> ReLU,
        Z = F.normalize(subspace(pre)), C = F.normalize(cluster(pre)), subspace/cluster = Linear(h,d)
  loss: -R(Z) + gamma R_c(Z, Pi) + lambda/2 ||Pi||_F^2, Pi = m * Sinkhorn_eta(|C C^T|) (log domain,
        half-iterations row/col/row/..., v detached at each column step); TCR warm-up = -R(Z) only.
  training: torch.optim.SGD with two groups (MLP + subspace head: wd_backbone; cluster head: wd_cluster).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

# docs/design.md §1 defaults (the reference's): eps^2, gamma, lambda, Sinkhorn eta and half-iterations.
EPS_SQ, GAMMA, LAM, ETA, HALF_ITERS = 0.1, 1.0, 0.05, 0.175, 5


class Head(nn.Module):
    """The CPP head on `inp`-dimensional features: hidden width `h`, output dimension `d`."""

    def __init__(self, inp, h, d):
        super().__init__()
        self.pre_feature = nn.Sequential(nn.Linear(inp, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
        self.subspace = nn.Linear(h, d)
        self.cluster = nn.Linear(h, d)

    def forward(self, x):
        pre = self.pre_feature(x)
        return F.normalize(self.subspace(pre)), F.normalize(self.cluster(pre))


def sinkhorn_pi(c, eta=ETA, half_iters=HALF_ITERS):
    """Pi = m * Sinkhorn(|C C^T|), the reference's log-domain iterations (v detached)."""
    m = c.shape[0]
    k = (c @ c.T).abs()
    logmu = torch.log(torch.tensor(1.0 / m, dtype=c.dtype, device=c.device))
    u = torch.zeros(m, dtype=c.dtype, device=c.device)
    v = torch.zeros(m, dtype=c.dtype, device=c.device)
    for i in range(half_iters):
        mm = (k + u[:, None] + v[None, :]) / eta
        if i % 2 == 0:
            u = eta * (logmu - torch.logsumexp(mm, dim=1)) + u
        else:
            v = (eta * (logmu - torch.logsumexp(mm.T, dim=1)) + v).detach()
    return m * torch.exp((k + u[:, None] + v[None, :]) / eta)


def rate(z, eps_sq=EPS_SQ):
    """R(Z) = 1/2 logdet(I + d/(m eps^2) Z^T Z)."""
    m, d = z.shape
    return 0.5 * torch.logdet(torch.eye(d, dtype=z.dtype, device=z.device) + d / (m * eps_sq) * z.T @ z)


def compress(z, pi, eps_sq=EPS_SQ, batched=True):
    """R_c(Z, Pi) = sum_j tr_j/(2m) logdet(I + d/(tr_j eps^2) Z^T diag(Pi_j) Z), tr_j = sum_i Pi_ij + 1e-8.
    `batched`: all m log-dets at once (the benchmarks: the work a training loop does); otherwise one per j,
    as the reference's loop (the goldens)."""
    m, d = z.shape
    eye = torch.eye(d, dtype=z.dtype, device=z.device)
    if batched:
        tr = pi.sum(0) + 1e-8
        grams = torch.einsum("ij,ik,il->jkl", pi, z, z)  # m × d × d: Zᵀ diag(Π_j) Z
        return (tr / (2 * m) * torch.logdet(eye + (d / (tr * eps_sq))[:, None, None] * grams)).sum()
    rc = 0.0
    for j in range(m):
        tr = pi[:, j].sum() + 1e-8
        rc = rc + tr / (2 * m) * torch.logdet(eye + d / (tr * eps_sq) * (z.T * pi[:, j]) @ z)
    return rc


def mlc(z, c, eps_sq=EPS_SQ, gamma=GAMMA, lam=LAM, eta=ETA, half_iters=HALF_ITERS, batched=True):
    """The MLC loss -R(Z) + gamma R_c(Z, Pi) + lambda/2 ||Pi||_F^2 (see `compress` for `batched`)."""
    pi = sinkhorn_pi(c, eta, half_iters)
    rc = compress(z, pi, eps_sq, batched)
    return -rate(z, eps_sq) + gamma * rc + lam / 2 * (pi ** 2).sum()


def sgd_two_groups(model, lr, momentum, wd_backbone, wd_cluster):
    """The reference optimiser: the MLP and subspace head decay by wd_backbone, the cluster head by wd_cluster."""
    ps = dict(model.named_parameters())
    backbone = [p for n, p in ps.items() if not n.startswith("cluster.")]
    cluster = [p for n, p in ps.items() if n.startswith("cluster.")]
    return torch.optim.SGD([{"params": backbone, "weight_decay": wd_backbone},
                            {"params": cluster, "weight_decay": wd_cluster}], lr=lr, momentum=momentum)


def train_step(model, opt, x, loss_of, amp=None):
    """One training step on batch `x`: forward, `loss_of(Z, C)`, backward, SGD step; returns the loss.
    `amp`: torch.autocast arguments for the head's forward; the loss then runs on Z and C cast back to
    float32, as the reference keeps the numerically sensitive parts (log-dets, Sinkhorn) in float32."""
    if amp is None:
        z, c = model(x)
    else:
        with torch.autocast(**amp):
            z, c = model(x)
        z, c = z.float(), c.float()
    loss = loss_of(z, c)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss
