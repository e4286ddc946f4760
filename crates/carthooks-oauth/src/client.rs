//! The async client.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use carthooks_core::endpoint::clone_request;
use carthooks_core::{
    ApiResponse, Attempt, AuthorizationCode, AuthorizeCodeResponse, Bearer, ClientConfig, Endpoint,
    Error, Grant, HttpRequest, HttpResponse, ItemLock, ItemsQuery, LockOptions,
    OAuthAuthorizeCodeRequest, OAuthTokens, RequestKind, RequestTimeout, Result, RetryDecision,
    UserAccessToken, UserInfo, WatchDataRequest,
};
use std::future::Future as _;
use std::task::Poll;

use event_listener::EventListener;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::call_timeout_error;
use crate::api::{api_methods, engine_methods};
use crate::auth::{BlockingJob, Flight, GrantStep, Step};
use crate::builder::{BuildClient, ClientBuilder, Inner, Parts};
use crate::log::{CallSpan, event};
use crate::pages::ItemStream;
use crate::transport::Transport;

/// The async Carthooks client, generic over its [`Transport`].
///
/// Cheap to clone (one `Arc`); clones share the connection pool and the tokens.
/// `Send + Sync`: share it across tasks.
pub struct Client<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Client<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> std::fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> BuildClient for Client<T> {
    type Transport = T;
    fn from_parts(parts: Parts, transport: T) -> Self {
        Self {
            inner: parts.into_inner(transport),
        }
    }
}

impl<T: Transport> Client<T> {
    /// Starts building a client.
    pub fn builder() -> ClientBuilder<Self> {
        ClientBuilder::new()
    }

    engine_methods!(async; [.await]);

    /// Waits for a token request in flight to end, or for `deadline`; false when
    /// the deadline came first.
    async fn wait_until(&self, listener: EventListener, deadline: Option<Instant>) -> bool {
        let Some(deadline) = deadline else {
            listener.await;
            return true;
        };
        let mut timer = self
            .inner
            .transport
            .sleep(deadline.saturating_duration_since(Instant::now()));
        let mut listener = std::pin::pin!(listener);
        std::future::poll_fn(|cx| {
            if listener.as_mut().poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            timer.as_mut().poll(cx).map(|()| false)
        })
        .await
    }

    /// Runs blocking work on the transport's blocking pool.
    async fn run_blocking(&self, job: BlockingJob) {
        self.inner.transport.run_blocking(job).await;
    }
    api_methods!(async; ItemStream; .await);
}
