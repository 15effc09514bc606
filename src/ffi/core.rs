//! Version and device queries.

use super::{arg_mut, device_kind, guard, write_c_string};
use crate::device::{self, Device, DeviceKind};
use super::enums::Status;
use std::ffi::c_char;

/// The library version as "MAJOR.MINOR.PATCH" (static string; do not free).
#[no_mangle]
pub extern "C" fn rateclust_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The name of a `rateclust_status` value as a static string ("RATECLUST_STATUS_OK", …), for logs;
/// "RATECLUST_STATUS_UNKNOWN" for a value that is not one (do not free). Never fails.
#[no_mangle]
pub extern "C" fn rateclust_status_name(status: i32) -> *const c_char {
    let name: &'static str = match status {
        0 => "RATECLUST_STATUS_OK\0",
        1 => "RATECLUST_STATUS_INVALID_ARGUMENT\0",
        2 => "RATECLUST_STATUS_NON_FINITE\0",
        3 => "RATECLUST_STATUS_IO\0",
        4 => "RATECLUST_STATUS_FORMAT\0",
        5 => "RATECLUST_STATUS_DEVICE\0",
        6 => "RATECLUST_STATUS_NUMERICAL\0",
        7 => "RATECLUST_STATUS_CANCELLED\0",
        8 => "RATECLUST_STATUS_OUT_OF_MEMORY\0",
        9 => "RATECLUST_STATUS_INTERNAL\0",
        _ => "RATECLUST_STATUS_UNKNOWN\0",
    };
    name.as_ptr() as *const c_char
}

/// The ABI version: incremented on any incompatible change to this header.
#[no_mangle]
pub extern "C" fn rateclust_abi_version() -> u32 {
    crate::RATECLUST_ABI_VERSION
}

/// Number of usable CUDA devices (0 without a driver or GPU). Never fails.
#[no_mangle]
pub extern "C" fn rateclust_device_count() -> u32 {
    std::panic::catch_unwind(device::cuda_device_count).unwrap_or(0) as u32
}

/// Makes GPU `ordinal` (0-based, below `rateclust_device_count()`) the device of every later call that runs on
/// CUDA in this process: `rateclust_model_load`, `rateclust_fit`, `rateclust_assign`, `rateclust_select_k`,
/// `rateclust_clusterer_set_k` (default 0). Handles already created keep their GPU. Fails with
/// `RATECLUST_STATUS_DEVICE` naming the count if there is no such GPU.
#[no_mangle]
pub extern "C" fn rateclust_set_gpu(ordinal: u32) -> Status {
    guard(|| device::set_default_gpu(ordinal as usize))
}

/// Describes the device a call with `kind` (a `rateclust_device_kind`) and `ordinal` would run on, as a NUL-terminated string
/// written into `buf` (capacity `cap` bytes, truncated if too small; `*needed`, if not NULL, gets the full
/// size). With `RATECLUST_DEVICE_KIND_AUTO` falling back to the CPU, the text says why CUDA was not used.
/// Fails with `RATECLUST_STATUS_DEVICE` (and the reason in `rateclust_last_error()`) if `kind` is CUDA and no
/// usable GPU exists.
#[no_mangle]
pub extern "C" fn rateclust_device_info(
    kind: u32,
    ordinal: u32,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> Status {
    guard(|| {
        let kind = device_kind(kind)?;
        let dev = Device::open(kind, ordinal as usize)?;
        let mut text = dev.describe();
        if kind == DeviceKind::Auto && !dev.is_cuda() {
            if let Some(why) = device::cuda_unavailable_reason() {
                text.push_str(&format!("; CUDA not used: {why}"));
            }
        }
        write_c_string(&text, buf, cap, needed)
    })
}

/// Writes the number of CPU threads the library uses into `*out`.
#[no_mangle]
pub extern "C" fn rateclust_cpu_threads(out: *mut u32) -> Status {
    guard(|| {
        *arg_mut(out, "out")? = rayon::current_num_threads() as u32;
        Ok(())
    })
}

/// Sets the number of CPU threads every rateclust call uses (0 = one per core, the default; the
/// `RAYON_NUM_THREADS` environment variable does the same without code). The pool is built once per
/// process: call this before any other rateclust call that computes. Later, it succeeds only if `n` is
/// what the running pool has, and otherwise fails with `RATECLUST_STATUS_INVALID_ARGUMENT` naming the
/// running count.
#[no_mangle]
pub extern "C" fn rateclust_set_cpu_threads(n: u32) -> Status {
    guard(|| {
        if rayon::ThreadPoolBuilder::new().num_threads(n as usize).build_global().is_ok() {
            return Ok(());
        }
        let running = rayon::current_num_threads();
        let wanted = if n == 0 { std::thread::available_parallelism().map_or(running, |p| p.get()) } else { n as usize };
        if wanted == running {
            Ok(())
        } else {
            Err(crate::invalid_arg!(
                "the thread pool already runs {running} threads (it is built by the first call that computes); call rateclust_set_cpu_threads first, or set RAYON_NUM_THREADS"
            ))
        }
    })
}
