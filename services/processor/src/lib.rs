//! The processor: consumes observations, folds them per partition, writes projection batches with
//! their checkpoint, then publishes alerts and dead letters. All decisions are in the pure fold;
//! this loop owns the clock, the I/O and the order of effects.
//!
//! Exactly-once effect on at-least-once delivery: a checkpoint (fold snapshot and next offset) is
//! written in the same batch as the rows it covers, every `checkpoint_interval`, on shutdown or
//! revocation, and (in a replay) when a partition reaches the end it replays to; on assignment a
//! partition resumes from its checkpoint, and the records replayed from there rewrite the same rows
//! (every write is an idempotent upsert). Alerts and dead letters are published before the batch
//! that covers them is written, so a crash between the two replays them (the same alert ids)
//! rather than losing them. The batches prepared at the end of one turn are written (one after
//! another, so a partition's batches keep their order) while the next poll is read and folded: on
//! the embedded store the write runs on a blocking thread, so the two use both cores.
//!
//! An unreachable log is waited out with backoff (polls, and publishes for up to
//! `PUBLISH_PATIENCE`); group commits only feed lag monitoring, so a failed one is logged and
//! skipped. Whenever reading resumes (from a checkpoint, or after the log was unreachable) the
//! gateway-silence clocks start again: the pipeline's own outage is not a gateway's silence. A
//! partition's silence is judged only as of the last moment it had read everything its log held
//! ([`ReadThrough`]): a processor catching up on a backlog cannot tell a silent gateway from one
//! whose heartbeats wait unread.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argus_core::codec::{AlertEncoding, decode_event, encode_dead_letter};
use argus_core::fold::{Effect, RuleConfig, SnapshotError};
use argus_core::ids::partition_key;
use argus_core::{CollectorRegistry, DeadLetter, FoldState, HostId, OrgId, UnixMillis};
use argus_log::{Delivery, EventLog, LogConsumer, LogError, Position, Record};
use argus_store::{Batch, Checkpoint, ProjectionStore, StoreError};
use tracing::warn;

/// How long an alert or dead letter is retried while the log refuses it before the processor
/// stops (its batch is not written then, so a restart publishes it again).
const PUBLISH_PATIENCE: Duration = Duration::from_secs(300);
/// Longest wait between retries while the log is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Once one turn's checkpoints hold this many snapshot bytes, the other partitions' checkpoints
/// wait for the next turn: snapshots of a million peers are tens of MB a partition, and all of a
/// turn's batches are held while they are written.
const SNAPSHOT_BYTES_IN_FLIGHT: usize = 32 * 1024 * 1024;

/// Topics, group and pacing of one processor.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    pub observations_topic: String,
    pub alerts_topic: String,
    pub dead_letter_topic: String,
    pub group: String,
    pub alert_encoding: AlertEncoding,
    pub rules: RuleConfig,
    /// Most records taken from the log in one poll; each partition's share becomes one projection
    /// batch. A poll takes what is waiting, so batches reach this size only while a backlog is
    /// read; then one transaction holds several observations of many a peer, whose `peers` row
    /// and pages it writes once.
    pub max_batch_records: usize,
    /// How long a poll waits for records; also the pace of the gateway-silence timer.
    pub poll_timeout: Duration,
    /// How often a partition's fold is snapshotted into a checkpoint (a restart replays at most
    /// this much of the log; snapshots cost time in proportion to the peers held).
    pub checkpoint_interval: Duration,
    /// How often each partition's lag is checked (against the end offset the log last reported,
    /// no round trip): it sets the lag gauge, and a partition with records waiting that delivered
    /// none in a whole interval is sought to its position again.
    pub lag_check_interval: Duration,
    /// Which organisations and hosts each collector id may publish for (empty: any).
    pub collectors: CollectorRegistry,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            observations_topic: "wireguard.observations".into(),
            alerts_topic: "wireguard.alerts".into(),
            dead_letter_topic: "wireguard.dead-letter".into(),
            group: "argus-processor".into(),
            alert_encoding: AlertEncoding::Avro,
            rules: RuleConfig::default(),
            max_batch_records: 128_000,
            poll_timeout: Duration::from_millis(500),
            checkpoint_interval: Duration::from_secs(5),
            lag_check_interval: Duration::from_secs(10),
            collectors: CollectorRegistry::default(),
        }
    }
}

/// Why the processor stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("checkpoint of {partition} does not restore: {source}")]
    Snapshot { partition: String, source: SnapshotError },
}

/// The fold of one assigned partition and what it has not written yet.
#[derive(Debug)]
struct PartitionState {
    fold: FoldState,
    next_offset: u64,
    /// `next_offset` as of the last checkpoint written, and when.
    checkpointed_offset: u64,
    checkpointed_at: Instant,
    effects: Vec<Effect>,
    touched: BTreeSet<(OrgId, HostId)>,
    dead_letters: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether a record arrived since the last lag check.
    delivered: bool,
    read_through: ReadThrough,
}

/// The latest processing time by which a partition had read every record its log held then: the
/// time gateway silence is judged at. A mark (a time and the log's end then) is taken, and once
/// the position reaches that end the mark's time becomes the judged time.
#[derive(Debug, Default)]
struct ReadThrough {
    judged_at: UnixMillis,
    mark: Option<(UnixMillis, u64)>,
}

impl ReadThrough {
    /// Advances with the partition at `next_offset` and its log ending at `known_end` (if known)
    /// at `now`; returns the time to judge silence at.
    fn advance(&mut self, now: UnixMillis, next_offset: u64, known_end: Option<u64>) -> UnixMillis {
        if let Some((at, _)) = self.mark.filter(|&(_, end)| next_offset >= end) {
            self.judged_at = self.judged_at.max(at);
            self.mark = None;
        }
        if self.mark.is_none()
            && let Some(end) = known_end
        {
            if next_offset >= end {
                self.judged_at = self.judged_at.max(now);
            } else {
                self.mark = Some((now, end));
            }
        }
        self.judged_at
    }
}

/// Processing time, the only clock the fold sees.
fn now_millis() -> UnixMillis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

/// Consumes `config.observations_topic` until `shutdown` resolves, then writes what it holds.
pub async fn run<L: EventLog, S: ProjectionStore>(
    log: &L, store: &S, config: &ProcessorConfig, shutdown: impl Future<Output = ()>,
) -> Result<(), ProcessorError> {
    run_towards(log, store, config, shutdown, &BTreeMap::new(), |_, _| {}).await
}

/// [`run`], checkpointing a partition as soon as it reaches its offset in `ends` (instead of when
/// the next `checkpoint_interval` is due), and stopping as on shutdown once every partition in a
/// non-empty `ends` has a checkpoint there; `progress(done, total)` hears how many records the
/// checkpoints cover after each turn's writes.
async fn run_towards<L: EventLog, S: ProjectionStore>(
    log: &L, store: &S, config: &ProcessorConfig, shutdown: impl Future<Output = ()>, ends: &BTreeMap<u32, u64>,
    mut progress: impl FnMut(u64, u64),
) -> Result<(), ProcessorError> {
    let total: u64 = ends.values().sum();
    let mut consumer = log.subscribe(&config.observations_topic, &config.group).await?;
    let mut partitions: BTreeMap<u32, PartitionState> = BTreeMap::new();
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    let mut log_was_unavailable = false;
    let mut lag_checked_at = Instant::now();
    // batches prepared at the end of one turn are written while the next poll is read and folded
    let mut in_flight: Vec<PreparedWrite> = Vec::new();
    loop {
        let writing = write_prepared(store, &mut in_flight);
        let polling = async {
            let polled = tokio::select! {
                () = &mut shutdown => return Polled::Shutdown,
                polled = consumer.poll(config.max_batch_records, config.poll_timeout) => polled,
            };
            let delivery = match polled {
                Ok(delivery) => delivery,
                Err(LogError::Unavailable(reason)) => {
                    log_was_unavailable = true;
                    return Polled::Unavailable(reason);
                }
                Err(error) => return Polled::Failed(error),
            };
            if std::mem::take(&mut log_was_unavailable) {
                let now = now_millis();
                partitions.values_mut().for_each(|state| state.fold.restart_silence_clocks(now));
            }
            match delivery {
                Delivery::Records(records) => {
                    let now = now_millis();
                    for record in records {
                        if let Some(state) = partitions.get_mut(&record.partition) {
                            state.delivered = true;
                            fold_record(config, state, record, now);
                        }
                    }
                    Polled::Folded
                }
                Delivery::Assigned(assigned) => Polled::Assigned(assigned),
                Delivery::Revoked(revoked) => Polled::Revoked(revoked),
            }
        };
        let (written, polled) = tokio::join!(writing, polling);
        written?;
        for prepared in in_flight.drain(..) {
            if let Some(state) = partitions.get_mut(&prepared.partition) {
                finish_write(&mut consumer, state, prepared).await;
            }
        }
        if !ends.is_empty() {
            let covered = |(partition, end): (&u32, &u64)| {
                partitions.get(partition).map_or(0, |state| state.checkpointed_offset.min(*end))
            };
            let done: u64 = ends.iter().map(covered).sum();
            progress(done, total);
            if done >= total {
                break;
            }
        }
        match polled {
            Polled::Shutdown => break,
            Polled::Unavailable(reason) => {
                warn!(%reason, retry_in_ms = backoff.as_millis(), "event log unavailable; polling again");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Polled::Failed(error) => return Err(error.into()),
            Polled::Folded => {}
            Polled::Assigned(assigned) => {
                // a rebalance shows as assignments and revocations beyond the first
                metrics::counter!("argus_processor_partitions_assigned_total").increment(assigned.len() as u64);
                for partition in assigned {
                    let state = resume(store, config, partition).await?;
                    consumer.seek(Position { partition, offset: state.next_offset }).await?;
                    record_position(partition, state.next_offset);
                    partitions.insert(partition, state);
                }
            }
            Polled::Revoked(revoked) => {
                metrics::counter!("argus_processor_partitions_revoked_total").increment(revoked.len() as u64);
                for partition in revoked {
                    if let Some(mut state) = partitions.remove(&partition) {
                        flush(log, store, config, &mut consumer, partition, &mut state, Checkpointing::Now).await?;
                    }
                }
            }
        }
        backoff = Duration::from_millis(100);
        let now = now_millis();
        let mut snapshot_room = SNAPSHOT_BYTES_IN_FLIGHT;
        for (&partition, state) in &mut partitions {
            let judged_at = state.read_through.advance(now, state.next_offset, consumer.known_end_offset(partition));
            state.fold.tick(judged_at, &mut state.effects);
            let reached_end =
                ends.get(&partition).is_some_and(|&end| state.checkpointed_offset < end && state.next_offset >= end);
            let checkpointing = match (snapshot_room, reached_end) {
                (0, _) => Checkpointing::NotThisTurn,
                (_, true) => Checkpointing::Now,
                (_, false) => Checkpointing::WhenDue,
            };
            if let Some(prepared) = prepare_write(log, config, partition, state, checkpointing).await? {
                snapshot_room = snapshot_room.saturating_sub(prepared.snapshot_bytes());
                in_flight.push(prepared);
            }
        }
        if lag_checked_at.elapsed() >= config.lag_check_interval {
            lag_checked_at = Instant::now();
            for (&partition, state) in &mut partitions {
                check_lag(&mut consumer, partition, state).await;
            }
        }
    }
    for (&partition, state) in &mut partitions {
        flush(log, store, config, &mut consumer, partition, state, Checkpointing::Now).await?;
    }
    Ok(())
}

/// What one turn's poll came to.
enum Polled {
    Shutdown,
    /// Records, already folded into their partitions.
    Folded,
    Assigned(Vec<u32>),
    Revoked(Vec<u32>),
    Unavailable(String),
    Failed(LogError),
}

/// Runs until every partition's checkpoint reaches its offset in `end` (a replay, a load test),
/// then stops as on shutdown. `progress(done, total)` hears how many records the checkpoints cover.
pub async fn run_until_caught_up<L: EventLog, S: ProjectionStore>(
    log: &L, store: &S, config: &ProcessorConfig, end: &BTreeMap<u32, u64>, progress: impl FnMut(u64, u64),
) -> Result<(), ProcessorError> {
    if end.is_empty() {
        return Ok(());
    }
    run_towards(log, store, config, std::future::pending(), end, progress).await
}

fn checkpoint_name(config: &ProcessorConfig, partition: u32) -> String {
    format!("{}/{partition}", config.observations_topic)
}

/// A partition's fold and position from its checkpoint, or a fresh start.
async fn resume<S: ProjectionStore>(
    store: &S, config: &ProcessorConfig, partition: u32,
) -> Result<PartitionState, ProcessorError> {
    let name = checkpoint_name(config, partition);
    let (mut fold, next_offset) = match store.checkpoint(&name).await? {
        Some(checkpoint) => {
            let fold = FoldState::restore(config.rules.clone(), &checkpoint.snapshot)
                .map_err(|source| ProcessorError::Snapshot { partition: name, source })?;
            (fold, checkpoint.next_offset)
        }
        None => (FoldState::new(config.rules.clone()), 0),
    };
    // the processor was not reading since the checkpoint was written
    fold.restart_silence_clocks(now_millis());
    Ok(PartitionState {
        fold,
        next_offset,
        checkpointed_offset: next_offset,
        checkpointed_at: Instant::now(),
        effects: Vec::new(),
        touched: BTreeSet::new(),
        dead_letters: Vec::new(),
        delivered: true,
        read_through: ReadThrough::default(),
    })
}

/// Decodes and folds one record; a record that does not decode, or that the fold refuses,
/// becomes a dead letter with the reason.
fn fold_record(config: &ProcessorConfig, state: &mut PartitionState, record: Record, now: UnixMillis) {
    if record.offset < state.next_offset {
        return;
    }
    state.next_offset = record.offset + 1;
    metrics::counter!("argus_processor_events_total").increment(1);
    let refusal = match decode_event(&record.value) {
        Ok(event) => {
            let header = event.header();
            if let Some(refusal) = config.collectors.refusal(header) {
                format!("refused: {refusal}")
            } else {
                state.touched.insert((header.org_id.clone(), header.host.clone()));
                match state.fold.apply(&event, now, &mut state.effects) {
                    Ok(()) => return,
                    Err(refusal) => format!("refused: {refusal}"),
                }
            }
        }
        Err(error) => error.to_string(),
    };
    metrics::counter!("argus_processor_dead_letters_total").increment(1);
    let letter = DeadLetter {
        source_topic: config.observations_topic.clone(),
        source_partition: record.partition,
        source_offset: record.offset,
        key: record.key.clone(),
        value: record.value,
        reason: refusal,
        rejected_at: now,
    };
    let mut bytes = Vec::new();
    encode_dead_letter(&letter, &mut bytes);
    state.dead_letters.push((record.key, bytes));
}

/// Whether a flush must write a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checkpointing {
    /// When `checkpoint_interval` has passed since the last one.
    WhenDue,
    /// Always (shutdown, revocation, a replay's end).
    Now,
    /// Not in this turn: other partitions' snapshots already fill [`SNAPSHOT_BYTES_IN_FLIGHT`].
    NotThisTurn,
}

/// A partition's batch, its alerts and dead letters already published, waiting to be written.
#[derive(Debug)]
struct PreparedWrite {
    partition: u32,
    batch: Option<Batch>,
    /// The partition's position the batch covers, and whether the batch checkpoints it.
    next_offset: u64,
    checkpoint_due: bool,
}

impl PreparedWrite {
    fn snapshot_bytes(&self) -> usize {
        let checkpoint = self.batch.as_ref().and_then(|batch| batch.checkpoint.as_ref());
        checkpoint.map_or(0, |checkpoint| checkpoint.snapshot.len())
    }
}

/// Publishes the partition's alerts and dead letters, then writes its pending effects (with a
/// checkpoint when one is due), then commits the group position with that checkpoint.
async fn flush<L: EventLog, S: ProjectionStore>(
    log: &L, store: &S, config: &ProcessorConfig, consumer: &mut L::Consumer, partition: u32,
    state: &mut PartitionState, checkpointing: Checkpointing,
) -> Result<(), ProcessorError> {
    if let Some(mut prepared) = prepare_write(log, config, partition, state, checkpointing).await? {
        write_prepared(store, std::slice::from_mut(&mut prepared)).await?;
        finish_write(consumer, state, prepared).await;
    }
    Ok(())
}

/// Takes the partition's pending effects into a batch (with a checkpoint when one is due) and
/// publishes its alerts and dead letters; `None` when there is nothing to write.
async fn prepare_write<L: EventLog>(
    log: &L, config: &ProcessorConfig, partition: u32, state: &mut PartitionState, checkpointing: Checkpointing,
) -> Result<Option<PreparedWrite>, ProcessorError> {
    let progressed = state.next_offset > state.checkpointed_offset;
    let checkpoint_due = progressed
        && match checkpointing {
            Checkpointing::Now => true,
            Checkpointing::WhenDue => state.checkpointed_at.elapsed() >= config.checkpoint_interval,
            Checkpointing::NotThisTurn => false,
        };
    if state.effects.is_empty() && state.dead_letters.is_empty() && state.touched.is_empty() && !checkpoint_due {
        return Ok(None);
    }
    let effects = std::mem::take(&mut state.effects);
    let host_stats =
        std::mem::take(&mut state.touched).iter().flat_map(|(org, host)| state.fold.host_stats(org, host)).collect();
    let alerts: Vec<_> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Alert(alert) => Some(alert.clone()),
            _ => None,
        })
        .collect();
    let checkpoint = checkpoint_due.then(|| Checkpoint {
        partition: checkpoint_name(config, partition),
        next_offset: state.next_offset,
        snapshot: state.fold.snapshot(),
    });
    for alert in alerts {
        metrics::counter!(
            "argus_processor_alerts_total",
            "kind" => alert.kind.name(),
            "state" => alert.state.name()
        )
        .increment(1);
        let mut bytes = Vec::new();
        config.alert_encoding.encode(&alert, &mut bytes);
        let key = partition_key(&alert.org_id, &alert.host);
        append_patiently(log, &config.alerts_topic, key.as_bytes(), &bytes).await?;
    }
    for (key, letter) in std::mem::take(&mut state.dead_letters) {
        append_patiently(log, &config.dead_letter_topic, &key, &letter).await?;
    }
    Ok(Some(PreparedWrite {
        partition,
        batch: Some(Batch { effects, host_stats, checkpoint }),
        next_offset: state.next_offset,
        checkpoint_due,
    }))
}

/// Writes prepared batches one after another, in order: a partition's batches never overtake
/// each other.
async fn write_prepared<S: ProjectionStore>(store: &S, prepared: &mut [PreparedWrite]) -> Result<(), ProcessorError> {
    for write in prepared {
        if let Some(batch) = write.batch.take() {
            let writing = Instant::now();
            store.write(batch).await?;
            metrics::histogram!("argus_processor_batch_seconds").record(writing.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

/// After a batch is written: its checkpoint counts, and the group position follows it. Group
/// offsets only feed lag monitoring (the checkpoint in the store is the position), so they are
/// committed with checkpoints, not with every batch: a commit is a round trip, and on a broker
/// such as tansu a write of its own.
async fn finish_write<C: LogConsumer>(consumer: &mut C, state: &mut PartitionState, prepared: PreparedWrite) {
    let PreparedWrite { partition, next_offset, checkpoint_due, .. } = prepared;
    if checkpoint_due {
        state.checkpointed_offset = next_offset;
        state.checkpointed_at = Instant::now();
        if let Err(error) = consumer.commit(&[Position { partition, offset: next_offset }]).await {
            warn!(partition, %error, "group commit failed");
        }
    }
    metrics::gauge!("argus_processor_checkpoint_age_seconds", "partition" => partition.to_string())
        .set(state.checkpointed_at.elapsed().as_secs_f64());
    record_position(partition, next_offset);
}

/// Sets the partition's lag gauge. A partition with records waiting that delivered none since the
/// last check is sought to its position again: librdkafka has been seen to leave a partition
/// unfetched after a broker restart, and a seek to where the fold stands restarts its fetcher
/// (at worst re-reading records the fold skips).
async fn check_lag<C: LogConsumer>(consumer: &mut C, partition: u32, state: &mut PartitionState) {
    let delivered = std::mem::take(&mut state.delivered);
    let Some(end) = consumer.known_end_offset(partition) else { return };
    let lag = end.saturating_sub(state.next_offset);
    metrics::gauge!("argus_processor_lag_records", "partition" => partition.to_string()).set(lag as f64);
    if lag > 0 && !delivered {
        warn!(
            partition,
            lag,
            next_offset = state.next_offset,
            "partition has records waiting but delivered none; seeking again"
        );
        metrics::counter!("argus_processor_refetches_total", "partition" => partition.to_string()).increment(1);
        if let Err(error) = consumer.seek(Position { partition, offset: state.next_offset }).await {
            warn!(partition, %error, "seek to restart fetching failed; trying again at the next check");
        }
    }
}

/// Appends, retrying with backoff for up to `PUBLISH_PATIENCE` while the log is unavailable.
async fn append_patiently<L: EventLog>(log: &L, topic: &str, key: &[u8], value: &[u8]) -> Result<(), LogError> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        match log.append(topic, key, value).await {
            Ok(_) => return Ok(()),
            Err(LogError::Unavailable(reason)) if started.elapsed() < PUBLISH_PATIENCE => {
                warn!(topic, %reason, retry_in_ms = backoff.as_millis(), "publish failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(error) => return Err(error),
        }
    }
}

/// The position written (or resumed from) per partition, for operators and progress checks.
fn record_position(partition: u32, next_offset: u64) {
    metrics::gauge!("argus_processor_next_offset", "partition" => partition.to_string()).set(next_offset as f64);
}

#[cfg(test)]
mod tests {
    use super::ReadThrough;

    #[test]
    fn silence_is_judged_as_of_the_last_time_everything_was_read() {
        let mut read_through = ReadThrough::default();
        assert_eq!(read_through.advance(1_000, 0, None), 0, "an unknown end judges nothing");
        assert_eq!(read_through.advance(2_000, 10, Some(10)), 2_000, "caught up: judged now");
        // a backlog appears: the judged time stays while it is read
        assert_eq!(read_through.advance(3_000, 10, Some(500)), 2_000);
        assert_eq!(read_through.advance(40_000, 400, Some(900)), 2_000, "still short of the mark's end");
        assert_eq!(read_through.advance(41_000, 500, Some(900)), 3_000, "the mark reached: its time");
        assert_eq!(read_through.advance(42_000, 900, Some(1_000)), 41_000, "the next mark reached");
        assert_eq!(read_through.advance(43_000, 1_000, Some(1_000)), 43_000, "caught up again");
    }
}
