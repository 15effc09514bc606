//! The entry point the CUDA benchmarks (`bench_rate_cuda`, `bench_cluster_cuda`) share: open CUDA device 0
//! or print `SKIP: no CUDA device (<reason>)` and exit 0 (scripts/gpu_check.sh greps for `SKIP:` and counts
//! it as a failure of the GPU check), run the cases, exit 1 with the error if one fails.

use rateclust::device::cuda::CudaDevice;
use rateclust::device::{Device, DeviceKind};
use std::sync::Arc;

/// Runs `cases` on CUDA device 0; `name` labels the stderr lines.
pub fn run_on_cuda(name: &str, cases: impl FnOnce(&Arc<CudaDevice>) -> rateclust::Result<()>) {
    let dev = match Device::open(DeviceKind::Cuda, 0) {
        Ok(Device::Cuda(d)) => d,
        Ok(Device::Cpu) => {
            println!("SKIP: no CUDA device (Device::open returned the CPU)");
            return;
        }
        Err(e) => {
            println!("SKIP: no CUDA device ({e})");
            return;
        }
    };
    eprintln!("{name} on {}", dev.describe());
    if let Err(e) = cases(&dev) {
        eprintln!("{name} failed: {e}");
        std::process::exit(1);
    }
}
