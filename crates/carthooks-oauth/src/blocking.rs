//! The blocking client.

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
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::call_timeout_error;
use crate::api::{api_methods, engine_methods};
use crate::auth::{BlockingJob, Flight, GrantStep, Step};
use crate::builder::{BuildClient, ClientBuilder, Inner, Parts};
use crate::log::{CallSpan, event};
use crate::pages::ItemIter;
use crate::transport::BlockingTransport;
use event_listener::{EventListener, Listener as _};

/// The blocking Carthooks client, generic over its [`BlockingTransport`].
///
/// Cheap to clone (one `Arc`); clones share the connection pool and the tokens.
/// `Send + Sync`: share it across threads.
pub struct BlockingClient<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for BlockingClient<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> std::fmt::Debug for BlockingClient<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl<T: BlockingTransport> BuildClient for BlockingClient<T> {
    type Transport = T;
    fn from_parts(parts: Parts, transport: T) -> Self {
        Self {
            inner: parts.into_inner(transport),
        }
    }
}

impl<T: BlockingTransport> BlockingClient<T> {
    /// Starts building a client.
    pub fn builder() -> ClientBuilder<Self> {
        ClientBuilder::new()
    }

    engine_methods!(; []);

    /// Waits for a token request in flight to end, or for `deadline`; false when
    /// the deadline came first.
    fn wait_until(&self, listener: EventListener, deadline: Option<Instant>) -> bool {
        match deadline {
            None => {
                listener.wait();
                true
            }
            Some(deadline) => listener.wait_deadline(deadline).is_some(),
        }
    }

    /// Runs blocking work in place: this client's caller may block.
    fn run_blocking(&self, job: BlockingJob) {
        job();
    }
    api_methods!(; ItemIter;);
}
