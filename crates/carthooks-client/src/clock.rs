//! Clocks: where the clients read the time the sans-IO driver is handed
//! ([`Now`]: an `Instant` for deadlines and waits, Unix seconds for token
//! expiry). Injectable, so that expiry rules are tested without sleeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use carthooks_core::Now;

/// A source of wall-clock time in Unix seconds. Injectable so that expiry rules can
/// be tested without sleeping.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;

    /// Seconds since the Unix epoch at `instant`, a monotonic reading the
    /// caller took just now: a clock that counts from an instant of its own
    /// ([`MonotonicClock`]) answers without reading the time again. Default:
    /// [`now`](Self::now).
    fn unix_at(&self, instant: Instant) -> u64 {
        let _ = instant;
        self.now()
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// The clients' default clock: the wall-clock time when it was made, advanced by
/// the monotonic clock. Reading it costs about a third less than
/// [`SystemClock`] (no epoch subtraction), and a wall-clock step (an NTP jump)
/// cannot make tokens look expired or fresh all of a sudden.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    base_unix: u64,
    base: Instant,
}

impl MonotonicClock {
    /// A clock reading the system time now and counting on from there.
    pub fn new() -> Self {
        Self {
            base_unix: SystemClock.now(),
            base: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> u64 {
        self.base_unix + self.base.elapsed().as_secs()
    }

    fn unix_at(&self, instant: Instant) -> u64 {
        self.base_unix + instant.saturating_duration_since(self.base).as_secs()
    }
}

/// A clock that moves only when told to: for tests.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    /// A clock reading `now`.
    pub fn new(now: u64) -> Self {
        Self(std::sync::atomic::AtomicU64::new(now))
    }

    /// A clock reading the system time now, then moving only when told.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(by.as_secs(), std::sync::atomic::Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, now: u64) {
        self.0.store(now, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl<C: Clock> Clock for Arc<C> {
    fn now(&self) -> u64 {
        (**self).now()
    }

    fn unix_at(&self, instant: Instant) -> u64 {
        (**self).unix_at(instant)
    }
}

/// The driver's time at `instant` by `clock`.
pub(crate) fn now_by(clock: &dyn Clock, instant: Instant) -> Now {
    Now::new(instant, clock.unix_at(instant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_read_unix_seconds() {
        let c = ManualClock::new(10);
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now(), 15);
        assert_eq!(c.unix_at(Instant::now()), 15);
        assert!(SystemClock.now() > 1_600_000_000);
        let m = MonotonicClock::new();
        assert!(m.now().abs_diff(SystemClock.now()) <= 1);
        let later = Instant::now() + Duration::from_secs(120);
        assert_eq!(m.unix_at(later), m.now() + 120);
        let now = now_by(&m, later);
        assert_eq!((now.instant, now.unix), (later, m.now() + 120));
    }
}
