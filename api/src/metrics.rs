//! `GET /metrics`: the server's metrics in Prometheus' text format (SPEC
//! section 10), through the `prometheus` crate with a registry per
//! application (no global state: tests run several servers in one process).
//!
//! Counted as they happen: GraphQL requests by endpoint, operation name and
//! first error code (`OK` without errors), and their latency; the desk's
//! commit latency (append to acknowledgement). Read when scraped: the log
//! head, this node's applied position and tail lag, events appended and
//! fsyncs since open (`eventlog::CommitStats`), open websockets, live
//! subscriptions, and rate-limit refusals by limit.
//!
//! Operation names come from clients, so their label is bounded: a name
//! that is not a GraphQL name of at most [`MAX_OPERATION_CHARS`] characters
//! is `invalid`, no name is `anonymous`, and after [`MAX_OPERATIONS`]
//! distinct names every new one is `other`.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::desk::Desk;
use crate::ratelimit::Limiters;
use crate::websocket::Sockets;

/// Distinct operation names kept as labels; later ones are `other`.
pub(crate) const MAX_OPERATIONS: usize = 200;
/// Longest operation name kept as a label.
pub(crate) const MAX_OPERATION_CHARS: usize = 64;

/// Request latency buckets, in seconds (1 ms to the 10 s default deadline).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The metrics of one application.
pub(crate) struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    head: IntGauge,
    applied: IntGauge,
    lag: IntGauge,
    appended: IntCounter,
    fsyncs: IntCounter,
    websockets: IntGauge,
    subscriptions: IntGauge,
    refusals: IntCounterVec,
    /// The operation names seen so far (at most [`MAX_OPERATIONS`]); locked
    /// only to look up or insert a name.
    operations: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The desk's commit latency histogram, unregistered (the desk observes it;
/// [`Metrics::new`] registers it).
pub(crate) fn commit_latency() -> Option<Histogram> {
    Histogram::with_opts(
        HistogramOpts::new(
            "backchannel_commit_latency_seconds",
            "Time from handing events to the log to their durable acknowledgement.",
        )
        .buckets(LATENCY_BUCKETS.to_vec()),
    )
    .ok()
}

impl Metrics {
    /// Registers a collector kept elsewhere (the read audit's drop counter).
    pub(crate) fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        if let Err(err) = self.registry.register(collector) {
            tracing::warn!(%err, "a metric could not be registered");
        }
    }

    /// The metrics, registered; `commit` is the desk's commit latency.
    pub(crate) fn new(commit: Option<Histogram>) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "backchannel_graphql_requests_total",
                "GraphQL requests by endpoint, operation name and first error code (OK: none).",
            ),
            &["endpoint", "operation", "code"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "backchannel_graphql_request_duration_seconds",
                "GraphQL request execution time by endpoint.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["endpoint"],
        )?;
        let head = IntGauge::new("backchannel_log_head", "The log's last committed position.")?;
        let applied = IntGauge::new(
            "backchannel_applied_position",
            "The last position this node's read models applied.",
        )?;
        let lag = IntGauge::new(
            "backchannel_tail_lag",
            "Events committed but not yet applied by this node (head - applied).",
        )?;
        let appended = IntCounter::new(
            "backchannel_appended_events_total",
            "Events appended to the log since this node opened it.",
        )?;
        let fsyncs = IntCounter::new(
            "backchannel_log_fsyncs_total",
            "Flush and fsync rounds of the log since this node opened it.",
        )?;
        let websockets = IntGauge::new("backchannel_websockets_open", "Open websockets.")?;
        let subscriptions = IntGauge::new(
            "backchannel_subscriptions_open",
            "Live subscriptions registered for events.",
        )?;
        let refusals = IntCounterVec::new(
            Opts::new(
                "backchannel_rate_limited_total",
                "Requests refused by a rate limit, by limit.",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(head.clone()))?;
        registry.register(Box::new(applied.clone()))?;
        registry.register(Box::new(lag.clone()))?;
        registry.register(Box::new(appended.clone()))?;
        registry.register(Box::new(fsyncs.clone()))?;
        registry.register(Box::new(websockets.clone()))?;
        registry.register(Box::new(subscriptions.clone()))?;
        registry.register(Box::new(refusals.clone()))?;
        if let Some(commit) = commit {
            registry.register(Box::new(commit))?;
        }
        Ok(Metrics {
            registry,
            requests,
            latency,
            head,
            applied,
            lag,
            appended,
            fsyncs,
            websockets,
            subscriptions,
            refusals,
            operations: Mutex::new(HashSet::new()),
        })
    }

    /// Counts one executed GraphQL request.
    pub(crate) fn request(
        &self,
        endpoint: &str,
        operation: Option<&str>,
        code: Option<&str>,
        elapsed: Duration,
    ) {
        let operation = self.operation_label(operation);
        let code = code.map_or("OK", code_label);
        self.requests
            .with_label_values(&[endpoint, operation.as_str(), code])
            .inc();
        self.latency
            .with_label_values(&[endpoint])
            .observe(elapsed.as_secs_f64());
    }

    /// The bounded label of a client's operation name.
    fn operation_label(&self, operation: Option<&str>) -> String {
        let Some(name) = operation else {
            return "anonymous".to_owned();
        };
        if !is_graphql_name(name) || name.chars().count() > MAX_OPERATION_CHARS {
            return "invalid".to_owned();
        }
        let mut seen = self
            .operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seen.contains(name) {
            return name.to_owned();
        }
        if seen.len() >= MAX_OPERATIONS {
            return "other".to_owned();
        }
        seen.insert(name.to_owned());
        name.to_owned()
    }

    /// The registry in Prometheus' text format, with the gauges read now.
    pub(crate) fn render(
        &self,
        desk: Option<&Desk>,
        sockets: &Sockets,
        limiters: &Limiters,
    ) -> String {
        if let Some(desk) = desk {
            let head = desk.log().head();
            let applied = desk.applied_position();
            self.head.set(clamp(head));
            self.applied.set(clamp(applied));
            self.lag.set(clamp(head.saturating_sub(applied)));
            let stats = desk.log().commit_stats();
            catch_up(&self.appended, stats.events);
            catch_up(&self.fsyncs, stats.syncs);
            self.subscriptions
                .set(clamp(desk.live().registrations().0 as u64));
        }
        self.websockets.set(clamp(sockets.open_count() as u64));
        for (limit, refused) in limiters.refusals() {
            catch_up(&self.refusals.with_label_values(&[limit]), refused);
        }
        let mut text = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(text).unwrap_or_default()
    }
}

/// Advances a counter to `total` (a monotonic count kept elsewhere).
fn catch_up(counter: &IntCounter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// `/[_A-Za-z][_0-9A-Za-z]*/`, GraphQL's `Name`.
fn is_graphql_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Error codes are the server's own (a fixed set), checked all the same.
fn code_label(code: &str) -> &str {
    if code.len() <= 40 && code.chars().all(|c| c == '_' || c.is_ascii_uppercase()) {
        code
    } else {
        "invalid"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn operation_labels_are_bounded() {
        let metrics = Metrics::new(None).unwrap();
        assert_eq!(metrics.operation_label(None), "anonymous");
        assert_eq!(metrics.operation_label(Some("Inbox")), "Inbox");
        assert_eq!(metrics.operation_label(Some("a b")), "invalid");
        assert_eq!(metrics.operation_label(Some("1abc")), "invalid");
        assert_eq!(metrics.operation_label(Some(&"x".repeat(65))), "invalid");
        for n in 0..MAX_OPERATIONS * 2 {
            metrics.operation_label(Some(&format!("op{n}")));
        }
        assert_eq!(metrics.operation_label(Some("Inbox")), "Inbox");
        assert_eq!(metrics.operation_label(Some("Brandnew")), "other");
        assert_eq!(metrics.operations.lock().unwrap().len(), MAX_OPERATIONS);
    }
}
