//! GraphQL output and input types: the projections as NOC screens and analysts see them.

use argus_core::{EndpointChange, HostRecord, PeerRecord, StatusCounts, UnixMillis};
use argus_store::{AlertRow, HistoryRow, HostStatsSummary, KeyRotation, PeerActivity, SilenceRow, Stats};
use async_graphql::{Enum, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

use crate::object::{answer_as_enum, output_object};

/// Event time as a GraphQL `DateTime` (RFC 3339, UTC).
pub fn date_time(millis: UnixMillis) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A GraphQL `DateTime` as event time.
pub fn unix_millis(at: &DateTime<Utc>) -> UnixMillis {
    at.timestamp_millis()
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "argus_core::PeerStatus")]
pub enum WireguardPeerStatus {
    NeverConnected,
    Active,
    Stale,
    Removed,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "argus_core::fold::HostStatus")]
pub enum GatewayStatus {
    Alive,
    Silent,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "argus_core::Clearance")]
pub enum ClearanceLevel {
    Unclassified,
    Restricted,
    Confidential,
    Secret,
    TopSecret,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "argus_core::PeerSource")]
pub enum ObservationSource {
    Kernel,
    Userspace,
    Api,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "argus_core::AlertKind")]
pub enum WireguardAlertKind {
    PeerStale,
    GatewaySilent,
    TrafficAnomaly,
    KeyRotation,
    ClonedKey,
    Incident,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "argus_core::Severity")]
pub enum AlertSeverity {
    Info,
    Warning,
    Critical,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "argus_core::AlertState")]
pub enum WireguardAlertState {
    Raised,
    Resolved,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "argus_core::ProbableCause")]
pub enum AlertCause {
    GatewaySilent,
    GatewayUplink,
    SiteDown,
    Security,
    WireguardDown,
    PathDown,
    UpstreamOutage,
    ClonedKey,
}

answer_as_enum!(
    WireguardPeerStatus,
    GatewayStatus,
    ClearanceLevel,
    ObservationSource,
    WireguardAlertKind,
    AlertSeverity,
    WireguardAlertState,
    AlertCause,
    RotationState,
);

/// Where one expected key stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "argus_store::RotationState")]
pub enum RotationState {
    /// The expected key is live and no retired key is.
    Rotated,
    /// A retired key is still presented.
    Pending,
    /// Neither the expected nor a retired key is on the interface.
    NotSeen,
}

fn seconds(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

output_object! {
    /// One peer on one gateway interface, as last observed.
    WireguardPeer for PeerRecord {
        /// Curve25519 public key, base64.
        publicKey: String = |peer| peer.public_key,
        host: String = |peer| peer.host.as_str(),
        interface: String = |peer| peer.interface.as_str(),
        status: WireguardPeerStatus = |peer| WireguardPeerStatus::from(peer.status),
        endpoint: Option<String> = |peer| peer.endpoint,
        allowedIps: Vec<String> = |peer| peer.allowed_ips[..],
        latestHandshake: Option<DateTime<Utc>> = |peer| peer.latest_handshake.map(date_time),
        /// Seconds between the latest handshake and the observation.
        handshakeAgeSeconds: Option<f64> = |peer| peer.handshake_age_ms.map(seconds),
        /// Bytes received from this peer since it was first observed (survives counter resets).
        transferRx: u64 = |peer| peer.rx_total_bytes,
        /// Bytes sent to this peer since it was first observed (survives counter resets).
        transferTx: u64 = |peer| peer.tx_total_bytes,
        rxBytesPerSecond: f64 = |peer| peer.rx_bytes_per_s,
        txBytesPerSecond: f64 = |peer| peer.tx_bytes_per_s,
        /// The counters went down at the latest observation: the interface or peer restarted.
        counterReset: bool = |peer| peer.counter_reset,
        persistentKeepalive: Option<u16> = |peer| peer.persistent_keepalive,
        source: ObservationSource = |peer| ObservationSource::from(peer.source),
        clearance: ClearanceLevel = |peer| ClearanceLevel::from(peer.clearance),
        displayName: Option<String> = |peer| peer.metadata.display_name.as_deref(),
        owner: Option<String> = |peer| peer.metadata.owner.as_deref(),
        tags: Vec<String> = |peer| peer.metadata.tags[..],
        observedAt: DateTime<Utc> = |peer| date_time(peer.observed_at),
    }
}

output_object! {
    /// A peer as one observation left it: the audit trail.
    PeerHistoryEntry for HistoryRow {
        host: String = |row| row.host.as_str(),
        interface: String = |row| row.interface.as_str(),
        observedAt: DateTime<Utc> = |row| date_time(row.observed_at),
        status: WireguardPeerStatus = |row| WireguardPeerStatus::from(row.reading.status),
        endpoint: Option<String> = |row| row.reading.endpoint,
        latestHandshake: Option<DateTime<Utc>> = |row| row.reading.latest_handshake.map(date_time),
        handshakeAgeSeconds: Option<f64> = |row| row.reading.handshake_age_ms.map(seconds),
        rxDeltaBytes: u64 = |row| row.reading.rx_delta_bytes,
        txDeltaBytes: u64 = |row| row.reading.tx_delta_bytes,
        transferRx: u64 = |row| row.reading.rx_total_bytes,
        transferTx: u64 = |row| row.reading.tx_total_bytes,
        rxBytesPerSecond: f64 = |row| row.reading.rx_bytes_per_s,
        txBytesPerSecond: f64 = |row| row.reading.tx_bytes_per_s,
        /// The counters went down: the interface or peer restarted.
        counterReset: bool = |row| row.reading.counter_reset,
    }
}

output_object! {
    /// A peer's endpoint moved (roaming audit).
    EndpointMove for EndpointChange {
        host: String = |change| change.host.as_str(),
        interface: String = |change| change.interface.as_str(),
        previousEndpoint: Option<String> = |change| change.from,
        endpoint: String = |change| change.to,
        changedAt: DateTime<Utc> = |change| date_time(change.changed_at),
        /// The new endpoint lies in a network this peer was never seen in.
        newNetwork: bool = |change| change.new_network,
    }
}

output_object! {
    /// One numeric fact behind an alert, e.g. `handshake_age_s = 412`.
    Evidence for (String, f64) {
        name: String = |fact| fact.0,
        value: f64 = |fact| fact.1,
    }
}

output_object! {
    WireguardAlert for AlertRow {
        /// Deterministic: the same episode in the same stream always has the same id.
        alertId: String = |row| row.alert.alert_id.to_string(),
        kind: WireguardAlertKind = |row| WireguardAlertKind::from(row.alert.kind),
        severity: AlertSeverity = |row| AlertSeverity::from(row.alert.severity),
        state: WireguardAlertState = |row| WireguardAlertState::from(row.alert.state),
        host: String = |row| row.alert.host.as_str(),
        interface: String = |row| row.alert.interface.as_str(),
        publicKey: Option<String> = |row| row.alert.public_key,
        clearance: ClearanceLevel = |row| ClearanceLevel::from(row.alert.clearance),
        probableCause: Option<AlertCause> = |row| row.alert.probable_cause.map(AlertCause::from),
        /// What the probable cause means, in words an operator on shift reads.
        causeExplanation: Option<String> = |row| row.alert.probable_cause.map(|cause| cause.explanation().to_owned()),
        evidence: Vec<Evidence> = |row| row.alert.evidence.iter().map(|(name, value)| (name.clone(), *value)).collect::<Vec<_>>(),
        /// One line for people: what happened, to which site (by its display name where one is
        /// known), and the probable cause in words.
        summary: String = |row| row.alert.summary,
        raisedAt: DateTime<Utc> = |row| date_time(row.alert.raised_at),
        resolvedAt: Option<DateTime<Utc>> = |row| row.alert.resolved_at.map(date_time),
        /// When evidence that came after raising last changed the cause (the same alert, revised).
        revisedAt: Option<DateTime<Utc>> = |row| row.alert.revised_at.map(date_time),
        /// A silence covered this alert when this transition happened: recorded, not notified.
        silenced: bool = |row| row.alert.silenced,
        /// The INCIDENT alert this one is part of: several sites quiet for one shared cause.
        incidentId: Option<String> = |row| row.alert.incident_id.map(|id| id.to_string()),
        acknowledgedBy: Option<String> = |row| row.acknowledged_by,
        acknowledgedAt: Option<DateTime<Utc>> = |row| row.acknowledged_at.map(date_time),
    }
}

output_object! {
    /// A silence (maintenance window) as last set: alerts it covers are recorded and marked
    /// silenced, not notified.
    WireguardSilence for SilenceRow {
        silenceId: String = |silence| silence.silence_id.to_string(),
        host: String = |silence| silence.host.as_str(),
        /// Null: every interface of the host.
        interface: Option<String> = |silence| silence.interface.as_ref().map(|interface| interface.as_str()),
        /// Null: every peer (and the interface's own alerts).
        publicKey: Option<String> = |silence| silence.public_key,
        startsAt: DateTime<Utc> = |silence| date_time(silence.starts_at),
        /// Exclusive; at or before `startsAt`, the silence was ended.
        endsAt: DateTime<Utc> = |silence| date_time(silence.ends_at),
        reason: String = |silence| silence.reason,
        author: String = |silence| silence.author,
        /// The author's: the silence covers no alert above it.
        clearance: ClearanceLevel = |silence| ClearanceLevel::from(silence.clearance),
        /// When it was last set.
        setAt: DateTime<Utc> = |silence| date_time(silence.set_at),
    }

}

output_object! {
    /// A gateway interface and whether it is heard from.
    WireguardHost for HostRecord {
        host: String = |gateway| gateway.host.as_str(),
        interface: String = |gateway| gateway.interface.as_str(),
        status: GatewayStatus = |gateway| GatewayStatus::from(gateway.status),
        lastHeartbeatAt: DateTime<Utc> = |gateway| date_time(gateway.last_heartbeat_at),
        interfacePublicKey: Option<String> = |gateway| gateway.interface_public_key,
        listenPort: Option<u16> = |gateway| gateway.listen_port,
        peerCount: u32 = |gateway| gateway.peer_count,
        scanIntervalSeconds: f64 = |gateway| f64::from(gateway.scan_interval_ms) / 1000.0,
    }
}

output_object! {
    /// Peer counts by status.
    PeerCounts for StatusCounts {
        total: u64 = |counts| counts.total(),
        neverConnected: u64 = |counts| counts.never_connected,
        active: u64 = |counts| counts.active,
        stale: u64 = |counts| counts.stale,
        removed: u64 = |counts| counts.removed,
    }
}

output_object! {
    HostTraffic for HostStatsSummary {
        host: String = |gateway| gateway.host.as_str(),
        peers: PeerCounts = |gateway| gateway.peers,
        transferRx: u64 = |gateway| gateway.rx_total_bytes,
        transferTx: u64 = |gateway| gateway.tx_total_bytes,
        rxBytesPerSecond: f64 = |gateway| gateway.rx_bytes_per_s,
        txBytesPerSecond: f64 = |gateway| gateway.tx_bytes_per_s,
    }
}

output_object! {
    /// Statistics of every peer the caller may see.
    WireguardStats for Stats {
        peers: PeerCounts = |stats| stats.peers,
        transferRx: u64 = |stats| stats.rx_total_bytes,
        transferTx: u64 = |stats| stats.tx_total_bytes,
        rxBytesPerSecond: f64 = |stats| stats.rx_bytes_per_s,
        txBytesPerSecond: f64 = |stats| stats.tx_bytes_per_s,
        hosts: Vec<HostTraffic> = |stats| stats.hosts[..],
    }
}

output_object! {
    RotationStatusEntry for KeyRotation {
        host: String = |entry| entry.host.as_str(),
        interface: String = |entry| entry.interface.as_str(),
        label: Option<String> = |entry| entry.label,
        expectedKey: String = |entry| entry.expected_key,
        state: RotationState = |entry| RotationState::from(entry.state),
        /// Retired keys still presented on the interface.
        retiredKeysLive: Vec<String> = |entry| entry.retired_keys_live[..],
    }
}

output_object! {
    /// A peer that handshook or moved traffic in a time window (shift audit).
    ActivePeer for PeerActivity {
        publicKey: String = |peer| peer.public_key,
        host: String = |peer| peer.host.as_str(),
        interface: String = |peer| peer.interface.as_str(),
        displayName: Option<String> = |peer| peer.display_name,
        firstSeenActive: DateTime<Utc> = |peer| date_time(peer.first_seen_active),
        lastSeenActive: DateTime<Utc> = |peer| date_time(peer.last_seen_active),
        rxBytes: u64 = |peer| peer.rx_bytes,
        txBytes: u64 = |peer| peer.tx_bytes,
    }
}

/// Which peers to list.
#[derive(InputObject, Debug, Clone, Default)]
pub struct WireguardPeerFilter {
    pub host: Option<String>,
    pub interface: Option<String>,
    pub status: Option<WireguardPeerStatus>,
    /// true: stale peers only; false: every peer but the stale ones.
    pub stale: Option<bool>,
    /// Case-insensitive substring of host, interface, key, endpoint, allowed IPs, name, owner or tags.
    pub text: Option<String>,
}

/// Which alerts to list.
#[derive(InputObject, Debug, Clone, Default)]
pub struct WireguardAlertFilter {
    /// Raised at or after (default: the beginning).
    pub from: Option<DateTime<Utc>>,
    /// Raised before (default: now and later).
    pub to: Option<DateTime<Utc>>,
    pub state: Option<WireguardAlertState>,
    pub kind: Option<WireguardAlertKind>,
    /// The alerts of one incident (the INCIDENT alert's id): which sites it holds.
    pub incident_id: Option<String>,
    /// Only silenced alerts (true) or only the others (false).
    pub silenced: Option<bool>,
}

/// A peer record pushed through the API (`syncWireguardPeer`); validated like a collector's.
#[derive(InputObject, Debug, Clone)]
pub struct SyncWireguardPeerInput {
    pub host: String,
    pub interface: String,
    /// Curve25519 public key, base64 (44 characters) or hex (64).
    pub public_key: String,
    /// `ip:port` or `[ipv6]:port` (`[fe80::1%3]:port`: a link-local address and its interface index).
    pub endpoint: Option<String>,
    /// CIDR prefixes, v4 or v6.
    #[graphql(default)]
    pub allowed_ips: Vec<String>,
    pub latest_handshake: Option<DateTime<Utc>>,
    /// Cumulative bytes received (never negative).
    #[graphql(default)]
    pub transfer_rx: i64,
    /// Cumulative bytes sent (never negative).
    #[graphql(default)]
    pub transfer_tx: i64,
    pub persistent_keepalive: Option<i32>,
    /// At most the caller's own clearance (default UNCLASSIFIED).
    pub clearance: Option<ClearanceLevel>,
    pub display_name: Option<String>,
    pub owner: Option<String>,
    #[graphql(default)]
    pub tags: Vec<String>,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::auth::Role")]
pub enum CallerRole {
    /// Reads.
    Viewer,
    /// Reads, syncs peers, sets rotation manifests and silences, acknowledges alerts.
    Operator,
    /// Everything an operator may do.
    Admin,
}

/// The authenticated caller, as the token says.
#[derive(SimpleObject, Debug, Clone)]
pub struct WireguardCaller {
    /// The token's subject, recorded on acknowledgements and silences.
    pub subject: String,
    pub organisation: String,
    /// The highest clearance shown to you.
    pub clearance: ClearanceLevel,
    pub role: CallerRole,
    /// When the token stops being accepted (its expiry plus the configured leeway).
    pub expires_at: DateTime<Utc>,
}

/// The outcome of `syncWireguardPeer`.
#[derive(SimpleObject, Debug, Clone)]
pub struct SyncWireguardPeerResult {
    /// Where the event landed on the log, e.g. `wireguard.observations/3@1042`.
    pub event_id: String,
    /// The peer as projected, once the processor applied the event within the wait; else null.
    pub peer: Option<WireguardPeer>,
}

/// One expected key of a rotation manifest.
#[derive(InputObject, Debug, Clone)]
pub struct RotationManifestEntryInput {
    pub label: Option<String>,
    pub expected_key: String,
    #[graphql(default)]
    pub retired_keys: Vec<String>,
}

/// The keys one interface's peers must present; replaces the previous manifest (empty clears it).
#[derive(InputObject, Debug, Clone)]
pub struct RotationManifestInput {
    pub host: String,
    pub interface: String,
    pub entries: Vec<RotationManifestEntryInput>,
}

/// A silence (maintenance window) of a host, one of its interfaces, or one peer: alerts about it
/// in the range are recorded and marked silenced, not notified. It covers nothing above your
/// clearance.
#[derive(InputObject, Debug, Clone)]
pub struct WireguardSilenceInput {
    /// Replaces that silence (an `endsAt` in the past ends it); default: a new one.
    pub silence_id: Option<String>,
    pub host: String,
    /// Only this interface of the host; default: all of them.
    pub interface: Option<String>,
    /// Only this peer (base64 or hex); needs `interface`.
    pub public_key: Option<String>,
    /// Default: now.
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: DateTime<Utc>,
    /// Why, for the people on shift (at most 256 characters).
    pub reason: String,
}

/// An accepted silence: its id (to replace or end it) and where its event landed on the log.
#[derive(SimpleObject, Debug, Clone)]
pub struct WireguardSilenceSet {
    pub silence_id: String,
    pub event_id: String,
}

/// An accepted write: where its event landed on the log.
#[derive(SimpleObject, Debug, Clone)]
pub struct AcceptedEvent {
    pub event_id: String,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use argus_core::fold::{HostStatus, PeerMetadata};
    use argus_core::{
        Alert, AlertId, AlertKind, AlertState, Clearance, HostStats, PeerSource, PeerStatus, ProbableCause, PublicKey,
        Severity,
    };
    use argus_store::{Cursor, Listing, Page, RotationState as KeyState};
    use async_graphql::{EmptyMutation, EmptySubscription, Object as GraphqlObject, Schema};

    use super::*;
    use crate::object::{Answer, Connection, Object, Objects, Plan, Planned};

    fn peer() -> PeerRecord {
        PeerRecord {
            org_id: "acme".parse().expect("org"),
            host: "gw-paris".parse().expect("host"),
            interface: "wg0".parse().expect("interface"),
            public_key: PublicKey::from_bytes([9; 32]),
            observed_at: 1_780_000_000_123,
            status: PeerStatus::Active,
            endpoint: Some("203.0.113.7:51820".parse().expect("endpoint")),
            allowed_ips: ["10.0.0.2/32".parse().expect("cidr"), "fd00::2/128".parse().expect("cidr")].into(),
            latest_handshake: Some(1_779_999_990_000),
            handshake_age_ms: Some(10_123),
            rx_bytes: 1,
            tx_bytes: 2,
            rx_delta_bytes: 3,
            tx_delta_bytes: 4,
            rx_total_bytes: 5_000_000_000_000,
            tx_total_bytes: 6,
            rx_bytes_per_s: 1.25,
            tx_bytes_per_s: 0.5,
            counter_reset: true,
            persistent_keepalive: Some(25),
            source: PeerSource::Userspace,
            clearance: Clearance::Secret,
            metadata: Arc::new(PeerMetadata {
                display_name: Some("Paris \"core\"\n".into()),
                owner: Some("noc@example.org".into()),
                tags: vec!["site:paris".into(), "tier:1".into()],
            }),
        }
    }

    fn page<T>(items: Vec<T>) -> Connection<T> {
        let cursors = (0..items.len()).map(|index| Cursor::from_key(Listing::Peers, &[index as u8])).collect();
        Connection::of(Page { items, cursors, next: Some(Cursor::from_key(Listing::Peers, &[9])) }, true)
    }

    fn alert() -> AlertRow {
        AlertRow {
            alert: Alert {
                alert_id: AlertId::parse("0123456789abcdef0123456789abcdef").expect("id"),
                kind: AlertKind::PeerStale,
                severity: Severity::Critical,
                state: AlertState::Resolved,
                org_id: "acme".parse().expect("org"),
                host: "gw-paris".parse().expect("host"),
                interface: "wg0".parse().expect("interface"),
                public_key: Some(PublicKey::from_bytes([9; 32])),
                clearance: Clearance::Restricted,
                probable_cause: Some(ProbableCause::SiteDown),
                evidence: [("handshake_age_s".to_owned(), 412.5), ("peers".to_owned(), 3.0)].into(),
                summary: "peer stale on \"gw-paris\"".into(),
                raised_at: 1_780_000_000_000,
                resolved_at: Some(1_780_000_100_000),
                revised_at: Some(1_780_000_030_000),
                silenced: true,
                incident_id: Some(AlertId::parse("fedcba9876543210fedcba9876543210").expect("id")),
            },
            acknowledged_by: Some("alice".into()),
            acknowledged_at: Some(1_780_000_050_000),
        }
    }

    fn stats() -> Stats {
        let record = peer();
        let mut peers = argus_core::StatusCounts::default();
        peers.add(PeerStatus::Active);
        peers.add(PeerStatus::Stale);
        let row = HostStats {
            org_id: record.org_id.clone(),
            host: record.host.clone(),
            clearance: Clearance::Secret,
            peers,
            rx_total_bytes: 7,
            tx_total_bytes: 8,
            rx_bytes_per_s: 1.5,
            tx_bytes_per_s: 2.5,
        };
        Stats::from_rows([&row], Clearance::TopSecret)
    }

    fn moves() -> Objects<EndpointChange> {
        let record = peer();
        Objects(vec![EndpointChange {
            org_id: record.org_id.clone(),
            host: record.host.clone(),
            interface: record.interface.clone(),
            public_key: record.public_key,
            from: record.endpoint,
            to: "[fe80::1%4]:51820".parse().expect("endpoint"),
            changed_at: 1_780_000_000_000,
            new_network: true,
            clearance: Clearance::Unclassified,
        }])
    }

    fn hosts() -> Objects<HostRecord> {
        let record = peer();
        Objects(vec![HostRecord {
            org_id: record.org_id.clone(),
            host: record.host.clone(),
            interface: record.interface.clone(),
            status: HostStatus::Silent,
            last_heartbeat_at: 1_780_000_000_000,
            interface_public_key: Some(PublicKey::from_bytes([3; 32])),
            listen_port: Some(51820),
            peer_count: 12,
            scan_interval_ms: 2_500,
            clearance: Clearance::Unclassified,
        }])
    }

    fn rotation() -> Objects<KeyRotation> {
        let record = peer();
        Objects(vec![KeyRotation {
            host: record.host.clone(),
            interface: record.interface.clone(),
            label: Some("fob-07".into()),
            expected_key: PublicKey::from_bytes([1; 32]),
            state: KeyState::Pending,
            retired_keys_live: vec![PublicKey::from_bytes([2; 32])],
        }])
    }

    fn active() -> Object<Connection<PeerActivity>> {
        let record = peer();
        Object(page(vec![PeerActivity {
            public_key: record.public_key,
            host: record.host.clone(),
            interface: record.interface.clone(),
            display_name: Some("Paris".into()),
            first_seen_active: 1_780_000_000_000,
            last_seen_active: 1_780_000_100_000,
            rx_bytes: 10,
            tx_bytes: 20,
        }]))
    }

    struct Query;

    #[GraphqlObject]
    impl Query {
        async fn peers(&self) -> Object<Connection<PeerRecord>> {
            Object(page(vec![peer(), peer()]))
        }
        async fn stats(&self) -> Object<Stats> {
            Object(stats())
        }
        async fn alerts(&self) -> Object<Connection<AlertRow>> {
            Object(page(vec![alert()]))
        }
        async fn history(&self) -> Object<Connection<HistoryRow>> {
            Object(page(vec![HistoryRow::from(&peer())]))
        }
        async fn moves(&self) -> Objects<EndpointChange> {
            moves()
        }
        async fn hosts(&self) -> Objects<HostRecord> {
            hosts()
        }
        async fn rotation(&self) -> Objects<KeyRotation> {
            rotation()
        }
        async fn active(&self) -> Object<Connection<PeerActivity>> {
            active()
        }
    }

    type TestSchema = Schema<Query, EmptyMutation, EmptySubscription>;

    /// Every field of the type named `name` (and of the objects below it), from the schema itself.
    async fn every_field(schema: &TestSchema, name: &str) -> String {
        let query = format!(
            r#"{{ __type(name: "{name}") {{ fields {{ name type {{ kind name ofType {{ kind name ofType {{ kind name ofType {{ kind name }} }} }} }} }} }} }}"#
        );
        let answer = schema.execute(query).await.data.into_json().expect("json");
        let mut selection = vec!["__typename".to_owned()];
        for field in answer["__type"]["fields"].as_array().expect("an object type") {
            let mut ty = &field["type"];
            while ty["kind"] == "NON_NULL" || ty["kind"] == "LIST" {
                ty = &ty["ofType"];
            }
            let field_name = field["name"].as_str().expect("a name").to_owned();
            if ty["kind"] == "OBJECT" {
                let below = Box::pin(every_field(schema, ty["name"].as_str().expect("a name"))).await;
                selection.push(format!("{field_name} {below}"));
            } else {
                selection.push(field_name);
            }
        }
        format!("{{ {} }}", selection.join(" "))
    }

    /// The root field `root` answered by async-graphql and written by its plan, for `selection`.
    async fn both<A: Answer>(schema: &TestSchema, root: &str, selection: &str, value: A) -> (String, String) {
        let (selection, fragments) = selection
            .split_once(" fragment ")
            .map_or((selection, String::new()), |(selection, fragments)| (selection, format!("fragment {fragments}")));
        let text = format!("{{ {root} {selection} }} {fragments}");
        let response = schema.execute(text.as_str()).await;
        assert!(response.errors.is_empty(), "{root}: {:?}", response.errors);
        let async_graphql::Value::Object(mut data) = response.data else { panic!("{root}: no data") };
        let executed = serde_json::to_string(&data.swap_remove(root).expect("the field")).expect("json");
        let document = async_graphql::parser::parse_query(&text).expect("parses");
        let async_graphql::parser::types::DocumentOperations::Single(operation) = &document.operations else {
            panic!("one operation")
        };
        let async_graphql::parser::types::Selection::Field(field) = &operation.node.selection_set.node.items[0].node
        else {
            panic!("a field")
        };
        let plan = A::Graphql::plan(&field.node.selection_set.node, &document.fragments, &mut Plan::default())
            .expect("planned");
        let mut written = Vec::new();
        value.write_json(&plan, &mut written).expect("written");
        (executed, String::from_utf8(written).expect("utf-8"))
    }

    #[tokio::test]
    async fn every_field_of_every_object_is_written_as_async_graphql_answers_it() {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        macro_rules! check {
            ($root:literal, $type:literal, $value:expr) => {{
                let selection = every_field(&schema, $type).await;
                let (executed, written) = both(&schema, $root, &selection, $value).await;
                assert!(!executed.contains("null"), "{}: every field has a value: {executed}", $root);
                assert_eq!(executed, written, "{}", $root);
            }};
        }
        check!("peers", "WireguardPeerConnection", page(vec![peer(), peer()]));
        check!("stats", "WireguardStats", stats());
        check!("alerts", "WireguardAlertConnection", page(vec![alert()]));
        check!("history", "PeerHistoryEntryConnection", page(vec![HistoryRow::from(&peer())]));
        check!("hosts", "WireguardHost", hosts().0);
        check!("moves", "EndpointMove", moves().0);
        check!("rotation", "RotationStatusEntry", rotation().0);
        check!("active", "ActivePeerConnection", active().0);
    }

    #[tokio::test]
    async fn fragments_aliases_and_repeated_fields_are_answered_alike() {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        let selections = [
            "{ pageInfo { hasNextPage } first: edges { cursor } nodes { host } }",
            "{ edges { cursor node { host } } edges { node { publicKey host } } }",
            "{ ... on WireguardPeerConnection { nodes { __typename status } } nodes { observedAt } }",
            "{ nodes { ...peer ... on WireguardPeer { tags } } } fragment peer on WireguardPeer { displayName tags }",
        ];
        for selection in selections {
            let (executed, written) = both(&schema, "peers", selection, page(vec![peer(), peer()])).await;
            assert_eq!(executed, written, "{selection}");
        }
    }
}
