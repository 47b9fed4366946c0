//! The scale-out subcommands as a user starts them: `argus collector` publishing the WireGuard
//! lab's hub to a real broker (tansu), and `argus processor` / `argus api` up to the ScyllaDB they
//! need (none can be installed here), with the errors a user gets. Needs root (namespaces).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use argus_core::Event;
use argus_core::codec::decode_event;
use argus_log::{Delivery, EventLog, KafkaLog, LogConsumer, Position};
use argus_testkit::Tansu;
use argus_testkit::lab::{Lab, LabOptions};

const TOPIC: &str = "wireguard.observations";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("port").port()
}

/// Writes `body` as the configuration file and runs `argus --config <it> <subcommand>` to its end
/// (or kills it after `wait`): (exit success, stderr).
fn run_to_end(directory: &Path, body: &str, subcommand: &str, wait: Duration) -> (bool, String) {
    let config = directory.join(format!("{subcommand}.toml"));
    std::fs::write(&config, body).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .arg("--config")
        .arg(&config)
        .arg(subcommand)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start argus");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > wait {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argus_collector_publishes_the_hubs_peers_to_kafka() {
    let lab = Lab::up(2, LabOptions::default());
    let broker = Tansu::start();
    broker.create_topic(TOPIC, 4).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let config = directory.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "metrics_listen = \"127.0.0.1:{port}\"\n[kafka]\nbrokers = \"{brokers}\"\n\
             [collector]\norg = \"fleet\"\nhost = \"hub-01\"\nscan_interval_ms = 500\ninterfaces = [\"{hub}\"]\n",
            port = free_port(),
            brokers = broker.bootstrap(),
            hub = lab.hub_interface(),
        ),
    )
    .expect("write config");
    let mut collector = Command::new(env!("CARGO_BIN_EXE_argus"))
        .arg("--config")
        .arg(&config)
        .arg("collector")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start argus collector");

    let log = KafkaLog::connect(broker.bootstrap()).expect("connect");
    let mut consumer = log.subscribe(TOPIC, "scale-out-test").await.expect("subscribe");
    let wanted = [lab.site_public_key(1), lab.site_public_key(2)];
    let mut seen = std::collections::BTreeSet::new();
    let started = Instant::now();
    while seen.len() < wanted.len() {
        assert!(started.elapsed() < Duration::from_secs(60), "observations of both sites: saw {seen:?}");
        match consumer.poll(1_000, Duration::from_millis(200)).await.expect("poll") {
            Delivery::Assigned(partitions) => {
                for partition in partitions {
                    consumer.seek(Position { partition, offset: 0 }).await.expect("seek");
                }
            }
            Delivery::Records(records) => {
                for record in records {
                    if let Event::PeerObservation(observation) = decode_event(&record.value).expect("decodes") {
                        assert_eq!(observation.header.org_id.as_str(), "fleet");
                        assert_eq!(observation.header.host.as_str(), "hub-01");
                        let key = observation.public_key.to_string();
                        if wanted.contains(&key) {
                            seen.insert(key);
                        }
                    }
                }
            }
            Delivery::Revoked(_) => {}
        }
    }
    let _ = collector.kill();
    let _ = collector.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argus_processor_and_api_say_what_they_need_and_refuse_credentials_the_broker_refuses() {
    let directory = tempfile::tempdir().expect("tempdir");
    let mut broker = Tansu::start_durable();
    broker.create_topic(TOPIC, 4).await;
    let brokers = broker.bootstrap().to_owned();
    let listen = format!("listen = \"127.0.0.1:{}\"\nmetrics_listen = \"127.0.0.1:{}\"\n", free_port(), free_port());
    for subcommand in ["processor", "api"] {
        let body = format!("{listen}[auth]\nhs256_secret = \"{}\"\n[kafka]\nbrokers = \"{brokers}\"\n", "s".repeat(32));
        let (succeeded, stderr) = run_to_end(directory.path(), &body, subcommand, Duration::from_secs(30));
        assert!(!succeeded, "argus {subcommand} cannot run without ScyllaDB");
        assert!(
            stderr.contains(
                "scylla.uri is not set: the scale-out processor and API share their projections through ScyllaDB"
            ),
            "argus {subcommand}: {stderr}"
        );
    }
    // a broker that refuses the configured credentials: the service does not start, and says why
    broker.require_user("argus", "the-password");
    let body = format!(
        "{listen}[kafka]\nbrokers = \"{brokers}\"\n[kafka.security]\nprotocol = \"sasl_plaintext\"\n\
         sasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"argus\"\nsasl_password = \"not-the-password\"\n"
    );
    let (succeeded, stderr) = run_to_end(directory.path(), &body, "processor", Duration::from_secs(30));
    assert!(!succeeded, "argus processor refuses to start");
    assert!(stderr.contains("check [kafka.security]"), "{stderr}");
    assert!(stderr.contains("SASL authentication error"), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "the password is never printed: {stderr}");
}
