//! The Kafka log on rdkafka: an ordered producer keyed by `org/host` (librdkafka's `consistent`
//! partitioner, the same CRC-32 as [`crate::partition_for`]), and group consumers with manual
//! commits whose rebalances arrive as [`Delivery::Assigned`] and [`Delivery::Revoked`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argus_core::Secret;
use async_trait::async_trait;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde::Deserialize;

use crate::{Delivery, EventLog, LogConsumer, LogError, Position, Record, check_name, lock, unavailable};

/// How long an append waits for the broker's acknowledgement.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a seek waits for a newly assigned partition to start fetching.
const SEEK_WAIT: Duration = Duration::from_secs(30);

/// How often librdkafka reports its statistics, whose high watermarks answer `known_end_offset`.
const STATISTICS_INTERVAL: Duration = Duration::from_secs(1);

/// librdkafka's text for `ERR__STATE`, which is all `KafkaError::Seek` carries.
const NOT_FETCHING_YET: &str = "Local: Erroneous state";

fn partition_number(partition: i32) -> Result<u32, LogError> {
    u32::try_from(partition).map_err(|_| LogError::Unavailable(format!("broker reported partition {partition}")))
}

fn offset_number(offset: i64) -> Result<u64, LogError> {
    u64::try_from(offset).map_err(|_| LogError::Unavailable(format!("broker reported offset {offset}")))
}

/// How the Kafka clients of a process reach the brokers (`[kafka.security]`): TLS and SASL, set
/// on every producer and consumer as librdkafka's `security.protocol`, `ssl.*` and `sasl.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSecurity {
    pub protocol: SecurityProtocol,
    /// CA certificates (PEM) that verify the brokers' certificates; default: the system's.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for brokers that require mutual TLS.
    pub certificate_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub key_password: Option<Secret>,
    /// Required with the `sasl_*` protocols.
    pub sasl_mechanism: Option<SaslMechanism>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<Secret>,
}

/// librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

/// librdkafka's `sasl.mechanism` (the ones built in; GSSAPI needs Cyrus SASL and is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl KafkaSecurity {
    /// The librdkafka properties these settings stand for, or the first setting that is wrong
    /// (named as in the configuration file).
    fn properties(&self) -> Result<Vec<(&'static str, String)>, LogError> {
        let invalid = |field: &str, reason: &str| LogError::Invalid(format!("kafka.security.{field}: {reason}"));
        let (tls, sasl, protocol) = match self.protocol {
            SecurityProtocol::Plaintext => (false, false, "plaintext"),
            SecurityProtocol::Ssl => (true, false, "ssl"),
            SecurityProtocol::SaslPlaintext => (false, true, "sasl_plaintext"),
            SecurityProtocol::SaslSsl => (true, true, "sasl_ssl"),
        };
        let mut properties = vec![("security.protocol", protocol.to_owned())];
        let files = [
            ("ca_file", "ssl.ca.location", &self.ca_file),
            ("certificate_file", "ssl.certificate.location", &self.certificate_file),
            ("key_file", "ssl.key.location", &self.key_file),
        ];
        for (field, property, file) in files {
            let Some(file) = file else { continue };
            if !tls {
                return Err(invalid(field, "only used with protocol \"ssl\" or \"sasl_ssl\""));
            }
            if let Err(error) = std::fs::metadata(file) {
                return Err(invalid(field, &format!("{}: {error}", file.display())));
            }
            properties.push((property, file.display().to_string()));
        }
        if self.certificate_file.is_some() != self.key_file.is_some() {
            return Err(invalid("key_file", "a client certificate needs its key, and a key its certificate"));
        }
        if let Some(password) = &self.key_password {
            properties.push(("ssl.key.password", password.expose().to_owned()));
        }
        if sasl {
            let mechanism = match self.sasl_mechanism {
                Some(SaslMechanism::Plain) => "PLAIN",
                Some(SaslMechanism::ScramSha256) => "SCRAM-SHA-256",
                Some(SaslMechanism::ScramSha512) => "SCRAM-SHA-512",
                None => return Err(invalid("sasl_mechanism", "required with a sasl_* protocol")),
            };
            let username = self
                .sasl_username
                .as_ref()
                .ok_or_else(|| invalid("sasl_username", "required with a sasl_* protocol"))?;
            let password = self
                .sasl_password
                .as_ref()
                .ok_or_else(|| invalid("sasl_password", "required with a sasl_* protocol"))?;
            properties.extend([
                ("sasl.mechanism", mechanism.to_owned()),
                ("sasl.username", username.clone()),
                ("sasl.password", password.expose().to_owned()),
            ]);
        } else if self.sasl_mechanism.is_some() || self.sasl_username.is_some() || self.sasl_password.is_some() {
            return Err(invalid("protocol", "SASL settings need protocol \"sasl_plaintext\" or \"sasl_ssl\""));
        }
        Ok(properties)
    }
}

/// A Kafka cluster, reached through `bootstrap_servers` (`host:port,...`).
#[derive(Clone)]
pub struct KafkaLog {
    bootstrap_servers: String,
    /// Security properties every client gets (secrets among them: never printed).
    security: Vec<(&'static str, String)>,
    producer: FutureProducer<TracingContext>,
    /// Why the brokers last refused this process's credentials or TLS, if they did.
    refused: Refusals,
}

/// The last refusal of credentials or TLS any client of a log saw.
type Refusals = Arc<Mutex<Option<String>>>;

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog").field("bootstrap_servers", &self.bootstrap_servers).finish_non_exhaustive()
    }
}

impl KafkaLog {
    /// A plaintext connection without SASL.
    pub fn connect(bootstrap_servers: &str) -> Result<Self, LogError> {
        Self::connect_with(bootstrap_servers, &KafkaSecurity::default())
    }

    /// A connection with `security` (TLS, SASL); a setting that cannot work is refused here, a
    /// broker that refuses it is reported by [`KafkaLog::check`].
    pub fn connect_with(bootstrap_servers: &str, security: &KafkaSecurity) -> Result<Self, LogError> {
        let security = security.properties()?;
        let refused = Refusals::default();
        let producer = client_config(bootstrap_servers, &security)
            // not idempotent: every consumer already tolerates duplicates (collector `seq`, alert
            // ids, idempotent projections), and an idempotent producer fails every later record
            // once a broker that lost its producer-id state (tansu across a restart) answers it;
            // one request in flight keeps a partition's records in order through retries
            .set("enable.idempotence", "false")
            .set("max.in.flight.requests.per.connection", "1")
            .set("partitioner", "consistent")
            .set("linger.ms", "1")
            // a record the broker has not taken within this time fails instead of waiting the
            // default five minutes, so callers see an outage and can buffer and retry
            .set("message.timeout.ms", SEND_TIMEOUT.as_millis().to_string())
            .create_with_context(TracingContext { refused: Arc::clone(&refused) })
            .map_err(unavailable)?;
        Ok(Self { bootstrap_servers: bootstrap_servers.to_owned(), security, producer, refused })
    }

    /// Asks the brokers for the cluster's metadata within `timeout`: `Ok` when they answer;
    /// [`LogError::Refused`] when they refused the credentials or TLS (a configuration to fix,
    /// not an outage to wait out), [`LogError::Unavailable`] when they did not answer.
    pub async fn check(&self, timeout: Duration) -> Result<(), LogError> {
        let producer = self.producer.clone();
        let answer = tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout).map(|_| ()))
            .await
            .map_err(unavailable)?;
        match answer {
            Ok(()) => Ok(()),
            Err(error) => match lock(&self.refused).clone() {
                Some(reason) => Err(LogError::Refused(format!("{}: {reason}", self.bootstrap_servers))),
                None => Err(LogError::Unavailable(format!("{}: {error}", self.bootstrap_servers))),
            },
        }
    }
}

/// The configuration every client of a log starts from: the brokers and the security settings.
fn client_config(bootstrap_servers: &str, security: &[(&'static str, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    // librdkafka's level otherwise follows the `log` crate's, which nothing here sets
    config.set_log_level(RDKafkaLogLevel::Warning);
    config.set("bootstrap.servers", bootstrap_servers);
    for (property, value) in security {
        config.set(*property, value);
    }
    config
}

#[async_trait]
impl EventLog for KafkaLog {
    type Consumer = KafkaConsumer;

    async fn append(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<Position, LogError> {
        check_name("topic", topic)?;
        let record = FutureRecord::to(topic).key(key).payload(value);
        let delivered =
            self.producer.send(record, Timeout::After(SEND_TIMEOUT)).await.map_err(|(error, _)| unavailable(error))?;
        Ok(Position { partition: partition_number(delivered.partition)?, offset: offset_number(delivered.offset)? })
    }

    async fn flush(&self) -> Result<(), LogError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(SEND_TIMEOUT)))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<KafkaConsumer, LogError> {
        check_name("topic", topic)?;
        check_name("group", group)?;
        let (rebalances, received) = channel();
        let high_watermarks = Arc::new(Mutex::new(HashMap::new()));
        let consumer: StreamConsumer<RebalanceContext> = client_config(&self.bootstrap_servers, &self.security)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", STATISTICS_INTERVAL.as_millis().to_string())
            .create_with_context(RebalanceContext {
                tracing: TracingContext { refused: Arc::clone(&self.refused) },
                rebalances: Mutex::new(rebalances),
                topic: topic.to_owned(),
                high_watermarks: Arc::clone(&high_watermarks),
            })
            .map_err(unavailable)?;
        consumer.subscribe(&[topic]).map_err(unavailable)?;
        Ok(KafkaConsumer {
            consumer: Arc::new(consumer),
            topic: topic.to_owned(),
            rebalances: received,
            high_watermarks,
        })
    }
}

/// Sends librdkafka's own log lines to `tracing` (target `librdkafka`), where the service's log
/// filter sees them; without it they would go to the `log` crate and be lost. Client errors reach
/// the callers (consumer polls and producer deliveries fail with them); a refusal of the
/// credentials or TLS is also kept for [`KafkaLog::check`] and logged saying what to fix.
struct TracingContext {
    refused: Refusals,
}

impl ClientContext for TracingContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let refusal = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL | RDKafkaErrorCode::SaslAuthenticationFailed)
        );
        if refusal {
            tracing::error!(%error, reason, "kafka brokers refused this client's credentials or TLS: check [kafka.security]");
            *lock(&self.refused) = Some(reason.to_owned());
        } else {
            tracing::warn!(target: "librdkafka", %error, "{reason}");
        }
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}");
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }
}

/// Passes rebalances from librdkafka's callback to the consumer's next poll, and keeps the high
/// watermarks its statistics report.
struct RebalanceContext {
    tracing: TracingContext,
    rebalances: Mutex<Sender<Delivery>>,
    topic: String,
    high_watermarks: HighWatermarks,
}

/// The newest high watermark librdkafka reported per partition of the consumer's topic.
type HighWatermarks = Arc<Mutex<HashMap<u32, u64>>>;

impl ClientContext for RebalanceContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.tracing.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.tracing.error(error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        let mut high_watermarks = lock(&self.high_watermarks);
        for (&partition, report) in &topic.partitions {
            // librdkafka reports -1 until it has fetched, and a pseudo-partition -1
            if let (Ok(partition), Ok(high)) = (u32::try_from(partition), u64::try_from(report.hi_offset)) {
                high_watermarks.insert(partition, high);
            }
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &TopicPartitionList| {
            list.elements().iter().filter_map(|element| u32::try_from(element.partition()).ok()).collect::<Vec<_>>()
        };
        let delivery = match rebalance {
            Rebalance::Assign(list) => Delivery::Assigned(partitions(list)),
            Rebalance::Revoke(list) => Delivery::Revoked(partitions(list)),
            Rebalance::Error(_) => return,
        };
        let sender = lock(&self.rebalances);
        // the receiver lives as long as the consumer; a send can only fail during its drop
        let _ = sender.send(delivery);
    }
}

/// A member of a Kafka consumer group.
pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer<RebalanceContext>>,
    topic: String,
    rebalances: Receiver<Delivery>,
    high_watermarks: HighWatermarks,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl KafkaConsumer {
    /// Seeks `partition` to `offset`. Right after an assignment librdkafka may still be fetching
    /// the group's committed offset and refuses a seek with "erroneous state" (`ERR__STATE`); the
    /// seek is tried again until [`SEEK_WAIT`] has passed, and records already fetched from the
    /// old position are discarded by librdkafka once it lands.
    async fn seek_when_fetching(&mut self, partition: i32, offset: Offset) -> Result<(), LogError> {
        let started = Instant::now();
        loop {
            match self.consumer.seek(&self.topic, partition, offset, Timeout::After(Duration::from_secs(10))) {
                Ok(()) => return Ok(()),
                Err(KafkaError::Seek(reason)) if reason == NOT_FETCHING_YET && started.elapsed() < SEEK_WAIT => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(KafkaError::Seek(reason)) if reason == NOT_FETCHING_YET => {
                    return Err(LogError::Unavailable(format!(
                        "seek partition {partition} to {offset:?}: not fetching after {SEEK_WAIT:?}"
                    )));
                }
                Err(error) => {
                    return Err(LogError::Invalid(format!("seek partition {partition} to {offset:?}: {error}")));
                }
            }
        }
    }
}

#[async_trait]
impl LogConsumer for KafkaConsumer {
    async fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Delivery, LogError> {
        if let Ok(rebalance) = self.rebalances.try_recv() {
            return Ok(rebalance);
        }
        let mut records = Vec::new();
        let mut wait = timeout;
        while records.len() < max_records {
            let message = match tokio::time::timeout(wait, self.consumer.recv()).await {
                Err(_) => break,
                Ok(message) => message.map_err(unavailable)?,
            };
            // a rebalance ran inside recv: report it first; the message is read again after the seek
            if let Ok(rebalance) = self.rebalances.try_recv() {
                if records.is_empty() {
                    return Ok(rebalance);
                }
                break;
            }
            records.push(Record {
                partition: partition_number(message.partition())?,
                offset: offset_number(message.offset())?,
                key: message.key().unwrap_or_default().to_vec(),
                value: message.payload().unwrap_or_default().to_vec(),
            });
            wait = Duration::from_millis(1);
        }
        Ok(Delivery::Records(records))
    }

    async fn seek(&mut self, position: Position) -> Result<(), LogError> {
        let partition =
            i32::try_from(position.partition).map_err(|_| LogError::Invalid("partition out of range".into()))?;
        let offset = i64::try_from(position.offset).map_err(|_| LogError::Invalid("offset out of range".into()))?;
        self.seek_when_fetching(partition, Offset::Offset(offset)).await
    }

    async fn seek_to_end(&mut self, partition: u32) -> Result<(), LogError> {
        let partition = i32::try_from(partition).map_err(|_| LogError::Invalid("partition out of range".into()))?;
        self.seek_when_fetching(partition, Offset::End).await
    }

    async fn end_offset(&mut self, partition: u32) -> Result<u64, LogError> {
        let partition = i32::try_from(partition).map_err(|_| LogError::Invalid("partition out of range".into()))?;
        let (consumer, topic) = (Arc::clone(&self.consumer), self.topic.clone());
        let (_, high) = tokio::task::spawn_blocking(move || {
            consumer.fetch_watermarks(&topic, partition, Timeout::After(Duration::from_secs(2)))
        })
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
        offset_number(high)
    }

    fn known_end_offset(&self, partition: u32) -> Option<u64> {
        lock(&self.high_watermarks).get(&partition).copied()
    }

    async fn committed(&mut self, partition: u32) -> Result<u64, LogError> {
        let partition = i32::try_from(partition).map_err(|_| LogError::Invalid("partition out of range".into()))?;
        let (consumer, topic) = (Arc::clone(&self.consumer), self.topic.clone());
        let committed = tokio::task::spawn_blocking(move || {
            let mut list = TopicPartitionList::new();
            list.add_partition(&topic, partition);
            consumer.committed_offsets(list, Timeout::After(Duration::from_secs(10)))
        })
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
        match committed.find_partition(&self.topic, partition).map(|element| element.offset()) {
            Some(Offset::Offset(offset)) => offset_number(offset),
            _ => Ok(0),
        }
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError> {
        let mut list = TopicPartitionList::new();
        for position in positions {
            let partition =
                i32::try_from(position.partition).map_err(|_| LogError::Invalid("partition out of range".into()))?;
            let offset = i64::try_from(position.offset).map_err(|_| LogError::Invalid("offset out of range".into()))?;
            list.add_partition_offset(&self.topic, partition, Offset::Offset(offset)).map_err(unavailable)?;
        }
        self.consumer.commit(&list, CommitMode::Sync).map_err(unavailable)
    }
}
