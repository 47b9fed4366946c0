//! Real services for integration tests: a `tansu` Kafka-API broker on a free loopback port (in-memory
//! or sqlite storage in its own directory), a WireGuard lab of network namespaces (`lab`), a
//! webhook receiver (`webhook`), rsyslog (`syslog`), Prometheus Alertmanager (`alertmanager`) and
//! headless Chromium (`browser`), each stopped when its handle drops.

pub mod alertmanager;
pub mod browser;
pub mod lab;
pub mod syslog;
pub mod webhook;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// A loopback port free when asked (the caller binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("port").port()
}

/// The pinned tansu binary, installed by `infra/scripts/install-tansu.sh` when missing.
pub fn tansu_binary() -> PathBuf {
    let script = repository_file("infra/scripts/install-tansu.sh");
    let output = Command::new("bash").arg(script).stderr(Stdio::inherit()).output().expect("run install-tansu.sh");
    assert!(output.status.success(), "install-tansu.sh failed");
    PathBuf::from(String::from_utf8(output.stdout).expect("utf-8 path").trim())
}

/// A file of this repository, found from the running test's package directory (read at run time:
/// a build shared between checkouts must not point into another checkout).
pub fn repository_file(relative: &str) -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("working directory"));
    start
        .ancestors()
        .map(|directory| directory.join(relative))
        .find(|candidate| candidate.exists())
        .unwrap_or_else(|| panic!("{relative} not found above {}", start.display()))
}

/// A running broker; killed (and its storage removed) on drop.
pub struct Tansu {
    child: Option<Child>,
    bootstrap: String,
    storage: &'static str,
    /// Whether clients must authenticate (SASL SCRAM against the broker's users).
    authentication: bool,
    directory: tempfile::TempDir,
}

impl std::fmt::Debug for Tansu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tansu").field("bootstrap", &self.bootstrap).finish_non_exhaustive()
    }
}

impl Tansu {
    /// Starts a broker on 127.0.0.1 with memory storage and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_with("memory://tansu/")
    }

    /// Starts a broker whose topics survive `stop` and `restart` (sqlite storage).
    pub fn start_durable() -> Self {
        Self::start_with("sqlite://tansu.db")
    }

    fn start_with(storage: &'static str) -> Self {
        let port = free_port();
        let directory = tempfile::tempdir().expect("tempdir");
        let mut broker =
            Self { child: None, bootstrap: format!("127.0.0.1:{port}"), storage, authentication: false, directory };
        broker.restart();
        broker
    }

    /// Adds a user and restarts the broker requiring SASL SCRAM-SHA-512 authentication from then
    /// on (its storage must be durable: `start_durable`).
    pub fn require_user(&mut self, name: &str, password: &str) {
        let url = format!("tcp://{}", self.bootstrap);
        let created = Command::new(tansu_binary())
            .args(["user", "create", "--broker", &url, "--mechanism", "scram512", name, password])
            .env_remove("RUST_LOG")
            .output()
            .expect("run tansu user create");
        assert!(created.status.success(), "tansu user create: {}", String::from_utf8_lossy(&created.stderr));
        self.authentication = true;
        self.restart();
    }

    /// Kills the broker (as a crash would); `restart` brings it back on the same port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and storage, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let url = format!("tcp://{}", self.bootstrap);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.directory.path().join("tansu.log"))
            .expect("log file");
        let child = Command::new(tansu_binary())
            .args(["broker", "--kafka-listener-url", &url, "--kafka-advertised-listener-url", &url])
            .args(["--storage-engine", self.storage])
            .args(self.authentication.then_some("--authentication"))
            .current_dir(self.directory.path())
            // the test's own RUST_LOG would make tansu trace every request into its log
            .env_remove("RUST_LOG")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let address: SocketAddr = self.bootstrap.parse().expect("address");
        let started = Instant::now();
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "tansu did not listen on {address}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic with `partitions` partitions.
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", &self.bootstrap).create().expect("admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let results = admin.create_topics([&topic], &AdminOptions::new()).await.expect("create topics");
        for result in results {
            result.unwrap_or_else(|(topic, error)| panic!("create topic {topic}: {error}"));
        }
    }
}

impl Drop for Tansu {
    /// Stops the broker; when a test is failing, prints the end of the broker's own log first.
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.directory.path().join("tansu.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- the last lines of tansu's log ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
