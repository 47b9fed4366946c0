//! Load on the GraphQL API over HTTP: 100,000 peers stored (100 gateways x 1,000), then `wrk` (a
//! separate process, one thread) with 64 concurrent keep-alive connections, each sending one query
//! after another; reports throughput and latency percentiles of `wireguardPeers(first: 100)` and
//! of `wireguardStats`, first with the store at rest, then while every peer is written again every
//! 10 s (a live fleet's scans: each row changes, and each statistics row). Needs `wrk` (Debian:
//! `apt-get install wrk`).
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
const STATS_QUERY: &str = "{ wireguardStats { peers { total active stale neverConnected } transferRx transferTx \
    rxBytesPerSecond txBytesPerSecond hosts { host peers { total stale } transferRx } } }";

/// Runs `wrk` (one thread, `CLIENTS` keep-alive connections) posting `query` for `seconds`, and
/// prints its throughput and latency percentiles.
fn load(url: &str, token: &str, name: &str, query: &str, seconds: u64) {
    let script = tempfile::NamedTempFile::new().expect("script file");
    let body = json!({ "query": query }).to_string();
    std::fs::write(
        script.path(),
        format!(
            "wrk.method = \"POST\"\nwrk.body = {body:?}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n\
             response = function(status, headers, body)\n  if status ~= 200 or body:sub(1, 10) == '{{\"errors\"' then\n    \
             io.stderr:write(\"bad answer \" .. status .. \": \" .. body:sub(1, 200) .. \"\\n\")\n    os.exit(1)\n  end\nend\n"
        ),
    )
    .expect("write script");
    let output = std::process::Command::new("wrk")
        .args(["-t1", &format!("-c{CLIENTS}"), &format!("-d{seconds}s"), "--latency", "-s"])
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
    let claims = Claims {
        sub: "load".into(),
        org: argus_benches::org().to_string(),
        clearance: "TOP_SECRET".into(),
        role: Role::Viewer,
        exp: jsonwebtoken::get_current_timestamp() + 3_600,
        iat: None,
    };
    let token = mint_hs256(&Secret::new(SECRET), &claims).expect("token");
    println!("wrk: {CLIENTS} concurrent keep-alive connections over HTTP, {seconds} s per query, target p99 <= 10 ms");
    tokio::task::spawn_blocking(move || {
        load(&url, &token, "wireguardPeers(first: 100)", PEERS_QUERY, seconds);
        load(&url, &token, "wireguardStats", STATS_QUERY, seconds);
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
        load(&url, &token, &format!("wireguardPeers(first: 100){live}"), PEERS_QUERY, seconds);
        load(&url, &token, &format!("wireguardStats{live}"), STATS_QUERY, seconds);
        writing.store(false, Ordering::Relaxed);
        writer.join().expect("writer");
    })
    .await
    .expect("load");
    let _ = stop.send(());
    let _ = server.await;
}
