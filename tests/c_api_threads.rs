//! `rateclust_set_cpu_threads`: sets the pool before the first computing call; afterwards only the running
//! count is accepted, and another is a clear error. Alone in its test binary: the pool is per process.

use rateclust::ffi::core::{rateclust_cpu_threads, rateclust_set_cpu_threads};
use rateclust::Status;

#[test]
fn set_threads_before_work_then_only_the_running_count() {
    assert_eq!(rateclust_set_cpu_threads(3), Status::Ok);
    let mut n = 0u32;
    assert_eq!(rateclust_cpu_threads(&mut n), Status::Ok);
    assert_eq!(n, 3);
    assert_eq!(rateclust_set_cpu_threads(3), Status::Ok);
    assert_eq!(rateclust_set_cpu_threads(5), Status::InvalidArgument);
    let msg = unsafe { std::ffi::CStr::from_ptr(rateclust::ffi::rateclust_last_error()) }.to_string_lossy().to_string();
    assert!(msg.contains("already runs 3 threads"), "{msg}");
}
