//! Builders for fold tests: one gateway interface whose collector numbers its events.
#![allow(dead_code)]

use argus_core::fold::Effect;
use argus_core::{
    Alert, AlertKind, AlertState, Clearance, Event, EventHeader, FoldState, Heartbeat, ManifestEntry, PathProbe,
    PeerObservation, PeerRecord, PeerRemoved, PeerSource, PublicKey, RotationManifestSet, SilenceId, SilenceSet,
    UnixMillis,
};

pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;
/// 2026-06-01T00:00:00Z, an arbitrary start of event time.
pub const T0: UnixMillis = 1_780_272_000_000;

pub fn key(n: u8) -> PublicKey {
    PublicKey::from_bytes([n; 32])
}

/// One gateway interface and its collector.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub org: String,
    pub host: String,
    pub interface: String,
    pub collector: String,
    pub seq: u64,
}

impl Gateway {
    pub fn new(host: &str) -> Self {
        Self {
            org: "acme".into(),
            host: host.into(),
            interface: "wg0".into(),
            collector: format!("collector-{host}"),
            seq: 0,
        }
    }

    pub fn header(&mut self, at: UnixMillis) -> EventHeader {
        self.seq += 1;
        EventHeader {
            org_id: self.org.parse().expect("org"),
            host: self.host.parse().expect("host"),
            interface: self.interface.parse().expect("interface"),
            observed_at: at,
            collector_id: self.collector.parse().expect("collector"),
            seq: self.seq,
        }
    }

    /// An observation of peer `n` with its usual endpoint and allowed IPs.
    pub fn observe(&mut self, at: UnixMillis, n: u8, handshake: Option<UnixMillis>, rx: u64, tx: u64) -> Event {
        self.observe_at_endpoint(at, n, handshake, rx, tx, &format!("198.51.100.{n}:51820"))
    }

    pub fn observe_at_endpoint(
        &mut self, at: UnixMillis, n: u8, handshake: Option<UnixMillis>, rx: u64, tx: u64, endpoint: &str,
    ) -> Event {
        Event::PeerObservation(PeerObservation {
            header: self.header(at),
            public_key: key(n),
            endpoint: Some(endpoint.parse().expect("endpoint")),
            allowed_ips: vec![format!("10.0.0.{n}/32").parse().expect("cidr")],
            latest_handshake: handshake,
            rx_bytes: rx,
            tx_bytes: tx,
            persistent_keepalive: Some(25),
            source: PeerSource::Userspace,
            clearance: Clearance::Restricted,
            display_name: Some(format!("site-{n}")),
            owner: None,
            tags: vec![],
            writer_clearance: None,
        })
    }

    pub fn heartbeat(&mut self, at: UnixMillis, scan_interval_ms: u32) -> Event {
        Event::Heartbeat(Heartbeat {
            header: self.header(at),
            interface_public_key: Some(key(200)),
            listen_port: Some(51820),
            peer_count: 0,
            scan_interval_ms,
            clearance: Clearance::Restricted,
        })
    }

    pub fn remove(&mut self, at: UnixMillis, n: u8) -> Event {
        Event::PeerRemoved(PeerRemoved { header: self.header(at), public_key: key(n) })
    }

    /// The collector pinged `target` for peer `n`: three echoes, `received` answered.
    pub fn probe(&mut self, at: UnixMillis, n: u8, target: &str, received: u8) -> Event {
        Event::PathProbe(PathProbe {
            header: self.header(at),
            public_key: key(n),
            target: target.parse().expect("address"),
            sent: 3,
            received,
            rtt_ms: (received > 0).then_some(0.5),
        })
    }

    /// An operator at `clearance` silences peer `n` (`None`: the interface) over `range`.
    pub fn silence(
        &mut self, at: UnixMillis, n: Option<u8>, range: std::ops::Range<UnixMillis>, clearance: Clearance,
    ) -> Event {
        let header = self.header(at);
        Event::SilenceSet(SilenceSet {
            silence_id: SilenceId::derive(&header),
            header,
            whole_host: false,
            public_key: n.map(key),
            starts_at: range.start,
            ends_at: range.end,
            reason: "maintenance".into(),
            author: "operator@noc".into(),
            clearance,
        })
    }

    pub fn manifest(&mut self, at: UnixMillis, entries: Vec<ManifestEntry>) -> Event {
        Event::RotationManifestSet(RotationManifestSet { header: self.header(at), entries, writer_clearance: None })
    }

    pub fn peer<'a>(&self, state: &'a FoldState, n: u8) -> &'a PeerRecord {
        state
            .peer(
                &self.org.parse().expect("org"),
                &self.host.parse().expect("host"),
                &self.interface.parse().expect("interface"),
                &key(n),
            )
            .expect("peer in state")
    }
}

/// Applies events in order (processing time = event time) and returns every effect.
pub fn apply_all(state: &mut FoldState, events: &[Event]) -> Vec<Effect> {
    let mut effects = Vec::new();
    for event in events {
        state.apply(event, event.header().observed_at, &mut effects).expect("the fold accepts it");
    }
    effects
}

pub fn apply_one(state: &mut FoldState, event: &Event) -> Vec<Effect> {
    apply_all(state, std::slice::from_ref(event))
}

pub fn alerts(effects: &[Effect]) -> Vec<&Alert> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Alert(alert) => Some(alert),
            _ => None,
        })
        .collect()
}

pub fn alerts_of(effects: &[Effect], kind: AlertKind, state: AlertState) -> Vec<&Alert> {
    alerts(effects).into_iter().filter(|alert| alert.kind == kind && alert.state == state).collect()
}
