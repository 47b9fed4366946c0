//! The facts on the log: peer observations, interface heartbeats, peer removals, path probes,
//! rotation manifests, alert acknowledgements and silences.

use serde::{Deserialize, Serialize};

use crate::ids::{Clearance, CollectorId, HostId, InterfaceName, OrgId};
use crate::key::PublicKey;
use crate::net::{Cidr, Endpoint};

/// Milliseconds since the Unix epoch (Avro `timestamp-millis`).
pub type UnixMillis = i64;

/// Fields every event carries; `seq` rises monotonically per collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventHeader {
    pub org_id: OrgId,
    pub host: HostId,
    pub interface: InterfaceName,
    /// Collector clock at the time of the scan.
    pub observed_at: UnixMillis,
    pub collector_id: CollectorId,
    #[serde(with = "avro_long")]
    pub seq: u64,
}

/// Where an observation was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PeerSource {
    /// Kernel WireGuard, read over netlink.
    Kernel,
    /// A userspace implementation (wireguard-go, boringtun), read over its UAPI socket.
    Userspace,
    /// Published by `syncWireguardPeer` through the API.
    Api,
}

impl PeerSource {
    pub const ALL: [PeerSource; 3] = [PeerSource::Kernel, PeerSource::Userspace, PeerSource::Api];
}

/// One peer of one interface as one scan saw it. Never holds a private or preshared key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerObservation {
    #[serde(flatten)]
    pub header: EventHeader,
    pub public_key: PublicKey,
    pub endpoint: Option<Endpoint>,
    pub allowed_ips: Vec<Cidr>,
    /// `None` when WireGuard reports 0: the peer never completed a handshake.
    pub latest_handshake: Option<UnixMillis>,
    /// Cumulative counters since the interface (or peer) was created.
    #[serde(with = "avro_long")]
    pub rx_bytes: u64,
    #[serde(with = "avro_long")]
    pub tx_bytes: u64,
    pub persistent_keepalive: Option<u16>,
    pub source: PeerSource,
    pub clearance: Clearance,
    pub display_name: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    /// The clearance of the operator who wrote this through the API (`None` from a collector): the
    /// fold refuses a write that would touch a peer above it or lower a peer's clearance.
    pub writer_clearance: Option<Clearance>,
}

/// One interface is alive; published once per scan, after that interface's observations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    #[serde(flatten)]
    pub header: EventHeader,
    /// The interface's own public key (its private key is never read out).
    pub interface_public_key: Option<PublicKey>,
    pub listen_port: Option<u16>,
    pub peer_count: u32,
    /// How often the collector scans; gateway silence is judged in multiples of it.
    pub scan_interval_ms: u32,
    pub clearance: Clearance,
}

/// A peer present in the previous scan is gone from the interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRemoved {
    #[serde(flatten)]
    pub header: EventHeader,
    pub public_key: PublicKey,
}

/// The collector pinged a quiet peer's last endpoint from the gateway's own network (ICMP echo):
/// whether the site's address still answers while its tunnel is silent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathProbe {
    #[serde(flatten)]
    pub header: EventHeader,
    pub public_key: PublicKey,
    /// The IP of the peer's last endpoint: probes never target anything else.
    #[serde(with = "address_text")]
    pub target: std::net::IpAddr,
    pub sent: u8,
    /// Echo replies received; 0: the endpoint is silent.
    pub received: u8,
    /// Mean round-trip time of the replies; `None` when none came back.
    pub rtt_ms: Option<f64>,
}

/// One expected key of a rotation manifest, with the keys it replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Human name of the site or peer, e.g. `fob-07`.
    pub label: Option<String>,
    pub expected_key: PublicKey,
    /// Pre-rotation keys: a peer still presenting one of these is flagged.
    pub retired_keys: Vec<PublicKey>,
}

/// The complete set of keys the peers of one interface must present (replaces any earlier one;
/// no entries clears the manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationManifestSet {
    #[serde(flatten)]
    pub header: EventHeader,
    pub entries: Vec<ManifestEntry>,
    /// The clearance of the operator who set it; `None` in data written before it was carried,
    /// read as TOP_SECRET (such a manifest applied to every peer).
    pub writer_clearance: Option<Clearance>,
}

impl RotationManifestSet {
    /// The highest clearance of the peers this manifest applies to.
    pub fn scope(&self) -> Clearance {
        self.writer_clearance.unwrap_or(Clearance::TopSecret)
    }
}

/// An operator acknowledged an alert (published by the API; the processor records it once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertAcknowledged {
    /// The alert's own organisation, host and interface, so it lands on the gateway's partition.
    #[serde(flatten)]
    pub header: EventHeader,
    pub alert_id: crate::alert::AlertId,
    /// Who acknowledged it (the token's subject).
    pub acknowledged_by: String,
}

/// An operator silenced a host, an interface or one peer for a time range (a maintenance window):
/// alerts about it in that range are recorded and marked silenced, not notified. Setting the same
/// `silence_id` again replaces it (an `ends_at` in the past ends it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceSet {
    /// The silenced host and interface (the interface it was set on, for a whole host).
    #[serde(flatten)]
    pub header: EventHeader,
    pub silence_id: crate::alert::SilenceId,
    /// Every interface of the host, not only the header's.
    pub whole_host: bool,
    /// Only this peer of the interface.
    pub public_key: Option<PublicKey>,
    pub starts_at: UnixMillis,
    pub ends_at: UnixMillis,
    pub reason: String,
    /// Who set it (the token's subject).
    pub author: String,
    /// The author's clearance: the silence covers no alert above it.
    pub clearance: Clearance,
}

/// Any event on `wireguard.observations`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    PeerObservation(PeerObservation),
    Heartbeat(Heartbeat),
    PeerRemoved(PeerRemoved),
    PathProbe(PathProbe),
    RotationManifestSet(RotationManifestSet),
    AlertAcknowledged(AlertAcknowledged),
    SilenceSet(SilenceSet),
}

impl Event {
    pub fn header(&self) -> &EventHeader {
        match self {
            Event::PeerObservation(event) => &event.header,
            Event::Heartbeat(event) => &event.header,
            Event::PeerRemoved(event) => &event.header,
            Event::PathProbe(event) => &event.header,
            Event::RotationManifestSet(event) => &event.header,
            Event::AlertAcknowledged(event) => &event.header,
            Event::SilenceSet(event) => &event.header,
        }
    }

    pub fn header_mut(&mut self) -> &mut EventHeader {
        match self {
            Event::PeerObservation(event) => &mut event.header,
            Event::Heartbeat(event) => &mut event.header,
            Event::PeerRemoved(event) => &mut event.header,
            Event::PathProbe(event) => &mut event.header,
            Event::RotationManifestSet(event) => &mut event.header,
            Event::AlertAcknowledged(event) => &mut event.header,
            Event::SilenceSet(event) => &mut event.header,
        }
    }
}

/// Serde for `u64` values that Avro carries as a non-negative `long`.
pub(crate) mod avro_long {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        let value = i64::try_from(*value).map_err(|_| serde::ser::Error::custom("value exceeds Avro long"))?;
        serializer.serialize_i64(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let value = i64::deserialize(deserializer)?;
        u64::try_from(value).map_err(|_| serde::de::Error::custom(format!("{value} is negative")))
    }
}

/// Serde for an IP address as its text, as the schema carries it (whatever the format).
mod address_text {
    use std::net::IpAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(address: &IpAddr, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(address)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<IpAddr, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `seq` values that only rise: each is the given clock reading (microseconds) or one more than the
/// last, whichever is larger. Seeded from the wall clock they keep rising across restarts without
/// stored state, as long as the clock does not step back further than the restart took.
#[derive(Debug, Default)]
pub struct SeqCounter {
    last: std::sync::atomic::AtomicU64,
}

impl SeqCounter {
    /// The next `seq` at clock reading `now_micros`.
    pub fn next(&self, now_micros: u64) -> u64 {
        use std::sync::atomic::Ordering;
        let previous = self
            .last
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(now_micros.max(last + 1)))
            .unwrap_or_default();
        now_micros.max(previous + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::SeqCounter;

    #[test]
    fn seq_values_follow_the_clock_and_never_fall() {
        let counter = SeqCounter::default();
        assert_eq!(counter.next(1_000), 1_000);
        assert_eq!(counter.next(1_000), 1_001, "same reading: one more");
        assert_eq!(counter.next(900), 1_002, "the clock stepped back: still one more");
        assert_eq!(counter.next(5_000), 5_000, "the clock moved on: follow it");
    }
}
