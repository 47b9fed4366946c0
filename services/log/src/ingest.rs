//! The ingest client: an [`EventLog`] that only publishes, sending records in batches over HTTPS to
//! a central `argus run`, which appends them to its own log and answers once they are durable.
//!
//! A batch is the request body `POST /ingest/v1/events` (`Content-Type:
//! application/vnd.argus.events.v1`): each record's value (an Avro single-object event) as a 4-byte
//! big-endian length and its bytes. The central derives each record's key from the event it decodes
//! and appends to its observations topic; the answer is `{"runs": [[partition, first_offset,
//! count], ...]}`, the records' positions in order as runs of consecutive offsets of one partition
//! (a collector's records of one gateway land together), or `{"error": "...", "record": n}` for
//! the whole batch.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use argus_core::Secret;
use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use crate::{EventLog, LogConsumer, LogError, Position};

/// Where a central `argus run` takes batches.
pub const INGEST_PATH: &str = "/ingest/v1/events";
/// The media type of a batch body.
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.argus.events.v1";

/// The answer to an accepted batch: its records' positions as `[partition, first_offset, count]`.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Accepted {
    pub runs: Vec<(u32, u64, u64)>,
}

impl Accepted {
    /// `positions`, in order, run-length encoded.
    pub fn of(positions: &[Position]) -> Self {
        let mut runs: Vec<(u32, u64, u64)> = Vec::new();
        for position in positions {
            match runs.last_mut() {
                Some((partition, first, count))
                    if *partition == position.partition && first.checked_add(*count) == Some(position.offset) =>
                {
                    *count += 1;
                }
                _ => runs.push((position.partition, position.offset, 1)),
            }
        }
        Self { runs }
    }

    /// The positions, in order; `None` if the runs hold more than `limit` (a central's answer
    /// is not trusted to size the client's memory).
    pub fn positions(&self, limit: usize) -> Option<Vec<Position>> {
        let total = self.runs.iter().try_fold(0u64, |total, &(_, _, count)| total.checked_add(count))?;
        if total > limit as u64 {
            return None;
        }
        let mut positions = Vec::with_capacity(total as usize);
        for &(partition, first, count) in &self.runs {
            for step in 0..count {
                positions.push(Position { partition, offset: first.checked_add(step)? });
            }
        }
        Some(positions)
    }
}

/// Appends `value` to a batch body.
pub fn frame_record(value: &[u8], body: &mut Vec<u8>) {
    let length = u32::try_from(value.len()).unwrap_or(u32::MAX);
    body.extend_from_slice(&length.to_be_bytes());
    body.extend_from_slice(&value[..length as usize]);
}

/// A batch body that does not frame whole records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {record} is cut short at byte {offset}: the body does not frame whole records")]
pub struct BatchError {
    pub record: usize,
    pub offset: usize,
}

/// The records of a batch body, in order.
pub fn records_of(body: &[u8]) -> Result<Vec<&[u8]>, BatchError> {
    let mut records = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let offset = body.len() - rest.len();
        let cut = BatchError { record: records.len(), offset };
        let (length, after) = rest.split_first_chunk::<4>().ok_or(cut.clone())?;
        let length = u32::from_be_bytes(*length) as usize;
        if after.len() < length {
            return Err(cut);
        }
        let (record, after) = after.split_at(length);
        records.push(record);
        rest = after;
    }
    Ok(records)
}

/// Most records in one request, unless configured: what a central takes (`[ingest]
/// max_batch_records`) and what a collector sends (`[collector.central] max_batch_records`), a scan
/// of a 10,000-peer gateway.
pub const MAX_BATCH_RECORDS: usize = 10_000;

/// How a collector reaches its central.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// `https://central.example:8443`; `http://` only to a loopback address.
    pub url: String,
    /// The collector credential an admin issued (`argus token --collector ID`).
    pub credential: Secret,
    /// PEM roots the central's certificate must chain to (a private PKI); unset: the system's.
    pub ca_file: Option<PathBuf>,
    /// The only topic `append` takes: the central decides where the records go.
    pub topic: String,
    /// Most records in one request; no more than the central's `[ingest] max_batch_records`.
    pub max_batch_records: usize,
    /// Longest a request may take before it counts as failed (and is retried by the caller).
    pub timeout: Duration,
}

impl IngestSettings {
    pub fn new(url: impl Into<String>, credential: Secret, topic: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            credential,
            ca_file: None,
            topic: topic.into(),
            max_batch_records: MAX_BATCH_RECORDS,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Where the outcome of an append of some records is sent: their positions, in order.
type Reply = oneshot::Sender<Result<Vec<Position>, LogError>>;

enum Command {
    /// At most `max_batch_records` records, sent in one request (with others if they fit).
    Append(Queued),
    Flush {
        reply: oneshot::Sender<()>,
    },
}

/// An append waiting for its request: its framed records and where their positions go.
struct Queued {
    body: Vec<u8>,
    records: usize,
    reply: Reply,
}

/// Publishes to a central over HTTPS. Appends made while a request is in flight go in the next one.
#[derive(Debug, Clone)]
pub struct IngestLog {
    topic: String,
    max_batch_records: usize,
    /// Unbounded, so an append is queued when first polled, never after a yield: appends polled in
    /// order (a collector's chunk) reach the central in that order, and their `seq` with them. The
    /// callers bound what is in flight.
    commands: mpsc::UnboundedSender<Command>,
}

impl IngestLog {
    /// Checks the settings and starts the sender (on the current tokio runtime); connects lazily.
    pub fn connect(settings: IngestSettings) -> Result<Self, LogError> {
        let url = outbound_url(&settings.url).map_err(|reason| LogError::Invalid(format!("central url {reason}")))?;
        let endpoint = url
            .join(INGEST_PATH)
            .map_err(|error| LogError::Invalid(format!("central url {:?}: {error}", settings.url)))?;
        let client = https_client(settings.timeout, settings.ca_file.as_deref())
            .map_err(|reason| LogError::Invalid(format!("central {reason}")))?;
        let (commands, queue) = mpsc::unbounded_channel();
        let sender = Sender {
            client,
            endpoint,
            authorization: format!("Bearer {}", settings.credential.expose()),
            max_batch_records: settings.max_batch_records.max(1),
        };
        tokio::spawn(sender.run(queue));
        Ok(Self { topic: settings.topic, max_batch_records: settings.max_batch_records.max(1), commands })
    }

    fn check_topic(&self, topic: &str) -> Result<(), LogError> {
        if topic == self.topic {
            return Ok(());
        }
        Err(LogError::Invalid(format!(
            "the ingest client publishes only to {}, not {topic}: the central decides where records go",
            self.topic
        )))
    }
}

/// Parses an address this process sends to (a central, a webhook): `https`, or plain `http` only
/// to a loopback address, where nothing crosses a network. The error quotes the address.
pub fn outbound_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|error| format!("{text:?}: {error}"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(format!("{text:?}: plain http is allowed only to a loopback address; use https")),
        other => Err(format!("{text:?}: scheme {other} is not http(s)")),
    }
}

/// An HTTPS client with `timeout` per request that trusts `ca_file`'s certificates alone when
/// given (a private PKI), else the system's roots.
pub fn https_client(timeout: Duration, ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, String> {
    let mut client = reqwest::Client::builder().timeout(timeout).connect_timeout(Duration::from_secs(5));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|error| format!("ca_file {}: {error}", path.display()))?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|error| format!("ca_file {}: {error}", path.display()))?;
        client = client.tls_certs_only(roots);
    }
    client.build().map_err(|error| format!("http client: {}", error_chain(&error)))
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|address| address.is_loopback())
}

/// An error and its sources on one line (reqwest hides the TLS reason in a source).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The task that owns the HTTP client: one request at a time, so records arrive in append order.
struct Sender {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    authorization: String,
    max_batch_records: usize,
}

impl Sender {
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Command>) {
        let mut flushes = Vec::new();
        // an append that did not fit in the request before: the first of the next one
        let mut held = None;
        loop {
            let first = match held.take() {
                Some(command) => command,
                None => match queue.recv().await {
                    Some(command) => command,
                    None => break,
                },
            };
            let (mut batch, mut records) = (Vec::new(), 0);
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append(queued) => {
                        if records > 0 && records + queued.records > self.max_batch_records {
                            held = Some(Command::Append(queued));
                            break;
                        }
                        records += queued.records;
                        batch.push(queued);
                    }
                    Command::Flush { reply } => flushes.push(reply),
                }
                if records < self.max_batch_records {
                    next = queue.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.send(batch, records).await;
            }
            // every append queued before a flush has been answered, and answered means durable
            for reply in flushes.drain(..) {
                let _ = reply.send(());
            }
        }
    }

    async fn send(&self, mut batch: Vec<Queued>, records: usize) {
        let started = Instant::now();
        // a collector's chunk is usually a request of its own: its framed records are the body
        let mut body = std::mem::take(&mut batch[0].body);
        batch[1..].iter().for_each(|queued| body.extend_from_slice(&queued.body));
        let outcome = self.post(body, records).await;
        metrics::histogram!("argus_ingest_client_request_seconds").record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(positions) => {
                metrics::counter!("argus_ingest_client_records_total", "outcome" => "accepted")
                    .increment(records as u64);
                let mut positions = positions.into_iter();
                for queued in batch {
                    let _ = queued.reply.send(Ok(positions.by_ref().take(queued.records).collect()));
                }
            }
            Err(error) => {
                let outcome = match error {
                    LogError::Refused(_) => "refused",
                    LogError::Invalid(_) => "invalid",
                    _ => "unavailable",
                };
                metrics::counter!("argus_ingest_client_records_total", "outcome" => outcome).increment(records as u64);
                for queued in batch {
                    let _ = queued.reply.send(Err(copy(&error)));
                }
            }
        }
    }

    async fn post(&self, body: Vec<u8>, records: usize) -> Result<Vec<Position>, LogError> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .header(reqwest::header::CONTENT_TYPE, BATCH_CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .map_err(|error| {
                let reason = format!("central {}: {}", self.endpoint, error_chain(&error));
                if reason.contains("certificate") { LogError::Refused(reason) } else { LogError::Unavailable(reason) }
            })?;
        let status = response.status();
        let text = response
            .bytes()
            .await
            .map_err(|error| LogError::Unavailable(format!("central: {}", error_chain(&error))))?;
        if !status.is_success() {
            let answer: serde_json::Value = serde_json::from_slice(&text).unwrap_or(serde_json::Value::Null);
            let reason =
                answer["error"].as_str().map_or_else(|| String::from_utf8_lossy(&text).into_owned(), str::to_owned);
            let reason = format!("central answered {status}: {reason}");
            return Err(match status.as_u16() {
                401 | 403 => LogError::Refused(reason),
                400 | 413 | 415 => LogError::Invalid(reason),
                _ => LogError::Unavailable(reason),
            });
        }
        let positions: Vec<Position> = serde_json::from_slice::<Accepted>(&text)
            .ok()
            .and_then(|accepted| accepted.positions(records))
            .unwrap_or_default();
        if positions.len() != records {
            return Err(LogError::Unavailable(format!(
                "central answered {} positions for {records} records",
                positions.len()
            )));
        }
        Ok(positions)
    }
}

/// The same error for each record of a failed batch.
fn copy(error: &LogError) -> LogError {
    match error {
        LogError::Invalid(reason) => LogError::Invalid(reason.clone()),
        LogError::Unavailable(reason) => LogError::Unavailable(reason.clone()),
        LogError::Refused(reason) => LogError::Refused(reason.clone()),
        LogError::Corrupt(reason) => LogError::Corrupt(reason.clone()),
    }
}

fn stopped() -> LogError {
    LogError::Unavailable("the ingest sender stopped".into())
}

#[async_trait]
impl EventLog for IngestLog {
    type Consumer = NoConsumer;

    async fn append(&self, topic: &str, _key: &[u8], value: &[u8]) -> Result<Position, LogError> {
        self.append_all(topic, &[(&[][..], value)]).await.pop().unwrap_or_else(|| Err(stopped()))
    }

    /// Queues the records in commands of at most `max_batch_records` at once, so they keep their
    /// order, and each goes whole into one request.
    async fn append_all(&self, topic: &str, records: &[(&[u8], &[u8])]) -> Vec<Result<Position, LogError>> {
        if let Err(error) = self.check_topic(topic) {
            return records.iter().map(|_| Err(copy(&error))).collect();
        }
        let chunks = records.chunks(self.max_batch_records);
        let answers: Vec<_> = chunks
            .clone()
            .map(|chunk| {
                let (reply, answer) = oneshot::channel();
                let mut body = Vec::with_capacity(chunk.iter().map(|(_, value)| value.len() + 4).sum());
                for (_, value) in chunk {
                    frame_record(value, &mut body);
                }
                self.commands.send(Command::Append(Queued { body, records: chunk.len(), reply })).map(|()| answer)
            })
            .collect();
        let mut results = Vec::with_capacity(records.len());
        for (answer, chunk) in answers.into_iter().zip(chunks) {
            let outcome = match answer {
                Ok(answer) => answer.await.unwrap_or_else(|_| Err(stopped())),
                Err(_) => Err(stopped()),
            };
            match outcome {
                Ok(positions) => results.extend(positions.into_iter().map(Ok)),
                Err(error) => results.extend(chunk.iter().map(|_| Err(copy(&error)))),
            }
        }
        results
    }

    async fn flush(&self) -> Result<(), LogError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Flush { reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }

    async fn subscribe(&self, topic: &str, _group: &str) -> Result<Self::Consumer, LogError> {
        Err(LogError::Invalid(format!("the ingest client only publishes; {topic} is read on the central")))
    }
}

/// The consumer an [`IngestLog`] never hands out.
#[derive(Debug)]
pub enum NoConsumer {}

#[async_trait]
impl LogConsumer for NoConsumer {
    async fn poll(&mut self, _: usize, _: Duration) -> Result<crate::Delivery, LogError> {
        match *self {}
    }

    async fn seek(&mut self, _: Position) -> Result<(), LogError> {
        match *self {}
    }

    async fn seek_to_end(&mut self, _: u32) -> Result<(), LogError> {
        match *self {}
    }

    async fn committed(&mut self, _: u32) -> Result<u64, LogError> {
        match *self {}
    }

    async fn commit(&mut self, _: &[Position]) -> Result<(), LogError> {
        match *self {}
    }

    async fn end_offset(&mut self, _: u32) -> Result<u64, LogError> {
        match *self {}
    }

    fn known_end_offset(&self, _: u32) -> Option<u64> {
        match *self {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_frames_its_records_and_a_cut_one_is_named() {
        let mut body = Vec::new();
        for value in [&b"first"[..], b"", b"third record"] {
            frame_record(value, &mut body);
        }
        assert_eq!(records_of(&body).expect("whole"), vec![&b"first"[..], b"", b"third record"]);
        assert_eq!(records_of(&[]).expect("empty"), Vec::<&[u8]>::new());
        assert_eq!(records_of(&body[..body.len() - 1]), Err(BatchError { record: 2, offset: 13 }));
        assert_eq!(records_of(&body[..2]), Err(BatchError { record: 0, offset: 0 }));
    }

    #[test]
    fn positions_travel_as_runs_and_a_central_cannot_inflate_them() {
        let at = |partition, offset| Position { partition, offset };
        let positions = vec![at(1, 7), at(1, 8), at(1, 9), at(0, 3), at(1, 10), at(1, 12)];
        let accepted = Accepted::of(&positions);
        assert_eq!(accepted.runs, vec![(1, 7, 3), (0, 3, 1), (1, 10, 1), (1, 12, 1)]);
        assert_eq!(accepted.positions(6), Some(positions));
        assert_eq!(accepted.positions(5), None, "more positions than records sent");
        assert_eq!(Accepted { runs: vec![(0, u64::MAX, 2)] }.positions(2), None, "offsets past the end");
        assert_eq!(Accepted { runs: vec![(0, 0, u64::MAX), (0, 0, 1)] }.positions(2), None, "a count that overflows");
    }

    #[tokio::test]
    async fn plain_http_is_refused_beyond_loopback_and_other_topics_are_refused() {
        let settings = |url: &str| IngestSettings::new(url, Secret::new("credential"), "wireguard.observations");
        for url in ["http://10.0.0.1:8443", "http://central.example:8443"] {
            match IngestLog::connect(settings(url)) {
                Err(LogError::Invalid(reason)) => assert!(reason.contains("only to a loopback address"), "{reason}"),
                other => panic!("{url}: expected a refusal, got {other:?}"),
            }
        }
        assert!(matches!(IngestLog::connect(settings("ftp://central")), Err(LogError::Invalid(_))));
        for url in ["http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1", "https://central.example"] {
            IngestLog::connect(settings(url)).unwrap_or_else(|error| panic!("{url}: {error}"));
        }
        let log = IngestLog::connect(settings("http://127.0.0.1:1")).expect("loopback");
        assert!(matches!(log.append("wireguard.alerts", b"k", b"v").await, Err(LogError::Invalid(_))));
        assert!(matches!(log.subscribe("wireguard.observations", "g").await, Err(LogError::Invalid(_))));
        // nothing listens on port 1: unavailable, for the caller to retry
        assert!(matches!(log.append("wireguard.observations", b"k", b"v").await, Err(LogError::Unavailable(_))));
    }
}
