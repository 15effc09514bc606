//! The CUDA backend: context and stream per device, cuBLAS handle, and a cache of NVRTC-compiled kernels.
//!
//! Kernel sources live in `kernels/*.cu`, are embedded with `include_str!`, and are compiled by NVRTC at
//! first use for the device's own architecture, then cached per device for the life of the process.

use crate::error::{Error, Result};
use cudarc::driver::{CudaContext, CudaModule, CudaStream};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

/// One opened CUDA device with its default stream and compiled modules.
pub struct CudaDevice {
    pub ordinal: usize,
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    blas: OnceLock<std::result::Result<Arc<cudarc::cublas::CudaBlas>, String>>,
}

/// Runs a cudarc call that may panic (missing shared libraries), turning panics into `Error::Device`.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::Device(format!("{what}: {msg}")))
        }
    }
}

fn driver_present() -> Result<()> {
    // SAFETY: only probes whether the shared library can be loaded.
    let present = guarded("loading libcuda", || Ok(unsafe { cudarc::driver::sys::is_culib_present() }))?;
    if present {
        Ok(())
    } else {
        Err(Error::Device("the CUDA driver library (libcuda.so) was not found".into()))
    }
}

/// Number of CUDA devices the driver reports.
pub fn device_count() -> Result<usize> {
    driver_present()?;
    guarded("counting CUDA devices", || {
        CudaContext::device_count()
            .map(|n| n.max(0) as usize)
            .map_err(|e| Error::Device(format!("cuInit/cuDeviceGetCount failed: {e}")))
    })
}

fn registry() -> &'static Mutex<HashMap<usize, Arc<CudaDevice>>> {
    static DEVICES: OnceLock<Mutex<HashMap<usize, Arc<CudaDevice>>>> = OnceLock::new();
    DEVICES.get_or_init(|| Mutex::new(HashMap::new()))
}

impl CudaDevice {
    /// The process-wide handle for device `ordinal`, opened on first use.
    pub fn shared(ordinal: usize) -> Result<Arc<CudaDevice>> {
        let mut map = registry().lock().map_err(|_| Error::Internal("device registry poisoned".into()))?;
        if let Some(d) = map.get(&ordinal) {
            return Ok(d.clone());
        }
        let dev = Arc::new(Self::open(ordinal)?);
        map.insert(ordinal, dev.clone());
        Ok(dev)
    }

    fn open(ordinal: usize) -> Result<CudaDevice> {
        let count = device_count()?;
        if count == 0 {
            return Err(Error::Device("the CUDA driver reports no GPU".into()));
        }
        if ordinal >= count {
            return Err(Error::Device(format!("CUDA device {ordinal} requested but only {count} present")));
        }
        guarded("opening the CUDA context", || {
            let ctx = CudaContext::new(ordinal)
                .map_err(|e| Error::Device(format!("creating a context on GPU {ordinal}: {e}")))?;
            let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
            let compute_capability = ctx
                .compute_capability()
                .map_err(|e| Error::Device(format!("querying compute capability: {e}")))?;
            let stream = ctx.default_stream();
            Ok(CudaDevice {
                ordinal,
                ctx,
                stream,
                name,
                compute_capability,
                modules: Mutex::new(HashMap::new()),
                blas: OnceLock::new(),
            })
        })
    }

    pub fn describe(&self) -> String {
        let (ma, mi) = self.compute_capability;
        format!("cuda:{} {} (sm_{ma}{mi})", self.ordinal, self.name)
    }

    /// The NVRTC architecture string for this device, e.g. `sm_90`.
    pub fn arch(&self) -> &'static str {
        arch_name(self.compute_capability)
    }

    /// The cuBLAS handle on this device's stream, created on first use.
    pub fn blas(&self) -> Result<Arc<cudarc::cublas::CudaBlas>> {
        self.blas
            .get_or_init(|| {
                guarded("loading cuBLAS", || {
                    cudarc::cublas::CudaBlas::new(self.stream.clone())
                        .map(Arc::new)
                        .map_err(|e| Error::Device(format!("creating a cuBLAS handle: {e}")))
                })
                .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(Error::Device)
    }

    /// The module compiled from `source` (a `kernels/*.cu` text), compiled by NVRTC on first use.
    pub fn module(&self, name: &'static str, source: &'static str) -> Result<Arc<CudaModule>> {
        let mut map = self.modules.lock().map_err(|_| Error::Internal("kernel cache poisoned".into()))?;
        if let Some(m) = map.get(name) {
            return Ok(m.clone());
        }
        let ptx = compile(name, source, self.arch())?;
        let module = guarded("loading a CUDA module", || {
            self.ctx.load_module(ptx).map_err(|e| Error::Device(format!("loading kernel module '{name}': {e}")))
        })?;
        map.insert(name, module.clone());
        Ok(module)
    }
}

/// Maps a compute capability to the NVRTC `--gpu-architecture` name.
pub fn arch_name(cc: (i32, i32)) -> &'static str {
    match cc {
        (7, 0) => "sm_70",
        (7, 5) => "sm_75",
        (8, 0) => "sm_80",
        (8, 6) => "sm_86",
        (8, 9) => "sm_89",
        (9, _) => "sm_90",
        (10, _) => "sm_100",
        (12, _) => "sm_120",
        (8, _) => "sm_80",
        _ => "sm_70",
    }
}

/// Compiles one kernel source with NVRTC for `arch`. Used at run time and by the CI check that compiles
/// every kernel for sm_80 and sm_90 on a machine without a GPU.
pub fn compile(name: &str, source: &str, arch: &'static str) -> Result<cudarc::nvrtc::Ptx> {
    // SAFETY: only probes whether the shared library can be loaded.
    let present = guarded("loading NVRTC", || Ok(unsafe { cudarc::nvrtc::sys::is_culib_present() }))?;
    if !present {
        return Err(Error::Device("the NVRTC library (libnvrtc.so) was not found".into()));
    }
    guarded("compiling a CUDA kernel", || {
        let opts = cudarc::nvrtc::CompileOptions {
            arch: Some(arch),
            name: Some(format!("{name}.cu")),
            options: vec!["--std=c++17".into()],
            ..Default::default()
        };
        cudarc::nvrtc::compile_ptx_with_opts(source, opts)
            .map_err(|e| Error::Device(format!("NVRTC failed on kernels/{name}.cu for {arch}: {e}")))
    })
}
