//! The CLIP towers' CUDA path, each check written once and run twice: on the kernel emulator in CI (every
//! launch's arguments and grid, every f16 GEMM's operands and strides, the workspace sizes, the pass and
//! pooling bookkeeping), and on a GPU where there is one (the kernels themselves). The kernels are checked
//! against f64 restatements of the transformers modules they mirror, the towers against the CPU towers.
//! scripts/gpu_check.sh runs the `on_gpu` module.

use super::nn::{self, NnActivation};
use super::{CudaAttention, CudaClip};
use crate::clip::{ClipModel, EmbedOptions};
use crate::device::cuda::emu::Emu;
use crate::device::cuda::{Gpu, RmGemm};
use crate::rng::Rng;
use half::f16;
use std::sync::Arc;

/// The emulator's kernels: the CLIP files' (the GEMMs are the backend's own).
fn emulator() -> Arc<Emu> {
    Arc::new(Emu::new(&[super::emu::launch]))
}

fn randn(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

/// Largest |got − want| relative to the largest |want|.
fn max_rel(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |a, b| a.max(b.abs())).max(1e-12);
    got.iter().zip(want).map(|(&g, &w)| (g as f64 - w).abs() / scale).fold(0.0, f64::max)
}

fn f16s(x: &[f32]) -> Vec<f16> {
    x.iter().map(|&v| f16::from_f32(v)).collect()
}

/// The f16 buffer's values as f32.
fn download_f16(g: &dyn Gpu, buf: &crate::device::cuda::GpuBuf<f16>) -> Vec<f32> {
    g.download_f16(buf, "f16 output").unwrap().iter().map(|h| h.to_f32()).collect()
}

/// erf with |error| < 1.2e-7 (Numerical Recipes erfc Chebyshev fit, in f64), for the GELU reference.
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t * (-z * z - 1.26551223
        + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
        .exp();
    if x >= 0.0 { 1.0 - r } else { r - 1.0 }
}

fn softmax_f64(s: &[f64]) -> Vec<f64> {
    let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = s.iter().map(|v| (v - mx).exp()).sum();
    s.iter().map(|v| (v - mx).exp() / z).collect()
}

/// LayerNorm (f32 and f16 outputs), bias + activation to f16, bias + residual, and the f16 row softmax.
fn elementwise(g: &dyn Gpu, rows: usize, d: usize) {
    let mut rng = Rng::new(1);
    let x = randn(&mut rng, rows * d, 2.0);
    let gamma = randn(&mut rng, d, 1.0);
    let beta = randn(&mut rng, d, 1.0);
    let xb = g.upload_f32(&x, "x").unwrap();
    let (gb, bb) = (g.upload_f32(&gamma, "gamma").unwrap(), g.upload_f32(&beta, "beta").unwrap());
    let mut o32 = g.alloc_f32(rows * d, false, "ln32").unwrap();
    let mut o16 = g.alloc_f16(rows * d, "ln16").unwrap();
    nn::layer_norm(g, &xb, rows, d, &gb, &bb, 1e-5, Some(&mut o32), Some(&mut o16)).unwrap();
    let mut want = vec![0.0f64; rows * d];
    for r in 0..rows {
        let row = &x[r * d..][..d];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        for j in 0..d {
            want[r * d + j] = (row[j] as f64 - mean) / (var + 1e-5).sqrt() * gamma[j] as f64 + beta[j] as f64;
        }
    }
    let e32 = max_rel(&g.download_f32(&o32, "ln32").unwrap(), &want);
    let e16 = max_rel(&download_f16(g, &o16), &want);
    assert!(e32 < 1e-5 && e16 < 1e-2, "layer_norm: f32 {e32:.1e}, f16 {e16:.1e}");

    for act in [NnActivation::QuickGelu, NnActivation::Gelu] {
        let mut out = g.alloc_f16(rows * d, "act").unwrap();
        nn::bias_act_to_f16(g, &xb, Some(&bb), rows, d, Some(act), &mut out).unwrap();
        let want: Vec<f64> = (0..rows * d)
            .map(|i| {
                let v = x[i] as f64 + beta[i % d] as f64;
                match act {
                    NnActivation::QuickGelu => v / (1.0 + (-1.702 * v).exp()),
                    NnActivation::Gelu => 0.5 * v * (1.0 + erf(v / 2f64.sqrt())),
                }
            })
            .collect();
        let e = max_rel(&download_f16(g, &out), &want);
        assert!(e < 1e-2, "{act:?}: {e:.1e}");
    }

    let mut resid = g.upload_f32(&gamma.repeat(rows), "resid").unwrap();
    nn::bias_residual(g, &xb, Some(&bb), rows, d, &mut resid).unwrap();
    let want: Vec<f64> = (0..rows * d).map(|i| gamma[i % d] as f64 + x[i] as f64 + beta[i % d] as f64).collect();
    assert!(max_rel(&g.download_f32(&resid, "resid").unwrap(), &want) < 1e-6);

    for causal in [false, true] {
        let n = 37;
        let s = randn(&mut rng, 3 * n * n, 3.0);
        let sb = g.upload_f32(&s, "scores").unwrap();
        let mut pb = g.alloc_f16(s.len(), "probabilities").unwrap();
        nn::softmax_rows_to_f16(g, &sb, 3 * n, n, causal, &mut pb).unwrap();
        let mut want = vec![0.0f64; s.len()];
        for r in 0..3 * n {
            let lim = if causal { r % n + 1 } else { n };
            let p = softmax_f64(&s[r * n..][..lim].iter().map(|&v| v as f64).collect::<Vec<_>>());
            want[r * n..][..lim].copy_from_slice(&p);
        }
        let e = max_rel(&download_f16(g, &pb), &want);
        assert!(e < 1e-2, "softmax causal={causal}: {e:.1e}");
    }
}

/// The fused attention kernel against softmax(Q Kᵀ/√hd + mask) V in f64, for each (b, seq, heads, hd, causal).
fn fused_attention(g: &dyn Gpu, shapes: &[(usize, usize, usize, usize, bool)]) {
    let mut rng = Rng::new(2);
    for &(b, seq, heads, hd, causal) in shapes {
        let d = heads * hd;
        let qkv = f16s(&randn(&mut rng, b * seq * 3 * d, 1.0));
        let qb = g.upload_f16(&qkv, "qkv").unwrap();
        let mut ob = g.alloc_f16(b * seq * d, "attention out").unwrap();
        nn::attention(g, &qb, b, seq, heads, hd, causal, &mut ob).unwrap();
        let q = |n: usize, t: usize, c: usize| qkv[(n * seq + t) * 3 * d + c].to_f64();
        let mut want = vec![0.0f64; b * seq * d];
        let scale = 1.0 / (hd as f64).sqrt();
        for n in 0..b {
            for h in 0..heads {
                for t in 0..seq {
                    let lim = if causal { t + 1 } else { seq };
                    let s: Vec<f64> = (0..lim).map(|k| (0..hd).map(|c| q(n, t, h * hd + c) * q(n, k, d + h * hd + c)).sum::<f64>() * scale).collect();
                    let p = softmax_f64(&s);
                    for c in 0..hd {
                        want[(n * seq + t) * d + h * hd + c] = (0..lim).map(|k| p[k] * q(n, k, 2 * d + h * hd + c)).sum();
                    }
                }
            }
        }
        let e = max_rel(&download_f16(g, &ob), &want);
        assert!(e < 1e-2, "attention b={b} seq={seq} heads={heads} hd={hd} causal={causal}: {e:.1e}");
    }
}

/// im2col of the patch embedding and the vision token assembly, exactly; a short output is an error.
fn patches_and_tokens(g: &dyn Gpu) {
    let mut rng = Rng::new(3);
    let (b, h, w, p) = (2, 32, 16, 8);
    let px = randn(&mut rng, b * 3 * h * w, 1.0);
    let pb = g.upload_f32(&px, "pixels").unwrap();
    let (gh, gw) = (h / p, w / p);
    let np = gh * gw;
    let mut patches = g.alloc_f16(b * np * 3 * p * p, "patches").unwrap();
    nn::patches_im2col(g, &pb, b, h, w, p, &mut patches).unwrap();
    let got = download_f16(g, &patches);
    for (i, v) in got.iter().enumerate() {
        let (row, col) = (i / (3 * p * p), i % (3 * p * p));
        let (n, k) = (row / np, row % np);
        let (c, ky, kx) = (col / (p * p), (col / p) % p, col % p);
        let want = px[((n * 3 + c) * h + (k / gw) * p + ky) * w + (k % gw) * p + kx];
        assert_eq!(*v, f16::from_f32(want).to_f32(), "patch element {i}");
    }

    let d = 24;
    let emb = randn(&mut rng, b * np * d, 1.0);
    let cls = randn(&mut rng, d, 1.0);
    let pos = randn(&mut rng, (np + 1) * d, 1.0);
    let mut tok = g.alloc_f32(b * (np + 1) * d, false, "tokens").unwrap();
    let (eb, cb, posb) = (g.upload_f32(&emb, "emb").unwrap(), g.upload_f32(&cls, "cls").unwrap(), g.upload_f32(&pos, "pos").unwrap());
    nn::vision_tokens(g, &eb, &cb, &posb, b, np, d, &mut tok).unwrap();
    let got = g.download_f32(&tok, "tokens").unwrap();
    for n in 0..b {
        for t in 0..=np {
            for f in 0..d {
                let e = if t == 0 { cls[f] } else { emb[(n * np + t - 1) * d + f] };
                assert_eq!(got[(n * (np + 1) + t) * d + f], e + pos[t * d + f]);
            }
        }
    }
    let mut small = g.alloc_f32(5, false, "small").unwrap();
    assert!(nn::vision_tokens(g, &eb, &cb, &posb, b, np, d, &mut small).is_err());
}

/// The f16 product (f32 out) for every transpose combination against f64.
fn f16_gemm(g: &dyn Gpu) {
    let mut rng = Rng::new(4);
    let (m, n, k) = (33, 70, 48);
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let a = randn(&mut rng, m * k, 1.0);
        let b = randn(&mut rng, k * n, 1.0);
        // Stored shapes: A is m×k (k×m when transposed), B is k×n (n×k when transposed).
        let at = |i: usize, l: usize| if ta { a[l * m + i] } else { a[i * k + l] };
        let bt = |l: usize, j: usize| if tb { b[j * k + l] } else { b[l * n + j] };
        let (ab, bb) = (g.upload_f16(&f16s(&a), "A").unwrap(), g.upload_f16(&f16s(&b), "B").unwrap());
        let c = g.alloc_f32(m * n, true, "C").unwrap();
        let p = RmGemm { ta, tb, m, n, k, alpha: 1.0, a: (ab.ptr(), if ta { m } else { k }, 0), b: (bb.ptr(), if tb { k } else { n }, 0), beta: 0.0, c: (c.ptr(), n, 0), batch: 1 };
        g.gemm_f16(&p, false).unwrap();
        let want: Vec<f64> = (0..m * n)
            .map(|idx| {
                let (i, j) = (idx / n, idx % n);
                (0..k).map(|l| f16::from_f32(at(i, l)).to_f64() * f16::from_f32(bt(l, j)).to_f64()).sum()
            })
            .collect();
        let e = max_rel(&g.download_f32(&c, "C").unwrap(), &want);
        assert!(e < 1e-3, "ta={ta} tb={tb}: {e:.1e}");
    }
}

/// Both towers of the tiny checkpoint on `gpu` against the same model on the CPU: pooled and projected
/// rows, both attention paths, batches that split the inputs unevenly, texts of different lengths. `tol`:
/// largest error relative to the largest output (f16 GEMM inputs round to 2⁻¹¹ relative: the emulator's
/// exact sums land near 5e-4, a GPU's f32 accumulation somewhat above).
fn towers_match_cpu(gpu: Arc<dyn Gpu + Send + Sync>, tol: f64) {
    let dir = crate::testing::fixture("clip_model/tiny");
    let model = ClipModel::load(&dir).unwrap();
    let mut on_gpu: CudaClip = model.upload_towers(gpu).unwrap();
    let s = model.config.vision.as_ref().unwrap().image_size;
    let n = 5;
    let pixels = randn(&mut Rng::new(5), n * 3 * s * s, 1.0);
    let eos = 49407;
    let ids: Vec<Vec<u32>> = vec![vec![49406, 320, eos], vec![49406, 1929, 539, 320, 2368, eos], vec![49406, eos], vec![49406, 320, 1125, 539, 320, 1929, 269, eos, 0, 0]];
    let ids: Vec<&[u32]> = ids.iter().map(|v| v.as_slice()).collect();
    let pools = model.pool_positions(&ids).unwrap();
    for pooled in [true, false] {
        let opts = EmbedOptions { normalize: false, pooled, ..EmbedOptions::default() };
        let want_img = model.embed_pixels(&pixels, n, &opts).unwrap();
        let want_txt = model.embed_token_ids(&ids, &opts).unwrap();
        for attention in [CudaAttention::Fused, CudaAttention::Gemm] {
            on_gpu.set_attention(attention);
            let what = format!("pooled={pooled} {attention:?}");
            let got = on_gpu.embed_pixels(&pixels, n, 2, pooled).unwrap();
            let e = max_rel(&got, &want_img.iter().map(|&v| v as f64).collect::<Vec<_>>());
            println!("images, {what}: {e:.1e}");
            assert!(e < tol, "images, {what}: {e:.1e}");
            let got = on_gpu.embed_token_ids(&ids, &pools, 3, pooled).unwrap();
            let e = max_rel(&got, &want_txt.iter().map(|&v| v as f64).collect::<Vec<_>>());
            println!("texts, {what}: {e:.1e}");
            assert!(e < tol, "texts, {what}: {e:.1e}");
        }
    }
}

/// A whole `ClipModel` with its towers on `gpu` against the same model on the CPU, through the public
/// embed calls: preprocessed pixels, decoded images of several sizes (preprocessed a batch at a time on the
/// CPU threads, each batch one GPU pass), texts through the tokenizer; normalised rows, in input order.
fn model_matches_cpu(gpu: Arc<dyn Gpu + Send + Sync>, tol: f64) {
    use crate::image_io::RgbImage8;
    use crate::progress::NoProgress;
    let dir = crate::testing::fixture("clip_model/tiny");
    let cpu = ClipModel::load(&dir).unwrap();
    let mut dev = ClipModel::load(&dir).unwrap();
    dev.use_gpu(gpu).unwrap();
    assert!(dev.on_cuda());
    let opts = EmbedOptions { batch_size: 2, ..EmbedOptions::default() };
    let close = |what: &str, got: Vec<f32>, want: Vec<f32>| {
        let e = max_rel(&got, &want.iter().map(|&v| v as f64).collect::<Vec<_>>());
        println!("{what}: {e:.1e}");
        assert!(e < tol, "{what}: {e:.1e}");
    };
    let mut rng = Rng::new(6);
    let s = cpu.config.vision.as_ref().unwrap().image_size;
    let pixels = randn(&mut rng, 3 * 3 * s * s, 1.0);
    close("pixels", dev.embed_pixels(&pixels, 3, &opts).unwrap(), cpu.embed_pixels(&pixels, 3, &opts).unwrap());
    let images: Vec<RgbImage8> = [(40, 30), (17, 64), (32, 32)]
        .iter()
        .map(|&(width, height)| RgbImage8 { width, height, data: (0..width * height * 3).map(|_| rng.below(256) as u8).collect() })
        .collect();
    close("images", dev.embed_images(&images, &opts, &mut NoProgress).unwrap(), cpu.embed_images(&images, &opts, &mut NoProgress).unwrap());
    let texts = ["a photo of a cat", "a dog", "a diagram of a rate-reduction clustering pipeline", "x"];
    close("texts", dev.embed_texts(&texts, &opts, &mut NoProgress).unwrap(), cpu.embed_texts(&texts, &opts, &mut NoProgress).unwrap());
}

mod on_emulator {
    use super::*;

    #[test]
    fn elementwise() {
        super::elementwise(&*emulator(), 7, 96);
    }

    #[test]
    fn fused_attention() {
        // A causal and a full mask; a sequence longer than one 32-key tile; head dims below and above 32.
        super::fused_attention(&*emulator(), &[(2, 9, 3, 16, true), (1, 40, 2, 48, false)]);
    }

    #[test]
    fn patches_and_tokens() {
        super::patches_and_tokens(&*emulator());
    }

    #[test]
    fn f16_gemm() {
        super::f16_gemm(&*emulator());
    }

    #[test]
    fn towers_match_cpu() {
        let emu = emulator();
        super::towers_match_cpu(emu.clone(), 3e-3);
        emu.check_guards();
    }

    #[test]
    fn model_matches_cpu() {
        let emu = emulator();
        super::model_matches_cpu(emu.clone(), 3e-3);
        emu.check_guards();
    }
}

mod on_gpu {
    use crate::testing::cuda_or_skip;

    #[test]
    fn elementwise() {
        if let Some((_, dev)) = cuda_or_skip() {
            super::elementwise(&*dev, 37, 768);
        }
    }

    #[test]
    fn fused_attention() {
        if let Some((_, dev)) = cuda_or_skip() {
            super::fused_attention(&*dev, &[(3, 50, 12, 64, false), (2, 77, 8, 64, true), (1, 257, 4, 80, false), (2, 5, 2, 128, true)]);
        }
    }

    #[test]
    fn patches_and_tokens() {
        if let Some((_, dev)) = cuda_or_skip() {
            super::patches_and_tokens(&*dev);
        }
    }

    #[test]
    fn f16_gemm() {
        if let Some((_, dev)) = cuda_or_skip() {
            super::f16_gemm(&*dev);
        }
    }

    #[test]
    fn towers_match_cpu() {
        if let Some((_, dev)) = cuda_or_skip() {
            super::towers_match_cpu(dev, 2e-2);
        }
    }

    #[test]
    fn model_matches_cpu() {
        if let Some((_, dev)) = cuda_or_skip() {
            super::model_matches_cpu(dev, 2e-2);
        }
    }
}
