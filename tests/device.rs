//! Device selection never panics: `auto` falls back to the CPU with a reason, an explicit CUDA request
//! on a machine without a usable GPU is a clean `Error::Device`.

use rateclust::device::{cuda_device_count, cuda_unavailable_reason, Device, DeviceKind};

#[test]
fn auto_falls_back_cleanly_and_cuda_request_fails_cleanly() {
    let auto = Device::open(DeviceKind::Auto, 0).expect("auto never fails");
    if cuda_device_count() == 0 {
        assert!(!auto.is_cuda());
        let why = cuda_unavailable_reason().expect("a reason when CUDA is unusable");
        assert!(!why.is_empty());
        let err = Device::open(DeviceKind::Cuda, 0).unwrap_err();
        assert_eq!(err.status(), rateclust::Status::Device, "{err}");
    } else {
        assert!(auto.is_cuda(), "auto should pick CUDA when a device is present");
        let err = Device::open(DeviceKind::Cuda, 999).unwrap_err();
        assert_eq!(err.status(), rateclust::Status::Device);
    }
}

#[test]
fn device_kind_parses_cli_names() {
    assert_eq!(DeviceKind::parse("CPU").unwrap(), DeviceKind::Cpu);
    assert_eq!(DeviceKind::parse("cuda").unwrap(), DeviceKind::Cuda);
    assert!(DeviceKind::parse("tpu").is_err());
}

/// The process's GPU (C `rateclust_set_gpu`, CLI `--device cuda:N`): an ordinal beyond the usable count is a
/// device error naming the count, through the Rust API, the C export and the CLI; an existing one is taken.
#[test]
fn choosing_a_gpu_that_does_not_exist_is_a_clear_error() {
    use rateclust::device::{default_gpu, set_default_gpu};
    let count = cuda_device_count();
    let err = set_default_gpu(count).unwrap_err();
    assert_eq!(err.status(), rateclust::Status::Device, "{err}");
    assert!(err.to_string().contains(&format!("{count} usable CUDA device")), "{err}");
    assert_eq!(rateclust::ffi::core::rateclust_set_gpu(count as u32), rateclust::Status::Device);
    let msg = unsafe { std::ffi::CStr::from_ptr(rateclust::ffi::rateclust_last_error()) }.to_string_lossy().into_owned();
    assert!(msg.contains(&format!("GPU {count} does not exist")), "{msg}");
    if count > 0 {
        set_default_gpu(count - 1).unwrap();
        assert_eq!(default_gpu(), count - 1);
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rateclust"))
        .args(["fit", "--features", "missing.npy", "--k", "2", "--out", "m.safetensors", "--device"])
        .arg(format!("cuda:{count}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(&format!("GPU {count} does not exist")), "{stderr}");
}
