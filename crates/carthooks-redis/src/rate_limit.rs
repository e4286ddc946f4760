//! A rate limit shared through Redis: GCRA on Redis' clock.

use std::time::Duration;

use carthooks_client::bulk::SharedRateLimit;

use crate::Conn;

/// GCRA (the generic cell rate algorithm, a token bucket kept as one
/// number): `KEYS[1]` holds the theoretical arrival time (TAT) of the next
/// request in microseconds of Redis' clock. A request at `now` may go when
/// `TAT - burst_tolerance <= now`; it then moves TAT one interval on. Answers
/// 0 (go) or the microseconds to wait. One atomic step on the server; the
/// key expires once the bucket is full again.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allowed_at = tat - tolerance
if now < allowed_at then
  return allowed_at - now
end
local new = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
return 0
";

/// A rate limit every process that opens it with the same name shares:
/// `per_second` requests a second in all, in bursts of at most `burst`. For
/// [`Import::shared_rate_limit`](carthooks_client::bulk::Import::shared_rate_limit).
///
/// ```no_run
/// use std::sync::Arc;
/// use carthooks_redis::RedisRateLimit;
/// # fn run(client: carthooks_reqwest::Client) -> std::io::Result<()> {
/// // 200 requests a second across every importer of this account.
/// let limit = RedisRateLimit::open("redis://127.0.0.1:6379/", "my-client-id", 200)?;
/// let rows = Vec::<serde_json::Value>::new();
/// let import = client.import(1, 2, rows).shared_rate_limit(Arc::new(limit));
/// # let _ = import; Ok(()) }
/// ```
///
/// The key is `carthooks:{NAME}:rate` (a Redis Cluster hash tag, like the
/// token store's). Time is Redis' (`TIME`), so the processes' clocks do not
/// matter. When Redis cannot be asked the caller goes on at its own pace
/// (see [`SharedRateLimit`]).
pub struct RedisRateLimit {
    conn: Conn,
    key: String,
    interval_us: u64,
    tolerance_us: u64,
    script: redis::Script,
}

impl std::fmt::Debug for RedisRateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: not shown.
        f.debug_struct("RedisRateLimit")
            .field("key", &self.key)
            .field("interval_us", &self.interval_us)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimit {
    /// `per_second` requests a second (at least 1) for everyone under
    /// `name`, with bursts of a tenth of a second's worth (at least 1): the
    /// requests spread out, and a server counting the same limit in a bucket
    /// of its own sees no more than it allows. Nothing is sent until used.
    pub fn open(url: &str, name: &str, per_second: u32) -> std::io::Result<Self> {
        Self::with_burst(url, name, per_second, (per_second / 10).max(1))
    }

    /// As [`open`](Self::open), with bursts of up to `burst` requests.
    pub fn with_burst(url: &str, name: &str, per_second: u32, burst: u32) -> std::io::Result<Self> {
        let interval_us = 1_000_000 / u64::from(per_second.max(1));
        Ok(Self {
            conn: Conn::open(url)?,
            key: format!("carthooks:{{{name}}}:rate"),
            interval_us,
            tolerance_us: interval_us * u64::from(burst.max(1) - 1),
            script: redis::Script::new(GCRA),
        })
    }
}

impl SharedRateLimit for RedisRateLimit {
    fn try_acquire(&self) -> std::io::Result<Option<Duration>> {
        let wait: i64 = self.conn.with(|c| {
            self.script
                .key(&self.key)
                .arg(self.interval_us)
                .arg(self.tolerance_us)
                .invoke(c)
        })?;
        Ok((wait > 0).then(|| Duration::from_micros(wait as u64)))
    }
}
