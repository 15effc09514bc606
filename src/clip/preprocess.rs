//! CLIP image preprocessing, identical to transformers' PIL-backed `CLIPImageProcessor`
//! (`CLIPImageProcessorPil` in transformers ≥ 5): resize the shortest edge with Pillow bicubic
//! (antialiased, bit-exact: [`crate::image_io::resize`]), center crop, rescale by 1/255, normalise with mean/std.
//!
//! Mirrors transformers `image_transforms.get_resize_output_image_size(default_to_square=False)` (the
//! long edge is `int(size * long / short)`, truncated), `center_crop` (offsets `(H − crop) // 2`, zero
//! padding when the image is smaller than the crop), `rescale` (`u8 as f64 * scale`, stored as `f32`) and
//! `normalize` (`(x − mean) / std` in `f32`).
//!
//! Note: transformers ≥ 5 also has a torchvision-backed `CLIPImageProcessor` whose antialiased
//! resize differs from Pillow's by a few levels; the Pillow one is the reference CLIP was trained with.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::image_io::resize::{resize_bicubic_window_with, ResizeScratch};
use crate::image_io::RgbImage8;
use crate::invalid_arg;

/// OpenAI CLIP's normalisation constants (transformers `OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`), written
/// as transformers writes them; they round to the same `f32` as numpy's `float32` conversion.
#[allow(clippy::excessive_precision)]
pub const OPENAI_CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const OPENAI_CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Preprocessing parameters. `Default` = OpenAI CLIP at 224 px.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessConfig {
    /// Target length of the shortest edge after resizing (`size.shortest_edge`).
    pub size: usize,
    /// Side of the square center crop (`crop_size`); the output is `3 × crop × crop`.
    pub crop: usize,
    /// Per-channel mean subtracted after rescaling (`image_mean`).
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by (`image_std`).
    pub std: [f32; 3],
    /// Multiplier from 0..=255 to 0..=1 (`rescale_factor`); `f64` as transformers computes it.
    pub rescale: f64,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self { size: 224, crop: 224, mean: OPENAI_CLIP_MEAN, std: OPENAI_CLIP_STD, rescale: 1.0 / 255.0 }
    }
}

impl PreprocessConfig {
    /// OpenAI CLIP settings for a model of input resolution `side` (224, or 336 for ViT-L/14-336).
    pub fn for_image_size(side: usize) -> Self {
        Self { size: side, crop: side, ..Self::default() }
    }

    /// Reads a Hugging Face `preprocessor_config.json`. Missing fields keep the OpenAI CLIP defaults;
    /// settings this engine does not implement (square resize, no crop, another resampling filter)
    /// are errors rather than silently different results.
    pub fn from_preprocessor_config_json(text: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::Format(format!("preprocessor_config.json is not valid JSON: {e}")))?;
        let mut cfg = Self::default();
        let field_err = |name: &str, what: &str| Error::Format(format!("preprocessor_config.json: `{name}` {what}"));
        let as_size = |name: &str, x: &Value| -> Result<usize> {
            x.as_u64().filter(|&n| n > 0).map(|n| n as usize).ok_or_else(|| field_err(name, "must be a positive integer"))
        };
        for flag in ["do_resize", "do_center_crop", "do_normalize", "do_rescale"] {
            if let Some(b) = v.get(flag) {
                if b.as_bool() != Some(true) {
                    return Err(field_err(flag, "must be true (CLIP preprocessing always does this step)"));
                }
            }
        }
        if let Some(r) = v.get("resample") {
            // PILImageResampling.BICUBIC == 3.
            if r.as_u64() != Some(3) {
                return Err(field_err("resample", "must be 3 (bicubic); other filters are not implemented"));
            }
        }
        match v.get("size") {
            None => {}
            Some(Value::Number(_)) => cfg.size = as_size("size", &v["size"])?,
            Some(Value::Object(m)) => match m.get("shortest_edge") {
                Some(x) if m.len() == 1 => cfg.size = as_size("size.shortest_edge", x)?,
                _ => return Err(field_err("size", "must be {\"shortest_edge\": N} (other resize modes are not implemented)")),
            },
            Some(_) => return Err(field_err("size", "must be an integer or {\"shortest_edge\": N}")),
        }
        match v.get("crop_size") {
            None => {}
            Some(Value::Number(_)) => cfg.crop = as_size("crop_size", &v["crop_size"])?,
            Some(Value::Object(m)) => {
                let h = as_size("crop_size.height", m.get("height").unwrap_or(&Value::Null))?;
                let w = as_size("crop_size.width", m.get("width").unwrap_or(&Value::Null))?;
                if h != w {
                    return Err(field_err("crop_size", "must be square"));
                }
                cfg.crop = h;
            }
            Some(_) => return Err(field_err("crop_size", "must be an integer or {\"height\": N, \"width\": N}")),
        }
        let triple = |name: &str| -> Result<Option<[f32; 3]>> {
            match v.get(name) {
                None => Ok(None),
                Some(Value::Array(a)) if a.len() == 3 => {
                    let mut out = [0f32; 3];
                    for (o, x) in out.iter_mut().zip(a) {
                        *o = x.as_f64().ok_or_else(|| field_err(name, "must hold 3 numbers"))? as f32;
                    }
                    Ok(Some(out))
                }
                Some(_) => Err(field_err(name, "must be a list of 3 numbers")),
            }
        };
        if let Some(m) = triple("image_mean")? {
            cfg.mean = m;
        }
        if let Some(s) = triple("image_std")? {
            cfg.std = s;
        }
        if let Some(r) = v.get("rescale_factor") {
            cfg.rescale = r.as_f64().filter(|x| x.is_finite() && *x > 0.0).ok_or_else(|| field_err("rescale_factor", "must be a positive number"))?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the parameters (positive sizes, finite mean, positive finite std).
    pub fn validate(&self) -> Result<()> {
        if self.size == 0 || self.crop == 0 {
            return Err(invalid_arg!("preprocess size {} / crop {} must be positive", self.size, self.crop));
        }
        if self.mean.iter().any(|m| !m.is_finite()) || self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(invalid_arg!("preprocess mean {:?} must be finite and std {:?} positive", self.mean, self.std));
        }
        if !(self.rescale.is_finite() && self.rescale > 0.0) {
            return Err(invalid_arg!("preprocess rescale {} must be positive", self.rescale));
        }
        // Pixel values the tower sees: (v · rescale − mean) / std for v in 0..=255. CLIP's are within ±3;
        // beyond ±1e4 the tower's sums overflow f32 (rescale_factor 1e300 gave all-NaN embeddings).
        for c in 0..3 {
            let extreme = [0.0, 255.0].map(|v| ((v * self.rescale - self.mean[c] as f64) / self.std[c] as f64).abs());
            if extreme.iter().any(|x| !(*x <= 1e4)) {
                return Err(invalid_arg!(
                    "preprocess maps pixel values of channel {c} to up to {:e} (rescale {}, mean {}, std {}); the tower needs values within ±1e4",
                    extreme[0].max(extreme[1]),
                    self.rescale,
                    self.mean[c],
                    self.std[c]
                ));
            }
        }
        Ok(())
    }

    /// Number of floats one preprocessed image occupies (`3 × crop × crop`).
    pub fn output_len(&self) -> usize {
        3 * self.crop * self.crop
    }

    /// `lut[c][v]`: the normalised value of byte `v` in channel `c`, computed exactly as transformers
    /// does (`f32(v as f64 * rescale)`, then `(x − mean) / std` in `f32`).
    fn lut(&self) -> [[f32; 256]; 3] {
        let mut lut = [[0f32; 256]; 3];
        for (c, l) in lut.iter_mut().enumerate() {
            for (v, o) in l.iter_mut().enumerate() {
                let x = (v as f64 * self.rescale) as f32;
                *o = (x - self.mean[c]) / self.std[c];
            }
        }
        lut
    }
}

/// Resized size `(width, height)` for a `w × h` image: transformers'
/// `get_resize_output_image_size(size, default_to_square=False)`.
pub fn resize_output_size(w: usize, h: usize, size: usize) -> (usize, usize) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    // Python: int(size * long / short) — true division in f64, then truncation.
    let new_long = ((size * long) as f64 / short as f64) as usize;
    if w <= h {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// Preprocesses one image into a new `3 × crop × crop` CHW `f32` vector.
pub fn preprocess(img: &RgbImage8, cfg: &PreprocessConfig) -> Result<Vec<f32>> {
    let mut out = vec![0f32; cfg.output_len()];
    preprocess_into(img, cfg, &mut out)?;
    Ok(out)
}

/// Preprocesses one image into `out` (`3 × crop × crop` floats, CHW) — for filling one slot of a batch.
pub fn preprocess_into(img: &RgbImage8, cfg: &PreprocessConfig, out: &mut [f32]) -> Result<()> {
    preprocess_into_with(img, cfg, out, &mut ResizeScratch::default())
}

/// [`preprocess_into`] with the resize's buffers and taps in `scratch`: images of a size `scratch` saw last
/// time are preprocessed without allocating.
pub fn preprocess_into_with(img: &RgbImage8, cfg: &PreprocessConfig, out: &mut [f32], scratch: &mut ResizeScratch) -> Result<()> {
    cfg.validate()?;
    if out.len() != cfg.output_len() {
        return Err(invalid_arg!("preprocess output has {} floats, 3×{c}×{c} = {} needed", out.len(), cfg.output_len(), c = cfg.crop));
    }
    if img.width == 0 || img.height == 0 || img.data.len() != img.width * img.height * 3 {
        return Err(invalid_arg!("image {}×{} with {} bytes is not a valid RGB8 image", img.width, img.height, img.data.len()));
    }
    // Both edges are ≥ size > 0; only the crop window is ever computed, so very elongated images are cheap.
    let (rw, rh) = resize_output_size(img.width, img.height, cfg.size);
    let crop = cfg.crop as i64;
    // transformers center_crop: top = (H − crop) // 2 (floor), zero padding outside the image.
    let top = (rh as i64 - crop).div_euclid(2);
    let left = (rw as i64 - crop).div_euclid(2);
    // The part of the crop window that lies inside the resized image.
    let (y0, y1) = (top.max(0), (top + crop).min(rh as i64));
    let (x0, x1) = (left.max(0), (left + crop).min(rw as i64));
    let (win_w, win_h) = ((x1 - x0) as usize, (y1 - y0) as usize);
    let win = resize_bicubic_window_with(img, rw, rh, x0 as usize, y0 as usize, win_w, win_h, scratch)?;
    let lut = cfg.lut();
    let plane = cfg.crop * cfg.crop;
    // Padding is zero-valued bytes, normalised like any other pixel (transformers pads before rescaling).
    for c in 0..3 {
        out[c * plane..(c + 1) * plane].fill(lut[c][0]);
    }
    let (oy, ox) = ((y0 - top) as usize, (x0 - left) as usize);
    for wy in 0..win_h {
        let src = &win[wy * win_w * 3..(wy + 1) * win_w * 3];
        let row = (oy + wy) * cfg.crop + ox;
        for (wx, px) in src.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + row + wx] = lut[c][px[c] as usize];
            }
        }
    }
    Ok(())
}
