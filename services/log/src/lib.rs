//! Argus WireGuard event log: one contract for Kafka and for the embedded log of one machine.
//!
//! Records are appended to a topic under a key; all records of one key land on one partition, in
//! order (the key is `org/host`, so a gateway's events stay ordered). Consumers belong to a group,
//! learn their partitions from an assignment, read from positions they may move (the store's
//! checkpoints are the source of truth), and commit positions for lag monitoring.

mod embedded;
pub mod ingest;
mod kafka;

use std::time::Duration;

use async_trait::async_trait;

pub use self::embedded::{EmbeddedConsumer, EmbeddedLog};
pub use self::ingest::{IngestLog, IngestSettings, error_chain, https_client, outbound_url};
pub use self::kafka::{KafkaConsumer, KafkaLog, KafkaSecurity, SaslMechanism, SecurityProtocol};

/// A place in a topic: a partition and an offset within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub partition: u32,
    pub offset: u64,
}

/// One record read from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: u32,
    pub offset: u64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// What a poll brings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Records, in offset order within each partition; empty when the poll timed out.
    Records(Vec<Record>),
    /// These partitions are now this consumer's (load their checkpoints, then `seek`).
    Assigned(Vec<u32>),
    /// These partitions are no longer this consumer's (flush and checkpoint what was read).
    Revoked(Vec<u32>),
}

/// Why a log call failed, classified for the caller.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Bad input from the caller: do not retry.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The log is unreachable or failing: retry with backoff.
    #[error("log unavailable: {0}")]
    Unavailable(String),
    /// The log refused this process's credentials or TLS: fix the configuration, do not retry.
    #[error("log refused the connection: {0}")]
    Refused(String),
    /// Stored bytes are damaged beyond what recovery repairs: do not retry.
    #[error("log data damaged: {0}")]
    Corrupt(String),
}

/// Produces to and subscribes to topics. Implementations pass `tests/contract.rs`.
#[async_trait]
pub trait EventLog: Send + Sync {
    type Consumer: LogConsumer;

    /// Appends a record; the partition follows from the key. Returns where it landed.
    async fn append(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<Position, LogError>;

    /// Appends `(key, value)` records, each as [`append`](Self::append) would and in order within
    /// a partition; one result per record. By default the appends run concurrently; a log that
    /// sends records in batches takes them as one.
    async fn append_all(&self, topic: &str, records: &[(&[u8], &[u8])]) -> Vec<Result<Position, LogError>> {
        futures_util::future::join_all(records.iter().map(|(key, value)| self.append(topic, key, value))).await
    }

    /// Returns once every record appended before is durable (embedded: fsynced; Kafka: acknowledged).
    async fn flush(&self) -> Result<(), LogError>;

    /// Joins `group` on `topic`. The first poll brings the assignment.
    async fn subscribe(&self, topic: &str, group: &str) -> Result<Self::Consumer, LogError>;
}

/// One member of a consumer group.
#[async_trait]
pub trait LogConsumer: Send {
    /// The next records or assignment change, waiting up to `timeout` for records.
    async fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Delivery, LogError>;

    /// Continues an assigned partition from `offset` (the next record read has that offset).
    async fn seek(&mut self, position: Position) -> Result<(), LogError>;

    /// Continues an assigned partition after its newest record: only records appended later arrive
    /// (live feeds that do not replay history).
    async fn seek_to_end(&mut self, partition: u32) -> Result<(), LogError>;

    /// Records the group's positions (each the next offset to read).
    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError>;

    /// The group's committed position of an assigned partition (the next offset to read), 0 when
    /// the group never committed one: where this assignment resumes.
    async fn committed(&mut self, partition: u32) -> Result<u64, LogError>;

    /// The offset the next record appended to an assigned partition will get (Kafka: the high
    /// watermark, one round trip to the broker). With the position read, it gives the lag.
    async fn end_offset(&mut self, partition: u32) -> Result<u64, LogError>;

    /// The end offset of an assigned partition as last learned without asking the broker
    /// (Kafka: the high watermark in librdkafka's statistics, at most a second or two old;
    /// embedded: exact), or `None` while unknown. Cheap enough for every poll.
    fn known_end_offset(&self, partition: u32) -> Option<u64>;
}

/// Locks `mutex`, also after a holder panicked: one failed caller must not stop every other.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The partition of a key: CRC-32 of the key modulo the partition count (librdkafka's
/// `consistent` partitioner), stable across restarts and processes.
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    crc32fast::hash(key) % partitions.max(1)
}

/// Topic and group names: what Kafka allows, so names move between the logs unchanged.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), LogError> {
    let valid = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if valid { Ok(()) } else { Err(LogError::Invalid(format!("{what} {name:?} must be 1-249 of [A-Za-z0-9._-]"))) }
}

pub(crate) fn unavailable(error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(error.to_string())
}
