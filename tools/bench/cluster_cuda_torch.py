"""PyTorch reference timings for the CPP head on CUDA (pairs with examples/bench_cluster_cuda.rs).

Run (on a machine with a CUDA GPU and torch):  python3 tools/bench/cluster_cuda_torch.py
Prints BENCH<TAB><case><TAB><ms per op> with the same case names as the Rust benchmark. The head runs under
AMP (torch.autocast, bfloat16, so no gradient scaler is needed); the MLC loss (log-dets, Sinkhorn) runs in
float32 on the head's outputs cast back to float32, as the reference keeps numerically sensitive parts.
- cuda_train_step_b1024_in768_h4096_d128, cuda_train_step_b1024_in768_h2048_d1024: one CPP training step
  (Linear-BN-ReLU-Linear-ReLU, two normalised Linear heads, MLC loss with 5 Sinkhorn half-steps, backward,
  SGD with two groups: the shared restatement in tools/golden/cpp_head_torch.py) on a device-resident batch;
  median of the timed steps after 3 untimed ones, each ending with loss.item() (as a training loop that logs
  the loss).
- cuda_head_forward_1.28M_768_h4096_d128: eval-mode Z of 1.28 M host points, chunks of 32768 rows moved to
  the device and Z back (transfers included, as ours).
- cuda_assign_1.28M_768_k1000: the same forward plus subspace scores against 1000 clusters' bases
  (rank min(128 / 1000, 16) = 1) and argmax on the device, labels back to the host.
"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "golden"))
from cpp_head_torch import Head, mlc, sgd_two_groups, train_step  # noqa: E402

if not torch.cuda.is_available():
    print("SKIP: no CUDA device (torch.cuda.is_available() is False)")
    raise SystemExit(0)
dev = torch.device("cuda")
torch.manual_seed(0)
M, IN = 1024, 768
AMP = dict(device_type="cuda", dtype=torch.bfloat16)


def step_case(h, d, reps):
    model = Head(IN, h, d).to(dev)
    opt = sgd_two_groups(model, lr=1e-4, momentum=0.9, wd_backbone=1e-4, wd_cluster=5e-3)
    x = torch.randn(M, IN, device=dev)
    times = []
    for i in range(reps + 3):
        torch.cuda.synchronize()
        t = time.perf_counter()
        train_step(model, opt, x, mlc, amp=AMP).item()
        if i >= 3:
            times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


print(f"BENCH\tcuda_train_step_b1024_in768_h4096_d128\t{step_case(4096, 128, 20):.3f}", flush=True)
print(f"BENCH\tcuda_train_step_b1024_in768_h2048_d1024\t{step_case(2048, 1024, 5):.3f}", flush=True)

N, H, D, K, CHUNK = 1_280_000, 4096, 128, 1000, 32768
rank = max(1, min(16, D // K))
model = Head(IN, H, D).to(dev).eval()
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
