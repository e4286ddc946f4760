//! Faults injected into the next requests, and connections dropped on accept.

use super::State;

/// A fault injected into the next matching requests (see
/// [`MockServer::inject`](crate::MockServer::inject)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status and an error envelope (code `INJECTED`), with a
    /// `Retry-After` header when given. The state is not touched.
    Status {
        /// HTTP status.
        status: u16,
        /// `Retry-After` value (seconds or an HTTP-date).
        retry_after: Option<String>,
    },
    /// Read the request, then close the connection without answering. The state
    /// is not touched.
    DropAfterRead,
    /// Handle the request (the state changes), then close the connection without
    /// answering: the client cannot know it took effect.
    DropAfterHandling,
    /// Answer 200 with JSON cut off in the middle.
    TruncatedBody,
    /// Answer 200 with malformed JSON.
    MalformedBody,
    /// Answer 502 with an HTML error page.
    HtmlErrorPage,
    /// Handle the request (the state changes), then wait this long before
    /// answering.
    Delay(std::time::Duration),
    /// Wait this long, then handle the request and answer (a slow server:
    /// what it answers is as fresh as if it were fast).
    SlowStart(std::time::Duration),
}

#[derive(Debug)]
pub(super) struct Injected {
    fault: Fault,
    remaining: u32,
    path_prefix: Option<String>,
}

impl State {
    /// Applies `fault` to the next `times` requests whose path starts with
    /// `path_prefix` (all paths when `None`). Faults apply in the order injected.
    pub fn inject(&mut self, fault: Fault, times: u32, path_prefix: Option<&str>) {
        self.faults.push(Injected {
            fault,
            remaining: times,
            path_prefix: path_prefix.map(str::to_owned),
        });
    }

    /// Closes the next `n` connections as soon as they are accepted.
    pub fn drop_next_connections(&mut self, n: u32) {
        self.drop_connections += n;
    }

    /// Removes every pending fault.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
        self.drop_connections = 0;
    }

    /// Called when a connection is accepted: true when it is to be dropped.
    pub fn take_connection_drop(&mut self) -> bool {
        self.counters.connections += 1;
        if self.drop_connections == 0 {
            return false;
        }
        self.drop_connections -= 1;
        self.counters.dropped_connections += 1;
        true
    }

    /// Called when a request that [`arrive`](Self::arrive)d is answered (or
    /// dropped).
    pub fn depart(&mut self) {
        self.counters.in_flight = self.counters.in_flight.saturating_sub(1);
    }

    /// Called when a request for `path` arrives: counts it and hands back the
    /// fault to apply, if any.
    pub fn arrive(&mut self, path: &str) -> Option<Fault> {
        self.counters.received += 1;
        self.counters.in_flight += 1;
        self.counters.peak_in_flight = self.counters.peak_in_flight.max(self.counters.in_flight);
        *self
            .counters
            .received_by_path
            .entry(path.to_owned())
            .or_default() += 1;
        let at = self.faults.iter().position(|f| {
            f.remaining > 0
                && f.path_prefix
                    .as_deref()
                    .is_none_or(|prefix| path.starts_with(prefix))
        })?;
        let injected = &mut self.faults[at];
        injected.remaining -= 1;
        let fault = injected.fault.clone();
        if injected.remaining == 0 {
            self.faults.remove(at);
        }
        self.counters.faults += 1;
        Some(fault)
    }
}
