//! Events leave the request path through a bounded queue; a writer stores them in
//! batches. A full queue drops the event and counts it: it never blocks a request.
//! The writer also raises alerts: findings at or above the configured severity are
//! stored with their event, in the same transaction, off the request path.

use portcullis_core::alert::{Alert, Severity};
use portcullis_core::drain::Shutdown;
use portcullis_core::proxy::{ProxyEvent, ProxyStatus};
use portcullis_store::{DynStore, Store, StoreError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

pub const QUEUE_CAPACITY: usize = 10_000;
const BATCH: usize = 1000;
/// How long the writer lets events gather after the first one of a batch.
const GATHER_FOR: Duration = Duration::from_millis(100);
/// Live messages a slow subscriber may fall behind by before it loses the oldest.
pub const LIVE_CAPACITY: usize = 1024;

/// What the console's WebSocket pushes as it happens: an exchange, an alert it
/// raised, a proxy's new status. Serialised as `{"type": ..., "data": ...}`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum LiveMessage {
    Event(ProxyEvent),
    Alert(Alert),
    ProxyStatus(ProxyStatusChange),
}

/// A proxy's status after a start, stop, restart or failure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProxyStatusChange {
    pub proxy_id: String,
    pub proxy_name: String,
    pub status: ProxyStatus,
}

/// The lossy fan-out behind [`LiveMessage`]: publishing never waits, costs nothing
/// without subscribers, and a subscriber that lags loses messages (it is told).
#[derive(Clone)]
pub struct Live(tokio::sync::broadcast::Sender<LiveMessage>);

impl Live {
    fn new() -> Self {
        Self(tokio::sync::broadcast::channel(LIVE_CAPACITY).0)
    }

    pub fn publish(&self, message: impl FnOnce() -> LiveMessage) {
        if self.0.receiver_count() > 0 {
            let _ = self.0.send(message());
        }
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<LiveMessage> {
        self.0.subscribe()
    }

    /// A feed nobody can subscribe to (a runtime not attached to a data plane).
    pub fn detached() -> Self {
        Self(tokio::sync::broadcast::channel(1).0)
    }

    /// Stores an alert raised outside the event writer (budgets, MCP rug pulls,
    /// A2A card changes) and publishes it when it is new, as the writer does with
    /// the alerts of findings. `false` when the store had it already.
    pub async fn raise_alert(&self, store: &dyn Store, alert: &Alert) -> Result<bool, StoreError> {
        let new = store.raise_alert(alert).await?;
        if new {
            self.publish(|| LiveMessage::Alert(alert.clone()));
        }
        Ok(new)
    }
}

#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<ProxyEvent>,
    /// Cuts the writer's gathering short when the queue is half full.
    filling: Arc<Notify>,
    dropped: Counter,
    /// Live subscribers (the console's WebSocket); lossy by design.
    live: Live,
}

impl EventSink {
    pub fn emit(&self, event: ProxyEvent) {
        self.live.publish(|| LiveMessage::Event(event.clone()));
        if self.tx.try_send(event).is_err() {
            self.dropped.inc();
        }
        if self.tx.capacity() < QUEUE_CAPACITY / 2 {
            self.filling.notify_one();
        }
    }

    /// The live feed: events as emitted, alerts as stored, proxy status changes.
    pub fn live(&self) -> &Live {
        &self.live
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeverityLabel {
    pub severity: String,
}

/// Which findings become alerts, and the counter of alerts raised.
#[derive(Clone, Default)]
pub struct AlertSettings {
    /// None: no alerts.
    pub min_severity: Option<Severity>,
    pub raised: Family<SeverityLabel, Counter>,
}

impl AlertSettings {
    /// Registers `portcullis_alerts_total{severity}`.
    pub fn register(registry: &mut Registry, min_severity: Option<Severity>) -> Self {
        let raised = Family::<SeverityLabel, Counter>::default();
        registry.register(
            "portcullis_alerts",
            "Alerts raised from policy findings",
            raised.clone(),
        );
        Self {
            min_severity,
            raised,
        }
    }
}

/// Starts the writer; it flushes what is queued when `shutdown` triggers.
pub fn start(
    store: DynStore,
    dropped: Counter,
    write_failures: Counter,
    alerts: AlertSettings,
    shutdown: Shutdown,
) -> (EventSink, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<ProxyEvent>(QUEUE_CAPACITY);
    let filling = Arc::new(Notify::new());
    let writer_filling = filling.clone();
    let live = Live::new();
    let writer_live = live.clone();
    let task = tokio::spawn(async move {
        let live = writer_live;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let stopping = tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => n == 0,
                _ = shutdown.triggered() => true,
            };
            if stopping {
                // Take whatever is still queued, then stop.
                while let Ok(event) = rx.try_recv() {
                    batch.push(event);
                    if batch.len() >= BATCH {
                        write(&store, &mut batch, &write_failures, &alerts, &live).await;
                    }
                }
                write(&store, &mut batch, &write_failures, &alerts, &live).await;
                return;
            }
            // Let a batch gather before writing, unless one is full already. The
            // writer sleeps rather than waking on every event: under load that
            // is one thread wake-up and one SQLite transaction per batch, not
            // per exchange.
            if batch.len() < BATCH {
                tokio::select! {
                    _ = tokio::time::sleep(GATHER_FOR) => {}
                    _ = writer_filling.notified() => {}
                    _ = shutdown.triggered() => {}
                }
            }
            loop {
                while batch.len() < BATCH {
                    let Ok(event) = rx.try_recv() else { break };
                    batch.push(event);
                }
                let full = batch.len() >= BATCH;
                write(&store, &mut batch, &write_failures, &alerts, &live).await;
                if !full {
                    break;
                }
            }
        }
    });
    (
        EventSink {
            tx,
            filling,
            dropped,
            live,
        },
        task,
    )
}

async fn write(
    store: &DynStore,
    batch: &mut Vec<ProxyEvent>,
    failures: &Counter,
    alerts: &AlertSettings,
    live: &Live,
) {
    if batch.is_empty() {
        return;
    }
    // One retry covers a busy SQLite or a PostgreSQL fail-over blip.
    for attempt in 0..2 {
        match store.insert_events(batch, alerts.min_severity).await {
            Ok(raised) => {
                for alert in &raised {
                    alerts
                        .raised
                        .get_or_create(&SeverityLabel {
                            severity: alert.severity.as_str().to_owned(),
                        })
                        .inc();
                }
                for alert in raised {
                    live.publish(|| LiveMessage::Alert(alert));
                }
                break;
            }
            Err(e) if attempt == 0 => {
                tracing::warn!(error = %e, events = batch.len(), "event write failed; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                failures.inc_by(batch.len() as u64);
                tracing::error!(error = %e, events = batch.len(), "events lost: store unavailable");
            }
        }
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test code: a failed step should stop the test"
    )]
    use super::*;
    use portcullis_core::alert::AlertStatus;

    fn alert(event_id: &str) -> Alert {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        Alert {
            id: portcullis_core::id::new_id_at(now),
            created_at: now,
            event_id: event_id.into(),
            proxy_id: "p".into(),
            proxy_name: "tools".into(),
            rule: "mcp-rug-pull".into(),
            category: "tool_changed".into(),
            severity: Severity::High,
            action: "quarantine".into(),
            location: "tool_definition".into(),
            key_id: None,
            group_id: None,
            status: AlertStatus::Open,
            status_changed_at: None,
            status_changed_by: None,
            note: None,
        }
    }

    fn event(n: u64) -> ProxyEvent {
        ProxyEvent {
            id: portcullis_core::id::new_id(),
            at: jiff::Timestamp::now(),
            proxy_id: "p".into(),
            proxy_name: "llm".into(),
            endpoint: "chat_completions".into(),
            key_id: None,
            group_id: None,
            end_user: None,
            model: Some(format!("model-{n}")),
            status: 200,
            decision: portcullis_core::proxy::Decision::Allowed,
            error: None,
            stream: false,
            latency_us: n,
            ttft_us: None,
            overhead_us: 1,
            input_tokens: n,
            output_tokens: 0,
            cached_tokens: 0,
            request_bytes: 0,
            response_bytes: 0,
            findings: serde_json::json!([]),
            cost_usd: None,
        }
    }

    async fn stored(store: &DynStore) -> usize {
        store
            .list_events(&portcullis_store::EventFilter {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap()
            .len()
    }

    #[tokio::test]
    async fn gathered_events_are_written_and_a_shutdown_flushes_them_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(
            portcullis_store::SqliteStore::open(&dir.path().join("e.db"))
                .await
                .unwrap(),
        );
        let dropped = Counter::default();
        let shutdown = Shutdown::new();
        let (sink, writer) = start(
            store.clone(),
            dropped.clone(),
            Counter::default(),
            AlertSettings::default(),
            shutdown.clone(),
        );
        // Written after the gathering pause, without a shutdown.
        for n in 0..3 {
            sink.emit(event(n));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while stored(&store).await < 3 {
            assert!(std::time::Instant::now() < deadline, "events not written");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // More than half the queue at once: the writer stops gathering, nothing
        // is dropped.
        for n in 0..(QUEUE_CAPACITY as u64 * 3 / 4) {
            sink.emit(event(n));
        }
        // A shutdown in the middle of a pause: everything queued is written.
        sink.emit(event(99));
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .expect("the writer stops promptly")
            .unwrap();
        assert_eq!(dropped.get(), 0);
        assert_eq!(stored(&store).await, 3 + QUEUE_CAPACITY * 3 / 4 + 1);
    }

    #[tokio::test]
    async fn an_alert_raised_outside_the_writer_is_stored_and_published_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = portcullis_store::SqliteStore::open(&dir.path().join("a.db"))
            .await
            .unwrap();
        let live = Live::new();
        let mut feed = live.subscribe();

        assert!(live.raise_alert(&store, &alert("e1")).await.unwrap());
        match feed.try_recv().unwrap() {
            LiveMessage::Alert(a) => assert_eq!(
                (a.event_id.as_str(), a.rule.as_str()),
                ("e1", "mcp-rug-pull")
            ),
            other => panic!("not an alert: {other:?}"),
        }
        // The same alert again (another replica, a repeated listing): not new, not published.
        let mut again = alert("e1");
        again.id = portcullis_core::id::new_id();
        assert!(!live.raise_alert(&store, &again).await.unwrap());
        assert!(feed.try_recv().is_err());
        let stored = store
            .list_alerts(&portcullis_store::AlertFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);

        // A detached feed stores without publishing anywhere.
        assert!(Live::detached()
            .raise_alert(&store, &alert("e2"))
            .await
            .unwrap());
        assert!(feed.try_recv().is_err());
    }
}
