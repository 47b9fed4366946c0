//! The Alertmanager sink against a real Prometheus Alertmanager: raised alerts are active there
//! with their labels and annotations, stay active through a sink restart (the restarted sink
//! recalls what it holds open and keeps re-sending), and resolve when resolved — Alertmanager
//! notifies its own receiver of the resolution and never lists them again; another
//! organisation's and a higher clearance's alerts never reach it.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_core::codec::AlertEncoding;
use argus_core::{AlertState, Clearance};
use argus_log::EmbeddedLog;
use argus_notify::{AlertmanagerSink, SinkConfig, run_sink};
use argus_testkit::alertmanager::Alertmanager;
use argus_testkit::webhook::WebhookReceiver;
use common::{SECRET, TOPIC, alert, publish};
use serde_json::Value;
use tokio::sync::watch;

const RESEND_S: u64 = 1;

fn spawn_sink(log: &Arc<EmbeddedLog>, config: &SinkConfig, stop: &watch::Sender<bool>) -> tokio::task::JoinHandle<()> {
    let (log, config, stopped) = (Arc::clone(log), config.clone(), stop.subscribe());
    let sink = AlertmanagerSink::new(config.alertmanager.as_ref().expect("alertmanager")).expect("sink");
    tokio::spawn(async move { run_sink(&*log, TOPIC, AlertEncoding::Avro, &config, &sink, stopped).await })
}

fn ids(alerts: &[Value]) -> BTreeSet<String> {
    alerts.iter().map(|alert| alert["labels"]["alert_id"].as_str().expect("alert_id").to_owned()).collect()
}

async fn until_active(alertmanager: &Alertmanager, expected: &BTreeSet<String>) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let active = alertmanager.active_alerts().await;
        if ids(&active) == *expected {
            return active;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "active {:?}, expected {expected:?}", ids(&active));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_active_in_alertmanager_through_a_sink_restart_and_resolve_when_resolved() {
    let directory = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(EmbeddedLog::open(&directory.path().join("log"), 2).expect("log"));
    let notified = WebhookReceiver::start(SECRET).await;
    let alertmanager = Alertmanager::start(&notified.url()).await;
    let config: SinkConfig = toml::from_str(&format!(
        "name = \"am\"\nmax_backoff_ms = 1000\n[filter]\norgs = [\"acme\"]\nmax_clearance = \"RESTRICTED\"\n\
         [alertmanager]\nurl = \"{}\"\nresend_interval_s = {RESEND_S}\ntimeout_ms = 2000\n",
        alertmanager.url()
    ))
    .expect("sink config");
    let (stop, _) = watch::channel(false);

    let raised: Vec<_> = (0..4)
        .map(|n| alert(n, "acme", Clearance::Restricted, AlertState::Raised))
        .chain([alert(20, "acme", Clearance::Secret, AlertState::Raised)])
        .chain([alert(30, "globex", Clearance::Unclassified, AlertState::Raised)])
        .collect();
    publish(&log, &raised).await;
    let mut task = spawn_sink(&log, &config, &stop);
    let carried: BTreeSet<String> = raised[..4].iter().map(|alert| alert.alert_id.to_string()).collect();
    let active = until_active(&alertmanager, &carried).await;
    let first = active.iter().find(|alert| alert["labels"]["alert_id"] == raised[0].alert_id.to_string()).expect("0");
    assert_eq!(first["labels"]["alertname"], "PEER_STALE");
    assert_eq!(first["labels"]["org"], "acme");
    assert_eq!(first["labels"]["severity"], "critical");
    assert_eq!(first["annotations"]["summary"], "no handshake: FOB 0");
    assert_eq!(first["status"]["state"], "active");

    // a killed sink's successor recalls the open alerts and re-sends them: they outlive the
    // `endsAt` (4 intervals ahead) the first sink gave them
    task.abort();
    assert!(task.await.expect_err("killed").is_cancelled());
    task = spawn_sink(&log, &config, &stop);
    tokio::time::sleep(Duration::from_secs(RESEND_S * 4 + 3)).await;
    assert_eq!(ids(&alertmanager.active_alerts().await), carried, "still active after the restart");

    let resolved: Vec<_> = (0..2).map(|n| alert(n, "acme", Clearance::Restricted, AlertState::Resolved)).collect();
    publish(&log, &resolved).await;
    let open: BTreeSet<String> = raised[2..4].iter().map(|alert| alert.alert_id.to_string()).collect();
    until_active(&alertmanager, &open).await;
    // re-sends of the open ones never revive the resolved ones
    tokio::time::sleep(Duration::from_secs(RESEND_S * 3)).await;
    assert_eq!(ids(&alertmanager.active_alerts().await), open, "resolved ones stay resolved");

    // Alertmanager told its own receiver: each resolved alert's group went from firing to resolved
    let started = Instant::now();
    let resolutions = loop {
        let resolutions: BTreeSet<String> = notified
            .received()
            .iter()
            .filter(|notification| notification.body["status"] == "resolved")
            .flat_map(|notification| ids(notification.body["alerts"].as_array().expect("alerts")))
            .collect();
        if resolutions.len() >= 2 || started.elapsed() > Duration::from_secs(20) {
            break resolutions;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let expected: BTreeSet<String> = resolved.iter().map(|alert| alert.alert_id.to_string()).collect();
    assert_eq!(resolutions, expected, "Alertmanager notified exactly these resolutions");
    stop.send(true).expect("stop");
    task.await.expect("the sink stops");
}
