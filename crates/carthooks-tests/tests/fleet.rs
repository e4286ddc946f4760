//! A fleet on one identity: processes share one token store — a
//! `FileTokenStore`, or a `RedisTokenStore` on a real `redis-server` — against
//! a server that rotates refresh tokens and revokes the whole token family
//! when a used one is presented again (carthooks-mock's reuse detection), with
//! 2-second access tokens. Before any token request a call takes the store's
//! refresh lease and reads the store again, adopting a set another process
//! stored; so each expiry costs the fleet one token request, no refresh token
//! is ever presented twice, and no call fails — also with a token endpoint
//! slower than the lease, with the lease holder killed (SIGKILL) or frozen
//! (SIGSTOP) at random points of its refresh, and with Redis restarted empty.
//!
//! The workers are this test binary, re-run with `child_worker` selected and
//! `CARTHOOKS_FLEET_CHILD` giving, one per line: the server, the file, the
//! mode (`stored` / `sign-in`), the Redis URL or nothing, and optionally when
//! to stop (Unix ms), how many tasks, the lease TTL (ms) and a stop file.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use carthooks_client::{FileTokenStore, OAuthConfig, TokenStore};
use carthooks_mock::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Fault, MockConfig, MockServer};
use carthooks_redis::RedisTokenStore;
use carthooks_tests::redis_server::RedisServer;

const CHILD_ENV: &str = "CARTHOOKS_FLEET_CHILD";
const PROCESSES: usize = 8;
const TASKS: usize = 16;
const RUN: Duration = Duration::from_secs(10);
/// The full load, for the scenarios the "done when" names.
const FULL_TASKS: usize = 64;
const FULL_RUN: Duration = Duration::from_secs(30);

/// How big and how long a fleet runs.
#[derive(Debug, Clone, Copy)]
struct Scale {
    tasks: usize,
    run: Duration,
}

const SHORT: Scale = Scale {
    tasks: TASKS,
    run: RUN,
};
const FULL: Scale = Scale {
    tasks: FULL_TASKS,
    run: FULL_RUN,
};
const TOKEN_TTL: u64 = 2;

/// Not a test on its own: a worker, when run as a child. Prints
/// `RESULT <calls> <failures>`.
#[test]
fn child_worker() {
    let Ok(config) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = config.split('\n');
    let (url, path, sign_in) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next() == Some("sign-in"),
    );
    let redis = parts.next().filter(|r| !r.is_empty());
    // Optional: when to stop (Unix ms), how many tasks, the lease TTL.
    let end = parts
        .next()
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or(Instant::now() + RUN, |ms| {
            Instant::now() + Duration::from_millis(ms.saturating_sub(unix_ms()))
        });
    let tasks = parts.next().and_then(|n| n.parse().ok()).unwrap_or(TASKS);
    let lease = parts.next().and_then(|ms| ms.parse().ok());
    // Optional: a file whose appearance stops the worker early.
    let stop = parts.next().map(std::path::PathBuf::from);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (calls, failures) = runtime.block_on(async {
        let client = carthooks_reqwest::Client::builder()
            .base_url(url)
            // 2 s tokens: refreshed in their last second, as a client of such
            // a server would be set up (the default window is 5 minutes).
            .oauth(
                OAuthConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
                    .with_refresh_window(Duration::from_secs(1))
                    .with_min_refresh_interval(Duration::ZERO),
            )
            .token_store(store(path, redis));
        let client = match lease {
            Some(ms) => client.refresh_lease_ttl(Duration::from_millis(ms)),
            None => client,
        }
        .build()
        .unwrap();
        // From an empty file each worker signs in on its own (a grant is a new
        // token family: nothing is replayed); from a stored set they all start
        // with the same refresh token.
        if sign_in {
            client.initialize_oauth(None).await.unwrap();
        }
        let (calls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let tasks: Vec<_> = (0..tasks)
            .map(|_| {
                let (client, calls, failures, stop) = (
                    client.clone(),
                    Arc::clone(&calls),
                    Arc::clone(&failures),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    while Instant::now() < end && !stop.as_ref().is_some_and(|s| s.exists()) {
                        calls.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = client.get_current_user().await {
                            eprintln!("call failed: {e}");
                            println!("FAILED {}", unix_ms());
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        if let Some(failure) = client.token_store_failure() {
            eprintln!("store: {failure}");
        }
        (
            calls.load(Ordering::Relaxed),
            failures.load(Ordering::Relaxed),
        )
    });
    println!("RESULT {calls} {failures}");
}

/// What happens to the fleet while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    None,
    /// The first refresh takes the server 7 s: longer than the 5 s lease,
    /// which its holder must keep renewing.
    SlowRefresh,
    /// The first refresh is answered after 3 s, and its holder is killed
    /// with SIGKILL meanwhile: the server rotated the refresh token, the
    /// process died before storing the new one.
    HolderKilled,
    /// Redis is killed 3 s in and started again on its port, empty (no
    /// persistence): every process's connection is dead, every key gone.
    RedisRestarted,
}

/// When the fleet is taken to have settled after a Redis restart.
const SETTLED_AFTER: Duration = Duration::from_secs(6);

/// What the fleet did.
struct Outcome {
    calls: u64,
    failures: u64,
    /// Unix ms of each failed call.
    failed_at: Vec<u64>,
    /// Unix ms of the SIGKILL.
    killed_at: Option<u64>,
    elapsed_ms: u64,
    counters: carthooks_mock::Counters,
    /// The counters at [`SETTLED_AFTER`] (Redis restarted only).
    settled: Option<carthooks_mock::Counters>,
}

/// Starts a worker: this binary, running `child_worker` with `config`.
fn worker(config: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child_worker", "--exact", "--nocapture"])
        .env(CHILD_ENV, config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A fresh server with 2 s tokens and reuse detection, and an empty scratch
/// directory for the file store, named after `scenario`.
fn server_and_dir(scenario: &str) -> (MockServer, std::path::PathBuf) {
    let server = MockServer::start_with(MockConfig {
        access_token_ttl: TOKEN_TTL,
        reuse_detection: true,
        ..MockConfig::default()
    })
    .unwrap();
    let dir =
        std::env::temp_dir().join(format!("carthooks-fleet-{}-{scenario}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (server, dir)
}

/// One sign-in, stored: every worker then loads the same token set.
fn seed(server: &MockServer, path: &std::path::Path, redis: Option<&str>) {
    let client = carthooks_ureq::Client::builder()
        .base_url(server.url())
        .oauth(OAuthConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET))
        .token_store(store(path, redis))
        .build()
        .unwrap();
    client.initialize_oauth(None).unwrap();
}

/// Waits for the workers: calls, failed calls, and when each failed (Unix ms).
/// A worker without a result must have been killed (`some_killed`).
fn results(children: Vec<std::process::Child>, some_killed: bool) -> (u64, u64, Vec<u64>) {
    let (mut calls, mut failures, mut failed_at) = (0, 0, Vec::new());
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(result) = text.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
            assert!(some_killed, "a worker failed");
            continue;
        };
        let mut numbers = result.split(' ').map(|n| n.parse::<u64>().unwrap());
        calls += numbers.next().unwrap();
        failures += numbers.next().unwrap();
        failed_at.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("FAILED "))
                .filter_map(|t| t.parse::<u64>().ok()),
        );
    }
    (calls, failures, failed_at)
}

/// The file store at `path`, or the Redis store at `redis`.
fn store(path: impl Into<std::path::PathBuf>, redis: Option<&str>) -> Arc<dyn TokenStore> {
    match redis {
        Some(url) => Arc::new(RedisTokenStore::open(url, DEFAULT_CLIENT_ID).unwrap()),
        None => Arc::new(FileTokenStore::new(path)),
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One fleet at a time: 8 processes each are all two cores can take.
static ONE_FLEET: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs the fleet against a fresh server, from one stored set (`seeded`) or
/// from an empty file.
fn fleet(seeded: bool, trouble: Trouble, scale: Scale) -> Outcome {
    fleet_on(seeded, trouble, None, scale)
}

/// [`fleet`] on the Redis store of `redis` instead of a file.
fn fleet_on(
    seeded: bool,
    trouble: Trouble,
    mut redis: Option<&mut RedisServer>,
    scale: Scale,
) -> Outcome {
    let _one = ONE_FLEET
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (server, dir) = server_and_dir(&format!("{seeded}-{trouble:?}"));
    let path = dir.join("tokens.json");
    let redis_url = redis.as_deref().map(RedisServer::url);
    if seeded {
        seed(&server, &path, redis_url.as_deref());
    }
    let fault = match trouble {
        Trouble::None | Trouble::RedisRestarted => None,
        Trouble::SlowRefresh => Some(Fault::SlowStart(Duration::from_secs(7))),
        Trouble::HolderKilled => Some(Fault::Delay(Duration::from_secs(3))),
    };
    if let Some(fault) = fault {
        server.inject(fault, 1, Some("/oauth/token"));
    }
    let mode = if seeded { "stored" } else { "sign-in" };
    let started = Instant::now();
    let end_ms = unix_ms() + scale.run.as_millis() as u64;
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            worker(&format!(
                "{}\n{}\n{mode}\n{}\n{end_ms}\n{}",
                server.url(),
                path.display(),
                redis_url.as_deref().unwrap_or(""),
                scale.tasks
            ))
        })
        .collect();
    let mut killed_at = None;
    if trouble == Trouble::HolderKilled {
        // The delayed refresh is out once the server has seen it: kill the
        // process whose lease covers it (the lease file names its pid).
        while server.counters().grant("refresh_token") == 0 {
            assert!(started.elapsed() < scale.run, "no refresh happened");
            std::thread::sleep(Duration::from_millis(10));
        }
        let lease = std::fs::read_to_string(dir.join("tokens.json.lease")).unwrap();
        let lease: serde_json::Value = serde_json::from_str(&lease).unwrap();
        let pid: u32 = lease["holder"]
            .as_str()
            .and_then(|h| h.split('-').next())
            .and_then(|p| p.parse().ok())
            .unwrap();
        let holder = children.iter_mut().find(|c| c.id() == pid).unwrap();
        holder.kill().unwrap(); // SIGKILL
        killed_at = Some(unix_ms());
    }
    let mut settled = None;
    if trouble == Trouble::RedisRestarted {
        let redis = redis.as_mut().expect("a fleet on Redis");
        std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));
        redis.restart();
        eprintln!("redis restarted at {} ms", started.elapsed().as_millis());
        std::thread::sleep(SETTLED_AFTER.saturating_sub(started.elapsed()));
        settled = Some(server.counters());
    }
    let (calls, failures, failed_at) = results(children, killed_at.is_some());
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let counters = server.counters();
    eprintln!(
        "{PROCESSES} processes x {} tasks ({mode}, {trouble:?}), {elapsed_ms} ms, \
         {TOKEN_TTL} s tokens: {calls} calls, {failures} failed, {} token requests ({:?}), \
         {} refresh-token reuses",
        scale.tasks, counters.token_requests, counters.grants, counters.refresh_token_reuses
    );
    std::fs::remove_dir_all(&dir).unwrap();
    Outcome {
        calls,
        failures,
        failed_at,
        killed_at,
        elapsed_ms,
        counters,
        settled,
    }
}

/// One refresh per set for the whole fleet: a set lives 2 s and is renewed in
/// its last second (the workers' refresh window; the client counts time in
/// whole seconds), so about one refresh a second — uncoordinated, each of the
/// processes would refresh each set (8 times as many).
fn assert_one_refresh_per_expiry(counters: &carthooks_mock::Counters, elapsed_ms: u64) {
    let at_most = elapsed_ms / 1000 + 2;
    let refreshes = counters.grant("refresh_token");
    assert!(
        (1..=at_most).contains(&refreshes),
        "{refreshes} refreshes in {elapsed_ms} ms (at most {at_most})"
    );
}

#[test]
fn a_fleet_starting_from_one_stored_set_never_replays_its_refresh_token() {
    // Every worker loads the same refresh token: uncoordinated, all of them
    // present it at the first expiry and the server revokes the family.
    let out = fleet(true, Trouble::None, FULL);
    assert_eq!(
        out.counters.refresh_token_reuses, 0,
        "no refresh token replayed"
    );
    assert_eq!(out.failures, 0, "no call failed");
    assert!(out.calls > 1000, "the workers made calls: {}", out.calls);
    assert_eq!(
        out.counters.grant("client_credentials"),
        1,
        "the seeding sign-in only"
    );
    assert_one_refresh_per_expiry(&out.counters, out.elapsed_ms);
}

#[test]
fn a_fleet_signing_in_from_an_empty_file_shares_one_set_after() {
    let out = fleet(false, Trouble::None, SHORT);
    assert_eq!(
        out.counters.refresh_token_reuses, 0,
        "no refresh token replayed"
    );
    assert_eq!(out.failures, 0, "no call failed");
    assert!(out.calls > 1000, "the workers made calls: {}", out.calls);
    // One grant per worker at start (a grant is a family of its own).
    assert_eq!(out.counters.grant("client_credentials"), PROCESSES as u64);
    assert_one_refresh_per_expiry(&out.counters, out.elapsed_ms);
}

#[test]
fn a_refresh_slower_than_the_lease_keeps_the_lease_and_nothing_is_replayed() {
    // oauth2-proxy's failure: a lease that lapses while the token request is
    // out lets another replica present the same refresh token.
    assert_lease_renewed(&fleet(true, Trouble::SlowRefresh, FULL));
}

/// A slow refresh: its holder kept the lease, nothing was replayed, every
/// call waited for it and none failed.
fn assert_lease_renewed(out: &Outcome) {
    assert_eq!(
        out.counters.refresh_token_reuses, 0,
        "the lease was renewed"
    );
    assert_eq!(out.failures, 0, "calls waited for the slow refresh");
    assert!(out.calls > 1000, "the workers made calls: {}", out.calls);
    assert_eq!(out.counters.grant("client_credentials"), 1);
}

#[test]
fn the_lease_holder_killed_mid_refresh_costs_no_reuse_and_the_fleet_recovers() {
    let out = fleet(true, Trouble::HolderKilled, SHORT);
    let killed_at = out.killed_at.unwrap();
    // The killed process's refresh was the server's last use of that refresh
    // token. The next holder learns the lease lapsed, and — the app's own
    // identity — gets a new set with the client credentials instead of
    // presenting the spent token (which would revoke the whole family).
    assert_eq!(
        out.counters.refresh_token_reuses, 0,
        "the suspect refresh token was not presented"
    );
    assert!(out.counters.grant("client_credentials") <= 3);
    // Recovery within the lease TTL, plus a token lifetime for the calls
    // already waiting: no survivor's call fails after that.
    let recovered = killed_at + 5_000 + TOKEN_TTL * 1_000;
    let late: Vec<_> = out.failed_at.iter().filter(|t| **t > recovered).collect();
    assert!(
        late.is_empty(),
        "{} calls failed after recovery",
        late.len()
    );
    assert!(out.calls > 1000, "the survivors made calls: {}", out.calls);
}

#[test]
fn a_fleet_on_redis_starting_from_one_stored_set_never_replays_its_refresh_token() {
    let mut redis = RedisServer::start();
    let out = fleet_on(true, Trouble::None, Some(&mut redis), FULL);
    assert_eq!(
        out.counters.refresh_token_reuses, 0,
        "no refresh token replayed"
    );
    assert_eq!(out.failures, 0, "no call failed");
    assert!(out.calls > 1000, "the workers made calls: {}", out.calls);
    assert_eq!(out.counters.grant("client_credentials"), 1);
    assert_one_refresh_per_expiry(&out.counters, out.elapsed_ms);
}

#[test]
fn a_fleet_whose_redis_restarts_empty_keeps_calling_and_converges() {
    let mut redis = RedisServer::start();
    let out = fleet_on(true, Trouble::RedisRestarted, Some(&mut redis), SHORT);
    // The restart takes well under a token's lifetime: calls go on with the
    // tokens in hand, and no call fails.
    assert_eq!(out.failures, 0, "no call failed");
    assert!(out.calls > 1000, "the workers made calls: {}", out.calls);
    // Converged: after it, one refresh per expiry fleet-wide and no reuse —
    // the first set stored in the empty Redis is newer than any a process
    // holds (versions are stamps), so the others adopt it rather than present
    // the refresh token they all hold.
    let settled = out.settled.unwrap();
    let refreshes = out.counters.grant("refresh_token") - settled.grant("refresh_token");
    let window_ms = out.elapsed_ms - SETTLED_AFTER.as_millis() as u64;
    assert!(
        refreshes <= window_ms / 1000 + 2,
        "{refreshes} refreshes in the last {window_ms} ms"
    );
    assert_eq!(
        out.counters.refresh_token_reuses, settled.refresh_token_reuses,
        "no reuse after convergence"
    );
    // Refreshes during the outage itself (if one fell in it) go ahead without
    // the lease: at most one reuse for it, which the client-credentials grant
    // recovers from.
    assert!(
        out.counters.refresh_token_reuses <= 1,
        "{} reuses",
        out.counters.refresh_token_reuses
    );
}

/// The file lease's holder pid and fence, if the lease is live.
fn live_lease_holder(lease_path: &std::path::Path) -> Option<(u32, u64)> {
    let lease: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lease_path).ok()?).ok()?;
    (lease["expires_at"].as_u64()? > unix_ms()).then_some(())?;
    let pid = lease["holder"].as_str()?.split('-').next()?.parse().ok()?;
    Some((pid, lease["fence"].as_u64()?))
}

/// A small PRNG (xorshift), seeded and printed so a failing run can be
/// repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What happens to the lease holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    /// SIGKILL, and a replacement started from the store, as a supervisor
    /// would.
    Kill,
    /// SIGSTOP for this long (past the lease TTL: a GC pause, a frozen VM),
    /// then SIGCONT: the holder wakes up with its lease lapsed.
    Stall(Duration),
}

/// What the fleet did under [`interrupt_lease_holders`].
struct Interrupted {
    calls: u64,
    failures: u64,
    /// Interruptions that landed while the holder still held its lease.
    mid_refresh: usize,
    reuses: u64,
}

/// The app's fleet on one file store, 8 processes × 4 tasks, 2 s tokens, a
/// 1.5 s lease; `times` times, the holder of the next refresh lease is
/// interrupted at a random point of its refresh (before the token request,
/// while its answer is out, after the save): every token request is answered
/// 300 ms after the server acted on it, and the interruption comes 20–420 ms
/// after the lease was taken. The run ends 4 s after recovery from the last.
fn interrupt_lease_holders(times: usize, how: Interrupt) -> Interrupted {
    const LEASE_MS: u64 = 1_500;
    const ANSWER_DELAY: Duration = Duration::from_millis(300);
    let _one = ONE_FLEET
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (server, dir) = server_and_dir(if how == Interrupt::Kill {
        "kills"
    } else {
        "stalls"
    });
    let path = dir.join("tokens.json");
    let lease_path = dir.join("tokens.json.lease");
    let stop_path = dir.join("stop");
    seed(&server, &path, None);
    server.inject(Fault::Delay(ANSWER_DELAY), 10_000, Some("/oauth/token"));
    let seed_value = unix_ms() | 1;
    eprintln!("random seed {seed_value}");
    let mut rng = Rng(seed_value);
    // Long enough; the test stops the workers earlier.
    let started = Instant::now();
    let end_ms = unix_ms() + 120_000;
    let config = format!(
        "{}\n{}\nstored\n\n{end_ms}\n4\n{LEASE_MS}\n{}",
        server.url(),
        path.display(),
        stop_path.display()
    );
    let mut alive: Vec<_> = (0..PROCESSES).map(|_| worker(&config)).collect();
    let mut dead = Vec::new();
    let (mut mid_refresh, mut last) = (0, 0);
    for _ in 0..times {
        std::thread::sleep(Duration::from_millis(rng.below(1_500)));
        // The next refresh: a live lease held by a live worker for 20 ms
        // (a lease taken only to adopt a stored set is given back at once).
        let (victim, fence) = loop {
            assert!(unix_ms() < end_ms - 20_000, "no refresh to interrupt");
            if let Some((pid, fence)) = live_lease_holder(&lease_path)
                && let Some(i) = alive.iter().position(|c| c.id() == pid)
            {
                std::thread::sleep(Duration::from_millis(20));
                if live_lease_holder(&lease_path) == Some((pid, fence)) {
                    break (i, fence);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        let pid = alive[victim].id();
        // Still holding it: interrupted before its save gave it back.
        if live_lease_holder(&lease_path) == Some((pid, fence)) {
            mid_refresh += 1;
        }
        match how {
            Interrupt::Kill => {
                let mut child = alive.swap_remove(victim);
                child.kill().unwrap(); // SIGKILL
                dead.push(child);
                alive.push(worker(&config));
            }
            Interrupt::Stall(pause) => {
                signal(pid, "STOP");
                std::thread::sleep(pause);
                signal(pid, "CONT");
            }
        }
        last = unix_ms();
    }
    let interrupted_for = started.elapsed();
    // Recovery (a lease TTL and a token lifetime), then 4 s of calls.
    let recovered = last + LEASE_MS + TOKEN_TTL * 1_000;
    std::thread::sleep(Duration::from_millis(recovered + 4_000 - unix_ms()));
    std::fs::write(&stop_path, b"").unwrap();
    let (calls, failures, _) = results(alive.into_iter().chain(dead).collect(), true);
    assert!(end_ms > unix_ms(), "stopped by the test, not by the clock");
    let counters = server.counters();
    eprintln!(
        "{times} x {how:?} in {} ms ({mid_refresh} mid-refresh): {calls} calls, \
         {failures} failed, {:?}, {} reuses",
        interrupted_for.as_millis(),
        counters.grants,
        counters.refresh_token_reuses
    );
    std::fs::remove_dir_all(&dir).unwrap();
    Interrupted {
        calls,
        failures,
        mid_refresh,
        reuses: counters.refresh_token_reuses,
    }
}

impl Interrupted {
    /// Not one reuse, no failed call, and at least `mid_refresh` of the
    /// interruptions landed while the holder held its lease.
    fn assert_nothing_replayed(&self, mid_refresh: usize) {
        assert!(
            self.mid_refresh >= mid_refresh,
            "interruptions mid-refresh: {}",
            self.mid_refresh
        );
        assert_eq!(self.reuses, 0, "no refresh token replayed");
        assert_eq!(self.failures, 0, "no call failed");
        assert!(self.calls > 1000, "the workers made calls: {}", self.calls);
    }
}

/// Sends `SIG{name}` to `pid` (through the shell's `kill`, always there).
fn signal(pid: u32, name: &str) {
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -{name} {pid}")])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name} {pid}");
}

/// SIGKILL of the lease holder, 20 times at random points of its refresh.
/// A killed holder's refresh may have died after the server rotated the
/// refresh token: the next holder is told its lease came after a lapse and,
/// this being the app's own identity, gets a new set with the client
/// credentials instead of presenting the suspect token. So not one reuse
/// (which would revoke every process's tokens), and no call fails.
#[test]
fn twenty_kills_of_the_lease_holder_at_random_points_replay_nothing() {
    interrupt_lease_holders(20, Interrupt::Kill).assert_nothing_replayed(5);
}

/// The holder frozen for 2.5 s (SIGSTOP), past its 1.5 s lease, 8 times: the
/// fleet moves on without it, and when it wakes its late save is fenced off
/// and its lease is not someone else's — nothing is replayed, no call fails.
#[test]
fn a_lease_holder_frozen_past_its_lease_replays_nothing() {
    interrupt_lease_holders(8, Interrupt::Stall(Duration::from_millis(2_500)))
        .assert_nothing_replayed(2);
}

#[test]
fn on_redis_a_refresh_slower_than_the_lease_keeps_the_lease_and_nothing_is_replayed() {
    let mut redis = RedisServer::start();
    assert_lease_renewed(&fleet_on(
        true,
        Trouble::SlowRefresh,
        Some(&mut redis),
        SHORT,
    ));
}
