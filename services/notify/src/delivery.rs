//! The one delivery loop every sink runs: read the alert topic in the sink's own consumer group,
//! filter, deliver each transition until its receiver acknowledges it (retrying with backoff while
//! it is down), and commit the position after each delivery, so a restart repeats at most the
//! transition that was in flight. A transition the topic holds twice (the processor republishes
//! what a crash left uncovered by its checkpoint) is sent once: the loop remembers the last
//! [`REMEMBERED`] deduplication keys, and on every assignment first reads back that many records
//! before its position to remember them again.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use argus_core::Alert;
use argus_core::codec::AlertEncoding;
use argus_log::{Delivery, EventLog, LogConsumer, Position};
use async_trait::async_trait;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::SinkConfig;
use crate::notification::{dedup_key, now_millis, transition_at};

/// How many deduplication keys a sink remembers (and reads back after an assignment): more than
/// a processor republishes after a crash (at most a checkpoint interval's alerts).
pub const REMEMBERED: u64 = 4_096;

/// The deduplication keys of the last transitions read, oldest first.
#[derive(Debug, Default)]
struct Remembered {
    order: VecDeque<String>,
    keys: HashSet<String>,
}

impl Remembered {
    /// Remembers `key`; false if it was already remembered.
    fn insert(&mut self, key: String) -> bool {
        if self.keys.contains(&key) {
            return false;
        }
        if self.order.len() as u64 >= REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.keys.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.keys.insert(key);
        true
    }
}

/// A receiver of alert transitions.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Delivers one transition; returns once the receiver has acknowledged it.
    async fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError>;

    /// Learns of a transition the filter carries that is not delivered now: one read back after
    /// an assignment (delivered before a restart) or one too old to send. A sink that mirrors
    /// state at its receiver (the Alertmanager sink's open alerts) keeps its mirror with it.
    async fn recall(&self, _alert: &Alert) {}

    /// How often [`Sink::refresh`] is due, for a receiver that forgets what is not re-sent.
    fn refresh_every(&self) -> Option<Duration> {
        None
    }

    /// Sends the receiver again what it must keep holding; the count sent.
    async fn refresh(&self) -> Result<usize, DeliveryError> {
        Ok(0)
    }
}

/// Why a delivery failed, classified for the loop (and for each HTTP sink by [`DeliveryError::from_status`]).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver is down, slow or overloaded: the same transition is tried again after a wait.
    #[error("receiver unavailable: {0}")]
    Unavailable(String),
    /// The receiver refused this transition for good (it will never take it): counted
    /// (`outcome="refused"`), logged, and the loop goes on.
    #[error("receiver refused: {0}")]
    Refused(String),
}

impl DeliveryError {
    /// An HTTP receiver's answer: success, a passing fault (tried again), or a refusal.
    pub fn from_status(url: &reqwest::Url, status: reqwest::StatusCode) -> Result<(), Self> {
        if status.is_success() {
            return Ok(());
        }
        let reason = format!("{url} answered {status}");
        // a timeout, throttling or a server fault passes; any other refusal would repeat forever
        let passing = status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT;
        Err(if passing { Self::Unavailable(reason) } else { Self::Refused(reason) })
    }
}

/// Delivers the transitions of `topic` (written in `encoding`) that `config`'s filter lets through
/// to `sink`, until `shutdown` turns true. Never returns an error: an unreachable log is waited
/// out, a down receiver retried.
pub async fn run_sink<L: EventLog>(
    log: &L, topic: &str, encoding: AlertEncoding, config: &SinkConfig, sink: &dyn Sink,
    shutdown: watch::Receiver<bool>,
) {
    tokio::join!(
        deliver_all(log, topic, encoding, config, sink, shutdown.clone()),
        refresh_periodically(config, sink, shutdown)
    );
}

/// Calls [`Sink::refresh`] at its interval until `shutdown`; a failure waits for the next.
async fn refresh_periodically(config: &SinkConfig, sink: &dyn Sink, mut shutdown: watch::Receiver<bool>) {
    let Some(every) = sink.refresh_every() else { return };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    while !*shutdown.borrow() {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        match sink.refresh().await {
            Ok(count) => metrics::gauge!("argus_sink_open_alerts", "sink" => config.name.clone()).set(count as f64),
            Err(error) => {
                metrics::counter!("argus_sink_delivery_failures_total", "sink" => config.name.clone()).increment(1);
                warn!(sink = %config.name, %error, "re-sending open alerts failed; the next interval tries again");
            }
        }
    }
}

async fn deliver_all<L: EventLog>(
    log: &L, topic: &str, encoding: AlertEncoding, config: &SinkConfig, sink: &dyn Sink,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = config.name.clone();
    let group = config.group();
    let mut backoff = Duration::from_millis(100);
    info!(sink = %name, %topic, %group, "alert sink started");
    while !*shutdown.borrow() {
        let mut consumer = match log.subscribe(topic, &group).await {
            Ok(consumer) => consumer,
            Err(error) => {
                warn!(sink = %name, %error, retry_in_ms = backoff.as_millis(), "alert sink cannot subscribe");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        // the next offset of each partition a record was read from, for the backlog gauge
        let mut next: BTreeMap<u32, u64> = BTreeMap::new();
        // per partition, where this assignment resumed: records before it are only remembered
        let mut resumed_at: BTreeMap<u32, u64> = BTreeMap::new();
        let mut remembered = Remembered::default();
        loop {
            let delivery = tokio::select! {
                delivery = consumer.poll(100, Duration::from_millis(500)) => delivery,
                _ = shutdown.changed() => return,
            };
            let records = match delivery {
                Ok(Delivery::Records(records)) => records,
                Ok(Delivery::Assigned(partitions)) => {
                    next.clear();
                    resumed_at.clear();
                    for partition in partitions {
                        match read_back(&mut consumer, partition).await {
                            Ok(resume) => {
                                resumed_at.insert(partition, resume);
                                next.insert(partition, resume);
                            }
                            Err(error) => {
                                warn!(sink = %name, partition, %error, "alert sink cannot read back; repeats are not suppressed");
                            }
                        }
                    }
                    metrics::gauge!("argus_sink_backlog_records", "sink" => name.clone())
                        .set(backlog(&consumer, &next) as f64);
                    continue;
                }
                Ok(Delivery::Revoked(_)) => {
                    next.clear();
                    resumed_at.clear();
                    continue;
                }
                Err(error) => {
                    warn!(sink = %name, %error, "alert sink poll failed; subscribing again");
                    break;
                }
            };
            let mut uncommitted = BTreeMap::new();
            for record in records {
                let resume = *resumed_at.entry(record.partition).or_insert_with(|| {
                    next.insert(record.partition, record.offset);
                    record.offset
                });
                let alert = encoding.decode(&record.value);
                if record.offset < resume {
                    if let Some(alert) = &alert {
                        remembered.insert(dedup_key(alert));
                        if config.filter.carries(alert) {
                            sink.recall(alert).await;
                        }
                    }
                    continue;
                }
                let outcome = match alert {
                    None => "undecodable",
                    Some(alert) if !remembered.insert(dedup_key(&alert)) => "repeat",
                    Some(alert) if !config.filter.carries(&alert) => "filtered",
                    Some(alert)
                        if now_millis().saturating_sub(transition_at(&alert)) > config.max_age().as_millis() as i64 =>
                    {
                        sink.recall(&alert).await;
                        "expired"
                    }
                    Some(alert) => {
                        // the transition in flight is still waiting
                        next.insert(record.partition, record.offset);
                        match deliver_patiently(config, sink, &alert, &mut shutdown, &mut consumer, &next).await {
                            Some(outcome) => outcome,
                            None => return,
                        }
                    }
                };
                metrics::counter!("argus_sink_transitions_total", "sink" => name.clone(), "outcome" => outcome)
                    .increment(1);
                next.insert(record.partition, record.offset + 1);
                uncommitted.insert(record.partition, record.offset + 1);
                if outcome == "delivered" {
                    commit(&mut consumer, &name, &mut uncommitted).await;
                }
            }
            commit(&mut consumer, &name, &mut uncommitted).await;
            metrics::gauge!("argus_sink_backlog_records", "sink" => name.clone()).set(backlog(&consumer, &next) as f64);
        }
    }
}

/// Seeks `partition` back [`REMEMBERED`] records before the group's position, to remember what
/// was delivered before; the position, where delivering resumes.
async fn read_back<C: LogConsumer>(consumer: &mut C, partition: u32) -> Result<u64, argus_log::LogError> {
    let resume = consumer.committed(partition).await?;
    if resume > 0 {
        consumer.seek(Position { partition, offset: resume.saturating_sub(REMEMBERED) }).await?;
    }
    Ok(resume)
}

/// Transitions on the topic from `next` (per partition, the next one to deliver) to its end.
fn backlog<C: LogConsumer>(consumer: &C, next: &BTreeMap<u32, u64>) -> u64 {
    next.iter()
        .map(|(&partition, &next)| consumer.known_end_offset(partition).unwrap_or(next).saturating_sub(next))
        .sum()
}

/// Tries `alert` until the receiver takes or refuses it; `None` if shutdown came first. The
/// consumer is only read (for the backlog), but borrowed mutably: a shared borrow held across the
/// waits would need it to be `Sync`.
async fn deliver_patiently<C: LogConsumer>(
    config: &SinkConfig, sink: &dyn Sink, alert: &Alert, shutdown: &mut watch::Receiver<bool>, consumer: &mut C,
    next: &BTreeMap<u32, u64>,
) -> Option<&'static str> {
    let name = config.name.clone();
    let mut wait = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        match sink.deliver(alert).await {
            Ok(()) => {
                metrics::histogram!("argus_sink_delivery_seconds", "sink" => name).record(started.elapsed());
                return Some("delivered");
            }
            Err(DeliveryError::Refused(reason)) => {
                warn!(sink = %name, alert_id = %alert.alert_id, %reason, "receiver refused a transition; skipped");
                return Some("refused");
            }
            Err(DeliveryError::Unavailable(reason)) => {
                metrics::counter!("argus_sink_delivery_failures_total", "sink" => name.clone()).increment(1);
                metrics::gauge!("argus_sink_backlog_records", "sink" => name.clone())
                    .set(backlog(consumer, next) as f64);
                warn!(sink = %name, alert_id = %alert.alert_id, %reason, retry_in_ms = wait.as_millis(), "delivery failed");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return None,
                }
                wait = (wait * 2).min(config.max_backoff());
            }
        }
    }
}

/// Commits `positions`; a failed commit is logged and left for the next (a restart then repeats
/// a little more, never less).
async fn commit<C: LogConsumer>(consumer: &mut C, name: &str, positions: &mut BTreeMap<u32, u64>) {
    if positions.is_empty() {
        return;
    }
    let list: Vec<Position> = positions.iter().map(|(&partition, &offset)| Position { partition, offset }).collect();
    match consumer.commit(&list).await {
        Ok(()) => positions.clear(),
        Err(error) => warn!(sink = %name, %error, "alert sink position not committed; the next commit covers it"),
    }
}
