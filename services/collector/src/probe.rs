//! Path probes: ICMP echoes from a gateway's own network to the last endpoint of each quiet peer,
//! so the fold can tell "the site's host answers, its tunnel does not" from "nothing answers".
//!
//! The scan only plans (which peers are due, a pure pass over the snapshot); the echoes run in a
//! task of their own beside it. Probes never target anything but a peer's own last endpoint.

use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use argus_core::{InterfaceName, PublicKey, UnixMillis};
use surge_ping::{Client, Config, ICMP, IcmpPacket, PingIdentifier, PingSequence, SurgeError};

use crate::wireguard::InterfaceSnapshot;

/// When and how hard quiet peers are probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// `false`: no interface is probed.
    pub enabled: bool,
    /// A peer is probed once its handshake is at least this old: the fold's fresh bound, so the
    /// evidence is on the log before the peer turns stale.
    pub after_handshake_age: Duration,
    /// A peer that stays quiet is probed again this often.
    pub repeat_every: Duration,
    /// Echo requests per probe.
    pub echoes: u8,
    /// How long each echo waits for its reply.
    pub echo_timeout: Duration,
    /// Most peers of one interface probed per scan: a gateway whose every peer went quiet at once
    /// is probed a few at a time, never flooded.
    pub max_per_scan: usize,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            after_handshake_age: Duration::from_secs(150),
            repeat_every: Duration::from_secs(60),
            echoes: 3,
            echo_timeout: Duration::from_secs(1),
            max_per_scan: 32,
        }
    }
}

/// One peer to probe, as planned from a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub public_key: PublicKey,
    /// The IP of the peer's endpoint in that scan.
    pub address: IpAddr,
}

/// Remembers when each peer was last probed, to pick the peers due at each scan.
#[derive(Debug, Default)]
pub struct ProbePlanner {
    last_probed: HashMap<InterfaceName, HashMap<PublicKey, UnixMillis>>,
}

impl ProbePlanner {
    /// Appends to `due` the quiet peers of `interface` to probe now (at most `max_per_scan`; those
    /// not yet probed in their silence first, then the longest unprobed).
    pub fn plan(
        &mut self, interface: &InterfaceSnapshot, now: UnixMillis, settings: &ProbeSettings, due: &mut Vec<ProbeTarget>,
    ) {
        let quiet_after = i64::try_from(settings.after_handshake_age.as_millis()).unwrap_or(i64::MAX);
        let repeat = i64::try_from(settings.repeat_every.as_millis()).unwrap_or(i64::MAX);
        let probed = self.last_probed.entry(interface.name.clone()).or_default();
        let mut candidates: Vec<(bool, UnixMillis, ProbeTarget)> = Vec::new();
        let mut quiet: Vec<PublicKey> = Vec::new();
        for peer in &interface.peers {
            let (Some(handshake), Some(endpoint)) = (peer.latest_handshake, peer.endpoint) else { continue };
            if now.saturating_sub(handshake) < quiet_after {
                continue;
            }
            quiet.push(peer.public_key);
            // a probe from before the latest handshake belongs to an earlier silence
            let last = probed.get(&peer.public_key).copied().filter(|&last| last > handshake);
            if last.is_none_or(|last| now.saturating_sub(last) >= repeat) {
                let target = ProbeTarget { public_key: peer.public_key, address: endpoint.ip() };
                candidates.push((last.is_some(), last.unwrap_or(i64::MIN), target));
            }
        }
        // peers that handshook again (or left) are forgotten; the snapshot is sorted by key
        probed.retain(|key, _| quiet.binary_search(key).is_ok());
        candidates.sort_by_key(|(probed_before, last, _)| (*probed_before, *last));
        for (_, _, target) in candidates.into_iter().take(settings.max_per_scan) {
            probed.insert(target.public_key, now);
            due.push(target);
        }
    }
}

/// What the echoes to one address found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeOutcome {
    pub sent: u8,
    pub received: u8,
    /// Mean round-trip time of the replies.
    pub rtt_ms: Option<f64>,
}

/// Why no probe could be made (no evidence either way: nothing is published).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("network namespace {path}: {source}")]
    Namespace { path: String, source: std::io::Error },
    #[error("no ICMP socket in {namespace}: {reason}")]
    Socket { namespace: String, reason: String },
}

/// Where an interface's probes leave from: a network namespace (a name under `/run/netns`, or a
/// path such as `/proc/PID/ns/net` for a gateway in a container), or this process's own.
pub fn namespace_path(setting: &str) -> PathBuf {
    if setting.contains('/') { PathBuf::from(setting) } else { Path::new("/run/netns").join(setting) }
}

/// One ICMP socket's place: its network namespace (`None`: this process's own) and whether IPv6.
type SocketSlot = (Option<PathBuf>, bool);

/// Sends echoes through one ICMP socket per network namespace and address family, opened on
/// first use (a datagram socket where the kernel allows it, raw otherwise).
#[derive(Clone)]
pub struct Prober {
    settings: ProbeSettings,
    clients: Arc<Mutex<HashMap<SocketSlot, Client>>>,
    /// Echo identifiers (raw sockets match replies by them; the kernel sets its own on datagram ones).
    identifiers: Arc<AtomicU16>,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Prober").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Prober {
    pub fn new(settings: ProbeSettings) -> Self {
        let seed = (std::process::id() as u16).wrapping_mul(31);
        Self { settings, clients: Arc::default(), identifiers: Arc::new(AtomicU16::new(seed)) }
    }

    fn next_identifier(&self) -> u16 {
        self.identifiers.fetch_add(1, Ordering::Relaxed)
    }

    /// Echoes `address` from `namespace` (`None`: this process's own) `echoes` times, one after
    /// another. An echo whose reply does not come in time, or that cannot leave (no route), is lost.
    pub async fn probe(&self, address: IpAddr, namespace: Option<&Path>) -> Result<ProbeOutcome, ProbeError> {
        let client = self.client(namespace, address.is_ipv6()).await?;
        let mut pinger = client.pinger(address, PingIdentifier(self.next_identifier())).await;
        pinger.timeout(self.settings.echo_timeout);
        let payload = [0u8; 16];
        let mut received = 0u8;
        let mut total = Duration::ZERO;
        for sequence in 0..self.settings.echoes {
            let started = Instant::now();
            match pinger.ping(PingSequence(u16::from(sequence)), &payload).await {
                Ok((packet, rtt)) if is_echo_reply(&packet) => {
                    received += 1;
                    total += rtt;
                }
                Err(SurgeError::Timeout { .. }) => {}
                outcome => {
                    // no route, or a router's "unreachable": lost like an echo that timed out, paced alike
                    if let Err(error) = outcome {
                        tracing::debug!(%address, %error, "echo not sent");
                    }
                    tokio::time::sleep(self.settings.echo_timeout.saturating_sub(started.elapsed())).await;
                }
            }
        }
        let rtt_ms = (received > 0).then(|| total.as_secs_f64() * 1000.0 / f64::from(received));
        Ok(ProbeOutcome { sent: self.settings.echoes, received, rtt_ms })
    }

    async fn client(&self, namespace: Option<&Path>, ipv6: bool) -> Result<Client, ProbeError> {
        let slot = (namespace.map(Path::to_path_buf), ipv6);
        if let Some(client) = self.clients.lock().unwrap_or_else(PoisonError::into_inner).get(&slot) {
            return Ok(client.clone());
        }
        let config = Config::builder().kind(if ipv6 { ICMP::V6 } else { ICMP::V4 }).build();
        let client = match namespace {
            None => Client::new(&config).map_err(|error| socket_error(None, &error))?,
            Some(path) => open_in_namespace(path, config).await?,
        };
        self.clients.lock().unwrap_or_else(PoisonError::into_inner).insert(slot, client.clone());
        Ok(client)
    }
}

/// Only an echo reply is an answer from the endpoint (a raw socket also hands over a router's
/// "destination unreachable", quoting the echo).
fn is_echo_reply(packet: &IcmpPacket) -> bool {
    const ECHO_REPLY_V4: u8 = 0;
    const ECHO_REPLY_V6: u8 = 129;
    match packet {
        IcmpPacket::V4(packet) => packet.get_icmp_type().0 == ECHO_REPLY_V4,
        IcmpPacket::V6(packet) => packet.get_icmpv6_type().0 == ECHO_REPLY_V6,
    }
}

fn socket_error(namespace: Option<&Path>, error: &std::io::Error) -> ProbeError {
    let namespace =
        namespace.map_or_else(|| "this process's network namespace".to_owned(), |path| path.display().to_string());
    ProbeError::Socket { namespace, reason: error.to_string() }
}

/// Opens the ICMP socket on a thread that has entered `path`'s network namespace: a socket keeps
/// the namespace it was made in, while the runtime's threads stay in their own.
/// (A thread of its own, never one of the runtime's blocking pool: those are reused, and one left
/// in another namespace would read the wrong interfaces.)
async fn open_in_namespace(path: &Path, config: Config) -> Result<Client, ProbeError> {
    let runtime = tokio::runtime::Handle::current();
    let failed = ProbeError::Socket { namespace: path.display().to_string(), reason: "socket thread failed".into() };
    let path = path.to_path_buf();
    let (opened, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let open = || {
            let namespace = File::open(&path)
                .map_err(|source| ProbeError::Namespace { path: path.display().to_string(), source })?;
            nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|errno| {
                ProbeError::Namespace { path: path.display().to_string(), source: std::io::Error::from(errno) }
            })?;
            let _runtime = runtime.enter();
            Client::new(&config).map_err(|error| socket_error(Some(&path), &error))
        };
        let _ = opened.send(open());
    });
    result.await.unwrap_or(Err(failed))
}

#[cfg(test)]
mod tests {
    use argus_core::PeerSource;

    use super::*;
    use crate::wireguard::PeerSnapshot;

    const NOW: UnixMillis = 1_780_272_000_000;

    fn peer(byte: u8, handshake_age_s: Option<i64>) -> PeerSnapshot {
        PeerSnapshot {
            public_key: PublicKey::from_bytes([byte; 32]),
            endpoint: Some(format!("198.18.{byte}.2:51820").parse().expect("endpoint")),
            allowed_ips: Vec::new(),
            latest_handshake: handshake_age_s.map(|age| NOW - age * 1000),
            rx_bytes: 0,
            tx_bytes: 0,
            persistent_keepalive: None,
        }
    }

    fn interface(peers: Vec<PeerSnapshot>) -> InterfaceSnapshot {
        InterfaceSnapshot {
            name: "wg-hub".parse().expect("name"),
            kind: PeerSource::Userspace,
            public_key: None,
            listen_port: None,
            peers,
        }
    }

    fn plan(
        planner: &mut ProbePlanner, interface: &InterfaceSnapshot, now: UnixMillis, settings: &ProbeSettings,
    ) -> Vec<u8> {
        let mut due = Vec::new();
        planner.plan(interface, now, settings, &mut due);
        due.iter().map(|target| target.public_key.as_bytes()[0]).collect()
    }

    #[test]
    fn only_quiet_peers_with_an_endpoint_are_probed_at_their_own_endpoint() {
        let settings = ProbeSettings::default();
        let mut no_endpoint = peer(5, Some(400));
        no_endpoint.endpoint = None;
        let scan =
            interface(vec![peer(1, Some(20)), peer(2, Some(150)), peer(3, None), peer(4, Some(900)), no_endpoint]);
        let mut planner = ProbePlanner::default();
        let mut due = Vec::new();
        planner.plan(&scan, NOW, &settings, &mut due);
        let targets: Vec<(u8, String)> =
            due.iter().map(|target| (target.public_key.as_bytes()[0], target.address.to_string())).collect();
        assert_eq!(targets, [(2, "198.18.2.2".to_owned()), (4, "198.18.4.2".to_owned())]);
    }

    #[test]
    fn a_quiet_peer_is_probed_again_only_after_the_repeat_interval_and_anew_after_a_handshake() {
        let settings = ProbeSettings::default();
        let mut planner = ProbePlanner::default();
        let quiet = interface(vec![peer(1, Some(200))]);
        assert_eq!(plan(&mut planner, &quiet, NOW, &settings), [1]);
        assert!(plan(&mut planner, &quiet, NOW + 30_000, &settings).is_empty());
        assert_eq!(plan(&mut planner, &quiet, NOW + 60_000, &settings), [1]);
        // it handshakes, then goes quiet again: a new silence, probed at once
        let mut again = peer(1, None);
        again.latest_handshake = Some(NOW + 65_000);
        let later = NOW + 65_000 + 150_000;
        assert_eq!(plan(&mut planner, &interface(vec![again]), later, &settings), [1]);
    }

    #[test]
    fn at_most_max_per_scan_are_probed_newly_quiet_ones_first() {
        let settings = ProbeSettings { max_per_scan: 2, ..ProbeSettings::default() };
        let mut planner = ProbePlanner::default();
        let first = interface((1..=3).map(|n| peer(n, Some(300))).collect());
        assert_eq!(plan(&mut planner, &first, NOW, &settings), [1, 2]);
        // a minute on, peer 4 has just gone quiet: it and the never-probed 3 go before 1 and 2
        let second = interface((1..=4).map(|n| peer(n, Some(if n == 4 { 150 } else { 360 }))).collect());
        assert_eq!(plan(&mut planner, &second, NOW + 60_000, &settings), [3, 4]);
        assert_eq!(plan(&mut planner, &second, NOW + 70_000, &settings), [1, 2]);
    }

    #[test]
    fn namespaces_are_names_under_run_netns_or_paths() {
        assert_eq!(namespace_path("argus-demo-hub"), Path::new("/run/netns/argus-demo-hub"));
        assert_eq!(namespace_path("/proc/4242/ns/net"), Path::new("/proc/4242/ns/net"));
    }
}
