//! A loaded CLIP checkpoint: transformers `CLIPModel` (both towers), or one tower alone
//! (`CLIPVisionModel[WithProjection]`, `CLIPTextModel[WithProjection]`).

use super::config::ClipConfig;
use super::cuda::CudaClip;
use super::preprocess::{preprocess_into_with, PreprocessConfig};
use super::tokenizer::Tokenizer;
use super::encoder::load_linear;
use super::layers::{Linear, Precision};
use crate::linalg::rows::l2_normalize_rows;
use super::text::{TextScratch, TextTower};
use super::vision::{VisionScratch, VisionTower};
use super::weights::TensorFile;
use crate::device::cuda::Gpu;
use crate::device::{Device, DeviceKind};
use std::sync::Arc;
use crate::error::{Error, Result};
use crate::image_io::resize::ResizeScratch;
use crate::image_io::RgbImage8;
use crate::invalid_arg;
use crate::linalg::qgemm::QuantizedRows;
use crate::linalg::{gemm, Trans};
use crate::progress::{self, NoProgress, Progress};
use rayon::prelude::*;
use std::ops::Range;
use std::path::Path;
use crate::scratch::ScratchPool;

/// Fewest items a pass gets when passes are split across threads (keeps its GEMMs from getting thin).
const MIN_ITEMS_PER_PASS: usize = 4;

/// Items per forward pass when `n` items are embedded at most `batch_size` at a time (the last pass may
/// have fewer). With enough items, passes are made small enough that every thread gets about two: they
/// then run concurrently ([`run_chunks_into`]), each with single-threaded GEMMs (no synchronisation
/// between threads inside a pass — measured faster under load than one pass with threaded GEMMs — and
/// work stealing absorbs uneven progress); with few items one pass uses all threads inside each GEMM
/// instead.
fn pass_size(n: usize, batch_size: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    batch_size.max(1).min(n.div_ceil(2 * threads).max(MIN_ITEMS_PER_PASS))
}

/// Runs `f` on the passes of `size` items that `0..n` splits into (consecutive ranges), each with its
/// rows of `out` (`dim` values a row). Passes run concurrently in waves of one per thread; `progress`
/// hears about every finished wave (`done` = items so far) and may cancel between waves. Allocates
/// nothing itself.
fn run_chunks_into(
    n: usize,
    size: usize,
    progress: &mut dyn Progress,
    stage: &str,
    out: &mut [f32],
    dim: usize,
    f: impl Fn(Range<usize>, &mut [f32]) -> Result<()> + Sync,
) -> Result<()> {
    let size = size.max(1);
    let wave = rayon::current_num_threads().max(1);
    progress::report(progress, stage, 0, n as u64)?;
    for start in (0..n).step_by(wave * size) {
        let end = (start + wave * size).min(n);
        let rows = &mut out[start * dim..end * dim];
        if end - start > size {
            rows.par_chunks_mut((size * dim).max(1)).enumerate().try_for_each(|(k, o)| {
                let s = start + k * size;
                f(s..(s + size).min(end), o)
            })?;
        } else {
            f(start..end, rows)?;
        }
        progress::report(progress, stage, end as u64, n as u64)?;
    }
    Ok(())
}

/// What an image source's `load(i, buffer)` gives [`ClipModel::embed_image_source`].
pub enum LoadedImage<'a> {
    /// An image the caller holds.
    Borrowed(&'a RgbImage8),
    /// A new image (e.g. decoded from a file); dropped once preprocessed.
    Owned(RgbImage8),
    /// The image was written into the buffer `load` was given (reused from call to call, so a raw frame
    /// converted there costs no allocation once the buffer has grown to the frame size).
    InBuffer,
}

/// Per-thread buffers of the preprocessing step: the RGB buffer `load` may convert a frame into, and the
/// resize's buffers and taps.
struct PreScratch {
    rgb: RgbImage8,
    resize: ResizeScratch,
}

impl Default for PreScratch {
    fn default() -> Self {
        PreScratch { rgb: RgbImage8 { width: 0, height: 0, data: Vec::new() }, resize: ResizeScratch::default() }
    }
}

/// Every buffer of one CPU forward pass over a batch of images: preprocessed pixels, the preprocessing
/// buffers of each thread, and the vision tower's workspace. [`ClipModel`] keeps these in a pool: a pass
/// takes one (or makes one) and puts it back when done, so steady-state calls with the same batch and
/// image sizes allocate nothing, and concurrent calls each get their own.
#[derive(Default)]
struct ImageScratch {
    pixels: Vec<f32>,
    pre: Vec<PreScratch>,
    vision: VisionScratch,
    /// The projection's quantized input, were it int8 (the projections stay f32 today: nothing is held).
    quant: QuantizedRows,
}

impl crate::scratch::Workspace for ImageScratch {
    /// Bytes the buffers hold (the resize buffers and frame copies aside: a few per thread).
    fn bytes(&self) -> usize {
        4 * self.pixels.capacity() + self.pre.iter().map(|p| p.rgb.data.capacity()).sum::<usize>() + self.vision.bytes() + self.quant.bytes()
    }
}

/// Every buffer of one CPU forward pass over a batch of token sequences (see [`ImageScratch`]).
#[derive(Default)]
struct TextPassScratch {
    text: TextScratch,
    quant: QuantizedRows,
}

impl crate::scratch::Workspace for TextPassScratch {
    fn bytes(&self) -> usize {
        self.text.bytes() + self.quant.bytes()
    }
}

/// Most bytes of workspaces a model keeps between calls: enough for steady-state media-pipeline batches
/// (ViT-B/32, 32 frames: about 90 MB), while the workspaces of large batches (ViT-L/14, 32 images: about
/// 370 MB each, one per concurrent pass) are freed after the call.
const MAX_POOLED_SCRATCH_BYTES: usize = 512 << 20;

/// Which towers [`ClipModel::load_towers`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Towers {
    /// Both that the checkpoint has (what the other loaders build).
    Both,
    /// The vision tower (and its projection) only: for embedding images.
    Images,
    /// The text tower (and its projection, and the tokenizer) only: for embedding texts.
    Texts,
}

/// How [`ClipModel::load_with`] loads a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Where the towers run (the rules of [`ClipModel::load_on`]).
    pub device: DeviceKind,
    /// Which towers are built.
    pub towers: Towers,
    /// How the encoder layers' linear layers store their weights and multiply. [`Precision::Int8`] runs on
    /// the CPU only: with `DeviceKind::Cuda` it is an `InvalidArgument` error, with `Auto` the CPU is used.
    pub precision: Precision,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { device: DeviceKind::Cpu, towers: Towers::Both, precision: Precision::F32 }
    }
}

/// What an embedding call returns, and in what batches it works.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbedOptions {
    /// L2-normalise each output row (what cosine similarity and the clustering want).
    pub normalize: bool,
    /// Return the pooled output before the projection (`pooler_output`: width = the tower's hidden size)
    /// instead of the projected embedding.
    pub pooled: bool,
    /// Items per forward pass (bounds memory; larger batches make bigger, faster matrix products).
    pub batch_size: usize,
    /// Largest image decoded or frame accepted, in pixels: a header claiming more is a format error raised
    /// before any pixel is allocated (a decoded image takes 3 bytes per pixel). Default
    /// [`MAX_IMAGE_PIXELS`](crate::image_io::MAX_IMAGE_PIXELS), Pillow's decompression-bomb limit.
    pub max_image_pixels: u64,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions { normalize: true, pooled: false, batch_size: 32, max_image_pixels: crate::image_io::MAX_IMAGE_PIXELS }
    }
}

pub struct ClipModel {
    pub config: ClipConfig,
    vision: Option<VisionTower>,
    text: Option<TextTower>,
    visual_projection: Option<Linear>,
    text_projection: Option<Linear>,
    logit_scale: Option<f32>,
    /// From `vocab.json` + `merges.txt` when the directory has them (needed for [`ClipModel::embed_texts`]).
    tokenizer: Option<Tokenizer>,
    /// From `preprocessor_config.json`, else OpenAI CLIP's settings at the model's image size.
    preprocess: Option<PreprocessConfig>,
    /// How the encoder layers' linear layers store their weights.
    precision: Precision,
    /// The towers' weights on a GPU when the model was loaded for CUDA: every embed call then runs there.
    cuda: Option<CudaClip>,
    /// Why `DeviceKind::Auto` stayed on the CPU, when it did (no GPU, or the upload failed).
    cpu_reason: Option<String>,
    /// Workspaces of CPU image passes, reused by later passes (see [`ImageScratch`]).
    scratch: ScratchPool<ImageScratch>,
    /// Workspaces of CPU text passes (see [`TextPassScratch`]).
    text_scratch: ScratchPool<TextPassScratch>,
}

impl ClipModel {
    /// Loads `dir/config.json` and `dir/model.safetensors` for the CPU.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_on(dir, DeviceKind::Cpu)
    }

    /// Loads for a device kind. `Cuda`: the towers' weights go to GPU 0 (f16 matrices) and every embed
    /// call runs there; no usable GPU or a failed upload is an `Error::Device`. `Auto`: CUDA when that
    /// works, else the CPU (the reason stays in [`ClipModel::device`]). `Cpu`: the CPU.
    pub fn load_on(dir: impl AsRef<Path>, kind: DeviceKind) -> Result<Self> {
        Self::load_towers(dir, kind, Towers::Both)
    }

    /// [`ClipModel::load_on`] with only the towers a caller will use: the other tower's weights are
    /// never read (embedding images with ViT-B/32 then holds 88 M parameters instead of 151 M).
    pub fn load_towers(dir: impl AsRef<Path>, kind: DeviceKind, towers: Towers) -> Result<Self> {
        Self::load_with(dir, &LoadOptions { device: kind, towers, precision: Precision::F32 })
    }

    /// Loads with every choice of [`LoadOptions`]: device, towers and precision.
    pub fn load_with(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        // Check the device first so that a missing GPU (or int8 asked for on one) gets its precise reason
        // before the (slow) weight loading.
        Self::check_precision(opts.precision, opts.device)?;
        let device = if opts.precision == Precision::Int8 { Device::Cpu } else { Device::open_default(opts.device)? };
        let mut model = Self::load_cpu(dir.as_ref(), opts.towers, opts.precision)?;
        model.place_on(device, opts.device)?;
        Ok(model)
    }

    /// Int8 layers have no f32 weights to upload: asking for CUDA with them is an error.
    fn check_precision(precision: Precision, kind: DeviceKind) -> Result<()> {
        if precision == Precision::Int8 && kind == DeviceKind::Cuda {
            return Err(invalid_arg!("int8 precision runs on the CPU only (use the CPU or auto device, or f32 on CUDA)"));
        }
        Ok(())
    }

    /// The precision the model was loaded in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Moves the towers to a device kind after loading (e.g. a model built with
    /// [`ClipModel::from_tensors`]): the same rules as [`ClipModel::load_on`]. `Cpu` drops GPU weights.
    pub fn use_device(&mut self, kind: DeviceKind) -> Result<()> {
        Self::check_precision(self.precision, kind)?;
        let device = if self.precision == Precision::Int8 { Device::Cpu } else { Device::open_default(kind)? };
        self.place_on(device, kind)
    }

    fn place_on(&mut self, device: Device, kind: DeviceKind) -> Result<()> {
        self.cuda = None;
        self.cpu_reason = None;
        match device {
            Device::Cuda(dev) => match self.upload_towers(dev) {
                Ok(c) => self.cuda = Some(c),
                Err(e) if kind == DeviceKind::Cuda => return Err(e),
                Err(e) => self.cpu_reason = Some(format!("uploading the CLIP weights to the GPU failed: {e}")),
            },
            Device::Cpu if kind == DeviceKind::Auto && self.precision == Precision::Int8 => {
                self.cpu_reason = Some("int8 precision runs on the CPU only".into())
            }
            Device::Cpu if kind == DeviceKind::Auto => self.cpu_reason = crate::device::cuda_unavailable_reason(),
            Device::Cpu => {}
        }
        Ok(())
    }

    /// The towers' weights on `gpu` (a GPU, or in tests the kernel emulator).
    pub(crate) fn upload_towers(&self, gpu: Arc<dyn Gpu + Send + Sync>) -> Result<CudaClip> {
        CudaClip::upload(gpu, self.vision.as_ref(), self.text.as_ref(), self.visual_projection.as_ref(), self.text_projection.as_ref())
    }

    /// Moves the towers onto `gpu` as [`ClipModel::use_device`] does for a GPU (tests: the kernel emulator).
    #[cfg(test)]
    pub(crate) fn use_gpu(&mut self, gpu: Arc<dyn Gpu + Send + Sync>) -> Result<()> {
        self.cuda = Some(self.upload_towers(gpu)?);
        Ok(())
    }

    /// Each sequence's pooling position, checked as the embed calls check it (tests of the CUDA towers).
    #[cfg(test)]
    pub(crate) fn pool_positions(&self, ids: &[&[u32]]) -> Result<Vec<usize>> {
        self.text.as_ref().ok_or_else(|| invalid_arg!("this model has no text tower"))?.pool_positions(ids)
    }

    /// Where the towers run, e.g. `cuda:0 NVIDIA H100 80GB HBM3 (sm_90)` or `cpu (why CUDA was not used)`.
    pub fn device(&self) -> String {
        match (&self.cuda, &self.cpu_reason) {
            (Some(c), _) => c.describe(),
            (None, Some(why)) => format!("cpu ({why})"),
            (None, None) => "cpu".into(),
        }
    }

    /// Whether embed calls run on a GPU.
    pub fn on_cuda(&self) -> bool {
        self.cuda.is_some()
    }

    /// Chooses how the CUDA towers compute attention (fused kernel or cuBLAS; default: by sequence
    /// length). An `InvalidArgument` error when the model is not on a GPU.
    pub fn set_cuda_attention(&mut self, attention: super::cuda::CudaAttention) -> Result<()> {
        let c = self.cuda.as_mut().ok_or_else(|| invalid_arg!("the model is not on a CUDA device"))?;
        c.set_attention(attention);
        Ok(())
    }

    fn load_cpu(dir: &Path, towers: Towers, precision: Precision) -> Result<Self> {
        let mut config = ClipConfig::from_file(dir.join("config.json"))?;
        let has = |present: bool, which: &str| {
            if present {
                Ok(())
            } else {
                Err(invalid_arg!("{}: the model has no {which} tower", dir.display()))
            }
        };
        match towers {
            Towers::Both => {}
            Towers::Images => {
                has(config.vision.is_some(), "vision")?;
                config.text = None;
            }
            Towers::Texts => {
                has(config.text.is_some(), "text")?;
                config.vision = None;
            }
        }
        let st_path = dir.join("model.safetensors");
        if !st_path.exists() {
            let hint = if dir.join("model.safetensors.index.json").exists() {
                " (sharded checkpoints are not supported: merge the shards into one model.safetensors)"
            } else if dir.join("pytorch_model.bin").exists() {
                " (only safetensors is read: convert pytorch_model.bin with safetensors.torch.save_file)"
            } else {
                ""
            };
            return Err(Error::Format(format!("{} not found{hint}", st_path.display())));
        }
        let file = TensorFile::read(&st_path)?;
        let mut model = Self::from_tensors_with(config, &file, precision)?;
        drop(file);
        if let Some(t) = &model.text {
            if dir.join("vocab.json").exists() || dir.join("merges.txt").exists() {
                let mut tok = Tokenizer::from_dir(dir)?;
                if tok.vocab_size() > t.cfg.vocab_size {
                    return Err(Error::Format(format!(
                        "{}: the tokenizer has {} tokens but the text model only {} (text_config.vocab_size)",
                        dir.display(),
                        tok.vocab_size(),
                        t.cfg.vocab_size
                    )));
                }
                tok.set_context_length(t.cfg.max_position_embeddings)?;
                model.tokenizer = Some(tok);
            }
        }
        if let Some(v) = &model.vision {
            let pp = dir.join("preprocessor_config.json");
            let cfg = if pp.exists() {
                let text = std::fs::read_to_string(&pp).map_err(|e| Error::io(&pp, e))?;
                PreprocessConfig::from_preprocessor_config_json(&text).map_err(|e| match e {
                    Error::Format(m) => Error::Format(format!("{}: {m}", pp.display())),
                    other => other,
                })?
            } else {
                PreprocessConfig::for_image_size(v.cfg.image_size)
            };
            if cfg.crop != v.cfg.image_size {
                return Err(Error::Format(format!(
                    "{}: crop_size {} differs from the vision model's image_size {}",
                    pp.display(),
                    cfg.crop,
                    v.cfg.image_size
                )));
            }
            model.preprocess = Some(cfg);
        }
        Ok(model)
    }

    /// Builds the model from a parsed config and a safetensors file (HF tensor names).
    pub fn from_tensors(config: ClipConfig, file: &TensorFile) -> Result<Self> {
        Self::from_tensors_with(config, file, Precision::F32)
    }

    /// [`ClipModel::from_tensors`] with the linear layers in `precision`.
    pub fn from_tensors_with(config: ClipConfig, file: &TensorFile, precision: Precision) -> Result<Self> {
        let t = file.tensors()?;
        let proj = config.projection_dim;
        let both = config.vision.is_some() && config.text.is_some();
        let vision = config.vision.as_ref().map(|c| VisionTower::load(&t, "vision_model.", c, precision)).transpose()?;
        let text = config.text.as_ref().map(|c| TextTower::load(&t, "text_model.", c, precision)).transpose()?;
        // A CLIPModel needs both projections; a single tower may come without (CLIPVisionModel). They stay
        // f32 in every precision: they cost one row per item (under 0.01% of a tower's products), and
        // quantizing them took a third of int8's distance to f32 (ViT-B/32 images, min centred cosine
        // 0.9961 → 0.9942 over 48 noise images).
        let projection = |name: &str, width: usize| -> Result<Option<Linear>> {
            if both || t.contains(&format!("{name}.weight")) {
                load_linear(&t, &format!("{name}."), width, proj, false).map(Some)
            } else {
                Ok(None)
            }
        };
        let visual_projection = match &config.vision {
            Some(c) => projection("visual_projection", c.encoder.hidden_size)?,
            None => None,
        };
        let text_projection = match &config.text {
            Some(c) => projection("text_projection", c.encoder.hidden_size)?,
            None => None,
        };
        let logit_scale = if t.contains("logit_scale") { Some(t.get("logit_scale", &[])?[0]) } else { None };
        let preprocess = vision.as_ref().map(|v| PreprocessConfig::for_image_size(v.cfg.image_size));
        Ok(ClipModel {
            config,
            vision,
            text,
            visual_projection,
            text_projection,
            logit_scale,
            tokenizer: None,
            preprocess,
            precision,
            cuda: None,
            cpu_reason: None,
            scratch: ScratchPool::new(MAX_POOLED_SCRATCH_BYTES),
            text_scratch: ScratchPool::new(MAX_POOLED_SCRATCH_BYTES),
        })
    }

    pub fn has_vision(&self) -> bool {
        self.vision.is_some()
    }

    pub fn has_text(&self) -> bool {
        self.text.is_some()
    }

    /// Width of the projected embeddings (the shared space); for a tower without projection, its pooled width.
    pub fn embed_dim(&self) -> usize {
        if self.visual_projection.is_some() || self.text_projection.is_some() {
            self.config.projection_dim
        } else if let Some(v) = &self.vision {
            v.cfg.encoder.hidden_size
        } else {
            self.text.as_ref().map_or(0, |t| t.cfg.encoder.hidden_size)
        }
    }

    /// Width of what an embed call returns under `opts`.
    pub fn output_dim(&self, images: bool, opts: &EmbedOptions) -> usize {
        let (hidden, has_proj) = if images {
            (self.vision.as_ref().map_or(0, |v| v.cfg.encoder.hidden_size), self.visual_projection.is_some())
        } else {
            (self.text.as_ref().map_or(0, |t| t.cfg.encoder.hidden_size), self.text_projection.is_some())
        };
        if opts.pooled || !has_proj {
            hidden
        } else {
            self.config.projection_dim
        }
    }

    /// Side of the square input the vision tower takes (pixels), if it has one.
    pub fn image_size(&self) -> Option<usize> {
        self.vision.as_ref().map(|v| v.cfg.image_size)
    }

    pub fn vision_tower(&self) -> Option<&VisionTower> {
        self.vision.as_ref()
    }

    pub fn text_tower(&self) -> Option<&TextTower> {
        self.text.as_ref()
    }

    /// `logit_scale` as stored (transformers multiplies cosines by its exp), if the checkpoint has it.
    pub fn logit_scale(&self) -> Option<f32> {
        self.logit_scale
    }

    /// Embeddings of `n` preprocessed images, `pixels` = `[n, 3, S, S]` (S = image_size, CHW, normalised
    /// as `CLIPImageProcessor` does). Returns `[n, output_dim]` row-major.
    pub fn embed_pixels(&self, pixels: &[f32], n: usize, opts: &EmbedOptions) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; n.saturating_mul(self.output_dim(true, opts))];
        self.embed_pixels_into(pixels, n, opts, &mut out)?;
        Ok(out)
    }

    /// [`ClipModel::embed_pixels`] into `out` (`n × output_dim` values). On the CPU, a call with the same
    /// batch as an earlier one allocates nothing.
    pub fn embed_pixels_into(&self, pixels: &[f32], n: usize, opts: &EmbedOptions, out: &mut [f32]) -> Result<()> {
        let v = self.vision.as_ref().ok_or_else(|| invalid_arg!("this model has no vision tower"))?;
        let per = v.pixels_per_image();
        if pixels.len() != n.checked_mul(per).ok_or_else(|| invalid_arg!("image count {n} overflows"))? {
            return Err(invalid_arg!(
                "pixels: {} values for {n} images, expected {n} × 3 × {s} × {s} = {}",
                pixels.len(),
                n * per,
                s = v.cfg.image_size
            ));
        }
        let dim = self.output_dim(true, opts);
        Self::check_out(out, n, dim)?;
        crate::error::check_finite("pixels", pixels)?;
        if let Some(c) = &self.cuda {
            let rows = c.embed_pixels(pixels, n, opts.batch_size, opts.pooled)?;
            out.copy_from_slice(&Self::normalized(rows, n, opts)?);
            return Ok(());
        }
        run_chunks_into(n, pass_size(n, opts.batch_size), &mut NoProgress, "embed images", out, dim, |r, o| {
            self.scratch.with(|ws| {
                let pooled = v.forward_with(&pixels[r.start * per..r.end * per], r.len(), None, &mut ws.vision);
                self.finish_into(pooled, r.len(), self.visual_projection.as_ref(), opts, o, &mut ws.quant)
            })
        })
    }

    /// `out` must hold exactly `n` rows of `dim`.
    fn check_out(out: &[f32], n: usize, dim: usize) -> Result<()> {
        if Some(out.len()) != n.checked_mul(dim) {
            return Err(invalid_arg!("output has {} values, {n} rows × {dim} = {} expected", out.len(), n.saturating_mul(dim)));
        }
        Ok(())
    }

    /// Embeddings of token id sequences (each with its end-of-text token; no padding needed). Sequences are
    /// grouped by length internally; rows come back in input order. Returns `[n, output_dim]`.
    pub fn embed_token_ids(&self, ids: &[&[u32]], opts: &EmbedOptions) -> Result<Vec<f32>> {
        self.embed_token_ids_with(ids, opts, &mut NoProgress)
    }

    /// [`ClipModel::embed_token_ids`] with progress reports (stage "embed texts") and cancellation.
    pub fn embed_token_ids_with(&self, ids: &[&[u32]], opts: &EmbedOptions, progress: &mut dyn Progress) -> Result<Vec<f32>> {
        let t = self.text.as_ref().ok_or_else(|| invalid_arg!("this model has no text tower"))?;
        let pools = t.pool_positions(ids)?;
        if let Some(c) = &self.cuda {
            let total = ids.len() as u64;
            progress::report(progress, "embed texts", 0, total)?;
            let rows = c.embed_token_ids(ids, &pools, opts.batch_size, opts.pooled)?;
            progress::report(progress, "embed texts", total, total)?;
            return Self::normalized(rows, ids.len(), opts);
        }
        let dim = self.output_dim(false, opts);
        // Batch sequences of similar length together: each batch computes up to its own longest one.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| pools[i]);
        let mut sorted_rows = vec![0.0f32; ids.len() * dim];
        run_chunks_into(ids.len(), pass_size(ids.len(), opts.batch_size), progress, "embed texts", &mut sorted_rows, dim, |r, o| {
            let batch: Vec<&[u32]> = order[r.clone()].iter().map(|&i| ids[i]).collect();
            self.text_scratch.with(|ws| {
                let (pooled, _) = t.forward_with(&batch, None, &mut ws.text)?;
                self.finish_into(pooled, r.len(), self.text_projection.as_ref(), opts, o, &mut ws.quant)
            })
        })?;
        let mut out = vec![0.0f32; ids.len() * dim];
        for (r, &i) in order.iter().enumerate() {
            out[i * dim..][..dim].copy_from_slice(&sorted_rows[r * dim..][..dim]);
        }
        Ok(out)
    }

    /// The tokenizer loaded with the model (`vocab.json` + `merges.txt`), if any.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    /// Uses `tok` for [`ClipModel::embed_texts`] (e.g. one built from `bpe_simple_vocab_16e6.txt.gz`).
    pub fn set_tokenizer(&mut self, mut tok: Tokenizer) -> Result<()> {
        let t = self.text.as_ref().ok_or_else(|| invalid_arg!("this model has no text tower"))?;
        if tok.vocab_size() > t.cfg.vocab_size {
            return Err(invalid_arg!("the tokenizer has {} tokens but the text model only {}", tok.vocab_size(), t.cfg.vocab_size));
        }
        tok.set_context_length(t.cfg.max_position_embeddings)?;
        self.tokenizer = Some(tok);
        Ok(())
    }

    /// The image preprocessing this model applies (`preprocessor_config.json` or OpenAI CLIP's).
    pub fn preprocess_config(&self) -> Option<&PreprocessConfig> {
        self.preprocess.as_ref()
    }

    /// Embeddings of texts: CLIP BPE (truncated to the context length), then the text tower.
    pub fn embed_texts(&self, texts: &[&str], opts: &EmbedOptions, progress: &mut dyn Progress) -> Result<Vec<f32>> {
        let tok = self.tokenizer.as_ref().ok_or_else(|| {
            invalid_arg!("this model has no tokenizer: its directory needs vocab.json and merges.txt to embed texts")
        })?;
        let ids: Vec<Vec<u32>> = texts.par_iter().map(|t| tok.encode(t)).collect();
        let refs: Vec<&[u32]> = ids.iter().map(|v| v.as_slice()).collect();
        self.embed_token_ids_with(&refs, opts, progress)
    }

    /// Embeddings of decoded images (any size: resized and cropped like `CLIPImageProcessor`).
    pub fn embed_images(&self, images: &[RgbImage8], opts: &EmbedOptions, progress: &mut dyn Progress) -> Result<Vec<f32>> {
        self.embed_image_source(images.len(), |i, _| Ok(LoadedImage::Borrowed(&images[i])), opts, progress)
    }

    /// Embeddings of image files (JPEG, PNG, WebP), decoded a batch at a time so that memory stays bounded.
    pub fn embed_image_files(&self, paths: &[std::path::PathBuf], opts: &EmbedOptions, progress: &mut dyn Progress) -> Result<Vec<f32>> {
        self.embed_image_source(
            paths.len(),
            |i, _| crate::image_io::decode_file_within(&paths[i], opts.max_image_pixels).map(LoadedImage::Owned),
            opts,
            progress,
        )
    }

    /// Embeddings of `n` images produced on demand by `load(i, buffer)` (decode + preprocess run in
    /// parallel, one batch at a time). `load` returns the image, or writes it into `buffer` (a per-thread
    /// buffer kept between calls) and returns [`LoadedImage::InBuffer`].
    pub fn embed_image_source<'a>(
        &self,
        n: usize,
        load: impl Fn(usize, &mut RgbImage8) -> Result<LoadedImage<'a>> + Sync,
        opts: &EmbedOptions,
        progress: &mut dyn Progress,
    ) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; n.saturating_mul(self.output_dim(true, opts))];
        self.embed_image_source_into(n, load, opts, progress, &mut out)?;
        Ok(out)
    }

    /// [`ClipModel::embed_image_source`] into `out` (`n × output_dim` values). On the CPU, a call with the
    /// same batch as an earlier one (same count, same image sizes, images borrowed or written into the
    /// buffer) allocates nothing.
    pub fn embed_image_source_into<'a>(
        &self,
        n: usize,
        load: impl Fn(usize, &mut RgbImage8) -> Result<LoadedImage<'a>> + Sync,
        opts: &EmbedOptions,
        progress: &mut dyn Progress,
        out: &mut [f32],
    ) -> Result<()> {
        let v = self.vision.as_ref().ok_or_else(|| invalid_arg!("this model has no vision tower"))?;
        let pp = self.preprocess.as_ref().expect("a vision model has a preprocess config");
        let per = v.pixels_per_image();
        let dim = self.output_dim(true, opts);
        Self::check_out(out, n, dim)?;
        // Fills `ws.pixels` with the preprocessed images of `r`: the images are split into one run of
        // consecutive images per thread, each run preprocessed with its own buffers.
        let preprocess = |r: Range<usize>, ws: &mut ImageScratch| -> Result<()> {
            crate::scratch::grow(&mut ws.pixels, r.len() * per);
            let runs = rayon::current_num_threads().clamp(1, r.len().max(1));
            if ws.pre.len() < runs {
                ws.pre.resize_with(runs, PreScratch::default);
            }
            let per_run = r.len().div_ceil(runs).max(1);
            ws.pixels[..r.len() * per].par_chunks_mut(per_run * per).zip(ws.pre.par_iter_mut()).enumerate().try_for_each(
                |(k, (block, pre))| {
                    for (j, px) in block.chunks_mut(per).enumerate() {
                        let i = r.start + k * per_run + j;
                        match load(i, &mut pre.rgb)? {
                            LoadedImage::Borrowed(img) => preprocess_into_with(img, pp, px, &mut pre.resize)?,
                            LoadedImage::Owned(img) => preprocess_into_with(&img, pp, px, &mut pre.resize)?,
                            LoadedImage::InBuffer => preprocess_into_with(&pre.rgb, pp, px, &mut pre.resize)?,
                        }
                    }
                    Ok(())
                },
            )
        };
        if let Some(c) = &self.cuda {
            // One GPU pass per batch; decoding and preprocessing stay on the CPU threads.
            let bs = opts.batch_size.max(1);
            let mut rows = Vec::new();
            progress::report(progress, "embed images", 0, n as u64)?;
            for start in (0..n).step_by(bs) {
                let r = start..(start + bs).min(n);
                let pass = self.scratch.with(|ws| -> Result<Vec<f32>> {
                    preprocess(r.clone(), ws)?;
                    c.embed_pixels(&ws.pixels[..r.len() * per], r.len(), bs, opts.pooled)
                })?;
                rows.extend(pass);
                progress::report(progress, "embed images", r.end as u64, n as u64)?;
            }
            out.copy_from_slice(&Self::normalized(rows, n, opts)?);
            return Ok(());
        }
        run_chunks_into(n, pass_size(n, opts.batch_size), progress, "embed images", out, dim, |r, o| {
            self.scratch.with(|ws| {
                preprocess(r.clone(), ws)?;
                let pooled = v.forward_with(&ws.pixels[..r.len() * per], r.len(), None, &mut ws.vision);
                self.finish_into(pooled, r.len(), self.visual_projection.as_ref(), opts, o, &mut ws.quant)
            })
        })
    }

    /// L2-normalises each of the `n` rows if `opts.normalize` asks for it. Non-finite values are an error:
    /// extreme inputs or weights must not come back as embeddings with success.
    fn normalized(mut rows: Vec<f32>, n: usize, opts: &EmbedOptions) -> Result<Vec<f32>> {
        Self::normalize_in_place(&mut rows, n, opts)?;
        Ok(rows)
    }

    /// [`ClipModel::normalized`] in place.
    fn normalize_in_place(rows: &mut [f32], n: usize, opts: &EmbedOptions) -> Result<()> {
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            return Err(crate::Error::Numerical(format!(
                "embedding value {i} is {} (the input or the weights overflow the tower in f32)",
                rows[i]
            )));
        }
        if opts.normalize && n > 0 {
            let d = rows.len() / n;
            l2_normalize_rows(rows, d);
        }
        Ok(())
    }

    /// Projection (unless `opts.pooled`) and optional normalisation of `n` pooled rows into `out`.
    fn finish_into(&self, pooled: &[f32], n: usize, projection: Option<&Linear>, opts: &EmbedOptions, out: &mut [f32], q: &mut QuantizedRows) -> Result<()> {
        match projection {
            Some(p) if !opts.pooled => p.forward(pooled, out, q),
            _ => out.copy_from_slice(pooled),
        }
        Self::normalize_in_place(out, n, opts)
    }

    /// transformers `CLIPModel.forward`'s `logits_per_image` (`[n_images, n_texts]`): exp(logit_scale) ×
    /// cosine similarity, from projected embeddings (normalised here, whether or not they already are).
    pub fn logits_per_image(&self, image_embeds: &[f32], text_embeds: &[f32]) -> Result<Vec<f32>> {
        let scale = self.logit_scale.ok_or_else(|| invalid_arg!("this checkpoint has no logit_scale"))?;
        let d = self.config.projection_dim;
        if image_embeds.len() % d != 0 || text_embeds.len() % d != 0 {
            return Err(invalid_arg!("embeddings must have {d} columns"));
        }
        let (ni, nt) = (image_embeds.len() / d, text_embeds.len() / d);
        let mut a = image_embeds.to_vec();
        let mut b = text_embeds.to_vec();
        l2_normalize_rows(&mut a, d);
        l2_normalize_rows(&mut b, d);
        let mut out = vec![0.0f32; ni * nt];
        gemm(ni, nt, d, scale.exp(), &a, d, Trans::No, &b, d, Trans::Yes, 0.0, &mut out, nt);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{pass_size, run_chunks_into};
    use crate::progress::NoProgress;
    use std::sync::Mutex;

    #[test]
    fn passes_cover_every_item_once_in_order() {
        for n in [0, 1, 3, 4, 5, 8, 31, 32, 33, 100, 257] {
            for bs in [1, 2, 7, 32, 64] {
                let ranges = Mutex::new(Vec::new());
                let mut out = vec![-1.0f32; n];
                run_chunks_into(n, pass_size(n, bs), &mut NoProgress, "test", &mut out, 1, |r, o| {
                    o.iter_mut().zip(r.clone()).for_each(|(v, i)| *v = i as f32);
                    ranges.lock().unwrap().push(r);
                    Ok(())
                })
                .unwrap();
                assert_eq!(out, (0..n).map(|i| i as f32).collect::<Vec<_>>(), "n={n} bs={bs}");
                let ranges = ranges.into_inner().unwrap();
                assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), n, "n={n} bs={bs}: {ranges:?}");
                assert!(ranges.iter().all(|r| !r.is_empty() && r.len() <= bs), "n={n} bs={bs}: {ranges:?}");
            }
        }
    }
}
