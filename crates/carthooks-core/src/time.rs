//! The time the driver is handed: core reads no clock.

use std::time::Instant;

/// One moment, as the I/O side read it: the monotonic [`Instant`] (deadlines,
/// waits, backoff) and Unix seconds (token expiry, HTTP-dates in
/// `Retry-After`). Every input of the [driver](crate::Call) carries one, so a
/// test replays a whole run by handing in made-up moments.
///
/// ```
/// use std::time::{Duration, Instant};
/// let t0 = carthooks_core::Now::new(Instant::now(), 1_700_000_000);
/// let later = t0.after(Duration::from_secs(90));
/// assert_eq!(later.unix, 1_700_000_090);
/// assert_eq!(later.instant - t0.instant, Duration::from_secs(90));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The monotonic reading.
    pub instant: Instant,
    /// Seconds since the Unix epoch at that instant.
    pub unix: u64,
}

impl Now {
    /// The moment `instant`, at `unix` seconds.
    pub fn new(instant: Instant, unix: u64) -> Self {
        Self { instant, unix }
    }

    /// The moment `d` later (both readings advanced; Unix time by whole seconds
    /// of `d`). For tests that move time by hand.
    pub fn after(self, d: std::time::Duration) -> Self {
        Self {
            instant: self.instant + d,
            unix: self.unix.saturating_add(d.as_secs()),
        }
    }
}
