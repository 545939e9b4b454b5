//! Self-fencing: when a runner can no longer prove its lease is alive it stops its job itself.
//!
//! The rule (docs/RELIABILITY.md, "Partition fencing"): a lease is valid for `lease_seconds`
//! counted from the moment the push that wrote it was *sent*, measured on this machine's
//! monotonic clock. A renewal that fails (no answer, network cut) extends nothing, so the
//! runner must assume its lease lapses at that instant and stop the job `margin` before it.
//! Another runner takes a lease over only after it has watched the same claim tip, unchanged,
//! for the lease's whole duration on its own monotonic clock (see `lifecycle`), which starts
//! after the holder sent that push: so the holder's stop begins at least `margin` before any
//! re-claim, and two runners overlap for at most `max(0, stop ladder - margin)` plus the drift
//! between two monotonic clocks over one lease. Wall-clock offsets between Macs do not enter.

use std::time::{Duration, Instant};

/// Longest single network call made while a job runs, when the lease is far from lapsing.
const USUAL_CALL_LIMIT: Duration = Duration::from_secs(120);
/// Shortest network call worth trying (a push takes at least this long on a loaded machine).
const SHORTEST_CALL: Duration = Duration::from_millis(300);

/// The lease as this runner must assume it stands, on its own monotonic clock.
#[derive(Debug, Clone)]
pub struct LeaseClock {
    lease: Duration,
    margin: Duration,
    /// When the lease lapses unless renewed: the send time of the last accepted push + lease.
    valid_until: Instant,
    /// Since when renewals have been failing (transport errors), if they are.
    failing_since: Option<Instant>,
}

/// Why a job must stop now.
#[derive(Debug, Clone, PartialEq)]
pub struct Fenced {
    /// Seconds the renewals had been failing.
    pub failing_for: f64,
    /// Seconds left before the lease lapses (about `margin`).
    pub lapses_in: f64,
}

impl LeaseClock {
    /// A lease written by a push sent at `sent_at`.
    pub fn new(lease_seconds: f64, margin: Duration, sent_at: Instant) -> Self {
        let lease = Duration::from_secs_f64(lease_seconds.max(0.0));
        LeaseClock {
            lease,
            margin: margin.min(lease / 2),
            valid_until: sent_at + lease,
            failing_since: None,
        }
    }

    /// A renewal sent at `sent_at` was accepted.
    pub fn renewed(&mut self, sent_at: Instant) {
        self.valid_until = self.valid_until.max(sent_at + self.lease);
        self.failing_since = None;
    }

    /// A renewal attempted at `at` got no answer (transport error or timeout).
    pub fn renewal_failed(&mut self, at: Instant) {
        self.failing_since.get_or_insert(at);
    }

    /// When the job must start stopping.
    pub fn fence_at(&self) -> Instant {
        self.valid_until
            .checked_sub(self.margin)
            .unwrap_or(self.valid_until)
    }

    /// `Some` when the job must stop now: the lease can no longer be shown to be ours for
    /// longer than the margin.
    pub fn must_stop(&self, now: Instant) -> Option<Fenced> {
        (now >= self.fence_at()).then(|| Fenced {
            failing_for: self
                .failing_since
                .map(|s| now.saturating_duration_since(s).as_secs_f64())
                .unwrap_or(0.0),
            lapses_in: self
                .valid_until
                .saturating_duration_since(now)
                .as_secs_f64(),
        })
    }

    /// How long a network call made now may take: it must return before the fence.
    pub fn call_limit(&self, now: Instant) -> Duration {
        self.fence_at()
            .saturating_duration_since(now)
            .clamp(SHORTEST_CALL, USUAL_CALL_LIMIT)
    }

    pub fn failing(&self) -> bool {
        self.failing_since.is_some()
    }
}

/// The fencing margin for a runner: room for the whole stop ladder (SIGINT, grace, SIGTERM,
/// grace, SIGKILL) plus two ticks, capped at a quarter of the lease so that a healthy
/// runner's heartbeats always land well before it.
pub fn margin(lease_seconds: f64, kill_grace_seconds: f64, tick: Duration) -> Duration {
    let ladder = 2.0 * kill_grace_seconds.max(0.0) + 2.0 * tick.as_secs_f64() + 0.5;
    Duration::from_secs_f64(ladder.min(lease_seconds.max(0.0) / 4.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_healthy_lease_never_fences_and_a_cut_one_fences_before_it_lapses() {
        let t0 = Instant::now();
        let mut clock = LeaseClock::new(8.0, secs(2.0), t0);
        for beat in 1..20 {
            let at = t0 + secs(f64::from(beat));
            assert_eq!(clock.must_stop(at), None, "beat {beat}");
            clock.renewed(at);
        }
        // The link goes down after the renewal sent at t0+19 s: nothing renews any more.
        let last = t0 + secs(19.0);
        for k in 1..6 {
            clock.renewal_failed(last + secs(f64::from(k)));
            assert_eq!(clock.must_stop(last + secs(f64::from(k))), None);
        }
        let fenced = clock.must_stop(last + secs(6.0)).expect("fenced at 6 s");
        assert!((fenced.lapses_in - 2.0).abs() < 1e-6, "{fenced:?}");
        assert!((fenced.failing_for - 5.0).abs() < 1e-6, "{fenced:?}");
        assert!(clock.failing());
    }

    #[test]
    fn a_slow_accepted_renewal_counts_from_when_it_was_sent() {
        let t0 = Instant::now();
        let mut clock = LeaseClock::new(4.0, secs(1.0), t0);
        // Sent at t0+1, answered 2.5 s later: valid until t0+5, fence at t0+4.
        clock.renewed(t0 + secs(1.0));
        assert_eq!(clock.must_stop(t0 + secs(3.9)), None);
        assert!(clock.must_stop(t0 + secs(4.0)).is_some());
        // An older send time never shortens the lease.
        clock.renewed(t0);
        assert_eq!(clock.must_stop(t0 + secs(3.9)), None);
    }

    #[test]
    fn network_calls_end_before_the_fence_and_the_margin_fits_the_lease() {
        let t0 = Instant::now();
        let clock = LeaseClock::new(10.0, secs(3.0), t0);
        assert_eq!(clock.call_limit(t0), secs(7.0));
        assert_eq!(clock.call_limit(t0 + secs(6.95)), SHORTEST_CALL);
        assert_eq!(
            LeaseClock::new(600.0, secs(1.0), t0).call_limit(t0),
            USUAL_CALL_LIMIT
        );
        // A margin larger than half the lease is capped.
        let tiny = LeaseClock::new(2.0, secs(5.0), t0);
        assert!(tiny.must_stop(t0 + secs(0.9)).is_none());
        assert!(tiny.must_stop(t0 + secs(1.0)).is_some());
        assert_eq!(margin(120.0, 5.0, secs(1.0)), secs(12.5));
        assert_eq!(margin(4.0, 5.0, secs(0.2)), secs(1.0));
    }
}
