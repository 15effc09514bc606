"""PyTorch reference timings for the CPP head on CUDA (pairs with examples/bench_cluster_cuda.rs).

Run (on a machine with a CUDA GPU and torch):  python3 tools/bench/cluster_cuda_torch.py
Prints BENCH<TAB><case><TAB><ms per op> with the same case names as the Rust benchmark. The head runs under
AMP (torch.autocast, bfloat16, so no gradient scaler is needed); the MLC loss (log-dets, Sinkhorn) runs in
float32 on the head's outputs cast back to float32, as the reference keeps numerically sensitive parts.
- cuda_train_step_b1024_in768_h4096_d128, cuda_train_step_b1024_in768_h2048_d1024: one CPP training step
  (Linear-BN-ReLU-Linear-ReLU, two normalised Linear heads, MLC loss with 5 Sinkhorn half-steps, backward,
  SGD with two groups) on a device-resident batch; median of the timed steps after 3 untimed ones, each
  ending with loss.item() (as a training loop that logs the loss).
- cuda_head_forward_1.28M_768_h4096_d128: eval-mode Z of 1.28 M host points, chunks of 32768 rows moved to
  the device and Z back (transfers included, as ours).
- cuda_assign_1.28M_768_k1000: the same forward plus subspace scores against 1000 clusters' bases
  (rank min(128 / 1000, 16) = 1) and argmax on the device, labels back to the host.
"""
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

if not torch.cuda.is_available():
    print("SKIP: no CUDA device (torch.cuda.is_available() is False)")
    raise SystemExit(0)
dev = torch.device("cuda")
torch.manual_seed(0)
M, IN = 1024, 768
EPS, ETA, LAM = 0.1, 0.175, 0.05
AMP = dict(device_type="cuda", dtype=torch.bfloat16)


class Head(nn.Module):
    def __init__(self, h, d):
        super().__init__()
        self.pre_feature = nn.Sequential(nn.Linear(IN, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
        self.subspace = nn.Linear(h, d)
        self.cluster = nn.Linear(h, d)

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


def step_case(h, d, reps):
    model = Head(h, d).to(dev)
    ps = dict(model.named_parameters())
    opt = torch.optim.SGD([{"params": [p for n, p in ps.items() if not n.startswith("cluster.")], "weight_decay": 1e-4},
                           {"params": [p for n, p in ps.items() if n.startswith("cluster.")], "weight_decay": 5e-3}],
                          lr=1e-4, momentum=0.9)
    x = torch.randn(M, IN, device=dev)
    times = []
    for i in range(reps + 3):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast(**AMP):
            z, c = model(x)
        loss = mlc(z.float(), c.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
        if i >= 3:
            times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


print(f"BENCH\tcuda_train_step_b1024_in768_h4096_d128\t{step_case(4096, 128, 20):.3f}", flush=True)
print(f"BENCH\tcuda_train_step_b1024_in768_h2048_d1024\t{step_case(2048, 1024, 5):.3f}", flush=True)

N, H, D, K, CHUNK = 1_280_000, 4096, 128, 1000, 32768
rank = max(1, min(16, D // K))
model = Head(H, D).to(dev).eval()
bases = F.normalize(torch.randn(K * rank, D, device=dev), dim=1)
x = torch.rand(N, IN)


def run(assign):
    out = []
    with torch.no_grad(), torch.autocast(**AMP):
        for s in range(0, N, CHUNK):
            xc = x[s:s + CHUNK].to(dev, non_blocking=False)
            z = F.normalize(model.subspace(model.pre_feature(xc)).float())
            if assign:
                scores = (z @ bases.T).view(z.shape[0], K, rank).pow(2).sum(-1)
                out.append(scores.argmax(1).cpu())
            else:
                out.append(z.cpu())
    torch.cuda.synchronize()
    return out


for name, assign in [("cuda_head_forward_1.28M_768_h4096_d128", False), ("cuda_assign_1.28M_768_k1000", True)]:
    with torch.no_grad(), torch.autocast(**AMP):
        model.subspace(model.pre_feature(x[:4096].to(dev)))  # warm-up
    torch.cuda.synchronize()
    t = time.perf_counter()
    run(assign)
    print(f"BENCH\t{name}\t{(time.perf_counter() - t) * 1e3:.0f}", flush=True)
