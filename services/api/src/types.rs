//! GraphQL output and input types: the projections as NOC screens and analysts see them.

use std::borrow::Cow;

use argus_core::text::AppendText;
use argus_core::{Alert, EndpointChange, HostRecord, PeerRecord, UnixMillis};
use argus_store::{AlertRow, HistoryRow, HostStatsSummary, Stats};
use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::{ContainerType, EnumType, resolve_container};
use async_graphql::{
    Context, ContextSelectionSet, Enum, InputObject, InputType, OutputType, Positioned, ServerResult, SimpleObject,
    Value,
};
use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::plain::{Plain, PlainList};

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
}

/// One peer on one gateway interface, as last observed.
#[derive(SimpleObject, Debug, Clone)]
pub struct WireguardPeer {
    /// Curve25519 public key, base64.
    pub public_key: String,
    pub host: String,
    pub interface: String,
    pub status: WireguardPeerStatus,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    pub latest_handshake: Option<DateTime<Utc>>,
    /// Seconds between the latest handshake and the observation.
    pub handshake_age_seconds: Option<f64>,
    /// Bytes received from this peer since it was first observed (survives counter resets).
    pub transfer_rx: u64,
    /// Bytes sent to this peer since it was first observed (survives counter resets).
    pub transfer_tx: u64,
    pub rx_bytes_per_second: f64,
    pub tx_bytes_per_second: f64,
    pub persistent_keepalive: Option<u16>,
    pub source: ObservationSource,
    pub clearance: ClearanceLevel,
    pub display_name: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub observed_at: DateTime<Utc>,
}

/// A field's computed value as its answer: a GraphQL value (what async-graphql's `to_value` gives),
/// or JSON written straight away (what serialising that value writes), without building the value;
/// or as the field of a whole [`WireguardPeer`].
trait FieldAnswer {
    /// The field's type in [`WireguardPeer`].
    type Owned;

    fn owned(&self) -> Self::Owned;

    fn value(&self) -> Value;

    fn write_json(&self, out: &mut Vec<u8>) -> Option<()>;
}

impl FieldAnswer for &str {
    type Owned = String;

    fn owned(&self) -> String {
        (*self).to_owned()
    }

    fn value(&self) -> Value {
        Value::String((*self).to_owned())
    }

    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        serde_json::to_writer(out, self).ok()
    }
}

impl FieldAnswer for String {
    type Owned = String;

    fn owned(&self) -> String {
        self.clone()
    }

    fn value(&self) -> Value {
        self.as_str().value()
    }

    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        self.as_str().write_json(out)
    }
}

impl<T: FieldAnswer> FieldAnswer for Option<T> {
    type Owned = Option<T::Owned>;

    fn owned(&self) -> Self::Owned {
        self.as_ref().map(T::owned)
    }

    fn value(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::value)
    }

    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        match self {
            Some(value) => value.write_json(out),
            None => {
                out.extend_from_slice(b"null");
                Some(())
            }
        }
    }
}

impl<T: FieldAnswer> FieldAnswer for &[T] {
    type Owned = Vec<T::Owned>;

    fn owned(&self) -> Self::Owned {
        self.iter().map(T::owned).collect()
    }

    fn value(&self) -> Value {
        Value::List(self.iter().map(T::value).collect())
    }

    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        out.push(b'[');
        for (index, item) in self.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            item.write_json(out)?;
        }
        out.push(b']');
        Some(())
    }
}

/// Answers as text whose every character stands in a JSON string as itself (base64 keys, IP
/// addresses and prefixes, [`AppendText`]): written between quotes without escaping or a copy.
macro_rules! field_answer_as_plain_text {
    ($($type:ty),*) => {
        $(impl FieldAnswer for $type {
            type Owned = String;

            fn owned(&self) -> String {
                self.to_string()
            }

            fn value(&self) -> Value {
                Value::String(self.owned())
            }

            fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
                self.append_json_string(out);
                Some(())
            }
        })*
    };
}

field_answer_as_plain_text!(argus_core::PublicKey, argus_core::Endpoint, argus_core::Cidr);

impl FieldAnswer for DateTime<Utc> {
    type Owned = Self;

    fn owned(&self) -> Self {
        *self
    }

    fn value(&self) -> Value {
        InputType::to_value(self)
    }

    /// async-graphql's `DateTime` text (RFC 3339), which needs no escaping.
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        out.push(b'"');
        append_rfc3339(self, out);
        out.push(b'"');
        Some(())
    }
}

/// Appends `at` as chrono's `to_rfc3339` writes it (`2026-11-26T04:35:05.123+00:00`), without an
/// allocation or the formatting machinery for times of the years 0 to 9999 in whole milliseconds
/// (every event time): a page of peers writes a hundred or more, and they were a twentieth of it.
fn append_rfc3339(at: &DateTime<Utc>, out: &mut Vec<u8>) {
    let nanos = at.nanosecond();
    let (Ok(year @ 0..=9999), 0, 0..1_000_000_000) = (u32::try_from(at.year()), nanos % 1_000_000, nanos) else {
        return out.extend_from_slice(at.to_rfc3339().as_bytes());
    };
    let digits = |out: &mut Vec<u8>, before: &[u8], value: u32| {
        out.extend_from_slice(before);
        out.extend_from_slice(&[b'0' + (value / 10) as u8, b'0' + (value % 10) as u8]);
    };
    digits(out, b"", year / 100);
    digits(out, b"", year % 100);
    digits(out, b"-", at.month());
    digits(out, b"-", at.day());
    digits(out, b"T", at.hour());
    digits(out, b":", at.minute());
    digits(out, b":", at.second());
    let millis = nanos / 1_000_000;
    if millis > 0 {
        digits(out, b".", millis / 10);
        out.push(b'0' + (millis % 10) as u8);
    }
    out.extend_from_slice(b"+00:00");
}

/// Answers of values async-graphql converts itself, each written by `$write` as serialising the
/// converted value would write it.
macro_rules! field_answer_as_graphql_value {
    ($write:ident: $($type:ty),*) => {
        $(impl FieldAnswer for $type {
            type Owned = Self;

            fn owned(&self) -> Self {
                *self
            }

            fn value(&self) -> Value {
                InputType::to_value(self)
            }

            fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
                $write(self, out)
            }
        })*
    };
}

field_answer_as_graphql_value!(write_number: u16, u64, f64);
field_answer_as_graphql_value!(write_enum_name: WireguardPeerStatus, ObservationSource, ClearanceLevel);

fn write_number(number: &impl serde::Serialize, out: &mut Vec<u8>) -> Option<()> {
    serde_json::to_writer(out, number).ok()
}

/// An enumeration's answer: its item's name.
fn write_enum_name<T: EnumType>(value: &T, out: &mut Vec<u8>) -> Option<()> {
    let item = T::items().iter().find(|item| item.value == *value)?;
    out.push(b'"');
    out.extend_from_slice(item.name.as_bytes());
    out.push(b'"');
    Some(())
}

/// Writes one field of a peer record as its JSON answer (see [`PeerView::field_writer`]).
pub(crate) type PeerFieldWriter = fn(&PeerRecord, &mut Vec<u8>) -> Option<()>;

/// Each of `WireguardPeer`'s fields as computed from a [`PeerRecord`], listed once for the three
/// ways of answering: a whole [`WireguardPeer`], a [`PeerView`] field by field, and JSON written
/// field by field (direct answers).
macro_rules! wireguard_peer_fields {
    ($($field:ident ($name:literal) = |$record:ident| $value:expr,)*) => {
        impl From<&PeerRecord> for WireguardPeer {
            fn from(record: &PeerRecord) -> Self {
                Self { $($field: FieldAnswer::owned(&{ let $record = record; $value }),)* }
            }
        }

        impl PeerView {
            /// The value of the field named `name` (its GraphQL name), `None` for no such field.
            pub(crate) fn field_value(&self, name: &str) -> Option<Value> {
                let record = &self.0;
                match name {
                    $($name => Some(FieldAnswer::value(&{ let $record = record; $value })),)*
                    _ => None,
                }
            }

            /// What writes the field named `name` as its JSON answer (the value of
            /// [`PeerView::field_value`], serialised); `None` for no such field. Looked up once
            /// per query text, called for every peer of every page.
            pub(crate) fn field_writer(name: &str) -> Option<PeerFieldWriter> {
                match name {
                    $($name => Some((|$record: &PeerRecord, out: &mut Vec<u8>| FieldAnswer::write_json(&$value, out)) as PeerFieldWriter),)*
                    _ => None,
                }
            }
        }
    };
}

wireguard_peer_fields! {
    public_key("publicKey") = |record| record.public_key,
    host("host") = |record| record.host.as_str(),
    interface("interface") = |record| record.interface.as_str(),
    status("status") = |record| WireguardPeerStatus::from(record.status),
    endpoint("endpoint") = |record| record.endpoint,
    allowed_ips("allowedIps") = |record| &record.allowed_ips[..],
    latest_handshake("latestHandshake") = |record| record.latest_handshake.map(date_time),
    handshake_age_seconds("handshakeAgeSeconds") = |record| record.handshake_age_ms.map(|age| age as f64 / 1000.0),
    transfer_rx("transferRx") = |record| record.rx_total_bytes,
    transfer_tx("transferTx") = |record| record.tx_total_bytes,
    rx_bytes_per_second("rxBytesPerSecond") = |record| record.rx_bytes_per_s,
    tx_bytes_per_second("txBytesPerSecond") = |record| record.tx_bytes_per_s,
    persistent_keepalive("persistentKeepalive") = |record| record.persistent_keepalive,
    source("source") = |record| ObservationSource::from(record.source),
    clearance("clearance") = |record| ClearanceLevel::from(record.clearance),
    display_name("displayName") = |record| record.metadata.display_name.as_deref(),
    owner("owner") = |record| record.metadata.owner.as_deref(),
    tags("tags") = |record| &record.metadata.tags[..],
    observed_at("observedAt") = |record| date_time(record.observed_at),
}

/// A peer record answered as a `WireguardPeer` (the same type in the schema) without building
/// one: only the selected fields are computed, each straight into its answer. A page of peers is
/// the API's hottest answer.
#[derive(Debug, Clone)]
pub struct PeerView(pub PeerRecord);

impl OutputType for PeerView {
    fn type_name() -> Cow<'static, str> {
        <WireguardPeer as OutputType>::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <WireguardPeer as OutputType>::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, _field: &Positioned<Field>) -> ServerResult<Value> {
        resolve_container(ctx, self).await
    }
}

impl ContainerType for PeerView {
    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        Ok(self.field_value(&ctx.item.node.name.node))
    }
}

/// A peer as one observation left it: the audit trail.
#[derive(SimpleObject, Debug, Clone)]
pub struct PeerHistoryEntry {
    pub host: String,
    pub interface: String,
    pub observed_at: DateTime<Utc>,
    pub status: WireguardPeerStatus,
    pub endpoint: Option<String>,
    pub latest_handshake: Option<DateTime<Utc>>,
    pub handshake_age_seconds: Option<f64>,
    pub rx_delta_bytes: u64,
    pub tx_delta_bytes: u64,
    pub transfer_rx: u64,
    pub transfer_tx: u64,
    pub rx_bytes_per_second: f64,
    pub tx_bytes_per_second: f64,
    /// The counters went down: the interface or peer restarted.
    pub counter_reset: bool,
}

impl From<&HistoryRow> for PeerHistoryEntry {
    fn from(row: &HistoryRow) -> Self {
        let reading = &row.reading;
        Self {
            host: row.host.to_string(),
            interface: row.interface.to_string(),
            observed_at: date_time(row.observed_at),
            status: reading.status.into(),
            endpoint: reading.endpoint.map(|endpoint| endpoint.to_string()),
            latest_handshake: reading.latest_handshake.map(date_time),
            handshake_age_seconds: reading.handshake_age_ms.map(|age| age as f64 / 1000.0),
            rx_delta_bytes: reading.rx_delta_bytes,
            tx_delta_bytes: reading.tx_delta_bytes,
            transfer_rx: reading.rx_total_bytes,
            transfer_tx: reading.tx_total_bytes,
            rx_bytes_per_second: reading.rx_bytes_per_s,
            tx_bytes_per_second: reading.tx_bytes_per_s,
            counter_reset: reading.counter_reset,
        }
    }
}

/// A peer's endpoint moved (roaming audit).
#[derive(SimpleObject, Debug, Clone)]
pub struct EndpointMove {
    pub host: String,
    pub interface: String,
    pub previous_endpoint: Option<String>,
    pub endpoint: String,
    pub changed_at: DateTime<Utc>,
    /// The new endpoint lies in a network this peer was never seen in.
    pub new_network: bool,
}

impl From<&EndpointChange> for EndpointMove {
    fn from(change: &EndpointChange) -> Self {
        Self {
            host: change.host.to_string(),
            interface: change.interface.to_string(),
            previous_endpoint: change.from.map(|endpoint| endpoint.to_string()),
            endpoint: change.to.to_string(),
            changed_at: date_time(change.changed_at),
            new_network: change.new_network,
        }
    }
}

/// One numeric fact behind an alert, e.g. `handshake_age_s = 412`.
#[derive(SimpleObject, Debug, Clone)]
pub struct Evidence {
    pub name: String,
    pub value: f64,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct WireguardAlert {
    /// Deterministic: the same episode in the same stream always has the same id.
    pub alert_id: String,
    pub kind: WireguardAlertKind,
    pub severity: AlertSeverity,
    pub state: WireguardAlertState,
    pub host: String,
    pub interface: String,
    pub public_key: Option<String>,
    pub clearance: ClearanceLevel,
    pub probable_cause: Option<AlertCause>,
    pub evidence: Vec<Evidence>,
    pub summary: String,
    pub raised_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
}

impl From<&Alert> for WireguardAlert {
    fn from(alert: &Alert) -> Self {
        Self {
            alert_id: alert.alert_id.to_string(),
            kind: alert.kind.into(),
            severity: alert.severity.into(),
            state: alert.state.into(),
            host: alert.host.to_string(),
            interface: alert.interface.to_string(),
            public_key: alert.public_key.map(|key| key.to_string()),
            clearance: alert.clearance.into(),
            probable_cause: alert.probable_cause.map(Into::into),
            evidence: alert
                .evidence
                .iter()
                .map(|(name, value)| Evidence { name: name.clone(), value: *value })
                .collect(),
            summary: alert.summary.clone(),
            raised_at: date_time(alert.raised_at),
            resolved_at: alert.resolved_at.map(date_time),
            acknowledged_by: None,
            acknowledged_at: None,
        }
    }
}

impl From<&AlertRow> for WireguardAlert {
    fn from(row: &AlertRow) -> Self {
        Self {
            acknowledged_by: row.acknowledged_by.clone(),
            acknowledged_at: row.acknowledged_at.map(date_time),
            ..WireguardAlert::from(&row.alert)
        }
    }
}

/// A gateway interface and whether it is heard from.
#[derive(SimpleObject, Debug, Clone)]
pub struct WireguardHost {
    pub host: String,
    pub interface: String,
    pub status: GatewayStatus,
    pub last_heartbeat_at: DateTime<Utc>,
    pub interface_public_key: Option<String>,
    pub listen_port: Option<u16>,
    pub peer_count: u32,
    pub scan_interval_seconds: f64,
}

impl From<&HostRecord> for WireguardHost {
    fn from(record: &HostRecord) -> Self {
        Self {
            host: record.host.to_string(),
            interface: record.interface.to_string(),
            status: record.status.into(),
            last_heartbeat_at: date_time(record.last_heartbeat_at),
            interface_public_key: record.interface_public_key.map(|key| key.to_string()),
            listen_port: record.listen_port,
            peer_count: record.peer_count,
            scan_interval_seconds: f64::from(record.scan_interval_ms) / 1000.0,
        }
    }
}

/// Peer counts by status.
#[derive(SimpleObject, Debug, Clone, Copy)]
pub struct PeerCounts {
    pub total: u64,
    pub never_connected: u64,
    pub active: u64,
    pub stale: u64,
    pub removed: u64,
}

impl From<&argus_core::StatusCounts> for PeerCounts {
    fn from(counts: &argus_core::StatusCounts) -> Self {
        Self {
            total: counts.total(),
            never_connected: counts.never_connected,
            active: counts.active,
            stale: counts.stale,
            removed: counts.removed,
        }
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct HostTraffic {
    pub host: String,
    pub peers: Plain<PeerCounts>,
    pub transfer_rx: u64,
    pub transfer_tx: u64,
    pub rx_bytes_per_second: f64,
    pub tx_bytes_per_second: f64,
}

impl From<&HostStatsSummary> for HostTraffic {
    fn from(summary: &HostStatsSummary) -> Self {
        Self {
            host: summary.host.to_string(),
            peers: Plain((&summary.peers).into()),
            transfer_rx: summary.rx_total_bytes,
            transfer_tx: summary.tx_total_bytes,
            rx_bytes_per_second: summary.rx_bytes_per_s,
            tx_bytes_per_second: summary.tx_bytes_per_s,
        }
    }
}

/// Statistics of every peer the caller may see.
#[derive(SimpleObject, Debug, Clone)]
pub struct WireguardStats {
    pub peers: Plain<PeerCounts>,
    pub transfer_rx: u64,
    pub transfer_tx: u64,
    pub rx_bytes_per_second: f64,
    pub tx_bytes_per_second: f64,
    pub hosts: PlainList<HostTraffic>,
}

impl From<&Stats> for WireguardStats {
    fn from(stats: &Stats) -> Self {
        Self {
            peers: Plain((&stats.peers).into()),
            transfer_rx: stats.rx_total_bytes,
            transfer_tx: stats.tx_total_bytes,
            rx_bytes_per_second: stats.rx_bytes_per_s,
            tx_bytes_per_second: stats.tx_bytes_per_s,
            hosts: stats.hosts.iter().map(HostTraffic::from).collect(),
        }
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

/// An accepted write: where its event landed on the log.
#[derive(SimpleObject, Debug, Clone)]
pub struct AcceptedEvent {
    pub event_id: String,
}

/// Where one expected key stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationState {
    /// The expected key is live and no retired key is.
    Rotated,
    /// A retired key is still presented.
    Pending,
    /// Neither the expected nor a retired key is on the interface.
    NotSeen,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct RotationStatusEntry {
    pub host: String,
    pub interface: String,
    pub label: Option<String>,
    pub expected_key: String,
    pub state: RotationState,
    /// Retired keys still presented on the interface.
    pub retired_keys_live: Vec<String>,
}

/// A peer that handshook or moved traffic in a time window (shift audit).
#[derive(SimpleObject, Debug, Clone)]
pub struct ActivePeer {
    pub public_key: String,
    pub host: String,
    pub interface: String,
    pub display_name: Option<String>,
    pub first_seen_active: DateTime<Utc>,
    pub last_seen_active: DateTime<Utc>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use argus_core::fold::PeerMetadata;
    use argus_core::{Clearance, PeerSource, PeerStatus, PublicKey};
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::*;
    use crate::plain::Plain;

    fn record() -> PeerRecord {
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
            counter_reset: false,
            persistent_keepalive: Some(25),
            source: PeerSource::Userspace,
            clearance: Clearance::Secret,
            metadata: Arc::new(PeerMetadata {
                display_name: Some("Paris \"core\"".into()),
                owner: Some("noc@example.org".into()),
                tags: vec!["site:paris".into(), "tier:1".into()],
            }),
        }
    }

    struct Query;

    #[Object]
    impl Query {
        async fn whole(&self) -> WireguardPeer {
            WireguardPeer::from(&record())
        }
        async fn view(&self) -> PeerView {
            PeerView(record())
        }
        async fn plain_view(&self) -> Plain<PeerView> {
            Plain(PeerView(record()))
        }
    }

    #[tokio::test]
    async fn a_peer_view_answers_every_field_exactly_as_the_whole_peer() {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        // every field of the type, as the schema lists it
        let listed = schema.execute(r#"{ __type(name: "WireguardPeer") { fields { name } } }"#).await;
        let listed = listed.data.into_json().expect("json");
        let fields: Vec<&str> = listed["__type"]["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|field| field["name"].as_str().expect("a name"))
            .collect();
        assert_eq!(fields.len(), 19, "{fields:?}");
        let selection = format!("{{ __typename {} }}", fields.join(" "));
        let mut answers = Vec::new();
        for root in ["whole", "view", "plainView"] {
            let response = schema.execute(format!("{{ {root} {selection} }}")).await;
            assert!(response.errors.is_empty(), "{root}: {:?}", response.errors);
            let async_graphql::Value::Object(mut data) = response.data else { panic!("{root}: no data") };
            answers.push(data.swap_remove(root).expect("the field").to_string());
        }
        assert!(!answers[0].contains("null"), "every field has a value: {}", answers[0]);
        assert_eq!(answers[0], answers[1]);
        assert_eq!(answers[0], answers[2]);
        for field in fields {
            let mut written = Vec::new();
            let writer = PeerView::field_writer(field).unwrap_or_else(|| panic!("no writer for {field}"));
            writer(&record(), &mut written).expect("written");
            let value = PeerView(record()).field_value(field).expect("a value");
            assert_eq!(
                String::from_utf8(written).expect("utf-8"),
                serde_json::to_string(&value).expect("json"),
                "{field}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn times_are_written_as_chrono_writes_them(millis in -80_000_000_000_000i64..300_000_000_000_000) {
            let mut written = Vec::new();
            append_rfc3339(&date_time(millis), &mut written);
            proptest::prop_assert_eq!(String::from_utf8(written).expect("utf-8"), date_time(millis).to_rfc3339());
        }
    }

    #[test]
    fn times_of_every_kind_are_written_as_chrono_writes_them() {
        let whole_second = date_time(1_780_000_000_000);
        let odd = whole_second + chrono::Duration::nanoseconds(1_500);
        for at in [whole_second, date_time(1_780_000_000_007), date_time(-1), odd, DateTime::<Utc>::MIN_UTC] {
            let mut written = Vec::new();
            append_rfc3339(&at, &mut written);
            assert_eq!(String::from_utf8(written).expect("utf-8"), at.to_rfc3339());
        }
    }

    #[test]
    fn text_written_unescaped_needs_no_escaping() {
        let endpoint: argus_core::Endpoint = "[fe80::1%4]:51820".parse().expect("scoped endpoint");
        let mut written = Vec::new();
        endpoint.write_json(&mut written).expect("written");
        assert_eq!(
            String::from_utf8(written).expect("utf-8"),
            serde_json::to_string(&endpoint.to_string()).expect("json")
        );
    }
}
