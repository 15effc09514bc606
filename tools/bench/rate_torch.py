"""PyTorch (CPU, float32) side of the rate-reduction benchmark: same cases and output format as
`cargo run --release --example bench_rate` (lines `BENCH<TAB>case<TAB>ms per op`, median of several runs after
a warm-up).

Cases:
  logdet_1024x128x128_fwd_bwd   batched Cholesky log-det of 1024 SPD 128x128 matrices, forward + backward
  mlc_loss_b1024_d128_fwd_bwd   the whole MLC loss of LeslieTrue/CPP (|CC^T|, Sinkhorn, R, R_c, ||Pi||^2)
                                forward + backward to Z and C, m = 1024, d = 128 (the restatement in
                                tools/golden/rate_goldens.py, run in float32)

Run:  /work/venv/bin/python tools/bench/rate_torch.py [reps]
"""
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "golden"))
from rate_goldens import mlc  # noqa: E402  (the faithful restatement of the reference loss)


def median_ms(reps, fn):
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    torch.manual_seed(42)
    b, n = 1024, 128
    x = torch.randn(b, 256, n)
    a0 = torch.eye(n) + x.transpose(1, 2) @ x / 128.0

    def logdet_step():
        a = a0.clone().requires_grad_(True)
        ld = 2.0 * torch.log(torch.diagonal(torch.linalg.cholesky(a), dim1=-2, dim2=-1)).sum()
        ld.backward()
        return a.grad

    print(f"BENCH\tlogdet_1024x128x128_fwd_bwd\t{median_ms(reps, logdet_step):.2f}", flush=True)

    m, d = 1024, 128
    z0 = torch.nn.functional.normalize(torch.randn(m, d), dim=1)
    c0 = torch.nn.functional.normalize(torch.randn(m, d), dim=1)

    def mlc_step():
        z = z0.clone().requires_grad_(True)
        c = c0.clone().requires_grad_(True)
        loss = mlc(z, c, 0.1, 1.0, 0.05, 0.175, 5, True)[0]
        loss.backward()
        return z.grad, c.grad

    print(f"BENCH\tmlc_loss_b1024_d128_fwd_bwd\t{median_ms(reps, mlc_step):.2f}", flush=True)
    print(f"(torch {torch.__version__}, {torch.get_num_threads()} threads)", file=sys.stderr)


if __name__ == "__main__":
    main()
