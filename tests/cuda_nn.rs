//! `kernels/nn.cu` (the CLIP engine's CUDA building blocks) against direct f64 restatements of the
//! transformers modules they mirror. f16 outputs within 1e-2 relative (issue 4's GPU tolerance), f32
//! outputs within 1e-4. Needs a GPU: without one each test prints `SKIP: no CUDA device (<reason>)`.

mod common;

use common::cuda_or_skip;
use half::f16;
use rateclust::clip::cuda::nn::{self, NnActivation};
use rateclust::rng::Rng;

fn randn(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

fn max_rel(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |a, b| a.max(b.abs())).max(1e-12);
    got.iter().zip(want).map(|(&g, &w)| (g as f64 - w).abs() / scale).fold(0.0, f64::max)
}

fn halves(x: &[f16]) -> Vec<f32> {
    x.iter().map(|h| h.to_f32()).collect()
}

/// erf with |error| < 1.2e-7 (Numerical Recipes erfc Chebyshev fit), for the GELU reference.
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t * (-z * z - 1.26551223
        + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
        .exp();
    if x >= 0.0 {
        1.0 - r
    } else {
        r - 1.0
    }
}

#[test]
fn layer_norm_bias_act_residual_softmax() {
    let Some((_, dev)) = cuda_or_skip() else { return };
    let mut rng = Rng::new(1);
    let (rows, d) = (37, 768);
    let x = randn(&mut rng, rows * d, 2.0);
    let gamma = randn(&mut rng, d, 1.0);
    let beta = randn(&mut rng, d, 1.0);
    let xb = dev.upload(&x, "x").unwrap();
    let (gb, bb) = (dev.upload(&gamma, "gamma").unwrap(), dev.upload(&beta, "beta").unwrap());
    let mut o32 = dev.zeros::<f32>(rows * d, "ln32").unwrap();
    let mut o16 = dev.zeros::<f16>(rows * d, "ln16").unwrap();
    nn::layer_norm(&dev, &xb, rows, d, &gb, &bb, 1e-5, Some(&mut o32), Some(&mut o16)).unwrap();
    let mut want = vec![0.0f64; rows * d];
    for r in 0..rows {
        let row = &x[r * d..][..d];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        for j in 0..d {
            want[r * d + j] = (row[j] as f64 - mean) / (var + 1e-5).sqrt() * gamma[j] as f64 + beta[j] as f64;
        }
    }
    let e32 = max_rel(&dev.download(&o32, "ln32").unwrap(), &want);
    let e16 = max_rel(&halves(&dev.download(&o16, "ln16").unwrap()), &want);
    println!("layer_norm: f32 {e32:.1e}, f16 {e16:.1e}");
    assert!(e32 < 1e-5 && e16 < 1e-2);

    for act in [NnActivation::QuickGelu, NnActivation::Gelu] {
        let mut out = dev.zeros::<f16>(rows * d, "act").unwrap();
        nn::bias_act_to_f16(&dev, &xb, Some(&bb), rows, d, Some(act), &mut out).unwrap();
        let want: Vec<f64> = (0..rows * d)
            .map(|i| {
                let v = x[i] as f64 + beta[i % d] as f64;
                match act {
                    NnActivation::QuickGelu => v / (1.0 + (-1.702 * v).exp()),
                    NnActivation::Gelu => 0.5 * v * (1.0 + erf(v / 2f64.sqrt())),
                }
            })
            .collect();
        let e = max_rel(&halves(&dev.download(&out, "act").unwrap()), &want);
        println!("{act:?}: {e:.1e}");
        assert!(e < 1e-2);
    }

    let mut resid = dev.upload(&gamma.repeat(rows), "resid").unwrap();
    nn::bias_residual(&dev, &xb, Some(&bb), rows, d, &mut resid).unwrap();
    let want: Vec<f64> = (0..rows * d).map(|i| gamma[i % d] as f64 + x[i] as f64 + beta[i % d] as f64).collect();
    assert!(max_rel(&dev.download(&resid, "resid").unwrap(), &want) < 1e-6);

    for causal in [false, true] {
        let n = 77;
        let s = randn(&mut rng, 3 * n * n, 3.0);
        let mut sb = dev.upload(&s, "scores").unwrap();
        nn::softmax_rows(&dev, &mut sb, 3 * n, n, causal).unwrap();
        let mut want = vec![0.0f64; s.len()];
        for r in 0..3 * n {
            let lim = if causal { r % n + 1 } else { n };
            let row = &s[r * n..][..lim];
            let mx = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
            let z: f64 = row.iter().map(|&v| (v as f64 - mx).exp()).sum();
            for j in 0..lim {
                want[r * n + j] = (row[j] as f64 - mx).exp() / z;
            }
        }
        assert!(max_rel(&dev.download(&sb, "softmax").unwrap(), &want) < 1e-5, "softmax causal={causal}");
    }
}

#[test]
fn fused_attention_matches_reference() {
    let Some((_, dev)) = cuda_or_skip() else { return };
    let mut rng = Rng::new(2);
    for (b, seq, heads, hd, causal) in [(3, 50, 12, 64, false), (2, 77, 8, 64, true), (1, 257, 4, 80, false), (2, 5, 2, 128, true)] {
        let d = heads * hd;
        let qkv: Vec<f16> = randn(&mut rng, b * seq * 3 * d, 1.0).into_iter().map(f16::from_f32).collect();
        let qb = dev.upload(&qkv, "qkv").unwrap();
        let mut ob = dev.zeros::<f16>(b * seq * d, "attention out").unwrap();
        nn::attention(&dev, &qb, b, seq, heads, hd, causal, &mut ob).unwrap();
        let q = |n: usize, t: usize, c: usize| qkv[(n * seq + t) * 3 * d + c].to_f64();
        let mut want = vec![0.0f64; b * seq * d];
        let scale = 1.0 / (hd as f64).sqrt();
        for n in 0..b {
            for h in 0..heads {
                for t in 0..seq {
                    let lim = if causal { t + 1 } else { seq };
                    let s: Vec<f64> = (0..lim).map(|k| (0..hd).map(|c| q(n, t, h * hd + c) * q(n, k, d + h * hd + c)).sum::<f64>() * scale).collect();
                    let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = s.iter().map(|v| (v - mx).exp()).sum();
                    for c in 0..hd {
                        want[(n * seq + t) * d + h * hd + c] = (0..lim).map(|k| (s[k] - mx).exp() / z * q(n, k, 2 * d + h * hd + c)).sum();
                    }
                }
            }
        }
        let e = max_rel(&halves(&dev.download(&ob, "attention").unwrap()), &want);
        println!("attention b={b} seq={seq} heads={heads} hd={hd} causal={causal}: {e:.1e}");
        assert!(e < 1e-2);
    }
}

#[test]
fn pixels_patches_and_tokens() {
    let Some((_, dev)) = cuda_or_skip() else { return };
    let mut rng = Rng::new(3);
    let (b, h, w, p) = (2, 64, 32, 16);
    let rgb: Vec<u8> = (0..b * h * w * 3).map(|_| rng.below(256) as u8).collect();
    let mean = [0.481_454_66, 0.457_827_5, 0.408_210_73];
    let std = [0.268_629_54, 0.261_302_6, 0.275_777_1];
    let rb = dev.upload(&rgb, "rgb").unwrap();
    let mut px = dev.zeros::<f32>(b * 3 * h * w, "pixels").unwrap();
    nn::pixels_normalize(&dev, &rb, b, h, w, mean, std, &mut px).unwrap();
    let pxh = dev.download(&px, "pixels").unwrap();
    let pix = |n: usize, c: usize, y: usize, x: usize| (rgb[((n * h + y) * w + x) * 3 + c] as f64 / 255.0 - mean[c] as f64) / std[c] as f64;
    let want: Vec<f64> = (0..b * 3 * h * w).map(|i| pix(i / (3 * h * w), (i / (h * w)) % 3, (i / w) % h, i % w)).collect();
    assert!(max_rel(&pxh, &want) < 1e-6, "pixel normalisation");

    let (gh, gw) = (h / p, w / p);
    let np = gh * gw;
    let mut patches = dev.zeros::<f16>(b * np * 3 * p * p, "patches").unwrap();
    nn::patches_im2col(&dev, &px, b, h, w, p, &mut patches).unwrap();
    let got = halves(&dev.download(&patches, "patches").unwrap());
    for (i, g) in got.iter().enumerate() {
        let (row, col) = (i / (3 * p * p), i % (3 * p * p));
        let (n, k) = (row / np, row % np);
        let (c, ky, kx) = (col / (p * p), (col / p) % p, col % p);
        let v = pxh[((n * 3 + c) * h + (k / gw) * p + ky) * w + (k % gw) * p + kx];
        assert_eq!(*g, f16::from_f32(v).to_f32(), "patch element {i}");
    }

    let d = 24;
    let emb = randn(&mut rng, b * np * d, 1.0);
    let cls = randn(&mut rng, d, 1.0);
    let pos = randn(&mut rng, (np + 1) * d, 1.0);
    let mut tok = dev.zeros::<f32>(b * (np + 1) * d, "tokens").unwrap();
    let (eb, cb, pb) = (dev.upload(&emb, "emb").unwrap(), dev.upload(&cls, "cls").unwrap(), dev.upload(&pos, "pos").unwrap());
    nn::vision_tokens(&dev, &eb, &cb, &pb, b, np, d, &mut tok).unwrap();
    let got = dev.download(&tok, "tokens").unwrap();
    for n in 0..b {
        for t in 0..=np {
            for f in 0..d {
                let e = if t == 0 { cls[f] } else { emb[(n * np + t - 1) * d + f] };
                assert_eq!(got[(n * (np + 1) + t) * d + f], e + pos[t * d + f]);
            }
        }
    }
    // A short output buffer is an error, not an out-of-bounds write.
    let mut small = dev.zeros::<f32>(5, "small").unwrap();
    assert!(nn::vision_tokens(&dev, &eb, &cb, &pb, b, np, d, &mut small).is_err());
}

#[test]
fn f16_gemm_row_major_with_transposes() {
    use rateclust::device::cuda::RmGemm;
    let Some((_, dev)) = cuda_or_skip() else { return };
    let mut rng = Rng::new(4);
    let (m, n, k) = (33, 70, 48);
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let a = randn(&mut rng, m * k, 1.0);
        let b = randn(&mut rng, k * n, 1.0);
        // Stored shapes: A is m×k (k×m when transposed), B is k×n (n×k when transposed).
        let at = |i: usize, l: usize| if ta { a[l * m + i] } else { a[i * k + l] };
        let bt = |l: usize, j: usize| if tb { b[j * k + l] } else { b[l * n + j] };
        let h = |x: &[f32]| -> Vec<f16> { x.iter().map(|&v| f16::from_f32(v)).collect() };
        let (ab, bb) = (dev.upload(&h(&a), "A").unwrap(), dev.upload(&h(&b), "B").unwrap());
        let c = dev.zeros::<f32>(m * n, "C").unwrap();
        let g = RmGemm {
            ta,
            tb,
            m,
            n,
            k,
            alpha: 1.0,
            a: (ab.ptr(), if ta { m } else { k }, 0),
            b: (bb.ptr(), if tb { k } else { n }, 0),
            beta: 0.0,
            c: (c.ptr(), n, 0),
            batch: 1,
        };
        dev.gemm_f16_rm(&g, false).unwrap();
        let want: Vec<f64> = (0..m * n)
            .map(|idx| {
                let (i, j) = (idx / n, idx % n);
                (0..k).map(|l| f16::from_f32(at(i, l)).to_f64() * f16::from_f32(bt(l, j)).to_f64()).sum()
            })
            .collect();
        let e = max_rel(&dev.download(&c, "C").unwrap(), &want);
        assert!(e < 1e-3, "ta={ta} tb={tb}: {e:.1e}");
    }
}
