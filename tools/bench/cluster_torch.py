"""PyTorch reference timings for the cluster stage (pairs with examples/bench_cluster.rs).

Run:  /work/venv/bin/python tools/bench/cluster_torch.py [--device cuda] [--assign-n N]
Prints BENCH<TAB><case><TAB><ms per op> with the same case names as the Rust benchmark:
- train_step_b1024_in768_h4096_d128: one CPP training step of the reference model (Linear-BN-ReLU-Linear-ReLU,
  two normalised Linear heads), MLC loss with 5 Sinkhorn half-steps (v detached), backward, SGD with two
  groups; float32, median of 5 steps after 2 untimed ones.
- assign_1.28M_768_k1000: eval-mode head forward + subspace scores (GEMM against 1000 clusters' bases) and
  argmax, over 1.28 M random points in chunks of 65536 (time of the compute only), scaled if --assign-n < 1.28 M.
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--device", default="cpu")
ap.add_argument("--assign-n", type=int, default=1_280_000)
args = ap.parse_args()
dev = torch.device(args.device)
torch.manual_seed(0)
M, IN, H, D = 1024, 768, 4096, 128
EPS, ETA, LAM = 0.1, 0.175, 0.05


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre_feature = nn.Sequential(nn.Linear(IN, H), nn.BatchNorm1d(H), nn.ReLU(), nn.Linear(H, H), nn.ReLU())
        self.subspace = nn.Linear(H, D)
        self.cluster = nn.Linear(H, D)

    def forward(self, x):
        pre = self.pre_feature(x)
        return F.normalize(self.subspace(pre)), F.normalize(self.cluster(pre))


def sinkhorn_pi(c):
    m = c.shape[0]
    k = (c @ c.T).abs()
    logmu = torch.log(torch.tensor(1.0 / m, device=c.device))
    u = torch.zeros(m, device=c.device)
    v = torch.zeros(m, device=c.device)
    for i in range(5):
        mm = (k + u[:, None] + v[None, :]) / ETA
        if i % 2 == 0:
            u = ETA * (logmu - torch.logsumexp(mm, dim=1)) + u
        else:
            v = (ETA * (logmu - torch.logsumexp(mm.T, dim=1)) + v).detach()
    return m * torch.exp((k + u[:, None] + v[None, :]) / ETA)


def mlc(z, c):
    m, d = z.shape
    eye = torch.eye(d, device=z.device)
    r = 0.5 * torch.logdet(eye + d / (m * EPS) * z.T @ z)
    pi = sinkhorn_pi(c)
    tr = pi.sum(0) + 1e-8
    grams = torch.einsum("ij,ik,il->jkl", pi, z, z)  # m × d × d: Zᵀ diag(Π_j) Z
    rc = (tr / (2 * m) * torch.logdet(eye + (d / (tr * EPS))[:, None, None] * grams)).sum()
    return -r + rc + LAM / 2 * (pi ** 2).sum()


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


model = Head().to(dev)
ps = dict(model.named_parameters())
opt = torch.optim.SGD([{"params": [p for n, p in ps.items() if not n.startswith("cluster.")], "weight_decay": 1e-4},
                       {"params": [p for n, p in ps.items() if n.startswith("cluster.")], "weight_decay": 5e-3}],
                      lr=1e-4, momentum=0.9)
x = torch.randn(M, IN, device=dev)
times = []
for step in range(7):
    sync()
    t = time.perf_counter()
    z, c = model(x)
    loss = mlc(z, c)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
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
secs = 0.0
done = 0
with torch.no_grad():
    while done < n:
        rows = min(65536, n - done)
        xc = torch.rand(rows, IN, device=dev)
        sync()
        t = time.perf_counter()
        z = F.normalize(model.subspace(model.pre_feature(xc)))
        s = (z @ bases.T).view(rows, K, rank).pow(2).sum(-1)
        lab = s.argmax(1)
        sync()
        secs += time.perf_counter() - t
        done += rows
print(f"BENCH\tassign_1.28M_768_k1000\t{secs * 1e3 * TOTAL / n:.0f}", flush=True)
