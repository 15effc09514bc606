//! Where computation runs: the CPU, or a CUDA GPU through cudarc.
//!
//! `Device::open(DeviceKind::Auto, 0)` picks CUDA when it is usable and otherwise falls back to the CPU;
//! why CUDA was not usable stays available through [`cuda_unavailable_reason`]. Opening CUDA never
//! panics or aborts: cudarc panics when libcuda is absent (docs/design.md §4), so every probe is guarded.

pub mod cuda;

use crate::error::{Error, Result};
use std::sync::Arc;

/// Which device a call should run on (C mirror: `rateclust_device_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceKind {
    /// CUDA if a usable GPU is present, else the CPU.
    #[default]
    Auto = 0,
    /// The CPU (always available).
    Cpu = 1,
    /// A CUDA GPU; fails with `RATECLUST_DEVICE` if none is usable.
    Cuda = 2,
}

impl DeviceKind {
    /// Parses `auto`, `cpu`, `cuda` (as used by the CLI).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceKind::Auto),
            "cpu" => Ok(DeviceKind::Cpu),
            "cuda" | "gpu" => Ok(DeviceKind::Cuda),
            other => Err(Error::InvalidArgument(format!("unknown device '{other}' (expected auto, cpu or cuda)"))),
        }
    }
}

/// The GPU that calls without an explicit ordinal use (C `rateclust_set_gpu`, CLI `--device cuda:N`); 0 until
/// set. Process-wide, like CUDA's own current device, so that a host picks its GPU once.
static DEFAULT_GPU: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Makes `ordinal` the GPU of every later [`Device::open_default`] (fit, assign, select-k, CLIP model load).
/// Fails with a device error naming the count if no such usable GPU exists.
pub fn set_default_gpu(ordinal: usize) -> Result<()> {
    let count = cuda_device_count();
    if ordinal >= count {
        return Err(Error::Device(format!("GPU {ordinal} does not exist: {count} usable CUDA device(s){}", match cuda_unavailable_reason() {
            Some(why) if count == 0 => format!(" ({why})"),
            _ => String::new(),
        })));
    }
    DEFAULT_GPU.store(ordinal, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The ordinal [`set_default_gpu`] chose (0 by default).
pub fn default_gpu() -> usize {
    DEFAULT_GPU.load(std::sync::atomic::Ordering::Relaxed)
}

impl DeviceKind {
    /// Parses a CLI device: `auto`, `cpu`, `cuda` / `gpu`, or `cuda:N` / `gpu:N` for GPU N (which also
    /// becomes the process's default GPU, [`set_default_gpu`]).
    pub fn parse_with_ordinal(s: &str) -> Result<Self> {
        match s.split_once(':') {
            Some((kind, n)) if matches!(kind.to_ascii_lowercase().as_str(), "cuda" | "gpu") => {
                let ordinal: usize = n.parse().map_err(|_| Error::InvalidArgument(format!("device '{s}': expected cuda:N with N a GPU number")))?;
                set_default_gpu(ordinal)?;
                Ok(DeviceKind::Cuda)
            }
            _ => Self::parse(s),
        }
    }
}

/// An opened device. Cheap to clone; CUDA devices are shared per ordinal so that kernels compile once.
#[derive(Clone)]
pub enum Device {
    Cpu,
    Cuda(Arc<cuda::CudaDevice>),
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Device {
    /// Opens the requested device. `Auto` never fails: it falls back to the CPU.
    pub fn open(kind: DeviceKind, ordinal: usize) -> Result<Device> {
        match kind {
            DeviceKind::Cpu => Ok(Device::Cpu),
            DeviceKind::Cuda => cuda::CudaDevice::shared(ordinal).map(Device::Cuda),
            DeviceKind::Auto => Ok(cuda::CudaDevice::shared(ordinal).map(Device::Cuda).unwrap_or(Device::Cpu)),
        }
    }

    /// [`Device::open`] on the process's default GPU ([`default_gpu`]).
    pub fn open_default(kind: DeviceKind) -> Result<Device> {
        Self::open(kind, default_gpu())
    }

    pub fn is_cuda(&self) -> bool {
        matches!(self, Device::Cuda(_))
    }

    /// A one-line description, e.g. `cpu (2 threads)` or `cuda:0 NVIDIA H100 80GB HBM3 (sm_90)`.
    pub fn describe(&self) -> String {
        match self {
            Device::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
            Device::Cuda(d) => d.describe(),
        }
    }
}

/// Number of usable CUDA devices (0 when the driver is missing or unusable).
pub fn cuda_device_count() -> usize {
    cuda::device_count().unwrap_or(0)
}

/// Why CUDA is not usable on this machine, or `None` when at least one device can be opened.
pub fn cuda_unavailable_reason() -> Option<String> {
    match cuda::CudaDevice::shared(0) {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}
