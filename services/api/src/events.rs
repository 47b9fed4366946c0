//! Writes through the event log: the API never writes projections, it publishes events the
//! processor folds like any collector's.

use std::sync::Arc;

use argus_core::ids::partition_key;
use argus_core::{CollectorId, Event, EventHeader, HostId, InterfaceName, SeqCounter};
use argus_log::{EventLog, LogError, Position};
use async_trait::async_trait;

/// The log calls the API and the ingest endpoint need, object-safe so either holds any log.
#[async_trait]
pub trait RecordSink: Send + Sync {
    async fn append_record(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<Position, LogError>;

    /// Returns once every record appended before is durable.
    async fn flush_records(&self) -> Result<(), LogError>;
}

#[async_trait]
impl<L: EventLog> RecordSink for L {
    async fn append_record(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<Position, LogError> {
        self.append(topic, key, value).await
    }

    async fn flush_records(&self) -> Result<(), LogError> {
        self.flush().await
    }
}

/// Why an event was not published.
#[derive(Debug, thiserror::Error)]
#[error("event log unavailable: {0}")]
pub struct PublishError(#[from] LogError);

/// Publishes API events under this instance's collector id, with a `seq` that keeps rising across
/// restarts (microseconds of the wall clock, or one more than the last, whichever is larger).
pub struct EventPublisher {
    sink: Arc<dyn RecordSink>,
    topic: String,
    collector_id: CollectorId,
    seq: SeqCounter,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher").field("topic", &self.topic).field("collector_id", &self.collector_id).finish()
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_micros() as u64)
}

impl EventPublisher {
    pub fn new(sink: Arc<dyn RecordSink>, topic: impl Into<String>, collector_id: CollectorId) -> Self {
        Self { sink, topic: topic.into(), collector_id, seq: SeqCounter::default() }
    }

    fn next_seq(&self) -> u64 {
        self.seq.next(now_micros())
    }

    /// The header of a new event about `host`/`interface` of `org`, dated now.
    pub fn header(&self, org: &argus_core::OrgId, host: HostId, interface: InterfaceName) -> EventHeader {
        EventHeader {
            org_id: org.clone(),
            host,
            interface,
            observed_at: (now_micros() / 1_000) as i64,
            collector_id: self.collector_id.clone(),
            seq: self.next_seq(),
        }
    }

    /// Appends the event under its gateway's key; returns where it landed (`topic/partition@offset`).
    pub async fn publish(&self, event: &Event) -> Result<String, PublishError> {
        let header = event.header();
        let mut value = Vec::with_capacity(256);
        argus_core::codec::encode_event(event, &mut value);
        let key = partition_key(&header.org_id, &header.host);
        let position = self.sink.append_record(&self.topic, key.as_bytes(), &value).await?;
        metrics::counter!("argus_api_events_published_total").increment(1);
        Ok(format!("{}/{}@{}", self.topic, position.partition, position.offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Refusing;

    #[async_trait]
    impl RecordSink for Refusing {
        async fn append_record(&self, _: &str, _: &[u8], _: &[u8]) -> Result<Position, LogError> {
            Err(LogError::Unavailable("down".into()))
        }

        async fn flush_records(&self) -> Result<(), LogError> {
            Err(LogError::Unavailable("down".into()))
        }
    }

    #[test]
    fn sequence_numbers_only_rise() {
        let publisher = EventPublisher::new(Arc::new(Refusing), "t", "api-1".parse().expect("id"));
        let mut last = 0;
        for _ in 0..10_000 {
            let seq = publisher.next_seq();
            assert!(seq > last);
            last = seq;
        }
        assert!(last >= now_micros() - 60_000_000, "seeded from the clock, so they rise across restarts too");
    }
}
