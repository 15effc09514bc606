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

/// Passes reports on to `inner` and adds up the wall time per stage: the time from one report to the next
/// is counted to the later report's stage, or to "other" when that report opens its stage (done = 0), so
/// work between stages (input normalisation, principal directions) is not charged to the next one.
pub struct StageTimes<'a> {
    inner: &'a mut dyn Progress,
    last: std::time::Instant,
    /// (stage, seconds) in order of first appearance.
    pub times: Vec<(String, f64)>,
}

impl<'a> StageTimes<'a> {
    pub fn new(inner: &'a mut dyn Progress) -> Self {
        StageTimes { inner, last: std::time::Instant::now(), times: Vec::new() }
    }

    /// Charges the time since the last report to "other" (call once the timed work has returned).
    pub fn finish(&mut self) {
        self.charge("other");
    }

    fn charge(&mut self, stage: &str) {
        let now = std::time::Instant::now();
        let secs = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        match self.times.iter_mut().find(|(s, _)| s == stage) {
            Some((_, t)) => *t += secs,
            None => self.times.push((stage.to_string(), secs)),
        }
    }
}

impl Progress for StageTimes<'_> {
    fn report(&mut self, stage: &str, done: u64, total: u64) -> bool {
        self.charge(if done == 0 { "other" } else { stage });
        self.inner.report(stage, done, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_times_charge_the_reporting_stage() {
        let mut inner = NoProgress;
        let mut t = StageTimes::new(&mut inner);
        std::thread::sleep(std::time::Duration::from_millis(20));
        t.report("a", 0, 2);
        std::thread::sleep(std::time::Duration::from_millis(30));
        t.report("a", 1, 2);
        t.report("a", 2, 2);
        t.finish();
        let names: Vec<&str> = t.times.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["other", "a"]);
        assert!(t.times[0].1 >= 0.02 && t.times[1].1 >= 0.03, "{:?}", t.times);
    }
}
