//! Count-based sliding window of the most recent call outcomes.

/// Ring buffer of the last `capacity` outcomes with a running failure count (O(1) push).
#[derive(Debug)]
pub(crate) struct OutcomeWindow {
    failed: Vec<bool>,
    next: usize,
    len: u32,
    failures: u32,
}

impl OutcomeWindow {
    /// An empty window; capacity is validated ≥ 1 by the config, but 0 is tolerated as 1.
    pub(crate) fn new(capacity: u32) -> Self {
        let cap = usize::try_from(capacity.max(1)).unwrap_or(1);
        Self {
            failed: vec![false; cap],
            next: 0,
            len: 0,
            failures: 0,
        }
    }

    /// Adds one outcome, evicting the oldest when full.
    pub(crate) fn push(&mut self, failure: bool) {
        let cap = self.failed.len();
        if usize::try_from(self.len).unwrap_or(usize::MAX) == cap {
            if self.failed[self.next] {
                self.failures -= 1;
            }
        } else {
            self.len += 1;
        }
        self.failed[self.next] = failure;
        if failure {
            self.failures += 1;
        }
        self.next = (self.next + 1) % cap;
    }

    /// Forgets everything (used when the breaker closes).
    pub(crate) fn reset(&mut self) {
        self.failed.iter_mut().for_each(|f| *f = false);
        self.next = 0;
        self.len = 0;
        self.failures = 0;
    }

    /// Calls currently in the window.
    pub(crate) fn calls(&self) -> u32 {
        self.len
    }

    /// Failures currently in the window.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Failure rate in percent; 0 when empty.
    pub(crate) fn failure_rate(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        f64::from(self.failures) * 100.0 / f64::from(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_outcome_falls_out() {
        let mut w = OutcomeWindow::new(3);
        w.push(true);
        w.push(false);
        w.push(true);
        assert_eq!((w.calls(), w.failures()), (3, 2));
        // Evicts the first failure.
        w.push(false);
        assert_eq!((w.calls(), w.failures()), (3, 1));
        // Evicts the success.
        w.push(true);
        assert_eq!((w.calls(), w.failures()), (3, 2));
        assert!((w.failure_rate() - 66.666_666).abs() < 0.001);
        w.reset();
        assert_eq!((w.calls(), w.failures(), w.failure_rate()), (0, 0, 0.0));
    }

    #[test]
    fn window_of_one_holds_only_last() {
        let mut w = OutcomeWindow::new(1);
        w.push(true);
        w.push(false);
        assert_eq!((w.calls(), w.failures()), (1, 0));
        w.push(true);
        assert_eq!((w.calls(), w.failures()), (1, 1));
    }
}
