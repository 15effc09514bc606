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
