//! A webhook receiver for sink tests: a real HTTP server on a loopback port that checks each
//! delivery's HMAC-SHA256 signature itself, keeps what arrived in order, and can be taken down
//! (its port closed) and brought back on the same port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use poem::http::{HeaderMap, StatusCode};
use poem::listener::TcpListener;
use poem::web::Data;
use poem::{EndpointExt, Route, Server, handler, post};
use sha2::Sha256;
use tokio::sync::oneshot;

/// One delivery as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: serde_json::Value,
    /// The `X-Argus-Dedup-Key` header.
    pub dedup_key_header: String,
    /// Whether `X-Argus-Signature` matched the body and `X-Argus-Timestamp` under the secret.
    pub signature_valid: bool,
}

#[derive(Debug)]
struct Shared {
    secret: Vec<u8>,
    received: Mutex<Vec<Received>>,
    /// Deliveries beyond this many are answered 503 and not kept, until the next `up`.
    accept_at_most: AtomicUsize,
}

/// The receiver; stops with its handle.
#[derive(Debug)]
pub struct WebhookReceiver {
    address: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    let Some(signature) = header("x-argus-signature").strip_prefix("v1=").and_then(|hex| hex::decode(hex).ok()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return false };
    mac.update(header("x-argus-timestamp").as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

#[handler]
fn receive(headers: &HeaderMap, body: Vec<u8>, shared: Data<&Arc<Shared>>) -> StatusCode {
    let Ok(json) = serde_json::from_slice(&body) else { return StatusCode::BAD_REQUEST };
    let received = Received {
        body: json,
        dedup_key_header: headers
            .get("x-argus-dedup-key")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        signature_valid: verify(&shared.secret, headers, &body),
    };
    let mut kept = shared.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if kept.len() >= shared.accept_at_most.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    kept.push(received);
    StatusCode::NO_CONTENT
}

impl WebhookReceiver {
    /// Listens on a free loopback port, checking signatures with `secret`.
    pub async fn start(secret: &str) -> Self {
        let port = crate::free_port();
        let shared = Arc::new(Shared {
            secret: secret.as_bytes().to_vec(),
            received: Mutex::new(Vec::new()),
            accept_at_most: AtomicUsize::new(usize::MAX),
        });
        let mut receiver = Self { address: SocketAddr::from(([127, 0, 0, 1], port)), shared, stop: None, server: None };
        receiver.up().await;
        receiver
    }

    /// `http://127.0.0.1:<port>/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    /// Closes the port: deliveries meanwhile fail to connect.
    pub async fn down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Takes `count` deliveries in all and answers the rest 503 (a failing receiver) until the
    /// next [`WebhookReceiver::up`]: a test's outage begins at an exact delivery.
    pub fn accept_at_most(&self, count: usize) {
        self.shared.accept_at_most.store(count, Ordering::SeqCst);
    }

    /// Listens again on the same port, taking every delivery.
    pub async fn up(&mut self) {
        self.shared.accept_at_most.store(usize::MAX, Ordering::SeqCst);
        let (stop, stopped) = oneshot::channel::<()>();
        let routes = Route::new().at("/hook", post(receive)).data(Arc::clone(&self.shared));
        let server = Server::new(TcpListener::bind(self.address));
        let address = self.address;
        self.server = Some(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(error) = server.run_with_graceful_shutdown(routes, shutdown, None).await {
                panic!("webhook receiver on {address}: {error}");
            }
        }));
        self.stop = Some(stop);
        // answers once the port is open
        for _ in 0..200 {
            if std::net::TcpStream::connect(self.address).is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("webhook receiver did not open {}", self.address);
    }

    /// Every delivery so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
