//! How fast an import may go: a sans-IO pacer every request of a bulk job asks
//! before it is sent, and tells how it ended.
//!
//! Three limits, the tightest wins:
//!
//! - **Concurrency** (AIMD): at most `window` requests in flight, between 1
//!   and the configured maximum. Each success adds `1 / window` (one more
//!   request per window of successes); a throttle halves it.
//! - **Rate**: never more than `per_second` requests in any one-second
//!   window — a sliding log of the last sends, so a burst after an idle
//!   moment is allowed (servers' token buckets allow it too), and no window
//!   of one second ever holds more. The limit is the configured `rate_limit`
//!   if any, and, once the server has throttled, the learned one: 90 % of
//!   the sends of the second before the throttle, growing by 2 % (at least
//!   one request) for each second without one, never above the configured
//!   limit; a later throttle lowers it to 90 % of what went through (at most
//!   halving it). A first throttle after fewer than 10 sends in the second
//!   teaches no rate. One burst of throttles lowers it once: answers to
//!   requests sent before the last decrease do not lower it again.
//! - **Pause**: a 429 or 503 stops every sender until its `Retry-After` has
//!   passed (when it gave none: 200 ms, doubling while throttles go on, at
//!   most 5 s).
//!
//! Time comes in as `now` on every input; nothing here reads a clock, so the
//! tests replay a run exactly.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(1);
const DECREASE: f64 = 0.9;
const INCREASE: f64 = 0.02;
/// Sends in the second before a first throttle below which no rate is learned
/// from it (it pauses and narrows the window only).
const MIN_SAMPLE: f64 = 10.0;
const FIRST_PAUSE: Duration = Duration::from_millis(200);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// May a request go now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Yes: it is counted as sent (and in flight) from `now`.
    Go,
    /// Not before this instant (a pause or the rate).
    Until(Instant),
    /// Not until a request in flight ends (the concurrency window is full).
    Busy,
}

/// How a request ended, as far as pacing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Answered (successfully or not) without a sign of overload.
    Done,
    /// 429 or 503: the server asks to slow down, for `retry_after` if it said.
    Throttled { retry_after: Option<Duration> },
}

/// Figures of a run, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaceStats {
    /// Requests sent.
    pub requests: u64,
    /// Requests the server throttled (429 or 503).
    pub throttled: u64,
    /// Times the learned rate was lowered.
    pub decreases: u64,
}

/// A rate limit shared with other processes (one account's limit, many
/// importers): asked once for each request a bulk job is about to send,
/// after the job's own pacing let it go. `carthooks_redis::RedisRateLimit`
/// is one (GCRA on Redis' clock).
///
/// `Ok(None)`: a permit was taken, send. `Ok(Some(wait))`: none is free for
/// `wait`; nothing was taken. `Err`: the limit could not be asked; the job
/// goes on at its own pace (still slowing down on 429s) and counts it
/// ([`ImportStats::shared_limit_failures`](super::ImportStats)).
///
/// Called on the job's own thread or task, once a request: keep it short
/// (a Redis round trip is).
pub trait SharedRateLimit: Send + Sync {
    /// Takes one permit now, or says how long until one is free.
    fn try_acquire(&self) -> std::io::Result<Option<Duration>>;
}

#[derive(Debug)]
pub(crate) struct Pace {
    max_window: usize,
    window: f64,
    in_flight: usize,
    configured: Option<u32>,
    learned: Option<f64>,
    last_growth: Option<Instant>,
    sends: VecDeque<Instant>,
    paused_until: Option<Instant>,
    pause: Duration,
    last_decrease: Option<Instant>,
    stats: PaceStats,
}

impl Pace {
    /// At most `concurrency` in flight (at least 1) and, if given,
    /// `rate_limit` requests a second (at least 1).
    pub(crate) fn new(concurrency: usize, rate_limit: Option<u32>) -> Self {
        let max_window = concurrency.max(1);
        Self {
            max_window,
            window: max_window as f64,
            in_flight: 0,
            configured: rate_limit.map(|r| r.max(1)),
            learned: None,
            last_growth: None,
            sends: VecDeque::new(),
            paused_until: None,
            pause: FIRST_PAUSE,
            last_decrease: None,
            stats: PaceStats::default(),
        }
    }

    /// The requests a second allowed now (`None`: no limit).
    pub(crate) fn per_second(&self) -> Option<u32> {
        let learned = self.learned.map(|r| r.floor().max(1.0) as u32);
        match (self.configured, learned) {
            (Some(c), Some(l)) => Some(c.min(l)),
            (c, l) => c.or(l),
        }
    }

    /// Requests in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The concurrency window now (whole requests).
    pub(crate) fn window(&self) -> usize {
        (self.window.floor() as usize).clamp(1, self.max_window)
    }

    pub(crate) fn stats(&self) -> PaceStats {
        self.stats
    }

    /// Asks to send one request at `now`; on [`Admit::Go`] it is counted.
    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        self.grow(now);
        if let Some(until) = self.paused_until {
            if now < until {
                return Admit::Until(until);
            }
            self.paused_until = None;
        }
        if self.in_flight >= self.window() {
            return Admit::Busy;
        }
        while self
            .sends
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW)
        {
            self.sends.pop_front();
        }
        if let Some(limit) = self.per_second()
            && self.sends.len() >= limit as usize
        {
            // The oldest sends that must leave the window before one more fits.
            let over = self.sends.len() + 1 - limit as usize;
            return Admit::Until(self.sends[over - 1] + WINDOW);
        }
        self.sends.push_back(now);
        self.in_flight += 1;
        self.stats.requests += 1;
        Admit::Go
    }

    /// Takes back the last [`Admit::Go`]: the request was not sent after
    /// all (a shared limit said to wait).
    pub(crate) fn unsend(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.sends.pop_back();
        self.stats.requests = self.stats.requests.saturating_sub(1);
    }

    /// A request sent at `sent` ended at `now`.
    pub(crate) fn ended(&mut self, sent: Instant, ended: Ended, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match ended {
            Ended::Done => {
                self.window = (self.window + 1.0 / self.window).min(self.max_window as f64);
                self.pause = FIRST_PAUSE;
            }
            Ended::Throttled { retry_after } => {
                self.stats.throttled += 1;
                let wait = retry_after.unwrap_or(self.pause);
                let until = now + wait;
                self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
                if retry_after.is_none() {
                    self.pause = (self.pause * 2).min(LONGEST_PAUSE);
                }
                // One decrease per burst of throttles: a request sent before the
                // last decrease reports on the old rate.
                if self.last_decrease.is_some_and(|d| sent < d) {
                    return;
                }
                self.last_decrease = Some(now);
                self.last_growth = Some(now);
                self.stats.decreases += 1;
                self.window = (self.window / 2.0).max(1.0);
                let recent = self
                    .sends
                    .iter()
                    .filter(|&&t| now.saturating_duration_since(t) < WINDOW)
                    .count() as f64;
                self.learned = match self.learned {
                    // Fewer sends than that say little about a rate.
                    None if recent < MIN_SAMPLE => None,
                    None => Some(recent * DECREASE),
                    // At most halved at once, whatever the sample.
                    Some(l) => Some((recent.max(l * 0.5).min(l) * DECREASE).max(1.0)),
                };
            }
        }
    }

    /// The learned rate grows for each whole second without a throttle.
    fn grow(&mut self, now: Instant) {
        let (Some(rate), Some(since)) = (self.learned, self.last_growth) else {
            return;
        };
        let seconds = now.saturating_duration_since(since).as_secs();
        if seconds == 0 {
            return;
        }
        let mut rate = rate;
        for _ in 0..seconds.min(1_000) {
            rate += (rate * INCREASE).max(1.0);
        }
        if let Some(c) = self.configured {
            rate = rate.min(f64::from(c));
        }
        self.learned = Some(rate);
        self.last_growth = Some(since + Duration::from_secs(seconds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// A configured rate: no one-second window ever holds more, whatever asks.
    #[test]
    fn no_second_holds_more_than_the_configured_rate() {
        let t0 = Instant::now();
        let mut pace = Pace::new(64, Some(10));
        let mut sent = Vec::new();
        let mut now = t0;
        while sent.len() < 45 {
            match pace.admit(now) {
                Admit::Go => {
                    sent.push(now);
                    pace.ended(now, Ended::Done, now);
                }
                Admit::Until(t) => now = t,
                Admit::Busy => unreachable!("64 in flight allowed"),
            }
        }
        for (i, &t) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().filter(|&&s| s < t + WINDOW).count();
            assert!(
                in_window <= 10,
                "{in_window} sends in the second from send {i}"
            );
        }
        // And the rate is used: 45 sends take a little over 4 seconds.
        let span = sent[44] - sent[0];
        assert!(
            span >= Duration::from_secs(4) && span < Duration::from_millis(4_100),
            "{span:?}"
        );
    }

    /// The window fills, then waits for a request to end.
    #[test]
    fn the_concurrency_window_bounds_what_is_in_flight() {
        let t0 = Instant::now();
        let mut pace = Pace::new(3, None);
        for _ in 0..3 {
            assert_eq!(pace.admit(t0), Admit::Go);
        }
        assert_eq!(pace.admit(t0), Admit::Busy);
        pace.ended(t0, Ended::Done, ms(t0, 5));
        assert_eq!(pace.admit(ms(t0, 5)), Admit::Go);
        assert_eq!(pace.in_flight(), 3);
    }

    /// A throttle pauses every sender for its Retry-After, halves the window
    /// and sets the rate below what went through; the throttles of the same
    /// burst lower it only once; then it grows back.
    #[test]
    fn a_throttle_pauses_everyone_and_lowers_the_rate_once_per_burst() {
        let t0 = Instant::now();
        let mut pace = Pace::new(8, None);
        // 100 requests in the first second, all answered.
        for i in 0..100 {
            let at = ms(t0, i * 9);
            assert_eq!(pace.admit(at), Admit::Go);
            pace.ended(at, Ended::Done, at);
        }
        // 4 in flight, all throttled.
        let sent = ms(t0, 900);
        for _ in 0..4 {
            assert_eq!(pace.admit(sent), Admit::Go);
        }
        let throttled = Ended::Throttled {
            retry_after: Some(Duration::from_secs(1)),
        };
        for _ in 0..4 {
            pace.ended(sent, throttled, ms(t0, 910));
        }
        assert_eq!(pace.stats().throttled, 4);
        assert_eq!(pace.stats().decreases, 1, "one burst, one decrease");
        assert_eq!(pace.window(), 4);
        // 104 sends were in the second before: 90 % of them.
        assert_eq!(pace.per_second(), Some(93));
        assert_eq!(pace.admit(ms(t0, 1_500)), Admit::Until(ms(t0, 1_910)));
        // Each whole second without a throttle: 2 % more (93.6, 95.5, 97.4).
        assert_eq!(pace.admit(ms(t0, 1_910)), Admit::Go);
        assert_eq!(pace.per_second(), Some(95));
        pace.ended(ms(t0, 1_910), Ended::Done, ms(t0, 1_911));
        let _ = pace.admit(ms(t0, 2_915));
        assert_eq!(pace.per_second(), Some(97));
    }

    /// Without Retry-After the pause starts at 200 ms and doubles while
    /// throttles go on; a success resets it.
    #[test]
    fn without_retry_after_the_pause_backs_off() {
        let t0 = Instant::now();
        let mut pace = Pace::new(1, None);
        let mut now = t0;
        let mut pauses = Vec::new();
        for _ in 0..3 {
            assert_eq!(pace.admit(now), Admit::Go);
            pace.ended(now, Ended::Throttled { retry_after: None }, now);
            let Admit::Until(until) = pace.admit(now) else {
                panic!("paused")
            };
            pauses.push(until - now);
            now = until;
        }
        assert_eq!(pauses, [200, 400, 800].map(Duration::from_millis).to_vec());
        assert_eq!(pace.admit(now), Admit::Go);
        pace.ended(now, Ended::Done, now);
        assert_eq!(pace.admit(now), Admit::Go);
        pace.ended(now, Ended::Throttled { retry_after: None }, now);
        assert_eq!(pace.admit(now), Admit::Until(now + FIRST_PAUSE));
    }
}
