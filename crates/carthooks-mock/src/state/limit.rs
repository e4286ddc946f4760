//! The API's rate limit: a token bucket per access token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::State;

/// One caller's bucket: `tokens` left at `at`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets, by the `Authorization` header's value.
pub(super) type Buckets = HashMap<String, Bucket>;

impl State {
    /// Whether a request bearing `authorization` may go ahead at `at` under
    /// [`MockConfig::rate_limit`](crate::MockConfig::rate_limit): `Err` with
    /// the wait until it may (what `Retry-After` says, rounded up to whole
    /// seconds). Each token has a bucket of `rate_limit` requests, refilled
    /// at `rate_limit` a second (each OAuth client, with
    /// [`rate_limit_per_client`](crate::MockConfig::rate_limit_per_client));
    /// requests without a token share one.
    pub fn admit(&mut self, authorization: Option<&str>, at: Instant) -> Result<(), Duration> {
        let Some(rate) = self.config.rate_limit.filter(|r| *r > 0) else {
            return Ok(());
        };
        let rate = f64::from(rate);
        let header = authorization.unwrap_or_default();
        let key = match self.config.rate_limit_per_client {
            // One bucket for every token of one OAuth client (an account).
            true => header
                .strip_prefix("Bearer ")
                .and_then(|token| self.access.get(token))
                .map_or_else(|| header.to_owned(), |a| format!("client {}", a.client_id)),
            false => header.to_owned(),
        };
        let bucket = self
            .buckets
            .entry(key)
            .or_insert(Bucket { tokens: rate, at });
        let refill = at.saturating_duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(rate);
        bucket.at = at;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        self.counters.rate_limited += 1;
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
    }
}

#[cfg(test)]
mod tests {
    use crate::{MockConfig, State};
    use std::time::{Duration, Instant};

    /// A burst of the limit goes through, the next waits for its share of
    /// the second, and each token has a bucket of its own.
    #[test]
    fn each_token_gets_its_rate_and_the_rest_is_told_when() {
        let mut state = State::new(MockConfig {
            rate_limit: Some(4),
            ..MockConfig::default()
        });
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(state.admit(Some("Bearer a"), t0), Ok(()));
        }
        let wait = state.admit(Some("Bearer a"), t0).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_millis(250),
            "a quarter second per request"
        );
        assert_eq!(state.admit(Some("Bearer b"), t0), Ok(()), "another token");
        assert_eq!(
            state.admit(Some("Bearer a"), t0 + Duration::from_millis(250)),
            Ok(()),
            "refilled"
        );
        assert!(
            state
                .admit(Some("Bearer a"), t0 + Duration::from_millis(260))
                .is_err()
        );
        assert_eq!(state.counters().rate_limited, 2);
        state.config.rate_limit = None;
        assert_eq!(state.admit(Some("Bearer a"), t0), Ok(()), "no limit");
    }
}
