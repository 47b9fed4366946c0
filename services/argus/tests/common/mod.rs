//! The harness of the end-to-end tests: `argus` subcommands as child processes with their own
//! configuration files, and GraphQL over HTTP as an operator's client sends it.

#![allow(dead_code)] // each test binary uses its part

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use argus_testkit::lab::{DumpPeer, Lab};
use serde_json::{Value, json};

pub const SECRET: &str = "e2e-secret-of-at-least-thirty-two-bytes";

/// `argus run` as a child process on a free loopback port; killed on drop.
pub struct Argus {
    child: Option<Child>,
    pub config: std::path::PathBuf,
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
}

pub use argus_testkit::free_port;

pub fn argus_command(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_argus"));
    command.arg("--config").arg(config);
    command
}

impl Argus {
    /// Writes a configuration for `lab`'s hub into `directory` (with `rules` appended to `[rules]`)
    /// and starts `argus run`.
    pub async fn start(directory: &Path, lab: &Lab, rules: &str) -> Self {
        Self::start_with(directory, lab, "", rules).await
    }

    /// The same, with `collector` appended to `[collector]`.
    pub async fn start_with(directory: &Path, lab: &Lab, collector: &str, rules: &str) -> Self {
        Self::start_on(directory, lab, "", collector, rules).await
    }

    /// The same, with `log` (top-level keys and sections: where the log lives) first.
    pub async fn start_on(directory: &Path, lab: &Lab, log: &str, collector: &str, rules: &str) -> Self {
        Self::start_config(
            directory,
            &format!(
                "{log}\n[collector]\norg = \"e2e\"\nhost = \"hub-01\"\nscan_interval_ms = 1000\ninterfaces = [\"{hub}\"]\n{collector}\n\
                 [collector.overrides.{hub}]\nnetns = \"{namespace}\"\n[rules]\n{rules}\n",
                hub = lab.hub_interface(),
                namespace = lab.hub_namespace(),
            ),
        )
        .await
    }

    /// `argus run` with `body` after its data directory and listener (top-level keys first, then
    /// sections), and its secret.
    pub async fn start_config(directory: &Path, body: &str) -> Self {
        let config = directory.join("argus.toml");
        let port = free_port();
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{data}\"\nlisten = \"127.0.0.1:{port}\"\n{body}\n[auth]\nhs256_secret = \"{SECRET}\"\n",
                data = directory.join("data").display(),
            ),
        )
        .expect("write config");
        let mut argus = Self {
            child: None,
            config,
            url: format!("http://127.0.0.1:{port}"),
            token: String::new(),
            http: reqwest::Client::new(),
        };
        argus.token = argus.token("TOP_SECRET", "operator");
        argus.restart().await;
        argus
    }

    /// Starts `argus run` (again) and waits until it answers.
    pub async fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.config.with_file_name("argus.log"))
            .expect("log file");
        let child = argus_command(&self.config)
            .arg("run")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start argus run");
        self.child = Some(child);
        let started = Instant::now();
        while self.http.get(format!("{}/healthz", self.url)).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "argus run did not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The running `argus run`'s process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait for the graceful exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
            assert!(status.success());
            let exit = child.wait().expect("wait");
            assert!(exit.success(), "argus run exits cleanly on SIGTERM: {exit}");
        }
    }

    /// A value of `/metrics`: the first line starting with `series` (name and labels).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.http.get(format!("{}/metrics", self.url)).send().await.ok()?.text().await.ok()?;
        text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let body = self.graphql_as(&self.token, query, variables).await;
        assert!(body.get("errors").is_none(), "{query}: {body}");
        body["data"].clone()
    }

    /// The whole answer (data and errors) to `query` sent with `token`.
    pub async fn graphql_as(&self, token: &str, query: &str, variables: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/graphql", self.url))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request");
        response.json().await.expect("json")
    }

    /// A token of the e2e organisation at `clearance` with `role`.
    pub fn token(&self, clearance: &str, role: &str) -> String {
        self.token_of("e2e", clearance, role)
    }

    /// A token of organisation `org` at `clearance` with `role`.
    pub fn token_of(&self, org: &str, clearance: &str, role: &str) -> String {
        let output = argus_command(&self.config)
            .args(["token", "--org", org, "--clearance", clearance, "--role", role])
            .output()
            .expect("argus token");
        assert!(output.status.success(), "argus token: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
    }

    pub async fn peer(&self, public_key: &str) -> Value {
        let data = self
            .graphql(
                "query($key: String!) { wireguardPeer(publicKey: $key) { status latestHandshake transferRx transferTx } }",
                json!({ "key": public_key }),
            )
            .await;
        data["wireguardPeer"][0].clone()
    }

    pub async fn alerts(&self, kind: &str) -> Vec<Value> {
        self.alerts_where(json!({ "kind": kind })).await
    }

    /// The alerts `filter` (a `WireguardAlertFilter`) lists.
    pub async fn alerts_where(&self, filter: Value) -> Vec<Value> {
        let data = self
            .graphql(
                "query($filter: WireguardAlertFilter) { wireguardAlerts(filter: $filter, first: 100) {
                    edges { node { alertId state severity publicKey probableCause summary raisedAt revisedAt
                        incidentId silenced evidence { name value } } } } }",
                json!({ "filter": filter }),
            )
            .await;
        data["wireguardAlerts"]["edges"].as_array().expect("edges").iter().map(|edge| edge["node"].clone()).collect()
    }

    /// Waits up to 20 s until alerts of `kind` exist (`what` names the wait), and returns them.
    pub async fn raised(&self, what: &str, kind: &str) -> Vec<Value> {
        self.eventually(what, Duration::from_secs(20), async |argus| {
            let alerts = argus.alerts(kind).await;
            (!alerts.is_empty()).then_some(alerts)
        })
        .await
    }

    /// Polls `probe` until it returns `Some`, for at most `timeout`.
    pub async fn eventually<T>(
        &self, what: &str, timeout: Duration, mut probe: impl AsyncFnMut(&Self) -> Option<T>,
    ) -> T {
        let started = Instant::now();
        loop {
            if let Some(found) = probe(self).await {
                return found;
            }
            assert!(started.elapsed() < timeout, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// `argus collector` as a child process: its config, its `/metrics` port; killed on drop.
pub struct CollectorProcess {
    child: Child,
    pub metrics_url: String,
}

impl CollectorProcess {
    /// Starts `argus collector` with `body` after its metrics listener.
    pub fn start(directory: &Path, name: &str, body: &str) -> Self {
        let config = directory.join(format!("{name}.toml"));
        let port = free_port();
        std::fs::write(&config, format!("metrics_listen = \"127.0.0.1:{port}\"\n{body}")).expect("write config");
        let log = std::fs::File::create(directory.join(format!("{name}.log"))).expect("log file");
        let child = argus_command(&config)
            .arg("collector")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start argus collector");
        Self { child, metrics_url: format!("http://127.0.0.1:{port}/metrics") }
    }

    /// The value of an unlabelled metric on `/metrics`, once it is served.
    pub async fn metric(&self, http: &reqwest::Client, name: &str) -> Option<f64> {
        let text = http.get(&self.metrics_url).send().await.ok()?.text().await.ok()?;
        text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Whether the kernel may back this process's memory with transparent huge pages
    /// (`THP_enabled` of `/proc/PID/status`).
    pub fn huge_pages_allowed(&self) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("process status");
        let field = status.lines().find_map(|line| line.strip_prefix("THP_enabled:")).expect("THP_enabled");
        field.trim() != "0"
    }
}

impl Drop for CollectorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Argus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A peer's (rx, tx) counters in a `wg show` dump.
pub fn counters(dump: &[DumpPeer], key: &str) -> (u64, u64) {
    let peer = dump.iter().find(|peer| peer.public_key == key).expect("peer in dump");
    (peer.rx_bytes, peer.tx_bytes)
}
