//! End-to-end load on the processor: a synthetic fleet (100 gateways x 1,000 peers by default)
//! recorded into a log, then the processor (decode, fold, projection batches with checkpoints,
//! alerts) run from the start until it has caught up, timed. With `--tansu`, the same through a
//! `tansu` broker started on loopback (sqlite storage), beside a bare rdkafka consumer reading the
//! same topic from the same broker. Prints observations per second and resident memory. On the
//! embedded log the processor runs in a child process of its own, so its resident memory (now and
//! at peak) is the processor's alone, not the generator's. With `--ingest`, the fleet is split
//! between two collector clients (child processes) pushing over loopback TLS to a central's ingest
//! endpoint (in this process, over its embedded log), then folded: observations accepted per
//! second, folded per second, both one after the other, and the CPU time each client's push cost.
//! With `--sinks`, the embedded run also delivers the alert topic to one sink of each kind, each to
//! a real receiver on loopback (a webhook receiver, `prometheus-alertmanager`, rsyslog over TCP),
//! while the processor folds.
//!
//! ```text
//! cargo run --release -p argus-benches --bin loadgen -- [--scans N] [--hosts N] [--peers-per-host N] [--tansu | --ingest | --sinks]
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use argus_core::codec::{AlertEncoding, encode_event};
use argus_core::synthetic::{Fleet, FleetSpec, stale_alert};
use argus_core::{AlertState, Clearance, Event, OrgId};
use argus_log::{EmbeddedLog, EventLog, KafkaLog};
use argus_processor::ProcessorConfig;
use argus_store::EmbeddedStore;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOPIC: &str = "loadgen.observations";

#[derive(Debug)]
struct Options {
    hosts: u32,
    peers_per_host: u32,
    scans: u32,
    tansu: bool,
    ingest: bool,
    sinks: bool,
    /// Internal: run only the processor over the embedded log recorded in this directory.
    process_recorded: Option<std::path::PathBuf>,
    /// Internal, with `process_recorded`: each partition's end offset and the observations.
    end: BTreeMap<u32, u64>,
    observations: u64,
    /// Internal, with `ingest`: push this client's share of the fleet to `url`.
    push_client: Option<usize>,
    url: String,
}

fn options() -> Options {
    let mut options = Options {
        hosts: 100,
        peers_per_host: 1_000,
        scans: 10,
        tansu: false,
        ingest: false,
        sinks: false,
        process_recorded: None,
        end: BTreeMap::new(),
        observations: 0,
        push_client: None,
        url: String::new(),
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(flag) = arguments.next() {
        let mut value = || arguments.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--hosts" => options.hosts = value().parse().expect("--hosts N"),
            "--peers-per-host" => options.peers_per_host = value().parse().expect("--peers-per-host N"),
            "--scans" => options.scans = value().parse().expect("--scans N"),
            "--tansu" => options.tansu = true,
            "--ingest" => options.ingest = true,
            "--sinks" => options.sinks = true,
            "--process-recorded" => options.process_recorded = Some(value().into()),
            "--end" => options.end.extend(parse_offsets(&value())),
            "--push-client" => options.push_client = Some(value().parse().expect("--push-client K")),
            "--url" => options.url = value(),
            "--observations" => options.observations = value().parse().expect("--observations N"),
            other => panic!("unknown argument {other}; see the module documentation"),
        }
    }
    options
}

/// Resident memory of this process now (`VmRSS`) or at its peak (`VmHWM`), from /proc.
fn resident_mib(which: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(which))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// The synthetic fleet `options` describe.
fn fleet(options: &Options) -> Fleet {
    Fleet::new(FleetSpec {
        org: "load".parse::<OrgId>().expect("org"),
        hosts: options.hosts,
        peers_per_host: options.peers_per_host,
        scan_interval_ms: 10_000,
        start: 1_780_272_000_000,
    })
}

/// Appends `scans` scans of the fleet, 1,000 appends in flight at a time; returns the records
/// appended, the observations among them, and each partition's end offset.
async fn record<L: EventLog>(log: &L, options: &Options) -> (u64, u64, BTreeMap<u32, u64>) {
    let mut fleet = fleet(options);
    let (mut records, mut observations) = (0, 0);
    let mut end = BTreeMap::new();
    let mut events = Vec::new();
    for _ in 0..options.scans {
        events.clear();
        fleet.next_scan(&mut events);
        for chunk in events.chunks(1_000) {
            let encoded: Vec<(String, Vec<u8>)> = chunk
                .iter()
                .map(|event| {
                    let header = event.header();
                    let mut bytes = Vec::with_capacity(160);
                    encode_event(event, &mut bytes);
                    (format!("{}/{}", header.org_id, header.host), bytes)
                })
                .collect();
            let appended = futures_util::future::join_all(
                encoded.iter().map(|(key, value)| log.append(TOPIC, key.as_bytes(), value)),
            )
            .await;
            for position in appended {
                let position = position.expect("append");
                let offset = end.entry(position.partition).or_insert(0);
                *offset = (*offset).max(position.offset + 1);
            }
            records += chunk.len() as u64;
            observations += chunk.iter().filter(|event| matches!(event, Event::PeerObservation(_))).count() as u64;
        }
    }
    log.flush().await.expect("flush");
    (records, observations, end)
}

/// Runs the processor from the start until every partition's checkpoint reaches `end`, with one
/// sink of each kind delivering the alert topic to a real receiver meanwhile if `sinks`.
async fn process<L: EventLog>(log: &L, store: &EmbeddedStore, end: &BTreeMap<u32, u64>, sinks: bool) -> Duration {
    if !sinks {
        return fold(log, store, end).await;
    }
    let hook = argus_testkit::webhook::WebhookReceiver::start(HOOK_SECRET).await;
    let alertmanager = argus_testkit::alertmanager::Alertmanager::start(&hook.url()).await;
    let rsyslog = argus_testkit::syslog::Rsyslog::start();
    let filter = "[filter]\norgs = [\"load\"]\nmax_clearance = \"TOP_SECRET\"\n";
    let configs: Vec<argus_notify::SinkConfig> = [
        format!("name = \"webhook\"\n{filter}[webhook]\nurl = \"{}\"\nsecret = \"{HOOK_SECRET}\"\n", hook.url()),
        format!("name = \"alertmanager\"\n{filter}[alertmanager]\nurl = \"{}\"\n", alertmanager.url()),
        format!("name = \"syslog\"\n{filter}[syslog]\naddress = \"{}\"\ntransport = \"tcp\"\n", rsyslog.tcp),
    ]
    .iter()
    .map(|text| toml::from_str(text).expect("sink config"))
    .collect();
    argus_notify::SinkConfig::validate_all(&configs).expect("sinks");
    let receivers: Vec<_> = configs.iter().map(|config| config.receiver("loadgen").expect("receiver")).collect();
    // alerts are rare in a fleet's stream: what the sinks deliver meanwhile is seeded here
    let now = chrono::Utc::now().timestamp_millis();
    for state in [AlertState::Raised, AlertState::Resolved] {
        for n in 0..SEEDED_ALERTS {
            let mut bytes = Vec::new();
            AlertEncoding::Avro.encode(&stale_alert(n, "load", Clearance::Restricted, state, now), &mut bytes);
            log.append(ALERTS_TOPIC, format!("load/hub-{}", n % 3).as_bytes(), &bytes).await.expect("seed alert");
        }
    }
    log.flush().await.expect("flush");
    let (stop, _) = tokio::sync::watch::channel(false);
    let delivering = futures_util::future::join_all(configs.iter().zip(&receivers).map(|(config, receiver)| {
        argus_notify::run_sink(log, ALERTS_TOPIC, AlertEncoding::Avro, config, receiver.as_ref(), stop.subscribe())
    }));
    let folding = async {
        let elapsed = fold(log, store, end).await;
        stop.send(true).expect("stop the sinks");
        elapsed
    };
    let (elapsed, _) = tokio::join!(folding, delivering);
    println!(
        "alert transitions delivered while folding: webhook {} of {}, syslog {}, Alertmanager holds {} open",
        hook.received().iter().filter(|delivery| delivery.signature_valid).count(),
        2 * SEEDED_ALERTS,
        rsyslog.received("tcp").len(),
        alertmanager.active_alerts().await.len()
    );
    elapsed
}

const ALERTS_TOPIC: &str = "loadgen.alerts";
/// Alerts raised and resolved on the alert topic for `--sinks`.
const SEEDED_ALERTS: u32 = 300;
const HOOK_SECRET: &str = "a-webhook-secret-of-at-least-32-bytes";

async fn fold<L: EventLog>(log: &L, store: &EmbeddedStore, end: &BTreeMap<u32, u64>) -> Duration {
    let config = ProcessorConfig {
        observations_topic: TOPIC.into(),
        alerts_topic: ALERTS_TOPIC.into(),
        dead_letter_topic: "loadgen.dead-letter".into(),
        group: format!("loadgen-{}", std::process::id()),
        poll_timeout: Duration::from_millis(50),
        ..ProcessorConfig::default()
    };
    let started = Instant::now();
    argus_processor::run_until_caught_up(log, store, &config, end, |_, _| {}).await.expect("processor");
    started.elapsed()
}

/// How many collector clients `--ingest` runs, each a process of its own.
const INGEST_CLIENTS: usize = 2;

/// The environment variable a push client's credential comes in (never its arguments).
const CREDENTIAL_VARIABLE: &str = "ARGUS_LOADGEN_CREDENTIAL";

/// Two collector clients, each a child process, push the fleet (odd and even gateways) over
/// loopback TLS to an ingest endpoint in this process over `directory`'s embedded log, which is
/// then folded. Each client reports the CPU time its push took.
async fn through_ingest(directory: &std::path::Path, options: &Options) {
    use std::io::{BufRead, Write};
    use std::sync::Arc;

    use argus_api::auth::{AuthConfig, Authenticator, COLLECTOR_AUDIENCE, CollectorClaims, Secret, mint_hs256};
    use argus_api::{IngestConfig, RecordSink, ingest_routes, serve_ingest};

    let secret = Secret::new("loadgen-secret-of-at-least-32-bytes!");
    let registry: argus_core::CollectorRegistry =
        serde_json::from_value(serde_json::json!({ "load-0": { "orgs": ["load"] }, "load-1": { "orgs": ["load"] } }))
            .expect("registry");
    let config = IngestConfig {
        listen: Some("127.0.0.1:0".parse().expect("address")),
        certificate_file: Some(fixture("server.pem")),
        private_key_file: Some(fixture("server.key")),
        max_records_per_second: 10_000_000,
        ..IngestConfig::default()
    };
    let tls = config.tls(&registry).expect("tls");
    let log = Arc::new(EmbeddedLog::open(&directory.join("log"), 4).expect("log"));
    let sink: Arc<dyn RecordSink> = log.clone();
    let authenticator =
        Authenticator::new(&AuthConfig { hs256_secret: Some(secret.clone()), ..AuthConfig::default() }).expect("auth");
    let routes = ingest_routes(sink, TOPIC.into(), authenticator, registry, &config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("https://127.0.0.1:{}", listener.local_addr().expect("address").port());
    tokio::spawn(serve_ingest(listener, tls, routes, std::future::pending()));

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let mut clients: Vec<_> = (0..INGEST_CLIENTS)
        .map(|client| {
            let claims = CollectorClaims {
                sub: format!("load-{client}"),
                aud: COLLECTOR_AUDIENCE.into(),
                exp: now + 3_600,
                iat: now,
            };
            let mut child = std::process::Command::new(std::env::current_exe().expect("this binary"))
                .args(["--push-client", &client.to_string(), "--url", &url])
                .args(["--scans", &options.scans.to_string(), "--hosts", &options.hosts.to_string()])
                .args(["--peers-per-host", &options.peers_per_host.to_string()])
                .env(CREDENTIAL_VARIABLE, mint_hs256(&secret, &claims).expect("mint"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("a push client");
            let lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
            (child, lines)
        })
        .collect();
    // both have encoded their records and connected: start them together
    let observations: u64 = tokio::task::block_in_place(|| {
        clients
            .iter_mut()
            .map(|(_, lines)| {
                let ready = lines.next().expect("a ready line").expect("stdout");
                ready.strip_prefix("ready ").and_then(|count| count.parse::<u64>().ok()).expect("ready <observations>")
            })
            .sum()
    });
    let started = Instant::now();
    for (child, _) in &mut clients {
        child.stdin.as_mut().expect("stdin").write_all(b"go\n").expect("go");
    }
    let mut end = BTreeMap::new();
    tokio::task::block_in_place(|| {
        for (mut child, lines) in clients {
            for line in lines {
                let line = line.expect("stdout");
                match line.strip_prefix("end ") {
                    Some(offsets) => {
                        for (partition, offset) in parse_offsets(offsets) {
                            let at = end.entry(partition).or_insert(0u64);
                            *at = (*at).max(offset);
                        }
                    }
                    None => println!("{line}"),
                }
            }
            assert!(child.wait().expect("wait").success(), "a push client failed");
        }
    });
    let accepted = started.elapsed();
    report("two collector clients -> loopback TLS -> ingest -> embedded log (accepted)", observations, accepted);
    let store = EmbeddedStore::open(&directory.join("store")).expect("store");
    let folded = fold(&*log, &store, &end).await;
    report("embedded log -> fold -> embedded store (folded)", observations, folded);
    report("accepted, then folded", observations, accepted + folded);
}

/// One push client (`--push-client K`): encodes its gateways' records as a collector does, connects,
/// says `ready`, and on `go` pushes them as a collector publishes (`append_all` of the collector's
/// `publish_chunk` records with their partition keys, one request each, every result checked),
/// then prints the CPU time the push took and where the records landed.
async fn push_client(options: &Options, client: usize, url: &str) {
    use argus_api::auth::Secret;
    use argus_core::ids::partition_key;
    use argus_log::{IngestLog, IngestSettings};

    argus_collector::without_huge_pages().expect("a collector process leaves huge pages");
    let collector_id: argus_core::CollectorId = format!("load-{client}").parse().expect("collector");
    let mut fleet = fleet(options);
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    let mut observations = 0u64;
    let mut events = Vec::new();
    for _ in 0..options.scans {
        events.clear();
        fleet.next_scan(&mut events);
        for event in &mut events {
            let header = event.header_mut();
            let gateway: usize = header.host.as_str().trim_start_matches("gw-").parse().expect("synthetic host");
            if gateway % INGEST_CLIENTS != client {
                continue;
            }
            header.collector_id = collector_id.clone();
            header.seq = records.len() as u64 + 1;
            let key = partition_key(&header.org_id, &header.host);
            observations += u64::from(matches!(event, Event::PeerObservation(_)));
            let mut bytes = Vec::with_capacity(160);
            encode_event(event, &mut bytes);
            records.push((key, bytes));
        }
    }
    let publish_chunk = {
        let (org, host) = ("load".parse().expect("org"), "gw-0".parse().expect("host"));
        argus_collector::CollectorConfig::new(org, host, collector_id).publish_chunk
    };
    let credential = Secret::new(std::env::var(CREDENTIAL_VARIABLE).expect("the credential"));
    let mut settings = IngestSettings::new(url, credential, TOPIC);
    settings.ca_file = Some(fixture("ca.pem"));
    let ingest = IngestLog::connect(settings).expect("client");
    let mut end: Vec<u64> = Vec::new();
    let mut note_end = |position: argus_log::Position| {
        let partition = position.partition as usize;
        if end.len() <= partition {
            end.resize(partition + 1, 0);
        }
        end[partition] = end[partition].max(position.offset + 1);
    };
    // the first record connects: a collector that runs for hours pays its TLS handshake once
    let (first, records) = records.split_first().expect("records");
    note_end(ingest.append(TOPIC, first.0.as_bytes(), &first.1).await.expect("accepted"));
    println!("ready {observations}");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("go");

    let (cpu_before, started) = (cpu_time(), Instant::now());
    for chunk in records.chunks(publish_chunk) {
        let chunk: Vec<(&[u8], &[u8])> = chunk.iter().map(|(key, value)| (key.as_bytes(), value.as_slice())).collect();
        for position in ingest.append_all(TOPIC, &chunk).await {
            note_end(position.expect("accepted"));
        }
    }
    ingest.flush().await.expect("flush");
    let ((user, system), wall) = (cpu_time(), started.elapsed());
    let (user, system) = (user - cpu_before.0, system - cpu_before.1);
    let cpu = user + system;
    let per_record = cpu.as_secs_f64() / records.len() as f64;
    println!(
        "push client {client}: {} records in {:.2} s using {:.2} s of CPU (user {:.2}, system {:.2}): {:.2} us per record, {:.2} ms per scan of 10,001 events",
        records.len(),
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        user.as_secs_f64(),
        system.as_secs_f64(),
        per_record * 1e6,
        per_record * 10_001.0 * 1e3
    );
    let end: Vec<String> = end.iter().enumerate().map(|(partition, offset)| format!("{partition}:{offset}")).collect();
    println!("end {}", end.join(","));
}

/// This process's CPU time so far: (user, system).
fn cpu_time() -> (Duration, Duration) {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).expect("getrusage");
    let of = |time: nix::sys::time::TimeVal| {
        Duration::from_secs(time.tv_sec().unsigned_abs()) + Duration::from_micros(time.tv_usec().unsigned_abs())
    };
    (of(usage.user_time()), of(usage.system_time()))
}

/// The TLS fixtures the ingest run uses (a private CA and a loopback server certificate).
fn fixture(name: &str) -> std::path::PathBuf {
    argus_testkit::repository_file(&format!("services/log/tests/fixtures/{name}"))
}

/// `partition:offset,...`
fn parse_offsets(text: &str) -> impl Iterator<Item = (u32, u64)> + use<'_> {
    text.split(',').map(|pair| {
        let (partition, offset) = pair.split_once(':').expect("partition:offset,...");
        (partition.parse().expect("partition"), offset.parse().expect("offset"))
    })
}

/// A bare rdkafka consumer reading every record of the topic, for comparison.
async fn bare_consumer(bootstrap: &str, records: u64) -> Duration {
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("loadgen-bare-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let started = Instant::now();
    let mut read = 0u64;
    let mut bytes = 0usize;
    while read < records {
        let message = consumer.recv().await.expect("record");
        bytes += message.payload().map_or(0, <[u8]>::len);
        read += 1;
    }
    std::hint::black_box(bytes);
    started.elapsed()
}

fn report(what: &str, observations: u64, elapsed: Duration) {
    println!(
        "{what}: {observations} observations in {:.2} s = {:.0} observations/s; resident memory {:.0} MiB (peak {:.0} MiB)",
        elapsed.as_secs_f64(),
        observations as f64 / elapsed.as_secs_f64(),
        resident_mib("VmRSS:"),
        resident_mib("VmHWM:")
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = options();
    if let Some(client) = options.push_client {
        push_client(&options, client, &options.url).await;
        return;
    }
    if let Some(directory) = &options.process_recorded {
        let log = EmbeddedLog::open(&directory.join("log"), 4).expect("log");
        let store = EmbeddedStore::open(&directory.join("store")).expect("store");
        let elapsed = process(&log, &store, &options.end, options.sinks).await;
        let what = if options.sinks { " with a webhook, an Alertmanager and a syslog sink" } else { "" };
        report(
            &format!("embedded log -> fold -> embedded store (processor process){what}"),
            options.observations,
            elapsed,
        );
        return;
    }
    let peers = u64::from(options.hosts) * u64::from(options.peers_per_host);
    println!("{options:?}: {peers} peers");
    let directory = tempfile::tempdir().expect("tempdir");
    if options.ingest {
        through_ingest(directory.path(), &options).await;
    } else if options.tansu {
        let store = EmbeddedStore::open(&directory.path().join("store")).expect("store");
        let broker = argus_testkit::Tansu::start_durable();
        broker.create_topic(TOPIC, 4).await;
        broker.create_topic("loadgen.alerts", 1).await;
        broker.create_topic("loadgen.dead-letter", 1).await;
        let bootstrap = broker.bootstrap();
        let log = KafkaLog::connect(bootstrap).expect("kafka");
        let (records, observations, end) = record(&log, &options).await;
        println!("recorded {records} records on {bootstrap}; resident memory {:.0} MiB", resident_mib("VmRSS:"));
        let bare = bare_consumer(bootstrap, records).await;
        report("bare rdkafka consumer", observations, bare);
        let elapsed = process(&log, &store, &end, false).await;
        report("kafka -> fold -> embedded store", observations, elapsed);
        println!("processor rate / bare consumer rate: {:.2}", bare.as_secs_f64() / elapsed.as_secs_f64());
    } else {
        let (records, observations, end) = {
            let log = EmbeddedLog::open(&directory.path().join("log"), 4).expect("log");
            record(&log, &options).await
        };
        println!(
            "recorded {records} records into the embedded log; generator's resident memory {:.0} MiB",
            resident_mib("VmRSS:")
        );
        let end: Vec<String> = end.iter().map(|(partition, offset)| format!("{partition}:{offset}")).collect();
        let status = std::process::Command::new(std::env::current_exe().expect("this binary"))
            .arg("--process-recorded")
            .arg(directory.path())
            .args(["--end", &end.join(","), "--observations", &observations.to_string()])
            .args(options.sinks.then_some("--sinks"))
            .status()
            .expect("run the processor process");
        assert!(status.success(), "the processor process failed");
    }
}
