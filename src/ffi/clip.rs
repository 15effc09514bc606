//! C API for the clip stage: load a Hugging Face CLIP directory, embed images (files, encoded bytes, raw
//! frames, preprocessed pixels) and texts into caller-allocated float buffers.
#![allow(non_camel_case_types)] // C names

use super::mirror::{CEnum, CValue};
use rateclust_macros::CMirror;
use super::{free_handle, new_handle, arg_mut, arg_ref, arg_slice, arg_slice_mut, arg_str, checked_len, device_kind, guard, on_pool, rateclust_progress_fn, CBool, CProgress};
use crate::image_io::{decode_bytes_within, from_raw_into, PixelFormat, MAX_IMAGE_PIXELS};
use crate::clip::model::LoadedImage;
use crate::clip::{ClipModel, EmbedOptions, LoadOptions, Precision, Towers};
use crate::error::{Error, Result};
use super::enums::Status;
use crate::invalid_arg;
use std::ffi::{c_char, c_void};
use std::path::PathBuf;

/// A loaded CLIP model (opaque). Thread safety: immutable once loaded, so several threads may embed with one
/// model at once (on CUDA their forward passes take turns on the model's device workspace);
/// `rateclust_model_free` needs the handle to itself.
pub struct rateclust_model {
    inner: ClipModel,
}


/// Options of the embed calls. Get defaults from `rateclust_embed_default_params()`, then change fields.
#[repr(C)]
#[derive(Debug, Clone, Copy, CMirror)]
#[mirror(EmbedOptions)]
pub struct rateclust_embed_params {
    /// L2-normalise every output row (default true).
    pub normalize: CBool,
    /// Return the tower's pooled output before the projection (width = the tower's hidden size, see
    /// `rateclust_model_output_dim`) instead of the projected embedding (default false).
    pub pooled: CBool,
    /// Items per forward pass (default 32); bounds memory, larger is faster up to a point.
    pub batch_size: u32,
    /// Progress callback, may be NULL: called after each batch with `stage` naming the step ("embed
    /// images", "embed texts"; valid only during the call) and `done` of `total` items finished. Return 0
    /// to continue, non-zero to cancel (the call then fails with `RATECLUST_STATUS_CANCELLED`).
    #[mirror(c_only = "None")]
    pub progress: rateclust_progress_fn,
    /// Passed to `progress` unchanged.
    #[mirror(c_only = "std::ptr::null_mut()")]
    pub progress_user_data: *mut c_void,
    /// Largest image decoded or frame accepted, in pixels (default 178956970, Pillow's decompression-bomb
    /// limit; 0 also means the default). An encoded image whose header claims more fails with
    /// `RATECLUST_STATUS_FORMAT`, a larger frame with `RATECLUST_STATUS_INVALID_ARGUMENT`, before any pixel
    /// is allocated; a decoded image takes 3 bytes per pixel. Added in ABI version 2.
    pub max_image_pixels: u64,
}

/// A raw frame as media pipelines hand it over: `height` rows `stride_bytes` apart, pixels in `format`
/// (a `rateclust_pixel_format` value: RGB8, RGBA8, BGR8, BGRA8, GRAY8, RGBX8, BGRX8). The caller owns `data`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rateclust_frame {
    pub data: *const u8,
    pub width: u32,
    pub height: u32,
    pub stride_bytes: usize,
    pub format: u32,
}

/// Default embed options: normalised projected embeddings, batches of 32, no progress callback.
#[no_mangle]
pub extern "C" fn rateclust_embed_default_params() -> rateclust_embed_params {
    (&EmbedOptions::default()).into()
}

/// Loads a Hugging Face CLIP directory: `config.json` and `model.safetensors` (f32, f16 or bf16; a
/// `CLIPModel`, or one tower alone), plus `vocab.json` + `merges.txt` to embed texts and optionally
/// `preprocessor_config.json`. `device` (a `rateclust_device_kind` value): `RATECLUST_DEVICE_KIND_CUDA` puts
/// the towers on GPU 0 (f16 weights, f32 accumulation) and fails with `RATECLUST_STATUS_DEVICE` without a
/// usable GPU; `RATECLUST_DEVICE_KIND_AUTO` uses the GPU when it can and otherwise the CPU;
/// `RATECLUST_DEVICE_KIND_CPU` the CPU. On success `*out` receives a model the caller frees with `rateclust_model_free`.
#[no_mangle]
pub extern "C" fn rateclust_model_load(dir: *const c_char, device: u32, out: *mut *mut rateclust_model) -> Status {
    rateclust_model_load_precision(dir, device, Towers::Both.to_c(), Precision::F32.to_c(), out)
}

/// As `rateclust_model_load`, building only `towers` (a `rateclust_towers` value): with
/// `RATECLUST_TOWERS_IMAGES` or `RATECLUST_TOWERS_TEXTS` the other tower's weights are never read, which
/// roughly halves the memory of a ViT-B/32 model; embedding with the missing tower then fails with
/// `RATECLUST_STATUS_INVALID_ARGUMENT`. A tower the checkpoint lacks is `RATECLUST_STATUS_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn rateclust_model_load_towers(dir: *const c_char, device: u32, towers: u32, out: *mut *mut rateclust_model) -> Status {
    rateclust_model_load_precision(dir, device, towers, Precision::F32.to_c(), out)
}

/// As `rateclust_model_load_towers`, with the encoder layers' linear layers in `precision` (a
/// `rateclust_precision` value).
/// `RATECLUST_PRECISION_INT8` runs on the CPU only: with `RATECLUST_DEVICE_KIND_CUDA` it fails with
/// `RATECLUST_STATUS_INVALID_ARGUMENT` before reading any weight, with `RATECLUST_DEVICE_KIND_AUTO` the CPU
/// is used. Int8 embeddings stay within 0.999 cosine of f32 ones (measured on ViT-B/32).
#[no_mangle]
pub extern "C" fn rateclust_model_load_precision(
    dir: *const c_char,
    device: u32,
    towers: u32,
    precision: u32,
    out: *mut *mut rateclust_model,
) -> Status {
    guard(|| {
        let out = arg_mut(out, "out")?;
        *out = std::ptr::null_mut();
        let dir = arg_str(dir, "dir")?;
        let device = device_kind(device)?;
        let towers: Towers = CValue::to_engine(towers, "towers")?;
        let precision: Precision = CValue::to_engine(precision, "precision")?;
        let inner = ClipModel::load_with(dir, &LoadOptions { device, towers, precision })?;
        *out = new_handle(rateclust_model { inner });
        Ok(())
    })
}

/// Frees a model from `rateclust_model_load`. NULL is ignored.
#[no_mangle]
pub extern "C" fn rateclust_model_free(model: *mut rateclust_model) {
    free_handle(model);
}

/// Writes the width of the projected embeddings (the shared image–text space) into `*out`.
#[no_mangle]
pub extern "C" fn rateclust_model_embed_dim(model: *const rateclust_model, out: *mut usize) -> Status {
    guard(|| {
        let m = &arg_ref(model, "model")?.inner;
        *arg_mut(out, "out")? = m.embed_dim();
        Ok(())
    })
}

/// Writes the row width an embed call with `params` (NULL = defaults) returns for images (`images` true)
/// or texts into `*out`: the embed dimension, or the tower's hidden size with `pooled`.
#[no_mangle]
pub extern "C" fn rateclust_model_output_dim(
    model: *const rateclust_model,
    images: CBool,
    params: *const rateclust_embed_params,
    out: *mut usize,
) -> Status {
    guard(|| {
        let m = &arg_ref(model, "model")?.inner;
        let (opts, _) = options(params)?;
        *arg_mut(out, "out")? = m.output_dim(images.get(), &opts);
        Ok(())
    })
}

/// Writes the side in pixels of the preprocessed square images the vision tower takes into `*out`
/// (for `rateclust_embed_pixels`); fails if the model has no vision tower.
#[no_mangle]
pub extern "C" fn rateclust_model_image_size(model: *const rateclust_model, out: *mut usize) -> Status {
    guard(|| {
        let m = &arg_ref(model, "model")?.inner;
        *arg_mut(out, "out")? = m.image_size().ok_or_else(|| invalid_arg!("this model has no vision tower"))?;
        Ok(())
    })
}

/// Embeds `n` image files (JPEG, PNG, WebP; EXIF orientation applied) into `out`, `n` rows of the
/// output width (`rateclust_model_output_dim`), row i for `paths[i]`. `out_len` is the number of floats
/// `out` holds (at least n × width). The caller owns every buffer; `params` may be NULL.
#[no_mangle]
pub extern "C" fn rateclust_embed_image_files(
    model: *const rateclust_model,
    paths: *const *const c_char,
    n: usize,
    params: *const rateclust_embed_params,
    out: *mut f32,
    out_len: usize,
) -> Status {
    guard(|| {
        let m = &arg_ref(model, "model")?.inner;
        let ptrs = arg_slice(paths, n, "paths")?;
        let paths: Vec<PathBuf> =
            ptrs.iter().enumerate().map(|(i, &p)| arg_str(p, &format!("paths[{i}]")).map(PathBuf::from)).collect::<Result<_>>()?;
        embed_into(m, true, n, params, out, out_len, |opts, progress, out| {
            out.copy_from_slice(&m.embed_image_files(&paths, opts, progress)?);
            Ok(())
        })
    })
}

/// Embeds `n` encoded images held in memory (JPEG, PNG, WebP): image i is `data[i]`, `sizes[i]` bytes.
/// Output as `rateclust_embed_image_files`.
#[no_mangle]
pub extern "C" fn rateclust_embed_images_encoded(
    model: *const rateclust_model,
    data: *const *const u8,
    sizes: *const usize,
    n: usize,
    params: *const rateclust_embed_params,
    out: *mut f32,
    out_len: usize,
) -> Status {
    guard(|| {
        let m = &arg_ref(model, "model")?.inner;
        let ptrs = arg_slice(data, n, "data")?;
        let sizes = arg_slice(sizes, n, "sizes")?;
        let blobs: Vec<&[u8]> =
            ptrs.iter().zip(sizes).enumerate().map(|(i, (&p, &s))| arg_slice(p, s, format_args!("data[{i}]"))).collect::<Result<_>>()?;
        embed_into(m, true, n, params, out, out_len, |opts, progress, out| {
            m.embed_image_source_into(
                n,
                |i, _| decode_bytes_within(blobs[i], opts.max_image_pixels).map(LoadedImage::Owned).map_err(|e| about(e, &format!("image {i}"))),
                opts,
                progress,
                out,
            )
        })
    })
}

/// Embeds `n` raw frames (see `rateclust_frame`; RGBA/BGRA are composited onto white like PIL's
/// `convert("RGB")` of an RGBA image). Output as `rateclust_embed_image_files`.
#[no_mangle]
pub extern "C" fn rateclust_embed_frames(
    model: *const rateclust_model,
    frames: *const rateclust_frame,
    n: usize,
    params: *const rateclust_embed_params,
    out: *mut f32,
    out_len: usize,
) -> Status {
    guard(|| {
        let m = &arg_ref(model, "model")?.inner;
        let frames = arg_slice(frames, n, "frames")?;
        // Check every frame's pointer and size up front, so that a bad one fails before any work.
        for (i, f) in frames.iter().enumerate() {
            frame_view(f, i)?;
        }
        let frames = Frames(frames);
        embed_into(m, true, n, params, out, out_len, |opts, progress, out| {
            m.embed_image_source_into(
                n,
                |i, rgb| {
                    let (data, w, h, stride, format) = frame_view(frames.get(i), i)?;
                    if (w as u64) * (h as u64) > opts.max_image_pixels {
                        return Err(invalid_arg!("frames[{i}]: {w}×{h} pixels exceed params.max_image_pixels ({})", opts.max_image_pixels));
                    }
                    from_raw_into(data, w, h, stride, format, rgb).map_err(|e| about(e, &format!("frames[{i}]")))?;
                    Ok(LoadedImage::InBuffer)
                },
                opts,
                progress,
                out,
            )
        })
    })
}

/// The caller's frames, shared with the threads that convert them.
struct Frames<'a>(&'a [rateclust_frame]);

// SAFETY: the threads only read the frames and the pixel buffers they point to, which the caller keeps
// valid and unchanged for the duration of the call (header contract), as for any `&[u8]`.
unsafe impl Sync for Frames<'_> {}

impl Frames<'_> {
    fn get(&self, i: usize) -> &rateclust_frame {
        &self.0[i]
    }
}

/// Frame `i`'s pixel bytes, width, height, stride and format, checked (format value, positive size, a
/// readable buffer of the size they imply). Allocates only for an error message.
fn frame_view(f: &rateclust_frame, i: usize) -> Result<(&[u8], usize, usize, usize, PixelFormat)> {
    let format: PixelFormat = CValue::to_engine(f.format, "format").map_err(|e| about(e, &format!("frames[{i}]")))?;
    if f.width == 0 || f.height == 0 {
        return Err(invalid_arg!("frames[{i}]: size {}×{} must be positive", f.width, f.height));
    }
    let row = checked_len(f.width as usize, format.bytes_per_pixel(), "width × bytes per pixel")?;
    let len = checked_len(f.height as usize - 1, f.stride_bytes, "height × stride")?
        .checked_add(row)
        .ok_or_else(|| invalid_arg!("frames[{i}]: size overflows"))?;
    let data = arg_slice(f.data, len, format_args!("frames[{i}].data"))?;
    Ok((data, f.width as usize, f.height as usize, f.stride_bytes, format))
}

/// Embeds `n` already preprocessed images: `pixels` holds n × 3 × S × S floats (CHW, normalised as
/// `CLIPImageProcessor` outputs them; S from `rateclust_model_image_size`). Output as
/// `rateclust_embed_image_files`.
#[no_mangle]
pub extern "C" fn rateclust_embed_pixels(
    model: *const rateclust_model,
    pixels: *const f32,
    n: usize,
    params: *const rateclust_embed_params,
    out: *mut f32,
    out_len: usize,
) -> Status {
    guard(|| {
        let m = &arg_ref(model, "model")?.inner;
        let s = m.image_size().ok_or_else(|| invalid_arg!("this model has no vision tower"))?;
        let pixels = arg_slice(pixels, checked_len(n, 3 * s * s, "n × 3 × S × S")?, "pixels")?;
        embed_into(m, true, n, params, out, out_len, |opts, _, out| m.embed_pixels_into(pixels, n, opts, out))
    })
}

/// Embeds `n` NUL-terminated UTF-8 texts (CLIP BPE, truncated to the model's context length) into `out`,
/// `n` rows of the output width (`rateclust_model_output_dim` with `images` false); `out_len` is the
/// number of floats `out` holds (at least n × width). Needs `vocab.json` + `merges.txt` in the model
/// directory. The caller owns every buffer; `params` may be NULL.
#[no_mangle]
pub extern "C" fn rateclust_embed_texts(
    model: *const rateclust_model,
    texts: *const *const c_char,
    n: usize,
    params: *const rateclust_embed_params,
    out: *mut f32,
    out_len: usize,
) -> Status {
    guard(|| {
        let m = &arg_ref(model, "model")?.inner;
        let ptrs = arg_slice(texts, n, "texts")?;
        let texts: Vec<&str> = ptrs.iter().enumerate().map(|(i, &p)| arg_str(p, &format!("texts[{i}]"))).collect::<Result<_>>()?;
        embed_into(m, false, n, params, out, out_len, |opts, progress, out| {
            out.copy_from_slice(&m.embed_texts(&texts, opts, progress)?);
            Ok(())
        })
    })
}

/// `e` with `what` (which input) put in front of its message, keeping its kind (and so its status code).
fn about(e: Error, what: &str) -> Error {
    match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{what}: {m}")),
        Error::Format(m) => Error::Format(format!("{what}: {m}")),
        other => other,
    }
}

fn options(params: *const rateclust_embed_params) -> Result<(EmbedOptions, CProgress)> {
    let p = if params.is_null() { rateclust_embed_default_params() } else { *arg_ref(params, "params")? };
    if p.batch_size == 0 {
        return Err(invalid_arg!("params.batch_size must be positive"));
    }
    let mut opts = EmbedOptions::try_from(&p)?;
    if opts.max_image_pixels == 0 {
        opts.max_image_pixels = MAX_IMAGE_PIXELS;
    }
    Ok((opts, CProgress { f: p.progress, user_data: p.progress_user_data }))
}

/// Checks the options and the caller's output buffer (n rows of the output width), and runs `embed`, which
/// writes exactly those rows: the part every embed entry point shares once its inputs are checked.
fn embed_into(
    m: &ClipModel,
    images: bool,
    n: usize,
    params: *const rateclust_embed_params,
    out: *mut f32,
    out_len: usize,
    embed: impl FnOnce(&EmbedOptions, &mut CProgress, &mut [f32]) -> Result<()> + Send,
) -> Result<()> {
    let (opts, mut progress) = options(params)?;
    let out = output(m, images, &opts, n, out, out_len)?;
    if progress.f.is_some() {
        return embed(&opts, &mut progress, out);
    }
    on_pool(|| embed(&opts, &mut CProgress::none(), out))
}

/// The caller's output buffer, checked to hold n rows of the output width.
fn output<'a>(m: &ClipModel, images: bool, opts: &EmbedOptions, n: usize, out: *mut f32, out_len: usize) -> Result<&'a mut [f32]> {
    if images && !m.has_vision() {
        return Err(invalid_arg!("this model has no vision tower"));
    }
    if !images && !m.has_text() {
        return Err(invalid_arg!("this model has no text tower"));
    }
    let need = checked_len(n, m.output_dim(images, opts), "n × output width")?;
    if out_len < need {
        return Err(invalid_arg!("out_len = {out_len} floats, but {n} rows × {} = {need} are needed", m.output_dim(images, opts)));
    }
    arg_slice_mut(out, need, "out")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    /// What the handles' thread-safety notes promise, checked by the compiler: shared references to the
    /// engines behind them may cross threads.
    #[test]
    fn handles_are_shareable_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<ClipModel>();
        shareable::<crate::cluster::clusterer::Clusterer>();
    }

    /// C `bool`s holding 2 (any non-zero byte) read as true, without undefined behaviour: `pooled` = 2 gives
    /// the pooled width, `normalize` = 2 unit rows, `images` = 2 the image width.
    #[test]
    fn c_bools_other_than_0_and_1_read_as_true() {
        let dir = CString::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/clip_model/tiny")).unwrap();
        let mut model = std::ptr::null_mut();
        assert_eq!(rateclust_model_load(dir.as_ptr(), crate::DeviceKind::Cpu as u32, &mut model), Status::Ok);
        let mut params = rateclust_embed_default_params();
        let (mut plain, mut pooled) = (0usize, 0usize);
        assert_eq!(rateclust_model_output_dim(model, CBool(2), &params, &mut plain), Status::Ok);
        params.pooled = CBool(2);
        assert_eq!(rateclust_model_output_dim(model, CBool(2), &params, &mut pooled), Status::Ok);
        let m = unsafe { &(*model).inner };
        assert_eq!(plain, m.output_dim(true, &EmbedOptions::default()));
        assert_eq!(pooled, m.output_dim(true, &EmbedOptions { pooled: true, ..EmbedOptions::default() }));
        assert_ne!(plain, pooled);

        params.pooled = CBool(0);
        params.normalize = CBool(2);
        let text = CString::new("a photo of a cat").unwrap();
        let mut out = vec![0.0f32; plain];
        assert_eq!(rateclust_embed_texts(model, &text.as_ptr(), 1, &params, out.as_mut_ptr(), out.len()), Status::Ok);
        let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        rateclust_model_free(model);
    }

    /// A one-tower load embeds with its tower and refuses the other with INVALID_ARGUMENT; an unknown
    /// `towers` value is INVALID_ARGUMENT naming it.
    #[test]
    fn model_load_towers_builds_the_tower_asked_for() {
        use crate::ffi::enums::rateclust_towers;
        let dir = CString::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/clip_model/tiny")).unwrap();
        let cpu = crate::ffi::enums::rateclust_device_kind::Cpu as u32;
        let mut model = std::ptr::null_mut();
        assert_eq!(rateclust_model_load_towers(dir.as_ptr(), cpu, rateclust_towers::Images as u32, &mut model), Status::Ok);
        let params = rateclust_embed_default_params();
        let mut width = 0usize;
        assert_eq!(rateclust_model_output_dim(model, CBool(1), &params, &mut width), Status::Ok);
        let mut side = 0usize;
        assert_eq!(rateclust_model_image_size(model, &mut side), Status::Ok);
        let pixels = vec![0.25f32; 3 * side * side];
        let mut out = vec![0.0f32; width];
        assert_eq!(rateclust_embed_pixels(model, pixels.as_ptr(), 1, &params, out.as_mut_ptr(), out.len()), Status::Ok);
        let text = CString::new("a photo of a cat").unwrap();
        assert_eq!(rateclust_embed_texts(model, &text.as_ptr(), 1, &params, out.as_mut_ptr(), out.len()), Status::InvalidArgument);
        rateclust_model_free(model);
        let mut model = std::ptr::null_mut();
        assert_eq!(rateclust_model_load_towers(dir.as_ptr(), cpu, 7, &mut model), Status::InvalidArgument);
        assert!(model.is_null());
        let msg = unsafe { std::ffi::CStr::from_ptr(crate::ffi::rateclust_last_error()) }.to_string_lossy().into_owned();
        assert!(msg.contains("towers = 7 is not a rateclust_towers"), "{msg}");
    }

    /// An int8 load embeds within 0.99 cosine of the f32 model on the CPU, refuses CUDA and unknown
    /// precision values with INVALID_ARGUMENT.
    #[test]
    fn model_load_precision_int8_embeds_close_to_f32() {
        use crate::ffi::enums::{rateclust_device_kind, rateclust_precision, rateclust_towers};
        let dir = CString::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/clip_model/tiny")).unwrap();
        let (cpu, both) = (rateclust_device_kind::Cpu as u32, rateclust_towers::Both as u32);
        let embed = |precision: u32| {
            let mut model = std::ptr::null_mut();
            assert_eq!(rateclust_model_load_precision(dir.as_ptr(), cpu, both, precision, &mut model), Status::Ok);
            let params = rateclust_embed_default_params();
            let (mut width, mut side) = (0usize, 0usize);
            assert_eq!(rateclust_model_output_dim(model, CBool(1), &params, &mut width), Status::Ok);
            assert_eq!(rateclust_model_image_size(model, &mut side), Status::Ok);
            let pixels: Vec<f32> = (0..3 * side * side).map(|i| (i % 7) as f32 / 7.0 - 0.4).collect();
            let mut out = vec![0.0f32; width];
            assert_eq!(rateclust_embed_pixels(model, pixels.as_ptr(), 1, &params, out.as_mut_ptr(), out.len()), Status::Ok);
            rateclust_model_free(model);
            out
        };
        let (f, q) = (embed(rateclust_precision::F32 as u32), embed(rateclust_precision::Int8 as u32));
        let cos: f32 = f.iter().zip(&q).map(|(a, b)| a * b).sum();
        assert!(cos > 0.99 && f != q, "cosine {cos}");
        let mut model = std::ptr::null_mut();
        let cuda = rateclust_device_kind::Cuda as u32;
        assert_eq!(rateclust_model_load_precision(dir.as_ptr(), cuda, both, rateclust_precision::Int8 as u32, &mut model), Status::InvalidArgument);
        assert_eq!(rateclust_model_load_precision(dir.as_ptr(), cpu, both, 2, &mut model), Status::InvalidArgument);
        assert!(model.is_null());
        let msg = unsafe { std::ffi::CStr::from_ptr(crate::ffi::rateclust_last_error()) }.to_string_lossy().into_owned();
        assert!(msg.contains("precision = 2 is not a rateclust_precision"), "{msg}");
    }

    /// `max_image_pixels` bounds what an embed call decodes: an encoded image over it is a format error and a
    /// frame over it an invalid argument, each naming the limit; 0 means the default, under which both work.
    #[test]
    fn max_image_pixels_bounds_encoded_images_and_frames() {
        let dir = CString::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/clip_model/tiny")).unwrap();
        let mut model = std::ptr::null_mut();
        assert_eq!(rateclust_model_load(dir.as_ptr(), crate::DeviceKind::Cpu as u32, &mut model), Status::Ok);
        let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/clip_model/image.png")).unwrap();
        let (w, h) = image::image_dimensions(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/clip_model/image.png")).unwrap();
        let rgb = vec![128u8; (w * h * 3) as usize];
        let frame = rateclust_frame { data: rgb.as_ptr(), width: w, height: h, stride_bytes: w as usize * 3, format: PixelFormat::Rgb8 as u32 };
        let mut params = rateclust_embed_default_params();
        assert_eq!(params.max_image_pixels, MAX_IMAGE_PIXELS);
        let mut dim = 0usize;
        assert_eq!(rateclust_model_output_dim(model, CBool(1), &params, &mut dim), Status::Ok);
        let mut out = vec![0.0f32; dim];
        let (data, size) = (png.as_ptr(), png.len());
        for (limit, encoded, frames) in [
            (0, Status::Ok, Status::Ok),
            (w as u64 * h as u64, Status::Ok, Status::Ok),
            (w as u64 * h as u64 - 1, Status::Format, Status::InvalidArgument),
        ] {
            params.max_image_pixels = limit;
            let got = rateclust_embed_images_encoded(model, &data, &size, 1, &params, out.as_mut_ptr(), out.len());
            assert_eq!(got, encoded, "encoded image, limit {limit}");
            let got = rateclust_embed_frames(model, &frame, 1, &params, out.as_mut_ptr(), out.len());
            assert_eq!(got, frames, "frame, limit {limit}");
            if got != Status::Ok {
                let msg = unsafe { std::ffi::CStr::from_ptr(crate::ffi::rateclust_last_error()) }.to_string_lossy().into_owned();
                assert!(msg.contains(&limit.to_string()), "{msg}");
            }
        }
        rateclust_model_free(model);
    }
}
