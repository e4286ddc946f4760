//! A transport of your own, written against the `carthooks` facade alone.
//!
//! `Stamped` wraps the default reqwest transport: every request gets an
//! `x-request-id` header, and every exchange is logged with its method, status
//! and duration. The same shape adapts the SDK to any HTTP stack: implement
//! `carthooks::Transport` (`send`, `sleep`, optionally `run_blocking`) and build
//! with `build_with_transport`.
//!
//! `cargo run --example custom_transport` — against the embedded fake server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use carthooks::http::HeaderValue;
use carthooks::{
    AsyncClient, BoxFuture, HttpRequest, HttpResponse, ItemsQuery, OAuthConfig, ReqwestTransport,
    Transport, TransportConfig, TransportError,
};

/// Stamps and logs every request, then hands it to `inner`.
struct Stamped<T> {
    inner: T,
    next_id: AtomicU64,
}

impl<T: Transport> Transport for Stamped<T> {
    fn send(
        &self,
        mut request: HttpRequest,
    ) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        request
            .headers_mut()
            .insert("x-request-id", HeaderValue::from(id));
        // Log the method, not the path or headers: a path can carry a user token
        // (`/v1/user-token/{token}`), a header the bearer token.
        let method = request.method().clone();
        Box::pin(async move {
            let started = Instant::now();
            let answer = self.inner.send(request).await;
            let took = started.elapsed();
            match &answer {
                Ok(response) => {
                    println!("  [#{id}] {method} -> {} in {took:.1?}", response.status())
                }
                Err(e) => println!("  [#{id}] {method} -> {e} after {took:.1?}"),
            }
            answer
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        self.inner.sleep(duration)
    }

    fn run_blocking(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'_, ()> {
        self.inner.run_blocking(job)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The embedded fake Carthooks server, on a free loopback port.
    let server = carthooks_mock::MockServer::start()?;
    println!("fake Carthooks at {}", server.url());

    let transport = Stamped {
        inner: ReqwestTransport::new(&TransportConfig::default().with_max_connections(16))?,
        next_id: AtomicU64::new(1),
    };
    let client = AsyncClient::builder()
        .without_env()
        .base_url(server.url())
        .oauth(OAuthConfig::new(
            carthooks_mock::DEFAULT_CLIENT_ID,
            carthooks_mock::DEFAULT_CLIENT_SECRET,
        ))
        .build_with_transport(transport)?;

    println!("client credentials grant:");
    let tokens = client.initialize_oauth(None).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    if let Some(left) = tokens.expires_in(now) {
        println!("  token valid for {} h", left / 3600);
    }
    println!("current user:");
    let me = client.get_current_user().await?;
    println!("  {} (tenant {})", me.data.username, me.data.tenant_name);
    println!("first page of items:");
    let page = client
        .get_items(
            carthooks_mock::DEFAULT_APP_ID,
            carthooks_mock::DEFAULT_COLLECTION_ID,
            &ItemsQuery::new().limit(3),
        )
        .await?;
    println!("  {} items", page.data.len());

    // What the server received: every request carries the stamp.
    let state = server.state();
    let stamps: Vec<&str> = state
        .log()
        .iter()
        .filter_map(|r| r.headers.iter().find(|(name, _)| name == "x-request-id"))
        .map(|(_, value)| value.as_str())
        .collect();
    println!("the server saw x-request-id {}", stamps.join(", "));
    if stamps.len() != state.log().len() {
        return Err("a request went out without its x-request-id".into());
    }
    Ok(())
}
