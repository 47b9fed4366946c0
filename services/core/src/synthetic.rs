//! Deterministic synthetic fleets (gateways, peers, traffic, handshakes) for benchmarks, load and tests.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::alert::{Alert, AlertId, AlertKind, AlertState, Severity};
use crate::event::{Event, EventHeader, Heartbeat, PeerObservation, PeerSource, UnixMillis};
use crate::ids::{Clearance, CollectorId, HostId, InterfaceName, OrgId};
use crate::key::PublicKey;
use crate::net::{Cidr, Endpoint};

/// Shape of a synthetic fleet.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub org: OrgId,
    pub hosts: u32,
    pub peers_per_host: u32,
    pub scan_interval_ms: u32,
    /// Event time of the first scan.
    pub start: UnixMillis,
}

/// One synthetic gateway with one interface and its collector's sequence.
#[derive(Debug, Clone)]
struct SyntheticGateway {
    host: HostId,
    interface: InterfaceName,
    collector: CollectorId,
    seq: u64,
    /// Cumulative rx counter per peer (tx is derived from it).
    rx_counters: Vec<u64>,
}

/// Generates scans of a fleet where every peer is alive, re-handshakes every two minutes and
/// moves a few kilobytes per scan.
#[derive(Debug, Clone)]
pub struct Fleet {
    spec: FleetSpec,
    gateways: Vec<SyntheticGateway>,
    scans: i64,
}

impl Fleet {
    pub fn new(spec: FleetSpec) -> Self {
        let gateways = (0..spec.hosts)
            .map(|index| SyntheticGateway {
                host: format!("gw-{index:05}").parse().expect("synthetic host id is valid"),
                interface: "wg0".parse().expect("synthetic interface name is valid"),
                collector: format!("collector-{index:05}").parse().expect("synthetic collector id is valid"),
                seq: 0,
                rx_counters: vec![0; spec.peers_per_host as usize],
            })
            .collect();
        Self { spec, gateways, scans: 0 }
    }

    pub fn peer_count(&self) -> usize {
        self.gateways.len() * self.spec.peers_per_host as usize
    }

    /// The public key of peer `peer` on gateway `host`.
    pub fn peer_key(host: u32, peer: u32) -> PublicKey {
        let mut bytes = [0x5a; 32];
        bytes[..4].copy_from_slice(&host.to_le_bytes());
        bytes[4..8].copy_from_slice(&peer.to_le_bytes());
        PublicKey::from_bytes(bytes)
    }

    /// Appends the next scan of every gateway: one observation per peer, then a heartbeat.
    pub fn next_scan(&mut self, events: &mut Vec<Event>) {
        let at = self.spec.start + self.scans * i64::from(self.spec.scan_interval_ms);
        let scan = self.scans as u64;
        self.scans += 1;
        for (host_index, gateway) in (0u32..).zip(&mut self.gateways) {
            let header = |gateway: &mut SyntheticGateway| {
                gateway.seq += 1;
                EventHeader {
                    org_id: self.spec.org.clone(),
                    host: gateway.host.clone(),
                    interface: gateway.interface.clone(),
                    observed_at: at,
                    collector_id: gateway.collector.clone(),
                    seq: gateway.seq,
                }
            };
            for peer_index in 0..self.spec.peers_per_host {
                let moved = 1_000 + (u64::from(peer_index) * 7_919 + scan * 104_729) % 50_000;
                let rx = &mut gateway.rx_counters[peer_index as usize];
                *rx += moved;
                let rx_bytes = *rx;
                let address =
                    u32::from(Ipv4Addr::new(10, 0, 0, 0)) + host_index * self.spec.peers_per_host + peer_index + 1;
                let offset = i64::from(peer_index % 120) * 1_000;
                events.push(Event::PeerObservation(PeerObservation {
                    header: header(gateway),
                    public_key: Self::peer_key(host_index, peer_index),
                    endpoint: Some(Endpoint::from(SocketAddr::new(
                        IpAddr::V4(Ipv4Addr::new(198, 18, (host_index % 256) as u8, (peer_index % 256) as u8)),
                        51_820,
                    ))),
                    allowed_ips: vec![Cidr::containing(IpAddr::V4(Ipv4Addr::from(address)), 32)],
                    latest_handshake: Some(at - (at + offset).rem_euclid(120_000)),
                    rx_bytes,
                    tx_bytes: rx_bytes / 3,
                    persistent_keepalive: Some(25),
                    source: PeerSource::Userspace,
                    clearance: Clearance::Restricted,
                    display_name: None,
                    owner: None,
                    tags: Vec::new(),
                    writer_clearance: None,
                }));
            }
            events.push(Event::Heartbeat(Heartbeat {
                header: header(gateway),
                interface_public_key: Some(Self::peer_key(u32::MAX, host_index)),
                listen_port: Some(51_820),
                peer_count: self.spec.peers_per_host,
                scan_interval_ms: self.spec.scan_interval_ms,
                clearance: Clearance::Restricted,
            }));
        }
    }
}

/// A heartbeat of interface `wg0` of `host`, from `collector` with `seq`: the smallest valid event,
/// for tests of who may publish what.
pub fn heartbeat(collector: &str, org: &str, host: &str, seq: u64) -> Event {
    Event::Heartbeat(Heartbeat {
        header: EventHeader {
            org_id: org.parse().expect("synthetic org id is valid"),
            host: host.parse().expect("synthetic host id is valid"),
            interface: "wg0".parse().expect("synthetic interface name is valid"),
            observed_at: 1_796_083_200_000,
            collector_id: collector.parse().expect("synthetic collector id is valid"),
            seq,
        },
        interface_public_key: None,
        listen_port: Some(51820),
        peer_count: 0,
        scan_interval_ms: 10_000,
        clearance: Clearance::Unclassified,
    })
}

/// Stale-peer alert `n` of `org` at `clearance`, raised a minute before `now` (or resolved at
/// `now`): transitions for tests and loads of what consumes the alert topic.
pub fn stale_alert(n: u32, org: &str, clearance: Clearance, state: AlertState, now: UnixMillis) -> Alert {
    let mut id = [0; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    Alert {
        alert_id: AlertId::from_bytes(id),
        kind: AlertKind::PeerStale,
        severity: Severity::Critical,
        state,
        org_id: org.parse().expect("synthetic org id is valid"),
        host: format!("hub-{}", n % 3).parse().expect("synthetic host id is valid"),
        interface: "wg0".parse().expect("synthetic interface name is valid"),
        public_key: None,
        clearance,
        probable_cause: None,
        evidence: std::collections::BTreeMap::from([("handshake_age_s".into(), 200.0)]),
        summary: format!("no handshake: FOB {n}"),
        raised_at: now - 60_000,
        resolved_at: (state == AlertState::Resolved).then_some(now),
        revised_at: None,
        silenced: false,
        incident_id: None,
    }
}
