//! The bounded outbox between the scan loop and the log: at most one pending event per peer, one
//! probe per peer and one per interface (a newer event replaces an older one: counters are cumulative, so the newest
//! observation carries every byte), drained oldest first. The scan loop never waits for the log.

use std::collections::{BTreeMap, HashMap};

use argus_core::{Event, InterfaceName, PublicKey};

/// What a pending event stands for: one peer of an interface, or the interface itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    Peer(InterfaceName, PublicKey),
    Interface(InterfaceName),
    /// The latest probe of a peer's endpoint (a newer one says more of now).
    Probe(InterfaceName, PublicKey),
}

impl Slot {
    /// `None` for events a collector does not publish (manifests, acknowledgements, silences).
    fn of(event: &Event) -> Option<Self> {
        let interface = event.header().interface.clone();
        match event {
            Event::PeerObservation(observation) => Some(Self::Peer(interface, observation.public_key)),
            Event::PeerRemoved(removed) => Some(Self::Peer(interface, removed.public_key)),
            Event::Heartbeat(_) => Some(Self::Interface(interface)),
            Event::PathProbe(probe) => Some(Self::Probe(interface, probe.public_key)),
            Event::RotationManifestSet(_) | Event::AlertAcknowledged(_) | Event::SilenceSet(_) => None,
        }
    }
}

/// An event waiting for the log, with its place in the queue (lower is older).
#[derive(Debug, Clone)]
pub struct Pending {
    order: u64,
    pub event: Event,
}

/// Pending events, coalesced per slot, bounded by `capacity`.
#[derive(Debug)]
pub struct Outbox {
    capacity: usize,
    next_order: u64,
    by_slot: HashMap<Slot, Pending>,
    by_order: BTreeMap<u64, Slot>,
    /// Events dropped because the outbox was full (more peers than `capacity`).
    dropped: u64,
    /// Events replaced by a newer one for the same slot.
    coalesced: u64,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            next_order: 0,
            by_slot: HashMap::new(),
            by_order: BTreeMap::new(),
            dropped: 0,
            coalesced: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.by_slot.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_slot.is_empty()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn coalesced(&self) -> u64 {
        self.coalesced
    }

    /// Queues `event` after everything pending, replacing the pending event of its slot.
    pub fn push(&mut self, event: Event) {
        let order = self.next_order;
        self.next_order += 1;
        self.insert(Pending { order, event });
    }

    fn insert(&mut self, pending: Pending) {
        let Some(slot) = Slot::of(&pending.event) else { return };
        self.by_order.insert(pending.order, slot.clone());
        if let Some(replaced) = self.by_slot.insert(slot, pending) {
            self.by_order.remove(&replaced.order);
            self.coalesced += 1;
        }
        while self.by_slot.len() > self.capacity {
            let Some((_, oldest)) = self.by_order.pop_first() else { break };
            self.by_slot.remove(&oldest);
            self.dropped += 1;
        }
    }

    /// Takes every pending event, oldest first.
    pub fn take_all(&mut self) -> Vec<Pending> {
        let order = std::mem::take(&mut self.by_order);
        let mut by_slot = std::mem::take(&mut self.by_slot);
        order.into_values().filter_map(|slot| by_slot.remove(&slot)).collect()
    }

    /// Puts back events that could not be published, unless a newer event of the same slot arrived
    /// meanwhile. They keep their place: older than anything queued since.
    pub fn put_back(&mut self, unpublished: impl IntoIterator<Item = Pending>) {
        for pending in unpublished {
            if let Some(slot) = Slot::of(&pending.event)
                && !self.by_slot.contains_key(&slot)
            {
                self.insert(pending);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use argus_core::{EventHeader, Heartbeat, PeerObservation, PeerRemoved, PeerSource};

    use super::*;

    fn header(interface: &str) -> EventHeader {
        EventHeader {
            org_id: "acme".parse().expect("org"),
            host: "gw".parse().expect("host"),
            interface: interface.parse().expect("interface"),
            observed_at: 0,
            collector_id: "gw".parse().expect("collector"),
            seq: 0,
        }
    }

    fn observation(interface: &str, key: u8, rx_bytes: u64) -> Event {
        Event::PeerObservation(PeerObservation {
            header: header(interface),
            public_key: PublicKey::from_bytes([key; 32]),
            endpoint: None,
            allowed_ips: Vec::new(),
            latest_handshake: None,
            rx_bytes,
            tx_bytes: 0,
            persistent_keepalive: None,
            source: PeerSource::Userspace,
            clearance: Default::default(),
            display_name: None,
            owner: None,
            tags: Vec::new(),
            writer_clearance: None,
        })
    }

    fn heartbeat(interface: &str, peer_count: u32) -> Event {
        Event::Heartbeat(Heartbeat {
            header: header(interface),
            interface_public_key: None,
            listen_port: None,
            peer_count,
            scan_interval_ms: 1_000,
            clearance: Default::default(),
        })
    }

    fn describe(pending: &[Pending]) -> Vec<String> {
        pending
            .iter()
            .map(|pending| match &pending.event {
                Event::PeerObservation(observation) => {
                    format!(
                        "{} {} rx {}",
                        observation.header.interface,
                        observation.public_key.as_bytes()[0],
                        observation.rx_bytes
                    )
                }
                Event::Heartbeat(heartbeat) => {
                    format!("{} heartbeat {}", heartbeat.header.interface, heartbeat.peer_count)
                }
                Event::PeerRemoved(removed) => {
                    format!("{} removed {}", removed.header.interface, removed.public_key.as_bytes()[0])
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn scans_coalesce_to_the_newest_event_per_peer_in_scan_order() {
        let mut outbox = Outbox::new(100);
        for scan in 1..=50 {
            outbox.push(observation("wg0", 1, scan * 10));
            outbox.push(observation("wg0", 2, scan * 20));
            outbox.push(heartbeat("wg0", 2));
            outbox.push(observation("wg1", 1, scan));
            outbox.push(heartbeat("wg1", 1));
        }
        assert_eq!(outbox.len(), 5, "one per peer and per interface, however many scans");
        assert_eq!(outbox.coalesced(), 245);
        assert_eq!(
            describe(&outbox.take_all()),
            ["wg0 1 rx 500", "wg0 2 rx 1000", "wg0 heartbeat 2", "wg1 1 rx 50", "wg1 heartbeat 1"]
        );
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_removal_replaces_the_observation_and_a_return_replaces_the_removal() {
        let mut outbox = Outbox::new(100);
        outbox.push(observation("wg0", 1, 10));
        outbox.push(Event::PeerRemoved(PeerRemoved {
            header: header("wg0"),
            public_key: PublicKey::from_bytes([1; 32]),
        }));
        assert_eq!(describe(&outbox.take_all()), ["wg0 removed 1"]);
        outbox.push(Event::PeerRemoved(PeerRemoved {
            header: header("wg0"),
            public_key: PublicKey::from_bytes([1; 32]),
        }));
        outbox.push(observation("wg0", 1, 30));
        assert_eq!(describe(&outbox.take_all()), ["wg0 1 rx 30"]);
    }

    #[test]
    fn unpublished_events_go_back_in_front_unless_superseded() {
        let mut outbox = Outbox::new(100);
        outbox.push(observation("wg0", 1, 10));
        outbox.push(observation("wg0", 2, 10));
        let failed = outbox.take_all();
        outbox.push(observation("wg0", 3, 5));
        outbox.push(observation("wg0", 2, 20));
        outbox.put_back(failed);
        assert_eq!(describe(&outbox.take_all()), ["wg0 1 rx 10", "wg0 3 rx 5", "wg0 2 rx 20"]);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_counts_it() {
        let mut outbox = Outbox::new(3);
        for key in 1..=5 {
            outbox.push(observation("wg0", key, u64::from(key)));
        }
        assert_eq!(outbox.len(), 3);
        assert_eq!(outbox.dropped(), 2);
        assert_eq!(describe(&outbox.take_all()), ["wg0 3 rx 3", "wg0 4 rx 4", "wg0 5 rx 5"]);
    }
}
