//! Alert sinks of `argus run`: a webhook receiver gets every transition of a recorded stream (none
//! missing, in order per alert, signed) after it was down for 30 s and `argus run` was SIGKILLed
//! and restarted meanwhile; a repeat carries its deduplication key, and what the processor's
//! restart republished on the topic is not sent twice. A real Prometheus Alertmanager holds a
//! failed WireGuard site's stale alert active while it lasts and resolves it when the site returns.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argus_core::codec::{decode_alert, encode_event};
use argus_core::synthetic::{Fleet, FleetSpec};
use argus_core::{Event, PublicKey};
use argus_log::{Delivery, EmbeddedLog, EventLog, LogConsumer};
use argus_notify::dedup_key;
use argus_testkit::alertmanager::Alertmanager;
use argus_testkit::lab::{Lab, LabOptions};
use argus_testkit::webhook::WebhookReceiver;
use common::Argus;
use serde_json::Value;

const PARTITIONS: u32 = 4;
const HOOK_SECRET: &str = "a-webhook-secret-of-at-least-32-bytes";
const SCANS: u32 = 60;

/// 4 gateways x 5 peers, scanned every 10 s and ending a minute ago; six peers (two on one
/// gateway) stop handshaking for 40 scans each, staggered, so each is raised stale and resolved.
fn stream() -> Vec<(String, Vec<u8>)> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64;
    let mut fleet = Fleet::new(FleetSpec {
        org: "sinks".parse().expect("org"),
        hosts: 4,
        peers_per_host: 5,
        scan_interval_ms: 10_000,
        start: now - 60_000 - i64::from(SCANS) * 10_000,
    });
    let quiet: Vec<(PublicKey, std::ops::Range<u32>)> = [(0, 0), (0, 1), (1, 2), (2, 3), (3, 4), (1, 0)]
        .iter()
        .enumerate()
        .map(|(n, &(host, peer))| (Fleet::peer_key(host, peer), (2 + 2 * n as u32)..(42 + 2 * n as u32)))
        .collect();
    let mut held: BTreeMap<PublicKey, Option<i64>> = BTreeMap::new();
    let mut records = Vec::new();
    let mut events = Vec::new();
    for scan in 0..SCANS {
        events.clear();
        fleet.next_scan(&mut events);
        for event in &mut events {
            if let Event::PeerObservation(observation) = event
                && let Some((key, scans)) = quiet.iter().find(|(key, _)| *key == observation.public_key)
            {
                if scans.contains(&scan) {
                    let handshake = *held.entry(*key).or_insert(observation.latest_handshake);
                    observation.latest_handshake = handshake;
                } else {
                    held.remove(key);
                }
            }
            let header = event.header();
            let key = format!("{}/{}", header.org_id, header.host);
            let mut bytes = Vec::new();
            encode_event(event, &mut bytes);
            records.push((key, bytes));
        }
    }
    records
}

/// Every alert transition on the alert topic of the (stopped) `argus run` in `data`, in order.
async fn topic_alerts(data: &std::path::Path) -> Vec<argus_core::Alert> {
    let log = EmbeddedLog::open(&data.join("log"), PARTITIONS).expect("log");
    let mut consumer = log.subscribe("wireguard.alerts", "sinks-test-reader").await.expect("subscribe");
    let mut alerts = Vec::new();
    let mut idle = 0;
    while idle < 2 {
        match consumer.poll(10_000, Duration::from_millis(200)).await.expect("poll") {
            Delivery::Records(records) if records.is_empty() => idle += 1,
            Delivery::Records(records) => {
                alerts.extend(records.iter().map(|record| decode_alert(&record.value).expect("alert")));
            }
            _ => {}
        }
    }
    alerts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_every_transition_after_it_was_down_and_argus_was_killed_meanwhile() {
    let directory = tempfile::tempdir().expect("tempdir");
    let data = directory.path().join("data");
    {
        let log = EmbeddedLog::open(&data.join("log"), PARTITIONS).expect("log");
        for (key, value) in stream() {
            log.append("wireguard.observations", key.as_bytes(), &value).await.expect("append");
        }
        log.flush().await.expect("flush");
    }
    let mut receiver = WebhookReceiver::start(HOOK_SECRET).await;
    // the outage begins right after the first delivery, however fast the rest would follow
    receiver.accept_at_most(1);
    let mut argus = Argus::start_config(
        directory.path(),
        &format!(
            "partitions = {PARTITIONS}\n[collector]\nenabled = false\n\
             [[alerts.sinks]]\nname = \"noc\"\nmax_backoff_ms = 2000\n\
             [alerts.sinks.filter]\norgs = [\"sinks\"]\nmax_clearance = \"TOP_SECRET\"\nkinds = [\"PEER_STALE\", \"INCIDENT\"]\n\
             [alerts.sinks.webhook]\nurl = \"{url}\"\nsecret = \"{HOOK_SECRET}\"\ntimeout_ms = 2000\n",
            url = receiver.url()
        ),
    )
    .await;
    let started = Instant::now();
    while receiver.received().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "no delivery arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.down().await;
    let down_at = Instant::now();
    let arrived_before = receiver.received().len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let failures = argus.metric("argus_sink_delivery_failures_total{sink=\"noc\"}").await.unwrap_or(0.0);
    assert!(failures > 0.0, "the failed deliveries are counted");
    argus.kill();
    argus.restart().await;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed())).await;
    assert_eq!(receiver.received().len(), arrived_before, "nothing arrives while the receiver is down");
    receiver.up().await;

    // delivered once the backlog is empty and nothing more arrives for a while
    let mut last = (0, Instant::now());
    loop {
        let count = receiver.received().len();
        if count != last.0 {
            last = (count, Instant::now());
        }
        let backlog = argus.metric("argus_sink_backlog_records{sink=\"noc\"}").await;
        if backlog == Some(0.0) && last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
        assert!(last.1.elapsed() < Duration::from_secs(60), "deliveries stopped with a backlog of {backlog:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    argus.terminate();

    let on_topic: Vec<argus_core::Alert> = topic_alerts(&data)
        .await
        .into_iter()
        .filter(|alert| matches!(alert.kind, argus_core::AlertKind::PeerStale | argus_core::AlertKind::Incident))
        .collect();
    let transitions: Vec<String> = on_topic.iter().map(dedup_key).collect();
    let distinct: BTreeSet<&String> = transitions.iter().collect();
    let resolved = on_topic.iter().filter(|alert| alert.state == argus_core::AlertState::Resolved).count();
    assert!(resolved >= 6, "the stream's six quiet peers are raised and resolved: {transitions:#?}");

    let received = receiver.received();
    assert!(received.iter().all(|delivery| delivery.signature_valid), "every signature verifies");
    let keys: Vec<String> =
        received.iter().map(|delivery| delivery.body["dedup_key"].as_str().expect("dedup_key").to_owned()).collect();
    assert!(received.iter().zip(&keys).all(|(delivery, key)| &delivery.dedup_key_header == key));
    let mut first_arrivals: Vec<&String> = Vec::new();
    for key in &keys {
        if !first_arrivals.contains(&key) {
            first_arrivals.push(key);
        }
    }
    assert_eq!(first_arrivals.iter().copied().collect::<BTreeSet<_>>(), distinct, "every transition, nothing else");
    // each alert's transitions arrive in the order the topic holds them
    let mut by_alert: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for key in &first_arrivals {
        by_alert.entry(key.split('/').next().expect("id").to_owned()).or_default().push(key);
    }
    for (alert, arrived) in &by_alert {
        let mut in_topic: Vec<&String> = Vec::new();
        for key in transitions.iter().filter(|key| key.starts_with(alert.as_str())) {
            if !in_topic.contains(&key) {
                in_topic.push(key);
            }
        }
        assert_eq!(arrived, &in_topic, "alert {alert}: its transitions in order");
    }
    let topic_repeats = transitions.len() - distinct.len();
    let repeats = keys.len() - first_arrivals.len();
    println!(
        "{} deliveries of {} transitions: {repeats} repeats (the topic holds {topic_repeats} transitions twice: the processor's restart republished them)",
        keys.len(),
        distinct.len()
    );
    assert!(repeats <= 1, "at most the transition in flight at the kill is repeated: {repeats}");
}

/// Needs root (the lab's namespaces); fails, never skips, without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_holds_a_failed_sites_stale_alert_while_it_lasts_and_resolves_it_when_it_returns() {
    const RESEND_S: u64 = 5;
    let lab = Lab::up(2, LabOptions::default());
    let directory = tempfile::tempdir().expect("tempdir");
    let notified = WebhookReceiver::start(HOOK_SECRET).await;
    let alertmanager = Alertmanager::start(&notified.url()).await;
    let sinks = format!(
        "[[alerts.sinks]]\nname = \"alertmanager\"\n[alerts.sinks.filter]\norgs = [\"e2e\"]\nmax_clearance = \"TOP_SECRET\"\n\
         [alerts.sinks.alertmanager]\nurl = \"{}\"\nresend_interval_s = {RESEND_S}\n",
        alertmanager.url()
    );
    // WireGuard renews handshakes every 120 s while traffic flows: a window just above that
    let argus = Argus::start_on(directory.path(), &lab, &sinks, "", "stale_after_s = 135\nfresh_below_s = 125").await;
    let failed = lab.site_public_key(1);
    argus
        .eventually("the hub is projected", Duration::from_secs(20), async |argus| {
            (argus.peer(&failed).await["status"] == "ACTIVE").then_some(())
        })
        .await;
    lab.fail(1);

    let stale = |alerts: &[Value]| {
        alerts
            .iter()
            .find(|alert| alert["labels"]["alertname"] == "PEER_STALE" && alert["labels"]["public_key"] == failed)
            .cloned()
    };
    let started = Instant::now();
    let active = loop {
        if let Some(alert) = stale(&alertmanager.active_alerts().await) {
            break alert;
        }
        assert!(started.elapsed() < Duration::from_secs(200), "no stale alert reached Alertmanager");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let raised = argus.alerts("PEER_STALE").await;
    assert_eq!(raised.len(), 1, "one alert, the failed site's: {raised:?}");
    assert_eq!(active["labels"]["alert_id"], raised[0]["alertId"], "{active}");
    assert_eq!(active["labels"]["host"], "hub-01");
    assert_eq!(active["labels"]["org"], "e2e");
    assert_eq!(active["status"]["state"], "active");
    let summary = active["annotations"]["summary"].as_str().expect("summary");
    assert!(summary.contains(&failed), "{summary}");
    // open longer than the `endsAt` of any one post: only the re-sends keep it active
    tokio::time::sleep(Duration::from_secs(RESEND_S * 5)).await;
    assert!(stale(&alertmanager.active_alerts().await).is_some(), "re-sent while open");

    lab.restore(1);
    let started = Instant::now();
    while stale(&alertmanager.active_alerts().await).is_some() {
        assert!(started.elapsed() < Duration::from_secs(60), "the alert did not resolve in Alertmanager");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(argus.alerts("PEER_STALE").await[0]["state"], "RESOLVED");
    // Alertmanager itself notified the resolution of that alert
    let alert_id = active["labels"]["alert_id"].clone();
    let started = Instant::now();
    while !notified.received().iter().any(|notification| {
        notification.body["status"] == "resolved"
            && notification.body["alerts"].as_array().is_some_and(|alerts| {
                alerts.iter().any(|alert| alert["labels"]["alert_id"] == alert_id && alert["status"] == "resolved")
            })
    }) {
        assert!(started.elapsed() < Duration::from_secs(20), "Alertmanager notified no resolution");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // re-sends of open alerts never revive it
    tokio::time::sleep(Duration::from_secs(RESEND_S * 2)).await;
    assert!(stale(&alertmanager.active_alerts().await).is_none(), "resolved stays resolved");
}
