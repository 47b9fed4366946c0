//! The webhook sink against a real HTTP receiver: every transition its filter lets through
//! arrives, in order, signed, after the receiver was down and the sink was killed meanwhile, with
//! few repeats, each with its deduplication key, and none for transitions the topic holds twice;
//! another organisation's and a higher clearance's never arrive.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_core::codec::AlertEncoding;
use argus_core::{Alert, AlertState, Clearance};
use argus_log::EmbeddedLog;
use argus_notify::{SinkConfig, WebhookSink, dedup_key, run_sink};
use argus_testkit::webhook::WebhookReceiver;
use common::{SECRET, TOPIC, alert, publish};
use tokio::sync::watch;

fn sink_config(name: &str, org: &str, url: &str) -> SinkConfig {
    toml::from_str(&format!(
        "name = \"{name}\"\nmax_backoff_ms = 1000\n[filter]\norgs = [\"{org}\"]\nmax_clearance = \"RESTRICTED\"\n\
         [webhook]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\ntimeout_ms = 2000\n"
    ))
    .expect("sink config")
}

fn spawn_sink(log: &Arc<EmbeddedLog>, config: &SinkConfig, stop: &watch::Sender<bool>) -> tokio::task::JoinHandle<()> {
    let (log, config, stopped) = (Arc::clone(log), config.clone(), stop.subscribe());
    let sink = WebhookSink::new(config.webhook.as_ref().expect("webhook")).expect("sink");
    tokio::spawn(async move { run_sink(&*log, TOPIC, AlertEncoding::Avro, &config, &sink, stopped).await })
}

async fn until_received(receiver: &WebhookReceiver, count: usize) {
    let started = Instant::now();
    while receiver.received().len() < count {
        assert!(started.elapsed() < Duration::from_secs(60), "only {} of {count} arrived", receiver.received().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_arrives_in_order_and_signed_after_the_receiver_was_down_and_the_sink_killed() {
    let directory = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(EmbeddedLog::open(&directory.path().join("log"), 2).expect("log"));
    let mut acme_receiver = WebhookReceiver::start(SECRET).await;
    let globex_receiver = WebhookReceiver::start(SECRET).await;
    let acme = sink_config("acme-noc", "acme", &acme_receiver.url());
    let globex = sink_config("globex-noc", "globex", &globex_receiver.url());
    let (stop, _) = watch::channel(false);

    // raised, and later resolved: acme's within the sink's clearance, acme's SECRET ones, globex's
    let wave = |state| -> Vec<Alert> {
        (0..12)
            .map(|n| alert(n, "acme", Clearance::Restricted, state))
            .chain((20..24).map(|n| alert(n, "acme", Clearance::Secret, state)))
            .chain((30..33).map(|n| alert(n, "globex", Clearance::Unclassified, state)))
            .collect()
    };
    let (raised, resolved) = (wave(AlertState::Raised), wave(AlertState::Resolved));
    let expected: Vec<String> = raised
        .iter()
        .chain(&resolved)
        .filter(|alert| alert.org_id.as_str() == "acme" && alert.clearance <= Clearance::Restricted)
        .map(dedup_key)
        .collect();
    publish(&log, &raised).await;
    let mut acme_task = spawn_sink(&log, &acme, &stop);
    let globex_task = spawn_sink(&log, &globex, &stop);
    until_received(&acme_receiver, 12).await;

    // the receiver goes down; the resolutions come; the sink is killed and started again meanwhile
    acme_receiver.down().await;
    publish(&log, &resolved).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    acme_task.abort();
    assert!(acme_task.await.expect_err("killed").is_cancelled());
    acme_task = spawn_sink(&log, &acme, &stop);
    // a processor's restart republishes transitions already delivered: they are not sent again
    publish(&log, &raised[..4]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(acme_receiver.received().len() == 12, "nothing arrives while the receiver is down");
    acme_receiver.up().await;
    until_received(&acme_receiver, expected.len()).await;
    until_received(&globex_receiver, 6).await;
    // whatever is still to come (a repeat) has come
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.send(true).expect("stop");
    acme_task.await.expect("the sink stops");
    globex_task.await.expect("the sink stops");

    let received = acme_receiver.received();
    assert!(received.iter().all(|delivery| delivery.signature_valid), "every signature verifies");
    let keys: Vec<String> =
        received.iter().map(|delivery| delivery.body["dedup_key"].as_str().expect("dedup_key").to_owned()).collect();
    assert!(received.iter().zip(&keys).all(|(delivery, key)| &delivery.dedup_key_header == key), "header = body key");
    let mut first_arrivals: Vec<String> = Vec::new();
    for key in &keys {
        if !first_arrivals.contains(key) {
            first_arrivals.push(key.clone());
        }
    }
    assert_eq!(first_arrivals.len(), expected.len(), "every transition, nothing else: {first_arrivals:#?}");
    // each alert's transitions keep their order (RAISED before RESOLVED); the topic's partitions
    // are independent, so alerts of different hosts may interleave
    for raise in
        raised.iter().filter(|alert| alert.org_id.as_str() == "acme" && alert.clearance <= Clearance::Restricted)
    {
        let position =
            |state| first_arrivals.iter().position(|key| *key == dedup_key(&Alert { state, ..raise.clone() }));
        assert!(position(AlertState::Raised) < position(AlertState::Resolved), "{} in order", raise.alert_id);
    }
    let repeats = keys.len() - first_arrivals.len();
    println!("{} deliveries of {} transitions: {repeats} repeats", keys.len(), expected.len());
    assert!(repeats <= 1, "at most the one in flight at the kill is repeated: {repeats}");

    let globex_orgs: Vec<String> = globex_receiver
        .received()
        .iter()
        .map(|delivery| delivery.body["alert"]["org_id"].as_str().expect("org").to_owned())
        .collect();
    assert_eq!(globex_orgs.len(), 6, "globex's three alerts, raised and resolved");
    assert!(globex_orgs.iter().all(|org| org == "globex"), "no other organisation's: {globex_orgs:?}");
    let clearances: Vec<&str> =
        received.iter().map(|delivery| delivery.body["alert"]["clearance"].as_str().expect("clearance")).collect();
    assert!(clearances.iter().all(|clearance| *clearance == "RESTRICTED"), "nothing above the sink's clearance");
}
