//! Many gateways, one central: two WireGuard lab hubs, each watched by its own `argus collector` in
//! the root namespace, pushing over loopback TLS to one `argus run` (no Kafka, no ScyllaDB), as a
//! NOC with tens of gateways would run it. Needs root (namespaces); fails, never skips, without it.

mod common;

use std::path::Path;
use std::time::Duration;

use argus_testkit::lab::{Lab, LabOptions};
use common::{Argus, CollectorProcess, argus_command, counters};
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    format!("{}/../log/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `argus run` taking the two hubs' collectors on a loopback TLS ingest port, collecting nothing itself.
async fn central(directory: &Path) -> (Argus, u16) {
    let ingest = std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("port");
    let body = format!(
        "[collector]\nenabled = false\n\
         [ingest]\nlisten = \"{ingest}\"\ncertificate_file = \"{certificate}\"\nprivate_key_file = \"{key}\"\n\
         [processor.collectors]\nhub-a = {{ orgs = [\"e2e\"], hosts = [\"hub-a\"] }}\n\
         hub-b = {{ orgs = [\"e2e\"], hosts = [\"hub-b\"] }}\n",
        certificate = fixture("server.pem"),
        key = fixture("server.key"),
    );
    (Argus::start_config(directory, &body).await, ingest.port())
}

/// `argus collector` for `lab`'s hub as gateway `host`, pushing to the central's ingest.
fn collector(directory: &Path, central: &Argus, ingest: u16, lab: &Lab, host: &str) -> CollectorProcess {
    let output = argus_command(&central.config).args(["token", "--collector", host]).output().expect("argus token");
    assert!(output.status.success(), "argus token --collector: {}", String::from_utf8_lossy(&output.stderr));
    let credential = String::from_utf8(output.stdout).expect("utf-8").trim().to_owned();
    let body = format!(
        "[collector]\norg = \"e2e\"\nhost = \"{host}\"\ncollector_id = \"{host}\"\nscan_interval_ms = 1000\n\
         interfaces = [\"{hub}\"]\n[collector.overrides.{hub}]\nnetns = \"{namespace}\"\n\
         [collector.central]\nurl = \"https://127.0.0.1:{ingest}\"\ncredential = \"{credential}\"\nca_file = \"{ca}\"\n",
        hub = lab.hub_interface(),
        namespace = lab.hub_namespace(),
        ca = fixture("ca.pem"),
    );
    CollectorProcess::start(directory, host, &body)
}

async fn peers(argus: &Argus) -> Vec<Value> {
    let data = argus
        .graphql("{ wireguardPeers(first: 100) { nodes { publicKey host status transferRx transferTx } } }", json!({}))
        .await;
    data["wireguardPeers"]["nodes"].as_array().expect("nodes").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_push_two_hubs_to_one_central_and_lose_nothing_while_it_is_down() {
    let (hub_a, hub_b) = (Lab::up(2, LabOptions::default()), Lab::up(2, LabOptions::default()));
    // one key on both hubs: hub-b's second site takes hub-a's first site's key
    let shared = hub_b.rotate(2, &hub_a.state_path("s01.key"));
    assert_eq!(shared, hub_a.site_public_key(1));
    let directory = tempfile::tempdir().expect("tempdir");
    let (mut central, ingest) = central(directory.path()).await;
    let collectors = [
        collector(directory.path(), &central, ingest, &hub_a, "hub-a"),
        collector(directory.path(), &central, ingest, &hub_b, "hub-b"),
    ];

    // 1. both hubs' sites, each under its gateway; the shared key on both; stats that add up
    let listed = central
        .eventually("both hubs' four peers are listed", Duration::from_secs(30), async |central| {
            let peers = peers(central).await;
            (peers.len() == 4 && peers.iter().all(|peer| peer["status"] != "NEVER_CONNECTED")).then_some(peers)
        })
        .await;
    let mut placed: Vec<(String, String)> = listed
        .iter()
        .map(|peer| {
            (peer["host"].as_str().expect("host").to_owned(), peer["publicKey"].as_str().expect("key").to_owned())
        })
        .collect();
    placed.sort();
    let mut expected = vec![
        ("hub-a".to_owned(), hub_a.site_public_key(1)),
        ("hub-a".to_owned(), hub_a.site_public_key(2)),
        ("hub-b".to_owned(), hub_b.site_public_key(1)),
        ("hub-b".to_owned(), shared.clone()),
    ];
    expected.sort();
    assert_eq!(placed, expected);
    let both = central
        .graphql("query($key: String!) { wireguardPeer(publicKey: $key) { host } }", json!({ "key": shared }))
        .await;
    let mut hosts: Vec<&str> = both["wireguardPeer"]
        .as_array()
        .expect("list")
        .iter()
        .map(|peer| peer["host"].as_str().expect("host"))
        .collect();
    hosts.sort_unstable();
    assert_eq!(hosts, ["hub-a", "hub-b"], "the shared key on both gateways");
    let stats =
        central.graphql("{ wireguardStats { peers { total } transferRx transferTx hosts { host } } }", json!({})).await;
    let now = peers(&central).await;
    let sum = |field: &str| now.iter().map(|peer| peer[field].as_u64().expect("bytes")).sum::<u64>();
    assert_eq!(stats["wireguardStats"]["peers"]["total"], 4);
    assert_eq!(stats["wireguardStats"]["transferRx"].as_u64(), Some(sum("transferRx")));
    assert_eq!(stats["wireguardStats"]["transferTx"].as_u64(), Some(sum("transferTx")));
    let mut stat_hosts: Vec<&str> = stats["wireguardStats"]["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|host| host["host"].as_str().expect("host"))
        .collect();
    stat_hosts.sort_unstable();
    stat_hosts.dedup();
    assert_eq!(stat_hosts, ["hub-a", "hub-b"]);
    assert!(collectors.iter().all(|collector| !collector.huge_pages_allowed()), "a collector leaves huge pages");

    // 2. the central is SIGKILLed for 30 s while both collectors keep scanning, then restarted
    hub_a.quiet();
    let site = hub_a.site_public_key(2);
    let before = counters(&hub_a.hub_dump(), &site);
    // the counters stand still: once a few scans have seen them, the total stands still too
    tokio::time::sleep(Duration::from_secs(4)).await;
    let total = |peer: &Value| (peer["transferRx"].as_u64().expect("rx"), peer["transferTx"].as_u64().expect("tx"));
    let projected = total(&central.peer(&site).await);
    hub_a.traffic();
    tokio::time::sleep(Duration::from_secs(3)).await;
    central.kill();
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(30)).await;
    for collector in &collectors {
        assert_eq!(collector.metric(&http, "argus_collector_log_unreachable").await, Some(1.0), "the collector knows");
        assert!(collector.metric(&http, "argus_collector_outbox_events").await.unwrap_or(0.0) > 0.0, "it buffers");
    }
    central.restart().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    hub_a.quiet();
    let after = counters(&hub_a.hub_dump(), &site);
    assert!(after.0 > before.0, "traffic flowed");
    let expected = (projected.0 + after.0 - before.0, projected.1 + after.1 - before.1);
    central
        .eventually("the totals grew by the counters' growth", Duration::from_secs(30), async |central| {
            (total(&central.peer(&site).await) == expected).then_some(())
        })
        .await;
    for collector in &collectors {
        central
            .eventually("the collectors' outboxes drain", Duration::from_secs(20), async |_| {
                let drained = collector.metric(&http, "argus_collector_outbox_events").await == Some(0.0)
                    && collector.metric(&http, "argus_collector_log_unreachable").await == Some(0.0);
                drained.then_some(())
            })
            .await;
    }
}
