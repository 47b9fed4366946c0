//! A real API over HTTP for tests: the embedded log and store, the real processor folding what is
//! published, the live alert feed, and a server on a free loopback port; all stopped on drop.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use argus_api::auth::{AuthConfig, Authenticator, Claims, Role, Secret, mint_hs256};
use argus_api::{ApiConfig, ApiContext, routes, run_alert_feed, serve};
use argus_core::codec::{AlertEncoding, encode_event};
use argus_core::{Clearance, Event, EventHeader, Heartbeat, PeerObservation, PeerSource, PublicKey};
use argus_log::{Delivery, EmbeddedLog, EventLog, LogConsumer};
use argus_processor::ProcessorConfig;
use argus_store::{EmbeddedStore, ProjectionStore};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub const SECRET: &str = "test-secret-of-at-least-thirty-two-bytes";
pub const OBSERVATIONS: &str = "wireguard.observations";
pub const SECOND: i64 = 1_000;

pub fn key(n: u8) -> PublicKey {
    PublicKey::from_bytes([n; 32])
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

pub fn token(org: &str, clearance: &str, role: Role) -> String {
    token_with_exp(org, clearance, role, jsonwebtoken::get_current_timestamp() + 3_600)
}

/// [`token`] with the given `exp` (seconds since the Unix epoch).
pub fn token_with_exp(org: &str, clearance: &str, role: Role, exp: u64) -> String {
    let claims = Claims {
        sub: format!("{org}-{role:?}").to_lowercase(),
        org: org.into(),
        clearance: clearance.into(),
        role,
        exp,
        iat: None,
    };
    mint_hs256(&Secret::new(SECRET), &claims).expect("mint")
}

/// Sends one `graphql-transport-ws` message.
pub async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.expect("send");
}

/// The next protocol message within `wait`: `Ok(json)`, or `Err(close code)` when the server
/// closed the socket (`Err(None)`: closed without a code, or nothing arrived in time).
pub async fn receive(socket: &mut Socket, wait: Duration) -> Result<Value, Option<u16>> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next()).await.map_err(|_| None)?;
        match message {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).expect("json")),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|frame| u16::from(frame.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// Opens a `graphql-transport-ws` socket and, with a token, initialises it (the token in the
/// `connection_init` payload) and waits for the acknowledgement.
pub async fn open_socket(api: &Api, token: Option<&str>) -> Socket {
    let mut request = format!("ws://{}/graphql/ws", api.address).into_client_request().expect("request");
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
    if let Some(token) = token {
        send(
            &mut socket,
            json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }),
        )
        .await;
        let ack = receive(&mut socket, Duration::from_secs(5)).await.expect("ack");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }
    socket
}

/// Opens an initialised socket and subscribes to `query` (id "1").
pub async fn subscribe(api: &Api, token: &str, query: &str) -> Socket {
    subscribe_with(api, token, query, json!({})).await
}

/// The same, with `variables`.
pub async fn subscribe_with(api: &Api, token: &str, query: &str, variables: Value) -> Socket {
    let mut socket = open_socket(api, Some(token)).await;
    let payload = json!({ "query": query, "variables": variables });
    send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": payload })).await;
    socket
}

/// The next `next` payload within `wait`, or None.
pub async fn next_event(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let value = receive(socket, left).await.ok()?;
        match value["type"].as_str() {
            Some("next") => return Some(value["payload"].clone()),
            Some("error") => panic!("subscription error: {value}"),
            _ => {}
        }
    }
}

pub struct Api {
    pub address: SocketAddr,
    pub log: Arc<EmbeddedLog>,
    pub store: EmbeddedStore,
    pub http: reqwest::Client,
    /// Event time of the seeded stream's first scan.
    pub t0: i64,
    seq: u64,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _directory: tempfile::TempDir,
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn until_shutdown(mut receiver: watch::Receiver<bool>) {
    while !*receiver.borrow() {
        if receiver.changed().await.is_err() {
            return;
        }
    }
}

impl Api {
    pub async fn start() -> Self {
        Self::start_with(ApiConfig { sync_wait: Duration::from_secs(5), ..ApiConfig::default() }).await
    }

    pub async fn start_with(config: ApiConfig) -> Self {
        Self::start_with_auth(config, AuthConfig { hs256_secret: Some(Secret::new(SECRET)), ..AuthConfig::default() })
            .await
    }

    pub async fn start_with_auth(config: ApiConfig, auth: AuthConfig) -> Self {
        let directory = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(EmbeddedLog::open(&directory.path().join("log"), 4).expect("log"));
        let store = EmbeddedStore::open(&directory.path().join("store")).expect("store");
        let (shutdown, receiver) = watch::channel(false);
        let mut tasks = Vec::new();
        let processor_config =
            ProcessorConfig { poll_timeout: Duration::from_millis(50), ..ProcessorConfig::default() };
        let (processor_log, processor_store, processor_shutdown) = (log.clone(), store.clone(), receiver.clone());
        tasks.push(tokio::spawn(async move {
            argus_processor::run(
                &*processor_log,
                &processor_store,
                &processor_config,
                until_shutdown(processor_shutdown),
            )
            .await
            .expect("processor");
        }));
        let context = ApiContext::new(Arc::new(store.clone()), log.clone(), config.clone()).expect("context");
        tasks.push(tokio::spawn(run_alert_feed(
            log.clone(),
            config.alerts_topic.clone(),
            "api-live-test".into(),
            AlertEncoding::Avro,
            context.live_alerts.clone(),
            receiver.clone(),
        )));
        let authenticator = Authenticator::new(&auth).expect("auth");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let server_shutdown = receiver.clone();
        tasks.push(tokio::spawn(async move {
            serve(listener, routes(context, authenticator), until_shutdown(server_shutdown)).await.expect("serve");
        }));
        let api = Self {
            address,
            log,
            store,
            http: reqwest::Client::new(),
            t0: now_millis() - 3_600 * SECOND,
            seq: 0,
            shutdown,
            tasks,
            _directory: directory,
        };
        // the server is up when /healthz answers
        for _ in 0..100 {
            if api.http.get(api.url("/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        api
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A GraphQL request with a token: (HTTP status, `WWW-Authenticate`, body).
    pub async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, Option<String>, Value) {
        let mut request = self.http.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let challenge =
            response.headers().get("www-authenticate").map(|value| value.to_str().expect("ascii").to_owned());
        (status, challenge, response.json().await.unwrap_or(Value::Null))
    }

    /// The body of a query without variables, as sent (key order and all).
    pub async fn graphql_text(&self, token: &str, query: &str) -> String {
        self.body_text(token, json!({ "query": query })).await
    }

    /// [`Api::graphql_text`] with variables.
    pub async fn graphql_text_with_variables(&self, token: &str, query: &str, variables: Value) -> String {
        self.body_text(token, json!({ "query": query, "variables": variables })).await
    }

    async fn body_text(&self, token: &str, body: Value) -> String {
        let request = self.http.post(self.url("/graphql")).json(&body).bearer_auth(token);
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), 200);
        response.text().await.expect("body")
    }

    /// `data` of a query that must succeed.
    pub async fn data(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, _, body) = self.graphql(Some(token), query, variables).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// The first error of a query that must fail: (message, extensions.code).
    pub async fn error(&self, token: &str, query: &str, variables: Value) -> (String, String) {
        let (_, _, body) = self.graphql(Some(token), query, variables).await;
        let error = &body["errors"][0];
        assert!(error.is_object(), "expected an error: {body}");
        (
            error["message"].as_str().unwrap_or_default().to_owned(),
            error["extensions"]["code"].as_str().unwrap_or_default().to_owned(),
        )
    }

    fn header(&mut self, org: &str, host: &str, at: i64) -> EventHeader {
        self.seq += 1;
        EventHeader {
            org_id: org.parse().expect("org"),
            host: host.parse().expect("host"),
            interface: "wg0".parse().expect("interface"),
            observed_at: at,
            collector_id: "collector-test".parse().expect("collector"),
            seq: self.seq,
        }
    }

    /// Publishes what a collector would: an observation of peer `n`.
    #[allow(clippy::too_many_arguments)]
    pub async fn observe(
        &mut self, org: &str, host: &str, n: u8, clearance: Clearance, at: i64, handshake: i64, rx: u64, endpoint: &str,
    ) {
        let event = Event::PeerObservation(PeerObservation {
            header: self.header(org, host, at),
            public_key: key(n),
            endpoint: Some(endpoint.parse().expect("endpoint")),
            allowed_ips: vec![format!("10.{n}.0.0/24").parse().expect("cidr")],
            latest_handshake: Some(handshake),
            rx_bytes: rx,
            tx_bytes: rx / 2,
            persistent_keepalive: Some(25),
            source: PeerSource::Userspace,
            clearance,
            display_name: Some(format!("site-{n:02}")),
            owner: Some("noc".into()),
            tags: vec![],
            writer_clearance: None,
        });
        self.publish(&event).await;
    }

    pub async fn heartbeat(&mut self, org: &str, host: &str, at: i64, clearance: Clearance) {
        let event = Event::Heartbeat(Heartbeat {
            header: self.header(org, host, at),
            interface_public_key: Some(key(200)),
            listen_port: Some(51820),
            peer_count: 2,
            scan_interval_ms: 10_000,
            clearance,
        });
        self.publish(&event).await;
    }

    pub async fn publish(&self, event: &Event) {
        let mut bytes = Vec::new();
        encode_event(event, &mut bytes);
        let header = event.header();
        let key = format!("{}/{}", header.org_id, header.host);
        self.log.append(OBSERVATIONS, key.as_bytes(), &bytes).await.expect("append");
    }

    /// The seeded picture, two scans 400 s apart:
    /// - acme gw-1: peer 1 (UNCLASSIFIED) fresh, peer 2 (SECRET) goes stale (an alert), peer 4
    ///   (UNCLASSIFIED) goes stale (an alert); acme gw-2: peer 3 (UNCLASSIFIED) fresh and roaming;
    /// - globex gw-1: peer 9 (UNCLASSIFIED) goes stale (an alert).
    pub async fn seed(&mut self) {
        let (t0, t1) = (self.t0, self.t0 + 400 * SECOND);
        for (at, scan) in [(t0, 0u64), (t1, 1)] {
            self.observe(
                "acme",
                "gw-1",
                1,
                Clearance::Unclassified,
                at,
                at - 5 * SECOND,
                1_000 + scan * 50_000,
                "198.51.100.1:51820",
            )
            .await;
            self.observe("acme", "gw-1", 2, Clearance::Secret, at, t0 - 5 * SECOND, 2_000, "198.51.100.2:51820").await;
            self.observe("acme", "gw-1", 4, Clearance::Unclassified, at, t0 - 5 * SECOND, 4_000, "198.51.100.4:51820")
                .await;
            self.heartbeat("acme", "gw-1", at, Clearance::Unclassified).await;
            let roaming = if scan == 0 { "198.51.100.3:51820" } else { "203.0.113.3:40000" };
            self.observe(
                "acme",
                "gw-2",
                3,
                Clearance::Unclassified,
                at,
                at - 5 * SECOND,
                3_000 + scan * 7_000,
                roaming,
            )
            .await;
            self.heartbeat("acme", "gw-2", at, Clearance::Unclassified).await;
            self.observe("globex", "gw-1", 9, Clearance::Unclassified, at, t0 - 5 * SECOND, 9_000, "192.0.2.9:51820")
                .await;
            self.heartbeat("globex", "gw-1", at, Clearance::Unclassified).await;
        }
        self.wait_for_peer("globex", 9, t1).await;
        self.wait_for_peer("acme", 3, t1).await;
        self.wait_for_peer("acme", 4, t1).await;
    }

    /// Waits until the processor has projected peer `n` of `org` as of `at`.
    pub async fn wait_for_peer(&self, org: &str, n: u8, at: i64) {
        let org = org.parse().expect("org");
        for _ in 0..500 {
            let records = self.store.peer(&org, &key(n), Clearance::TopSecret).await.expect("peer");
            if records.iter().any(|record| record.observed_at >= at) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("peer {n} of {org} not projected as of {at}");
    }

    /// How many records the observations topic holds (read by a throwaway group).
    pub async fn observation_count(&self) -> usize {
        let group = format!("count-{}", now_millis());
        let mut consumer = self.log.subscribe(OBSERVATIONS, &group).await.expect("subscribe");
        let mut count = 0;
        loop {
            match consumer.poll(10_000, Duration::from_millis(100)).await.expect("poll") {
                Delivery::Records(records) if records.is_empty() => return count,
                Delivery::Records(records) => count += records.len(),
                Delivery::Assigned(_) | Delivery::Revoked(_) => {}
            }
        }
    }
}
