"""PyTorch (CUDA) side of the rate-reduction GPU benchmark; same case names as examples/bench_rate_cuda.rs.

Run on a machine with a CUDA GPU and PyTorch:   python3 tools/bench/rate_cuda_torch.py
Prints `BENCH<TAB>case<TAB>ms` lines (or a SKIP line without CUDA). The formulas restate LeslieTrue/CPP
(loss/loss_fn.py MLCLoss, model/sink_distance.py SinkhornDistance, main.py's Pi = n * plan and the
(pigam/2)*||Pi||^2 term), in float32 without autocast, and without the reference's per-iteration
`err.item()` host synchronisation (which would only slow PyTorch down).
"""
import time

import torch


def time_ms(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) * 1e3 / reps


def unit_rows(n, d, gen):
    x = torch.randn(n, d, generator=gen, device="cuda")
    return torch.nn.functional.normalize(x, dim=1)


def sinkhorn(k, eta=0.175, half_iters=5):
    n = k.shape[-1]
    log_mu = torch.log(torch.full((n,), 1.0 / n, device=k.device))
    u = torch.zeros(n, device=k.device)
    v = torch.zeros(n, device=k.device)
    for i in range(half_iters):
        if i % 2 == 0:
            u = eta * (log_mu - torch.logsumexp((k + u[:, None] + v[None, :]) / eta, dim=-1)) + u
        else:
            v = eta * (log_mu - torch.logsumexp(((k + u[:, None] + v[None, :]) / eta).T, dim=-1)) + v
            v = v.detach()
    return torch.exp((k + u[:, None] + v[None, :]) / eta)


def mlc_loss(z, c, eps=0.1, gamma=1.0, lam=0.05):
    m, d = z.shape
    pi = sinkhorn((c @ c.T).abs()) * m
    w = z.T
    eye = torch.eye(d, device=z.device)
    rate = torch.logdet(eye + d / (m * eps) * w @ w.T) / 2
    pij = pi.T.reshape(m, 1, m)
    tr = pij.sum(2) + 1e-8
    scale = (d / (tr * eps)).view(m, 1, 1)
    logdet = torch.logdet(eye.expand(m, d, d) + scale * (w.view(1, d, m) * pij) @ w.T.view(1, m, d))
    rate_c = (tr.squeeze() * logdet / (2 * m)).sum()
    return -rate + gamma * rate_c + lam * 0.5 * pi.norm() ** 2


def main():
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device for PyTorch")
        return
    torch.backends.cuda.matmul.allow_tf32 = False  # same float32 arithmetic as ours
    gen = torch.Generator(device="cuda").manual_seed(42)

    n = 128
    noise = (torch.rand(1024, n, n, generator=gen, device="cuda") - 0.5) / n
    a = torch.eye(n, device="cuda") + torch.tril(noise, -1) + torch.tril(noise, -1).transpose(1, 2)
    print(f"BENCH\tcuda_logdet_1024x128x128\t{time_ms(lambda: torch.logdet(a), 200):.4f}")
    a_req = a.clone().requires_grad_(True)

    def logdet_fwd_bwd():
        a_req.grad = None
        torch.logdet(a_req).sum().backward()

    print(f"BENCH\tcuda_logdet_inv_1024x128x128\t{time_ms(logdet_fwd_bwd, 100):.4f}")

    for size, reps in ((4096, 50), (16384, 10)):
        c = unit_rows(size, 128, gen)
        with torch.no_grad():
            ms = time_ms(lambda: sinkhorn((c @ c.T).abs()), reps)
        print(f"BENCH\tcuda_sinkhorn_n{size}\t{ms:.4f}")
        del c
        torch.cuda.empty_cache()

    z = unit_rows(1024, 128, gen).requires_grad_(True)
    c = unit_rows(1024, 128, gen).requires_grad_(True)

    def step():
        z.grad = None
        c.grad = None
        mlc_loss(z, c).backward()

    print(f"BENCH\tcuda_mlc_b1024_d128_fwd_bwd\t{time_ms(step, 30):.4f}")

    def tcr():
        z.grad = None
        m, d = z.shape
        (-torch.logdet(torch.eye(d, device="cuda") + d / (m * 0.1) * z.T @ z) / 2).backward()

    print(f"BENCH\tcuda_tcr_b1024_d128_fwd_bwd\t{time_ms(tcr, 30):.4f}")

    z = unit_rows(1024, 1024, gen).requires_grad_(True)
    c = unit_rows(1024, 1024, gen).requires_grad_(True)
    print(f"BENCH\tcuda_mlc_b1024_d1024_fwd_bwd\t{time_ms(step, 3):.4f}")


if __name__ == "__main__":
    main()
