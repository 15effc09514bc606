//! Steady-state CPU embedding calls do not touch the heap: after a few warm-up calls with the same batch
//! (same count, same frame size), `rateclust_embed_frames` and `rateclust_embed_pixels` allocate nothing,
//! on any thread, and return the first call's rows bit for bit. The model keeps its forward-pass buffers,
//! preprocessing buffers and resize taps in a workspace pool that later calls reuse.
//!
//! The zero-allocation check calls from a thread of a rayon pool. Called from any other thread the same
//! code runs, but two third-party parts still allocate per call: faer's multi-threaded GEMM (used for
//! large products started outside the pool) spawns its tasks through `rayon::scope` (a boxed job each),
//! and rayon's injector queue, which takes work from outside threads, allocates a block every 63 jobs.
//! That case is checked for identical outputs only.
//!
//! One test function: the allocation counter is process-wide, so a second test running concurrently in
//! this binary would show up in it.

use rateclust::ffi::clip::{
    rateclust_embed_default_params, rateclust_embed_frames, rateclust_embed_pixels, rateclust_frame, rateclust_model_free,
    rateclust_model_image_size, rateclust_model_load, rateclust_model_output_dim,
};
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
const MEASURED: usize = 5;

/// Runs `call` WARM_UP times, then MEASURED times more, checking that every call writes the first call's
/// output and, if `alloc_free`, that the measured calls allocate nothing.
fn steady_state(what: &str, mut call: impl FnMut(&mut [f32]) -> Status, len: usize, alloc_free: bool) {
    let mut first = vec![0.0f32; len];
    assert_eq!(call(&mut first), Status::Ok, "{what}");
    assert!(first.iter().all(|v| v.is_finite()) && first.iter().any(|&v| v != 0.0), "{what}: {first:?}");
    let mut out = vec![0.0f32; len];
    for _ in 1..WARM_UP {
        assert_eq!(call(&mut out), Status::Ok, "{what}");
    }
    let mut per_call = Vec::with_capacity(MEASURED);
    let mut same = Vec::with_capacity(MEASURED);
    for _ in 0..MEASURED {
        out.fill(0.0);
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let status = call(&mut out);
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(status, Status::Ok, "{what}");
        per_call.push(after - before);
        same.push(out.iter().zip(&first).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
    assert!(same.iter().all(|&s| s), "{what}: outputs differ from the first call's: {same:?}");
    if alloc_free {
        assert!(per_call.iter().all(|&n| n == 0), "{what}: allocations per steady-state call: {per_call:?}");
    }
}

/// Raw pointers of the C API, moved into the pool's thread.
#[derive(Clone, Copy)]
struct Ptrs {
    model: *mut rateclust::ffi::clip::rateclust_model,
    frames: *const rateclust_frame,
    pixels: *const f32,
}
// SAFETY: the pointees outlive every use (the pool runs the closure to completion before they are dropped)
// and the model may be used from any thread (its C API contract).
unsafe impl Send for Ptrs {}
unsafe impl Sync for Ptrs {}

#[test]
fn steady_state_cpu_embedding_calls_do_not_allocate() {
    // Build the global pool now, before anything computes (whatever size it has, the calls must not allocate).
    let _ = rateclust_set_cpu_threads(2);
    let dir = CString::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/clip_model/tiny")).unwrap();
    let mut model = std::ptr::null_mut();
    assert_eq!(rateclust_model_load(dir.as_ptr(), rateclust::DeviceKind::Cpu as u32, &mut model), Status::Ok);
    let mut dim = 0usize;
    assert_eq!(rateclust_model_output_dim(model, rateclust::ffi::CBool(1), std::ptr::null(), &mut dim), Status::Ok);

    // A batch of 4 raw RGB frames of 64×48, each a different gradient, rows padded to a 4-byte stride.
    let (w, h, n) = (64usize, 48usize, 4usize);
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
    let pixels: Vec<f32> = (0..n * 3 * side * side).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();

    let p = Ptrs { model, frames: frames.as_ptr(), pixels: pixels.as_ptr() };
    let run = move |alloc_free: bool| {
        let params = rateclust_embed_default_params();
        let p = p;
        steady_state("rateclust_embed_frames", |out| rateclust_embed_frames(p.model, p.frames, n, &params, out.as_mut_ptr(), out.len()), n * dim, alloc_free);
        steady_state("rateclust_embed_pixels", |out| rateclust_embed_pixels(p.model, p.pixels, n, &params, out.as_mut_ptr(), out.len()), n * dim, alloc_free);
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(move || run(true));
    // From this (non-pool) thread: the same rows every call.
    run(false);

    rateclust_model_free(model);
}
