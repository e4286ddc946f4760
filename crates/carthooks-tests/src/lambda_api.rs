//! A loopback emulator of the AWS Lambda Runtime API (2018-06-01), for a
//! function binary to run against as it would in Lambda: it long-polls
//! `GET /runtime/invocation/next` for an event, then posts its answer to
//! `/runtime/invocation/{id}/response` or `/error`; a start-up failure goes
//! to `/runtime/init/error`. The test queues events with
//! [`RuntimeApi::invoke`] and gets back what the function answered.
//!
//! What Lambda sends with an event is sent too: the request id, the deadline
//! (`Lambda-Runtime-Deadline-Ms`, 60 s ahead), the function's ARN and an
//! X-Ray trace header.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

/// What the function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `POST /runtime/invocation/{id}/response`, its JSON body.
    Response(Value),
    /// `POST /runtime/invocation/{id}/error`, its JSON body
    /// (`errorType`, `errorMessage`).
    Error(Value),
}

/// The emulator, serving on `127.0.0.1` on a port of its own until dropped.
pub struct RuntimeApi {
    address: String,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    /// Invocations not yet taken by the function: (request id, event).
    queued: Mutex<VecDeque<(String, Bytes)>>,
    arrived: Notify,
    /// Invocations taken and not yet answered.
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_errors: Mutex<Vec<Value>>,
    polls: AtomicU64,
    ids: AtomicU64,
}

impl RuntimeApi {
    /// Starts it on a free loopback port.
    pub fn start() -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?.to_string();
        let state = Arc::new(State::default());
        let (shutdown, mut stop) = oneshot::channel::<()>();
        let serving = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("lambda-runtime-api".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        let accepted = tokio::select! {
                            _ = &mut stop => return,
                            accepted = listener.accept() => accepted,
                        };
                        let Ok((stream, _)) = accepted else { continue };
                        let state = Arc::clone(&serving);
                        tokio::spawn(async move {
                            let service = hyper::service::service_fn(move |req| {
                                let state = Arc::clone(&state);
                                async move { Ok::<_, Infallible>(route(&state, req).await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
            })?;
        Ok(Self {
            address,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Hands `event` to the function's next poll and waits up to `limit` for
    /// its answer; `None` if none came.
    pub async fn invoke(&self, event: &Value, limit: Duration) -> Option<Answer> {
        let id = format!(
            "8476a536-e9f4-11e8-9739-{:012x}",
            self.state.ids.fetch_add(1, Ordering::Relaxed)
        );
        let (answer, answered) = oneshot::channel();
        lock(&self.state.waiting).insert(id.clone(), answer);
        lock(&self.state.queued).push_back((id, Bytes::from(event.to_string())));
        self.state.arrived.notify_one();
        tokio::time::timeout(limit, answered).await.ok()?.ok()
    }

    /// What the function posted to `/runtime/init/error`.
    pub fn init_errors(&self) -> Vec<Value> {
        lock(&self.state.init_errors).clone()
    }

    /// `GET /runtime/invocation/next` requests so far.
    pub fn polls(&self) -> u64 {
        self.state.polls.load(Ordering::Relaxed)
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

async fn route(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    const PREFIX: &str = "/2018-06-01/runtime/";
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return reply(StatusCode::NOT_FOUND, "{\"errorMessage\":\"no such path\"}");
    };
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, "{}"),
    };
    let json = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    match (method, rest.split('/').collect::<Vec<_>>().as_slice()) {
        (Method::GET, ["invocation", "next"]) => next(state).await,
        (Method::POST, ["invocation", id, "response"]) => {
            answer(state, id, Answer::Response(json()))
        }
        (Method::POST, ["invocation", id, "error"]) => answer(state, id, Answer::Error(json())),
        (Method::POST, ["init", "error"]) => {
            lock(&state.init_errors).push(json());
            reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}")
        }
        _ => reply(StatusCode::NOT_FOUND, "{\"errorMessage\":\"no such path\"}"),
    }
}

/// Waits for an invocation, as Lambda's `next` does (for as long as it takes).
async fn next(state: &State) -> Response<Full<Bytes>> {
    state.polls.fetch_add(1, Ordering::Relaxed);
    let (id, event) = loop {
        let arrived = state.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        if let Some(queued) = lock(&state.queued).pop_front() {
            break queued;
        }
        arrived.await;
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        + 60_000;
    Response::builder()
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", &id)
        .header("lambda-runtime-deadline-ms", deadline.to_string())
        .header(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:carthooks-watch",
        )
        .header(
            "lambda-runtime-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .body(Full::new(event))
        .unwrap_or_else(|_| reply(StatusCode::INTERNAL_SERVER_ERROR, "{}"))
}

fn answer(state: &State, id: &str, answer: Answer) -> Response<Full<Bytes>> {
    match lock(&state.waiting).remove(id) {
        Some(waiting) => {
            let _ = waiting.send(answer);
            reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}")
        }
        // Lambda's answer to an unknown or already answered request id.
        None => reply(
            StatusCode::BAD_REQUEST,
            "{\"errorMessage\":\"Invalid request ID\",\"errorType\":\"InvalidRequestID\"}",
        ),
    }
}
