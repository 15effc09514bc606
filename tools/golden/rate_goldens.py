"""Golden values for the rate-reduction core (src/rate): R(Z), R_c(Z, Π), Sinkhorn Π, the MLC and TCR losses,
and their gradients with respect to Z and C, by float64 PyTorch autograd.

The formulas restate LeslieTrue/CPP faithfully (not our Rust code):
  - Π: `model/sink_distance.py` SinkhornDistance.forward on `self_coeff = |C Cᵀ|` as `main.py` calls it
    (log domain, μ = ν = 1/m, u updated on even half-steps, v on odd ones and detached after each update,
    plan = exp((K + u + vᵀ)/η)), then Π = plan · m. The "exact" variant keeps v attached.
  - loss: `loss/loss_fn.py` MLCLoss (compute_discrimn_loss / compute_compress_loss, same tensor reshapes)
    plus `pigam * 0.5 * Pi.norm()**2` from `main.py`; TCR = TotalCodingRate = −R(Z).

Inputs Z, C (rows L2-normalised) are stored as float32 so both sides read exactly the same numbers; every
output is float64. One safetensors file per case in tests/fixtures/rate/, parameters in its metadata.

Rerun (deterministic):  /work/venv/bin/python tools/golden/rate_goldens.py
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "rate")

# name, m, d, eps_sq, gamma, lambda, eta, half_iters, store_pi
# (d128 has d ≤ m and d1024 has d > m: the two formulations of R_c in src/rate/coding.rs; "clustered" puts Z
# and C near a union of 4 planes, the ill-conditioned regime trained features are in.)
CASES = [
    ("small", 8, 4, 0.1, 1.0, 0.05, 0.175, 5, True),
    ("even_iters_custom", 12, 6, 0.5, 0.7, 0.1, 0.3, 4, True),
    ("one_half_iter", 10, 5, 0.1, 1.0, 0.05, 0.175, 1, True),
    ("d128", 160, 128, 0.1, 1.0, 0.05, 0.175, 5, True),
    ("clustered", 96, 64, 0.1, 1.0, 0.05, 0.175, 5, True),
    ("d1024", 24, 1024, 0.1, 1.0, 0.05, 0.12, 5, True),
]


def sinkhorn(K, eta, iters, detach_v):
    """Mirrors SinkhornDistance.forward with C = -K (so M = (K + u + v)/eta)."""
    m = K.shape[-1]
    mu = torch.full((m,), 1.0 / m, dtype=K.dtype)
    nu = torch.full((m,), 1.0 / m, dtype=K.dtype)
    u = torch.zeros_like(mu)
    v = torch.zeros_like(nu)

    def M(u, v):
        return (K + u.unsqueeze(-1) + v.unsqueeze(-2)) / eta

    for i in range(iters):
        if i % 2 == 0:
            u = eta * (torch.log(mu) - torch.logsumexp(M(u, v), dim=-1)) + u
        else:
            v = eta * (torch.log(nu) - torch.logsumexp(M(u, v).transpose(-2, -1), dim=-1)) + v
            if detach_v:
                v = v.detach()
    return torch.exp(M(u, v))


def discrimn(W, eps):
    p, m = W.shape
    I = torch.eye(p, dtype=W.dtype)
    return torch.logdet(I + p / (m * eps) * W.matmul(W.T)) / 2.0


def compress(W, Pi, eps):
    p, m = W.shape
    k, _, _ = Pi.shape
    I = torch.eye(p, dtype=W.dtype).expand((k, p, p))
    trPi = Pi.sum(2) + 1e-8
    scale = (p / (trPi * eps)).view(k, 1, 1)
    W = W.view((1, p, m))
    log_det = torch.logdet(I + scale * W.mul(Pi).matmul(W.transpose(1, 2)))
    return (trPi.squeeze() * log_det / (2 * m)).sum()


def mlc(z, c, eps, gamma, lam, eta, iters, detach_v):
    self_coeff = (c @ c.T).abs()
    Pi = sinkhorn(self_coeff, eta, iters, detach_v)
    Pi = Pi * Pi.shape[-1]
    W = z.T
    r = discrimn(W, eps)
    rc = compress(W, Pi.T.reshape((Pi.shape[0], 1, -1)), eps)
    pen = lam * 0.5 * Pi.norm() ** 2
    return -r + gamma * rc + pen, r, rc, pen, Pi


def normalised(rng, m, d, planes=0):
    x = rng.standard_normal((m, d))
    if planes:
        bases = [np.linalg.qr(rng.standard_normal((d, 2)))[0] for _ in range(planes)]
        x = np.stack([bases[i % planes] @ rng.standard_normal(2) for i in range(m)]) + 1e-3 * x
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20260127)
    for name, m, d, eps, gamma, lam, eta, iters, store_pi in CASES:
        planes = 4 if name == "clustered" else 0
        z32, c32 = normalised(rng, m, d, planes), normalised(rng, m, d, planes)
        t = {"z": torch.from_numpy(z32), "c": torch.from_numpy(c32)}
        for mode, detach in (("ref", True), ("exact", False)):
            z = torch.from_numpy(z32).double().requires_grad_(True)
            c = torch.from_numpy(c32).double().requires_grad_(True)
            loss, r, rc, pen, Pi = mlc(z, c, eps, gamma, lam, eta, iters, detach)
            loss.backward()
            t[f"grad_z_{mode}"] = z.grad.clone()
            t[f"grad_c_{mode}"] = c.grad.clone()
            if mode == "ref":
                t["loss"] = loss.detach().reshape(1)
                t["rate"] = r.detach().reshape(1)
                t["rate_c"] = rc.detach().reshape(1)
                t["pi_penalty"] = pen.detach().reshape(1)
                if store_pi:
                    t["pi"] = Pi.detach().contiguous()
        z = torch.from_numpy(z32).double().requires_grad_(True)
        tcr = -discrimn(z.T, eps)
        tcr.backward()
        t["tcr_loss"] = tcr.detach().reshape(1)
        t["tcr_grad_z"] = z.grad.clone()
        meta = {"m": str(m), "d": str(d), "eps_sq": repr(eps), "gamma": repr(gamma), "lambda": repr(lam),
                "eta": repr(eta), "half_iters": str(iters)}
        path = os.path.join(OUT, f"{name}.safetensors")
        tmp = path + ".tmp"
        save_file({k: v.contiguous() for k, v in t.items()}, tmp, metadata=meta)
        os.replace(tmp, path)
        print(f"{name}: m={m} d={d} loss={t['loss'].item():.12g} -> {path}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
