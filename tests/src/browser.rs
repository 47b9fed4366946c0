//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromedriver` on a loopback
//! port), for the NOC screen's tests: stopped with its handle; a failing scenario leaves a
//! screenshot behind.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use futures_util::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// Chromium's binary: Debian's `/usr/bin/chromium` is a wrapper script, the driver needs the program.
fn chromium_binary() -> &'static str {
    ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("chromium is installed (infra/scripts/install-lab-deps.sh)")
}

/// One browser; the driver and every Chromium process it started are killed on drop.
pub struct Browser {
    driver: Child,
    pub client: Client,
    downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser").field("driver", &self.driver.id()).finish_non_exhaustive()
    }
}

impl Browser {
    /// A new headless Chromium with a window of `width` x `height` and its own profile.
    pub async fn start(width: u32, height: u32) -> Self {
        let port = crate::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver (infra/scripts/install-lab-deps.sh installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile directory");
        let downloads = tempfile::tempdir().expect("downloads directory");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium_binary(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-extensions",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.path().display().to_string(),
                    "download.prompt_for_download": false,
                },
            }
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("an object") };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session in chromium");
        Self { driver, client, downloads, _profile: profile }
    }

    /// Where downloads land.
    pub fn downloads(&self) -> &Path {
        self.downloads.path()
    }

    /// Runs `scenario` with this browser's client; if it fails, the page as it was is saved as
    /// `<artefacts>/<name>-failure.png` (the path is printed) before the failure goes on.
    pub async fn run<F, Fut>(&self, name: &str, scenario: F)
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let outcome = std::panic::AssertUnwindSafe(scenario(self.client.clone())).catch_unwind().await;
        if let Err(panic) = outcome {
            let path = self.screenshot(&format!("{name}-failure")).await;
            eprintln!("screenshot of the failing page: {}", path.display());
            std::panic::resume_unwind(panic);
        }
        // the driver quits Chromium and reaps its processes; the drop only ends the driver then
        let _ = self.client.clone().close().await;
    }

    /// The page as it is now, saved as `<artefacts>/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        screenshot(&self.client, name).await
    }
}

/// The page `client` shows, saved as `<artefacts>/<name>.png`.
pub async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let directory = artefacts();
    std::fs::create_dir_all(&directory).expect("artefacts directory");
    let path = directory.join(format!("{name}.png"));
    match client.screenshot().await {
        Ok(png) => std::fs::write(&path, png).expect("write screenshot"),
        Err(error) => eprintln!("no screenshot: {error}"),
    }
    path
}

/// Where browser tests keep screenshots: `SCREEN_ARTEFACTS` (not `ARGUS_*`: argus reads those as
/// configuration), else `screen-artefacts` beside the build.
pub fn artefacts() -> PathBuf {
    std::env::var_os("SCREEN_ARTEFACTS").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        target.join("screen-artefacts")
    })
}

impl Drop for Browser {
    fn drop(&mut self) {
        // the driver leads its own process group, which holds the Chromium it started
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-s", "KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}
