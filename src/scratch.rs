//! Reusable workspaces, so that steady-state calls (a media pipeline embedding and labelling one frame
//! after another) allocate nothing once their buffers have grown.
//!
//! An engine object (a CLIP model, a clusterer) keeps a [`ScratchPool`]: each call takes a workspace from
//! it (or makes a new one when none is free: concurrent calls each get their own), fills its buffers
//! with [`grow`] or [`refill`], and puts it back when done. A cap on the bytes kept stops one large call
//! from pinning its buffers for the life of the object.

use std::sync::Mutex;

/// A workspace type a [`ScratchPool`] keeps: default-constructible, and able to say how much it holds.
pub trait Workspace: Default {
    /// Bytes its buffers hold (their capacity).
    fn bytes(&self) -> usize;
}

/// Free workspaces of one object.
pub struct ScratchPool<T> {
    free: Mutex<Vec<T>>,
    max_bytes: usize,
}

impl<T: Workspace> ScratchPool<T> {
    /// An empty pool that keeps at most `max_bytes` of workspaces between calls.
    pub const fn new(max_bytes: usize) -> Self {
        ScratchPool { free: Mutex::new(Vec::new()), max_bytes }
    }

    /// Runs `f` with a workspace from the pool (a new one if none is free), then returns it to the pool,
    /// unless the pool would then hold more than its cap (then it is freed, as without a pool).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let taken = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut ws = taken.unwrap_or_default();
        let result = f(&mut ws);
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.iter().map(T::bytes).sum::<usize>() + ws.bytes() <= self.max_bytes {
            free.push(ws);
        }
        result
    }
}

/// A copy of an object starts with an empty pool of the same cap: workspaces are not state.
impl<T: Workspace> Clone for ScratchPool<T> {
    fn clone(&self) -> Self {
        ScratchPool::new(self.max_bytes)
    }
}

impl<T> std::fmt::Debug for ScratchPool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScratchPool {{ max_bytes: {} }}", self.max_bytes)
    }
}

/// Makes `v` at least `len` long (new elements zero); never shrinks, so a buffer that has grown to a
/// call's size is reused as it is. Callers use `v[..len]`.
pub fn grow<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}

/// `v[..len]` after [`grow`], with every element reset to zero.
pub fn refill<T: Copy + Default>(v: &mut Vec<T>, len: usize) -> &mut [T] {
    grow(v, len);
    let s = &mut v[..len];
    s.fill(T::default());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Buf(Vec<u8>);
    impl Workspace for Buf {
        fn bytes(&self) -> usize {
            self.0.capacity()
        }
    }

    /// A workspace comes back to the next call with its buffers; one over the cap is dropped.
    #[test]
    fn workspaces_are_reused_up_to_the_cap() {
        let pool = ScratchPool::<Buf>::new(100);
        pool.with(|b| grow(&mut b.0, 60));
        assert_eq!(pool.with(|b| b.0.len()), 60, "the grown buffer is reused");
        pool.with(|b| grow(&mut b.0, 200));
        assert_eq!(pool.with(|b| b.0.len()), 0, "a workspace over the cap is not kept");
    }

    #[test]
    fn refill_zeroes_the_prefix_and_keeps_the_capacity() {
        let mut v = vec![7u32; 10];
        assert_eq!(refill(&mut v, 4), &[0, 0, 0, 0]);
        assert_eq!(v.len(), 10);
        assert_eq!(v[4], 7);
    }
}
