//! The ingest endpoint over loopback TLS, with the real client: what a collector's credential and
//! grant allow lands in the central's log, in order and durable; everything else is refused whole
//! with the reason, and nothing of it is appended.

use std::time::Duration;

use argus_api::auth::{
    AuthConfig, Authenticator, COLLECTOR_AUDIENCE, Claims, CollectorClaims, Role, Secret, mint_hs256,
};
use argus_api::{IngestConfig, IngestConfigError, RecordSink, ingest_routes, serve_ingest};
use argus_core::CollectorRegistry;
use argus_core::codec::{decode_event, encode_event};
use argus_log::ingest::{BATCH_CONTENT_TYPE, INGEST_PATH, frame_record};
use argus_log::{
    Delivery, EmbeddedLog, EventLog, IngestLog, IngestSettings, LogConsumer, LogError, Record, partition_for,
};
use std::sync::Arc;

const TOPIC: &str = "wireguard.observations";
const PARTITIONS: u32 = 4;
const REVOKED_BEFORE: u64 = 1_796_083_200; // 2026-12-01T00:00:00Z

fn secret() -> Secret {
    Secret::new("0123456789abcdef0123456789abcdef")
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}/../log/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR")))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

fn credential(collector: &str, iat: u64, exp: u64) -> Secret {
    let claims = CollectorClaims { sub: collector.into(), aud: COLLECTOR_AUDIENCE.into(), exp, iat };
    Secret::new(mint_hs256(&secret(), &claims).expect("mint"))
}

fn heartbeat(collector: &str, org: &str, host: &str, seq: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_event(&argus_core::synthetic::heartbeat(collector, org, host, seq), &mut bytes);
    bytes
}

/// A central's ingest on a loopback TLS port, over its own embedded log.
struct Central {
    log: Arc<EmbeddedLog>,
    url: String,
    stop: tokio::sync::watch::Sender<bool>,
    _directory: tempfile::TempDir,
}

impl Central {
    async fn start() -> Self {
        let directory = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(EmbeddedLog::open(directory.path(), PARTITIONS).expect("log"));
        let registry: CollectorRegistry = serde_json::from_value(serde_json::json!({
            "gw-1": { "orgs": ["acme"], "hosts": ["gw-1", "gw-2"], "revoke_credentials_issued_before": "2026-12-01T00:00:00Z" },
            "gw-2": { "orgs": ["acme"], "hosts": ["gw-2"] },
        }))
        .expect("registry");
        let config = IngestConfig {
            listen: Some("127.0.0.1:0".parse().expect("address")),
            certificate_file: Some(fixture("server.pem")),
            private_key_file: Some(fixture("server.key")),
            ..IngestConfig::default()
        };
        let tls = config.tls(&registry).expect("tls");
        assert!(tls.is_some());
        let authenticator =
            Authenticator::new(&AuthConfig { hs256_secret: Some(secret()), ..AuthConfig::default() }).expect("auth");
        let sink: Arc<dyn RecordSink> = log.clone();
        let routes = ingest_routes(sink, TOPIC.into(), authenticator, registry, &config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("https://127.0.0.1:{}", listener.local_addr().expect("address").port());
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(serve_ingest(listener, tls, routes, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        Self { log, url, stop, _directory: directory }
    }

    fn settings(&self, credential: Secret) -> IngestSettings {
        let mut settings = IngestSettings::new(self.url.clone(), credential, TOPIC);
        settings.ca_file = Some(fixture("ca.pem"));
        settings.timeout = Duration::from_secs(10);
        settings
    }

    fn client(&self, credential: Secret) -> IngestLog {
        IngestLog::connect(self.settings(credential)).expect("client")
    }

    /// A client sending at most `max_batch_records` records per request.
    fn client_batching(&self, credential: Secret, max_batch_records: usize) -> IngestLog {
        IngestLog::connect(IngestSettings { max_batch_records, ..self.settings(credential) }).expect("client")
    }

    /// Every record of the central's log, by partition and offset.
    async fn records(&self) -> Vec<Record> {
        let mut consumer = self.log.subscribe(TOPIC, "test").await.expect("subscribe");
        let mut records = Vec::new();
        loop {
            match consumer.poll(10_000, Duration::from_millis(200)).await.expect("poll") {
                Delivery::Records(batch) if batch.is_empty() => return records,
                Delivery::Records(batch) => records.extend(batch),
                Delivery::Assigned(_) | Delivery::Revoked(_) => {}
            }
        }
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_a_collector_may_send_land_durably_keyed_by_gateway_in_order() {
    let central = Central::start().await;
    let client = central.client(credential("gw-1", now(), now() + 600));
    let records: Vec<Vec<u8>> =
        (0..1_500).map(|seq| heartbeat("gw-1", "acme", if seq % 2 == 0 { "gw-1" } else { "gw-2" }, seq)).collect();
    // appended concurrently, as the collector does: they travel in batches, in order
    let positions = futures_util::future::join_all(records.iter().map(|value| client.append(TOPIC, b"ignored", value)))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("accepted");
    client.flush().await.expect("flush");
    let stored = central.records().await;
    assert_eq!(stored.len(), 1_500);
    for (value, position) in records.iter().zip(&positions) {
        let record = stored
            .iter()
            .find(|record| record.partition == position.partition && record.offset == position.offset)
            .expect("the position answered holds the record");
        assert_eq!(&record.value, value);
    }
    for host in ["gw-1", "gw-2"] {
        let key = format!("acme/{host}");
        let of_host: Vec<&Record> = stored.iter().filter(|record| record.key == key.as_bytes()).collect();
        assert_eq!(of_host.len(), 750, "the key is the central's, from the event: {key}");
        assert!(of_host.iter().all(|record| record.partition == partition_for(key.as_bytes(), PARTITIONS)));
        let seqs: Vec<u64> =
            of_host.iter().map(|record| decode_event(&record.value).expect("event").header().seq).collect();

        assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "in append order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_queued_together_beyond_one_request_all_land_in_order() {
    let central = Central::start().await;
    let client = central.client_batching(credential("gw-1", now(), now() + 600), 1_000);
    let records: Vec<Vec<u8>> = (0..1_400).map(|seq| heartbeat("gw-1", "acme", "gw-1", seq)).collect();
    let chunks: Vec<Vec<(&[u8], &[u8])>> = records
        .chunks(700)
        .map(|chunk| chunk.iter().map(|value| (&b"ignored"[..], value.as_slice())).collect())
        .collect();
    let (first, second) = (&chunks[0], &chunks[1]);
    // both queued before the sender looks: the second does not fit beside the first, so it waits
    // for the next request, which must go without another append arriving
    let both = futures_util::future::join(client.append_all(TOPIC, first), client.append_all(TOPIC, second));
    let (first, second) = tokio::time::timeout(Duration::from_secs(30), both).await.expect("both chunks answered");
    let positions: Vec<_> = first.into_iter().chain(second).collect::<Result<_, _>>().expect("accepted");
    client.flush().await.expect("flush");
    let stored = central.records().await;
    assert_eq!(stored.len(), 1_400);
    let seqs: Vec<u64> = stored.iter().map(|record| decode_event(&record.value).expect("event").header().seq).collect();
    assert_eq!(seqs, (0..1_400).collect::<Vec<u64>>(), "in queue order");
    assert!(positions.windows(2).all(|pair| pair[0].offset + 1 == pair[1].offset), "one position per record");
}

/// The reason the central refuses `value` from `client`, and that its log stayed empty.
async fn refusal(central: &Central, client: &IngestLog, value: &[u8]) -> LogError {
    let refused = client.append(TOPIC, b"k", value).await.expect_err("refused");
    assert!(central.records().await.is_empty(), "nothing of a refused batch is appended");
    refused
}

/// A TLS client trusting the fixture CA, for requests the ingest client would never send.
fn raw_client() -> reqwest::Client {
    let roots = reqwest::Certificate::from_pem_bundle(&std::fs::read(fixture("ca.pem")).expect("ca")).expect("pem");
    reqwest::Client::builder().tls_certs_only(roots).build().expect("client")
}

/// POSTs `records` as one batch with a valid gw-1 credential: (status, answer).
async fn post_batch(central: &Central, records: &[Vec<u8>]) -> (u16, serde_json::Value) {
    let mut body = Vec::new();
    for record in records {
        frame_record(record, &mut body);
    }
    post_body(central, body).await
}

async fn post_body(central: &Central, body: Vec<u8>) -> (u16, serde_json::Value) {
    let response = raw_client()
        .post(format!("{}{INGEST_PATH}", central.url))
        .bearer_auth(credential("gw-1", now(), now() + 600).expose())
        .header("content-type", BATCH_CONTENT_TYPE)
        .body(body)
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_speaks_only_for_its_grant_and_a_bad_batch_is_refused_whole_with_the_reason() {
    let central = Central::start().await;
    let valid = || credential("gw-1", now(), now() + 600);
    let refused = |error: LogError, expected: &str| match error {
        LogError::Refused(reason) | LogError::Invalid(reason) if reason.contains(expected) => {}
        other => panic!("expected a refusal saying {expected:?}, got {other:?}"),
    };
    let ok = heartbeat("gw-1", "acme", "gw-1", 1);
    let client = central.client(valid());
    // another organisation, a host outside the grant, another collector's events: refused
    refused(
        refusal(&central, &client, &heartbeat("gw-1", "globex", "gw-1", 2)).await,
        "record 0: collector gw-1 may not speak for organisation globex",
    );
    refused(
        refusal(&central, &client, &heartbeat("gw-1", "acme", "gw-9", 3)).await,
        "collector gw-1 may not speak for host gw-9 of acme",
    );
    refused(
        refusal(&central, &client, &heartbeat("gw-2", "acme", "gw-2", 4)).await,
        "record 0 claims collector gw-2; this credential is collector gw-1",
    );
    // bytes that are no event: refused as bad input
    assert!(matches!(refusal(&central, &client, b"not an event").await, LogError::Invalid(_)));
    // one bad record refuses its whole batch, naming it
    let (status, answer) = post_batch(&central, &[ok.clone(), heartbeat("gw-1", "globex", "gw-1", 2)]).await;
    assert_eq!((status, &answer["record"]), (403, &serde_json::json!(1)), "{answer}");
    let (status, answer) = post_batch(&central, &[ok.clone(), b"not an event".to_vec()]).await;
    assert_eq!((status, &answer["record"]), (400, &serde_json::json!(1)), "{answer}");
    assert!(central.records().await.is_empty(), "nothing of a refused batch is appended");
    // credentials: revoked (issued before the registry's date), expired, unknown, or an API token
    let revoked = central.client(credential("gw-1", REVOKED_BEFORE - 60, now() + 600));
    refused(refusal(&central, &revoked, &ok).await, "this credential of collector gw-1 was revoked");
    let expired = central.client(credential("gw-1", now() - 7_200, now() - 3_600));
    refused(refusal(&central, &expired, &ok).await, "token has expired");
    let unknown = central.client(credential("mallory", now(), now() + 600));
    refused(
        refusal(&central, &unknown, &heartbeat("mallory", "acme", "gw-1", 5)).await,
        "collector mallory is not in the collector registry",
    );
    let api_token = Claims {
        sub: "noc".into(),
        org: "acme".into(),
        clearance: "TOP_SECRET".into(),
        role: Role::Admin,
        exp: now() + 600,
        iat: Some(now()),
    };
    let api_token = central.client(Secret::new(mint_hs256(&secret(), &api_token).expect("mint")));
    assert!(matches!(refusal(&central, &api_token, &ok).await, LogError::Refused(_)));
    // a client that does not trust the central's CA refuses it, saying why
    let untrusting = IngestLog::connect(IngestSettings::new(central.url.clone(), valid(), TOPIC)).expect("client");
    refused(refusal(&central, &untrusting, &ok).await, "certificate");
    // and the valid credential's batch still lands
    client.append(TOPIC, b"k", &ok).await.expect("accepted");
    assert_eq!(central.records().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_cut_bodies_are_refused_with_their_reason() {
    let central = Central::start().await;
    let mut cut = Vec::new();
    frame_record(&heartbeat("gw-1", "acme", "gw-1", 1), &mut cut);
    frame_record(&heartbeat("gw-1", "acme", "gw-1", 2), &mut cut);
    cut.truncate(cut.len() - 3);
    let (status, body) = post_body(&central, cut).await;
    assert_eq!((status, &body["record"]), (400, &serde_json::json!(1)));
    assert!(body["error"].as_str().expect("error").contains("cut short"), "{body}");
    let too_many: Vec<Vec<u8>> = (0..10_001).map(|seq| heartbeat("gw-1", "acme", "gw-1", seq)).collect();
    let (status, body) = post_batch(&central, &too_many).await;
    assert_eq!(status, 413);
    assert!(body["error"].as_str().expect("error").contains("at most 10000 records"), "{body}");
    let response =
        raw_client().post(format!("{}{INGEST_PATH}", central.url)).body(vec![0; 8]).send().await.expect("answered");
    assert_eq!(response.status(), 401, "no credential");
    assert!(central.records().await.is_empty());
    let refused = argus_api::prometheus().render();
    assert!(refused.contains("argus_ingest_batches_refused_total{reason=\"malformed\"}"), "{refused}");
}

#[test]
fn an_ingest_that_cannot_be_served_safely_is_refused_at_start() {
    let registry: CollectorRegistry =
        serde_json::from_value(serde_json::json!({ "gw-1": { "orgs": ["acme"] } })).expect("registry");
    let plain = |listen: &str| IngestConfig {
        listen: Some(listen.parse().expect("address")),
        plain_http: true,
        ..IngestConfig::default()
    };
    assert!(plain("127.0.0.1:8443").tls(&registry).expect("loopback").is_none());
    assert!(matches!(plain("0.0.0.0:8443").tls(&registry), Err(IngestConfigError::PlainBeyondLoopback(_))));
    let no_certificate = IngestConfig { plain_http: false, ..plain("0.0.0.0:8443") };
    assert!(matches!(no_certificate.tls(&registry), Err(IngestConfigError::NoCertificate)));
    assert!(matches!(plain("127.0.0.1:8443").tls(&CollectorRegistry::default()), Err(IngestConfigError::NoCollectors)));
}
