"""Golden files for the CPP head and its training (rateclust issue 3), from a float64 PyTorch restatement.

Rerun (deterministic; needs torch + safetensors):
    /work/venv/bin/python tools/golden/cluster_head_goldens.py
writes tests/fixtures/cluster_head/head_goldens.safetensors, read by tests/cluster_model_head.rs.

What it restates (DESIGN §1, mirroring LeslieTrue/CPP):
  head: pre_feature = Linear(in,h) -> BatchNorm1d(h) -> ReLU -> Linear(h,h) -> ReLU,
        Z = F.normalize(subspace(pre)), C = F.normalize(cluster(pre)), subspace/cluster = Linear(h,d)
  loss: -R(Z) + gamma R_c(Z, Pi) + lambda/2 ||Pi||_F^2, Pi = m * Sinkhorn_eta(|C C^T|) (log domain,
        5 half-iterations row/col/row/col/row, v detached at each column step), TCR warm-up = -R(Z) only.
  training: torch.optim.SGD with two groups (MLP + subspace head: wd_backbone; cluster head: wd_cluster),
        momentum, steps 0..=warmup use TCR, then the subspace head is copied into the cluster head.

Stored tensors (all float64 unless noted):
  x (N, in) features; batches (steps, m) int64 row indices of each step's batch, in order;
  init/<param> initial weights (PyTorch names, see PARAM_NAMES below), init BN running stats are 0 / 1;
  lin/A, lin/B (m, d) and lin_grad/<param>: gradient of sum(Z*A) + sum(C*B) on batch 0 (train mode);
  lin/Z, lin/C: the head's outputs on batch 0; lin/running_mean, lin/running_var after that forward;
  mlc_grad/<param>, mlc/loss: MLC loss and its gradient on batch 0; tcr_grad/<param>, tcr/loss likewise;
  traj/loss (steps,): loss at each training step; traj/final/<param>, traj/final/running_mean|var;
  eval/Z, eval/C: eval-mode outputs on all of x after training.
  Hyperparameters are in the safetensors metadata.
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)

N, IN, H, D, M = 256, 32, 48, 16, 64
STEPS, WARMUP = 20, 4
HP = dict(eps_sq=0.1, gamma=1.0, lam=0.05, eta=0.175, half_iters=5, lr=0.02, momentum=0.9,
          wd_backbone=1e-4, wd_cluster=5e-3)

PARAM_NAMES = ["pre_feature.0.weight", "pre_feature.0.bias", "pre_feature.1.weight", "pre_feature.1.bias",
               "pre_feature.3.weight", "pre_feature.3.bias", "subspace.weight", "subspace.bias",
               "cluster.weight", "cluster.bias"]


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre_feature = nn.Sequential(nn.Linear(IN, H), nn.BatchNorm1d(H), nn.ReLU(), nn.Linear(H, H), nn.ReLU())
        self.subspace = nn.Linear(H, D)
        self.cluster = nn.Linear(H, D)

    def forward(self, x):
        pre = self.pre_feature(x)
        return F.normalize(self.subspace(pre)), F.normalize(self.cluster(pre))


def params(model):
    sd = dict(model.named_parameters())
    return {n: sd[n] for n in PARAM_NAMES}


def sinkhorn_pi(c):
    """Pi = m * Sinkhorn(|C C^T|), the reference's log-domain iterations (v detached)."""
    m = c.shape[0]
    k = (c @ c.T).abs()
    eta = HP["eta"]
    logmu = torch.log(torch.tensor(1.0 / m))
    u = torch.zeros(m)
    v = torch.zeros(m)
    for i in range(HP["half_iters"]):
        mm = (k + u[:, None] + v[None, :]) / eta
        if i % 2 == 0:
            u = eta * (logmu - torch.logsumexp(mm, dim=1)) + u
        else:
            v = (eta * (logmu - torch.logsumexp(mm.T, dim=1)) + v).detach()
    return m * torch.exp((k + u[:, None] + v[None, :]) / eta)


def rate(z):
    m, d = z.shape
    return 0.5 * torch.logdet(torch.eye(d) + d / (m * HP["eps_sq"]) * z.T @ z)


def loss_fn(z, c, tcr):
    if tcr:
        return -rate(z)
    m, d = z.shape
    pi = sinkhorn_pi(c)
    rc = 0.0
    for j in range(m):
        tr = pi[:, j].sum() + 1e-8
        rc = rc + tr / (2 * m) * torch.logdet(torch.eye(d) + d / (tr * HP["eps_sq"]) * (z.T * pi[:, j]) @ z)
    return -rate(z) + HP["gamma"] * rc + HP["lam"] / 2 * (pi ** 2).sum()


def union_of_subspaces(n, dim, k=4, r=3):
    bases = [torch.linalg.qr(torch.randn(dim, r))[0] for _ in range(k)]
    rows = [bases[i % k] @ torch.randn(r) + 0.05 * torch.randn(dim) for i in range(n)]
    return torch.stack(rows).abs()  # non-negative, like pooled ReLU features


def grads_of(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in params(model).items() if p.grad is not None}


out = {}
x = union_of_subspaces(N, IN)
out["x"] = x
model = Head()
init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
for n, p in params(model).items():
    out[f"init/{n}"] = p.detach().clone()
g = torch.Generator().manual_seed(7)
batches = torch.cat([torch.randperm(N, generator=g)[: (N // M) * M].view(-1, M) for _ in range(STEPS // (N // M) + 1)])[:STEPS]
out["batches"] = batches.to(torch.int64)

# Gradient of a linear functional of (Z, C): tests the head's backward alone.
xb = x[batches[0]]
A, B = torch.randn(M, D), torch.randn(M, D)
model.train()
z, c = model(xb)
out["lin/A"], out["lin/B"], out["lin/Z"], out["lin/C"] = A, B, z.detach(), c.detach()
out["lin/running_mean"] = model.pre_feature[1].running_mean.clone()
out["lin/running_var"] = model.pre_feature[1].running_var.clone()
for n, gr in grads_of(model, (z * A).sum() + (c * B).sum()).items():
    out[f"lin_grad/{n}"] = gr

# Full MLC and TCR gradients through the head, on batch 0 from the initial weights.
for tag, tcr in (("mlc", False), ("tcr", True)):
    model.load_state_dict(init_state)
    z, c = model(xb)
    loss = loss_fn(z, c, tcr)
    out[f"{tag}/loss"] = loss.detach().reshape(1)
    for n, gr in grads_of(model, loss).items():
        out[f"{tag}_grad/{n}"] = gr

# 20 training steps from the initial weights with the given batches.
model.load_state_dict(init_state)
ps = params(model)
backbone = [p for n, p in ps.items() if not n.startswith("cluster.")]
cluster = [p for n, p in ps.items() if n.startswith("cluster.")]
opt = torch.optim.SGD([{"params": backbone, "weight_decay": HP["wd_backbone"]},
                       {"params": cluster, "weight_decay": HP["wd_cluster"]}], lr=HP["lr"], momentum=HP["momentum"])
losses = []
for step in range(STEPS):
    model.train()
    z, c = model(x[batches[step]])
    loss = loss_fn(z, c, step <= WARMUP)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    losses.append(loss.item())
    if step == WARMUP:
        with torch.no_grad():
            model.cluster.weight.copy_(model.subspace.weight)
            model.cluster.bias.copy_(model.subspace.bias)
out["traj/loss"] = torch.tensor(losses)
for n, p in params(model).items():
    out[f"traj/final/{n}"] = p.detach().clone()
out["traj/final/running_mean"] = model.pre_feature[1].running_mean.clone()
out["traj/final/running_var"] = model.pre_feature[1].running_var.clone()
model.eval()
with torch.no_grad():
    z, c = model(x)
out["eval/Z"], out["eval/C"] = z, c

meta = dict(HP, n=N, input=IN, hidden=H, zdim=D, batch=M, steps=STEPS, warmup=WARMUP)
path = os.path.join(os.path.dirname(__file__), "../../tests/fixtures/cluster_head/head_goldens.safetensors")
save_file({k: v.contiguous() for k, v in out.items()}, os.path.normpath(path), metadata={"hyperparameters": json.dumps(meta)})
print("wrote", os.path.normpath(path), "losses", [round(l, 6) for l in losses])
