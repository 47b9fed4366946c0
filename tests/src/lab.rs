//! A WireGuard lab for tests: `infra/lab/wg-lab.sh` under a unique id (a hub and N sites on
//! wireguard-go in network namespaces), torn down when the handle drops.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::repository_file;

/// How the lab is built.
#[derive(Debug, Clone, Copy, Default)]
pub struct LabOptions {
    /// Give every site a preshared key.
    pub preshared_keys: bool,
    /// Persistent keepalive of the sites, in seconds (0: off).
    pub keepalive: u16,
}

/// One peer line of `wg show <interface> dump`, as `wg` prints it (the preshared key column is
/// read and dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpPeer {
    pub public_key: String,
    /// `None` for `(none)`.
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    /// Seconds since the epoch; 0 = never.
    pub latest_handshake: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// `None` for `off`.
    pub persistent_keepalive: Option<u16>,
}

/// A running lab; `down` on drop.
#[derive(Debug)]
pub struct Lab {
    id: String,
    sites: u32,
    script: PathBuf,
}

fn unique_id() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // 4 base-36 digits from the process id and a counter: unique among concurrent test processes
    let mut value = (std::process::id().wrapping_mul(7) + NEXT.fetch_add(1, Ordering::Relaxed)) % 36u32.pow(4);
    let mut id = String::new();
    for _ in 0..4 {
        id.push(char::from_digit(value % 36, 36).unwrap_or('0'));
        value /= 36;
    }
    id
}

impl Lab {
    /// Builds a hub and `sites` sites and waits until every site has handshaken.
    pub fn up(sites: u32, options: LabOptions) -> Self {
        let lab = Self { id: unique_id(), sites, script: repository_file("infra/lab/wg-lab.sh") };
        let mut arguments = vec!["up".to_owned(), lab.id.clone(), sites.to_string()];
        if options.preshared_keys {
            arguments.push("--psk".into());
        }
        arguments.extend(["--keepalive".into(), options.keepalive.to_string()]);
        lab.run(&arguments);
        lab
    }

    fn run(&self, arguments: &[String]) -> String {
        let output = Command::new("bash").arg(&self.script).args(arguments).output().expect("run wg-lab.sh");
        assert!(output.status.success(), "wg-lab.sh {arguments:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8")
    }

    fn site_command(&self, command: &str, site: u32) -> String {
        self.run(&[command.to_owned(), self.id.clone(), site.to_string()])
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn sites(&self) -> u32 {
        self.sites
    }

    /// The hub's WireGuard interface (userspace, UAPI socket in `/var/run/wireguard`).
    pub fn hub_interface(&self) -> String {
        format!("ag{}-hub", self.id)
    }

    /// Every site's WireGuard interface.
    pub fn site_interface(&self, site: u32) -> String {
        format!("ag{}-s{site:02}", self.id)
    }

    /// A file of the lab's state directory (keys, pid files, logs).
    pub fn state_path(&self, name: &str) -> PathBuf {
        let root = std::env::var_os("ARGUS_LAB_STATE").map_or_else(|| PathBuf::from("/run/argus-lab"), PathBuf::from);
        root.join(&self.id).join(name)
    }

    /// A site's current public key (base64).
    pub fn site_public_key(&self, site: u32) -> String {
        std::fs::read_to_string(self.state_path(&format!("s{site:02}.pub"))).expect("site key").trim().to_owned()
    }

    /// Every private and preshared key of the lab (base64), for leak checks.
    pub fn secrets(&self) -> Vec<String> {
        let directory = self.state_path("");
        std::fs::read_dir(&directory)
            .expect("lab state")
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let extension = path.extension()?.to_str()?;
                matches!(extension, "key" | "psk").then(|| std::fs::read_to_string(&path).ok())?
            })
            .map(|key| key.trim().to_owned())
            .collect()
    }

    /// The hub's network namespace (its interface lives there; its probes leave from there).
    pub fn hub_namespace(&self) -> String {
        format!("argus-{}-hub", self.id)
    }

    /// Stops a site's wireguard-go (its address still answers).
    pub fn fail(&self, site: u32) {
        self.site_command("fail", site);
    }

    /// Cuts a site's link to the hub (nothing of it answers).
    pub fn fail_link(&self, site: u32) {
        self.run(&["fail".to_owned(), self.id.clone(), site.to_string(), "--link".to_owned()]);
    }

    /// Gives `site` the key pair of site `from`: one key, two machines.
    pub fn clone_key(&self, site: u32, from: u32) {
        self.run(&["clone".to_owned(), self.id.clone(), site.to_string(), from.to_string()]);
    }

    /// Moves a site's underlay to a new network once.
    pub fn roam(&self, site: u32) {
        self.site_command("roam", site);
    }

    pub fn restore(&self, site: u32) {
        self.site_command("restore", site);
    }

    /// Gives a site the private key in `key_file` (the hub learns the new public key); returns
    /// the new public key.
    pub fn rotate(&self, site: u32, key_file: &std::path::Path) -> String {
        let key_file = key_file.to_str().expect("utf-8 path").to_owned();
        self.run(&["rotate".to_owned(), self.id.clone(), site.to_string(), key_file]).trim().to_owned()
    }

    /// Floods the hub from `site` for `seconds`.
    pub fn burst(&self, site: u32, seconds: u32) {
        self.run(&["burst".to_owned(), self.id.clone(), site.to_string(), seconds.to_string()]);
    }

    /// Stops the background traffic and waits until the counters stand still: WireGuard answers
    /// the last data it received with a keepalive up to 10 s later (Keepalive-Timeout).
    pub fn quiet(&self) {
        self.run(&["quiet".to_owned(), self.id.clone()]);
        std::thread::sleep(std::time::Duration::from_secs(11));
    }

    /// Starts the background traffic again.
    pub fn traffic(&self) {
        self.run(&["traffic".to_owned(), self.id.clone()]);
    }

    /// The raw `wg show <interface> dump` text (it holds private and preshared keys: never print it).
    fn dump_text(interface: &str) -> String {
        let output = Command::new("wg").args(["show", interface, "dump"]).output().expect("run wg");
        assert!(
            output.status.success(),
            "wg show {interface} dump failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }

    /// The hub's peers as `wg show <hub> dump` reports them, sorted by public key.
    pub fn hub_dump(&self) -> Vec<DumpPeer> {
        let text = Self::dump_text(&self.hub_interface());
        let mut peers: Vec<DumpPeer> = text
            .lines()
            .skip(1)
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                assert_eq!(fields.len(), 8, "peer line of wg dump has 8 fields");
                let number = |index: usize| fields[index].parse::<u64>().expect("number");
                DumpPeer {
                    public_key: fields[0].to_owned(),
                    endpoint: (fields[2] != "(none)").then(|| fields[2].to_owned()),
                    allowed_ips: if fields[3] == "(none)" {
                        Vec::new()
                    } else {
                        fields[3].split(',').map(str::to_owned).collect()
                    },
                    latest_handshake: number(4),
                    rx_bytes: number(5),
                    tx_bytes: number(6),
                    persistent_keepalive: (fields[7] != "off").then(|| fields[7].parse().expect("keepalive")),
                }
            })
            .collect();
        peers.sort_by(|left, right| left.public_key.cmp(&right.public_key));
        peers
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(&self.script).args(["down", &self.id]).output();
    }
}
