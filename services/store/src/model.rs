//! What the store writes and reads: batches, rows, filters, pages, cursors and errors.

use argus_core::fold::Effect;
use argus_core::text::AppendText;
use argus_core::{
    Alert, AlertAcknowledged, AlertId, AlertKind, AlertState, Clearance, HostId, HostStats, InterfaceName,
    ManifestEntry, OrgId, PeerRecord, PeerStatus, PublicKey, RotationManifestSet, SilenceId, SilenceSet, StatusCounts,
    UnixMillis,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Where the processor stands in one log partition, and the fold state it had there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Log partition, e.g. `wireguard.observations/3`.
    pub partition: String,
    /// The next offset to consume.
    pub next_offset: u64,
    /// Fold state snapshot as of `next_offset`, opaque to the store (encoded as one byte string:
    /// megabytes for a large fleet, which serde would otherwise visit a byte at a time).
    #[serde(with = "serde_bytes")]
    pub snapshot: Vec<u8>,
}

/// One `manifests` row: the rotation manifest one interface's operators of one clearance last set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRow {
    pub org_id: OrgId,
    pub host: HostId,
    pub interface: InterfaceName,
    /// The clearance of its authors: it applies to peers at or below it, and only callers at or
    /// above it see it.
    pub clearance: Clearance,
    pub set_at: UnixMillis,
    pub entries: Vec<ManifestEntry>,
}

impl From<&RotationManifestSet> for ManifestRow {
    fn from(manifest: &RotationManifestSet) -> Self {
        Self {
            org_id: manifest.header.org_id.clone(),
            host: manifest.header.host.clone(),
            interface: manifest.header.interface.clone(),
            clearance: manifest.scope(),
            set_at: manifest.header.observed_at,
            entries: manifest.entries.clone(),
        }
    }
}

/// One `silences` row: a silence (maintenance window) as last set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceRow {
    pub org_id: OrgId,
    pub host: HostId,
    /// `None`: every interface of the host.
    pub interface: Option<InterfaceName>,
    pub silence_id: SilenceId,
    pub public_key: Option<PublicKey>,
    pub starts_at: UnixMillis,
    pub ends_at: UnixMillis,
    pub reason: String,
    pub author: String,
    /// Its author's: only callers at or above it see it.
    pub clearance: Clearance,
    pub set_at: UnixMillis,
}

impl From<&SilenceSet> for SilenceRow {
    fn from(silence: &SilenceSet) -> Self {
        Self {
            org_id: silence.header.org_id.clone(),
            host: silence.header.host.clone(),
            interface: (!silence.whole_host).then(|| silence.header.interface.clone()),
            silence_id: silence.silence_id,
            public_key: silence.public_key,
            starts_at: silence.starts_at,
            ends_at: silence.ends_at,
            reason: silence.reason.clone(),
            author: silence.author.clone(),
            clearance: silence.clearance,
            set_at: silence.header.observed_at,
        }
    }
}

/// Everything one projection write carries; committed atomically (embedded) and idempotently
/// (everywhere): the same batch applied twice leaves identical tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub effects: Vec<Effect>,
    pub host_stats: Vec<HostStats>,
    /// Written last, in the same commit: the checkpoint never runs ahead of the rows it covers.
    pub checkpoint: Option<Checkpoint>,
}

/// One `peer_history` row: a peer as one observation left it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub org_id: OrgId,
    pub host: HostId,
    pub interface: InterfaceName,
    pub public_key: PublicKey,
    pub observed_at: UnixMillis,
    /// The embedded store stores this alone, its key holding the rest; postcard writes a nested
    /// struct as its fields in a row, so a whole row's bytes are as if these fields were inline.
    pub reading: PeerReading,
}

/// What one observation left of a peer, without where and when: a history row's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerReading {
    pub status: PeerStatus,
    #[serde(with = "argus_core::packed::option")]
    pub endpoint: Option<argus_core::Endpoint>,
    pub latest_handshake: Option<UnixMillis>,
    pub handshake_age_ms: Option<i64>,
    pub rx_delta_bytes: u64,
    pub tx_delta_bytes: u64,
    pub rx_total_bytes: u64,
    pub tx_total_bytes: u64,
    pub rx_bytes_per_s: f64,
    pub tx_bytes_per_s: f64,
    pub counter_reset: bool,
    pub clearance: Clearance,
}

impl From<&PeerRecord> for HistoryRow {
    fn from(record: &PeerRecord) -> Self {
        Self {
            org_id: record.org_id.clone(),
            host: record.host.clone(),
            interface: record.interface.clone(),
            public_key: record.public_key,
            observed_at: record.observed_at,
            reading: PeerReading::from(record),
        }
    }
}

impl From<&PeerRecord> for PeerReading {
    fn from(record: &PeerRecord) -> Self {
        Self {
            status: record.status,
            endpoint: record.endpoint,
            latest_handshake: record.latest_handshake,
            handshake_age_ms: record.handshake_age_ms,
            rx_delta_bytes: record.rx_delta_bytes,
            tx_delta_bytes: record.tx_delta_bytes,
            rx_total_bytes: record.rx_total_bytes,
            tx_total_bytes: record.tx_total_bytes,
            rx_bytes_per_s: record.rx_bytes_per_s,
            tx_bytes_per_s: record.tx_bytes_per_s,
            counter_reset: record.counter_reset,
            clearance: record.clearance,
        }
    }
}

/// One `alerts` row: the alert's latest transition and its acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRow {
    pub alert: Alert,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<UnixMillis>,
}

impl AlertRow {
    /// Folds a transition into the row: RESOLVED is final (ids are per episode), so replaying an
    /// older RAISED never reopens it; the acknowledgement is kept.
    pub fn merge(existing: Option<AlertRow>, alert: &Alert) -> AlertRow {
        match existing {
            Some(row) if row.alert.state == AlertState::Resolved && alert.state == AlertState::Raised => row,
            Some(row) => AlertRow { alert: alert.clone(), ..row },
            None => AlertRow { alert: alert.clone(), acknowledged_by: None, acknowledged_at: None },
        }
    }

    /// Records the first acknowledgement; later ones (or replays) change nothing.
    pub fn acknowledge(&mut self, acknowledgement: &AlertAcknowledged) {
        if self.acknowledged_at.is_none() {
            self.acknowledged_by = Some(acknowledgement.acknowledged_by.clone());
            self.acknowledged_at = Some(acknowledgement.header.observed_at);
        }
    }
}

/// Which peers of an organisation to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PeerFilter {
    pub host: Option<HostId>,
    /// Only honoured together with `host` narrowing the scan; alone it filters rows.
    pub interface: Option<InterfaceName>,
    pub status: Option<PeerStatus>,
    /// `Some(true)`: stale peers only; `Some(false)`: all but stale peers.
    pub stale: Option<bool>,
    /// Case-insensitive substring of host, interface, key, endpoint, allowed IPs, name, owner or tags.
    pub text: Option<String>,
}

impl PeerFilter {
    /// Whether a page may read past its `first` rows: this filter tests rows rather than
    /// narrowing the scan to a gateway's.
    pub fn tests_rows(&self) -> bool {
        self.status.is_some()
            || self.stale.is_some()
            || self.text.is_some()
            || self.host.is_none() && self.interface.is_some()
    }

    pub fn matches(&self, record: &PeerRecord) -> bool {
        self.host.as_ref().is_none_or(|host| *host == record.host)
            && self.interface.as_ref().is_none_or(|interface| *interface == record.interface)
            && self.status.is_none_or(|status| status == record.status)
            && self.stale.is_none_or(|stale| stale == (record.status == PeerStatus::Stale))
            && self.text.as_deref().is_none_or(|text| text_matches(record, text))
    }
}

fn text_matches(record: &PeerRecord, text: &str) -> bool {
    let needle = text.to_lowercase();
    let contains = |haystack: &str| haystack.to_lowercase().contains(&needle);
    contains(record.host.as_str())
        || contains(record.interface.as_str())
        || contains(&record.public_key.to_string())
        || record.endpoint.is_some_and(|endpoint| contains(&endpoint.to_string()))
        || record.allowed_ips.iter().any(|cidr| contains(&cidr.to_string()))
        || record.metadata.display_name.as_deref().is_some_and(contains)
        || record.metadata.owner.as_deref().is_some_and(contains)
        || record.metadata.tags.iter().any(|tag| contains(tag))
}

/// Which alerts of an organisation to list (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    pub range: TimeRange,
    pub state: Option<AlertState>,
    pub kind: Option<AlertKind>,
    /// Only the alerts of this incident.
    pub incident: Option<AlertId>,
    /// Only silenced alerts, or only the others.
    pub silenced: Option<bool>,
}

impl AlertFilter {
    pub fn matches(&self, row: &AlertRow) -> bool {
        self.state.is_none_or(|state| state == row.alert.state)
            && self.kind.is_none_or(|kind| kind == row.alert.kind)
            && self.incident.is_none_or(|incident| row.alert.incident_id == Some(incident))
            && self.silenced.is_none_or(|silenced| row.alert.silenced == silenced)
    }
}

/// Half-open event-time range `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from: UnixMillis,
    pub to: UnixMillis,
}

impl Default for TimeRange {
    fn default() -> Self {
        Self { from: i64::MIN, to: i64::MAX }
    }
}

impl TimeRange {
    pub fn contains(&self, at: UnixMillis) -> bool {
        self.from <= at && at < self.to
    }
}

/// An opaque position in a listing; only valid for the listing and organisation that issued it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(String);

/// Which listing issued a cursor: the first byte of every cursor, so that a cursor resumes only
/// the listing that issued it (another listing's is refused, as one of another organisation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Peers = 1,
    History = 2,
    Alerts = 3,
}

impl Cursor {
    /// The cursor of the row at `key` in `listing`.
    pub fn from_key(listing: Listing, key: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(1 + key.len());
        bytes.push(listing as u8);
        bytes.extend_from_slice(key);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn parse(text: &str) -> Result<Self, StoreError> {
        URL_SAFE_NO_PAD.decode(text).map_err(|_| StoreError::InvalidCursor)?;
        Ok(Self(text.to_owned()))
    }

    /// The row key this cursor stands at, if `listing` issued it.
    pub fn key(&self, listing: Listing) -> Result<Vec<u8>, StoreError> {
        let mut bytes = URL_SAFE_NO_PAD.decode(&self.0).map_err(|_| StoreError::InvalidCursor)?;
        match bytes.first() {
            Some(&tag) if tag == listing as u8 => Ok(bytes.split_off(1)),
            _ => Err(StoreError::InvalidCursor),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A cursor's text is base64url without padding (`A`–`Z`, `a`–`z`, `0`–`9`, `-`, `_`).
impl AppendText for Cursor {
    fn append_text(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
    }
}

/// How much of a listing to return.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageRequest {
    pub first: usize,
    pub after: Option<Cursor>,
}

impl PageRequest {
    pub fn first(first: usize) -> Self {
        Self { first, after: None }
    }
}

/// A page of a listing; `next` continues after its last item, `None` at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where each item stands: a listing resumed from `cursors[i]` starts after `items[i]`.
    pub cursors: Vec<Cursor>,
    pub next: Option<Cursor>,
}

/// Statistics of what a caller may see in one organisation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub peers: StatusCounts,
    pub rx_total_bytes: u64,
    pub tx_total_bytes: u64,
    pub rx_bytes_per_s: f64,
    pub tx_bytes_per_s: f64,
    /// One entry per gateway with visible peers, ordered by host.
    pub hosts: Vec<HostStatsSummary>,
}

/// Statistics of one gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct HostStatsSummary {
    pub host: HostId,
    pub peers: StatusCounts,
    pub rx_total_bytes: u64,
    pub tx_total_bytes: u64,
    pub rx_bytes_per_s: f64,
    pub tx_bytes_per_s: f64,
}

impl Stats {
    /// Sums per-host, per-clearance rows (ordered by host) at or below `max_clearance`.
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = &'a HostStats>, max_clearance: Clearance) -> Stats {
        let mut stats = Stats::default();
        for row in rows.into_iter().filter(|row| row.clearance <= max_clearance) {
            if stats.hosts.last().is_none_or(|last| last.host != row.host) {
                stats.hosts.push(HostStatsSummary {
                    host: row.host.clone(),
                    peers: StatusCounts::default(),
                    rx_total_bytes: 0,
                    tx_total_bytes: 0,
                    rx_bytes_per_s: 0.0,
                    tx_bytes_per_s: 0.0,
                });
            }
            if let Some(host) = stats.hosts.last_mut() {
                host.peers.merge(&row.peers);
                host.rx_total_bytes = host.rx_total_bytes.saturating_add(row.rx_total_bytes);
                host.tx_total_bytes = host.tx_total_bytes.saturating_add(row.tx_total_bytes);
                host.rx_bytes_per_s += row.rx_bytes_per_s;
                host.tx_bytes_per_s += row.tx_bytes_per_s;
            }
            stats.peers.merge(&row.peers);
            stats.rx_total_bytes = stats.rx_total_bytes.saturating_add(row.rx_total_bytes);
            stats.tx_total_bytes = stats.tx_total_bytes.saturating_add(row.tx_total_bytes);
            stats.rx_bytes_per_s += row.rx_bytes_per_s;
            stats.tx_bytes_per_s += row.tx_bytes_per_s;
        }
        stats
    }
}

/// Why a store call failed, classified for the caller.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Bad input from the caller: do not retry.
    #[error("cursor is not valid for this listing")]
    InvalidCursor,
    /// The store is unreachable or failing: retry with backoff.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored bytes do not decode: a bug or a damaged store; do not retry.
    #[error("stored row in {table} does not decode: {reason}")]
    Corrupt { table: &'static str, reason: String },
    /// The store file was written by a version that lays rows out differently; do not retry.
    #[error(
        "the store file holds rows in format {found}, this version reads format {expected}: rebuild it from the \
         log with `argus replay`, or start on an empty data directory"
    )]
    Format { found: u8, expected: u8 },
}
