//! The collector registry over a real processor: events of a collector outside its grant are
//! dead letters with the reason, and nothing of them reaches the projections.

use std::collections::BTreeMap;

use argus_core::Clearance;
use argus_core::CollectorRegistry;
use argus_core::codec::{decode_dead_letter, encode_event};
use argus_core::synthetic::heartbeat;
use argus_log::{Delivery, EmbeddedLog, EventLog, LogConsumer};
use argus_processor::{ProcessorConfig, run_until_caught_up};
use argus_store::{EmbeddedStore, ProjectionStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_outside_a_collectors_grant_are_dead_letters() {
    let directory = tempfile::tempdir().expect("tempdir");
    let log = EmbeddedLog::open(&directory.path().join("log"), 1).expect("log");
    let store = EmbeddedStore::open(&directory.path().join("store")).expect("store");
    let collectors: CollectorRegistry =
        toml::from_str(r#"gw-1 = { orgs = ["acme"], hosts = ["gw-1"] }"#).expect("registry");
    let config = ProcessorConfig { collectors, ..ProcessorConfig::default() };
    let mut end = BTreeMap::new();
    for event in [
        heartbeat("gw-1", "acme", "gw-1", 1),
        heartbeat("gw-1", "globex", "gw-1", 2),
        heartbeat("gw-1", "acme", "gw-2", 3),
        heartbeat("mallory", "acme", "gw-3", 4),
    ] {
        let mut bytes = Vec::new();
        encode_event(&event, &mut bytes);
        let position = log.append(&config.observations_topic, b"key", &bytes).await.expect("append");
        end.insert(position.partition, position.offset + 1);
    }
    run_until_caught_up(&log, &store, &config, &end, |_, _| {}).await.expect("processor");

    let acme = store.hosts(&"acme".parse().expect("org"), Clearance::TopSecret).await.expect("hosts");
    assert_eq!(acme.iter().map(|host| host.host.as_str()).collect::<Vec<_>>(), ["gw-1"]);
    let globex = store.hosts(&"globex".parse().expect("org"), Clearance::TopSecret).await.expect("hosts");
    assert!(globex.is_empty());
    let mut consumer = log.subscribe(&config.dead_letter_topic, "test").await.expect("subscribe");
    let mut reasons = Vec::new();
    loop {
        match consumer.poll(100, std::time::Duration::from_millis(200)).await.expect("poll") {
            Delivery::Records(records) if records.is_empty() => break,
            Delivery::Records(records) => {
                reasons.extend(records.iter().map(|record| decode_dead_letter(&record.value).expect("letter").reason))
            }
            Delivery::Assigned(_) | Delivery::Revoked(_) => {}
        }
    }
    assert_eq!(
        reasons,
        [
            "refused: collector gw-1 may not speak for organisation globex",
            "refused: collector gw-1 may not speak for host gw-2 of acme",
            "refused: collector mallory is not in the collector registry",
        ]
    );
}
