"""PyTorch reference timings for the cluster stage (pairs with examples/bench_cluster.rs).

Run:  /work/venv/bin/python tools/bench/cluster_torch.py [--device cuda] [--assign-n N]
Prints BENCH<TAB><case><TAB><ms per op> with the same case names as the Rust benchmark:
- train_step_b1024_in768_h4096_d128: one CPP training step of the reference model (Linear-BN-ReLU-Linear-ReLU,
  two normalised Linear heads), MLC loss with 5 Sinkhorn half-steps (v detached), backward, SGD with two
  groups; float32, median of 5 steps after 2 untimed ones. The model, loss and step are the shared
  restatement in tools/golden/cpp_head_torch.py (also behind the goldens).
- assign_1.28M_768_k1000: eval-mode head forward + subspace scores (GEMM against 1000 clusters' bases) and
  argmax, over 1.28 M random points in chunks of 65536 (time of the compute only), scaled if --assign-n < 1.28 M.
- assign_1.28M_768_k1000_neighbors-x: the same points labelled by the default fit's rule: L2-normalise, centre,
  project onto 128 directions, L2-normalise, similarities to 10,000 unit reference rows, top-10, majority
  label (torch.mode).
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "golden"))
from cpp_head_torch import Head, mlc, sgd_two_groups, train_step  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--device", default="cpu")
ap.add_argument("--assign-n", type=int, default=1_280_000)
args = ap.parse_args()
dev = torch.device(args.device)
torch.manual_seed(0)
M, IN, H, D = 1024, 768, 4096, 128


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


model = Head(IN, H, D).to(dev)
opt = sgd_two_groups(model, lr=1e-4, momentum=0.9, wd_backbone=1e-4, wd_cluster=5e-3)
x = torch.randn(M, IN, device=dev)
times = []
for step in range(7):
    sync()
    t = time.perf_counter()
    train_step(model, opt, x, mlc)
    sync()
    if step >= 2:
        times.append((time.perf_counter() - t) * 1e3)
times.sort()
print(f"BENCH\ttrain_step_b1024_in768_h4096_d128\t{times[len(times) // 2]:.1f}", flush=True)

K, TOTAL = 1000, 1_280_000
rank = max(1, min(16, D // K))
bases = F.normalize(torch.randn(K * rank, D, device=dev), dim=1)
model.eval()
n = min(args.assign_n, TOTAL)


def time_assign(label):
    """Seconds `label(x)` spends on n uniform random points, in chunks of 65536 (generation not timed)."""
    secs, done = 0.0, 0
    with torch.no_grad():
        while done < n:
            rows = min(65536, n - done)
            xc = torch.rand(rows, IN, device=dev)
            sync()
            t = time.perf_counter()
            label(xc)
            sync()
            secs += time.perf_counter() - t
            done += rows
    return secs


def subspace_rule(xc):
    z = F.normalize(model.subspace(model.pre_feature(xc)))
    return (z @ bases.T).view(len(xc), K, rank).pow(2).sum(-1).argmax(1)


print(f"BENCH\tassign_1.28M_768_k1000\t{time_assign(subspace_rule) * 1e3 * TOTAL / n:.0f}", flush=True)

REFS, RANK = 10_000, 128
mean = torch.randn(IN, device=dev)
basis = torch.randn(IN, RANK, device=dev)
ref = F.normalize(torch.randn(REFS, RANK, device=dev), dim=1)
ref_labels = torch.arange(REFS, device=dev) % K


def neighbors_rule(xc):
    p = F.normalize((F.normalize(xc) - mean) @ basis)
    idx = (p @ ref.T).topk(10, dim=1).indices
    return ref_labels[idx].mode(dim=1).values


print(f"BENCH\tassign_1.28M_768_k1000_neighbors-x\t{time_assign(neighbors_rule) * 1e3 * TOTAL / n:.0f}", flush=True)
