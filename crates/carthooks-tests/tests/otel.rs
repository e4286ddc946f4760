//! OpenTelemetry, end to end, on both backends: the SDK's providers export
//! over OTLP/HTTP (`opentelemetry-otlp`, configured as an application would)
//! to a loopback receiver, which decodes the protobuf; the tests assert on
//! what arrived — span names, kinds, attributes, parent/child links, resend
//! counts, the headers the server saw, histogram counts — and that no secret
//! is anywhere in the bytes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use carthooks_client::{BuildClient, Connect, ManualClock, telemetry};
use carthooks_core::{OAuthAuthorizeCodeRequest, OAuthTokens, RetryPolicy};
use carthooks_mock::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USER_TOKEN, Fault, MockServer,
};
use carthooks_tests::otlp::{OtlpReceiver, Point, attribute, points, providers, shape};
use carthooks_tests::{ReqwestSdk, Sdk, UreqSdk, builder, oauth};
use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// A receiver and the providers that export to it, as an application sets
/// them up (batch span processor, periodic metric reader, OTLP over HTTP).
struct Collector {
    receiver: OtlpReceiver,
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
}

impl Collector {
    fn start() -> Self {
        let receiver = OtlpReceiver::start().expect("the OTLP receiver starts");
        let (tracer, meter) = providers(&receiver);
        Self {
            receiver,
            tracer,
            meter,
        }
    }

    /// A client of `server` exporting here, with quick retries and a manual
    /// clock.
    fn client<S: Sdk>(
        &self,
        server: &MockServer,
        propagate: bool,
        configure: impl FnOnce(
            carthooks_client::ClientBuilder<S::Client>,
        ) -> carthooks_client::ClientBuilder<S::Client>,
    ) -> (S, Arc<ManualClock>)
    where
        <S::Client as BuildClient>::Transport: Connect,
    {
        let clock = Arc::new(ManualClock::starting_now());
        let b = builder::<S>(server)
            .clock(clock.clone())
            .retry_policy(RetryPolicy::default().with_base_delay(Duration::from_millis(20)))
            .tracer_provider(&self.tracer)
            .meter_provider(&self.meter)
            .propagate_trace_context(propagate);
        (S::wrap(configure(b).build().expect("client builds")), clock)
    }

    /// Exports everything so far and waits until the receiver has it.
    fn flush(&self) {
        self.tracer.force_flush().expect("spans flushed");
        self.meter.force_flush().expect("metrics flushed");
        assert!(
            self.receiver.refused().is_empty(),
            "{:?}",
            self.receiver.refused()
        );
    }

    fn spans(&self) -> Vec<Span> {
        self.receiver.spans()
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    attribute(&span.attributes, key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn kind(span: &Span) -> SpanKind {
    SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified)
}

fn is_error(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32)
}

/// The one span with this name and kind among `spans`.
fn only<'a>(spans: &'a [Span], name: &str, kind_: SpanKind) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == name && kind(s) == kind_)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {kind_:?} span {name}: {:#?}",
        names(spans)
    );
    found[0]
}

fn names(spans: &[Span]) -> Vec<String> {
    spans
        .iter()
        .map(|s| format!("{} ({:?})", s.name, kind(s)))
        .collect()
}

/// A call's span and its children, one line each, attributes sorted.
fn render(call: &Span, children: &[&&Span]) -> String {
    let line = |s: &Span| {
        let mut attrs: Vec<String> = s
            .attributes
            .iter()
            .map(|kv| {
                format!(
                    "{}={}",
                    kv.key,
                    attribute(&s.attributes, &kv.key).unwrap_or_default()
                )
            })
            .collect();
        attrs.sort();
        format!(
            "{} [{:?}{}] span {} parent {} {{{}}}",
            s.name,
            kind(s),
            if is_error(s) { ", error" } else { "" },
            hex(&s.span_id),
            hex(&s.parent_span_id),
            attrs.join(", ")
        )
    };
    let mut out = format!("trace {}\n{}", hex(&call.trace_id), line(call));
    for child in children {
        out.push_str("\n  ");
        out.push_str(&line(child));
    }
    out
}

fn point<'a>(points: &'a [Point], want: &[(&str, &str)]) -> Option<&'a Point> {
    points
        .iter()
        .find(|p| want.iter().all(|(k, v)| p.get(k) == Some(*v)))
}

/// The trace of a call that had to refresh its token and was answered 503
/// once: one call span, and under it the token request, the 503, the
/// backoff and the resend, each as the conventions name it; the metrics
/// count each attempt under its template and status; the server got each
/// attempt's own trace context.
fn a_refreshed_and_retried_call_is_one_trace<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let collector = Collector::start();
    let (c, clock): (S, _) = collector.client(&server, true, |b| b.oauth(oauth()));
    c.initialize_oauth(None).unwrap();
    clock.advance(Duration::from_secs(86_400));
    server.inject(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
        Some("/v1/me"),
    );
    assert_eq!(c.get_current_user().unwrap().data.user_id, 1000);
    collector.flush();
    let spans = collector.spans();

    // The explicit grant before: a call of its own.
    let grant = spans
        .iter()
        .find(|s| {
            kind(s) == SpanKind::Internal
                && attr(s, "carthooks.grant").as_deref() == Some("client_credentials")
        })
        .expect("the grant's span");
    assert_eq!(grant.name, "POST /oauth/token");
    assert_eq!(attr(grant, "carthooks.operation").as_deref(), Some("token"));

    let call = only(&spans, "GET /v1/me", SpanKind::Internal);
    assert_eq!(attr(call, "carthooks.operation").as_deref(), Some("me"));
    assert_eq!(attr(call, "url.template").as_deref(), Some("/v1/me"));
    assert_eq!(
        attr(call, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(call, "carthooks.attempts").as_deref(), Some("2"));
    assert!(!is_error(call), "the call succeeded");
    assert!(call.parent_span_id.is_empty(), "no caller span: a root");
    let children: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == call.span_id)
        .collect();
    assert!(children.iter().all(|s| s.trace_id == call.trace_id));
    let mut order: Vec<&&Span> = children.iter().collect();
    order.sort_by_key(|s| s.start_time_unix_nano);
    let seen: Vec<String> = order
        .iter()
        .map(|s| {
            format!(
                "{} {:?} {}",
                s.name,
                kind(s),
                attr(s, "http.response.status_code").unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            "POST /oauth/token Client 200",
            "GET /v1/me Client 503",
            "carthooks.backoff Internal ",
            "GET /v1/me Client 200",
        ],
        "the call's children, in order"
    );
    // The trace as the receiver decoded it (`--nocapture` shows it).
    eprintln!("{}", render(call, &order));
    let (refresh, failed, resent) = (order[0], order[1], order[3]);
    assert_eq!(
        attr(refresh, "carthooks.grant").as_deref(),
        Some("refresh_token")
    );
    assert_eq!(
        attr(refresh, "url.template").as_deref(),
        Some("/oauth/token")
    );
    assert_eq!(attr(refresh, "http.request.resend_count"), None);
    let port = server.addr().port().to_string();
    for attempt in [refresh, failed, resent] {
        assert_eq!(
            attr(attempt, "server.address").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(attr(attempt, "server.port").as_deref(), Some(port.as_str()));
    }
    assert_eq!(attr(failed, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        attr(failed, "url.full").as_deref(),
        Some(format!("{}/v1/me", server.url()).as_str())
    );
    assert_eq!(attr(failed, "error.type").as_deref(), Some("503"));
    assert!(is_error(failed), "a 503 attempt is an error");
    assert_eq!(
        attr(failed, "http.request.resend_count"),
        None,
        "the first send"
    );
    assert_eq!(
        attr(resent, "http.request.resend_count").as_deref(),
        Some("1")
    );
    assert_eq!(attr(resent, "error.type"), None);
    assert!(!is_error(resent));

    // Each request the server handled carried its own attempt's context (the
    // mock logs no request it answered with an injected fault).
    let sent: Vec<(String, String)> = server
        .state()
        .log()
        .iter()
        .filter_map(|r| Some((r.path.clone(), r.header("traceparent")?.to_owned())))
        .collect();
    let context = |s: &Span| format!("00-{}-{}-01", hex(&s.trace_id), hex(&s.span_id));
    assert_eq!(
        sent[sent.len() - 2..],
        [
            ("/oauth/token".to_owned(), context(refresh)),
            ("/v1/me".to_owned(), context(resent))
        ]
    );
    assert_eq!(sent.len(), 3, "the grant before too: {sent:?}");

    let metrics = collector.receiver.metrics();
    let durations = points(&metrics, telemetry::HTTP_CLIENT_REQUEST_DURATION);
    assert_eq!(
        shape(&metrics, telemetry::HTTP_CLIENT_REQUEST_DURATION),
        Some(("s".into(), "histogram"))
    );
    let me_503 = point(
        &durations,
        &[
            ("url.template", "/v1/me"),
            ("http.response.status_code", "503"),
        ],
    )
    .expect("the 503 attempt measured");
    assert_eq!((me_503.count, me_503.get("error.type")), (1, Some("503")));
    assert_eq!(me_503.get("server.port"), Some(port.as_str()));
    let me_200 = point(
        &durations,
        &[
            ("url.template", "/v1/me"),
            ("http.response.status_code", "200"),
        ],
    )
    .expect("the resend measured");
    assert_eq!(me_200.count, 1);
    let tokens =
        point(&durations, &[("url.template", "/oauth/token")]).expect("token requests measured");
    assert_eq!(tokens.count, 2, "the grant and the refresh");
    assert!(
        durations.iter().all(|p| !p
            .attributes
            .iter()
            .any(|a| a.contains("/v1/me/") || a.starts_with("url.full"))),
        "templates only: {durations:?}"
    );
    let grants = points(&metrics, telemetry::TOKEN_REQUESTS);
    for grant in ["client_credentials", "refresh_token"] {
        let p = point(&grants, &[("carthooks.grant", grant)]).expect(grant);
        assert_eq!((p.count, p.get("error.type")), (1, None), "{grant}");
    }
    let calls = points(&metrics, telemetry::CALL_DURATION);
    let me = point(&calls, &[("carthooks.operation", "me")]).expect("the call measured");
    assert_eq!((me.count, me.get("error.type")), (1, None));
    let attempts = points(&metrics, telemetry::CALL_ATTEMPTS);
    let me = point(&attempts, &[("carthooks.operation", "me")]).expect("attempts measured");
    assert_eq!((me.count, me.sum), (1, 2.0), "one call, two API requests");
    let active = points(&metrics, telemetry::HTTP_CLIENT_ACTIVE_REQUESTS);
    assert!(
        !active.is_empty() && active.iter().all(|p| p.sum == 0.0),
        "none left in flight: {active:?}"
    );
    assert_eq!(
        collector
            .receiver
            .span_scopes()
            .first()
            .map(|(n, _)| n.as_str()),
        Some("carthooks")
    );
}

/// A call made inside the application's span is its child; a failed call's
/// span says why; a transport failure is named by its kind.
fn calls_join_the_callers_trace_and_failures_say_why<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let collector = Collector::start();
    let (c, _) = collector.client::<S>(&server, false, |b| {
        b.oauth(oauth())
            .retry_policy(RetryPolicy::none())
            .timeout(Duration::from_millis(300))
    });
    c.initialize_oauth(None).unwrap();
    let app = collector.tracer.tracer("app");
    let parent = app.start("handle-order");
    let cx = opentelemetry::Context::current_with_span(parent);
    {
        let _in_parent = cx.clone().attach();
        c.get_item(7, 8, 9_999_999, &[]).unwrap_err();
    }
    server.inject(Fault::Delay(Duration::from_secs(2)), 1, Some("/v1/me"));
    c.get_current_user().unwrap_err();
    cx.span().end();
    collector.flush();
    let spans = collector.spans();
    let app_span = only(&spans, "handle-order", SpanKind::Internal);
    let call = only(
        &spans,
        "GET /v1/apps/{app}/collections/{coll}/items/{item}",
        SpanKind::Internal,
    );
    assert_eq!(
        call.parent_span_id, app_span.span_id,
        "the caller's span is the parent"
    );
    assert_eq!(call.trace_id, app_span.trace_id);
    assert!(is_error(call));
    assert_eq!(attr(call, "error.type").as_deref(), Some("404"));
    let attempt = spans
        .iter()
        .find(|s| s.parent_span_id == call.span_id && kind(s) == SpanKind::Client)
        .expect("the attempt");
    assert_eq!(
        attr(attempt, "url.full").as_deref(),
        Some(format!("{}/v1/apps/7/collections/8/items/9999999", server.url()).as_str()),
        "ids in the URL, on spans only"
    );
    let slow = only(&spans, "GET /v1/me", SpanKind::Internal);
    assert_eq!(attr(slow, "error.type").as_deref(), Some("timeout"));
    let slow_attempt = spans
        .iter()
        .find(|s| s.parent_span_id == slow.span_id && kind(s) == SpanKind::Client)
        .expect("the timed-out attempt");
    assert_eq!(attr(slow_attempt, "error.type").as_deref(), Some("timeout"));
    assert_eq!(
        attr(slow_attempt, "http.response.status_code"),
        None,
        "no answer"
    );
    assert!(is_error(slow_attempt));
    let metrics = collector.receiver.metrics();
    let calls = points(&metrics, telemetry::CALL_DURATION);
    let failed = point(&calls, &[("carthooks.operation", "get_item")]).expect("measured");
    assert_eq!(failed.get("error.type"), Some("404"));
    assert!(
        !failed.attributes.iter().any(|a| a.contains("9999999")),
        "no id in a metric: {failed:?}"
    );
    let durations = points(&metrics, telemetry::HTTP_CLIENT_REQUEST_DURATION);
    let timed_out = point(&durations, &[("error.type", "timeout")]).expect("measured");
    assert_eq!(timed_out.get("http.response.status_code"), None);
}

/// Callers waiting for another's refresh, and a store shared by processes,
/// show in the trace and the metrics.
fn waits_and_leases_are_traced_and_counted<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let collector = Collector::start();
    let dir =
        std::env::temp_dir().join(format!("carthooks-otel-{}-{}", S::NAME, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = carthooks_client::FileTokenStore::new(dir.join("tokens.json"));
    let (c, clock) = collector.client::<S>(&server, false, |b| b.oauth(oauth()).token_store(store));
    c.initialize_oauth(None).unwrap();
    clock.advance(Duration::from_secs(86_400));
    // The refresh is slow: the other callers wait for it.
    server.inject(
        Fault::SlowStart(Duration::from_millis(600)),
        1,
        Some("/oauth/token"),
    );
    let results = c.concurrent_current_user(8);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    collector.flush();
    let spans = collector.spans();
    let waits = spans
        .iter()
        .filter(|s| s.name == "carthooks.token.wait")
        .count();
    assert!(
        waits >= 1,
        "the callers behind the token request waited: {:?}",
        names(&spans)
    );
    let leases: Vec<String> = spans
        .iter()
        .flat_map(|s| &s.events)
        .filter(|e| e.name == "carthooks.lease")
        .filter_map(|e| attribute(&e.attributes, "carthooks.lease.outcome"))
        .collect();
    assert_eq!(
        leases,
        ["acquired", "acquired"],
        "the grant and the one refresh, each under the store's lease"
    );
    let metrics = collector.receiver.metrics();
    let outcomes = points(&metrics, telemetry::LEASE_OUTCOMES);
    assert_eq!(
        point(&outcomes, &[("carthooks.lease.outcome", "acquired")]).map(|p| p.count),
        Some(2)
    );
    let waited = points(&metrics, telemetry::TOKEN_WAIT_DURATION);
    assert_eq!(waited.iter().map(|p| p.count).sum::<u64>() as usize, waits);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every flow (client credentials, acting for a user, authorization code,
/// refresh, a 401's refresh and replay) and every operation with a secret in
/// its path: not one secret in any byte the exporter sent.
fn no_secret_is_exported<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let collector = Collector::start();
    let issued: Arc<Mutex<Vec<OAuthTokens>>> = Arc::default();
    let sink = Arc::clone(&issued);
    let config = oauth().on_token_refresh(move |t| sink.lock().unwrap().push(t.clone()));
    let (c, clock) = collector.client::<S>(&server, true, |b| b.oauth(config));
    c.initialize_oauth(None).unwrap();
    c.initialize_oauth(Some(DEFAULT_USER_TOKEN)).unwrap();
    // The authorization-code flow: the code, its state, then the exchange.
    let state = "csrf-state-7777";
    let answer = c
        .get_oauth_authorize_code(
            &OAuthAuthorizeCodeRequest::new(DEFAULT_CLIENT_ID, "https://app.example/cb", state)
                .target_tenant(123),
        )
        .unwrap();
    let code = answer.data.code().unwrap().secret().to_owned();
    c.exchange_authorization_code(&code, "https://app.example/cb", None)
        .unwrap();
    clock.advance(Duration::from_secs(86_400));
    c.get_current_user().unwrap();
    c.refresh_oauth_token(None).unwrap();
    c.get_user_by_token(DEFAULT_USER_TOKEN).unwrap();
    c.get_user_by_token("not-a-user-token-4242").unwrap_err();
    server.revoke_access_tokens();
    c.get_current_user().unwrap();
    collector.flush();
    let raw = collector.receiver.raw();
    assert!(!raw.is_empty());
    let mut secrets = vec![
        DEFAULT_CLIENT_SECRET.to_owned(),
        DEFAULT_USER_TOKEN.to_owned(),
        "not-a-user-token-4242".to_owned(),
        code,
        state.to_owned(),
    ];
    for set in issued.lock().unwrap().iter() {
        secrets.push(set.access_token.secret().to_owned());
        secrets.extend(set.refresh_token.as_ref().map(|r| r.secret().to_owned()));
    }
    assert!(secrets.len() >= 8, "{}", secrets.len());
    for secret in &secrets {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a secret of {} bytes was exported",
            secret.len()
        );
    }
    let spans = collector.spans();
    let by_token = spans
        .iter()
        .find(|s| {
            attr(s, "url.template").as_deref() == Some("/v1/user-token/{token}")
                && kind(s) == SpanKind::Client
        })
        .expect("get_user_by_token's attempt");
    assert_eq!(
        attr(by_token, "url.full").as_deref(),
        Some(format!("{}/v1/user-token/REDACTED", server.url()).as_str())
    );
}

/// A call cancelled mid-request (its future dropped, as a `timeout` around
/// it does) leaves nothing counted in flight, and its attempt's span ends.
#[test]
fn a_cancelled_call_leaves_nothing_in_flight() {
    let server = MockServer::start().unwrap();
    let collector = Collector::start();
    let client = builder::<ReqwestSdk>(&server)
        .oauth(oauth())
        .tracer_provider(&collector.tracer)
        .meter_provider(&collector.meter)
        .build()
        .expect("client");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        client.initialize_oauth(None).await.unwrap();
        server.inject(Fault::Delay(Duration::from_secs(5)), 1, Some("/v1/me"));
        let cancelled =
            tokio::time::timeout(Duration::from_millis(300), client.get_current_user()).await;
        assert!(cancelled.is_err(), "the call was cancelled");
    });
    collector.flush();
    let metrics = collector.receiver.metrics();
    let active = points(&metrics, telemetry::HTTP_CLIENT_ACTIVE_REQUESTS);
    let me = point(&active, &[("url.template", "/v1/me")]).expect("the attempt was counted");
    assert_eq!(me.sum, 0.0, "{active:?}");
    let spans = collector.spans();
    assert!(
        spans
            .iter()
            .any(|s| s.name == "GET /v1/me" && kind(s) == SpanKind::Client),
        "the abandoned attempt's span ends too: {:?}",
        names(&spans)
    );
}

macro_rules! both {
    ($($test:ident),* $(,)?) => {
        mod reqwest {
            $( #[test] fn $test() { super::$test::<super::ReqwestSdk>() } )*
        }
        mod ureq {
            $( #[test] fn $test() { super::$test::<super::UreqSdk>() } )*
        }
    };
}

both!(
    a_refreshed_and_retried_call_is_one_trace,
    calls_join_the_callers_trace_and_failures_say_why,
    waits_and_leases_are_traced_and_counted,
    no_secret_is_exported,
);
