//! Bicubic resize of 8-bit RGB images, bit-exact with Pillow's `Image.resize(size, BICUBIC)`
//! (the call `CLIPImageProcessor` makes, with `reducing_gap=None`).
//!
//! Mirrors Pillow `src/libImaging/Resample.c`: a separable convolution whose filter support grows with
//! the downscale factor (so downscaling is antialiased), coefficients computed in `f64`, normalised to
//! sum 1, converted to 22-bit fixed point (`PRECISION_BITS = 32 − 8 − 2`) with round-half-away-from-zero,
//! accumulated in `i32` starting from ½ and clipped to 0..=255 after each pass. Horizontal pass first,
//! restricted to the source rows the vertical pass reads; a pass whose size does not change is skipped.
//! Every floating-point expression below keeps Pillow's operation order so the coefficients match.
//!
//! Each output pixel depends only on its own coefficients, so computing a sub-window of the output
//! (the center crop) gives exactly the pixels the full resize would; [`resize_bicubic_window`] uses
//! that to skip the cropped-away part.

use rayon::prelude::*;

use super::RgbImage8;
use crate::error::Result;
use crate::invalid_arg;

const PRECISION_BITS: u32 = 32 - 8 - 2;
const BICUBIC_SUPPORT: f64 = 2.0;

/// Pillow's `bicubic_filter` (Keys cubic, a = −0.5).
#[inline]
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Fixed-point filter taps for output positions `first..first + start.len()` of one axis: output position
/// `first + i` reads `len[i]` source samples starting at `start[i]`, weighted by `taps[i * ksize ..][.. len[i]]`.
#[derive(Default)]
struct Taps {
    /// (in_size, out_size, first, count) the taps were computed for; `None` before the first computation.
    key: Option<(usize, usize, usize, usize)>,
    ksize: usize,
    start: Vec<usize>,
    len: Vec<usize>,
    taps: Vec<i32>,
    /// Unnormalised weights of one position (scratch).
    k: Vec<f64>,
}

impl Taps {
    /// The taps for `(in_size, out_size, first, count)`, recomputed only when they differ from the last ones
    /// (the vectors are reused, so a repeated size costs nothing).
    fn for_positions(&mut self, in_size: usize, out_size: usize, first: usize, count: usize) -> &Taps {
        let key = (in_size, out_size, first, count);
        if self.key != Some(key) {
            self.key = None;
            precompute(self, in_size, out_size, first, count);
            self.key = Some(key);
        }
        self
    }
}

/// Mirrors Pillow `precompute_coeffs` + `normalize_coeffs_8bpc` for the box `[0, in_size)`, for the
/// output positions `first..first + count` only (taps of one position do not depend on the others).
fn precompute(t: &mut Taps, in_size: usize, out_size: usize, first: usize, count: usize) {
    // Pillow passes the box edges as `float`; `in1 - in0` is exact for any realistic size.
    let scale = (in_size as f32 - 0.0f32) as f64 / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = BICUBIC_SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    t.ksize = ksize;
    t.start.clear();
    t.len.clear();
    t.taps.clear();
    t.taps.resize(count * ksize, 0);
    t.k.clear();
    t.k.resize(ksize, 0.0);
    let k = &mut t.k;
    for xx in first..first + count {
        let center = 0.0 + (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // `(int)` in C truncates toward zero, as `as i64` does.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
        let n = xmax.max(0) as usize;
        let mut ww = 0.0f64;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = bicubic(((x as i64 + xmin) as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        let row = &mut t.taps[(xx - first) * ksize..(xx - first + 1) * ksize];
        for x in 0..n {
            let v = if ww != 0.0 { k[x] / ww } else { k[x] };
            let f = v * (1u32 << PRECISION_BITS) as f64;
            row[x] = if v < 0.0 { (-0.5 + f) as i32 } else { (0.5 + f) as i32 };
        }
        t.start.push(xmin as usize);
        t.len.push(n);
    }
}

/// Buffers of [`resize_bicubic_window_with`], kept between calls so that resizing images of one size
/// again allocates nothing: the taps of both axes (recomputed only when the sizes change), the
/// horizontal pass's rows and the window.
#[derive(Default)]
pub struct ResizeScratch {
    h: Taps,
    v: Taps,
    mid: Vec<u8>,
    out: Vec<u8>,
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes `src` to `out_w × out_h` exactly as Pillow's bicubic `Image.resize` does.
pub fn resize_bicubic(src: &RgbImage8, out_w: usize, out_h: usize) -> Result<RgbImage8> {
    resize_bicubic_window(src, out_w, out_h, 0, 0, out_w, out_h)
}

/// The `win_w × win_h` window at (`x0`, `y0`) of the Pillow bicubic resize of `src` to `out_w × out_h`,
/// without computing the rest of the output. Pixels are identical to cropping the full resize.
pub fn resize_bicubic_window(
    src: &RgbImage8,
    out_w: usize,
    out_h: usize,
    x0: usize,
    y0: usize,
    win_w: usize,
    win_h: usize,
) -> Result<RgbImage8> {
    let mut scratch = ResizeScratch::default();
    let data = resize_bicubic_window_with(src, out_w, out_h, x0, y0, win_w, win_h, &mut scratch)?.to_vec();
    RgbImage8::new(win_w, win_h, data)
}

/// [`resize_bicubic_window`] into `scratch`: returns the window's interleaved RGB rows (`win_w × 3` bytes
/// each), which live in `scratch` until its next use.
#[allow(clippy::too_many_arguments)]
pub fn resize_bicubic_window_with<'s>(
    src: &RgbImage8,
    out_w: usize,
    out_h: usize,
    x0: usize,
    y0: usize,
    win_w: usize,
    win_h: usize,
    scratch: &'s mut ResizeScratch,
) -> Result<&'s [u8]> {
    if out_w == 0 || out_h == 0 || win_w == 0 || win_h == 0 {
        return Err(invalid_arg!("resize to {out_w}×{out_h} (window {win_w}×{win_h}): sizes must be positive"));
    }
    if x0 + win_w > out_w || y0 + win_h > out_h {
        return Err(invalid_arg!(
            "resize window {win_w}×{win_h} at ({x0}, {y0}) exceeds the output {out_w}×{out_h}"
        ));
    }
    if src.data.len() != src.width * src.height * 3 || src.width == 0 || src.height == 0 {
        return Err(invalid_arg!("source image {}×{} has {} bytes", src.width, src.height, src.data.len()));
    }
    let (in_w, in_h) = (src.width, src.height);
    let need_h = out_w != in_w;
    let need_v = out_h != in_h;
    let ResizeScratch { h: h_taps, v: v_taps, mid, out } = scratch;

    // Vertical taps for the window's rows; the horizontal pass only produces the rows they read.
    let vt = if need_v { Some(v_taps.for_positions(in_h, out_h, y0, win_h)) } else { None };
    let (row_first, row_last) = match vt {
        Some(t) => (t.start[0], t.start[win_h - 1] + t.len[win_h - 1]),
        None => (y0, y0 + win_h),
    };

    // Horizontal pass → `mid` (win_w wide, rows row_first..row_last of the source).
    let mid_rows = row_last - row_first;
    mid.clear();
    if need_h {
        let ht = h_taps.for_positions(in_w, out_w, x0, win_w);
        mid.resize(mid_rows * win_w * 3, 0);
        mid.par_chunks_mut(win_w * 3).enumerate().for_each(|(r, out_row)| {
            let src_row = &src.data[(row_first + r) * in_w * 3..(row_first + r + 1) * in_w * 3];
            for (i, px) in out_row.chunks_exact_mut(3).enumerate() {
                let k = &ht.taps[i * ht.ksize..i * ht.ksize + ht.len[i]];
                let s = &src_row[ht.start[i] * 3..];
                let half = 1i32 << (PRECISION_BITS - 1);
                let (mut a0, mut a1, mut a2) = (half, half, half);
                for (j, &w) in k.iter().enumerate() {
                    a0 += s[j * 3] as i32 * w;
                    a1 += s[j * 3 + 1] as i32 * w;
                    a2 += s[j * 3 + 2] as i32 * w;
                }
                px[0] = clip8(a0);
                px[1] = clip8(a1);
                px[2] = clip8(a2);
            }
        });
    } else {
        // No horizontal pass: the window's columns straight from the source rows.
        for y in row_first..row_last {
            mid.extend_from_slice(&src.data[(y * in_w + x0) * 3..(y * in_w + x0 + win_w) * 3]);
        }
    }

    // Vertical pass over `mid`.
    match vt {
        None => Ok(&mid[..]),
        Some(vt) => {
            let stride = win_w * 3;
            out.clear();
            out.resize(win_h * stride, 0);
            let mid = &mid[..];
            out.par_chunks_mut(stride).enumerate().for_each(|(r, out_row)| {
                let k = &vt.taps[r * vt.ksize..r * vt.ksize + vt.len[r]];
                let base = vt.start[r] - row_first;
                // Integer sums, so going through the row in blocks gives the same bytes as one pass.
                const BLOCK: usize = 96;
                let mut acc = [0i32; BLOCK];
                for (b, out_block) in out_row.chunks_mut(BLOCK).enumerate() {
                    let acc = &mut acc[..out_block.len()];
                    acc.fill(1i32 << (PRECISION_BITS - 1));
                    for (j, &w) in k.iter().enumerate() {
                        let s = &mid[(base + j) * stride + b * BLOCK..][..acc.len()];
                        for (a, &v) in acc.iter_mut().zip(s) {
                            *a += v as i32 * w;
                        }
                    }
                    for (o, &a) in out_block.iter_mut().zip(acc.iter()) {
                        *o = clip8(a);
                    }
                }
            });
            Ok(&out[..])
        }
    }
}
