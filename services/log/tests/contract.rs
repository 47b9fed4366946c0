//! The event-log contract, run against every implementation: the embedded log, and the Kafka log
//! on a real `tansu` broker started on a loopback port for each test.

use std::collections::BTreeMap;
use std::time::Duration;

use argus_log::{Delivery, EmbeddedLog, EventLog, KafkaLog, LogConsumer, LogError, Position, Record, partition_for};

const PARTITIONS: u32 = 4;
const TOPIC: &str = "wireguard.observations";

fn open(directory: &tempfile::TempDir) -> EmbeddedLog {
    EmbeddedLog::open(directory.path(), PARTITIONS).expect("open log")
}

/// Polls until the assignment arrives (joining a group takes a few seconds on a broker).
async fn await_assignment<C: LogConsumer>(consumer: &mut C) -> Vec<u32> {
    for _ in 0..600 {
        match consumer.poll(100, Duration::from_millis(50)).await.expect("poll") {
            Delivery::Assigned(partitions) => return partitions,
            Delivery::Records(records) => assert!(records.is_empty(), "no records before the assignment"),
            Delivery::Revoked(_) => {}
        }
    }
    panic!("no assignment within 30 s");
}

/// Polls until `count` records arrived (after the assignment), failing after a bounded wait.
async fn read_records<C: LogConsumer>(consumer: &mut C, count: usize) -> Vec<Record> {
    let mut records = Vec::new();
    for _ in 0..600 {
        if records.len() >= count {
            break;
        }
        match consumer.poll(1_000, Duration::from_millis(50)).await.expect("poll") {
            Delivery::Records(batch) => records.extend(batch),
            Delivery::Assigned(_) | Delivery::Revoked(_) => {}
        }
    }
    assert_eq!(records.len(), count, "records arrived");
    records
}

async fn append_gateways<L: EventLog>(log: &L, gateways: usize, per_gateway: usize) {
    for sequence in 0..per_gateway {
        for gateway in 0..gateways {
            let key = format!("acme/gw-{gateway}");
            let value = format!("{gateway}:{sequence}");
            log.append(TOPIC, key.as_bytes(), value.as_bytes()).await.expect("append");
        }
    }
}

mod checks {
    use super::*;

    pub async fn one_key_stays_on_one_partition_in_order<L: EventLog>(log: &L) {
        append_gateways(log, 10, 50).await;
        let mut consumer = log.subscribe(TOPIC, "processor").await.expect("subscribe");
        let records = read_records(&mut consumer, 500).await;
        let mut by_key: BTreeMap<Vec<u8>, Vec<&Record>> = BTreeMap::new();
        for record in &records {
            by_key.entry(record.key.clone()).or_default().push(record);
        }
        assert_eq!(by_key.len(), 10);
        for (key, records) in by_key {
            let partition = partition_for(&key, PARTITIONS);
            assert!(records.iter().all(|record| record.partition == partition), "one partition per key");
            let sequences: Vec<usize> = records
                .iter()
                .map(|record| {
                    String::from_utf8_lossy(&record.value).split(':').nth(1).expect("seq").parse().expect("n")
                })
                .collect();
            assert_eq!(sequences, (0..50).collect::<Vec<_>>(), "in append order");
        }
    }

    pub async fn append_all_answers_each_record_in_order<L: EventLog>(log: &L) {
        let keys: Vec<String> = (0..30).map(|n| format!("org/gw-{}", n % 3)).collect();
        let values: Vec<String> = (0..30).map(|n| format!("{}:{}", keys[n], n / 3)).collect();
        let records: Vec<(&[u8], &[u8])> =
            keys.iter().zip(&values).map(|(key, value)| (key.as_bytes(), value.as_bytes())).collect();
        let positions: Vec<Position> =
            log.append_all(TOPIC, &records).await.into_iter().map(|position| position.expect("appended")).collect();
        assert_eq!(positions.len(), 30, "one answer per record");
        for (key, position) in keys.iter().zip(&positions) {
            assert_eq!(position.partition, partition_for(key.as_bytes(), PARTITIONS), "the key's partition");
        }
        let mut consumer = log.subscribe(TOPIC, "processor").await.expect("subscribe");
        let read = read_records(&mut consumer, 30).await;
        for (value, position) in values.iter().zip(&positions) {
            let at =
                read.iter().find(|record| record.partition == position.partition && record.offset == position.offset);
            assert_eq!(
                at.map(|record| record.value.as_slice()),
                Some(value.as_bytes()),
                "the record is where it was answered"
            );
        }
    }

    pub async fn the_first_poll_assigns_every_partition<L: EventLog>(log: &L) {
        let mut consumer = log.subscribe(TOPIC, "processor").await.expect("subscribe");
        let mut assigned = await_assignment(&mut consumer).await;
        assigned.sort_unstable();
        assert_eq!(assigned, (0..PARTITIONS).collect::<Vec<_>>());
        let empty = consumer.poll(10, Duration::from_millis(20)).await.expect("poll");
        assert_eq!(empty, Delivery::Records(vec![]), "an idle poll times out empty");
    }

    pub async fn a_waiting_poll_wakes_on_append<L: EventLog + Clone + 'static>(log: &L) {
        let mut consumer = log.subscribe(TOPIC, "processor").await.expect("subscribe");
        await_assignment(&mut consumer).await;
        // a broker may hand out the assignment before fetching starts: let it settle
        consumer.poll(10, Duration::from_millis(500)).await.expect("settle");
        let producer = log.clone();
        let append = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            producer.append(TOPIC, b"acme/gw-1", b"late").await.expect("append")
        });
        let started = std::time::Instant::now();
        let delivery = consumer.poll(10, Duration::from_secs(10)).await.expect("poll");
        assert!(started.elapsed() < Duration::from_secs(5), "woken by the append, not the timeout");
        let position = append.await.expect("join");
        assert_eq!(
            delivery,
            Delivery::Records(vec![Record {
                partition: position.partition,
                offset: position.offset,
                key: b"acme/gw-1".to_vec(),
                value: b"late".to_vec()
            }])
        );
    }

    pub async fn seek_moves_a_partition<L: EventLog>(log: &L) {
        append_gateways(log, 1, 30).await;
        let partition = partition_for(b"acme/gw-0", PARTITIONS);
        let mut consumer = log.subscribe(TOPIC, "processor").await.expect("subscribe");
        read_records(&mut consumer, 30).await;
        consumer.seek(Position { partition, offset: 25 }).await.expect("seek");
        let again = read_records(&mut consumer, 5).await;
        assert_eq!(again.iter().map(|record| record.offset).collect::<Vec<_>>(), vec![25, 26, 27, 28, 29]);
        assert!(matches!(
            consumer.seek(Position { partition: PARTITIONS, offset: 0 }).await,
            Err(LogError::Invalid(_))
        ));
    }

    pub async fn seek_to_end_skips_what_was_there<L: EventLog>(log: &L) {
        append_gateways(log, 4, 5).await;
        let mut consumer = log.subscribe(TOPIC, "live-feed").await.expect("subscribe");
        for partition in await_assignment(&mut consumer).await {
            consumer.seek_to_end(partition).await.expect("seek to end");
        }
        // nothing old arrives; then one new record does
        match consumer.poll(100, Duration::from_millis(300)).await.expect("poll") {
            Delivery::Records(records) => assert!(records.is_empty(), "old records after seek_to_end: {records:?}"),
            other => panic!("unexpected {other:?}"),
        }
        log.append(TOPIC, b"acme/gw-2", b"new").await.expect("append");
        let records = read_records(&mut consumer, 1).await;
        assert_eq!(records[0].value, b"new".to_vec());
    }

    pub async fn the_end_offset_follows_appends<L: EventLog>(log: &L) {
        append_gateways(log, 4, 5).await;
        let mut consumer = log.subscribe(TOPIC, "lag").await.expect("subscribe");
        let records = read_records(&mut consumer, 20).await;
        let mut expected: BTreeMap<u32, u64> = BTreeMap::new();
        for record in &records {
            expected.insert(record.partition, record.offset + 1);
        }
        for (&partition, &end) in &expected {
            assert_eq!(consumer.end_offset(partition).await.expect("end offset"), end, "partition {partition}");
        }
        // the end offset known without a round trip catches up within a few seconds
        let started = std::time::Instant::now();
        for (&partition, &end) in &expected {
            while consumer.known_end_offset(partition) != Some(end) {
                assert!(started.elapsed() < Duration::from_secs(10), "partition {partition}: known end offset");
                // keep the consumer served, as the processor does
                let _ = consumer.poll(1, Duration::from_millis(100)).await.expect("poll");
            }
        }
    }

    pub async fn committed_positions_resume_the_group_only<L: EventLog>(log: &L) {
        append_gateways(log, 4, 10).await;
        let mut consumer = log.subscribe(TOPIC, "processor").await.expect("subscribe");
        let records = read_records(&mut consumer, 40).await;
        let mut next: BTreeMap<u32, u64> = BTreeMap::new();
        for record in records.iter().take(20) {
            next.insert(record.partition, record.offset + 1);
        }
        let positions: Vec<Position> =
            next.iter().map(|(&partition, &offset)| Position { partition, offset }).collect();
        consumer.commit(&positions).await.expect("commit");
        drop(consumer);
        let mut resumed = log.subscribe(TOPIC, "processor").await.expect("resubscribe");
        let rest = read_records(&mut resumed, 40 - next.values().sum::<u64>() as usize).await;
        for record in &rest {
            assert!(record.offset >= next.get(&record.partition).copied().unwrap_or(0), "resumed after the commit");
        }
        for partition in 0..PARTITIONS {
            let committed = resumed.committed(partition).await.expect("committed");
            assert_eq!(committed, next.get(&partition).copied().unwrap_or(0), "partition {partition}'s position");
        }
        let mut other = log.subscribe(TOPIC, "audit").await.expect("other group");
        read_records(&mut other, 40).await;
        assert_eq!(other.committed(0).await.expect("committed"), 0, "a group that never committed");
    }

    pub async fn bad_names_are_refused<L: EventLog>(log: &L) {
        assert!(matches!(log.append("bad topic", b"k", b"v").await, Err(LogError::Invalid(_))));
        assert!(matches!(log.subscribe(TOPIC, "../escape").await.map(drop), Err(LogError::Invalid(_))));
    }
}

macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let directory = tempfile::tempdir().expect("tempdir");
                    super::checks::$check(&super::open(&directory)).await;
                }
            )*
        }

        mod tansu {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let broker = argus_testkit::Tansu::start();
                    broker.create_topic(super::TOPIC, super::PARTITIONS as i32).await;
                    let log = super::KafkaLog::connect(broker.bootstrap()).expect("connect");
                    super::checks::$check(&log).await;
                }
            )*
        }
    };
}

contract!(
    one_key_stays_on_one_partition_in_order,
    append_all_answers_each_record_in_order,
    the_first_poll_assigns_every_partition,
    a_waiting_poll_wakes_on_append,
    seek_moves_a_partition,
    seek_to_end_skips_what_was_there,
    the_end_offset_follows_appends,
    committed_positions_resume_the_group_only,
    bad_names_are_refused,
);

#[tokio::test]
async fn the_embedded_log_survives_a_reopen_and_cuts_a_torn_tail() {
    let directory = tempfile::tempdir().expect("tempdir");
    {
        let log = open(&directory);
        append_gateways(&log, 3, 2_000).await;
        log.flush().await.expect("flush");
    }
    // a crash mid-append leaves half a record at the end of a partition file
    let partition = partition_for(b"acme/gw-1", PARTITIONS);
    let file = directory.path().join(TOPIC).join(format!("{partition}.log"));
    let mut bytes = std::fs::read(&file).expect("read");
    let whole = bytes.len();
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&file, &bytes).expect("tear");

    let log = open(&directory);
    let mut consumer = log.subscribe(TOPIC, "processor").await.expect("subscribe");
    let records = read_records(&mut consumer, 6_000).await;
    assert_eq!(std::fs::metadata(&file).expect("meta").len() as usize, whole, "torn tail cut off");
    let next = log.append(TOPIC, b"acme/gw-1", b"after").await.expect("append after repair");
    let last_before = records.iter().filter(|record| record.partition == partition).map(|record| record.offset).max();
    assert_eq!(Some(next.offset), last_before.map(|offset| offset + 1), "offsets continue");
    assert!(matches!(
        EmbeddedLog::open(directory.path(), PARTITIONS + 1).expect("open").append(TOPIC, b"k", b"v").await,
        Err(LogError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_credentials_the_broker_accepts_carry_records_and_others_are_refused_with_the_reason() {
    use argus_log::{KafkaSecurity, SaslMechanism, SecurityProtocol};
    let mut broker = argus_testkit::Tansu::start_durable();
    broker.create_topic(TOPIC, PARTITIONS as i32).await;
    broker.require_user("argus", "the-password");
    let sasl = |password: &str| KafkaSecurity {
        protocol: SecurityProtocol::SaslPlaintext,
        sasl_mechanism: Some(SaslMechanism::ScramSha512),
        sasl_username: Some("argus".into()),
        sasl_password: Some(argus_core::Secret::new(password)),
        ..KafkaSecurity::default()
    };
    let log = KafkaLog::connect_with(broker.bootstrap(), &sasl("the-password")).expect("connect");
    log.check(Duration::from_secs(10)).await.expect("the broker accepts the user");
    // producer and consumer both authenticate: a record goes through
    let position = log.append(TOPIC, b"acme/gw-1", b"v").await.expect("append");
    let mut consumer = log.subscribe(TOPIC, "secured-group").await.expect("subscribe");
    let records = read_records(&mut consumer, 1).await;
    assert_eq!(
        (records[0].partition, records[0].offset, &records[0].value[..]),
        (position.partition, position.offset, &b"v"[..])
    );

    let refused = KafkaLog::connect_with(broker.bootstrap(), &sasl("not-the-password")).expect("connect");
    match refused.check(Duration::from_secs(10)).await {
        Err(LogError::Refused(reason)) => {
            assert!(reason.starts_with(broker.bootstrap()), "names the brokers: {reason}");
            assert!(reason.contains("SASL authentication error"), "says why: {reason}");
            assert!(!reason.contains("not-the-password"), "never prints the password: {reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // a plaintext client is not served either
    let anonymous = KafkaLog::connect(broker.bootstrap()).expect("connect");
    assert!(anonymous.check(Duration::from_secs(3)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_is_verified_against_the_configured_ca_and_refused_otherwise() {
    use argus_log::{KafkaSecurity, SecurityProtocol};
    let fixture =
        |name: &str| std::path::PathBuf::from(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR")));
    // a real TLS server (OpenSSL's) on a loopback port, with a certificate of the fixture CA
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("port").port();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-accept", &format!("127.0.0.1:{port}")])
        .arg("-cert")
        .arg(fixture("server.pem"))
        .arg("-key")
        .arg(fixture("server.key"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start openssl s_server (Debian: openssl)");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "openssl s_server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let bootstrap = format!("127.0.0.1:{port}");
    // without the CA the server's certificate does not verify: refused, saying so
    let tls = KafkaSecurity { protocol: SecurityProtocol::Ssl, ..KafkaSecurity::default() };
    let outcome = KafkaLog::connect_with(&bootstrap, &tls).expect("connect").check(Duration::from_secs(10)).await;
    // with it the handshake succeeds (and the server, which is no broker, never answers metadata)
    let trusted = KafkaSecurity { ca_file: Some(fixture("ca.pem")), ..tls };
    let verified = KafkaLog::connect_with(&bootstrap, &trusted).expect("connect").check(Duration::from_secs(3)).await;
    let _ = server.kill();
    let _ = server.wait();
    match outcome {
        Err(LogError::Refused(reason)) => assert!(reason.contains("certificate verify failed"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(verified, Err(LogError::Unavailable(_))), "{verified:?}");
}

#[test]
fn security_settings_that_cannot_work_are_refused_naming_the_setting() {
    use argus_log::{KafkaSecurity, SaslMechanism, SecurityProtocol};
    let refusal = |security: KafkaSecurity| match KafkaLog::connect_with("127.0.0.1:9", &security) {
        Err(LogError::Invalid(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let sasl = KafkaSecurity {
        protocol: SecurityProtocol::SaslSsl,
        sasl_mechanism: Some(SaslMechanism::Plain),
        sasl_username: Some("argus".into()),
        ..KafkaSecurity::default()
    };
    assert_eq!(refusal(sasl.clone()), "kafka.security.sasl_password: required with a sasl_* protocol");
    let plain_with_user = KafkaSecurity { protocol: SecurityProtocol::Plaintext, ..sasl.clone() };
    assert!(refusal(plain_with_user).starts_with("kafka.security.protocol: SASL settings need"));
    let missing_ca = KafkaSecurity {
        protocol: SecurityProtocol::Ssl,
        ca_file: Some("/no/such/ca.pem".into()),
        ..Default::default()
    };
    assert!(refusal(missing_ca).starts_with("kafka.security.ca_file: /no/such/ca.pem: "));
    let lone_certificate = KafkaSecurity {
        protocol: SecurityProtocol::Ssl,
        certificate_file: Some(std::env::current_exe().expect("a file that exists")),
        ..Default::default()
    };
    assert!(refusal(lone_certificate).starts_with("kafka.security.key_file: "));
    let debug = format!("{:?}", KafkaSecurity { sasl_password: Some(argus_core::Secret::new("hunter2")), ..sasl });
    assert!(!debug.contains("hunter2"), "{debug}");
}
