//! Load on the GraphQL API over HTTP: 100,000 peers stored (100 gateways x 1,000), then `wrk` (a
//! separate process, one thread) with 64 concurrent keep-alive connections, each sending one query
//! after another; reports throughput and latency percentiles of `wireguardPeers(first: 100)` and
//! of `wireguardStats`, first with the store at rest, then while every peer is written again every
//! 10 s (a live fleet's scans: each row changes, and each statistics row). Last, `/healthz` and
//! `wireguardStats` (4 connections each) while 8 callers send, one after another, the most
//! expensive requests the default limits allow (a filtered scan of every peer, three config
//! exports, month-long history and activity). Needs `wrk` (Debian: `apt-get install wrk`).
//!
//! `cargo run --release -p argus-benches --bin api-load [seconds per query, default 20]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use argus_api::auth::{AuthConfig, Authenticator, Claims, Role, Secret, mint_hs256};
use argus_api::{ApiConfig, ApiContext, routes, serve};
use argus_benches::{BatchSource, HOSTS, PEERS_PER_HOST};
use argus_log::EmbeddedLog;
use argus_store::EmbeddedStore;
use serde_json::json;

/// The allocator `argus` serves with (many threads allocate many small GraphQL values).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENTS: usize = 64;
/// A scan of every peer is written in this time while the second round of load runs.
const SCAN_INTERVAL: Duration = Duration::from_secs(10);
const SECRET: &str = "load-test-secret-of-thirty-two-bytes!";

const PEERS_QUERY: &str = "{ wireguardPeers(first: 100) { edges { cursor node { publicKey host interface status \
    endpoint allowedIps latestHandshake transferRx transferTx rxBytesPerSecond } } pageInfo { hasNextPage endCursor } } }";
/// What a Relay or Apollo client (and the NOC screen) sends for the same page: a named operation,
/// variables (the page after a cursor) and a fragment.
const CLIENT_QUERY: &str = "query FleetPage($first: Int!, $after: String) { wireguardPeers(first: $first, after: $after) { \
    edges { cursor node { ...PeerRow } } pageInfo { hasNextPage endCursor } } } \
    fragment PeerRow on WireguardPeer { publicKey host interface status endpoint allowedIps latestHandshake transferRx \
    transferTx rxBytesPerSecond }";
const STATS_QUERY: &str = "{ wireguardStats { peers { total active stale neverConnected } transferRx transferTx \
    rxBytesPerSecond txBytesPerSecond hosts { host peers { total stale } transferRx } } }";

/// Callers sending expensive requests in the last round.
const ABUSERS: usize = 8;
/// Connections of `wrk` for each query measured while they do.
const PROBES: usize = 4;

/// The `round`th of the most expensive requests the default limits allow (each costs at most
/// `max_complexity`), each unlike the ones before, so that no kept answer serves it.
fn expensive_query(round: usize) -> String {
    let iso = |millis| chrono::DateTime::from_timestamp_millis(millis).expect("a time").to_rfc3339();
    let start = argus_benches::FLEET_START + round as i64;
    let (from, to) = (iso(start), iso(start + 31 * 86_400_000));
    let key = argus_core::synthetic::Fleet::peer_key(7, 7).to_string();
    let host = |offset: usize| format!("gw-{:05}", (round + offset) % 100);
    match round % 4 {
        0 => format!(
            "{{ wireguardPeers(first: 500, filter: {{ text: \"no such peer {round}\" }}) {{ edges {{ cursor node {{ publicKey }} }} }} }}"
        ),
        1 => format!(
            "{{ a: wireguardConfigExport(host: \"{}\", interface: \"wg0\") b: wireguardConfigExport(host: \"{}\", interface: \"wg0\") \
             c: wireguardConfigExport(host: \"{}\", interface: \"wg0\") }}",
            host(0),
            host(1),
            host(2)
        ),
        2 => format!(
            "{{ wireguardActivePeers(from: \"{from}\", to: \"{to}\", first: 2) {{ edges {{ node {{ publicKey rxBytes }} }} }} }}"
        ),
        _ => format!(
            "{{ wireguardPeerHistory(publicKey: \"{key}\", from: \"{from}\", to: \"{to}\", first: 500) {{ edges {{ node {{ observedAt }} }} }} }}"
        ),
    }
}

/// A token of the viewer `subject`.
fn viewer_token(subject: &str) -> String {
    let claims = Claims {
        sub: subject.into(),
        org: argus_benches::org().to_string(),
        clearance: "TOP_SECRET".into(),
        role: Role::Viewer,
        exp: jsonwebtoken::get_current_timestamp() + 3_600,
        iat: None,
    };
    mint_hs256(&Secret::new(SECRET), &claims).expect("token")
}

/// A request body of `query` alone.
fn plain(query: &str) -> serde_json::Value {
    json!({ "query": query })
}

/// Runs `wrk` (one thread, `connections` keep-alive connections) posting `body` (a GET without
/// one) for `seconds`, and prints its throughput and latency percentiles.
fn load(url: &str, token: &str, name: &str, body: Option<&serde_json::Value>, connections: usize, seconds: u64) {
    let script = tempfile::NamedTempFile::new().expect("script file");
    let request = match body {
        Some(body) => {
            let body = body.to_string();
            format!(
                "wrk.method = \"POST\"\nwrk.body = {body:?}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
            )
        }
        None => "wrk.method = \"GET\"\n".to_owned(),
    };
    std::fs::write(
        script.path(),
        format!(
            "{request}wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n\
             response = function(status, headers, body)\n  if status ~= 200 or body:sub(1, 10) == '{{\"errors\"' then\n    \
             io.stderr:write(\"bad answer \" .. status .. \": \" .. body:sub(1, 200) .. \"\\n\")\n    os.exit(1)\n  end\nend\n"
        ),
    )
    .expect("write script");
    let output = std::process::Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(script.path())
        .arg(url)
        .output()
        .expect("run wrk (apt-get install wrk)");
    assert!(output.status.success(), "wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    let report = String::from_utf8_lossy(&output.stdout);
    let line = |prefix: &str| {
        report
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with(prefix))
            .map(|line| line[prefix.len()..].trim().to_owned())
            .unwrap_or_else(|| panic!("no {prefix:?} in wrk's report:\n{report}"))
    };
    println!(
        "{name}: {} requests/s, p50 {}, p90 {}, p99 {}, errors: {}",
        line("Requests/sec:"),
        line("50%"),
        line("90%"),
        line("99%"),
        report.lines().find(|line| line.contains("Non-2xx") || line.contains("Socket errors")).unwrap_or("none")
    );
}

/// The client's request for the second page of the fleet: its cursor read from the first page.
async fn client_body(url: &str, token: &str) -> serde_json::Value {
    let first = json!({ "query": CLIENT_QUERY, "operationName": "FleetPage", "variables": { "first": 100 } });
    let response =
        reqwest::Client::new().post(url).bearer_auth(token).json(&first).send().await.expect("the first page");
    let answer: serde_json::Value = response.json().await.expect("the first page's JSON");
    let cursor = answer["data"]["wireguardPeers"]["pageInfo"]["endCursor"].as_str().expect("a cursor").to_owned();
    json!({ "query": CLIENT_QUERY, "operationName": "FleetPage", "variables": { "first": 100, "after": cursor } })
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args().nth(1).map_or(20, |text| text.parse().expect("seconds per query"));
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&directory.path().join("store")).expect("store");
    let log = Arc::new(EmbeddedLog::open(&directory.path().join("log"), 4).expect("log"));
    let peers = (HOSTS * PEERS_PER_HOST) as usize;
    let batches_a_scan = peers / argus_benches::BATCH_ROWS;
    let mut source = BatchSource::new();
    let filling = Instant::now();
    for _ in 0..batches_a_scan {
        store.write_blocking(&source.next_batch()).expect("write");
    }
    println!("stored {peers} peers in {:.1} s", filling.elapsed().as_secs_f64());

    let context = ApiContext::new(Arc::new(store.clone()), log, ApiConfig::default()).expect("context");
    let authenticator =
        Authenticator::new(&AuthConfig { hs256_secret: Some(Secret::new(SECRET)), ..AuthConfig::default() })
            .expect("auth");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/graphql", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, routes(context, authenticator), async {
        let _ = stopped.await;
    }));
    let token = viewer_token("load");
    let healthz = url.replace("/graphql", "/healthz");
    println!("wrk: {CLIENTS} concurrent keep-alive connections over HTTP, {seconds} s per query, target p99 <= 10 ms");
    let (rounds_url, rounds_token) = (url.clone(), token.clone());
    let client = client_body(&url, &token).await;
    tokio::task::spawn_blocking(move || {
        let (url, token) = (rounds_url, rounds_token);
        load(&url, &token, "wireguardPeers(first: 100)", Some(&plain(PEERS_QUERY)), CLIENTS, seconds);
        load(&url, &token, "FleetPage($first: 100, $after), fragment", Some(&client), CLIENTS, seconds);
        load(&url, &token, "wireguardStats", Some(&plain(STATS_QUERY)), CLIENTS, seconds);
        // the same while scans are written: one batch of rows at a time, evenly over each interval
        let writing = Arc::new(AtomicBool::new(true));
        let writer = {
            let writing = writing.clone();
            std::thread::spawn(move || {
                let pause = SCAN_INTERVAL / batches_a_scan as u32;
                while writing.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    store.write_blocking(&source.next_batch()).expect("write");
                    std::thread::sleep(pause.saturating_sub(started.elapsed()));
                }
            })
        };
        let live = format!(" while every peer is written every {} s", SCAN_INTERVAL.as_secs());
        load(&url, &token, &format!("wireguardPeers(first: 100){live}"), Some(&plain(PEERS_QUERY)), CLIENTS, seconds);
        load(&url, &token, &format!("FleetPage, fragment{live}"), Some(&client), CLIENTS, seconds);
        load(&url, &token, &format!("wireguardStats{live}"), Some(&plain(STATS_QUERY)), CLIENTS, seconds);
        writing.store(false, Ordering::Relaxed);
        writer.join().expect("writer");
    })
    .await
    .expect("load");

    // the last round: expensive requests from several callers at once
    let abusing = Arc::new(AtomicBool::new(true));
    let answers = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
    let mut abusers = Vec::new();
    for caller in 0..ABUSERS {
        let (url, abusing, answers) = (url.clone(), abusing.clone(), answers.clone());
        let token = viewer_token(&format!("abuser-{caller}"));
        abusers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut round = caller;
            while abusing.load(Ordering::Relaxed) {
                let query = expensive_query(round);
                round += ABUSERS + 1; // never a round another caller sends
                let response = client.post(&url).bearer_auth(&token).json(&json!({ "query": query })).send().await;
                let outcome = match response {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body: serde_json::Value = response.json().await.unwrap_or_default();
                        match body["errors"][0]["extensions"]["code"].as_str() {
                            Some(code) => format!("{status} {code}"),
                            None => format!("{status} ok"),
                        }
                    }
                    Err(error) => format!("failed: {error}"),
                };
                *answers.lock().expect("answers").entry(outcome).or_default() += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "while {ABUSERS} callers send the most expensive requests allowed, {PROBES} connections each, target p99 < 50 ms"
    );
    let (stats_url, probe_token) = (url.clone(), token.clone());
    tokio::task::spawn_blocking(move || {
        load(&healthz, &probe_token, "/healthz", None, PROBES, seconds);
        load(&stats_url, &probe_token, "wireguardStats", Some(&plain(STATS_QUERY)), PROBES, seconds);
    })
    .await
    .expect("probes");
    abusing.store(false, Ordering::Relaxed);
    for abuser in abusers {
        abuser.await.expect("abuser");
    }
    println!("expensive requests answered: {:?}", answers.lock().expect("answers"));
    let _ = stop.send(());
    let _ = server.await;
}
