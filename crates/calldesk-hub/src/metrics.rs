//! Prometheus metrics (`GET /metrics`, text exposition format): webhooks by result, call
//! updates, WebSocket clients and messages, snapshots by reason, latencies.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub webhooks: Family<ResultLabel, Counter>,
    pub call_updates: Counter,
    pub ws_clients: Gauge,
    pub ws_messages: Counter,
    pub ws_snapshots: Family<ResultLabel, Counter>,
    pub machine_requests: Family<ResultLabel, Counter>,
    pub logins: Family<ResultLabel, Counter>,
    /// Webhook received → persisted (the 200 goes out right after).
    pub webhook_persist_seconds: Histogram,
    /// PBX news received → call message handed to the WebSocket fan-out.
    pub event_publish_seconds: Histogram,
    /// One batched write of call states.
    pub db_batch_seconds: Histogram,
}

fn latency() -> Histogram {
    // 0.1 ms … ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("calldesk");
        let m = Self {
            webhooks: Family::default(),
            call_updates: Counter::default(),
            ws_clients: Gauge::default(),
            ws_messages: Counter::default(),
            ws_snapshots: Family::default(),
            machine_requests: Family::default(),
            logins: Family::default(),
            webhook_persist_seconds: latency(),
            event_publish_seconds: latency(),
            db_batch_seconds: latency(),
            registry: Registry::default(),
        };
        registry.register("webhooks", "Mango webhooks by result", m.webhooks.clone());
        registry.register(
            "call_updates",
            "Call updates published",
            m.call_updates.clone(),
        );
        registry.register(
            "ws_clients",
            "Connected WebSocket clients",
            m.ws_clients.clone(),
        );
        registry.register(
            "ws_messages",
            "Messages sent to WebSocket clients",
            m.ws_messages.clone(),
        );
        registry.register(
            "ws_snapshots",
            "Snapshots sent, by reason",
            m.ws_snapshots.clone(),
        );
        registry.register(
            "machine_requests",
            "Seed-compatible machine API requests by result",
            m.machine_requests.clone(),
        );
        registry.register("logins", "Operator logins by result", m.logins.clone());
        registry.register(
            "webhook_persist_seconds",
            "Webhook received to persisted",
            m.webhook_persist_seconds.clone(),
        );
        registry.register(
            "event_publish_seconds",
            "PBX news received to call message published",
            m.event_publish_seconds.clone(),
        );
        registry.register(
            "db_batch_seconds",
            "Batched call-state writes",
            m.db_batch_seconds.clone(),
        );
        // Known label values exist from the start, so dashboards see zeros, not gaps.
        seed(
            &m.webhooks,
            &[
                "ok",
                "bad_signature",
                "bad_form",
                "bad_payload",
                "unknown_tenant",
                "unknown_path",
                "not_stored",
            ],
        );
        seed(
            &m.machine_requests,
            &["ok", "unauthorized", "failed", "limited"],
        );
        seed(&m.logins, &["ok", "refused", "limited"]);
        seed(&m.ws_snapshots, &["connect", "lagged"]);
        Self { registry, ..m }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics did not encode");
        }
        out
    }
}

fn seed(family: &Family<ResultLabel, Counter>, results: &[&'static str]) {
    for &result in results {
        let _ = family.get_or_create(&ResultLabel { result });
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
