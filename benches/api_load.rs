//! Load on the GraphQL API over HTTP: 100,000 peers stored (100 gateways x 1,000), 64 concurrent
//! clients with keep-alive connections, each sending one query after another; reports the latency
//! percentiles of `wireguardPeers(first: 100)` and of `wireguardStats`.
//!
//! `cargo run --release -p argus-benches --bin api-load [seconds per query, default 20]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_api::auth::{AuthConfig, Authenticator, Claims, Role, Secret, mint_hs256};
use argus_api::{ApiConfig, ApiContext, routes, serve};
use argus_benches::{BatchSource, HOSTS, PEERS_PER_HOST};
use argus_log::EmbeddedLog;
use argus_store::EmbeddedStore;
use serde_json::json;

const CLIENTS: usize = 64;
const SECRET: &str = "load-test-secret-of-thirty-two-bytes!";

const PEERS_QUERY: &str = "{ wireguardPeers(first: 100) { edges { cursor node { publicKey host interface status \
    endpoint allowedIps latestHandshake transferRx transferTx rxBytesPerSecond } } pageInfo { hasNextPage endCursor } } }";
const STATS_QUERY: &str = "{ wireguardStats { peers { total active stale neverConnected } transferRx transferTx \
    rxBytesPerSecond txBytesPerSecond hosts { host peers { total stale } transferRx } } }";

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

/// Runs `CLIENTS` clients against `query` for `duration`; prints and returns the p99.
async fn load(url: &str, token: &str, name: &str, query: &'static str, duration: Duration) -> Duration {
    let body = json!({ "query": query }).to_string();
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, token, body) = (url.to_owned(), token.to_owned(), body.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut latencies = Vec::new();
                while started.elapsed() < duration {
                    let sent = Instant::now();
                    let response = http
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(response.status(), 200);
                    let bytes = response.bytes().await.expect("body");
                    assert!(!bytes.starts_with(b"{\"errors\""), "{}", String::from_utf8_lossy(&bytes));
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await.expect("client"));
    }
    latencies.sort_unstable();
    let elapsed = started.elapsed().as_secs_f64();
    let p99 = percentile(&latencies, 0.99);
    println!(
        "{name}: {} requests in {elapsed:.1} s ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
    );
    p99
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args().nth(1).map_or(20, |text| text.parse().expect("seconds per query"));
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&directory.path().join("store")).expect("store");
    let log = Arc::new(EmbeddedLog::open(&directory.path().join("log"), 4).expect("log"));
    let peers = (HOSTS * PEERS_PER_HOST) as usize;
    let mut source = BatchSource::new();
    let filling = Instant::now();
    for _ in 0..peers / argus_benches::BATCH_ROWS {
        store.write_blocking(&source.next_batch()).expect("write");
    }
    println!("stored {peers} peers in {:.1} s", filling.elapsed().as_secs_f64());

    let context = ApiContext::new(Arc::new(store), log, ApiConfig::default()).expect("context");
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
    let duration = Duration::from_secs(seconds);
    println!("{CLIENTS} concurrent clients over HTTP, {seconds} s per query, target p99 <= 10 ms");
    load(&url, &token, "wireguardPeers(first: 100)", PEERS_QUERY, duration).await;
    load(&url, &token, "wireguardStats", STATS_QUERY, duration).await;
    let _ = stop.send(());
    let _ = server.await;
}
