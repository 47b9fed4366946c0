//! Turns interface snapshots into events (pure): a `PeerObservation` per peer (named from the
//! inventory where it knows the key), then the interface's `Heartbeat`, then a `PeerRemoved` for
//! every peer gone since the previous scan of that interface. `seq` is stamped when an event is
//! published (see `outbox`), so events here carry 0.

use std::collections::HashMap;
use std::sync::Arc;

use argus_core::{
    Clearance, CollectorId, Event, EventHeader, Heartbeat, HostId, InterfaceName, OrgId, PeerObservation, PeerRemoved,
    PublicKey, UnixMillis,
};

use crate::inventory::Inventory;
use crate::wireguard::InterfaceSnapshot;

/// Whose an interface is: the organisation, gateway name and clearance its events carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceIdentity {
    pub org: OrgId,
    pub host: HostId,
    pub clearance: Clearance,
}

/// Remembers each interface's peers between scans, to tell which ones went away.
#[derive(Debug)]
pub struct Scanner {
    collector_id: CollectorId,
    scan_interval_ms: u32,
    previous_peers: HashMap<InterfaceName, Vec<PublicKey>>,
    inventory: Arc<Inventory>,
}

impl Scanner {
    pub fn new(collector_id: CollectorId, scan_interval_ms: u32) -> Self {
        Self { collector_id, scan_interval_ms, previous_peers: HashMap::new(), inventory: Arc::default() }
    }

    /// Names peers the inventory knows: display name, owner, site (as a `site:` tag), clearance.
    pub fn with_inventory(self, inventory: Arc<Inventory>) -> Self {
        Self { inventory, ..self }
    }

    /// Appends the events of one interface's scan at `observed_at` to `events`.
    pub fn scan(
        &mut self, interface: &InterfaceSnapshot, identity: &InterfaceIdentity, observed_at: UnixMillis,
        events: &mut Vec<Event>,
    ) {
        let header = EventHeader {
            org_id: identity.org.clone(),
            host: identity.host.clone(),
            interface: interface.name.clone(),
            observed_at,
            collector_id: self.collector_id.clone(),
            seq: 0,
        };
        events.reserve(interface.peers.len() + 1);
        for peer in &interface.peers {
            let known = if self.inventory.is_empty() { None } else { self.inventory.get(&peer.public_key) };
            events.push(Event::PeerObservation(PeerObservation {
                header: header.clone(),
                public_key: peer.public_key,
                endpoint: peer.endpoint,
                allowed_ips: peer.allowed_ips.clone(),
                latest_handshake: peer.latest_handshake,
                rx_bytes: peer.rx_bytes,
                tx_bytes: peer.tx_bytes,
                persistent_keepalive: peer.persistent_keepalive,
                source: interface.kind,
                clearance: known.and_then(|known| known.clearance).unwrap_or(identity.clearance),
                display_name: known.and_then(|known| known.name.clone()),
                owner: known.and_then(|known| known.owner.clone()),
                tags: known.and_then(|known| known.site_tag()).into_iter().collect(),
                writer_clearance: None,
            }));
        }
        events.push(Event::Heartbeat(Heartbeat {
            header: header.clone(),
            interface_public_key: interface.public_key,
            listen_port: interface.listen_port,
            peer_count: u32::try_from(interface.peers.len()).unwrap_or(u32::MAX),
            scan_interval_ms: self.scan_interval_ms,
            clearance: identity.clearance,
        }));
        // peers are sorted by key: one merge pass finds the ones that went away
        let current: Vec<PublicKey> = interface.peers.iter().map(|peer| peer.public_key).collect();
        if let Some(previous) = self.previous_peers.insert(interface.name.clone(), current) {
            let current = &self.previous_peers[&interface.name];
            for gone in previous.iter().filter(|key| current.binary_search(key).is_err()) {
                events.push(Event::PeerRemoved(PeerRemoved { header: header.clone(), public_key: *gone }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use argus_core::PeerSource;

    use super::*;
    use crate::wireguard::PeerSnapshot;

    fn peer(byte: u8, rx_bytes: u64) -> PeerSnapshot {
        PeerSnapshot {
            public_key: PublicKey::from_bytes([byte; 32]),
            endpoint: Some("198.18.1.2:51820".parse().expect("endpoint")),
            allowed_ips: vec!["100.64.1.0/24".parse().expect("prefix")],
            latest_handshake: Some(1_780_272_000_000),
            rx_bytes,
            tx_bytes: 2 * rx_bytes,
            persistent_keepalive: None,
        }
    }

    fn interface(peers: Vec<PeerSnapshot>) -> InterfaceSnapshot {
        InterfaceSnapshot {
            name: "wg-hub".parse().expect("name"),
            kind: PeerSource::Userspace,
            public_key: Some(PublicKey::from_bytes([1; 32])),
            listen_port: Some(51820),
            peers,
        }
    }

    fn identity() -> InterfaceIdentity {
        InterfaceIdentity {
            org: "acme".parse().expect("org"),
            host: "gw-01".parse().expect("host"),
            clearance: Clearance::Secret,
        }
    }

    fn kinds(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|event| match event {
                Event::PeerObservation(observation) => format!("observed {}", observation.public_key.as_bytes()[0]),
                Event::Heartbeat(heartbeat) => format!("heartbeat {}", heartbeat.peer_count),
                Event::PeerRemoved(removed) => format!("removed {}", removed.public_key.as_bytes()[0]),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_scan_observes_every_peer_then_beats_then_reports_departures() {
        let mut scanner = Scanner::new("gw-01".parse().expect("collector"), 10_000);
        let mut events = Vec::new();
        scanner.scan(&interface(vec![peer(2, 10), peer(3, 10), peer(4, 10)]), &identity(), 1_000, &mut events);
        assert_eq!(kinds(&events), ["observed 2", "observed 3", "observed 4", "heartbeat 3"]);

        events.clear();
        scanner.scan(&interface(vec![peer(3, 20), peer(5, 1)]), &identity(), 11_000, &mut events);
        assert_eq!(kinds(&events), ["observed 3", "observed 5", "heartbeat 2", "removed 2", "removed 4"]);
        let Event::PeerObservation(observation) = &events[0] else { panic!("observation") };
        assert_eq!((observation.rx_bytes, observation.tx_bytes), (20, 40));
        assert_eq!(observation.header.observed_at, 11_000);
        assert_eq!(observation.clearance, Clearance::Secret);
        assert_eq!(observation.source, PeerSource::Userspace);
        let Event::Heartbeat(heartbeat) = &events[2] else { panic!("heartbeat") };
        assert_eq!((heartbeat.scan_interval_ms, heartbeat.listen_port), (10_000, Some(51820)));
    }

    #[test]
    fn peers_the_inventory_knows_carry_its_names_and_clearance() {
        let text = format!(
            "[Peer]\n# Name = FOB 3\n# Owner = ops\n# Site = fob-03\n# Clearance = TOP_SECRET\nPublicKey = {}\n",
            PublicKey::from_bytes([3; 32])
        );
        let inventory = Arc::new(Inventory::parse(&text).expect("inventory"));
        let mut scanner = Scanner::new("gw-01".parse().expect("collector"), 10_000).with_inventory(inventory);
        let mut events = Vec::new();
        scanner.scan(&interface(vec![peer(2, 10), peer(3, 10)]), &identity(), 1_000, &mut events);
        let observations: Vec<&PeerObservation> = events
            .iter()
            .filter_map(|event| match event {
                Event::PeerObservation(observation) => Some(observation),
                _ => None,
            })
            .collect();
        let (unknown, known) = (observations[0], observations[1]);
        assert_eq!((unknown.display_name.as_deref(), unknown.clearance), (None, Clearance::Secret));
        assert_eq!(known.display_name.as_deref(), Some("FOB 3"));
        assert_eq!(known.owner.as_deref(), Some("ops"));
        assert_eq!(known.tags, ["site:fob-03"]);
        assert_eq!(known.clearance, Clearance::TopSecret);
    }
}
