//! Many users in one process: what a session costs, and how sessions refresh.
//!
//! 1. **Memory**: 10,000 sessions of one async client, each holding a user's
//!    token set (restored with `session_builder().tokens(…)`), measured as
//!    the growth of the process's resident set (`/proc/self/statm`: what the
//!    sessions really cost, the allocator's overhead included; the workspace
//!    forbids the `unsafe` a counting allocator needs). The token sets are
//!    built before the measurement, then moved into the sessions; their text
//!    is reported apart: it is the user's data, as long as the server makes it.
//! 2. **Connections**: every one of those sessions makes one call (64 in
//!    flight), against one session of another, fresh client making as many
//!    calls (64 in flight): connections the fake server accepted for each;
//!    then the same one call at a time (2,000 calls a side).
//! 3. **Refreshing**: 1,000 sessions signed in by the authorization-code flow
//!    against carthooks-mock with 3 s access tokens, rotating refresh tokens
//!    and reuse detection (a refresh token presented twice revokes its
//!    family and is counted), each session calling in a loop for 12 s while
//!    its tokens go stale and expire. Failed calls, refreshes per session,
//!    reuses.
//!
//! Usage: `sessions [SESSIONS] [REFRESHING] [SECONDS]` (default 10,000;
//! 1,000; 12).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use carthooks_client::{Client, Clock as _, ItemsQuery, OAuthConfig, OAuthTokens, SystemClock};
use carthooks_core::{AccessToken, RefreshToken, TokenIdentity};
use carthooks_mock::{
    DEFAULT_APP_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_COLLECTION_ID, MockConfig,
    MockServer,
};
use carthooks_reqwest::ReqwestTransport;

type AsyncClient = Client<ReqwestTransport>;

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sessions: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let refreshing: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(12);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    memory_and_connections(&rt, sessions);
    refreshing_sessions(&rt, refreshing, Duration::from_secs(seconds));
}

fn app_client(server: &MockServer, oauth: OAuthConfig) -> AsyncClient {
    AsyncClient::builder()
        .without_env()
        .base_url(server.url())
        .oauth(oauth)
        .build()
        .expect("client builds")
}

fn memory_and_connections(rt: &tokio::runtime::Runtime, n: usize) {
    let server = MockServer::start().expect("mock starts");
    let app = app_client(
        &server,
        OAuthConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    );
    let now = SystemClock.now();
    // The users' token sets, as an app would have kept them (and the server
    // knows them). Built before measuring: they are the users' data.
    let sets: Vec<OAuthTokens> = (0..n)
        .map(|i| {
            let access = format!("at-user-{i:06}-0123456789abcdef0123456789abcdef");
            server
                .state()
                .add_access_token(&access, Some(7), now, 3_600);
            let mut set = OAuthTokens::from_access_token(AccessToken::new(access));
            set.refresh_token = Some(RefreshToken::new(format!(
                "rt-user-{i:06}-0123456789abcdef0123456789abcdef"
            )));
            set.expires_at = Some(now + 3_600);
            set.identity = Some(TokenIdentity::User);
            set
        })
        .collect();
    let token_text: usize = sets
        .iter()
        .map(|s| {
            s.access_token.secret().len()
                + s.refresh_token.as_ref().map_or(0, |r| r.secret().len())
                + s.token_type.len()
        })
        .sum::<usize>()
        / n.max(1);

    let rss_before = resident_bytes();
    let users: Vec<AsyncClient> = sets
        .into_iter()
        .map(|set| {
            app.session_builder()
                .tokens(set)
                .build()
                .expect("session builds")
        })
        .collect();
    let per_session = resident_bytes().saturating_sub(rss_before) as f64 / n as f64;
    let rss_before = resident_bytes();
    let empties: Vec<AsyncClient> = (0..n).map(|_| app.session()).collect();
    let per_empty = resident_bytes().saturating_sub(rss_before) as f64 / n as f64;
    drop(empties);
    println!("== {n} sessions of one client: resident memory per session");
    println!(
        "  with a user's token set (restored)  {per_session:>6.0} B  (the set's text: {token_text} B)"
    );
    println!("  without tokens (session())         {per_empty:>6.0} B");

    // Connections: each side on a client of its own (a fresh pool), the same
    // calls at the same concurrency; rounds alternate which side goes first.
    // hyper's pool races a new connection against one coming free, so a
    // side opens between 64 and about twice as many: medians of the rounds.
    const IN_FLIGHT: usize = 64;
    const ROUNDS: usize = 7;
    let sets: Vec<OAuthTokens> = users
        .iter()
        .filter_map(|u| u.get_current_tokens())
        .collect();
    drop(users);
    let side = |many: bool, in_flight: usize, calls: usize| {
        let fresh = app_client(
            &server,
            OAuthConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        );
        let session = |set: &OAuthTokens| {
            fresh
                .session_builder()
                .tokens(set.clone())
                .build()
                .expect("session builds")
        };
        let clients: Vec<AsyncClient> = if many {
            sets.iter().take(calls).map(session).collect()
        } else {
            vec![session(&sets[0]); calls]
        };
        let start = server.counters().connections;
        let failed = rt.block_on(run_calls(clients, in_flight));
        (server.counters().connections - start, failed)
    };
    let (mut many, mut single, mut failed) = (Vec::new(), Vec::new(), 0);
    for round in 0..ROUNDS {
        for is_many in [round % 2 == 0, round % 2 == 1] {
            let (opened, f) = side(is_many, IN_FLIGHT, n);
            failed += f;
            if is_many { &mut many } else { &mut single }.push(opened as f64);
        }
    }
    // One call at a time: one connection, however many sessions.
    const SEQUENTIAL: usize = 2_000;
    let (many_one, failed_many) = side(true, 1, SEQUENTIAL);
    let (single_one, failed_single) = side(false, 1, SEQUENTIAL);
    failed += failed_many + failed_single;
    let range = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        format!(
            "median {:>4.0}  (min {lo:.0}, max {hi:.0})",
            carthooks_bench::median(v.to_vec())
        )
    };
    println!(
        "== connections opened for {n} calls, {IN_FLIGHT} in flight, a fresh client per side, {ROUNDS} rounds ({failed} calls failed)"
    );
    println!("  one call from each of {n} sessions  {}", range(&many));
    println!("  {n} calls from one session          {}", range(&single));
    println!(
        "  one at a time, {SEQUENTIAL} calls: {many_one} connection(s) from {SEQUENTIAL} sessions, {single_one} from one"
    );
}

/// Runs `get_current_user` once per entry, `in_flight` at a time; the failures.
async fn run_calls(clients: Vec<AsyncClient>, in_flight: usize) -> usize {
    let queue = Arc::new(std::sync::Mutex::new(clients));
    let failed = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (queue, failed) = (Arc::clone(&queue), Arc::clone(&failed));
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().unwrap().pop();
                    let Some(client) = next else { break };
                    if client.get_current_user().await.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    failed.load(Ordering::Relaxed)
}

fn refreshing_sessions(rt: &tokio::runtime::Runtime, n: usize, run_for: Duration) {
    const TTL: u64 = 3;
    let server = MockServer::start_with(MockConfig {
        access_token_ttl: TTL,
        reuse_detection: true,
        ..MockConfig::default()
    })
    .expect("mock starts");
    let mut oauth = OAuthConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET);
    // Stale one second before expiry; refreshed as soon as stale.
    oauth.refresh_window = Duration::from_secs(1);
    oauth.min_refresh_interval = Duration::ZERO;
    let app = app_client(&server, oauth);
    const REDIRECT: &str = "https://app.example/cb";
    let counts: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::default()).collect();
    let users: Vec<AsyncClient> = rt.block_on(async {
        let mut users = Vec::with_capacity(n);
        for (i, count) in counts.iter().enumerate() {
            let count = Arc::clone(count);
            let user = app
                .session_builder()
                .on_token_refresh(move |_| {
                    count.fetch_add(1, Ordering::Relaxed);
                })
                .build()
                .expect("session builds");
            let code = server.state().issue_code(
                DEFAULT_CLIENT_ID,
                if i % 2 == 0 { 7 } else { 8 },
                REDIRECT,
                None,
                SystemClock.now(),
            );
            user.exchange_authorization_code(code, REDIRECT, None)
                .await
                .expect("signed in");
            users.push(user);
        }
        users
    });
    let before = server.counters();
    let (calls, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = users
            .iter()
            .cloned()
            .map(|user| {
                let (calls, failed) = (Arc::clone(&calls), Arc::clone(&failed));
                tokio::spawn(async move {
                    let query = ItemsQuery::new().limit(1);
                    while started.elapsed() < run_for {
                        let answer = user
                            .get_items(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, &query)
                            .await;
                        calls.fetch_add(1, Ordering::Relaxed);
                        if answer.is_err() {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    let after = server.counters();
    let new_sets: u64 = counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed).saturating_sub(1))
        .sum();
    let refreshes = after.grant("refresh_token") - before.grant("refresh_token");
    // Each callback count includes the set from the sign-in.
    let per_session: Vec<u64> = counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed).saturating_sub(1))
        .collect();
    let (min, max) = (
        per_session.iter().min().copied().unwrap_or(0),
        per_session.iter().max().copied().unwrap_or(0),
    );
    let secs = run_for.as_secs_f64();
    println!(
        "== {n} sessions calling for {secs:.0} s, {TTL} s tokens (stale after {} s)",
        TTL - 1
    );
    println!(
        "  calls {}  failed {}  401s {}",
        calls.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        after.unauthorized - before.unauthorized
    );
    println!(
        "  token requests {refreshes} ({:.2} per session; each session's new sets: min {min}, max {max}; \
         a set lives {} s before it is stale, so at most {} per session)",
        refreshes as f64 / n as f64,
        TTL - 1,
        (secs / (TTL - 1) as f64).ceil() as u64 + 1
    );
    println!(
        "  new sets the sessions' callbacks saw {new_sets}; refresh-token reuses {} (a refresh \
         token presented twice); connections {}",
        after.refresh_token_reuses - before.refresh_token_reuses,
        after.connections
    );
}
