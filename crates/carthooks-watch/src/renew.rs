//! Keeping the watch registered for as long as a run lasts.

use std::sync::Arc;
use std::time::Duration;

use carthooks_client::WatchDataRequest;

use crate::{Counters, Problem, Shared, backoff};

/// Registers the watch again every `interval`; a failure is retried with a
/// backoff from 1 s up to a tenth of the age (at most 60 s).
pub(crate) async fn renew(shared: Arc<Shared>, registration: WatchDataRequest, interval: Duration) {
    let cap = Duration::from_secs((registration.age / 10).clamp(1, 60));
    loop {
        tokio::time::sleep(interval).await;
        let mut attempt = 0u32;
        loop {
            match shared.client.start_watch_data(&registration).await {
                Ok(_) => {
                    Counters::bump(&shared.counters.registrations, 1);
                    tracing::debug!(watch = %registration.name, "watch renewed");
                    break;
                }
                Err(e) => {
                    attempt = attempt.saturating_add(1);
                    Counters::bump(&shared.counters.renewal_failures, 1);
                    let retry_in = backoff(Duration::from_secs(1), cap, attempt);
                    shared.report(Problem::RenewalFailed {
                        attempt,
                        error: e.to_string(),
                        retry_in,
                    });
                    tokio::time::sleep(retry_in).await;
                }
            }
        }
    }
}
