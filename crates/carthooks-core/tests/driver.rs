//! The whole engine, deterministically: a scripted transport and made-up
//! moments ([`Now`]: instants and Unix seconds set by hand). No sockets, no threads, no sleeps — every interleaving
//! below (two calls sharing a flight, a call dropped mid-flight) is spelled out
//! step by step, in the style of quinn-proto's tests.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carthooks_core::{
    AccessToken, ApiResponse, BaseUrl, Call, CallSettings, ClientSecret, Endpoint, Engine, Error,
    Grant, HttpRequest, HttpResponse, Lease, LeaseAnswer, LeaseAttempt, LeaseOutcome,
    MachineConfig, Note, Now, OAuthTokens, Output, RefreshToken, RequestTimeout, RetryPolicy,
    STORE_GRACE, SaveAttempt, Stored, TokenMachine, TransportError, TransportErrorKind, UserInfo,
    WaitTicket,
};

const NOW: u64 = 1_700_000_000;
type Answer = Result<HttpResponse, TransportError>;

/// One engine and a hand-set time, counting flight ends and recording notes.
struct World {
    engine: Engine,
    /// `GET /v1/me`, the call most tests make.
    me: Endpoint<UserInfo>,
    /// Unix seconds, moved by [`World::advance_unix`].
    unix: AtomicU64,
    start: Instant,
    flight_ends: Arc<AtomicUsize>,
    notes: Arc<Mutex<Vec<String>>>,
}

fn world(configure: impl FnOnce(&mut CallSettings)) -> World {
    world_with(|_| {}, configure)
}

/// A [`world`] whose machine `prepare` sets up first (at `NOW`).
fn world_with(
    prepare: impl FnOnce(&mut TokenMachine),
    configure: impl FnOnce(&mut CallSettings),
) -> World {
    let mut settings = CallSettings::new(BaseUrl::parse("https://api.test").unwrap());
    settings.retry = RetryPolicy::default().with_base_delay(Duration::from_millis(100));
    configure(&mut settings);
    let mut machine = TokenMachine::new(
        MachineConfig::default(),
        Some(("cid".into(), ClientSecret::new("client-secret-1"))),
    );
    prepare(&mut machine);
    let flight_ends = Arc::new(AtomicUsize::new(0));
    let notes = Arc::new(Mutex::new(Vec::new()));
    let (ends, log) = (Arc::clone(&flight_ends), Arc::clone(&notes));
    let engine = Engine::new(machine, settings)
        .on_flight_end(move || {
            ends.fetch_add(1, Ordering::SeqCst);
        })
        .observe(move |note| {
            let line = match note {
                Note::Retrying { attempt, delay, .. } => {
                    format!("retry {attempt} after {}ms", delay.as_millis())
                }
                Note::TokenRequestFailed(e) => format!("token failed: {e}"),
                Note::NewTokens { generation, .. } => format!("new tokens {generation}"),
                Note::Rejected { generation, .. } => format!("rejected {generation}"),
                other => format!("{other:?}"),
            };
            log.lock().unwrap().push(line);
        });
    World {
        engine,
        me: Endpoint::get_current_user(),
        unix: AtomicU64::new(NOW),
        start: Instant::now(),
        flight_ends,
        notes,
    }
}

/// A world whose token (from a grant) has just expired.
fn expired(configure: impl FnOnce(&mut CallSettings)) -> World {
    let w = world(configure);
    w.signed_in(3_600);
    w.advance_unix(Duration::from_secs(3_600));
    w
}

impl World {
    /// A `get_current_user` call, wanted at the start.
    fn call_me(&self) -> Call<'_, ApiResponse<UserInfo>> {
        Call::api(&self.engine, &self.me, self.t0())
    }

    /// The start, at the current Unix time.
    fn t0(&self) -> Now {
        self.at(0)
    }
    /// `ms` after the start, at the current Unix time.
    fn at(&self, ms: u64) -> Now {
        Now::new(
            self.start + Duration::from_millis(ms),
            self.unix.load(Ordering::SeqCst),
        )
    }
    /// Moves Unix time on (the instants stay).
    fn advance_unix(&self, by: Duration) {
        self.unix.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
    fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap().clone()
    }
    /// Gives the engine a token set expiring in `ttl` seconds, by a grant.
    fn signed_in(&self, ttl: u64) {
        let mut call = Call::grant(&self.engine, app_grant(), self.t0());
        let (tokens, trace) = run(&mut call, self.t0(), [Ok(token("at-1", Some("rt-1"), ttl))]);
        assert_eq!(tokens.unwrap().access_token.secret(), "at-1");
        assert!(
            trace
                .iter()
                .any(|t| t.starts_with("send POST /oauth/token"))
        );
    }
}

fn app_grant() -> Grant {
    Grant::ClientCredentials {
        user_access_token: None,
    }
}

fn answer(status: u16, body: &str) -> HttpResponse {
    http::Response::builder()
        .status(status)
        .body(body.as_bytes().to_vec())
        .unwrap()
}

fn token(access: &str, refresh: Option<&str>, ttl: u64) -> HttpResponse {
    let mut data = serde_json::json!({"access_token": access, "expires_in": ttl});
    if let Some(r) = refresh {
        data["refresh_token"] = r.into();
    }
    answer(200, &serde_json::json!({ "data": data }).to_string())
}

fn me() -> HttpResponse {
    answer(
        200,
        r#"{"data":{"user_id":7,"username":"ada"},"traceId":"t-1"}"#,
    )
}

fn expect_send<T: std::fmt::Debug>(out: Output<T>) -> HttpRequest {
    match out {
        Output::Send(request) => request,
        other => panic!("expected Send, got {other:?}"),
    }
}

/// A token request sent under the shared store's lease.
fn expect_renewing<T: std::fmt::Debug>(out: Output<T>) -> HttpRequest {
    match out {
        Output::SendRenewing { request, renew } => {
            assert_eq!(renew.every, renew.ttl / 3);
            request
        }
        other => panic!("expected SendRenewing, got {other:?}"),
    }
}

fn expect_release<T: std::fmt::Debug>(out: Output<T>) -> Lease {
    match out {
        Output::ReleaseLease(lease) => lease,
        other => panic!("expected ReleaseLease, got {other:?}"),
    }
}

fn expect_done<T: std::fmt::Debug>(out: Output<T>) -> carthooks_core::Result<T> {
    match out {
        Output::Done(result) => result,
        other => panic!("expected Done, got {other:?}"),
    }
}

fn bearer(request: &HttpRequest) -> &str {
    request.headers()["authorization"].to_str().unwrap()
}

/// Drives `call` to the end against `script`, all at one instant; returns the
/// result and what the loop was asked to do, in order.
fn run<T>(
    call: &mut Call<'_, T>,
    now: Now,
    script: impl IntoIterator<Item = Answer>,
) -> (carthooks_core::Result<T>, Vec<String>) {
    let mut script: VecDeque<Answer> = script.into_iter().collect();
    let mut trace = Vec::new();
    loop {
        match call.poll(now) {
            Output::Send(request) => {
                trace.push(format!(
                    "send {} {}",
                    request.method(),
                    request.uri().path()
                ));
                let next = script.pop_front().expect("the script ran out");
                call.handle(next, now);
            }
            Output::Sleep { until } => trace.push(format!(
                "sleep {}ms",
                until.saturating_duration_since(now.instant).as_millis()
            )),
            Output::WaitFlight { .. } => trace.push("wait".into()),
            Output::SendRenewing { request, renew } => {
                trace.push(format!(
                    "send {} {} renewing {}",
                    request.method(),
                    request.uri().path(),
                    renew.lease.holder
                ));
                let next = script.pop_front().expect("the script ran out");
                call.handle(next, now);
            }
            Output::Save { lease, .. } => {
                trace.push(
                    if lease.is_some() {
                        "save fenced"
                    } else {
                        "save"
                    }
                    .into(),
                );
                call.handle_saved(Some(SaveAttempt::Saved { version: 1 }), now);
            }
            Output::Deliver => trace.push("deliver".into()),
            // A shared store that grants every lease and holds nothing newer.
            Output::TryLease { holder, .. } => {
                trace.push(format!("lease {holder}"));
                call.handle_lease(leased(), now);
            }
            Output::ReleaseLease(lease) => trace.push(format!("release {}", lease.holder)),
            Output::Done(result) => {
                assert!(script.is_empty(), "unused answers: {}", script.len());
                return (result, trace);
            }
        }
    }
}

#[test]
fn a_fresh_token_takes_one_send() {
    let w = world(|_| {});
    w.signed_in(3_600);
    let mut call = w.call_me();
    let request = expect_send(call.poll(w.t0()));
    assert_eq!(request.uri(), "https://api.test/v1/me");
    assert_eq!(bearer(&request), "Bearer at-1");
    assert!(request.extensions().get::<RequestTimeout>().is_none());
    call.handle(Ok(me()), w.t0());
    let me = expect_done(call.poll(w.t0())).unwrap();
    assert_eq!(me.data.username, "ada");
    assert_eq!(
        (call.attempts(), call.status()),
        (1, Some(http::StatusCode::OK))
    );
    // Polling after the end is a driver bug, said as such.
    assert!(matches!(
        expect_done(call.poll(w.t0())),
        Err(Error::InvalidState(_))
    ));
}

#[test]
fn without_a_token_a_call_sends_nothing() {
    let w = world(|_| {});
    let endpoint = Endpoint::<serde_json::Value>::get_upload_token();
    let mut call = Call::api(&w.engine, &endpoint, w.t0());
    let (result, trace) = run(&mut call, w.t0(), []);
    assert!(
        matches!(result, Err(Error::NotAuthenticated(_))),
        "{result:?}"
    );
    assert!(trace.is_empty());
}

#[test]
fn a_grant_saves_then_commits_then_delivers() {
    let w = world(|s| {
        s.save_tokens = true;
        s.deliver_tokens = true;
    });
    let mut call = Call::grant(&w.engine, app_grant(), w.t0());
    let request = expect_send(call.poll(w.t0()));
    let form = String::from_utf8(request.body().clone()).unwrap();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    call.handle(Ok(token("at-1", Some("rt-1"), 3_600)), w.t0());
    let Output::Save {
        tokens: saved,
        lease: None,
    } = call.poll(w.t0())
    else {
        panic!("the store gets the set first")
    };
    assert_eq!(saved.access_token.secret(), "at-1");
    // Not in use while it is being saved: a call now would wait for the flight.
    assert!(w.engine.current_tokens().is_none());
    assert_eq!(w.flight_ends.load(Ordering::SeqCst), 0);
    call.handle_saved(Some(SaveAttempt::Saved { version: 0 }), w.t0());
    assert!(matches!(call.poll(w.t0()), Output::Deliver));
    assert_eq!(
        w.engine.current_tokens().unwrap().access_token.secret(),
        "at-1"
    );
    assert_eq!(w.flight_ends.load(Ordering::SeqCst), 1);
    let delivered: Vec<OAuthTokens> = std::iter::from_fn(|| w.engine.next_delivery()).collect();
    assert_eq!(delivered.len(), 1);
    let tokens = expect_done(call.poll(w.t0())).unwrap();
    assert_eq!(tokens.expires_at, Some(NOW + 3_600));
    assert_eq!(w.notes(), ["new tokens 1"]);
}

#[test]
fn retryable_answers_back_off_and_send_again() {
    let w = world(|_| {});
    w.signed_in(3_600);
    let mut call = w.call_me();
    let unavailable = http::Response::builder()
        .status(503)
        .header("retry-after", "2")
        .body(Vec::new())
        .unwrap();
    let (result, trace) = run(&mut call, w.t0(), [Ok(unavailable), Ok(me())]);
    assert_eq!(result.unwrap().data.username, "ada");
    assert_eq!(
        trace,
        ["send GET /v1/me", "sleep 2000ms", "send GET /v1/me"]
    );
    assert_eq!(call.attempts(), 2);
    assert_eq!(w.notes().last().unwrap(), "retry 1 after 2000ms");
}

#[test]
fn attempts_are_bounded_and_the_last_answer_is_the_error() {
    let w = world(|_| {});
    w.signed_in(3_600);
    let mut call = w.call_me();
    let busy = || {
        Ok(answer(
            503,
            r#"{"error":{"code":"busy","message":"later"}}"#,
        ))
    };
    let (result, trace) = run(&mut call, w.t0(), [busy(), busy(), busy()]);
    let e = result.unwrap_err();
    assert_eq!(e.status().map(u16::from), Some(503));
    assert_eq!(trace.iter().filter(|t| t.starts_with("send")).count(), 3);
    assert_eq!(call.attempts(), 3);
}

/// A POST is not resent on a 429 (the driver cannot know the caller wants
/// it), but its error says how long the server asked to wait, so that a
/// caller pacing its own work (the bulk import) can honour it.
#[test]
fn a_throttled_post_is_not_resent_and_its_error_says_how_long_to_wait() {
    let w = world(|_| {});
    w.signed_in(3_600);
    let endpoint =
        Endpoint::<serde_json::Value>::create_item(1, 2, &serde_json::json!({})).unwrap();
    for (status, header, wait) in [
        (429, Some("3"), Some(Duration::from_secs(3))),
        (503, Some("0"), Some(Duration::ZERO)),
        (429, None, None),
        (500, Some("3"), None),
    ] {
        let mut call = Call::api(&w.engine, &endpoint, w.t0());
        let mut throttled = http::Response::builder().status(status);
        if let Some(value) = header {
            throttled = throttled.header("retry-after", value);
        }
        let throttled = throttled
            .body(br#"{"error":{"code":"RATE_LIMITED","message":"slow down"}}"#.to_vec())
            .unwrap();
        let (result, trace) = run(&mut call, w.t0(), [Ok(throttled)]);
        assert_eq!(trace, ["send POST /v1/apps/1/collections/2/items"]);
        let Err(Error::Api(service)) = result else {
            panic!("{status}: {result:?}");
        };
        assert_eq!(service.status.as_u16(), status);
        assert_eq!(service.retry_after, wait, "{status} {header:?}");
    }
}

#[test]
fn a_post_that_may_have_arrived_is_never_sent_twice() {
    for (never_sent, sends, outcome_unknown) in [(false, 1, true), (true, 2, false)] {
        let w = world(|_| {});
        w.signed_in(3_600);
        let endpoint =
            Endpoint::<serde_json::Value>::create_item(1, 2, &serde_json::json!({})).unwrap();
        let mut call = Call::api(&w.engine, &endpoint, w.t0());
        let timeout = TransportError::new(TransportErrorKind::Timeout);
        let first = if never_sent {
            timeout.mark_never_sent()
        } else {
            timeout
        };
        let script: Vec<Answer> = if never_sent {
            vec![Err(first), Ok(answer(200, r#"{"data":{"id":9}}"#))]
        } else {
            vec![Err(first)]
        };
        let (result, trace) = run(&mut call, w.t0(), script);
        assert_eq!(
            trace.iter().filter(|t| t.starts_with("send")).count(),
            sends
        );
        assert_eq!(
            matches!(result, Err(Error::OutcomeUnknown(_))),
            outcome_unknown
        );
        assert_eq!(result.is_ok(), !outcome_unknown);
    }
}

#[test]
fn a_401_refreshes_and_replays_once() {
    let w = world(|_| {});
    w.signed_in(3_600);
    let mut call = w.call_me();
    let revoked = || Ok(answer(401, r#"{"error":{"code":"unauthorized"}}"#));
    let (result, trace) = run(
        &mut call,
        w.t0(),
        [revoked(), Ok(token("at-2", Some("rt-2"), 3_600)), revoked()],
    );
    assert_eq!(
        result.unwrap_err().status().map(u16::from),
        Some(401),
        "the second 401 is the answer"
    );
    assert_eq!(
        trace,
        [
            "send GET /v1/me",
            "send POST /oauth/token",
            "send GET /v1/me"
        ]
    );
    assert_eq!(
        w.engine.current_tokens().unwrap().access_token.secret(),
        "at-2"
    );
    assert!(w.notes().contains(&"rejected 1".to_string()));

    // With the new token the replay succeeds.
    let mut call = w.call_me();
    let (result, _) = run(
        &mut call,
        w.t0(),
        [revoked(), Ok(token("at-3", None, 3_600)), Ok(me())],
    );
    assert!(result.is_ok());
    assert_eq!(call.attempts(), 2);
}

#[test]
fn an_expired_token_is_refreshed_by_one_call_while_the_other_waits() {
    let w = expired(|_| {});
    let mut a = w.call_me();
    let mut b = w.call_me();
    let refresh = expect_send(a.poll(w.t0()));
    assert!(String::from_utf8_lossy(refresh.body()).contains("refresh_token=rt-1"));
    let Output::WaitFlight { ticket, until } = b.poll(w.t0()) else {
        panic!("b waits for a's flight")
    };
    assert_eq!(until, None);
    assert!(w.engine.in_flight(ticket));
    a.handle(Ok(token("at-2", Some("rt-2"), 3_600)), w.t0());
    let a_request = expect_send(a.poll(w.t0()));
    assert_eq!(bearer(&a_request), "Bearer at-2");
    assert!(
        !w.engine.in_flight(ticket),
        "the flight ended with the commit"
    );
    assert_eq!(w.flight_ends.load(Ordering::SeqCst), 2, "grant + refresh");
    // b wakes up and uses the new token without a token request of its own.
    let b_request = expect_send(b.poll(w.t0()));
    assert_eq!(bearer(&b_request), "Bearer at-2");
    a.handle(Ok(me()), w.t0());
    b.handle(Ok(me()), w.t0());
    assert!(expect_done(a.poll(w.t0())).is_ok());
    assert!(expect_done(b.poll(w.t0())).is_ok());
}

#[test]
fn a_waiter_shares_the_flights_failure_without_sending() {
    let w = expired(|_| {});
    let mut a = w.call_me();
    let mut b = w.call_me();
    let _ = expect_send(a.poll(w.t0()));
    assert!(matches!(b.poll(w.t0()), Output::WaitFlight { .. }));
    // A refusal of the client itself: no other grant can take over.
    let refused = answer(
        401,
        r#"{"error":"invalid_client","error_description":"client-secret-1 is wrong"}"#,
    );
    a.handle(Ok(refused), w.t0());
    let ea = expect_done(a.poll(w.t0())).unwrap_err();
    let eb = expect_done(b.poll(w.t0())).unwrap_err();
    for e in [&ea, &eb] {
        assert_eq!(e.oauth_error_code(), Some("invalid_client"));
        assert!(!format!("{e} {e:?}").contains("client-secret-1"), "{e:?}");
    }
    assert!(w.notes().iter().any(|n| n.starts_with("token failed")));
}

#[test]
fn a_failed_background_refresh_keeps_the_current_token() {
    let w = world(|_| {});
    w.signed_in(3_600);
    w.advance_unix(Duration::from_secs(3_600 - 100)); // inside the refresh window
    let mut call = w.call_me();
    let broken = || Ok(answer(500, "<html>oops</html>"));
    let (result, trace) = run(&mut call, w.t0(), [broken(), Ok(me())]);
    assert!(result.is_ok());
    assert_eq!(trace, ["send POST /oauth/token", "send GET /v1/me"]);
    assert_eq!(
        w.engine.current_tokens().unwrap().access_token.secret(),
        "at-1"
    );
}

#[test]
fn the_deadline_bounds_attempts_waits_and_flights() {
    let w = world(|s| s.call_timeout = Some(Duration::from_secs(5)));
    w.signed_in(3_600);

    // Each attempt carries the time left, never more than the exchange timeout.
    let mut call = w.call_me();
    let request = expect_send(call.poll(w.at(1_000)));
    assert_eq!(
        request.extensions().get::<RequestTimeout>(),
        Some(&RequestTimeout(Duration::from_secs(4)))
    );
    // A Retry-After past the deadline is not waited for.
    let later = http::Response::builder()
        .status(503)
        .header("retry-after", "10")
        .body(Vec::new())
        .unwrap();
    call.handle(Ok(later), w.at(1_000));
    assert_eq!(
        expect_done(call.poll(w.at(1_000)))
            .unwrap_err()
            .status()
            .map(u16::from),
        Some(503)
    );

    // A wait for another call's flight ends at the deadline, as a timeout.
    w.advance_unix(Duration::from_secs(3_600));
    let mut owner = w.call_me();
    let _ = expect_send(owner.poll(w.t0()));
    let mut waiter = w.call_me();
    let Output::WaitFlight { until, .. } = waiter.poll(w.t0()) else {
        panic!()
    };
    assert_eq!(until, Some(w.at(5_000).instant));
    let e = expect_done(waiter.poll(w.at(5_000))).unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    // The owner's answer comes after its own deadline: too late for the call,
    // but the tokens are kept for the next one.
    owner.handle(Ok(token("at-2", None, 3_600)), w.at(6_000));
    let e = expect_done(owner.poll(w.at(6_000))).unwrap_err();
    assert!(e.is_timeout());
    assert_eq!(
        w.engine.current_tokens().unwrap().access_token.secret(),
        "at-2"
    );
}

#[test]
fn a_call_dropped_mid_flight_lets_the_next_caller_fly() {
    let w = expired(|s| s.save_tokens = true);
    let ends = w.flight_ends.load(Ordering::SeqCst);
    for answered in [false, true] {
        let mut owner = w.call_me();
        let _ = expect_send(owner.poll(w.t0()));
        let mut waiter = w.call_me();
        let Output::WaitFlight { ticket, .. } = waiter.poll(w.t0()) else {
            panic!()
        };
        if answered {
            // Cancelled while its store saves the new set: the set is not used.
            owner.handle(Ok(token("at-x", None, 3_600)), w.t0());
            assert!(matches!(owner.poll(w.t0()), Output::Save { .. }));
        }
        drop(owner);
        assert!(!w.engine.in_flight(ticket));
        // The waiter is woken and starts the next flight itself.
        let retry = expect_send(waiter.poll(w.t0()));
        assert_eq!(retry.uri().path(), "/oauth/token");
        drop(waiter);
    }
    assert_eq!(w.flight_ends.load(Ordering::SeqCst), ends + 4);
    assert_eq!(
        w.engine.current_tokens().unwrap().access_token.secret(),
        "at-1"
    );
}

#[test]
fn a_driver_out_of_order_gets_invalid_state_and_releases_its_flight() {
    let w = expired(|_| {});
    // An answer nobody asked for.
    let mut call = w.call_me();
    call.handle(Ok(me()), w.t0());
    assert!(matches!(
        expect_done(call.poll(w.t0())),
        Err(Error::InvalidState(_))
    ));
    // Polling again while the token request is out.
    let mut call = w.call_me();
    let _ = expect_send(call.poll(w.t0()));
    assert!(matches!(
        expect_done(call.poll(w.t0())),
        Err(Error::InvalidState(_))
    ));
    let mut next = w.call_me();
    assert_eq!(expect_send(next.poll(w.t0())).uri().path(), "/oauth/token");
}

#[test]
fn a_grant_waits_for_the_flight_in_the_air() {
    let w = expired(|_| {});
    let mut refresh = w.call_me();
    let _ = expect_send(refresh.poll(w.t0()));
    let mut grant = Call::grant(&w.engine, app_grant(), w.t0());
    let Output::WaitFlight { ticket, .. } = grant.poll(w.t0()) else {
        panic!("grants never overlap")
    };
    refresh.handle(Ok(token("at-2", Some("rt-2"), 3_600)), w.t0());
    assert!(matches!(refresh.poll(w.t0()), Output::Send(_)));
    assert!(!w.engine.in_flight(ticket));
    let (tokens, trace) = run(&mut grant, w.t0(), [Ok(token("at-3", None, 60))]);
    assert_eq!(tokens.unwrap().access_token.secret(), "at-3");
    assert_eq!(trace, ["send POST /oauth/token"]);
    let _: WaitTicket = ticket;
}

#[test]
fn a_path_secret_and_every_token_are_redacted_from_errors() {
    let w = world(|_| {});
    w.signed_in(3_600);
    let user_token = carthooks_core::UserAccessToken::new("user-token-secret");
    let endpoint = Endpoint::get_user_by_token(&user_token);
    let mut call = Call::api(&w.engine, &endpoint, w.t0());
    let echo = answer(
        400,
        r#"{"error":{"code":"bad","message":"user-token-secret at-1 rt-1 client-secret-1"}}"#,
    );
    let (result, _) = run(&mut call, w.t0(), [Ok(echo)]);
    let text = format!("{:?}", result.unwrap_err());
    for secret in ["user-token-secret", "at-1", "rt-1", "client-secret-1"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[test]
fn a_refused_refresh_token_of_the_apps_own_grant_is_replaced_by_that_grant() {
    let w = expired(|_| {});
    let mut call = w.call_me();
    let refused = answer(400, r#"{"error":"invalid_grant"}"#);
    let (result, trace) = run(
        &mut call,
        w.t0(),
        [Ok(refused), Ok(token("at-2", None, 3_600)), Ok(me())],
    );
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        trace,
        [
            "send POST /oauth/token",
            "send POST /oauth/token",
            "send GET /v1/me"
        ]
    );
    assert_eq!(
        w.engine.current_tokens().unwrap().access_token.secret(),
        "at-2"
    );
}

/// The shared store's answer, as a loop hands it over: `lease`, then
/// `stored` (a set and its version), if any.
fn answered(lease: LeaseAttempt, stored: Option<(OAuthTokens, u64)>) -> LeaseAnswer {
    LeaseAnswer::Answered {
        lease,
        stored: stored.map(|(tokens, version)| Stored::new(tokens, version)),
    }
}

/// The lease (fence 1), nothing newer stored.
fn leased() -> LeaseAnswer {
    answered(LeaseAttempt::Granted(Lease::new(1, "h")), None)
}

/// The lease, and `tokens` stored as `version`.
fn newer(tokens: OAuthTokens, version: u64) -> LeaseAnswer {
    answered(
        LeaseAttempt::Granted(Lease::new(1, "h")),
        Some((tokens, version)),
    )
}

/// The lease (fence 2), after one that lapsed.
fn leased_after_lapse() -> LeaseAnswer {
    answered(LeaseAttempt::Lapsed(Lease::new(2, "h")), None)
}

/// The lease after one that lapsed, and `tokens` stored as `version`.
fn newer_after_lapse(tokens: OAuthTokens, version: u64) -> LeaseAnswer {
    answered(
        LeaseAttempt::Lapsed(Lease::new(2, "h")),
        Some((tokens, version)),
    )
}

/// Someone else holds the lease for `remaining`.
fn held(remaining: Duration) -> LeaseAnswer {
    answered(LeaseAttempt::Held { remaining }, None)
}

fn unavailable() -> LeaseAnswer {
    LeaseAnswer::Unavailable
}

/// A token set as another process stored it.
fn stored_set(access: &str, refresh: &str, expires_at: u64) -> OAuthTokens {
    let mut tokens = OAuthTokens::from_access_token(AccessToken::new(access));
    tokens.refresh_token = Some(RefreshToken::new(refresh));
    tokens.expires_at = Some(expires_at);
    tokens
}

#[test]
fn a_newer_set_in_the_shared_store_is_adopted_and_no_token_request_is_sent() {
    let w = expired(|s| s.coordinate = true);
    let mut call = w.call_me();
    assert!(!call.holds_flight());
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    assert!(call.holds_flight(), "the lease is this flight's");
    // Another process refreshed meanwhile (with rt-1, which is now used up).
    let unix = NOW + 3_600;
    call.handle_lease(newer(stored_set("at-9", "rt-9", unix + 3_600), 1), w.t0());
    assert!(
        !call.holds_flight(),
        "adopted: the flight is over, the lease goes back"
    );
    assert_eq!(expect_release(call.poll(w.t0())), Lease::new(1, "h"));
    assert_eq!(w.engine.stored_version(), 1, "the adopted set's version");
    let request = expect_send(call.poll(w.t0()));
    assert_eq!(request.uri().path(), "/v1/me");
    assert_eq!(bearer(&request), "Bearer at-9");
    call.handle(Ok(me()), w.t0());
    assert!(expect_done(call.poll(w.t0())).is_ok());
    // The adopted refresh token is the one used next.
    let tokens = w.engine.current_tokens().unwrap();
    assert_eq!(tokens.refresh_token.unwrap().secret(), "rt-9");
    assert_eq!(w.flight_ends.load(Ordering::SeqCst), 2, "the flight ended");
}

#[test]
fn an_adopted_set_refreshes_with_its_own_refresh_token_never_the_used_one() {
    let w = expired(|s| s.coordinate = true);
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    // The set another process stored has expired too (it stopped long ago):
    // it is not sent; it is refreshed at once, with its own refresh token,
    // after asking the store again — never with the used rt-1.
    let unix = NOW + 3_600;
    call.handle_lease(newer(stored_set("at-9", "rt-9", unix - 600), 1), w.t0());
    let _ = expect_release(call.poll(w.t0()));
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    call.handle_lease(leased(), w.t0());
    let request = expect_renewing(call.poll(w.t0()));
    assert_eq!(request.uri().path(), "/oauth/token");
    let body = String::from_utf8(request.body().clone()).unwrap();
    assert!(body.contains("refresh_token=rt-9"), "{body}");
    assert!(!body.contains("rt-1"));
}

#[test]
fn a_lease_held_elsewhere_is_waited_for_then_asked_for_again() {
    let w = expired(|s| s.coordinate = true);
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    call.handle_lease(held(Duration::from_secs(4)), w.t0());
    assert!(matches!(call.poll(w.t0()), Output::Sleep { until } if until == w.at(50).instant));
    assert!(matches!(call.poll(w.at(50)), Output::TryLease { .. }));
    call.handle_lease(leased(), w.at(50));
    let request = expect_renewing(call.poll(w.at(50)));
    assert_eq!(request.uri().path(), "/oauth/token");
    // Out of order: an answer nobody asked for is a driver bug; the flight
    // is abandoned and its lease given back first.
    call.handle_lease(leased(), w.at(50));
    assert_eq!(expect_release(call.poll(w.at(50))), Lease::new(1, "h"));
    assert!(matches!(
        expect_done(call.poll(w.at(50))),
        Err(Error::InvalidState(_))
    ));
}

#[test]
fn waiting_for_a_lease_held_elsewhere_ends_at_the_call_deadline() {
    let w = expired(|s| {
        s.coordinate = true;
        s.call_timeout = Some(Duration::from_millis(120));
    });
    let mut call = w.call_me();
    let mut now = w.t0();
    let mut sleeps = 0;
    let result = loop {
        match call.poll(now) {
            Output::TryLease { .. } => {
                call.handle_lease(held(Duration::from_secs(4)), now);
            }
            Output::Sleep { until } => {
                sleeps += 1;
                now = Now::new(until, now.unix);
            }
            Output::Done(result) => break result,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        sleeps, 2,
        "50 ms, 50 ms, then the next would pass the deadline"
    );
    assert!(result.unwrap_err().is_timeout());
}

/// Drives `call` at one instant: answers each send from `script` and each
/// coordination from `coordinate` (by how many came before); returns the result
/// and "path [token]" per send.
fn run_coordinated<T: std::fmt::Debug>(
    call: &mut Call<'_, T>,
    now: Now,
    script: impl IntoIterator<Item = Answer>,
    coordinate: impl Fn(usize) -> LeaseAnswer,
) -> (carthooks_core::Result<T>, Vec<String>) {
    let mut script: VecDeque<Answer> = script.into_iter().collect();
    let (mut sends, mut coordinations) = (Vec::new(), 0);
    loop {
        match call.poll(now) {
            Output::Send(request) | Output::SendRenewing { request, .. } => {
                let token = request
                    .headers()
                    .get("authorization")
                    .map_or("", |v| v.to_str().unwrap().trim_start_matches("Bearer "));
                sends.push(format!("{} {token}", request.uri().path()));
                call.handle(script.pop_front().expect("the script ran out"), now);
            }
            Output::TryLease { .. } => {
                call.handle_lease(coordinate(coordinations), now);
                coordinations += 1;
            }
            Output::Save { .. } => {
                call.handle_saved(Some(SaveAttempt::Saved { version: 500 }), now)
            }
            Output::ReleaseLease(_) | Output::Deliver => {}
            Output::Done(result) => {
                assert!(script.is_empty(), "unused answers: {}", script.len());
                return (result, sends);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_401_to_an_adopted_set_is_replayed_again_but_never_without_bound() {
    let w = world(|s| s.coordinate = true);
    w.signed_in(3_600);
    let refused = || Ok(answer(401, r#"{"error":{"code":"unauthorized"}}"#));
    // The server refuses at-1 (it expired on the server's clock in flight);
    // another process refreshed meanwhile, and its set, adopted, is refused
    // too (it expired in flight as well). A token this client could not vouch
    // for is no sign the server refuses every token: the call asks the store
    // again, refreshes itself, and succeeds.
    let mut call = w.call_me();
    let (result, sends) = run_coordinated(
        &mut call,
        w.t0(),
        [
            refused(),
            refused(),
            Ok(token("at-3", Some("rt-3"), 3_600)),
            Ok(me()),
        ],
        |n| match n {
            0 => newer(stored_set("at-2", "rt-2", NOW + 1), 1),
            _ => leased(),
        },
    );
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        sends,
        ["/v1/me at-1", "/v1/me at-2", "/oauth/token ", "/v1/me at-3"]
    );

    // A server that refuses every token: each adopted set earns one more
    // replay, the client's own token none after the first, and 3 at most.
    let mut call = w.call_me();
    let (result, sends) = run_coordinated(
        &mut call,
        w.t0(),
        [refused(), refused(), refused(), refused()],
        |n| {
            newer(
                stored_set(&format!("at-{}", 10 + n), "rt", NOW + 60),
                1_000 + n as u64,
            )
        },
    );
    assert_eq!(result.unwrap_err().status().map(u16::from), Some(401));
    assert_eq!(
        sends,
        [
            "/v1/me at-3",
            "/v1/me at-10",
            "/v1/me at-11",
            "/v1/me at-12"
        ]
    );
}

#[test]
fn a_store_that_cannot_be_asked_puts_off_a_refresh_ahead_of_expiry() {
    // Inside the refresh window, not expired: the call has a fallback.
    let w = world(|s| s.coordinate = true);
    w.signed_in(100);
    w.advance_unix(Duration::from_secs(31)); // past min_refresh_interval
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    call.handle_lease(unavailable(), w.t0());
    // No refresh token leaves: the current token is used, the flight ended.
    let request = expect_send(call.poll(w.t0()));
    assert_eq!(request.uri().path(), "/v1/me");
    assert_eq!(bearer(&request), "Bearer at-1");
    call.handle(Ok(me()), w.t0());
    assert!(expect_done(call.poll(w.t0())).is_ok());
    assert_eq!(w.flight_ends.load(Ordering::SeqCst), 2, "the flight ended");
}

#[test]
fn an_expired_token_waits_a_grace_for_the_store_then_refreshes_without_it() {
    let w = expired(|s| s.coordinate = true);
    let mut call = w.call_me();
    let mut now = w.t0();
    let mut asked = 0;
    let request = loop {
        match call.poll(now) {
            Output::TryLease { .. } => {
                asked += 1;
                call.handle_lease(unavailable(), now);
            }
            Output::Sleep { until } => now = Now::new(until, now.unix),
            Output::Send(request) => break request,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(request.uri().path(), "/oauth/token");
    let waited = now.instant - w.t0().instant;
    assert_eq!(waited, STORE_GRACE, "asked every 50 ms for the grace");
    assert_eq!(asked, 21);
    // Back in time, the next refresh would have coordinated: a blip costs a
    // wait, not a refresh token presented by every process.
    let w = expired(|s| s.coordinate = true);
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    call.handle_lease(unavailable(), w.t0());
    assert!(matches!(call.poll(w.t0()), Output::Sleep { .. }));
    assert!(matches!(call.poll(w.at(50)), Output::TryLease { .. }));
    call.handle_lease(leased(), w.at(50));
    assert_eq!(
        expect_renewing(call.poll(w.at(50))).uri().path(),
        "/oauth/token"
    );
}

#[test]
fn a_grant_without_a_refresh_token_does_not_wait_for_a_store_that_is_down() {
    let w = world(|s| s.coordinate = true);
    let mut call = Call::grant(&w.engine, app_grant(), w.t0());
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    call.handle_lease(unavailable(), w.t0());
    assert_eq!(expect_send(call.poll(w.t0())).uri().path(), "/oauth/token");
}

#[test]
fn after_a_lapsed_lease_the_apps_grant_replaces_a_refresh_token_that_may_be_spent() {
    // The app's own set (client credentials): its grant stands behind it.
    let w = expired(|s| s.coordinate = true);
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    call.handle_lease(leased_after_lapse(), w.t0());
    let request = expect_renewing(call.poll(w.t0()));
    let body = String::from_utf8(request.body().clone()).unwrap();
    assert!(body.contains("grant_type=client_credentials"), "{body}");
    assert!(!body.contains("rt-1"), "the suspect token is never sent");
    call.handle(Ok(token("at-2", Some("rt-2"), 3_600)), w.t0());
    let (result, _) = run(&mut call, w.t0(), [Ok(me())]);
    assert!(result.is_ok());

    // A user's set (only a refresh token): the refresh is the only way back,
    // so it goes ahead.
    let w = world_with(
        |m| {
            let user = stored_set("at-u", "rt-u", NOW + 10);
            m.install(user, NOW).unwrap();
        },
        |s| s.coordinate = true,
    );
    w.advance_unix(Duration::from_secs(60));
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    call.handle_lease(leased_after_lapse(), w.t0());
    let body = String::from_utf8(expect_renewing(call.poll(w.t0())).body().clone()).unwrap();
    assert!(body.contains("refresh_token=rt-u"), "{body}");
}

#[test]
fn after_a_lapsed_lease_a_newer_stored_set_is_not_adopted_by_an_app() {
    // The newer set in the store is the one whose refresh token the dead
    // holder presented: adopting it would only postpone the reuse.
    let w = expired(|s| s.coordinate = true);
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    let mut suspect = stored_set("at-9", "rt-9", NOW + 3_600 + 600);
    suspect.identity = w.engine.current_tokens().unwrap().identity;
    call.handle_lease(newer_after_lapse(suspect, 1), w.t0());
    let body = String::from_utf8(expect_renewing(call.poll(w.t0())).body().clone()).unwrap();
    assert!(body.contains("grant_type=client_credentials"), "{body}");
    assert!(!body.contains("rt-9") && !body.contains("rt-1"));
}

#[test]
fn after_a_lapsed_lease_a_grant_in_flight_is_sent_and_a_users_refresh_adopts() {
    // The app's set has no refresh token: the flight is the grant itself,
    // sent as it is — the suspect stored set is not adopted.
    let w = world(|s| s.coordinate = true);
    let mut call = Call::grant(&w.engine, app_grant(), w.t0());
    let (tokens, _) = run(&mut call, w.t0(), [Ok(token("at-1", None, 3_600))]);
    assert!(tokens.unwrap().refresh_token.is_none());
    w.advance_unix(Duration::from_secs(3_600));
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    let suspect = stored_set("at-9", "rt-9", NOW + 7_200);
    call.handle_lease(newer_after_lapse(suspect, 1), w.t0());
    let body = String::from_utf8(expect_renewing(call.poll(w.t0())).body().clone()).unwrap();
    assert!(body.contains("grant_type=client_credentials"), "{body}");

    // A user's set: nothing stands behind its refresh token, so the newer
    // stored set is adopted (and used while valid).
    let w = world_with(
        |m| {
            m.install(stored_set("at-u", "rt-u", NOW + 10), NOW)
                .unwrap();
        },
        |s| s.coordinate = true,
    );
    w.advance_unix(Duration::from_secs(60));
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    let newer = stored_set("at-u2", "rt-u2", NOW + 3_600);
    call.handle_lease(newer_after_lapse(newer, 1), w.t0());
    let _ = expect_release(call.poll(w.t0()));
    let request = expect_send(call.poll(w.t0()));
    assert_eq!(bearer(&request), "Bearer at-u2");
}

#[test]
fn after_a_lapsed_lease_an_explicit_refresh_is_made_as_asked() {
    let w = expired(|s| s.coordinate = true);
    let grant = w.engine.refresh_grant(Some("rt-given")).unwrap();
    let mut call = Call::grant(&w.engine, grant, w.t0());
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    call.handle_lease(leased_after_lapse(), w.t0());
    let body = String::from_utf8(expect_renewing(call.poll(w.t0())).body().clone()).unwrap();
    assert!(body.contains("refresh_token=rt-given"), "{body}");
}

/// Time and randomness enter only from outside: two engines with one jitter
/// seed, driven through one script at the same moments, wait exactly alike
/// (to the nanosecond); another seed waits otherwise.
#[test]
fn a_run_replays_identically_from_its_seed_and_moments() {
    let waits = |seed: u64| {
        let w = world(|s| s.jitter_seed = seed);
        w.signed_in(3_600);
        let mut call = w.call_me();
        let mut script: VecDeque<Answer> =
            [Ok(answer(503, "")), Ok(answer(503, "")), Ok(me())].into();
        let mut waits = Vec::new();
        loop {
            match call.poll(w.t0()) {
                Output::Send(_) => call.handle(script.pop_front().unwrap(), w.t0()),
                Output::Sleep { until } => waits.push(until - w.t0().instant),
                Output::Done(result) => {
                    assert_eq!(result.unwrap().data.username, "ada");
                    return waits;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let first = waits(42);
    assert_eq!(first.len(), 2);
    assert_eq!(first, waits(42));
    assert_ne!(first, waits(43));
}

/// The lease's whole life in the driver: asked for under a holder of the
/// flight's own, renewed while the token request is out, handed to the save
/// (fenced by it, and given back there), and the saved version kept.
#[test]
fn a_token_request_under_a_lease_renews_it_and_saves_fenced_by_it() {
    let w = expired(|s| {
        s.coordinate = true;
        s.save_tokens = true;
        s.lease_holder = "pod-7".into();
        s.lease_ttl = Duration::from_secs(3);
    });
    let mut call = w.call_me();
    let Output::TryLease { holder, ttl } = call.poll(w.t0()) else {
        panic!("a shared store is asked first")
    };
    // The sign-in before was this engine's first flight.
    assert_eq!((holder.as_str(), ttl), ("pod-7-1", Duration::from_secs(3)));
    let granted = Lease::new(41, holder);
    call.handle_lease(
        LeaseAnswer::Answered {
            lease: LeaseAttempt::Granted(granted.clone()),
            stored: None,
        },
        w.t0(),
    );
    let Output::SendRenewing { request, renew } = call.poll(w.t0()) else {
        panic!("the token request keeps its lease alive")
    };
    assert_eq!(request.uri().path(), "/oauth/token");
    assert_eq!(renew.lease, granted);
    assert_eq!(
        (renew.ttl, renew.every),
        (Duration::from_secs(3), Duration::from_secs(1))
    );
    call.handle(Ok(token("at-2", Some("rt-2"), 3_600)), w.t0());
    let Output::Save { tokens, lease } = call.poll(w.t0()) else {
        panic!("saved before use")
    };
    assert_eq!(tokens.access_token.secret(), "at-2");
    assert_eq!(lease, Some(granted), "the save is fenced by the lease");
    assert!(call.holds_flight());
    call.handle_saved(Some(SaveAttempt::Saved { version: 77 }), w.t0());
    // The save gave the lease back: no ReleaseLease follows.
    let request = expect_send(call.poll(w.t0()));
    assert_eq!(bearer(&request), "Bearer at-2");
    assert_eq!(w.engine.stored_version(), 77);
    call.handle(Ok(me()), w.t0());
    assert!(expect_done(call.poll(w.t0())).is_ok());
}

/// A flight that ends without saving — its token request refused — gives
/// its lease back before anything else, then the call goes on.
#[test]
fn a_flight_that_ends_without_saving_gives_its_lease_back_first() {
    let w = world(|s| {
        s.coordinate = true;
        s.save_tokens = true;
    });
    let mut call = Call::grant(&w.engine, app_grant(), w.t0());
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    call.handle_lease(leased(), w.t0());
    let _ = expect_renewing(call.poll(w.t0()));
    call.handle(Ok(answer(401, r#"{"error":"invalid_client"}"#)), w.t0());
    assert_eq!(expect_release(call.poll(w.t0())), Lease::new(1, "h"));
    assert!(expect_done(call.poll(w.t0())).is_err());
    // A store that cannot be asked gives no lease, so none goes back.
    let mut call = Call::grant(&w.engine, app_grant(), w.t0());
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    call.handle_lease(unavailable(), w.t0());
    let _ = expect_send(call.poll(w.t0()));
    call.handle(Ok(answer(401, r#"{"error":"invalid_client"}"#)), w.t0());
    assert!(expect_done(call.poll(w.t0())).is_err());
}

/// A stored set is newer only with a larger version than the set in use,
/// and never when it acts for someone else: that is noted (a client reports
/// it as a store failure) and the flight refreshes itself.
#[test]
fn a_stored_set_is_adopted_only_when_newer_and_of_the_same_identity() {
    let w = expired(|s| s.coordinate = true);
    let stale = stored_set("at-9", "rt-9", NOW + 7_200);
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    // Version 0 is not newer than 0: the set this client already had.
    call.handle_lease(newer(stale.clone(), 0), w.t0());
    assert_eq!(
        expect_renewing(call.poll(w.t0())).uri().path(),
        "/oauth/token"
    );
    drop(call);

    let mut foreign = stale;
    foreign.identity = Some(carthooks_core::TokenIdentity::User);
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    call.handle_lease(newer(foreign, 9), w.t0());
    assert_eq!(
        expect_renewing(call.poll(w.t0())).uri().path(),
        "/oauth/token",
        "another identity's set is not adopted"
    );
    assert_eq!(w.engine.stored_version(), 0);
    assert!(
        w.notes()
            .iter()
            .any(|n| n.starts_with("ForeignStoredSet { stored: User, in_use: App")),
        "{:?}",
        w.notes()
    );
}

/// A save the store fenced (the lease lapsed, a newer set was stored) is
/// noted; the new set is used anyway, kept in memory, its version not taken.
/// A lapsed lease before this one is noted too.
#[test]
fn a_fenced_save_is_noted_and_the_set_used_from_memory() {
    let w = expired(|s| {
        s.coordinate = true;
        s.save_tokens = true;
    });
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    call.handle_lease(leased_after_lapse(), w.t0());
    let _ = expect_renewing(call.poll(w.t0()));
    call.handle(Ok(token("at-2", Some("rt-2"), 3_600)), w.t0());
    assert!(matches!(
        call.poll(w.t0()),
        Output::Save { lease: Some(_), .. }
    ));
    call.handle_saved(Some(SaveAttempt::Fenced), w.t0());
    assert_eq!(bearer(&expect_send(call.poll(w.t0()))), "Bearer at-2");
    assert_eq!(w.engine.stored_version(), 1, "the sign-in's save");
    let notes = w.notes();
    assert!(notes.contains(&"LeaseLapsed".to_owned()), "{notes:?}");
    assert!(notes.contains(&"SaveFenced".to_owned()), "{notes:?}");
}

/// A flight asks again under its own holder (the store extends its lease);
/// the next flight of the engine is someone else to the store.
#[test]
fn each_flight_is_a_lease_holder_of_its_own() {
    let w = expired(|s| s.coordinate = true);
    let mut call = w.call_me();
    let holders = |out: Output<_>| match out {
        Output::TryLease { holder, .. } => holder,
        other => panic!("expected TryLease, got {other:?}"),
    };
    // The sign-in before was flight 0.
    assert_eq!(holders(call.poll(w.t0())), "carthooks-1");
    call.handle_lease(held(Duration::from_secs(1)), w.t0());
    assert!(matches!(call.poll(w.t0()), Output::Sleep { .. }));
    assert_eq!(holders(call.poll(w.at(50))), "carthooks-1");
    drop(call);
    let mut call = w.call_me();
    assert_eq!(holders(call.poll(w.at(50))), "carthooks-2");
}

/// A loop that polls instead of answering `Save` is a driver bug: the call
/// ends with `InvalidState` and abandons its flight (the set is not used).
#[test]
fn a_save_left_unanswered_is_invalid_state() {
    let w = world(|s| s.save_tokens = true);
    let mut call = Call::grant(&w.engine, app_grant(), w.t0());
    let _ = expect_send(call.poll(w.t0()));
    call.handle(Ok(token("at-1", None, 3_600)), w.t0());
    assert!(matches!(
        call.poll(w.t0()),
        Output::Save { lease: None, .. }
    ));
    assert!(matches!(
        expect_done(call.poll(w.t0())),
        Err(Error::InvalidState(_))
    ));
    assert!(w.engine.current_tokens().is_none());
    assert_eq!(w.flight_ends.load(Ordering::SeqCst), 1);
}

/// `Debug` of an output never shows a token request's body: it holds the
/// client secret and the refresh token.
#[test]
fn an_outputs_debug_shows_no_secret() {
    let w = expired(|s| s.coordinate = true);
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    call.handle_lease(leased(), w.t0());
    let out = call.poll(w.t0());
    let shown = format!("{out:?}");
    assert!(shown.starts_with("SendRenewing"), "{shown}");
    assert!(
        shown.contains("POST https://api.test/oauth/token"),
        "{shown}"
    );
    for secret in ["client-secret-1", "rt-1"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let Output::SendRenewing { request, .. } = out else {
        unreachable!()
    };
    let body = String::from_utf8(request.body().clone()).unwrap();
    assert!(body.contains("client_secret=client-secret-1") && body.contains("rt-1"));
}

/// What telemetry reads off the driver: every request out is named (token
/// request and its grant, or the API request) with how often it was sent
/// before, and every store answer says what it came to.
#[test]
fn each_request_out_and_each_lease_answer_is_named() {
    let w = expired(|s| {
        s.coordinate = true;
        s.save_tokens = true;
    });
    let mut call = w.call_me();
    assert_eq!(
        call.exchange(),
        None,
        "nothing is out before the first poll"
    );
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    assert_eq!(
        call.handle_lease(held(Duration::from_secs(4)), w.t0()),
        Some(LeaseOutcome::Waited)
    );
    assert!(matches!(call.poll(w.t0()), Output::Sleep { .. }));
    assert!(matches!(call.poll(w.at(50)), Output::TryLease { .. }));
    assert_eq!(
        call.handle_lease(leased(), w.at(50)),
        Some(LeaseOutcome::Acquired)
    );
    // The refresh, answered 503 once, then sent again.
    let _ = expect_renewing(call.poll(w.at(50)));
    let exchange = call.exchange().expect("the token request is out");
    assert_eq!(
        (exchange.grant, exchange.resends),
        (Some("refresh_token"), 0)
    );
    call.handle(Ok(answer(503, "busy")), w.at(50));
    assert_eq!(call.exchange(), None, "answered: nothing is out");
    assert!(matches!(call.poll(w.at(50)), Output::Sleep { .. }));
    let _ = expect_renewing(call.poll(w.at(200)));
    let exchange = call.exchange().expect("sent again");
    assert_eq!(
        (exchange.grant, exchange.resends),
        (Some("refresh_token"), 1)
    );
    call.handle(Ok(token("at-2", Some("rt-2"), 3_600)), w.at(200));
    assert!(matches!(call.poll(w.at(200)), Output::Save { .. }));
    call.handle_saved(Some(SaveAttempt::Saved { version: 2 }), w.at(200));
    // The API request: answered 401 once, replayed after a new token.
    let _ = expect_send(call.poll(w.at(200)));
    let exchange = call.exchange().expect("the API request is out");
    assert_eq!((exchange.grant, exchange.resends), (None, 0));
    call.handle(Ok(answer(401, "{}")), w.at(200));
    assert!(matches!(call.poll(w.at(200)), Output::TryLease { .. }));
    assert_eq!(
        call.handle_lease(
            newer(stored_set("at-3", "rt-3", w.at(200).unix + 3_600), 3),
            w.at(200)
        ),
        Some(LeaseOutcome::Adopted)
    );
    let _ = expect_release(call.poll(w.at(200)));
    let _ = expect_send(call.poll(w.at(200)));
    let exchange = call.exchange().expect("replayed");
    assert_eq!(
        (exchange.grant, exchange.resends),
        (None, 1),
        "a replay is a resend"
    );
    call.handle(Ok(me()), w.at(200));
    assert!(expect_done(call.poll(w.at(200))).is_ok());

    // A lapsed lease and a store that cannot be asked say so too; an answer
    // nobody asked for says nothing.
    let w = expired(|s| s.coordinate = true);
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    assert_eq!(
        call.handle_lease(leased_after_lapse(), w.t0()),
        Some(LeaseOutcome::Lapsed)
    );
    let exchange = {
        let _ = expect_renewing(call.poll(w.t0()));
        call.exchange().expect("out")
    };
    assert_eq!(
        exchange.grant,
        Some("client_credentials"),
        "the app's own grant, not the suspect refresh token"
    );
    let w = expired(|s| s.coordinate = true);
    let mut call = w.call_me();
    assert!(matches!(call.poll(w.t0()), Output::TryLease { .. }));
    assert_eq!(
        call.handle_lease(unavailable(), w.t0()),
        Some(LeaseOutcome::Unavailable)
    );
    assert_eq!(call.handle_lease(leased(), w.t0()), None, "out of order");
}
