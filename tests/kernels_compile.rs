//! CI check: every CUDA source in `kernels/` compiles with NVRTC, through ptxas, for sm_80 and sm_90.
//!
//! Runs on machines without a GPU (only libnvrtc is needed; `scripts/test.sh` installs the pinned
//! nvidia-cuda-nvrtc-cu12==12.8.93 wheel and sets LD_LIBRARY_PATH). With RATECLUST_REQUIRE_NVRTC=1 (CI)
//! a missing NVRTC fails the test; otherwise it prints a SKIP line. RATECLUST_NVRTC_VERBOSE=1 prints ptxas's
//! per-kernel register/shared-memory report.

use rateclust::device::cuda::{compile_cubin, KernelFile};

/// Every kernel file the library launches, each declared by its domain.
const KERNEL_FILES: [&KernelFile; 5] =
    [&rateclust::rate::cuda::LINALG, &rateclust::rate::cuda::SINKHORN, &rateclust::clip::cuda::CLIP, &rateclust::clip::cuda::nn::NN, &rateclust::cluster::head::cuda::FILE];

const ARCHS: [&str; 2] = ["sm_80", "sm_90"];

#[test]
fn every_kernel_compiles_for_sm80_and_sm90() {
    // Every kernels/*.cu file must be declared by a domain (so it is both compiled here and loadable at run time).
    // The build tree's kernels/, or ./kernels when the test binary runs elsewhere (scripts/gpu_check.sh
    // carries test binaries to a GPU machine and runs them from the repository root there).
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let dir = if built.is_dir() { built } else { std::path::PathBuf::from("kernels") };
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("kernels/ directory")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut registered: Vec<String> = KERNEL_FILES.iter().map(|f| f.name.to_string()).collect();
    registered.sort();
    assert_eq!(on_disk, registered, "kernels/*.cu and the declared KernelFiles differ");

    let required = std::env::var("RATECLUST_REQUIRE_NVRTC").is_ok_and(|v| v == "1");
    let mut compiled = 0;
    for arch in ARCHS {
        for KernelFile { name, source: src } in KERNEL_FILES {
            match compile_cubin(name, src, arch) {
                Ok(k) => {
                    assert!(k.cubin_bytes > 0, "kernels/{name}.cu produced an empty cubin for {arch}");
                    // ptxas -v: surface spills, which would silently cost speed.
                    for line in k.log.lines().filter(|l| l.contains("spill") && !l.contains(" 0 bytes spill")) {
                        println!("note: kernels/{name}.cu {arch}: {}", line.trim());
                    }
                    if std::env::var("RATECLUST_NVRTC_VERBOSE").is_ok_and(|v| v == "1") {
                        println!("--- kernels/{name}.cu {arch}: cubin {} bytes, PTX {} bytes\n{}", k.cubin_bytes, k.ptx_bytes, k.log.trim());
                    }
                    compiled += 1;
                }
                Err(e) => {
                    let msg = e.to_string();
                    if msg.contains("libnvrtc.so") && msg.contains("not found") || msg.contains("loading NVRTC") {
                        if required {
                            panic!("NVRTC is required (RATECLUST_REQUIRE_NVRTC=1) but could not be loaded: {msg}");
                        }
                        println!("SKIP: NVRTC kernel compile check: NVRTC not loadable ({msg}); run scripts/test.sh to install it");
                        return;
                    }
                    panic!("{msg}");
                }
            }
        }
    }
    println!("NVRTC: compiled {} kernels for {} ({} compiles to cubin through ptxas)", KERNEL_FILES.len(), ARCHS.join(", "), compiled);
}
