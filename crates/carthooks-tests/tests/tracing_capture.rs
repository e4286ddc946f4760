//! Every flow on both backends under a subscriber that captures all `tracing`
//! output (events and span fields, every level, every crate): no secret appears.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carthooks_core::{ManualClock, OAuthAuthorizeCodeRequest, OAuthTokens, RetryPolicy};
use carthooks_mock::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USER_TOKEN, Fault, MockServer,
};
use carthooks_oauth::{BuildClient, Connect};
use carthooks_tests::{ReqwestSdk, Sdk, UreqSdk, builder, oauth};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(Clone, Default)]
struct Capture {
    text: Arc<Mutex<String>>,
    next_id: Arc<AtomicU64>,
}

struct Writer<'a>(&'a mut String);

impl Visit for Writer<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "\nspan {} ", span.metadata().name());
        span.record(&mut Writer(&mut text));
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        values.record(&mut Writer(&mut self.text.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = self.text.lock().unwrap();
        let _ = write!(
            text,
            "\n{} {} ",
            event.metadata().level(),
            event.metadata().target()
        );
        event.record(&mut Writer(&mut text));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Runs every flow; returns every secret that was in play.
fn run_flows<S: Sdk>(server: &MockServer) -> Vec<String>
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let mut secrets = vec![
        DEFAULT_CLIENT_SECRET.to_owned(),
        DEFAULT_USER_TOKEN.to_owned(),
    ];
    let seen: Arc<Mutex<Vec<OAuthTokens>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let clock = Arc::new(ManualClock::starting_now());
    let config = oauth().on_token_refresh(move |t| sink.lock().unwrap().push(t.clone()));
    let c = S::wrap(
        builder::<S>(server)
            .oauth(config)
            .clock(clock.clone())
            .retry_policy(RetryPolicy {
                base_delay: Duration::from_millis(10),
                ..RetryPolicy::default()
            })
            .token_store(Arc::new(carthooks_oauth::FileTokenStore::new(
                "/nonexistent-carthooks/tokens.json",
            )))
            .build()
            .unwrap(),
    );
    // Client credentials, for a user, the authorization code.
    c.initialize_oauth(None).unwrap();
    c.initialize_oauth(Some(DEFAULT_USER_TOKEN)).unwrap();
    let answer = c
        .get_oauth_authorize_code(&OAuthAuthorizeCodeRequest {
            client_id: DEFAULT_CLIENT_ID.into(),
            redirect_uri: "https://app.example/cb".into(),
            state: "st".into(),
            target_tenant_id: None,
        })
        .unwrap();
    let code = answer.data.code().unwrap().secret().to_owned();
    secrets.push(code.clone());
    c.exchange_authorization_code(code.as_str(), "https://app.example/cb")
        .unwrap();
    assert!(
        c.exchange_authorization_code(code.as_str(), "https://app.example/cb")
            .is_err()
    );
    // Refresh: explicit, current, automatic; a refused one.
    let spent = c.get_current_tokens().unwrap().refresh_token.unwrap();
    c.refresh_oauth_token(None).unwrap();
    clock.advance(Duration::from_secs(86_400));
    c.get_current_user().unwrap();
    assert!(c.refresh_oauth_token(Some(spent.secret())).is_err());
    // A 401 and its replay; retries; a user token in the path.
    server.revoke_access_tokens();
    c.get_current_user().unwrap();
    server.inject(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
        Some("/v1/me"),
    );
    c.get_current_user().unwrap();
    c.get_user_by_token(DEFAULT_USER_TOKEN).unwrap();
    // Wrong secret.
    let bad = S::wrap(
        builder::<S>(server)
            .oauth(carthooks_core::OAuthConfig::new(
                DEFAULT_CLIENT_ID,
                "wrong-secret-value",
            ))
            .build()
            .unwrap(),
    );
    assert!(bad.initialize_oauth(None).is_err());
    secrets.push("wrong-secret-value".into());
    for t in seen.lock().unwrap().iter() {
        secrets.push(t.access_token.secret().to_owned());
        if let Some(rt) = &t.refresh_token {
            secrets.push(rt.secret().to_owned());
        }
    }
    assert!(seen.lock().unwrap().len() >= 5);
    secrets
}

#[test]
fn no_secret_in_any_tracing_output() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(capture.clone()).unwrap();
    let server = MockServer::start().unwrap();
    let mut secrets = run_flows::<UreqSdk>(&server);
    secrets.extend(run_flows::<ReqwestSdk>(&server));
    let text = capture.text.lock().unwrap().clone();
    // The capture works: the SDK's own events are in it.
    for expected in [
        "new token set in use",
        "retrying",
        "access token rejected",
        "token store save failed",
        "token request failed",
        // One span per API call, with its template, status and attempts.
        "span carthooks.call",
        "path=\"/v1/user-token/{token}\"",
        "status=200",
        "attempts=2",
    ] {
        assert!(
            text.contains(expected),
            "missing event {expected:?} in:\n{text}"
        );
    }
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "secret leaked into tracing output"
        );
    }
}
