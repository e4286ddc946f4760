//! The behavioural suite on the async reqwest backend, and what only the async
//! client has: a runtime to need and an executor to keep free.

carthooks_tests::suite!(carthooks_tests::ReqwestSdk);

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::ThreadId;

use carthooks_client::TokenStore;
use carthooks_core::OAuthTokens;
use carthooks_mock::MockServer;

/// Drives a future on this thread without any runtime.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Hardening item 13: outside a tokio runtime the async client returns a clear
/// error instead of panicking ("no reactor running").
#[test]
fn async_client_outside_a_runtime_is_a_clear_error() {
    let server = MockServer::start().unwrap();
    let client = carthooks_reqwest::Client::builder()
        .without_env()
        .base_url(server.url())
        .oauth(carthooks_tests::oauth())
        .build()
        .unwrap();
    let e = block_on(client.initialize_oauth(None)).unwrap_err();
    let t = e.transport_error().expect("a transport error");
    assert!(t.never_sent());
    assert!(e.to_string().contains("tokio runtime"), "{e}");
    assert_eq!(server.counters().requests, 0, "nothing was sent");
}

/// Records the thread of every save.
#[derive(Default)]
struct ThreadRecordingStore(Mutex<Vec<ThreadId>>);

impl TokenStore for ThreadRecordingStore {
    fn load(&self) -> std::io::Result<Option<OAuthTokens>> {
        Ok(None)
    }
    fn save(&self, _: &OAuthTokens) -> std::io::Result<()> {
        self.0.lock().unwrap().push(std::thread::current().id());
        Ok(())
    }
}

/// Hardening item 15: the blocking token store and the user's callback never run
/// on the executor's thread.
#[test]
fn store_and_callback_run_off_the_executor() {
    let server = MockServer::start().unwrap();
    let store = Arc::new(ThreadRecordingStore::default());
    let callbacks: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let sink = Arc::clone(&callbacks);
    let client = carthooks_reqwest::Client::builder()
        .without_env()
        .base_url(server.url())
        .oauth(
            carthooks_tests::oauth()
                .on_token_refresh(move |_| sink.lock().unwrap().push(std::thread::current().id())),
        )
        .token_store(store.clone())
        .build()
        .unwrap();
    // A current-thread runtime: its only executor thread is this one.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let executor = std::thread::current().id();
    runtime.block_on(async {
        client.initialize_oauth(None).await.unwrap();
        client.refresh_oauth_token(None).await.unwrap();
        client.get_current_user().await.unwrap();
    });
    let saves = store.0.lock().unwrap().clone();
    let calls = callbacks.lock().unwrap().clone();
    assert_eq!((saves.len(), calls.len()), (2, 2));
    assert!(
        saves.iter().chain(&calls).all(|t| *t != executor),
        "blocking work ran on the executor thread"
    );
}
