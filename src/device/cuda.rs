//! The CUDA backend: context and stream per device, cuBLAS handle, and a cache of NVRTC-compiled kernels.
//!
//! Kernel sources live in `kernels/*.cu`, are embedded with `include_str!`, and are compiled by NVRTC at
//! first use for the device's own architecture, then cached per device for the life of the process.

use crate::error::{Error, Result};

#[cfg(test)]
pub(crate) mod emu;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DeviceRepr, ValidAsZeroBits};
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
    functions: Mutex<HashMap<(&'static str, &'static str), CudaFunction>>,
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
                functions: Mutex::new(HashMap::new()),
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

    /// A kernel of `file`, compiling the file on first use.
    pub fn function(&self, file: &'static KernelFile, kernel: &str) -> Result<CudaFunction> {
        let module = self.module(file.name, file.source)?;
        guarded("loading a CUDA kernel", || {
            module
                .load_function(kernel)
                .map_err(|e| Error::Device(format!("kernel '{kernel}' not found in kernels/{}.cu: {e}", file.name)))
        })
    }

    /// Allocates `len` zeroed elements on this device. `what` names the buffer in error messages.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize, what: &str) -> Result<GpuBuf<T>> {
        let slice = self.stream.alloc_zeros::<T>(len.max(1)).map_err(|e| {
            Error::Device(format!("allocating {what} ({} bytes) on {}: {e}", len * std::mem::size_of::<T>(), self.describe()))
        })?;
        Ok(GpuBuf::new(slice, len, &self.stream))
    }

    /// Allocates `len` elements without initialising them: only for buffers that a kernel or GEMM
    /// overwrites completely before anything reads them (saves a memset of large workspaces).
    pub fn uninit<T: DeviceRepr>(&self, len: usize, what: &str) -> Result<GpuBuf<T>> {
        // SAFETY: the memory is uninitialised device memory of plain floats/ints; callers write every
        // element before reading it (see each call site).
        let slice = unsafe { self.stream.alloc::<T>(len.max(1)) }.map_err(|e| {
            Error::Device(format!("allocating {what} ({} bytes) on {}: {e}", len * std::mem::size_of::<T>(), self.describe()))
        })?;
        Ok(GpuBuf::new(slice, len, &self.stream))
    }

    /// Copies a host slice to a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, host: &[T], what: &str) -> Result<GpuBuf<T>> {
        if host.is_empty() {
            return Err(Error::InvalidArgument(format!("{what} is empty")));
        }
        let slice = self
            .stream
            .clone_htod(host)
            .map_err(|e| Error::Device(format!("copying {what} to {}: {e}", self.describe())))?;
        Ok(GpuBuf::new(slice, host.len(), &self.stream))
    }

    /// Copies a device buffer back to the host (waits for all work queued before it on the stream).
    pub fn download<T: DeviceRepr>(&self, buf: &GpuBuf<T>, what: &str) -> Result<Vec<T>> {
        let slice = buf.slice.as_ref().ok_or_else(|| Error::Internal(format!("{what} is not a CUDA allocation")))?;
        let mut v = self
            .stream
            .clone_dtoh(slice)
            .map_err(|e| Error::Device(format!("copying {what} from {}: {e}", self.describe())))?;
        self.sync(what)?;
        v.truncate(buf.len);
        Ok(v)
    }

    /// Copies `len` elements between device addresses (stream-ordered).
    pub fn copy_dtod<T>(&self, dst: u64, src: u64, len: usize, what: &str) -> Result<()> {
        self.bind()?;
        // SAFETY: both addresses come from live `GpuBuf`s with at least `len` elements past them.
        unsafe { cudarc::driver::result::memcpy_dtod_async(dst, src, len * std::mem::size_of::<T>(), self.stream.cu_stream()) }
            .map_err(|e| Error::Device(format!("copying {what} on {}: {e}", self.describe())))
    }

    /// Makes this device's context current on the calling thread. cudarc's own calls do this; the raw
    /// driver/cuBLAS calls here need it too, since a device is shared by every thread of the process.
    fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| Error::Device(format!("binding the CUDA context of {}: {e}", self.describe())))
    }

    /// Waits for the stream; a kernel fault queued earlier surfaces here, named by `after`.
    pub fn sync(&self, after: &str) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| Error::Device(format!("CUDA error while computing {after}: {e}")))
    }

    /// Launches `func` on this device's stream. `args` are the kernel parameters in order: device
    /// pointers as `u64` (from [`GpuBuf::ptr`], 0 for NULL), `i32`, `i64`, `f32` values.
    pub fn launch_fn(&self, func: &CudaFunction, name: &str, grid: (u32, u32, u32), block: u32, shared: u32, args: &[KArg]) -> Result<()> {
        use cudarc::driver::PushKernelArg;
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 {
            return Ok(());
        }
        let mut b = self.stream.launch_builder(func);
        for a in args {
            match a {
                KArg::Ptr(p) => b.arg(p),
                KArg::I32(x) => b.arg(x),
                KArg::I64(x) => b.arg(x),
                KArg::F32(x) => b.arg(x),
            };
        }
        let cfg = cudarc::driver::LaunchConfig { grid_dim: grid, block_dim: (block, 1, 1), shared_mem_bytes: shared };
        // SAFETY: every kernel launched through here takes exactly the parameters listed at its call site
        // (checked by review against kernels/*.cu), and all pointers are live buffers of this device.
        unsafe { b.launch(cfg) }
            .map(|_| ())
            .map_err(|e| Error::Device(format!("launching kernel {name} with grid {grid:?}, block {block}: {e}")))
    }

    /// A registered kernel by file and name, cached per device.
    pub fn kernel(&self, file: &'static KernelFile, kernel: &'static str) -> Result<CudaFunction> {
        if let Some(f) = self.functions.lock().map_err(|_| Error::Internal("kernel cache poisoned".into()))?.get(&(file.name, kernel)) {
            return Ok(f.clone());
        }
        let f = self.function(file, kernel)?;
        self.functions.lock().map_err(|_| Error::Internal("kernel cache poisoned".into()))?.insert((file.name, kernel), f.clone());
        Ok(f)
    }

    /// Row-major (possibly strided-batched) f32 GEMM with cuBLAS; see [`RmGemm`].
    pub fn sgemm_rm(&self, g: &RmGemm) -> Result<()> {
        // cublasSgemmStridedBatched rather than GemmEx with 32F types: the f32 reference product the TF32
        // and f16 paths are measured against keeps the entry point (and kernel choice) it was validated with.
        self.cublas_rm(g, "SGEMM", |handle, cm| {
            // SAFETY: the pointers address live device buffers of sufficient size (callers size them from
            // the same m, n, k, ld and strides), and the handle is bound to this device's stream.
            unsafe {
                cudarc::cublas::result::sgemm_strided_batched(
                    handle,
                    cm.op_a(),
                    cm.op_b(),
                    cm.m,
                    cm.n,
                    cm.k,
                    &cm.alpha,
                    cm.a as *const f32,
                    cm.lda,
                    cm.stride_a,
                    cm.b as *const f32,
                    cm.ldb,
                    cm.stride_b,
                    &cm.beta,
                    cm.c as *mut f32,
                    cm.ldc,
                    cm.stride_c,
                    cm.batch,
                )
            }
        })
    }

    /// Row-major (possibly strided-batched) f32 GEMM on tensor cores in TF32 (inputs rounded to a 10-bit
    /// mantissa, f32 accumulation, `CUBLAS_COMPUTE_32F_FAST_TF32`): the CPP head's products, whose
    /// ~50 TFLOP assignment of 1.28 M points needs tensor cores, while f32 master weights and f32
    /// activations stay as they are (no conversion passes). Expect ~1e-3 relative error per product
    /// against [`CudaDevice::sgemm_rm`]. Same operands as `sgemm_rm`; f32 A, B, C, alpha and beta.
    pub fn gemm_tf32_rm(&self, g: &RmGemm) -> Result<()> {
        use cudarc::cublas::sys::{cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32, cudaDataType_t::CUDA_R_32F};
        self.gemm_ex_rm(g, "TF32 GEMM", CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32)
    }

    /// Row-major strided-batched GEMM on f16 operands with f32 accumulation (tensor cores), writing C
    /// in f32 (`c_f16 = false`) or f16: the CLIP engine's linear layers (f16 weights and activations, f32
    /// residual stream). Same operand conventions as [`CudaDevice::sgemm_rm`]; alpha and beta are f32.
    pub fn gemm_f16_rm(&self, g: &RmGemm, c_f16: bool) -> Result<()> {
        use cudarc::cublas::sys::{cublasComputeType_t::CUBLAS_COMPUTE_32F, cudaDataType_t};
        let c_type = if c_f16 { cudaDataType_t::CUDA_R_16F } else { cudaDataType_t::CUDA_R_32F };
        self.gemm_ex_rm(g, "f16 GEMM", cudaDataType_t::CUDA_R_16F, c_type, CUBLAS_COMPUTE_32F)
    }

    /// `cublasGemmStridedBatchedEx` with A and B of `ab_type`, C of `c_type`, the given compute type and
    /// the default algorithm (heuristics): what `gemm_tf32_rm` and `gemm_f16_rm` differ by. Both compute
    /// types are 32F ones, so alpha and beta are f32.
    fn gemm_ex_rm(
        &self,
        g: &RmGemm,
        what: &str,
        ab_type: cudarc::cublas::sys::cudaDataType_t,
        c_type: cudarc::cublas::sys::cudaDataType_t,
        compute: cudarc::cublas::sys::cublasComputeType_t,
    ) -> Result<()> {
        use cudarc::cublas::sys::cublasGemmAlgo_t::CUBLAS_GEMM_DFALT;
        use std::ffi::c_void;
        self.cublas_rm(g, what, |handle, cm| {
            // SAFETY: as in `sgemm_rm`; A and B hold `ab_type` and C `c_type` elements, sized by the caller
            // from the same shapes; alpha/beta are f32 as the 32F compute types require.
            unsafe {
                cudarc::cublas::result::gemm_strided_batched_ex(
                    handle,
                    cm.op_a(),
                    cm.op_b(),
                    cm.m,
                    cm.n,
                    cm.k,
                    &cm.alpha as *const f32 as *const c_void,
                    cm.a as *const c_void,
                    ab_type,
                    cm.lda,
                    cm.stride_a,
                    cm.b as *const c_void,
                    ab_type,
                    cm.ldb,
                    cm.stride_b,
                    &cm.beta as *const f32 as *const c_void,
                    cm.c as *mut c_void,
                    c_type,
                    cm.ldc,
                    cm.stride_c,
                    cm.batch,
                    compute,
                    CUBLAS_GEMM_DFALT,
                )
            }
        })
    }

    /// What every row-major cuBLAS product shares: the column-major restatement (nothing to do for an
    /// empty product), the handle, binding the context to this thread, and the error naming the product
    /// (`what`) and its row-major shape. `call` issues the cuBLAS function itself.
    fn cublas_rm(
        &self,
        g: &RmGemm,
        what: &str,
        call: impl FnOnce(cudarc::cublas::sys::cublasHandle_t, &CmGemm) -> std::result::Result<(), cudarc::cublas::result::CublasError>,
    ) -> Result<()> {
        let Some(cm) = g.to_column_major()? else { return Ok(()) };
        let blas = self.blas()?;
        self.bind()?;
        call(*blas.handle(), &cm).map_err(|e| Error::Device(format!("cuBLAS {what} ({}×{}×{}, batch {}): {e}", g.m, g.n, g.k, g.batch)))
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

/// One `kernels/*.cu` file: its stem and its text. Each domain declares its own files next to the code
/// that launches their kernels (`rate::cuda`, `cluster::head::cuda`, `clip::cuda`) and names one in every
/// launch; the device compiles a file with NVRTC on first use and caches it by name. So the backend
/// lists no domain's kernels.
#[derive(Debug)]
pub struct KernelFile {
    pub name: &'static str,
    pub source: &'static str,
}

/// A kernel parameter for [`CudaDevice::launch`].
#[derive(Debug, Clone, Copy)]
pub enum KArg {
    /// A device address (`T*` in the kernel); 0 passes NULL.
    Ptr(u64),
    I32(i32),
    I64(i64),
    F32(f32),
}

/// A device buffer with its raw address cached, so kernels and cuBLAS can address sub-blocks of it.
/// All work on it is queued on the owning device's one stream, which orders every access.
pub struct GpuBuf<T> {
    /// The owning CUDA allocation (None for buffers of the test emulator, whose memory it owns).
    slice: Option<CudaSlice<T>>,
    ptr: u64,
    len: usize,
}

impl<T> GpuBuf<T> {
    fn new(slice: CudaSlice<T>, len: usize, stream: &Arc<CudaStream>) -> Self {
        let ptr = {
            let (p, _sync) = slice.device_ptr(stream);
            p
        };
        GpuBuf { slice: Some(slice), ptr, len }
    }

    /// A buffer living in emulated memory (tests).
    #[cfg(test)]
    pub(crate) fn emulated(ptr: u64, len: usize) -> Self {
        GpuBuf { slice: None, ptr, len }
    }

    /// The device address of element `offset` (bounds-checked; `offset == len` is allowed as an end).
    pub fn at(&self, offset: usize) -> u64 {
        debug_assert!(offset <= self.len, "device buffer offset {offset} past its length {}", self.len);
        self.ptr + (offset * std::mem::size_of::<T>()) as u64
    }

    /// The device address of the first element.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// As a kernel pointer argument.
    pub fn arg(&self) -> KArg {
        KArg::Ptr(self.ptr)
    }
}

/// What the NVRTC compile of one kernel file produced for one architecture.
#[derive(Debug, Clone)]
pub struct CompiledKernel {
    /// Size of the SASS image (cubin) ptxas produced; > 0 proves the device code assembled.
    pub cubin_bytes: usize,
    /// Size of the PTX text.
    pub ptx_bytes: usize,
    /// The compiler log (ptxas `-v` lines: registers, shared memory, spills per kernel).
    pub log: String,
}

/// Compiles a kernel file for a real architecture (`sm_80`, `sm_90`) through ptxas, as the CI check does:
/// unlike a PTX-only compile this surfaces assembler errors (register limits, bad instructions).
pub fn compile_cubin(name: &str, source: &str, arch: &'static str) -> Result<CompiledKernel> {
    use cudarc::nvrtc::{result as nr, sys as ns};
    use std::ffi::{CStr, CString};
    // SAFETY: only probes whether the shared library can be loaded.
    let present = guarded("loading NVRTC", || Ok(unsafe { ns::is_culib_present() }))?;
    if !present {
        return Err(Error::Device("the NVRTC library (libnvrtc.so) was not found".into()));
    }
    guarded("compiling a CUDA kernel", || {
        let src = CString::new(source).map_err(|_| Error::InvalidArgument(format!("kernels/{name}.cu contains a NUL byte")))?;
        let cname = CString::new(format!("{name}.cu")).map_err(|_| Error::InvalidArgument("kernel name".into()))?;
        let prog = nr::create_program(&src, Some(&cname))
            .map_err(|e| Error::Device(format!("NVRTC could not create a program for kernels/{name}.cu: {e}")))?;
        let opts = [format!("--gpu-architecture={arch}"), "--std=c++17".to_string(), "--ptxas-options=-v".to_string()];
        // SAFETY: `prog` was created above and is destroyed exactly once below; buffers are sized by NVRTC.
        unsafe {
            let compiled = nr::compile_program(prog, &opts);
            let log = nr::get_program_log(prog)
                .map(|l| CStr::from_ptr(l.as_ptr()).to_string_lossy().into_owned())
                .unwrap_or_default();
            let out = match compiled {
                Err(e) => Err(Error::Device(format!("NVRTC failed on kernels/{name}.cu for {arch}: {e}\n{log}"))),
                Ok(()) => {
                    let mut cubin_bytes = 0usize;
                    let r = ns::nvrtcGetCUBINSize(prog, &mut cubin_bytes);
                    let ptx_bytes = nr::get_ptx(prog).map(|p| p.len()).unwrap_or(0);
                    if r != ns::nvrtcResult::NVRTC_SUCCESS {
                        Err(Error::Device(format!("NVRTC produced no cubin for kernels/{name}.cu ({arch}): {r:?}")))
                    } else {
                        Ok(CompiledKernel { cubin_bytes, ptx_bytes, log })
                    }
                }
            };
            let _ = nr::destroy_program(prog);
            out
        }
    })
}

/// A row-major f32 GEMM, possibly strided-batched: for each batch index `b`,
/// `C_b = alpha · op(A_b) · op(B_b) + beta · C_b`, with `op(A)` m×k, `op(B)` k×n, `C` m×n, all row-major.
/// Operands are `(device address, leading dimension = row stride, batch stride)` in elements (stride 0 =
/// shared by the batch). Raw addresses let sub-blocks of one buffer be read and written.
#[derive(Debug, Clone, Copy)]
pub struct RmGemm {
    pub ta: bool,
    pub tb: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub a: (u64, usize, usize),
    pub b: (u64, usize, usize),
    pub beta: f32,
    pub c: (u64, usize, usize),
    pub batch: usize,
}

/// The same product as cuBLAS (column-major) sees it.
#[derive(Debug, Clone, Copy)]
pub struct CmGemm {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub alpha: f32,
    pub a: u64,
    pub lda: i32,
    pub stride_a: i64,
    pub b: u64,
    pub ldb: i32,
    pub stride_b: i64,
    pub beta: f32,
    pub c: u64,
    pub ldc: i32,
    pub stride_c: i64,
    pub batch: i32,
}

impl CmGemm {
    fn op(t: bool) -> cudarc::cublas::sys::cublasOperation_t {
        use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        if t { CUBLAS_OP_T } else { CUBLAS_OP_N }
    }
    fn op_a(&self) -> cudarc::cublas::sys::cublasOperation_t {
        Self::op(self.trans_a)
    }
    fn op_b(&self) -> cudarc::cublas::sys::cublasOperation_t {
        Self::op(self.trans_b)
    }
}

impl RmGemm {
    /// Row-major `C = op(A) op(B)` is column-major `Cᵀ = op(B)ᵀ op(A)ᵀ`: a row-major buffer read as
    /// column-major is the transpose, so the operands swap places and each keeps its own transpose flag.
    /// Also checks cuBLAS's 32-bit sizes and its leading-dimension rules. `None`: nothing to do.
    pub fn to_column_major(&self) -> Result<Option<CmGemm>> {
        if self.m == 0 || self.n == 0 || self.batch == 0 {
            return Ok(None);
        }
        let to_i = |x: usize, what: &str| -> Result<i32> {
            i32::try_from(x).map_err(|_| Error::InvalidArgument(format!("GEMM {what} = {x} exceeds the cuBLAS 32-bit limit")))
        };
        // Row-major widths: op(A) is m×k, so A itself is m×k (k wide) or k×m (m wide) when transposed.
        let a_width = if self.ta { self.m } else { self.k };
        let b_width = if self.tb { self.k } else { self.n };
        for (name, ld, width) in [("A", self.a.1, a_width), ("B", self.b.1, b_width), ("C", self.c.1, self.n)] {
            if ld < width.max(1) {
                return Err(Error::Internal(format!("GEMM {name}: leading dimension {ld} < row width {width}")));
            }
        }
        Ok(Some(CmGemm {
            trans_a: self.tb,
            trans_b: self.ta,
            m: to_i(self.n, "N")?,
            n: to_i(self.m, "M")?,
            k: to_i(self.k.max(1), "K")?,
            alpha: self.alpha,
            a: self.b.0,
            lda: to_i(self.b.1, "ldb")?,
            stride_a: self.b.2 as i64,
            b: self.a.0,
            ldb: to_i(self.a.1, "lda")?,
            stride_b: self.a.2 as i64,
            beta: self.beta,
            c: self.c.0,
            ldc: to_i(self.c.1, "ldc")?,
            stride_c: self.c.2 as i64,
            batch: to_i(self.batch, "batch")?,
        }))
    }
}

/// What the rate-reduction orchestration needs from a GPU: buffers, named kernel launches, GEMMs.
/// Implemented by [`CudaDevice`]; the crate's tests implement it with a CPU emulator of the kernels so
/// that the orchestration (every GEMM's shapes and offsets, chunking, the blocked Cholesky) is checked
/// in CI without a GPU.
pub(crate) trait Gpu {
    fn alloc_f32(&self, len: usize, zeroed: bool, what: &str) -> Result<GpuBuf<f32>>;
    fn alloc_i32(&self, len: usize, what: &str) -> Result<GpuBuf<i32>>;
    fn upload_f32(&self, host: &[f32], what: &str) -> Result<GpuBuf<f32>>;
    fn upload_i32(&self, host: &[i32], what: &str) -> Result<GpuBuf<i32>>;
    fn download_f32(&self, buf: &GpuBuf<f32>, what: &str) -> Result<Vec<f32>>;
    fn download_i32(&self, buf: &GpuBuf<i32>, what: &str) -> Result<Vec<i32>>;
    fn copy_f32(&self, dst: u64, src: u64, len: usize, what: &str) -> Result<()>;
    /// Sets `len` floats at `dst` to 0 (stream-ordered).
    fn zero_f32(&self, dst: u64, len: usize) -> Result<()>;
    fn launch(&self, file: &'static KernelFile, kernel: &'static str, grid: (u32, u32, u32), block: u32, shared: u32, args: &[KArg]) -> Result<()>;
    fn gemm(&self, g: &RmGemm) -> Result<()>;
    /// The same product on tensor cores in TF32 where the device has them ([`CudaDevice::gemm_tf32_rm`]);
    /// the emulator computes it exactly.
    fn gemm_tf32(&self, g: &RmGemm) -> Result<()> {
        self.gemm(g)
    }
    /// f16 buffers: the CLIP towers' GEMM inputs ([`CudaDevice::gemm_f16_rm`]).
    fn alloc_f16(&self, len: usize, what: &str) -> Result<GpuBuf<half::f16>>;
    fn upload_f16(&self, host: &[half::f16], what: &str) -> Result<GpuBuf<half::f16>>;
    fn download_f16(&self, buf: &GpuBuf<half::f16>, what: &str) -> Result<Vec<half::f16>>;
    /// The product with f16 A and B, f32 accumulation, and C in f16 (`c_f16`) or f32.
    fn gemm_f16(&self, g: &RmGemm, c_f16: bool) -> Result<()>;
    /// Waits for the queued work; a fault in it is reported as an error naming `after`.
    fn sync(&self, after: &str) -> Result<()>;
    /// The device, e.g. `cuda:0 NVIDIA H100 80GB HBM3 (sm_90)`.
    fn describe(&self) -> String;
}

impl Gpu for CudaDevice {
    fn alloc_f32(&self, len: usize, zeroed: bool, what: &str) -> Result<GpuBuf<f32>> {
        if zeroed { self.zeros(len, what) } else { self.uninit(len, what) }
    }
    fn alloc_i32(&self, len: usize, what: &str) -> Result<GpuBuf<i32>> {
        self.zeros(len, what)
    }
    fn upload_f32(&self, host: &[f32], what: &str) -> Result<GpuBuf<f32>> {
        self.upload(host, what)
    }
    fn upload_i32(&self, host: &[i32], what: &str) -> Result<GpuBuf<i32>> {
        self.upload(host, what)
    }
    fn download_f32(&self, buf: &GpuBuf<f32>, what: &str) -> Result<Vec<f32>> {
        self.download(buf, what)
    }
    fn download_i32(&self, buf: &GpuBuf<i32>, what: &str) -> Result<Vec<i32>> {
        self.download(buf, what)
    }
    fn copy_f32(&self, dst: u64, src: u64, len: usize, what: &str) -> Result<()> {
        self.copy_dtod::<f32>(dst, src, len, what)
    }
    fn zero_f32(&self, dst: u64, len: usize) -> Result<()> {
        self.bind()?;
        // SAFETY: `dst` addresses a live buffer with at least `len` floats past it.
        unsafe { cudarc::driver::result::memset_d8_async(dst, 0, len * 4, self.stream.cu_stream()) }
            .map_err(|e| Error::Device(format!("clearing a buffer on {}: {e}", self.describe())))
    }
    fn launch(&self, file: &'static KernelFile, kernel: &'static str, grid: (u32, u32, u32), block: u32, shared: u32, args: &[KArg]) -> Result<()> {
        let f = self.kernel(file, kernel)?;
        self.launch_fn(&f, kernel, grid, block, shared, args)
    }
    fn gemm(&self, g: &RmGemm) -> Result<()> {
        self.sgemm_rm(g)
    }
    fn gemm_tf32(&self, g: &RmGemm) -> Result<()> {
        self.gemm_tf32_rm(g)
    }
    fn alloc_f16(&self, len: usize, what: &str) -> Result<GpuBuf<half::f16>> {
        self.uninit(len, what)
    }
    fn upload_f16(&self, host: &[half::f16], what: &str) -> Result<GpuBuf<half::f16>> {
        self.upload(host, what)
    }
    fn download_f16(&self, buf: &GpuBuf<half::f16>, what: &str) -> Result<Vec<half::f16>> {
        self.download(buf, what)
    }
    fn gemm_f16(&self, g: &RmGemm, c_f16: bool) -> Result<()> {
        self.gemm_f16_rm(g, c_f16)
    }
    fn sync(&self, after: &str) -> Result<()> {
        CudaDevice::sync(self, after)
    }
    fn describe(&self) -> String {
        CudaDevice::describe(self)
    }
}

/// `x` as a kernel's `int` argument: every CUDA caller in the crate uses this one conversion.
pub(crate) fn i32_of(x: usize, what: &str) -> Result<i32> {
    i32::try_from(x).map_err(|_| Error::InvalidArgument(format!("{what} = {x} is too large for the CUDA kernels")))
}

/// `x` as a grid dimension or a shared-memory size.
pub(crate) fn u32_of(x: usize, what: &str) -> Result<u32> {
    u32::try_from(x).map_err(|_| Error::InvalidArgument(format!("{what} = {x} is too large for a CUDA grid")))
}
