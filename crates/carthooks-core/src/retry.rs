//! When to send again. The policy is documented on [`RetryPolicy`].

use std::time::Duration;

use crate::error::{TransportError, TransportErrorKind};
use crate::httpdate::parse_http_date;

/// How long a transport may take for this one attempt, put into the request's
/// extensions by the clients when a call has a `call_timeout`: the time left of
/// the call, never more than the configured per-exchange timeout. Transports
/// that support per-request timeouts apply it (both provided backends do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTimeout(pub std::time::Duration);

/// What kind of request an outcome belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// An API call; `idempotent` for GET, PUT, DELETE.
    Api {
        /// Sending it twice has the effect of sending it once.
        idempotent: bool,
    },
    /// A token request (a POST to the token endpoint).
    Token,
}

/// The outcome of one attempt.
#[derive(Debug, Clone, Copy)]
pub enum Attempt<'a> {
    /// The server answered.
    Answered(&'a http::Response<Vec<u8>>),
    /// The transport failed.
    Failed(&'a TransportError),
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum RetryDecision {
    /// Send again after this delay.
    RetryAfter(Duration),
    /// Keep this outcome.
    Stop,
}

/// When to send a request again, sans-IO.
///
/// [`RetryPolicy::decide`] looks at one attempt's outcome and says whether to try
/// again and after how long. The rules:
///
/// | outcome | idempotent API call (GET, PUT, DELETE) | other API call (POST) | token request |
/// |---|---|---|---|
/// | DNS or connect failure, or a timeout before sending ([`never_sent`](TransportError::never_sent)) | retry | retry | retry |
/// | TLS failure, oversized body, refused redirect, other | stop | stop | stop |
/// | timeout / connection broken / protocol error, possibly sent | retry | stop: outcome unknown | stop: outcome unknown |
/// | 429, 503 | retry | stop | retry |
/// | 502, 504 | retry | stop | stop |
/// | anything else | stop | stop | stop |
///
/// A permanent OAuth refusal (`invalid_grant`, …) is a 400/401 and never retried.
/// `Retry-After` (seconds or an HTTP-date) sets the delay; one longer than
/// `max_retry_after` is not waited for. Otherwise the delay grows exponentially
/// from `base_delay`, capped at `max_delay`, with jitter (half fixed, half random)
/// so that many clients do not retry in step. Attempts are bounded by
/// `max_attempts` (default 3, counting the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 3; 1 disables retries).
    pub max_attempts: u32,
    /// Delay before the first retry, before jitter (default 200 ms).
    pub base_delay: Duration,
    /// Longest computed delay (default 5 s).
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a longer one ends the retries (default 30 s).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Sets the attempts in all, the first included (1 disables retries).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets the delay before the first retry, before jitter.
    pub fn with_base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Sets the longest computed delay.
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets the longest `Retry-After` honoured.
    pub fn with_max_retry_after(mut self, delay: Duration) -> Self {
        self.max_retry_after = delay;
        self
    }

    /// Decides after attempt number `attempt` (1 for the first) of a `kind`
    /// request ended with `outcome`, at `now` (Unix seconds, for HTTP-dates).
    /// `jitter` is a random number in `[0, 1)`.
    pub fn decide(
        &self,
        attempt: u32,
        kind: RequestKind,
        outcome: Attempt<'_>,
        now: u64,
        jitter: f64,
    ) -> RetryDecision {
        if attempt >= self.max_attempts {
            return RetryDecision::Stop;
        }
        let retryable = match outcome {
            Attempt::Failed(e) => match e.kind() {
                TransportErrorKind::Connect | TransportErrorKind::Dns => true,
                TransportErrorKind::Timeout
                | TransportErrorKind::Io
                | TransportErrorKind::Protocol => {
                    e.never_sent() || kind == RequestKind::Api { idempotent: true }
                }
                _ => false,
            },
            Attempt::Answered(r) => matches!(
                (r.status().as_u16(), kind),
                (
                    429 | 503,
                    RequestKind::Api { idempotent: true } | RequestKind::Token
                ) | (502 | 504, RequestKind::Api { idempotent: true })
            ),
        };
        if !retryable {
            return RetryDecision::Stop;
        }
        if let Attempt::Answered(r) = outcome
            && let Some(wait) = retry_after(r, now)
        {
            return if wait <= self.max_retry_after {
                RetryDecision::RetryAfter(wait)
            } else {
                RetryDecision::Stop
            };
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.max_delay);
        let jitter = jitter.clamp(0.0, 1.0);
        RetryDecision::RetryAfter(exp.mul_f64(0.5 + 0.5 * jitter))
    }
}

/// The `Retry-After` of an answer as a delay from `now`: delta-seconds or an
/// HTTP-date (a date in the past is zero). `None` when absent or unreadable.
pub fn retry_after(response: &http::Response<Vec<u8>>, now: u64) -> Option<Duration> {
    let value = response
        .headers()
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Numbers in `[0, 1)` for retry jitter: SplitMix64 from the seed the
/// settings give ([`CallSettings::jitter_seed`](crate::CallSettings)). Not for
/// secrets.
pub(crate) struct Jitter(std::sync::atomic::AtomicU64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Self(std::sync::atomic::AtomicU64::new(seed))
    }

    pub(crate) fn next(&self) -> f64 {
        let x = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, std::sync::atomic::Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// True when a transport failure of a non-idempotent request leaves its outcome
/// unknown (the request may have reached the server).
pub fn outcome_unknown(kind: RequestKind, error: &TransportError) -> bool {
    kind != (RequestKind::Api { idempotent: true })
        && !error.never_sent()
        && matches!(
            error.kind(),
            TransportErrorKind::Timeout | TransportErrorKind::Io | TransportErrorKind::Protocol
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_http_date(unix: u64) -> String {
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(unix))
    }

    const GET: RequestKind = RequestKind::Api { idempotent: true };
    const POST: RequestKind = RequestKind::Api { idempotent: false };
    const TOKEN: RequestKind = RequestKind::Token;

    fn answer(status: u16, retry_after: Option<&str>) -> http::Response<Vec<u8>> {
        let mut b = http::Response::builder().status(status);
        if let Some(v) = retry_after {
            b = b.header("retry-after", v);
        }
        b.body(Vec::new()).unwrap()
    }

    fn retries(kind: RequestKind, outcome: Attempt<'_>) -> bool {
        matches!(
            RetryPolicy::default().decide(1, kind, outcome, 0, 0.5),
            RetryDecision::RetryAfter(_)
        )
    }

    #[test]
    fn the_table() {
        let connect = TransportError::new(TransportErrorKind::Connect);
        let timeout = TransportError::new(TransportErrorKind::Timeout);
        let io = TransportError::new(TransportErrorKind::Io);
        let big = TransportError::new(TransportErrorKind::BodyTooLarge);
        for kind in [GET, POST, TOKEN] {
            assert!(retries(kind, Attempt::Failed(&connect)), "{kind:?}");
            assert!(!retries(kind, Attempt::Failed(&big)));
        }
        assert!(retries(GET, Attempt::Failed(&timeout)));
        assert!(retries(GET, Attempt::Failed(&io)));
        for kind in [POST, TOKEN] {
            assert!(!retries(kind, Attempt::Failed(&timeout)));
            assert!(!retries(kind, Attempt::Failed(&io)));
            assert!(outcome_unknown(kind, &io));
        }
        assert!(!outcome_unknown(GET, &io));
        assert!(!outcome_unknown(POST, &connect));
        // A timeout while connecting: never sent, so even a POST is retried.
        let connect_timeout = TransportError::new(TransportErrorKind::Timeout).mark_never_sent();
        for kind in [GET, POST, TOKEN] {
            assert!(retries(kind, Attempt::Failed(&connect_timeout)), "{kind:?}");
            assert!(!outcome_unknown(kind, &connect_timeout));
        }
        let tls = TransportError::new(TransportErrorKind::Tls);
        assert!(tls.never_sent() && !retries(GET, Attempt::Failed(&tls)));
        for status in [429, 503] {
            assert!(retries(GET, Attempt::Answered(&answer(status, None))));
            assert!(retries(TOKEN, Attempt::Answered(&answer(status, None))));
            assert!(!retries(POST, Attempt::Answered(&answer(status, None))));
        }
        for status in [502, 504] {
            assert!(retries(GET, Attempt::Answered(&answer(status, None))));
            assert!(!retries(TOKEN, Attempt::Answered(&answer(status, None))));
            assert!(!retries(POST, Attempt::Answered(&answer(status, None))));
        }
        for status in [200, 400, 401, 404, 409, 500] {
            for kind in [GET, POST, TOKEN] {
                assert!(
                    !retries(kind, Attempt::Answered(&answer(status, None))),
                    "{status}"
                );
            }
        }
    }

    #[test]
    fn bounded_attempts_and_backoff() {
        let p = RetryPolicy::default();
        let e = TransportError::new(TransportErrorKind::Connect);
        let d1 = p.decide(1, GET, Attempt::Failed(&e), 0, 0.0);
        let d2 = p.decide(2, GET, Attempt::Failed(&e), 0, 1.0);
        assert_eq!(d1, RetryDecision::RetryAfter(Duration::from_millis(100)));
        assert_eq!(d2, RetryDecision::RetryAfter(Duration::from_millis(400)));
        assert_eq!(
            p.decide(3, GET, Attempt::Failed(&e), 0, 0.5),
            RetryDecision::Stop
        );
        let capped = RetryPolicy {
            max_attempts: 50,
            ..p
        };
        assert_eq!(
            capped.decide(40, GET, Attempt::Failed(&e), 0, 1.0),
            RetryDecision::RetryAfter(p.max_delay)
        );
        assert_eq!(
            RetryPolicy::none().decide(1, GET, Attempt::Failed(&e), 0, 0.5),
            RetryDecision::Stop
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let p = RetryPolicy::default();
        let now = 1_700_000_000;
        let r = answer(503, Some("2"));
        assert_eq!(
            p.decide(1, GET, Attempt::Answered(&r), now, 0.9),
            RetryDecision::RetryAfter(Duration::from_secs(2))
        );
        let date = format_http_date(now + 7);
        let r = answer(429, Some(&date));
        assert_eq!(
            p.decide(1, TOKEN, Attempt::Answered(&r), now, 0.1),
            RetryDecision::RetryAfter(Duration::from_secs(7))
        );
        let past = answer(429, Some(&format_http_date(now - 100)));
        assert_eq!(
            p.decide(1, GET, Attempt::Answered(&past), now, 0.1),
            RetryDecision::RetryAfter(Duration::ZERO)
        );
        let long = answer(503, Some("3600"));
        assert_eq!(
            p.decide(1, GET, Attempt::Answered(&long), now, 0.1),
            RetryDecision::Stop
        );
        let junk = answer(503, Some("soon"));
        assert!(
            matches!(p.decide(1, GET, Attempt::Answered(&junk), now, 0.0), RetryDecision::RetryAfter(d) if d == Duration::from_millis(100))
        );
    }
}
