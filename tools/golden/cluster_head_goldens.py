"""Golden files for the CPP head and its training (rateclust issue 3), from a float64 PyTorch restatement.

Rerun (deterministic; needs torch + safetensors):
    /work/venv/bin/python tools/golden/cluster_head_goldens.py
writes tests/fixtures/cluster_head/head_goldens.safetensors, read by tests/cluster_head.rs.

What it restates (docs/design.md §1, mirroring LeslieTrue/CPP): the head, the MLC loss (R_c one log-det per cluster,
as the reference's loop), the TCR warm-up loss and the two-group SGD step of tools/golden/cpp_head_torch.py
(shared with the benchmarks in tools/bench), with momentum; steps 0..=warmup use TCR, then the subspace head
is copied into the cluster head.

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
from safetensors.torch import save_file

from cpp_head_torch import Head, mlc, rate, sgd_two_groups, train_step

torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)

N, IN, H, D, M = 256, 32, 48, 16, 64
STEPS, WARMUP = 20, 4
HP = dict(eps_sq=0.1, gamma=1.0, lam=0.05, eta=0.175, half_iters=5, lr=0.02, momentum=0.9,
          wd_backbone=1e-4, wd_cluster=5e-3)

PARAM_NAMES = ["pre_feature.0.weight", "pre_feature.0.bias", "pre_feature.1.weight", "pre_feature.1.bias",
               "pre_feature.3.weight", "pre_feature.3.bias", "subspace.weight", "subspace.bias",
               "cluster.weight", "cluster.bias"]


def params(model):
    sd = dict(model.named_parameters())
    return {n: sd[n] for n in PARAM_NAMES}


def loss_fn(z, c, tcr):
    if tcr:
        return -rate(z, HP["eps_sq"])
    return mlc(z, c, HP["eps_sq"], HP["gamma"], HP["lam"], HP["eta"], HP["half_iters"], batched=False)


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
model = Head(IN, H, D)
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
assert list(dict(model.named_parameters())) == PARAM_NAMES  # the optimiser's groups list them in this order
opt = sgd_two_groups(model, HP["lr"], HP["momentum"], HP["wd_backbone"], HP["wd_cluster"])
losses = []
for step in range(STEPS):
    model.train()
    loss = train_step(model, opt, x[batches[step]], lambda z, c: loss_fn(z, c, step <= WARMUP))
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
