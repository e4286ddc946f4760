//! A Redis token store for the Carthooks SDK: processes on many hosts share
//! one OAuth identity, and each expiry costs the fleet one token request. And
//! [`RedisRateLimit`]: one rate limit for every bulk import of an account.
//!
//! ```no_run
//! use std::sync::Arc;
//! use carthooks_redis::RedisTokenStore;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisTokenStore::open("redis://127.0.0.1:6379/", "my-client-id")?;
//! let client = carthooks_reqwest::Client::builder()
//!     .oauth(carthooks_client::OAuthConfig::from_env()?)
//!     .token_store(Arc::new(store))
//!     .build()?;
//! # let _ = client; Ok(()) }
//! ```
//!
//! # Keys
//!
//! Everything lives under `carthooks:{NAMESPACE}:` (NAMESPACE is what you
//! give [`RedisTokenStore::open`]; the OAuth client id is a good one, plus the
//! identity if one client acts as several). The braces are literal: a Redis
//! Cluster hash tag, so one store's keys share a slot, as its scripts need.
//!
//! | key | holds |
//! |---|---|
//! | `…:set` | a hash: `tokens` (JSON), `version`, `fence`, `identity` |
//! | `…:lease` | `{fence}\|{holder}`, with a TTL (`SET … PX`) |
//! | `…:fence` | the last fence handed out |
//! | `…:settled` | the last fence saved under or given back (a lease handed out after an unsettled one is [`LeaseAttempt::Lapsed`]) |
//!
//! Fences and versions are stamps (`carthooks_client::next_stamp`, on Redis'
//! clock: `TIME`): they grow like counters, and still grow after a restart
//! that lost every key, so the first set saved after one is newer than any a
//! process holds and the fleet adopts it.
//!
//! Leases, renewals, releases and fenced saves are Lua scripts, so each is
//! one atomic step on the server: a lease is granted only if none is live
//! (or to its own holder again), renewed or released only by its holder, and a
//! save goes through only if no lease was granted after the saver's
//! ([`TokenStore::save_fenced`]). The tokens are never part of an error or a
//! log line: errors say what failed, not with what.
//!
//! # When Redis is down
//!
//! Every call connects with a 1 s timeout and works with 1 s socket timeouts;
//! a kept connection found dead (Redis restarted) is replaced and the step
//! run again at once.
//!
//! - **Down at start**: the client is built anyway; the load failure is
//!   reported (`token_store_failure()`), and it starts without stored tokens
//!   and signs in as configured.
//! - **Lost mid-run**: calls with a valid token never touch the store. A
//!   refresh ahead of expiry is put off while the store cannot be asked — the
//!   token in hand is used, and no refresh token the other processes hold too
//!   leaves this one. An expired token is refreshed anyway, in-process
//!   (single-flight, as with no shared store), once the store has stayed
//!   unavailable for `carthooks_core::STORE_GRACE` (1 s): a restart costs a
//!   short wait, not the fleet presenting one refresh token 8 times. Every
//!   failure is reported.
//! - **Back, empty** (no persistence): the first set saved is stamped newer
//!   than any a process holds, so the others adopt it — the fleet converges to
//!   one refresh per expiry again (tested with a real `redis-server` killed and
//!   restarted under 8 processes).

mod rate_limit;

use std::sync::Mutex;
use std::time::Duration;

use carthooks_client::{Lease, LeaseAttempt, OAuthTokens, SaveAttempt, Stored, TokenStore};

pub use rate_limit::RedisRateLimit;

/// How long connecting and each command may take.
const TIMEOUT: Duration = Duration::from_secs(1);

/// `stamp(last)`: the larger of `last + 1` and Redis' clock in microseconds
/// (`carthooks_client::next_stamp` on the server's one clock), as a string
/// (Lua would print a 16-digit number in exponent notation). Exact: Lua's
/// numbers are doubles, exact to 2^53, and microseconds stay below that until
/// the year 2255.
const STAMP: &str = r"
local function stamp(last)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  if now <= last then now = last + 1 end
  return string.format('%.0f', now)
end
";

/// Grants the lease if none is live, or extends it for its own holder.
/// KEYS: lease, fence, settled. ARGV: holder, ttl ms. Returns {1, fence},
/// {2, fence} (granted, but the lease before it lapsed: the last fence handed
/// out was neither saved under nor given back) or {0, pttl}.
const TRY_LEASE: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local fence, holder = string.match(current, '^(%d+)|(.*)$')
  if holder == ARGV[1] then
    redis.call('SET', KEYS[1], current, 'PX', ARGV[2])
    return {1, tonumber(fence)}
  end
  return {0, redis.call('PTTL', KEYS[1])}
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local settled = tonumber(redis.call('GET', KEYS[3]) or '0')
local fence = stamp(last)
redis.call('SET', KEYS[2], fence)
redis.call('SET', KEYS[1], fence .. '|' .. ARGV[1], 'PX', ARGV[2])
if last > settled then
  return {2, tonumber(fence)}
end
return {1, tonumber(fence)}
";

/// Extends the lease if it is still `ARGV[1]`. KEYS: lease. ARGV: value, ttl ms.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Marks fence `f` settled (saved under or given back), keeping the largest.
const SETTLE: &str = r"
local function settle(key, f)
  if tonumber(redis.call('GET', key) or '0') < tonumber(f) then
    redis.call('SET', key, f)
  end
end
";

/// Deletes the lease if it is still `ARGV[1]`, and settles its fence.
/// KEYS: lease, settled. ARGV: value, fence.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  settle(KEYS[2], ARGV[2])
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Saves unless a lease newer than `ARGV[1]` was granted, and settles it.
/// KEYS: fence, set, settled. ARGV: fence, identity, tokens. Returns the new
/// version, or -1.
const SAVE_FENCED: &str = r"
local latest = tonumber(redis.call('GET', KEYS[1]) or '0')
if latest > tonumber(ARGV[1]) then
  return -1
end
local version = stamp(tonumber(redis.call('HGET', KEYS[2], 'version') or '0'))
redis.call('HSET', KEYS[2], 'version', version, 'fence', ARGV[1], 'identity', ARGV[2], 'tokens', ARGV[3])
settle(KEYS[3], ARGV[1])
return tonumber(version)
";

/// One connection to Redis, opened when first needed and reopened after a
/// failure.
struct Conn {
    client: redis::Client,
    connection: Mutex<Option<redis::Connection>>,
}

impl Conn {
    fn open(url: &str) -> std::io::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("redis URL: {:?}", e.kind()),
            )
        })?;
        Ok(Self {
            client,
            connection: Mutex::new(None),
        })
    }

    /// Runs `f` on the connection, opening it first if needed; a failed
    /// connection is dropped so that the next call reconnects. A kept
    /// connection that turns out dead (Redis restarted since) is replaced and
    /// `f` run once more at once: every step here is safe to repeat (a lease
    /// asked again by its holder is the same lease), and a refresh should not
    /// go uncoordinated for a socket that is merely stale.
    fn with<R>(
        &self,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> std::io::Result<R> {
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut kept = slot.is_some();
        loop {
            let connection = match slot.take() {
                Some(connection) => connection,
                None => self.connect()?,
            };
            let connection = slot.insert(connection);
            match f(connection) {
                Ok(r) => return Ok(r),
                Err(e) => {
                    *slot = None;
                    let stale = (e.is_connection_dropped() || e.is_io_error()) && !e.is_timeout();
                    if !(kept && stale) {
                        return Err(io(&e));
                    }
                    kept = false;
                }
            }
        }
    }

    fn connect(&self) -> std::io::Result<redis::Connection> {
        let connection = self
            .client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(|e| io(&e))?;
        connection
            .set_read_timeout(Some(TIMEOUT))
            .and_then(|()| connection.set_write_timeout(Some(TIMEOUT)))
            .map_err(|e| io(&e))?;
        Ok(connection)
    }
}

/// A [`TokenStore`] in Redis, shared by every process that opens it with the
/// same namespace. See the [crate docs](self).
pub struct RedisTokenStore {
    conn: Conn,
    set: String,
    lease: String,
    fence: String,
    settled: String,
    scripts: Scripts,
}

struct Scripts {
    try_lease: redis::Script,
    renew: redis::Script,
    release: redis::Script,
    save_fenced: redis::Script,
}

impl std::fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: not shown.
        f.debug_struct("RedisTokenStore")
            .field("set", &self.set)
            .finish_non_exhaustive()
    }
}

/// A Redis failure as an I/O error that names the kind, never a value.
fn io(e: &redis::RedisError) -> std::io::Error {
    let kind = if e.is_timeout() {
        std::io::ErrorKind::TimedOut
    } else if e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
        std::io::ErrorKind::ConnectionRefused
    } else {
        std::io::ErrorKind::Other
    };
    std::io::Error::new(kind, format!("redis: {:?}", e.kind()))
}

impl RedisTokenStore {
    /// A store at `url` (`redis://[:password@]host:port/db`) under
    /// `carthooks:{namespace}:` (braces included). Nothing is sent until the
    /// store is used.
    pub fn open(url: &str, namespace: &str) -> std::io::Result<Self> {
        let conn = Conn::open(url)?;
        // The namespace in braces is a hash tag: every key of one store lives in
        // one Redis Cluster slot, as a multi-key script needs.
        let prefix = format!("carthooks:{{{namespace}}}");
        Ok(Self {
            conn,
            set: format!("{prefix}:set"),
            lease: format!("{prefix}:lease"),
            fence: format!("{prefix}:fence"),
            settled: format!("{prefix}:settled"),
            scripts: Scripts {
                try_lease: redis::Script::new(&format!("{STAMP}{TRY_LEASE}")),
                renew: redis::Script::new(RENEW),
                release: redis::Script::new(&format!("{SETTLE}{RELEASE}")),
                save_fenced: redis::Script::new(&format!("{STAMP}{SETTLE}{SAVE_FENCED}")),
            },
        })
    }

    fn parse(json: &str) -> std::io::Result<OAuthTokens> {
        // The parse error is not passed on: it could quote the tokens.
        serde_json::from_str(json).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "redis: the stored value is not a token set",
            )
        })
    }

    fn lease_value(lease: &Lease) -> String {
        format!("{}|{}", lease.fence, lease.holder)
    }
}

impl TokenStore for RedisTokenStore {
    fn load(&self) -> std::io::Result<Option<OAuthTokens>> {
        let json: Option<String> = self
            .conn
            .with(|c| redis::cmd("HGET").arg(&self.set).arg("tokens").query(c))?;
        json.as_deref().map(Self::parse).transpose()
    }

    fn save(&self, tokens: &OAuthTokens) -> std::io::Result<()> {
        let json = serde_json::to_string(tokens).map_err(std::io::Error::other)?;
        self.conn.with(|c| {
            redis::cmd("HSET")
                .arg(&self.set)
                .arg("tokens")
                .arg(&json)
                .query(c)
        })
    }

    fn coordinates(&self) -> bool {
        true
    }

    fn load_stored(&self, identity: &str) -> std::io::Result<Option<Stored>> {
        let (json, version, stored_identity): (Option<String>, Option<u64>, Option<String>) =
            self.conn.with(|c| {
                redis::cmd("HMGET")
                    .arg(&self.set)
                    .arg("tokens")
                    .arg("version")
                    .arg("identity")
                    .query(c)
            })?;
        let Some(json) = json else {
            return Ok(None);
        };
        // Another identity's set is never adopted.
        if stored_identity.is_some_and(|stored| stored != identity) {
            return Ok(None);
        }
        Ok(Some(Stored::new(Self::parse(&json)?, version.unwrap_or(0))))
    }

    fn try_lease(&self, holder: &str, ttl: Duration) -> std::io::Result<LeaseAttempt> {
        let (granted, n): (i64, i64) = self.conn.with(|c| {
            self.scripts
                .try_lease
                .key(&self.lease)
                .key(&self.fence)
                .key(&self.settled)
                .arg(holder)
                .arg(ttl.as_millis().max(1) as u64)
                .invoke(c)
        })?;
        Ok(match granted {
            1 => LeaseAttempt::Granted(Lease::new(n as u64, holder)),
            2 => LeaseAttempt::Lapsed(Lease::new(n as u64, holder)),
            _ => LeaseAttempt::Held {
                remaining: Duration::from_millis(n.max(0) as u64),
            },
        })
    }

    fn renew_lease(&self, lease: &Lease, ttl: Duration) -> std::io::Result<bool> {
        let renewed: i64 = self.conn.with(|c| {
            self.scripts
                .renew
                .key(&self.lease)
                .arg(Self::lease_value(lease))
                .arg(ttl.as_millis().max(1) as u64)
                .invoke(c)
        })?;
        Ok(renewed == 1)
    }

    fn release_lease(&self, lease: &Lease) -> std::io::Result<()> {
        let _: i64 = self.conn.with(|c| {
            self.scripts
                .release
                .key(&self.lease)
                .key(&self.settled)
                .arg(Self::lease_value(lease))
                .arg(lease.fence)
                .invoke(c)
        })?;
        Ok(())
    }

    fn save_fenced(
        &self,
        tokens: &OAuthTokens,
        identity: &str,
        lease: &Lease,
    ) -> std::io::Result<SaveAttempt> {
        let json = serde_json::to_string(tokens).map_err(std::io::Error::other)?;
        let version: i64 = self.conn.with(|c| {
            self.scripts
                .save_fenced
                .key(&self.fence)
                .key(&self.set)
                .key(&self.settled)
                .arg(lease.fence)
                .arg(identity)
                .arg(&json)
                .invoke(c)
        })?;
        Ok(if version < 0 {
            SaveAttempt::Fenced
        } else {
            SaveAttempt::Saved {
                version: version as u64,
            }
        })
    }
}
