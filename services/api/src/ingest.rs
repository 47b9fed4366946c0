//! The ingest endpoint of a central `argus run`: batches of remote collectors' events, each
//! authenticated by a collector credential, checked against the collector registry, appended to
//! the log and acknowledged only once durable.
//!
//! A batch is taken or refused whole: a record that does not decode, claims another collector, or
//! speaks for an organisation or host outside the collector's grant refuses the batch, naming the
//! record and the reason. The collector keeps such a batch and retries it, so nothing is lost
//! while a registry or a version is put right.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use argus_core::CollectorRegistry;
use argus_core::codec::decode_event;
use argus_core::ids::partition_key;
use argus_log::ingest::{Accepted, INGEST_PATH, records_of};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::http::{HeaderValue, StatusCode, header};
use poem::middleware::SizeLimit;
use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Request, Response, Route, handler, post};
use serde::Deserialize;
use tracing::warn;

use crate::RecordSink;
use crate::auth::{AuthError, Authenticator};

/// `[ingest]`: the listener remote collectors push to (off unless `listen` is set).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Where collectors connect, e.g. `0.0.0.0:8443`; unset: no ingest.
    pub listen: Option<SocketAddr>,
    /// The server certificate chain (PEM) collectors verify.
    pub certificate_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub private_key_file: Option<PathBuf>,
    /// Serve plain HTTP instead of TLS: only on a loopback `listen`, and only when set.
    pub plain_http: bool,
    /// Most records in one batch (413 above it).
    pub max_batch_records: usize,
    /// Largest batch body (413 above it).
    pub max_batch_bytes: usize,
    /// Records one collector may send per second, on average (429 above it; bursts of one second).
    pub max_records_per_second: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: None,
            certificate_file: None,
            private_key_file: None,
            plain_http: false,
            max_batch_records: argus_log::ingest::MAX_BATCH_RECORDS,
            max_batch_bytes: 8 << 20,
            max_records_per_second: 200_000,
        }
    }
}

/// An `[ingest]` section that cannot be served, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum IngestConfigError {
    #[error("ingest.plain_http is allowed only on a loopback listen address, not {0}")]
    PlainBeyondLoopback(SocketAddr),
    #[error("ingest.listen needs ingest.certificate_file and ingest.private_key_file (or plain_http on loopback)")]
    NoCertificate,
    #[error("ingest.{field} {path}: {reason}")]
    Unreadable { field: &'static str, path: String, reason: String },
    #[error("ingest.listen is set but [processor.collectors] is empty: no collector could be accepted")]
    NoCollectors,
    #[error("ingest.{0} must be above zero")]
    Zero(&'static str),
}

impl IngestConfig {
    /// The TLS configuration to serve with (`None`: plain HTTP, allowed here), once its files read.
    pub fn tls(&self, registry: &CollectorRegistry) -> Result<Option<poem::listener::RustlsConfig>, IngestConfigError> {
        let Some(listen) = self.listen else { return Ok(None) };
        if registry.0.is_empty() {
            return Err(IngestConfigError::NoCollectors);
        }
        if self.max_batch_records == 0 {
            return Err(IngestConfigError::Zero("max_batch_records"));
        }
        if self.max_records_per_second == 0 {
            return Err(IngestConfigError::Zero("max_records_per_second"));
        }
        if self.plain_http {
            return if listen.ip().is_loopback() {
                Ok(None)
            } else {
                Err(IngestConfigError::PlainBeyondLoopback(listen))
            };
        }
        let (Some(certificate), Some(key)) = (&self.certificate_file, &self.private_key_file) else {
            return Err(IngestConfigError::NoCertificate);
        };
        let read = |field: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|error| IngestConfigError::Unreadable {
                field,
                path: path.display().to_string(),
                reason: error.to_string(),
            })
        };
        let certificate = poem::listener::RustlsCertificate::new()
            .cert(read("certificate_file", certificate)?)
            .key(read("private_key_file", key)?);
        Ok(Some(poem::listener::RustlsConfig::new().fallback(certificate)))
    }
}

/// What the ingest handler shares.
struct IngestState {
    sink: Arc<dyn RecordSink>,
    topic: String,
    authenticator: Authenticator,
    registry: CollectorRegistry,
    max_batch_records: usize,
    rate: DefaultKeyedRateLimiter<String>,
    max_records_per_second: NonZeroU32,
}

/// `POST /ingest/v1/events` (and `/healthz`), appending to `topic` of `sink`.
pub fn ingest_routes(
    sink: Arc<dyn RecordSink>, topic: String, authenticator: Authenticator, registry: CollectorRegistry,
    config: &IngestConfig,
) -> impl poem::Endpoint + use<> {
    let max_records_per_second = NonZeroU32::new(config.max_records_per_second).unwrap_or(NonZeroU32::MIN);
    let state = Arc::new(IngestState {
        sink,
        topic,
        authenticator,
        registry,
        max_batch_records: config.max_batch_records,
        rate: RateLimiter::keyed(Quota::per_second(max_records_per_second)),
        max_records_per_second,
    });
    crate::prometheus();
    Route::new()
        .at(INGEST_PATH, post(ingest.with(SizeLimit::new(config.max_batch_bytes))))
        .at("/healthz", poem::get(crate::http::healthz))
        .data(state)
}

/// Serves `routes` on `listener`, with TLS when `tls` is given, until `shutdown` resolves.
pub async fn serve_ingest(
    listener: std::net::TcpListener, tls: Option<poem::listener::RustlsConfig>, routes: impl poem::Endpoint + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    use poem::listener::AcceptorExt;
    let Some(tls) = tls else { return crate::serve(listener, routes, shutdown).await };
    listener.set_nonblocking(true)?;
    let acceptor = poem::listener::TcpAcceptor::from_std(listener)?.rustls(futures_util::stream::StreamExt::chain(
        futures_util::stream::iter([tls]),
        futures_util::stream::pending(),
    ));
    poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(routes, shutdown, Some(std::time::Duration::from_secs(10)))
        .await
}

/// A refused batch: its status, reason and, when one record is at fault, its index.
struct Refusal {
    status: StatusCode,
    reason: String,
    record: Option<usize>,
    /// The metric label.
    kind: &'static str,
}

impl Refusal {
    fn new(status: StatusCode, kind: &'static str, reason: impl Into<String>) -> Self {
        Self { status, reason: reason.into(), record: None, kind }
    }

    fn at(mut self, record: usize) -> Self {
        self.record = Some(record);
        self
    }

    fn into_response(self, collector: &str) -> Response {
        metrics::counter!("argus_ingest_batches_refused_total", "reason" => self.kind).increment(1);
        warn!(collector, reason = %self.reason, record = ?self.record, "ingest batch refused");
        let mut body = serde_json::json!({ "error": self.reason });
        if let Some(record) = self.record {
            body["record"] = record.into();
        }
        let mut response = Json(body).with_status(self.status).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn auth_refusal(error: &AuthError) -> Refusal {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    Refusal::new(status, "credential", error.to_string())
}

#[handler]
async fn ingest(request: &Request, body: poem::Body, state: Data<&Arc<IngestState>>) -> Response {
    let started = Instant::now();
    let authorization = request.headers().get(header::AUTHORIZATION).map(|value| value.to_str().unwrap_or(""));
    let credential = match state.authenticator.collector(authorization) {
        Ok(credential) => credential,
        Err(error) => return auth_refusal(&error).into_response("unknown"),
    };
    let collector = credential.sub.as_str();
    if let Some(reason) = state.registry.credential_refusal(collector, Some(credential.iat)) {
        return Refusal::new(StatusCode::FORBIDDEN, "credential", reason).into_response(collector);
    }
    let body = match body.into_bytes().await {
        Ok(body) => body,
        Err(error) => {
            let status = poem::error::ResponseError::status(&error);
            return Refusal::new(status, "body", format!("batch body: {error}")).into_response(collector);
        }
    };
    match accept(&state, collector, &body).await {
        Ok(positions) => {
            metrics::counter!("argus_ingest_records_total").increment(positions.len() as u64);
            metrics::histogram!("argus_ingest_batch_seconds").record(started.elapsed().as_secs_f64());
            Json(Accepted::of(&positions)).into_response()
        }
        Err(refusal) => refusal.into_response(collector),
    }
}

/// Checks every record of `body` against the credential's collector and the registry, then
/// appends them all and waits until they are durable.
async fn accept(state: &IngestState, collector: &str, body: &[u8]) -> Result<Vec<argus_log::Position>, Refusal> {
    let records = records_of(body)
        .map_err(|error| Refusal::new(StatusCode::BAD_REQUEST, "malformed", error.to_string()).at(error.record))?;
    if records.len() > state.max_batch_records {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "size",
            format!("a batch holds at most {} records, not {}", state.max_batch_records, records.len()),
        ));
    }
    if let Some(count) = NonZeroU32::new(u32::try_from(records.len()).unwrap_or(u32::MAX)) {
        let over = match state.rate.check_key_n(&collector.to_owned(), count) {
            Ok(Ok(())) => None,
            Ok(Err(_)) => Some(format!("collector {collector} sends above {} records/s", state.max_records_per_second)),
            Err(_) => Some(format!("a batch above {} records never fits the rate", state.max_records_per_second)),
        };
        if let Some(reason) = over {
            return Err(Refusal::new(StatusCode::TOO_MANY_REQUESTS, "rate", reason));
        }
    }
    let mut keyed = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let event = decode_event(record).map_err(|error| {
            Refusal::new(StatusCode::BAD_REQUEST, "malformed", format!("record {index}: {error}")).at(index)
        })?;
        let header = event.header();
        if header.collector_id.as_str() != collector {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "scope",
                format!(
                    "record {index} claims collector {}; this credential is collector {collector}",
                    header.collector_id
                ),
            )
            .at(index));
        }
        if let Some(reason) = state.registry.refusal(header) {
            return Err(Refusal::new(StatusCode::FORBIDDEN, "scope", format!("record {index}: {reason}")).at(index));
        }
        keyed.push((partition_key(&header.org_id, &header.host), *record));
    }
    let appended = futures_util::future::join_all(
        keyed.iter().map(|(key, value)| state.sink.append_record(&state.topic, key.as_bytes(), value)),
    )
    .await;
    let unavailable = |error: argus_log::LogError| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "log",
            format!("the central's log did not take the batch: {error}"),
        )
    };
    let positions = appended.into_iter().collect::<Result<Vec<_>, _>>().map_err(unavailable)?;
    state.sink.flush_records().await.map_err(unavailable)?;
    Ok(positions)
}
