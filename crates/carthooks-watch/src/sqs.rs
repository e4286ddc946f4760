//! The SQS calls the watcher makes, over the official AWS SDK, with errors
//! turned into [`WatchError`]s (matched on the SDK's typed variants).

use std::time::Duration;

use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use tokio::time::Instant;

use crate::WatchError;

/// Region used when the environment names none (the Python SDK's default).
const DEFAULT_REGION: &str = "ap-southeast-1";

/// An SQS client from `aws-config`'s standard chain: credentials, region
/// (default `ap-southeast-1`, as in the Python SDK) and endpoint
/// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SQS`) from the environment, profile
/// files or the instance.
pub async fn sqs_client_from_env() -> aws_sdk_sqs::Client {
    let config = aws_config_loader().load().await;
    let mut sqs = aws_sdk_sqs::config::Builder::from(&config);
    if config.region().is_none() {
        sqs = sqs.region(aws_sdk_sqs::config::Region::new(DEFAULT_REGION));
    }
    aws_sdk_sqs::Client::from_conf(sqs.build())
}

/// `aws-config`'s loader with HTTPS over rustls with *ring* (as everywhere in
/// this SDK, so no second crypto library is built), for settings of your own:
///
/// ```no_run
/// # async fn f() {
/// let config = carthooks_watch::aws_config_loader()
///     .endpoint_url("http://127.0.0.1:5000")
///     .load()
///     .await;
/// let sqs = carthooks_watch::aws_sdk_sqs::Client::new(&config);
/// # }
/// ```
pub fn aws_config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client())
}

/// The AWS SDK's hyper client over rustls with the *ring* provider.
fn https_client() -> aws_sdk_sqs::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// An SDK error as text: the service's code and message, or the connection's.
fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    DisplayErrorContext(e).to_string()
}

fn failed<E, R>(operation: &'static str, e: &SdkError<E, R>) -> WatchError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    WatchError::Sqs {
        operation,
        message: describe(e),
    }
}

/// The errors of operations on one queue, which may say it does not exist.
trait OnQueue {
    fn queue_missing(&self) -> bool;
}

impl OnQueue for aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError {
    fn queue_missing(&self) -> bool {
        self.is_queue_does_not_exist()
    }
}

impl OnQueue for aws_sdk_sqs::operation::receive_message::ReceiveMessageError {
    fn queue_missing(&self) -> bool {
        self.is_queue_does_not_exist()
    }
}

/// [`WatchError::QueueNotFound`] when SQS says there is no such queue, else
/// the failure of `operation`.
fn queue_failed<E, R>(operation: &'static str, e: &SdkError<E, R>) -> WatchError
where
    E: OnQueue + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if e.as_service_error().is_some_and(OnQueue::queue_missing) {
        WatchError::QueueNotFound
    } else {
        failed(operation, e)
    }
}

/// The queue's visibility timeout; [`WatchError::QueueNotFound`] if there is
/// no such queue.
pub(crate) async fn queue_visibility(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<Duration, WatchError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .map_err(|e| queue_failed("GetQueueAttributes", &e))?;
    let seconds = out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(30);
    Ok(Duration::from_secs(seconds))
}

/// A message as received.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) message_id: String,
    pub(crate) receipt_handle: String,
    pub(crate) body: String,
    pub(crate) receive_count: u32,
    /// When the receive returned: its visibility timeout runs from about then.
    pub(crate) received_at: Instant,
    /// When SQS got the message (`SentTimestamp`).
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) sent_at: Option<std::time::SystemTime>,
    /// The producer's trace context: the `traceparent` and `tracestate`
    /// message attributes, and SQS's `AWSTraceHeader` (X-Ray's).
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) traceparent: Option<String>,
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) tracestate: Option<String>,
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) aws_trace_header: Option<String>,
    /// A FIFO queue's `MessageGroupId` (none on a standard queue).
    pub(crate) group_id: Option<String>,
}

/// Up to `max` messages, waiting up to `wait` for the first. On a FIFO
/// queue, `attempt` is the `ReceiveRequestAttemptId`: a retry of this call
/// by the AWS SDK (the answer lost on the way) gets the same messages back
/// rather than leave them, and their groups, out of reach for a visibility
/// timeout.
pub(crate) async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: i32,
    wait: Duration,
    visibility: Duration,
    attempt: Option<String>,
) -> Result<Vec<Received>, WatchError> {
    let asked = Instant::now();
    let out = sqs
        .receive_message()
        .set_receive_request_attempt_id(attempt)
        .queue_url(queue_url)
        .max_number_of_messages(max)
        .wait_time_seconds(wait.as_secs() as i32)
        .visibility_timeout(seconds(visibility))
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
        .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
        .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
        .send()
        .await
        .map_err(|e| queue_failed("ReceiveMessage", &e))?;
    Ok(out
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| {
            // A message without a receipt handle cannot be settled; SQS always
            // sends one.
            let receipt_handle = m.receipt_handle?;
            let system = |name: &MessageSystemAttributeName| {
                m.attributes.as_ref().and_then(|a| a.get(name)).cloned()
            };
            let attribute = |name: &str| {
                m.message_attributes
                    .as_ref()
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.string_value.clone())
            };
            let receive_count = system(&MessageSystemAttributeName::ApproximateReceiveCount)
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            Some(Received {
                sent_at: system(&MessageSystemAttributeName::SentTimestamp)
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|ms| std::time::UNIX_EPOCH + Duration::from_millis(ms)),
                traceparent: attribute("traceparent"),
                tracestate: attribute("tracestate"),
                aws_trace_header: system(&MessageSystemAttributeName::AwsTraceHeader),
                group_id: system(&MessageSystemAttributeName::MessageGroupId),
                message_id: m.message_id.unwrap_or_default(),
                receipt_handle,
                body: m.body.unwrap_or_default(),
                receive_count,
                received_at: asked,
            })
        })
        .collect())
}

/// Whole seconds, as SQS wants them, within its 0 to 12 h range: rounded
/// up, so that a delay asked for is never cut short (a nack of 500 ms hides
/// the message for 1 s, not 0 s).
fn seconds(d: Duration) -> i32 {
    let whole = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    whole.min(43_200) as i32
}

/// Sets a message's visibility timeout to `timeout` from now.
pub(crate) async fn change_visibility(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipt_handle: &str,
    timeout: Duration,
) -> Result<(), WatchError> {
    sqs.change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt_handle)
        .visibility_timeout(seconds(timeout))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| failed("ChangeMessageVisibility", &e))
}

/// Deletes up to 10 messages in one call; one result per handle, in order.
pub(crate) async fn delete_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipt_handles: &[&str],
) -> Vec<Result<(), WatchError>> {
    let entries: Result<Vec<_>, _> = receipt_handles
        .iter()
        .enumerate()
        .map(|(i, handle)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(*handle)
                .build()
        })
        .collect();
    let all = |e: WatchError| {
        receipt_handles
            .iter()
            .map(|_| {
                Err(WatchError::Sqs {
                    operation: "DeleteMessageBatch",
                    message: e.to_string(),
                })
            })
            .collect()
    };
    let entries = match entries {
        Ok(entries) => entries,
        Err(e) => {
            return all(WatchError::Sqs {
                operation: "DeleteMessageBatch",
                message: e.to_string(),
            });
        }
    };
    let out = match sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => return all(failed("DeleteMessageBatch", &e)),
    };
    let mut results: Vec<Result<(), WatchError>> = receipt_handles
        .iter()
        .map(|_| {
            Err(WatchError::Sqs {
                operation: "DeleteMessageBatch",
                message: "no result for this entry".into(),
            })
        })
        .collect();
    for ok in out.successful() {
        if let Some(slot) = ok
            .id()
            .parse::<usize>()
            .ok()
            .and_then(|i| results.get_mut(i))
        {
            *slot = Ok(());
        }
    }
    for failure in out.failed() {
        if let Some(slot) = failure
            .id()
            .parse::<usize>()
            .ok()
            .and_then(|i| results.get_mut(i))
        {
            *slot = Err(WatchError::Sqs {
                operation: "DeleteMessageBatch",
                message: format!(
                    "{}: {}",
                    failure.code(),
                    failure.message().unwrap_or("no message")
                ),
            });
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_to_whole_seconds_within_twelve_hours() {
        assert_eq!(seconds(Duration::ZERO), 0);
        assert_eq!(seconds(Duration::from_millis(1)), 1);
        assert_eq!(seconds(Duration::from_millis(500)), 1);
        assert_eq!(seconds(Duration::from_secs(1)), 1);
        assert_eq!(seconds(Duration::from_millis(1_001)), 2);
        assert_eq!(seconds(Duration::from_secs(30)), 30);
        assert_eq!(seconds(Duration::from_secs(86_400)), 43_200);
        assert_eq!(seconds(Duration::MAX), 43_200);
    }
}
