//! Steady-state CPU embedding and labelling calls do not touch the heap: after a few warm-up calls with the
//! same batch (same count, same frame size), `rateclust_embed_frames`, `rateclust_embed_pixels` and
//! `rateclust_assign` (default rule) allocate nothing and return the first call's output bit for bit. The model keeps its forward-pass buffers, preprocessing buffers
//! and resize taps in a workspace pool that later calls reuse (a clusterer likewise keeps its projections and
//! neighbour-search buffers); `linalg::gemm` splits large products over
//! the pool with `rayon::join`, which allocates nothing on pool threads.
//!
//! The model here is a random one whose products are large enough to be split (a vision tower of width
//! 256, MLP 1024, 17 tokens an image), so the parallel path is what gets counted.
//!
//! Two callers: a thread of a rayon pool (zero allocations, every call), and the test's own thread, as a C
//! media pipeline calls. A call from outside the pool is moved onto it as one job, and rayon's injector
//! queue, through which outside threads hand over jobs, allocates one block per 63 jobs: so at most one
//! small allocation per 63 calls, checked over 126 calls.
//!
//! One test function: the allocation counter is process-wide, so a second test running concurrently in
//! this binary would show up in it.

#[path = "../examples/common/clip_random.rs"]
#[allow(dead_code)]
mod clip_random;

use rateclust::ffi::clip::{
    rateclust_embed_default_params, rateclust_embed_frames, rateclust_embed_pixels, rateclust_frame, rateclust_model_free,
    rateclust_model_image_size, rateclust_model_load, rateclust_model_output_dim,
};
use rateclust::ffi::cluster::{rateclust_assign, rateclust_clusterer, rateclust_clusterer_free, rateclust_fit, rateclust_fit_default_params};
use rateclust::ffi::core::rateclust_set_cpu_threads;
use rateclust::Status;
use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CString;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `System`, counting every allocation and reallocation of every thread.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARM_UP: usize = 3;

/// Runs `call` once for the reference output, then once on every thread of the current rayon pool (the
/// global one outside a pool), then WARM_UP times here, then `measured` times more, checking that every call
/// writes the reference output; returns the number of allocations each measured call made.
///
/// Why on every thread: a thread keeps a few buffers of its own once it has computed (faer's GEMM packing
/// buffer, rayon's latch), made the first time it runs a piece of work. Which pool thread runs which piece
/// depends on work stealing, so a thread that stole nothing during the warm-up could make its buffers
/// during a measured call; a call started on each thread makes that thread run pieces itself.
fn steady_state(what: &str, call: impl Fn(&mut [f32]) -> Status + Sync, len: usize, measured: usize) -> Vec<usize> {
    let mut first = vec![0.0f32; len];
    assert_eq!(call(&mut first), Status::Ok, "{what}");
    assert!(first.iter().all(|v| v.is_finite()) && first.iter().any(|&v| v != 0.0), "{what}: {first:?}");
    rayon::broadcast(|_| {
        let mut out = vec![0.0f32; len];
        assert_eq!(call(&mut out), Status::Ok, "{what}");
    });
    let mut out = vec![0.0f32; len];
    for _ in 0..WARM_UP {
        assert_eq!(call(&mut out), Status::Ok, "{what}");
    }
    let mut per_call = Vec::with_capacity(measured);
    let mut same = Vec::with_capacity(measured);
    for _ in 0..measured {
        out.fill(0.0);
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let status = call(&mut out);
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(status, Status::Ok, "{what}");
        per_call.push(after - before);
        same.push(out.iter().zip(&first).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
    assert!(same.iter().all(|&s| s), "{what}: outputs differ from the first call's: {same:?}");
    per_call
}

/// A CLIP directory with random weights: vision tower of width 256 (MLP 1024, 2 layers, 64 px in patches
/// of 16), a small text tower, the tiny fixture's tokenizer files, and a 64 px preprocessing config.
fn mid_size_model() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("clip_alloc_free_model");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = r#"{"model_type": "clip", "projection_dim": 128,
        "text_config": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2, "num_hidden_layers": 1},
        "vision_config": {"hidden_size": 256, "intermediate_size": 1024, "num_attention_heads": 4, "num_hidden_layers": 2,
                          "image_size": 64, "patch_size": 16}}"#;
    std::fs::write(dir.join("config.json"), config).unwrap();
    let cfg = rateclust::clip::ClipConfig::from_json(config).unwrap();
    std::fs::write(dir.join("model.safetensors"), clip_random::random_safetensors(&cfg, 5)).unwrap();
    let tiny = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip_model/tiny");
    for f in ["vocab.json", "merges.txt"] {
        std::fs::copy(tiny.join(f), dir.join(f)).unwrap();
    }
    let pre = std::fs::read_to_string(tiny.join("preprocessor_config.json")).unwrap().replace("32", "64");
    std::fs::write(dir.join("preprocessor_config.json"), pre).unwrap();
    dir
}

/// Raw pointers of the C API, moved into the pool's thread.
#[derive(Clone, Copy)]
struct Ptrs {
    model: *mut rateclust::ffi::clip::rateclust_model,
    frames: *const rateclust_frame,
    pixels: *const f32,
    clusterer: *mut rateclust_clusterer,
    embeddings: *const f32,
}
// SAFETY: the pointees outlive every use (the pool runs the closure to completion before they are dropped)
// and the model may be used from any thread (its C API contract).
unsafe impl Send for Ptrs {}
unsafe impl Sync for Ptrs {}

impl Ptrs {
    /// A copy, read through `&self`: closures calling this capture the whole (Sync) struct, not its raw fields.
    fn get(&self) -> Ptrs {
        *self
    }
}

#[test]
fn steady_state_cpu_embedding_calls_do_not_allocate() {
    // Build the global pool now, before anything computes.
    let _ = rateclust_set_cpu_threads(2);
    let dir = CString::new(mid_size_model().to_str().unwrap()).unwrap();
    let mut model = std::ptr::null_mut();
    assert_eq!(rateclust_model_load(dir.as_ptr(), rateclust::ffi::enums::rateclust_device_kind::Cpu as u32, &mut model), Status::Ok);
    let mut dim = 0usize;
    assert_eq!(rateclust_model_output_dim(model, rateclust::ffi::CBool(1), std::ptr::null(), &mut dim), Status::Ok);

    // A batch of 4 raw RGB frames of 96×72, each a different gradient, rows padded to a 4-byte stride.
    let (w, h, n) = (96usize, 72usize, 4usize);
    let stride = w * 3 + 4;
    let frames_data: Vec<Vec<u8>> = (0..n)
        .map(|f| (0..h * stride).map(|i| ((i / stride) * (f + 1) + (i % stride) * 3 + 17 * f) as u8).collect())
        .collect();
    let frames: Vec<rateclust_frame> = frames_data
        .iter()
        .map(|d| rateclust_frame { data: d.as_ptr(), width: w as u32, height: h as u32, stride_bytes: stride, format: 0 })
        .collect();
    // Preprocessed input: the same without the preprocessing step.
    let mut side = 0usize;
    assert_eq!(rateclust_model_image_size(model, &mut side), Status::Ok);
    assert_eq!(side, 64);
    let pixels: Vec<f32> = (0..n * 3 * side * side).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();

    // A clusterer of three clusters fitted on points around three of the embedding's axes (the C API's
    // defaults, few steps), and the frames' embeddings to label with it.
    let (fit_n, centres) = (300usize, [0usize, dim / 3, 2 * dim / 3]);
    let mut rng = rateclust::rng::Rng::new(9);
    let fit_x: Vec<f32> = (0..fit_n * dim).map(|i| if i % dim == centres[(i / dim) % 3] { 1.0 } else { 0.15 * rng.normal() as f32 }).collect();
    let mut fp = rateclust_fit_default_params();
    fp.k = 3;
    fp.steps = 20;
    let mut clusterer = std::ptr::null_mut();
    let dk = rateclust::ffi::enums::rateclust_device_kind::Cpu as u32;
    assert_eq!(rateclust_fit(fit_x.as_ptr(), fit_n, dim, &fp, dk, None, std::ptr::null_mut(), &mut clusterer), Status::Ok);
    let mut embeddings = vec![0.0f32; n * dim];
    let params = rateclust_embed_default_params();
    assert_eq!(rateclust_embed_frames(model, frames.as_ptr(), n, &params, embeddings.as_mut_ptr(), embeddings.len()), Status::Ok);

    let p = Ptrs { model, frames: frames.as_ptr(), pixels: pixels.as_ptr(), clusterer, embeddings: embeddings.as_ptr() };
    let run = move |measured: usize| {
        let p = p;
        // Each call takes its parameters by value (no allocation), so that the calls may run on any thread.
        let frames = steady_state(
            "rateclust_embed_frames",
            |out| rateclust_embed_frames(p.get().model, p.get().frames, n, &rateclust_embed_default_params(), out.as_mut_ptr(), out.len()),
            n * dim,
            measured,
        );
        let pixels = steady_state(
            "rateclust_embed_pixels",
            |out| rateclust_embed_pixels(p.get().model, p.get().pixels, n, &rateclust_embed_default_params(), out.as_mut_ptr(), out.len()),
            n * dim,
            measured,
        );
        let assign = steady_state(
            "rateclust_assign",
            |out| {
                let (mut labels, mut confidence) = ([0i64; 4], [0.0f32; 4]);
                let status = rateclust_assign(p.get().clusterer, p.get().embeddings, n, dim, dk, labels.as_mut_ptr(), confidence.as_mut_ptr(), None, std::ptr::null_mut());
                // Labels are small integers (exact in f32); the confidence may be 0, the labels make the row non-zero.
                for i in 0..n {
                    out[i] = labels[i] as f32 + 1.0;
                    out[n + i] = confidence[i];
                }
                status
            },
            2 * n,
            measured,
        );
        (frames, pixels, assign)
    };

    // From a thread of a rayon pool: nothing, every call.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let (frames, pixels, assign) = pool.install(move || run(5));
    assert!(
        frames.iter().chain(&pixels).chain(&assign).all(|&a| a == 0),
        "allocations per call from a pool thread: frames {frames:?}, pixels {pixels:?}, assign {assign:?}"
    );

    // From this thread (outside any pool): at most one injector block per 63 calls, so at most 2 (or 3
    // when the warm-up calls end just before a block boundary) over 126 calls.
    let (frames, pixels, assign) = run(126);
    for (what, counts) in [("rateclust_embed_frames", &frames), ("rateclust_embed_pixels", &pixels), ("rateclust_assign", &assign)] {
        let total: usize = counts.iter().sum();
        let most = counts.iter().max().copied().unwrap_or(0);
        assert!(total <= 3 && most <= 1, "{what} from an outside thread: {total} allocations in 126 calls (at most {most} in one)");
        eprintln!("{what} from an outside thread: {total} allocations in 126 calls");
    }

    rateclust_clusterer_free(clusterer);
    rateclust_model_free(model);
}
