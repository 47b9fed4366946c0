//! A real Prometheus Alertmanager for sink tests (Debian's `prometheus-alertmanager`) on a free
//! loopback port, clustering off, its state in a temporary directory, routing every alert to one
//! webhook (with resolutions) at once. Killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Alertmanager.
#[derive(Debug)]
pub struct Alertmanager {
    child: Child,
    _directory: tempfile::TempDir,
    url: String,
    http: reqwest::Client,
}

impl Alertmanager {
    /// Starts one that notifies `webhook_url` of every alert group, firing and resolved, within a
    /// second, one group per `alert_id`; returns once it is ready.
    pub async fn start(webhook_url: &str) -> Self {
        let directory = tempfile::tempdir().expect("tempdir");
        let config = directory.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: hook\n  group_by: [alert_id]\n  group_wait: 1s\n  group_interval: 1s\n  \
                 repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: \"{webhook_url}\"\n        \
                 send_resolved: true\n"
            ),
        )
        .expect("config");
        let port = crate::free_port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", directory.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(directory.path().join("alertmanager.log")).expect("log")))
            .spawn()
            .expect("prometheus-alertmanager (make tools installs it)");
        let alertmanager = Self {
            child,
            _directory: directory,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let started = Instant::now();
        loop {
            let ready = alertmanager.http.get(format!("{}/-/ready", alertmanager.url)).send().await;
            if ready.is_ok_and(|response| response.status().is_success()) {
                return alertmanager;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "alertmanager did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:<port>`, the sink's `url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The alerts it holds as active (`GET /api/v2/alerts`: resolved ones are not listed).
    pub async fn active_alerts(&self) -> Vec<serde_json::Value> {
        let response = self.http.get(format!("{}/api/v2/alerts", self.url)).send().await.expect("alertmanager answers");
        response.json().await.expect("alerts")
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
