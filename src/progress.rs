//! Progress reporting and cancellation for long calls (training, embedding many images).

/// Receives progress; returning `false` asks the running call to stop with `Error::Cancelled`.
pub trait Progress {
    fn report(&mut self, stage: &str, done: u64, total: u64) -> bool;
}

/// Ignores progress and never cancels.
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&mut self, _stage: &str, _done: u64, _total: u64) -> bool {
        true
    }
}

impl<F: FnMut(&str, u64, u64) -> bool> Progress for F {
    fn report(&mut self, stage: &str, done: u64, total: u64) -> bool {
        self(stage, done, total)
    }
}

/// Reports and turns a cancel request into `Err(Error::Cancelled)`.
pub fn report(p: &mut dyn Progress, stage: &str, done: u64, total: u64) -> crate::Result<()> {
    if p.report(stage, done, total) {
        Ok(())
    } else {
        Err(crate::Error::Cancelled)
    }
}
