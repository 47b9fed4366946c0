//! The processor over the embedded store, on the embedded log and on Kafka (a real `tansu` broker):
//! a recorded stream with malformed records and redelivered duplicates ends in the same
//! projections and alert ids whether the processor runs straight through or is stopped and
//! restarted mid-stream; every malformed record is a dead letter.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use argus_core::codec::{decode_alert, decode_dead_letter, encode_event};
use argus_core::synthetic::{Fleet, FleetSpec};
use argus_core::{Clearance, Event, EventHeader, ManifestEntry, PublicKey, RotationManifestSet};
use argus_log::{Delivery, EmbeddedLog, EventLog, KafkaLog, LogConsumer, LogError, Position};
use argus_processor::{ProcessorConfig, run};
use argus_store::{EmbeddedStore, ProjectionStore};

const PARTITIONS: u32 = 3;
const T0: i64 = 1_780_272_000_000;

struct Recorded {
    /// Next offset per partition once everything is consumed.
    end: BTreeMap<u32, u64>,
    malformed: Vec<Vec<u8>>,
}

/// Appends the stream to `log`: 4 gateways x 25 peers x 40 scans, a manifest on one gateway that
/// flags all its peers, a malformed record every 101 records, and some records delivered twice.
async fn record<L: EventLog>(log: &L, topic: &str) -> Recorded {
    let mut fleet = Fleet::new(FleetSpec {
        org: "acme".parse().expect("org"),
        hosts: 4,
        peers_per_host: 25,
        scan_interval_ms: 10_000,
        start: T0,
    });
    let mut events = Vec::new();
    for _ in 0..40 {
        fleet.next_scan(&mut events);
    }
    let manifest = Event::RotationManifestSet(RotationManifestSet {
        header: EventHeader {
            org_id: "acme".parse().expect("org"),
            host: "gw-00001".parse().expect("host"),
            interface: "wg0".parse().expect("iface"),
            observed_at: T0 + 5_000,
            collector_id: "api-1".parse().expect("collector"),
            seq: 1,
        },
        entries: vec![ManifestEntry {
            label: Some("only".into()),
            expected_key: PublicKey::from_bytes([9; 32]),
            retired_keys: vec![],
        }],
        writer_clearance: Some(Clearance::TopSecret),
    });
    events.insert(events.len() / 4, manifest);
    let mut end = BTreeMap::new();
    let mut malformed = Vec::new();
    let mut bytes = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let header = event.header();
        let key = format!("{}/{}", header.org_id, header.host);
        bytes.clear();
        encode_event(event, &mut bytes);
        let position = log.append(topic, key.as_bytes(), &bytes).await.expect("append");
        end.insert(position.partition, position.offset + 1);
        if index % 101 == 50 {
            let garbage = format!("not an event #{index}").into_bytes();
            let position = log.append(topic, key.as_bytes(), &garbage).await.expect("append");
            end.insert(position.partition, position.offset + 1);
            malformed.push(garbage);
        }
        if index % 37 == 0 {
            let position = log.append(topic, key.as_bytes(), &bytes).await.expect("redeliver");
            end.insert(position.partition, position.offset + 1);
        }
    }
    Recorded { end, malformed }
}

/// Runs a processor until every partition's checkpoint reaches `until` (or, with `stop_early`,
/// until the first checkpoint passes a third of its partition).
async fn process<L: EventLog>(
    log: &L, store: &EmbeddedStore, config: &ProcessorConfig, until: &BTreeMap<u32, u64>, stop_early: bool,
) {
    let done = async {
        // up to two minutes: a broker restart costs a group rejoin
        for _ in 0..6_000 {
            let mut reached = 0;
            for (&partition, &end) in until {
                let checkpoint =
                    store.checkpoint(&format!("{}/{partition}", config.observations_topic)).await.expect("checkpoint");
                let offset = checkpoint.map_or(0, |checkpoint| checkpoint.next_offset);
                if stop_early && offset > 0 && offset >= end / 3 {
                    return;
                }
                reached += usize::from(offset >= end);
            }
            if reached == until.len() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("processor did not catch up");
    };
    run(log, store, config, done).await.expect("processor runs");
}

/// Every record `group` has not consumed yet (a new group: every record of the topic).
async fn drain<L: EventLog>(log: &L, topic: &str, group: &str) -> Vec<Vec<u8>> {
    let mut consumer = log.subscribe(topic, group).await.expect("subscribe");
    let mut values = Vec::new();
    let mut idle = 0;
    let mut assigned = false;
    while idle < 3 {
        match consumer.poll(10_000, Duration::from_millis(300)).await.expect("poll") {
            Delivery::Assigned(_) => assigned = true,
            Delivery::Records(records) if records.is_empty() && !assigned => {}
            Delivery::Records(records) if records.is_empty() => idle += 1,
            Delivery::Records(records) => values.extend(records.into_iter().map(|record| record.value)),
            _ => {}
        }
    }
    values
}

fn without_checkpoints(export: &str) -> String {
    // snapshots hold processing times (when heartbeats were received), which differ between runs
    export.lines().filter(|line| !line.starts_with("checkpoints ")).map(|line| format!("{line}\n")).collect()
}

/// What a run left: the projections (without checkpoints) and the published alert ids; checks
/// that every malformed record was dead-lettered with its bytes.
async fn outcome<L: EventLog>(
    log: &L, config: &ProcessorConfig, store: &EmbeddedStore, recorded: &Recorded,
) -> (String, BTreeSet<String>) {
    let letters: Vec<_> = drain(log, &config.dead_letter_topic, "test-reader")
        .await
        .iter()
        .map(|bytes| decode_dead_letter(bytes).expect("dead letter"))
        .collect();
    let refused: BTreeSet<Vec<u8>> = letters.iter().map(|letter| letter.value.clone()).collect();
    assert_eq!(refused, recorded.malformed.iter().cloned().collect(), "every malformed record, with its bytes");
    assert!(letters.iter().all(|letter| letter.reason.contains("marker") || letter.reason.contains("shorter")));
    let alert_ids: BTreeSet<String> = drain(log, &config.alerts_topic, "test-reader")
        .await
        .iter()
        .map(|bytes| decode_alert(bytes).expect("alert").alert_id.to_string())
        .collect();
    assert_eq!(alert_ids.len(), 25, "the manifest flags the 25 peers of one gateway");
    let stats = store.stats(&"acme".parse().expect("org"), argus_core::Clearance::TopSecret).await.expect("stats");
    assert_eq!(stats.peers.total(), 100);
    (without_checkpoints(&store.export().await.expect("export")), alert_ids)
}

/// Each partition's checkpointed offset (0 before the first checkpoint).
async fn checkpoints(store: &EmbeddedStore, config: &ProcessorConfig, recorded: &Recorded) -> Vec<u64> {
    let mut offsets = Vec::new();
    for partition in recorded.end.keys() {
        let name = format!("{}/{partition}", config.observations_topic);
        offsets.push(store.checkpoint(&name).await.expect("checkpoint").map_or(0, |checkpoint| checkpoint.next_offset));
    }
    offsets
}

/// One run: record the stream on `log`, process it (stopping once mid-stream when `restarts`),
/// and return what it left.
async fn run_once<L: EventLog>(log: &L, config: &ProcessorConfig, restarts: bool) -> (String, BTreeSet<String>) {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&directory.path().join("store")).expect("store");
    let recorded = record(log, &config.observations_topic).await;
    if restarts {
        // tiny batches: the stream takes seconds, so the stop lands mid-stream
        let slow = ProcessorConfig { max_batch_records: 2, ..config.clone() };
        process(log, &store, &slow, &recorded.end, true).await;
        let at_stop = checkpoints(&store, config, &recorded).await;
        println!("checkpoints at the stop: {at_stop:?} of {:?}", recorded.end);
        assert!(at_stop.iter().zip(recorded.end.values()).any(|(at, end)| at < end), "it stopped mid-stream");
    }
    process(log, &store, config, &recorded.end, false).await;
    outcome(log, config, &store, &recorded).await
}

/// The outcome of a straight run on the embedded log: what every other run must equal.
async fn golden() -> (String, BTreeSet<String>) {
    let directory = tempfile::tempdir().expect("tempdir");
    let embedded = EmbeddedLog::open(&directory.path().join("log"), PARTITIONS).expect("log");
    run_once(&embedded, &config(), false).await
}

/// A broker with the three topics, and a client of it.
async fn kafka(broker: &argus_testkit::Tansu, config: &ProcessorConfig) -> KafkaLog {
    broker.create_topic(&config.observations_topic, PARTITIONS as i32).await;
    broker.create_topic(&config.alerts_topic, 1).await;
    broker.create_topic(&config.dead_letter_topic, 1).await;
    KafkaLog::connect(broker.bootstrap()).expect("connect")
}

/// A log whose consumers wait `pause` before each poll: a processor that cannot finish the stream
/// before a rebalance, however fast the machine.
struct Slowed<L> {
    log: L,
    pause: Duration,
}

#[async_trait::async_trait]
impl<L: EventLog> EventLog for Slowed<L> {
    type Consumer = Slowed<L::Consumer>;

    async fn append(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<Position, LogError> {
        self.log.append(topic, key, value).await
    }

    async fn flush(&self) -> Result<(), LogError> {
        self.log.flush().await
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Self::Consumer, LogError> {
        Ok(Slowed { log: self.log.subscribe(topic, group).await?, pause: self.pause })
    }
}

#[async_trait::async_trait]
impl<C: LogConsumer> LogConsumer for Slowed<C> {
    async fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Delivery, LogError> {
        tokio::time::sleep(self.pause).await;
        self.log.poll(max_records, timeout).await
    }

    async fn seek(&mut self, position: Position) -> Result<(), LogError> {
        self.log.seek(position).await
    }

    async fn seek_to_end(&mut self, partition: u32) -> Result<(), LogError> {
        self.log.seek_to_end(partition).await
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError> {
        self.log.commit(positions).await
    }

    async fn committed(&mut self, partition: u32) -> Result<u64, LogError> {
        self.log.committed(partition).await
    }

    async fn end_offset(&mut self, partition: u32) -> Result<u64, LogError> {
        self.log.end_offset(partition).await
    }

    fn known_end_offset(&self, partition: u32) -> Option<u64> {
        self.log.known_end_offset(partition)
    }
}

/// Waits until some partition's checkpoint is past a third of it.
async fn until_a_third_done(store: &EmbeddedStore, config: &ProcessorConfig, recorded: &Recorded) {
    // up to two minutes: the whole suite runs beside it on two cores
    for _ in 0..12_000 {
        for (&partition, &end) in &recorded.end {
            let name = format!("{}/{partition}", config.observations_topic);
            let checkpoint = store.checkpoint(&name).await.expect("checkpoint");
            if checkpoint.is_some_and(|checkpoint| checkpoint.next_offset >= end / 3) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no partition got a third of the way");
}

fn config() -> ProcessorConfig {
    // checkpoints lag the batches, so a restart replays records whose rows were already written
    ProcessorConfig {
        max_batch_records: 200,
        poll_timeout: Duration::from_millis(20),
        checkpoint_interval: Duration::from_millis(150),
        lag_check_interval: Duration::from_secs(2),
        ..ProcessorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_log_a_restart_mid_stream_changes_nothing() {
    let mut outcomes = Vec::new();
    for restarts in [false, true] {
        let directory = tempfile::tempdir().expect("tempdir");
        let log = EmbeddedLog::open(&directory.path().join("log"), PARTITIONS).expect("log");
        outcomes.push(run_once(&log, &config(), restarts).await);
    }
    assert_eq!(outcomes[0].1, outcomes[1].1, "same alert ids");
    assert!(outcomes[0].0 == outcomes[1].0, "same projections after a restart");
}

/// A replay (`argus replay`, `loadgen`) stops when every partition's checkpoint reaches the end it
/// was given: each partition checkpoints as it gets there, without waiting for the interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_checkpoints_each_partition_as_it_reaches_its_end() {
    let directory = tempfile::tempdir().expect("tempdir");
    let log = EmbeddedLog::open(&directory.path().join("log"), PARTITIONS).expect("log");
    let store = EmbeddedStore::open(&directory.path().join("store")).expect("store");
    let config = ProcessorConfig { checkpoint_interval: Duration::from_secs(3_600), ..config() };
    let recorded = record(&log, &config.observations_topic).await;
    let replay = argus_processor::run_until_caught_up(&log, &store, &config, &recorded.end, |_, _| {});
    tokio::time::timeout(Duration::from_secs(60), replay)
        .await
        .expect("the replay ends long before the checkpoint interval")
        .expect("replay");
    for (&partition, &end) in &recorded.end {
        let name = format!("{}/{partition}", config.observations_topic);
        let checkpoint = store.checkpoint(&name).await.expect("checkpoint").expect("a checkpoint");
        assert!(checkpoint.next_offset >= end, "partition {partition} checkpointed at its end");
    }
    // group offsets are committed with checkpoints, so the group has nothing left to read
    let unread = drain(&log, &config.observations_topic, &config.group).await;
    assert!(unread.is_empty(), "{} records the group had not committed", unread.len());
    assert!(outcome(&log, &config, &store, &recorded).await == golden().await, "the golden projections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_a_restart_mid_stream_changes_nothing_and_matches_the_embedded_log() {
    let mut outcomes = Vec::new();
    for restarts in [false, true] {
        let broker = argus_testkit::Tansu::start();
        let config = config();
        broker.create_topic(&config.observations_topic, PARTITIONS as i32).await;
        broker.create_topic(&config.alerts_topic, 1).await;
        broker.create_topic(&config.dead_letter_topic, 1).await;
        let log = KafkaLog::connect(broker.bootstrap()).expect("connect");
        outcomes.push(run_once(&log, &config, restarts).await);
    }
    assert_eq!(outcomes[0].1, outcomes[1].1, "same alert ids");
    assert!(outcomes[0].0 == outcomes[1].0, "same projections after a restart");
    let reference = golden().await;
    assert!(reference.0 == outcomes[0].0, "Kafka and the embedded log give the same projections");
}

/// Two processors in one consumer group: the second joins mid-stream (a rebalance splits the
/// partitions), then the first dies; the survivor takes its partitions over from their
/// checkpoints. Nothing is lost and no delta is counted twice: the projections are the golden ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_two_processors_share_the_partitions_and_one_dying_loses_nothing() {
    // tiny batches, each one fsynced, and the first processor polls at most every 10 ms: the
    // stream takes it more than 20 s, so the death lands mid-stream however long the rebalance
    let config = ProcessorConfig { max_batch_records: 2, ..config() };
    let broker = argus_testkit::Tansu::start();
    let first_log = Arc::new(Slowed { log: kafka(&broker, &config).await, pause: Duration::from_millis(10) });
    let second_log = Arc::new(KafkaLog::connect(broker.bootstrap()).expect("connect"));
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open_with_sync_interval(&directory.path().join("store"), Duration::ZERO).expect("store");
    let recorded = record(&*first_log, &config.observations_topic).await;

    // this test process's own metrics: the processors count the partitions given and taken
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().expect("recorder");
    let counted = |name: &str| {
        metrics.render().lines().find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok()).unwrap_or(0)
    };
    let first = {
        let (log, store, config) = (Arc::clone(&first_log), store.clone(), config.clone());
        tokio::spawn(async move { run(&*log, &store, &config, std::future::pending()).await })
    };
    until_a_third_done(&store, &config, &recorded).await;
    assert_eq!(counted("argus_processor_partitions_assigned_total"), PARTITIONS as u64, "the first has them all");
    let second = {
        let (log, store, config, end) = (Arc::clone(&second_log), store.clone(), config.clone(), recorded.end.clone());
        tokio::spawn(async move { process(&*log, &store, &config, &end, false).await })
    };
    // the group rebalances: the first gives partitions up and they are assigned again, some of
    // them to the second (alone, the first would keep them); then the first dies without a goodbye
    let rebalanced = tokio::time::Instant::now() + Duration::from_secs(60);
    while counted("argus_processor_partitions_revoked_total") == 0
        || counted("argus_processor_partitions_assigned_total") < 2 * PARTITIONS as u64
    {
        assert!(tokio::time::Instant::now() < rebalanced, "the second processor never got partitions");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_death = checkpoints(&store, &config, &recorded).await;
    println!("checkpoints when the first processor died: {at_death:?} of {:?}", recorded.end);
    assert!(at_death.iter().zip(recorded.end.values()).any(|(at, end)| at < end), "it died mid-stream");
    assert!(!first.is_finished(), "the first was still running when it died");
    first.abort();
    assert!(first.await.expect_err("killed").is_cancelled(), "it died of the kill, not of an error");
    second.await.expect("the survivor finishes");

    let outcome = outcome(&*second_log, &config, &store, &recorded).await;
    let reference = golden().await;
    assert_eq!(outcome.1, reference.1, "same alert ids");
    assert!(outcome.0 == reference.0, "the golden projections");
}

/// The broker (sqlite storage) is killed mid-stream and restarted: the processor waits it out and
/// ends in the golden projections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_a_broker_restart_mid_stream_ends_in_the_golden_projections() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let config = config();
    let mut broker = argus_testkit::Tansu::start_durable();
    let log = Arc::new(kafka(&broker, &config).await);
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&directory.path().join("store")).expect("store");
    let recorded = record(&*log, &config.observations_topic).await;
    let processor = {
        let (log, store, config, end) = (Arc::clone(&log), store.clone(), config.clone(), recorded.end.clone());
        tokio::spawn(async move { process(&*log, &store, &config, &end, false).await })
    };
    until_a_third_done(&store, &config, &recorded).await;
    broker.stop();
    let at_stop = checkpoints(&store, &config, &recorded).await;
    assert!(at_stop.iter().zip(recorded.end.values()).any(|(at, end)| at < end), "the broker died mid-stream");
    assert!(!processor.is_finished(), "the processor was still at work");
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.restart();
    processor.await.expect("the processor finishes");

    let outcome = outcome(&*log, &config, &store, &recorded).await;
    let reference = golden().await;
    assert_eq!(outcome.1, reference.1, "same alert ids");
    assert!(outcome.0 == reference.0, "the golden projections");
}
