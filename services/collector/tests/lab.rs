//! The collector against real WireGuard: a hub and sites on wireguard-go in network namespaces
//! (`infra/lab/wg-lab.sh`), publishing to the embedded log and to a real `tansu` broker.
//! These tests need root (namespaces); they fail, never skip, without it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_collector::{Collector, CollectorConfig, CollectorStatus, WireguardHost};
use argus_core::codec::decode_event;
use argus_core::{Event, Heartbeat, PeerObservation};
use argus_log::{Delivery, EmbeddedLog, EventLog, KafkaLog, LogConsumer};
use argus_testkit::Tansu;
use argus_testkit::lab::{DumpPeer, Lab, LabOptions};

const TOPIC: &str = "wireguard.observations";
const PARTITIONS: u32 = 4;

fn config(lab: &Lab, scan_interval: Duration) -> CollectorConfig {
    let mut config = CollectorConfig::new(
        "acme".parse().expect("org"),
        "hub-01".parse().expect("host"),
        format!("collector-{}", lab.id()).parse().expect("collector id"),
    );
    config.scan_interval = scan_interval;
    config.interfaces = vec![lab.hub_interface().parse().expect("interface")];
    config
}

/// A collector running in the background until `stop`.
struct Running {
    status: Arc<CollectorStatus>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

fn start<L: EventLog + 'static>(log: Arc<L>, config: CollectorConfig) -> Running {
    let collector = Collector::new(WireguardHost::default(), log, config);
    let status = collector.status();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        collector
            .run(
                async {
                    let _ = stopped.await;
                },
                Duration::from_secs(40),
            )
            .await
            .expect("collector");
    });
    Running { status, stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("collector task");
    }
}

async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < timeout, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads `count` records from the topic (from the start) and decodes them.
async fn read_events<L: EventLog>(log: &L, count: u64) -> Vec<Event> {
    let mut consumer = log.subscribe(TOPIC, &format!("reader-{count}")).await.expect("subscribe");
    let mut events = Vec::new();
    let started = Instant::now();
    while (events.len() as u64) < count {
        assert!(started.elapsed() < Duration::from_secs(60), "read {} of {count} records", events.len());
        match consumer.poll(10_000, Duration::from_millis(500)).await.expect("poll") {
            Delivery::Records(records) => {
                events
                    .extend(records.iter().map(|record| decode_event(&record.value).expect("collector bytes decode")));
            }
            Delivery::Assigned(partitions) => {
                for partition in partitions {
                    consumer.seek(argus_log::Position { partition, offset: 0 }).await.expect("seek");
                }
            }
            Delivery::Revoked(_) => {}
        }
    }
    events
}

/// The newest observation of every peer and the newest heartbeat, by `seq`.
fn newest(events: &[Event]) -> (BTreeMap<String, PeerObservation>, Option<Heartbeat>) {
    let mut peers: BTreeMap<String, PeerObservation> = BTreeMap::new();
    let mut heartbeat: Option<Heartbeat> = None;
    for event in events {
        match event {
            Event::PeerObservation(observation) => {
                let key = observation.public_key.to_string();
                if peers.get(&key).is_none_or(|seen| seen.header.seq < observation.header.seq) {
                    peers.insert(key, observation.clone());
                }
            }
            Event::Heartbeat(beat) if heartbeat.as_ref().is_none_or(|seen| seen.header.seq < beat.header.seq) => {
                heartbeat = Some(beat.clone());
            }
            _ => {}
        }
    }
    (peers, heartbeat)
}

/// Every field of `wg show dump` against the decoded observation.
fn assert_matches_dump(observation: &PeerObservation, dump: &DumpPeer) {
    assert_eq!(observation.public_key.to_string(), dump.public_key);
    assert_eq!(observation.endpoint.map(|endpoint| endpoint.to_string()), dump.endpoint, "endpoint");
    let mut allowed_ips: Vec<String> = observation.allowed_ips.iter().map(ToString::to_string).collect();
    let mut expected = dump.allowed_ips.clone();
    allowed_ips.sort();
    expected.sort();
    assert_eq!(allowed_ips, expected, "allowed ips");
    assert_eq!(
        observation.latest_handshake.map_or(0, |millis| millis / 1_000) as u64,
        dump.latest_handshake,
        "handshake"
    );
    assert_eq!((observation.rx_bytes, observation.tx_bytes), (dump.rx_bytes, dump.tx_bytes), "rx/tx");
    assert_eq!(observation.persistent_keepalive, dump.persistent_keepalive, "keepalive");
}

/// Runs the collector against a quiet lab, then compares the log with `wg show dump`.
async fn observations_match_wg_dump<L: EventLog + 'static>(log: Arc<L>) {
    let lab = Lab::up(3, LabOptions { preshared_keys: false, keepalive: 25 });
    lab.quiet();
    // a persistent keepalive (every 25 s) may land during the scans: then scan again
    let mut published = 0;
    let mut attempts = 0;
    let after = loop {
        attempts += 1;
        let before = lab.hub_dump();
        let running = start(Arc::clone(&log), config(&lab, Duration::from_millis(200)));
        wait_until("three scans", Duration::from_secs(20), || running.status.scans() >= 3).await;
        let status = Arc::clone(&running.status);
        running.stop().await;
        published += status.published();
        let after = lab.hub_dump();
        if before == after {
            break after;
        }
        assert!(attempts < 3, "the quiet lab's counters never stood still for three scans");
    };

    let events = read_events(&*log, published).await;
    let (peers, heartbeat) = newest(&events);
    assert_eq!(peers.len(), 3, "one peer per site");
    for dump in &after {
        assert_matches_dump(&peers[&dump.public_key], dump);
    }
    let heartbeat = heartbeat.expect("a heartbeat");
    assert_eq!(heartbeat.peer_count, 3);
    assert_eq!(heartbeat.listen_port, Some(51820));
    let hub_key = std::process::Command::new("wg")
        .args(["show", &lab.hub_interface(), "public-key"])
        .output()
        .expect("wg show public-key");
    assert_eq!(
        heartbeat.interface_public_key.map(|key| key.to_string()),
        Some(String::from_utf8_lossy(&hub_key.stdout).trim().to_owned())
    );
    assert_eq!(heartbeat.header.host.as_str(), "hub-01");
    assert!(events.iter().all(|event| event.header().org_id.as_str() == "acme"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observations_match_wg_show_dump_on_the_embedded_log() {
    let directory = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(EmbeddedLog::open(directory.path(), PARTITIONS).expect("log"));
    observations_match_wg_dump(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observations_match_wg_show_dump_through_tansu() {
    let broker = Tansu::start();
    broker.create_topic(TOPIC, PARTITIONS as i32).await;
    let log = Arc::new(KafkaLog::connect(broker.bootstrap()).expect("connect"));
    observations_match_wg_dump(log).await;
}

/// Follows the topic, calling `visit` with every observation, until `done` says so.
async fn follow<L: EventLog>(
    log: &L, timeout: Duration, mut visit: impl FnMut(&PeerObservation), mut done: impl FnMut() -> bool,
) {
    let mut consumer = log.subscribe(TOPIC, "follower").await.expect("subscribe");
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out following the log");
        if let Delivery::Records(records) = consumer.poll(10_000, Duration::from_millis(200)).await.expect("poll") {
            for record in records {
                if let Event::PeerObservation(observation) = decode_event(&record.value).expect("decode") {
                    visit(&observation);
                }
            }
        }
    }
}

fn handshake_age(observation: &PeerObservation) -> i64 {
    observation.header.observed_at - observation.latest_handshake.expect("connected once")
}

/// WireGuard renews a handshake every 120 s while traffic flows: the healthy sites' handshakes are
/// renewed within about two minutes, while the failed site's age only grows; restoring it brings a
/// fresh handshake within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_site_ages_scan_after_scan_while_the_others_refresh() {
    let lab = Lab::up(3, LabOptions::default());
    lab.fail(1);
    let failed_key = lab.site_public_key(1);
    let directory = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(EmbeddedLog::open(directory.path(), PARTITIONS).expect("log"));
    let running = start(Arc::clone(&log), config(&lab, Duration::from_secs(1)));

    let mut failed_ages: Vec<i64> = Vec::new();
    let mut first_handshake: BTreeMap<String, i64> = BTreeMap::new();
    let mut refreshed: BTreeMap<String, i64> = BTreeMap::new();
    let healthy = 2;
    let refreshes = std::cell::Cell::new(0);
    follow(
        &*log,
        Duration::from_secs(200),
        |observation| {
            let key = observation.public_key.to_string();
            let handshake = observation.latest_handshake.expect("connected once");
            if key == failed_key {
                failed_ages.push(handshake_age(observation));
                return;
            }
            let first = *first_handshake.entry(key.clone()).or_insert(handshake);
            if handshake > first && !refreshed.contains_key(&key) {
                refreshed.insert(key, handshake_age(observation));
                refreshes.set(refreshes.get() + 1);
            }
        },
        || refreshes.get() == healthy,
    )
    .await;
    assert!(failed_ages.len() >= 100, "the failed site was observed every scan: {}", failed_ages.len());
    assert!(failed_ages.windows(2).all(|pair| pair[1] >= pair[0]), "its handshake age never falls");
    assert!(failed_ages[failed_ages.len() - 1] >= 120_000, "and passes two minutes: {failed_ages:?}");
    assert!(refreshed.values().all(|&age| age < 10_000), "the healthy sites renewed: {refreshed:?}");

    lab.restore(1);
    let restored_at = Instant::now();
    let fresh_again = std::cell::Cell::new(false);
    follow(
        &*log,
        Duration::from_secs(30),
        |observation| {
            if observation.public_key.to_string() == failed_key && handshake_age(observation) < 5_000 {
                fresh_again.set(true);
            }
        },
        || fresh_again.get() || restored_at.elapsed() > Duration::from_secs(25),
    )
    .await;
    running.stop().await;
    assert!(fresh_again.get(), "the restored site handshook again");
}

/// A lab with preshared keys: none of its private or preshared keys appears in any published byte
/// or any log line (ours at TRACE, and defguard's through the `log` crate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_private_or_preshared_key_is_published_or_logged() {
    let captured = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = Arc::clone(&captured);
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || CapturedWriter(Arc::clone(&writer)))
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("subscriber");
    log::set_boxed_logger(Box::new(CapturedLog(Arc::clone(&captured)))).expect("logger");
    log::set_max_level(log::LevelFilter::Trace);

    let lab = Lab::up(3, LabOptions { preshared_keys: true, keepalive: 5 });
    let directory = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(EmbeddedLog::open(directory.path(), PARTITIONS).expect("log"));
    let mut config = config(&lab, Duration::from_millis(200));
    // also watch every interface found, site interfaces included (their private keys too)
    config.interfaces.clear();
    let running = start(Arc::clone(&log), config);
    wait_until("ten scans", Duration::from_secs(30), || running.status.scans() >= 10).await;
    lab.fail(2);
    wait_until("a scan after a site left", Duration::from_secs(30), || running.status.scans() >= 15).await;
    let published_events = running.status.published();
    running.stop().await;
    log.flush().await.expect("flush");
    // the site interfaces were read too: their private and preshared keys passed through the scans
    let interfaces: std::collections::BTreeSet<String> =
        read_events(&*log, published_events).await.iter().map(|event| event.header().interface.to_string()).collect();
    for site in 1..=3 {
        assert!(interfaces.contains(&lab.site_interface(site)), "site {site} was scanned: {interfaces:?}");
    }
    assert!(interfaces.contains(&lab.hub_interface()), "{interfaces:?}");

    let mut published = Vec::new();
    for entry in walk(directory.path()) {
        published.extend(std::fs::read(entry).expect("read log file"));
    }
    let logged = captured.lock().expect("captured").clone();
    assert!(!published.is_empty() && !logged.is_empty(), "something was published and logged");
    let secrets = lab.secrets();
    assert_eq!(secrets.len(), 1 + 3 + 3, "hub and site private keys, site preshared keys");
    // the detector finds what `wg` itself prints (its dump holds every secret of a running interface)
    let reference = std::process::Command::new("wg").args(["show", &lab.hub_interface(), "dump"]).output().expect("wg");
    let hub_private = std::fs::read_to_string(lab.state_path("hub.key")).expect("hub key");
    assert!(contains(&reference.stdout, hub_private.trim().as_bytes()), "the detector sees a key where there is one");
    for secret in secrets {
        let raw = base64_decode(&secret);
        let hex: String = raw.iter().map(|byte| format!("{byte:02x}")).collect();
        for (what, haystack) in [("published bytes", &published), ("log lines", &logged)] {
            for needle in [secret.as_bytes(), hex.as_bytes(), &raw[..]] {
                assert!(!contains(haystack, needle), "a secret key appears in the {what}");
            }
        }
    }
}

/// With the broker down for a while the collector keeps scanning into a bounded outbox; when the
/// broker returns, the newest state of every peer arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_log_is_ridden_out_with_bounded_memory() {
    let _ = tracing_subscriber::fmt().with_max_level(tracing::Level::DEBUG).with_test_writer().try_init();
    let lab = Lab::up(3, LabOptions::default());
    let mut broker = Tansu::start_durable();
    broker.create_topic(TOPIC, PARTITIONS as i32).await;
    let log = Arc::new(KafkaLog::connect(broker.bootstrap()).expect("connect"));
    let running = start(Arc::clone(&log), config(&lab, Duration::from_millis(200)));
    wait_until("first events published", Duration::from_secs(30), || running.status.published() >= 8).await;

    broker.stop();
    let scans_at_outage = running.status.scans();
    wait_until("the outage is noticed", Duration::from_secs(60), || running.status.log_unreachable()).await;
    wait_until("scanning goes on", Duration::from_secs(30), || running.status.scans() >= scans_at_outage + 100).await;
    let peers_and_interfaces = 3 + 1;
    assert!(
        running.status.outbox_high_water() <= peers_and_interfaces,
        "the outbox holds one event per peer and interface, however long the outage: {}",
        running.status.outbox_high_water()
    );
    lab.quiet();
    let scans_when_quiet = running.status.scans();
    wait_until("a scan of the quiet lab", Duration::from_secs(10), || running.status.scans() >= scans_when_quiet + 2)
        .await;
    let dump = lab.hub_dump();

    broker.restart();
    wait_until("the outbox drains", Duration::from_secs(90), || {
        !running.status.log_unreachable() && running.status.outbox_len() == 0
    })
    .await;
    let status = Arc::clone(&running.status);
    running.stop().await;
    let events = read_events(&*log, status.published()).await;
    let (peers, _) = newest(&events);
    for peer in &dump {
        assert_matches_dump(&peers[&peer.public_key], peer);
    }
}

struct CapturedWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("captured").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl log::Log for CapturedLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {} {}\n", record.level(), record.target(), record.args());
        self.0.lock().expect("captured").extend_from_slice(line.as_bytes());
    }

    fn flush(&self) {}
}

fn walk(directory: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn base64_decode(text: &str) -> Vec<u8> {
    let key: argus_core::PublicKey = text.parse().expect("a key in base64");
    key.as_bytes().to_vec()
}

/// Probes leave from the interface's own network namespace: from the hub's, a site whose
/// WireGuard stopped still answers and a site whose link is cut does not; from outside the
/// namespace (where the lab's addresses have no route) nothing answers. Each `PathProbe` targets
/// the endpoint its peer was last observed at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_from_the_hubs_namespace_tell_a_stopped_site_from_a_cut_one() {
    use argus_collector::probe::namespace_path;
    use argus_collector::{InterfaceOverride, ProbeSettings, Prober};

    let lab = Lab::up(3, LabOptions::default());
    lab.fail(1);
    lab.fail_link(2);
    let namespace = namespace_path(&lab.hub_namespace());
    let settings = ProbeSettings { echo_timeout: Duration::from_millis(300), ..ProbeSettings::default() };
    let prober = Prober::new(settings.clone());
    let stopped = prober.probe("198.18.1.2".parse().expect("address"), Some(&namespace)).await.expect("probe");
    assert_eq!((stopped.sent, stopped.received), (3, 3), "a stopped site's address answers");
    // (a reply on a veth can come back before the send call returns: a round trip of 0 ms)
    assert!(stopped.rtt_ms.is_some_and(|rtt| (0.0..300.0).contains(&rtt)), "{stopped:?}");
    let cut = prober.probe("198.18.2.2".parse().expect("address"), Some(&namespace)).await.expect("probe");
    assert_eq!((cut.received, cut.rtt_ms), (0, None), "a cut site answers nothing");
    let outside = prober.probe("198.18.1.2".parse().expect("address"), None).await.expect("probe");
    assert_eq!(outside.received, 0, "outside the hub's namespace the lab is unreachable");
    let missing =
        prober.probe("198.18.1.2".parse().expect("address"), Some(std::path::Path::new("/run/netns/argus-none"))).await;
    assert!(missing.is_err(), "no namespace: no probe, and no evidence either way");

    // the collector probes quiet peers beside its scans and publishes what it found
    let directory = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(EmbeddedLog::open(directory.path(), PARTITIONS).expect("log"));
    let mut config = config(&lab, Duration::from_secs(1));
    config.probes = ProbeSettings { after_handshake_age: Duration::from_secs(1), ..settings };
    let hub = lab.hub_interface().parse().expect("interface");
    config.overrides.insert(hub, InterfaceOverride { netns: Some(namespace), ..InterfaceOverride::default() });
    let running = start(Arc::clone(&log), config);
    let mut consumer = log.subscribe(TOPIC, "probes").await.expect("subscribe");
    let mut endpoints: BTreeMap<String, String> = BTreeMap::new();
    let mut probes: BTreeMap<String, (String, u8)> = BTreeMap::new();
    let started = Instant::now();
    while probes.len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(60), "probes of every quiet site: {probes:?}");
        if let Delivery::Records(records) = consumer.poll(10_000, Duration::from_millis(200)).await.expect("poll") {
            for record in records {
                match decode_event(&record.value).expect("decode") {
                    Event::PeerObservation(observation) => {
                        let endpoint = observation.endpoint.expect("endpoint").ip().to_string();
                        endpoints.insert(observation.public_key.to_string(), endpoint);
                    }
                    Event::PathProbe(probe) => {
                        probes.insert(probe.public_key.to_string(), (probe.target.to_string(), probe.received));
                    }
                    _ => {}
                }
            }
        }
    }
    running.stop().await;
    for (key, (target, _)) in &probes {
        assert_eq!(Some(target), endpoints.get(key), "a probe targets its peer's own endpoint");
    }
    assert_eq!(probes[&lab.site_public_key(1)].1, 3, "{probes:?}");
    assert_eq!(probes[&lab.site_public_key(2)].1, 0, "{probes:?}");
    assert_eq!(probes[&lab.site_public_key(3)].1, 3, "{probes:?}");
}
