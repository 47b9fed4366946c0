//! Argus WireGuard API: GraphQL over poem, reading projections only and writing through the log.
//!
//! Every operation needs `Authorization: Bearer <JWT>`; the token's organisation scopes every read
//! and write and its clearance hides peers above it. See `schemas/graphql/argus.graphql`.

pub mod auth;
mod cache;
mod cached;

mod direct;
mod events;
mod export;
mod http;
mod ingest;
mod limits;
mod live;
mod object;
pub mod page;
pub mod schema;
mod types;

use std::sync::Arc;
use std::time::Duration;

use argus_core::codec::AlertEncoding;
use argus_core::{Alert, CollectorId};
use argus_store::ProjectionStore;
use serde::Deserialize;
use tokio::sync::broadcast;

pub use self::events::{EventPublisher, PublishError, RecordSink};
pub use self::http::{metrics_routes, prometheus, routes};
pub use self::ingest::{IngestConfig, IngestConfigError, ingest_routes, serve_ingest};
pub use self::live::run_alert_feed;

/// Page size when `first` is not given, unless configured otherwise.
const DEFAULT_PAGE_SIZE: usize = 50;

/// What the API needs to know beyond its keys; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Deepest query accepted.
    pub max_depth: usize,
    /// Most costly query accepted: a point per field selected and about one per row the store
    /// reads for it (a page's `first`, the hours a time range spans); see `limits::cost`.
    pub max_complexity: usize,
    /// Page size when `first` is not given.
    pub default_page_size: usize,
    /// Largest `first` accepted.
    pub max_page_size: usize,
    /// Longest time range of a peer's history, endpoint moves or activity, in days.
    pub max_time_range_days: u32,
    /// A request costing at least this much is expensive: it holds one of the slots below while it runs.
    pub expensive_cost: usize,
    /// Expensive requests one caller (organisation and subject) may have running; more are refused.
    pub max_expensive_per_caller: usize,
    /// Expensive requests running at once in this API; more wait for a slot within their deadline.
    pub max_expensive_requests: usize,
    /// Longest a query or mutation may run before it is answered with `DEADLINE_EXCEEDED`.
    #[serde(with = "millis", rename = "request_deadline_ms")]
    pub request_deadline: Duration,
    /// Largest request body accepted (413 above it), and largest WebSocket message.
    pub max_body_bytes: usize,
    /// How long a WebSocket may stay open without a `connection_init`.
    #[serde(with = "millis", rename = "socket_init_timeout_ms")]
    pub socket_init_timeout: Duration,
    /// Operations (subscriptions included) one WebSocket may have running.
    pub max_subscriptions_per_socket: usize,
    /// WebSockets open at once in this API; more upgrades are answered 503.
    pub max_open_sockets: usize,
    /// How long `syncWireguardPeer` waits for the processor to project the peer.
    #[serde(with = "millis", rename = "sync_wait_ms")]
    pub sync_wait: Duration,
    /// Where collectors and the API publish events.
    pub observations_topic: String,
    /// Where the processor publishes alerts (read for live subscriptions).
    pub alerts_topic: String,
    pub alert_encoding: AlertEncoding,
    /// This API instance's collector id on the log; unique per replica.
    pub instance_id: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_depth: 10,
            max_complexity: 20_000,
            default_page_size: DEFAULT_PAGE_SIZE,
            max_page_size: 500,
            max_time_range_days: 31,
            expensive_cost: 1_000,
            max_expensive_per_caller: 2,
            max_expensive_requests: 4,
            request_deadline: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            socket_init_timeout: Duration::from_secs(10),
            max_subscriptions_per_socket: 16,
            max_open_sockets: 1_024,
            sync_wait: Duration::from_secs(3),
            observations_topic: "wireguard.observations".into(),
            alerts_topic: "wireguard.alerts".into(),
            alert_encoding: AlertEncoding::Avro,
            instance_id: "api-1".into(),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// What every resolver reads: the store, the publisher, the live alert feed and the limits.
#[derive(Clone)]
pub struct ApiContext {
    pub store: Arc<dyn ProjectionStore>,
    pub publisher: Arc<EventPublisher>,
    pub live_alerts: broadcast::Sender<Arc<Alert>>,
    pub config: ApiConfig,
}

impl std::fmt::Debug for ApiContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiContext").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A configuration the API cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ApiConfigError {
    #[error("instance_id: {0}")]
    InstanceId(argus_core::ids::NameError),
}

impl ApiContext {
    /// The context for `store` and `sink` (usually the event log itself).
    pub fn new(
        store: Arc<dyn ProjectionStore>, sink: Arc<dyn RecordSink>, config: ApiConfig,
    ) -> Result<Self, ApiConfigError> {
        let collector_id: CollectorId = config.instance_id.parse().map_err(ApiConfigError::InstanceId)?;
        let publisher = Arc::new(EventPublisher::new(sink, config.observations_topic.clone(), collector_id));
        let (live_alerts, _) = broadcast::channel(1_024);
        let store: Arc<dyn ProjectionStore> = Arc::new(cached::CachedStore::new(store));
        Ok(Self { store, publisher, live_alerts, config })
    }
}

/// Serves `routes` on `listener` until `shutdown` resolves, then drains for up to 10 s.
pub async fn serve(
    listener: std::net::TcpListener, routes: impl poem::Endpoint + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let acceptor = poem::listener::TcpAcceptor::from_std(listener)?;
    poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(routes, shutdown, Some(Duration::from_secs(10)))
        .await
}
