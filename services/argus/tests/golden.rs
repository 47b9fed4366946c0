//! Golden replay: a recorded stream of over 100,000 events (50 gateways, a counter reset, a peer
//! outage with path probes that revise its cause, a gateway uplink outage that becomes one
//! incident under a maintenance silence, a traffic anomaly, a cloned key, malformed records) processed by `argus run` straight through, and again with the process SIGKILLed at
//! random points and restarted, ends in byte-identical projections, the same alert transitions
//! (ids, states, causes), and every malformed record dead-lettered with its bytes; and `argus
//! replay` rebuilds the same projections from the log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use argus_core::codec::{decode_alert, decode_dead_letter, encode_event};
use argus_core::synthetic::{Fleet, FleetSpec};
use argus_core::{AlertState, Clearance, Event, PathProbe, PublicKey, SilenceId, SilenceSet};
use argus_log::{Delivery, EmbeddedLog, EventLog, LogConsumer};
use argus_store::{EmbeddedStore, ProjectionStore};

const PARTITIONS: u32 = 4;
const OBSERVATIONS: &str = "wireguard.observations";
const T0: i64 = 1_780_272_000_000;
const SCANS: u32 = 100;
const RESET_HOST: &str = "gw-00003";
const RESET_SCAN: u32 = 40;
const OUTAGE: (u32, u32) = (7, 5);
const OUTAGE_SCANS: std::ops::Range<u32> = 30..70;
/// A gateway whose uplink fails for the outage's scans: every one of its peers goes quiet.
const UPLINK_HOST: &str = "gw-00021";
/// That gateway is silenced (set at the first scan) from this scan until that one.
const SILENCED_SCANS: std::ops::Range<u32> = 25..60;
const ANOMALY: (u32, u32) = (11, 2);
const ANOMALY_SCANS: std::ops::Range<u32> = 80..86;
/// The outage peer's endpoint is probed every minute once its handshake has aged: silent twice,
/// then answering (its link came back before its WireGuard did).
const PROBES: [(u32, u8); 4] = [(46, 0), (52, 0), (58, 3), (64, 3)];
/// A key held by two machines: its endpoint alternates between two networks for these scans.
const CLONED: (u32, u32) = (13, 4);
const CLONED_SCANS: std::ops::Range<u32> = 20..28;

/// Records as appended: key (`org/host`) and value.
type Records = Vec<(String, Vec<u8>)>;

/// The stream: 50 gateways x 20 peers x 100 scans (105,000 events) with a counter reset on one
/// gateway, one peer whose handshake stops for 400 s (probed meanwhile), as do all the peers of
/// another gateway (its uplink), one peer moving 100x its
/// traffic for a minute, one key presented from two networks in turn, and a malformed record
/// every 997 records.
fn stream() -> (Records, Vec<Vec<u8>>) {
    let mut fleet = Fleet::new(FleetSpec {
        org: "golden".parse().expect("org"),
        hosts: 50,
        peers_per_host: 20,
        scan_interval_ms: 10_000,
        start: T0,
    });
    let outage_key = Fleet::peer_key(OUTAGE.0, OUTAGE.1);
    let anomaly_key = Fleet::peer_key(ANOMALY.0, ANOMALY.1);
    let cloned_key = Fleet::peer_key(CLONED.0, CLONED.1);
    let mut seqs: BTreeMap<String, u64> = BTreeMap::new();
    let mut reset_base: BTreeMap<PublicKey, (u64, u64)> = BTreeMap::new();
    let mut frozen: BTreeMap<PublicKey, (Option<i64>, u64, u64)> = BTreeMap::new();
    let mut extra_rx = 0u64;
    let mut last_anomaly_rx = 0u64;
    let mut records = Vec::new();
    let mut malformed = Vec::new();
    let mut scan_events = Vec::new();
    for scan in 0..SCANS {
        scan_events.clear();
        fleet.next_scan(&mut scan_events);
        let mut probes = Vec::new();
        for event in &mut scan_events {
            if let Event::PeerObservation(observation) = event {
                let key = observation.public_key;
                if observation.header.host.as_str() == RESET_HOST && scan >= RESET_SCAN {
                    // the interface restarted: counters start again from zero
                    let base = *reset_base.entry(key).or_insert((observation.rx_bytes - 1, observation.tx_bytes));
                    observation.rx_bytes -= base.0;
                    observation.tx_bytes -= base.1;
                }
                if key == outage_key || observation.header.host.as_str() == UPLINK_HOST {
                    if OUTAGE_SCANS.contains(&scan) {
                        let held = *frozen.entry(key).or_insert((
                            observation.latest_handshake,
                            observation.rx_bytes,
                            observation.tx_bytes,
                        ));
                        (observation.latest_handshake, observation.rx_bytes, observation.tx_bytes) = held;
                    } else if let Some(&(_, rx, tx)) = frozen.get(&key).filter(|_| scan >= OUTAGE_SCANS.end) {
                        observation.rx_bytes = observation.rx_bytes.max(rx);
                        observation.tx_bytes = observation.tx_bytes.max(tx);
                    }
                }
                if let (true, Some(&(_, received))) =
                    (key == outage_key, PROBES.iter().find(|(probe_scan, _)| *probe_scan == scan))
                {
                    probes.push(Event::PathProbe(PathProbe {
                        header: observation.header.clone(),
                        public_key: key,
                        target: observation.endpoint.expect("endpoint").ip(),
                        sent: 3,
                        received,
                        rtt_ms: (received > 0).then_some(12.5),
                    }));
                }
                if key == cloned_key && CLONED_SCANS.contains(&scan) && scan % 2 == 0 {
                    observation.endpoint = Some("203.0.113.4:51820".parse().expect("endpoint"));
                }
                if key == anomaly_key {
                    if ANOMALY_SCANS.contains(&scan) {
                        extra_rx += 99 * observation.rx_bytes.saturating_sub(last_anomaly_rx);
                    }
                    last_anomaly_rx = observation.rx_bytes;
                    observation.rx_bytes += extra_rx;
                }
            }
        }
        if scan == 0 {
            let header = scan_events
                .iter()
                .map(Event::header)
                .find(|header| header.host.as_str() == UPLINK_HOST)
                .expect("the gateway's first event")
                .clone();
            let at = |scan: u32| T0 + i64::from(scan) * 10_000;
            probes.push(Event::SilenceSet(SilenceSet {
                silence_id: SilenceId::derive(&header),
                header,
                whole_host: true,
                public_key: None,
                starts_at: at(SILENCED_SCANS.start),
                ends_at: at(SILENCED_SCANS.end),
                reason: "uplink maintenance".into(),
                author: "operator@noc".into(),
                clearance: Clearance::TopSecret,
            }));
        }
        // probes land after their scan; every event of a collector is numbered again in order
        scan_events.extend(probes);
        for event in &mut scan_events {
            let header = event.header_mut();
            let key = format!("{}/{}", header.org_id, header.host);
            let seq = seqs.entry(key.clone()).or_default();
            *seq += 1;
            header.seq = *seq;
            let mut bytes = Vec::new();
            encode_event(event, &mut bytes);
            records.push((key.clone(), bytes));
            if records.len() % 997 == 0 {
                let garbage = format!("malformed record #{}", records.len()).into_bytes();
                malformed.push(garbage.clone());
                records.push((key, garbage));
            }
        }
    }
    (records, malformed)
}

/// Writes the stream into `data_dir/log`; returns the end offset of each partition.
async fn record(data_dir: &Path, records: &[(String, Vec<u8>)]) -> BTreeMap<u32, u64> {
    let log = EmbeddedLog::open(&data_dir.join("log"), PARTITIONS).expect("log");
    let mut end = BTreeMap::new();
    for (key, value) in records {
        let position = log.append(OBSERVATIONS, key.as_bytes(), value).await.expect("append");
        end.insert(position.partition, position.offset + 1);
    }
    log.flush().await.expect("flush");
    end
}

/// `argus run` without a collector over a recorded log.
struct Run {
    config: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Run {
    fn new(data_dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let config = data_dir.join("argus.toml");
        // small polls: the stream lasts long enough for random kills to land mid-stream (the
        // default, 4,000, gets through it in about four seconds; 250, once writes overlapped the
        // fold, in about ten, when most kills landed after its end), with many batches to land between
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\npartitions = {PARTITIONS}\n\
                 [auth]\nhs256_secret = \"golden-secret-of-at-least-32-bytes!\"\n\
                 [collector]\nenabled = false\n[rules]\nanomaly_warmup_s = 300\n\
                 [processor]\ncheckpoint_interval_ms = 400\nmax_batch_records = 50\n",
                data_dir.display()
            ),
        )
        .expect("config");
        Self { config, port, child: None }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.config.with_file_name("argus.log"))
            .expect("log");
        self.child = Some(
            Command::new(env!("CARGO_BIN_EXE_argus"))
                .arg("--config")
                .arg(&self.config)
                .arg("run")
                .stdout(Stdio::from(log.try_clone().expect("log")))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("argus run"),
        );
    }

    /// The processor's written position per partition, from `/metrics` (empty until it answers).
    async fn positions(&self) -> BTreeMap<u32, u64> {
        let Ok(response) = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port)).await else {
            return BTreeMap::new();
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("argus_processor_next_offset{partition=\"")?;
                let (partition, value) = rest.split_once("\"} ")?;
                Some((partition.parse().ok()?, value.trim().parse::<f64>().ok()? as u64))
            })
            .collect()
    }

    async fn wait_until_done(&self, end: &BTreeMap<u32, u64>) {
        let started = Instant::now();
        while &self.positions().await != end {
            assert!(started.elapsed() < Duration::from_secs(240), "argus run did not reach the end of the log");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("wait");
        }
    }

    /// SIGTERM, and wait for the graceful exit.
    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
            assert!(status.success());
            let exit = child.wait().expect("wait");
            assert!(exit.success(), "argus run exits cleanly on SIGTERM: {exit}");
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn topic_values(data_dir: &Path, topic: &str) -> Vec<Vec<u8>> {
    let log = EmbeddedLog::open(&data_dir.join("log"), PARTITIONS).expect("log");
    let mut consumer = log.subscribe(topic, "golden-reader").await.expect("subscribe");
    let mut values = Vec::new();
    let mut idle = 0;
    while idle < 2 {
        match consumer.poll(100_000, Duration::from_millis(200)).await.expect("poll") {
            Delivery::Records(records) if records.is_empty() => idle += 1,
            Delivery::Records(records) => values.extend(records.into_iter().map(|record| record.value)),
            _ => {}
        }
    }
    values
}

/// Projections (without checkpoints: fold snapshots hold processing times), alert transitions
/// (id, state, cause, revision, incident, silenced), and the bytes of every dead letter, once `argus run` has stopped.
async fn outcome(data_dir: &Path) -> (String, BTreeSet<String>, BTreeSet<Vec<u8>>) {
    let store = EmbeddedStore::open(&data_dir.join("store")).expect("store");
    let export: String = store
        .export()
        .await
        .expect("export")
        .lines()
        .filter(|line| !line.starts_with("checkpoints "))
        .map(|line| format!("{line}\n"))
        .collect();
    let alerts = topic_values(data_dir, "wireguard.alerts")
        .await
        .iter()
        .map(|bytes| {
            let alert = decode_alert(bytes).expect("alert");
            let cause = alert.probable_cause.map(|cause| cause.explanation());
            let (id, kind, state, revised, incident) =
                (alert.alert_id, alert.kind, alert.state, alert.revised_at, alert.incident_id);
            format!("{id} {kind:?} {state:?} {revised:?} {incident:?} {} {cause:?}", alert.silenced)
        })
        .collect();
    let letters = topic_values(data_dir, "wireguard.dead-letter")
        .await
        .iter()
        .map(|bytes| decode_dead_letter(bytes).expect("dead letter").value)
        .collect();
    (export, alerts, letters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_mid_stream_end_in_the_golden_projections() {
    let (records, malformed) = stream();
    assert!(records.len() > 100_000, "{} records", records.len());

    let golden_dir = tempfile::tempdir().expect("tempdir");
    let end = record(golden_dir.path(), &records).await;
    let mut golden = Run::new(golden_dir.path());
    golden.start();
    golden.wait_until_done(&end).await;
    golden.terminate();
    let (golden_export, golden_alerts, golden_letters) = outcome(golden_dir.path()).await;

    let raised: Vec<argus_core::Alert> = topic_values(golden_dir.path(), "wireguard.alerts")
        .await
        .iter()
        .map(|bytes| decode_alert(bytes).expect("alert"))
        .collect();
    let kinds: BTreeSet<String> = raised.iter().map(|alert| format!("{:?}", alert.kind)).collect();
    for kind in ["PeerStale", "TrafficAnomaly", "ClonedKey"] {
        assert!(kinds.contains(kind), "the stream raises {kind}: {kinds:?}");
    }
    let outage: Vec<_> =
        raised.iter().filter(|alert| alert.public_key == Some(Fleet::peer_key(OUTAGE.0, OUTAGE.1))).collect();
    assert!(
        outage.iter().any(|alert| alert.revised_at.is_some()
            && alert.probable_cause == Some(argus_core::ProbableCause::WireguardDown)),
        "the answering probe revised the outage's cause: {outage:#?}"
    );
    let incidents: Vec<_> = raised.iter().filter(|alert| alert.kind == argus_core::AlertKind::Incident).collect();
    assert_eq!(incidents.len(), 2, "the uplink outage is one incident, raised and resolved once: {incidents:#?}");
    let uplink: BTreeSet<_> = raised
        .iter()
        .filter(|alert| alert.host.as_str() == UPLINK_HOST && alert.kind == argus_core::AlertKind::PeerStale)
        .map(|alert| (alert.public_key, alert.incident_id))
        .filter(|(_, incident)| *incident == Some(incidents[0].alert_id))
        .collect();
    assert_eq!(uplink.len(), 20, "every peer of the gateway is in it");
    // the outage's alerts (its end also brings traffic anomalies, after the silence)
    let outage_alerts = || {
        raised.iter().filter(|alert| {
            alert.host.as_str() == UPLINK_HOST
                && matches!(alert.kind, argus_core::AlertKind::PeerStale | argus_core::AlertKind::Incident)
        })
    };
    let silenced: BTreeSet<_> =
        outage_alerts().map(|alert| (alert.state == AlertState::Raised, alert.silenced)).collect();
    let expected = BTreeSet::from([(true, true), (false, false)]);
    assert_eq!(silenced, expected, "raised inside the silence, resolved after it");
    assert!(raised.iter().filter(|alert| alert.host.as_str() != UPLINK_HOST).all(|alert| !alert.silenced));
    assert_eq!(golden_letters, malformed.iter().cloned().collect(), "every malformed record, with its bytes");

    let killed_dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(record(killed_dir.path(), &records).await, end);
    let mut run = Run::new(killed_dir.path());
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64;
    let mut random = seed;
    let mut mid_stream_kills = 0;
    for attempt in 0..6 {
        run.start();
        // wait for the process to answer, then a random 0.2-4 s more (checkpoints every 0.4 s,
        // durable once a second: a restart replays what the last durable checkpoint missed)
        let answered = Instant::now();
        while run.positions().await.is_empty() && answered.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        random = random.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let delay = 200 + (random >> 33) % 3_800;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let at = run.positions().await;
        run.kill();
        let behind = at != end;
        mid_stream_kills += usize::from(behind);
        println!("kill {attempt} after {delay} ms at {at:?} (seed {seed}); mid-stream: {behind}");
    }
    assert!(mid_stream_kills >= 3, "at least three kills landed mid-stream ({mid_stream_kills})");
    run.start();
    run.wait_until_done(&end).await;
    run.terminate();
    let (export, alerts, letters) = outcome(killed_dir.path()).await;

    assert_eq!(alerts, golden_alerts, "the same alert transitions");
    assert_eq!(letters, golden_letters, "the same dead letters");
    assert!(export == golden_export, "byte-identical projections after {mid_stream_kills} SIGKILLs");

    // `argus replay` rebuilds the same projections from the log, and keeps the old store
    let replay = Command::new(env!("CARGO_BIN_EXE_argus"))
        .arg("--config")
        .arg(&run.config)
        .arg("replay")
        .output()
        .expect("argus replay");
    assert!(replay.status.success(), "argus replay: {}", String::from_utf8_lossy(&replay.stderr));
    assert!(String::from_utf8_lossy(&replay.stderr).contains("100%"), "a progress bar that reaches 100%");
    assert!(killed_dir.path().join("store.before-replay").exists());
    let (replayed, _, _) = outcome(killed_dir.path()).await;
    assert!(replayed == golden_export, "argus replay rebuilds the golden projections");
}
