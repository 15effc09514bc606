//! The C ABI. Conventions (docs/design.md §3), followed by every export in this folder:
//!
//! - every symbol starts with `rateclust_`; every function returns `rateclust_status`;
//! - the message of the last failed call on the calling thread is kept for `rateclust_last_error()`;
//! - no panic crosses the boundary: each body runs inside [`guard`], which catches it and returns
//!   `RATECLUST_STATUS_INTERNAL`;
//! - every pointer is checked for NULL and every length against what the caller said it passed
//!   (helpers below), so that a bad call yields a status and a message, never undefined behaviour
//!   we could have detected;
//! - handles are opaque and freed with their `*_free`, which accepts NULL; buffers the library returns
//!   say in the header who frees them.

pub mod clip;
pub mod cluster;
pub mod core;
pub mod enums;
pub mod mirror;
pub mod label;
pub mod rate;
pub mod report;

use crate::error::{Error, Result};
use crate::ffi::enums::Status;
use std::cell::RefCell;
use crate::progress::Progress;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A C `bool` as the library reads it: one byte, any non-zero value true. Rust's `bool` may only hold 0 or 1,
/// so a caller's struct field or argument holding 2 (uninitialised memory, a `char` flag) would be undefined
/// behaviour if read as `bool`; this type makes every byte value defined. The header still says `bool`
/// (cbindgen.toml renames it), which has the same size and ABI.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CBool(pub u8);

impl CBool {
    pub fn get(self) -> bool {
        self.0 != 0
    }
}

impl From<bool> for CBool {
    fn from(b: bool) -> Self {
        CBool(b as u8)
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(msg: &str) {
    if msg.is_empty() {
        // The common case, a successful call: no allocation when the message is already empty.
        LAST_ERROR.with(|e| {
            let mut e = e.borrow_mut();
            if !e.as_bytes().is_empty() {
                *e = CString::default();
            }
        });
        return;
    }
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

thread_local! {
    /// Depth of [`guard`] calls on this thread: panics inside one are caught and reported as a status, so the
    /// panic hook stays quiet for them (and records where they happened).
    static IN_GUARD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    static PANIC_LOCATION: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Installs, once per process, a panic hook that is silent for panics [`guard`] will catch: without it the
/// default hook prints the message and a backtrace on the host process's stderr although the caller gets a
/// clean `RATECLUST_STATUS_INTERNAL`. Panics anywhere else (a Rust host's own code, other threads) still
/// go to the hook that was installed before.
fn install_quiet_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_GUARD.with(|g| g.get()) > 0 {
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                PANIC_LOCATION.with(|p| *p.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs an export's body: catches panics, records the error message, returns the status code.
pub(crate) fn guard(body: impl FnOnce() -> Result<()>) -> Status {
    install_quiet_panic_hook();
    IN_GUARD.with(|g| g.set(g.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(body));
    IN_GUARD.with(|g| g.set(g.get() - 1));
    match result {
        Ok(Ok(())) => {
            set_last_error("");
            Status::Ok
        }
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            e.status()
        }
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            let at = PANIC_LOCATION.with(|p| std::mem::take(&mut *p.borrow_mut()));
            set_last_error(&format!("internal error (panic caught at the C boundary, {at}): {what}"));
            Status::Internal
        }
    }
}

/// The message of the last failed call on this thread ("" if the last call succeeded). The pointer stays
/// valid until the next rateclust call on the same thread; the library owns it (do not free).
#[no_mangle]
pub extern "C" fn rateclust_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// `p` as a reference, or an error naming the argument if it is NULL.
pub(crate) fn arg_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T> {
    // SAFETY: the caller promises a non-NULL pointer is valid for reads of T (header contract).
    unsafe { p.as_ref() }.ok_or_else(|| Error::InvalidArgument(format!("`{name}` is NULL")))
}

/// `p` as a mutable reference, or an error naming the argument if it is NULL.
pub(crate) fn arg_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T> {
    // SAFETY: as `arg_ref`, for writes.
    unsafe { p.as_mut() }.ok_or_else(|| Error::InvalidArgument(format!("`{name}` is NULL")))
}

/// Writes `v` to an optional out-parameter: `*p = v`, or nothing if `p` is NULL.
pub(crate) fn write_opt<T>(p: *mut T, v: T) {
    // SAFETY: as `arg_mut`: a non-NULL pointer is valid for writes of T (header contract).
    if let Some(o) = unsafe { p.as_mut() } {
        *o = v;
    }
}

/// A caller buffer of `len` elements as a slice. NULL is an error unless `len == 0`.
pub(crate) fn arg_slice<'a, T>(p: *const T, len: usize, name: impl std::fmt::Display) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::InvalidArgument(format!("`{name}` is NULL but {len} elements were expected")));
    }
    if len.checked_mul(std::mem::size_of::<T>()).is_none_or(|b| b > isize::MAX as usize) {
        return Err(Error::InvalidArgument(format!("`{name}`: {len} elements is too large")));
    }
    // SAFETY: non-NULL, and the caller promises `len` readable elements (header contract).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A caller output buffer of `len` elements as a mutable slice. NULL is an error unless `len == 0`.
pub(crate) fn arg_slice_mut<'a, T>(p: *mut T, len: usize, name: &str) -> Result<&'a mut [T]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(Error::InvalidArgument(format!("`{name}` is NULL but {len} elements were expected")));
    }
    if len.checked_mul(std::mem::size_of::<T>()).is_none_or(|b| b > isize::MAX as usize) {
        return Err(Error::InvalidArgument(format!("`{name}`: {len} elements is too large")));
    }
    // SAFETY: non-NULL, and the caller promises `len` writable elements (header contract).
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// A new C handle owning `value` (an opaque `rateclust_*` struct): what every create/load call writes to
/// its `*out`. [`free_handle`] takes it back.
pub(crate) fn new_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Drops a handle from [`new_handle`]; NULL is ignored, and a panic in a destructor stays on this side.
pub(crate) fn free_handle<T>(handle: *mut T) {
    if !handle.is_null() {
        // SAFETY: a non-NULL handle came from `new_handle` (`Box::into_raw`) and is freed once (header
        // contract: *_free needs the handle to itself and it is not used afterwards).
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(handle) })));
    }
}

/// A NUL-terminated UTF-8 string argument.
pub(crate) fn arg_str<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(Error::InvalidArgument(format!("`{name}` is NULL")));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| Error::InvalidArgument(format!("`{name}` is not valid UTF-8")))
}

/// A `rateclust_device_kind` value from C (checked: see [`enums`]).
pub(crate) fn device_kind(raw: u32) -> Result<crate::device::DeviceKind> {
    mirror::CValue::to_engine(raw, "device")
}

/// Progress callback for long calls (fit, embed): `stage` names the step and is valid only during the call;
/// `done` of `total` units are finished. Return 0 to continue, non-zero to cancel (the call then returns
/// `RATECLUST_STATUS_CANCELLED`). May be NULL.
#[allow(non_camel_case_types)]
pub type rateclust_progress_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, stage: *const c_char, done: u64, total: u64) -> c_int>;

/// Adapts a C progress callback and its user data to the library's [`Progress`] trait.
pub(crate) struct CProgress {
    pub f: rateclust_progress_fn,
    pub user_data: *mut c_void,
}

impl CProgress {
    /// No callback: reports go nowhere and nothing cancels.
    pub fn none() -> Self {
        CProgress { f: None, user_data: std::ptr::null_mut() }
    }
}

/// Runs `f` on a thread of the library's rayon pool (directly when the caller already is one), the caller
/// blocked until it returns; a panic in `f` resumes on the caller, inside its [`guard`].
///
/// Why: each parallel step started from a thread outside the pool enters it through rayon's injector
/// queue, which allocates a new block every 63 entries. Moved onto the pool, a call enters it once, and
/// every parallel step inside (row blocks, attention heads, `linalg::gemm`'s pieces) then runs on pool
/// threads, which allocate nothing. So a media pipeline calling from its own thread allocates one block
/// per 63 calls instead of several per call. Only for calls without a progress callback: callbacks stay on
/// the caller's thread, where C, Go, Julia and Python callers expect them.
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::join(f, || ()).0
    }
}

impl Progress for CProgress {
    fn report(&mut self, stage: &str, done: u64, total: u64) -> bool {
        let Some(f) = self.f else { return true };
        let s = CString::new(stage).unwrap_or_default();
        // SAFETY: the caller supplied this callback and user data for this purpose (header contract); `s`
        // outlives the call.
        unsafe { f(self.user_data, s.as_ptr(), done, total) == 0 }
    }
}

/// `a * b` as an element count, or an error naming what overflowed.
pub(crate) fn checked_len(a: usize, b: usize, name: &str) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| Error::InvalidArgument(format!("`{name}`: {a} × {b} overflows")))
}

/// Copies `s` into a caller buffer of `cap` bytes as a NUL-terminated string (truncating at a UTF-8
/// boundary if needed); `*needed` (if not NULL) receives the full length including the NUL.
pub(crate) fn write_c_string(s: &str, buf: *mut c_char, cap: usize, needed: *mut usize) -> Result<()> {
    write_opt(needed, s.len() + 1);
    if cap == 0 {
        return Ok(());
    }
    let out = arg_slice_mut(buf as *mut u8, cap, "buf")?;
    let mut end = s.len().min(cap - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out[end] = 0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic inside an export becomes INTERNAL with the message and its location, and the thread's next
    /// successful call clears the message.
    #[test]
    fn a_caught_panic_is_a_status_with_its_location() {
        let status = guard(|| panic!("boom {}", 7));
        assert_eq!(status, Status::Internal);
        let msg = unsafe { CStr::from_ptr(rateclust_last_error()) }.to_string_lossy().into_owned();
        assert!(msg.contains("boom 7") && msg.contains("src/ffi/mod.rs:"), "{msg}");
        assert_eq!(guard(|| Ok(())), Status::Ok);
        assert_eq!(unsafe { CStr::from_ptr(rateclust_last_error()) }.to_bytes(), b"");
    }
}
