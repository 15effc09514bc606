//! Support for the crate's own tests, shared by the unit tests and the integration tests (`tests/common`):
//! a test that cannot run on this machine records itself as skipped, and the GPU tests open the device
//! through one function. Not part of the supported API.

use crate::device::cuda::CudaDevice;
use crate::device::{Device, DeviceKind};
use std::sync::Arc;

/// Records that the calling test cannot run here and returns to it (the test then returns early): prints
/// `SKIP: <reason>` and appends `<test name>\t<reason>` to the file `RATECLUST_SKIP_LOG` names.
/// scripts/test.sh counts those lines as skipped, not passed, in its closing `N passed, N failed, N skipped`
/// (libtest itself has no run-time skip: such a test would read as passed).
pub fn skip(reason: &str) {
    println!("SKIP: {reason}");
    if let Ok(log) = std::env::var("RATECLUST_SKIP_LOG") {
        use std::io::Write;
        // Once per test, however many times it asks.
        static LOGGED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let name = std::thread::current().name().unwrap_or("?").to_string();
        let mut logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
        if logged.contains(&name) {
            return;
        }
        logged.push(name.clone());
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(f, "{name}\t{reason}");
        }
    }
}

/// CUDA device 0 as a `Device` and as the device itself, or `None` after [`skip`] with the reason — the only
/// skip the project allows; scripts/gpu_check.sh greps for `SKIP:` and counts it as a failure of the GPU
/// check.
pub fn cuda_or_skip() -> Option<(Device, Arc<CudaDevice>)> {
    match Device::open(DeviceKind::Cuda, 0) {
        Ok(Device::Cuda(d)) => {
            println!("running on {}", d.describe());
            Some((Device::Cuda(d.clone()), d))
        }
        Ok(Device::Cpu) => {
            skip("no CUDA device (Device::open returned the CPU)");
            None
        }
        Err(e) => {
            skip(&format!("no CUDA device ({e})"));
            None
        }
    }
}

/// A file or folder under `tests/fixtures/`: in the source tree the test binary was built from, or,
/// where that is gone (a test binary carried to a GPU machine), relative to the working directory.
pub fn fixture(rel: &str) -> std::path::PathBuf {
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let base = if built.is_dir() { built } else { std::path::PathBuf::from("tests/fixtures") };
    base.join(rel)
}
