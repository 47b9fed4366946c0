//! The pure fold: `apply(event, now)` turns log events into projection writes and alerts.
//!
//! State is kept per gateway (organisation + host), each holding its interfaces and their peers.
//! The fold reads no clock: event time (`observed_at`) drives every rule, and `now` (processing
//! time, given by the runner) only dates heartbeats for the gateway-silence check in [`FoldState::tick`].

mod baseline;
mod config;
mod incident;
mod interface;
mod peer;
mod silence;

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::{FxBuildHasher, FxHashMap};
use serde::{Deserialize, Serialize};

use self::baseline::AnomalyVerdict;
pub use self::baseline::TrafficBaseline;
use self::config::millis;
pub use self::config::{AnomalyConfig, RuleConfig, StalenessWindow, UpstreamGroup};
use self::interface::{HeartbeatSeen, InterfaceState, KeyVerdict, ProbeSeen, StaleJudgement};
pub use self::peer::PeerMetadata;
use self::peer::{ObservationOutcome, PeerAlert, PeerState};
pub use self::silence::MAX_SILENCES_PER_HOST;
use self::silence::Silences;
use crate::alert::{Alert, AlertId, AlertKind, AlertState, ProbableCause, Severity};
use crate::event::{
    AlertAcknowledged, Event, EventHeader, Heartbeat, PathProbe, PeerObservation, PeerRemoved, PeerSource,
    RotationManifestSet, SilenceSet, UnixMillis,
};
use crate::ids::{Clearance, CollectorId, HostId, InterfaceName, OrgId};
use crate::key::PublicKey;
use crate::net::{Cidr, Endpoint};

/// Where a peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PeerStatus {
    /// WireGuard reports no handshake, ever.
    NeverConnected,
    /// Handshake within the staleness window.
    Active,
    /// No handshake within the staleness window.
    Stale,
    /// Gone from its interface.
    Removed,
}

/// Whether a gateway interface is heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HostStatus {
    Alive,
    Silent,
}

/// A peer's current state after one event, with that observation's deltas: the `peers` row and
/// one `peer_history` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRecord {
    pub org_id: OrgId,
    pub host: HostId,
    pub interface: InterfaceName,
    pub public_key: PublicKey,
    pub observed_at: UnixMillis,
    pub status: PeerStatus,
    #[serde(with = "crate::packed::option")]
    pub endpoint: Option<Endpoint>,
    #[serde(with = "crate::packed::list")]
    pub allowed_ips: Arc<[Cidr]>,
    /// Latest handshake known (kept across an interface restart that reports "never").
    pub latest_handshake: Option<UnixMillis>,
    pub handshake_age_ms: Option<i64>,
    /// Cumulative counters as last reported.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Bytes moved since the previous observation (never negative; after a reset, the new value).
    pub rx_delta_bytes: u64,
    pub tx_delta_bytes: u64,
    /// Bytes moved since the peer was first observed; survives counter resets.
    pub rx_total_bytes: u64,
    pub tx_total_bytes: u64,
    pub rx_bytes_per_s: f64,
    pub tx_bytes_per_s: f64,
    /// This observation's counters went down: the interface or peer was restarted.
    pub counter_reset: bool,
    pub persistent_keepalive: Option<u16>,
    pub source: PeerSource,
    pub clearance: Clearance,
    #[serde(deserialize_with = "PeerMetadata::deserialize_shared")]
    pub metadata: Arc<PeerMetadata>,
}

/// Liveness of one gateway interface: the `hosts` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub org_id: OrgId,
    pub host: HostId,
    pub interface: InterfaceName,
    pub status: HostStatus,
    pub last_heartbeat_at: UnixMillis,
    pub interface_public_key: Option<PublicKey>,
    pub listen_port: Option<u16>,
    pub peer_count: u32,
    pub scan_interval_ms: u32,
    pub clearance: Clearance,
}

/// Peer counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    pub never_connected: u64,
    pub active: u64,
    pub stale: u64,
    pub removed: u64,
}

impl StatusCounts {
    pub fn add(&mut self, status: PeerStatus) {
        match status {
            PeerStatus::NeverConnected => self.never_connected += 1,
            PeerStatus::Active => self.active += 1,
            PeerStatus::Stale => self.stale += 1,
            PeerStatus::Removed => self.removed += 1,
        }
    }

    pub fn merge(&mut self, other: &StatusCounts) {
        self.never_connected += other.never_connected;
        self.active += other.active;
        self.stale += other.stale;
        self.removed += other.removed;
    }

    pub fn total(&self) -> u64 {
        self.never_connected + self.active + self.stale + self.removed
    }
}

/// Statistics of one gateway's peers at one clearance level (over all its interfaces): the
/// `host_stats` row, written whole so that it is idempotent; readers sum the rows they may see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStats {
    pub org_id: OrgId,
    pub host: HostId,
    pub clearance: Clearance,
    pub peers: StatusCounts,
    pub rx_total_bytes: u64,
    pub tx_total_bytes: u64,
    /// Sum of the peers' latest rates.
    pub rx_bytes_per_s: f64,
    pub tx_bytes_per_s: f64,
}

impl HostStats {
    /// No peer at this level: the row is removed rather than written.
    pub fn is_empty(&self) -> bool {
        self.peers.total() == 0
    }
}

/// A peer's endpoint moved: an audit row in its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointChange {
    pub org_id: OrgId,
    pub host: HostId,
    pub interface: InterfaceName,
    pub public_key: PublicKey,
    #[serde(with = "crate::packed::option")]
    pub from: Option<Endpoint>,
    #[serde(with = "crate::packed::one")]
    pub to: Endpoint,
    pub changed_at: UnixMillis,
    /// The new endpoint lies in a network this peer was never seen in.
    pub new_network: bool,
    pub clearance: Clearance,
}

/// What the runner must do after an event: projection writes and alert publications.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    PeerUpdated(PeerRecord),
    HostUpdated(HostRecord),
    EndpointChanged(EndpointChange),
    Alert(Alert),
    /// An interface's rotation manifest was replaced (the `manifests` row).
    ManifestSet(RotationManifestSet),
    /// An operator acknowledged an alert (the first acknowledgement of an alert is kept).
    AlertAcknowledged(AlertAcknowledged),
    /// A silence was set, changed or ended (the `silences` row).
    SilenceSet(SilenceSet),
}

/// Why the fold refused an event: nothing of it was applied. The runner records it (a dead
/// letter with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("seq {seq} is more than {allowed_s} s ahead of processing time {now}")]
    SeqAhead { seq: u64, now: UnixMillis, allowed_s: u64 },
    #[error("an API write at {writer} cannot give a peer clearance {requested}")]
    ClearanceAboveWriter { writer: Clearance, requested: Clearance },
    #[error("peer {key} on {host}/{interface} is {peer}, above the API writer's {writer}")]
    PeerAboveWriter { key: PublicKey, host: HostId, interface: InterfaceName, peer: Clearance, writer: Clearance },
    #[error("an API write cannot lower peer {key} on {host}/{interface} from {from} to {to}")]
    LowersClearance { key: PublicKey, host: HostId, interface: InterfaceName, from: Clearance, to: Clearance },
    #[error("host {host} already has {max} silences that are not over")]
    TooManySilences { host: HostId, max: usize },
}

/// An alert raised and not yet resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OpenAlert {
    id: AlertId,
    raised_at: UnixMillis,
    severity: Severity,
    cause: Option<ProbableCause>,
    /// The incident a stale alert is part of.
    incident: Option<AlertId>,
}

/// Who an alert is about.
struct AlertSubject<'a> {
    org_id: &'a OrgId,
    host: &'a HostId,
    interface: &'a InterfaceName,
    public_key: Option<PublicKey>,
    /// The peer's display name where one is known; for an incident, the network it covers.
    name: Option<&'a str>,
    clearance: Clearance,
}

impl AlertSubject<'_> {
    fn of_peer(record: &PeerRecord) -> AlertSubject<'_> {
        AlertSubject {
            org_id: &record.org_id,
            host: &record.host,
            interface: &record.interface,
            public_key: Some(record.public_key),
            name: record.metadata.display_name.as_deref(),
            clearance: record.clearance,
        }
    }

    fn alert(
        &self, kind: AlertKind, open: OpenAlert, state: AlertState, at: UnixMillis, revised_at: Option<UnixMillis>,
        evidence: Evidence,
    ) -> Alert {
        let subject = match (self.name, self.public_key) {
            (Some(name), Some(key)) => format!("{name} (peer {key} on {}/{})", self.host, self.interface),
            (None, Some(key)) => format!("peer {key} on {}/{}", self.host, self.interface),
            (Some(name), None) => format!("{name} on gateway {}/{}", self.host, self.interface),
            (None, None) => format!("gateway {}/{}", self.host, self.interface),
        };
        let summary = match (state, open.cause) {
            (AlertState::Raised, Some(cause)) => format!("{}: {subject}; {}", kind.words(), cause.explanation()),
            (AlertState::Raised, None) => format!("{}: {subject}", kind.words()),
            (AlertState::Resolved, _) => format!("{} over: {subject}", kind.words()),
        };
        Alert {
            alert_id: open.id,
            kind,
            severity: open.severity,
            state,
            org_id: self.org_id.clone(),
            host: self.host.clone(),
            interface: self.interface.clone(),
            public_key: self.public_key,
            clearance: self.clearance,
            probable_cause: open.cause,
            evidence: evidence.into_iter().map(|(name, value)| (name.to_owned(), value)).collect(),
            summary,
            raised_at: open.raised_at,
            resolved_at: (state == AlertState::Resolved).then_some(at),
            revised_at,
            silenced: false,
            incident_id: open.incident,
        }
    }

    /// Opens an episode of `kind` whose id is fixed by `episode_start`, and describes it.
    fn raise(
        &self, kind: AlertKind, severity: Severity, cause: Option<ProbableCause>, episode_start: UnixMillis,
        raised_at: UnixMillis, evidence: Evidence,
    ) -> (OpenAlert, Effect) {
        let open = self.open(kind, severity, cause, episode_start, raised_at);
        (open, self.raised(kind, open, evidence))
    }

    /// An episode of `kind` whose id is fixed by `episode_start`.
    fn open(
        &self, kind: AlertKind, severity: Severity, cause: Option<ProbableCause>, episode_start: UnixMillis,
        raised_at: UnixMillis,
    ) -> OpenAlert {
        let id = AlertId::derive(kind, self.org_id, self.host, self.interface, self.public_key.as_ref(), episode_start);
        OpenAlert { id, raised_at, severity, cause, incident: None }
    }

    /// The RAISED transition of `open`.
    fn raised(&self, kind: AlertKind, open: OpenAlert, evidence: Evidence) -> Effect {
        Effect::Alert(self.alert(kind, open, AlertState::Raised, open.raised_at, None, evidence))
    }

    /// The raised alert `open` again, with the cause and evidence known at `revised_at`.
    fn revise(&self, kind: AlertKind, open: OpenAlert, revised_at: UnixMillis, evidence: Evidence) -> Effect {
        Effect::Alert(self.alert(kind, open, AlertState::Raised, revised_at, Some(revised_at), evidence))
    }

    fn resolve(&self, kind: AlertKind, open: OpenAlert, resolved_at: UnixMillis, evidence: Evidence) -> Effect {
        Effect::Alert(self.alert(kind, open, AlertState::Resolved, resolved_at, None, evidence))
    }
}

type Evidence = BTreeMap<&'static str, f64>;

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// A map that finds or inserts by reference in one lookup, cloning the key only on insertion.
type LookupMap<K, V> = hashbrown::HashMap<K, V, FxBuildHasher>;

/// One gateway: the last `seq` of each of its collectors, its interfaces and its silences.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HostAggregate {
    collector_seqs: Vec<(CollectorId, u64)>,
    interfaces: LookupMap<InterfaceName, InterfaceState>,
    silences: Silences,
}

impl HostAggregate {
    /// Records `seq` and says whether the event is new: a `seq` not above the collector's last
    /// one is a duplicate or late arrival and changes nothing.
    fn accept(&mut self, header: &EventHeader) -> bool {
        match self.collector_seqs.iter_mut().find(|(collector, _)| *collector == header.collector_id) {
            Some((_, last)) if header.seq <= *last => false,
            Some((_, last)) => {
                *last = header.seq;
                true
            }
            None => {
                self.collector_seqs.push((header.collector_id.clone(), header.seq));
                true
            }
        }
    }
}

/// Staleness windows set for an organisation and for some of its interfaces.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StalenessOverrides {
    organisation: Option<StalenessWindow>,
    interfaces: FxHashMap<InterfaceName, StalenessWindow>,
}

/// The whole folded state of one log partition (or of everything, on one machine).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FoldState {
    /// Given by the runner at start and on restore; never part of a snapshot.
    #[serde(skip)]
    config: RuleConfig,
    staleness_overrides: FxHashMap<OrgId, StalenessOverrides>,
    gateways: LookupMap<OrgId, LookupMap<HostId, HostAggregate>>,
}

/// Why snapshot bytes could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot format {found} is not {SNAPSHOT_FORMAT}, the one this build reads")]
    UnknownFormat { found: u8 },
    #[error("snapshot does not decode: {reason}")]
    Malformed { reason: String },
}

/// First byte of every snapshot; bumped when the state's layout changes (5: incidents).
pub const SNAPSHOT_FORMAT: u8 = 5;

impl FoldState {
    pub fn new(config: RuleConfig) -> Self {
        Self { config, ..Self::default() }
    }

    pub fn config(&self) -> &RuleConfig {
        &self.config
    }

    /// Sets the staleness window of an organisation, or of one interface name within it.
    pub fn set_staleness_window(&mut self, org: OrgId, interface: Option<InterfaceName>, window: StalenessWindow) {
        let overrides = self.staleness_overrides.entry(org.clone()).or_default();
        match interface {
            Some(interface) => {
                overrides.interfaces.insert(interface, window);
            }
            None => overrides.organisation = Some(window),
        }
        let Self { config, staleness_overrides, gateways } = self;
        for host in gateways.get_mut(&org).into_iter().flat_map(|hosts| hosts.values_mut()) {
            for (name, interface) in &mut host.interfaces {
                interface.staleness = resolve_staleness(config, staleness_overrides, &org, name);
            }
        }
    }

    /// Points every peer's names at its gateway's (decoding gave each peer copies of its own).
    fn share_names(&mut self) {
        for (org_id, hosts) in &mut self.gateways {
            for (host, gateway) in hosts.iter_mut() {
                for (interface, state) in &mut gateway.interfaces {
                    for peer in state.peers.values_mut() {
                        peer.record.org_id = org_id.clone();
                        peer.record.host = host.clone();
                        peer.record.interface = interface.clone();
                    }
                }
            }
        }
    }

    /// The state as bytes, for a checkpoint (the rule configuration is not included).
    pub fn snapshot(&self) -> Vec<u8> {
        // sized first: grown by doubling, a snapshot of a million peers (200 MB) would need up to
        // three times that while it is copied
        let length = postcard::experimental::serialized_size(self).expect("fold state serialises to postcard");
        let mut bytes = Vec::with_capacity(1 + length);
        bytes.push(SNAPSHOT_FORMAT);
        postcard::to_extend(self, bytes).expect("fold state serialises to postcard")
    }

    /// The state a [`FoldState::snapshot`] was taken of, running under `config`.
    pub fn restore(config: RuleConfig, snapshot: &[u8]) -> Result<Self, SnapshotError> {
        match snapshot.split_first() {
            Some((&SNAPSHOT_FORMAT, body)) => {
                let mut state: FoldState = postcard::from_bytes(body)
                    .map_err(|error| SnapshotError::Malformed { reason: error.to_string() })?;
                state.share_names();
                Ok(Self { config, ..state })
            }
            Some((&found, _)) => Err(SnapshotError::UnknownFormat { found }),
            None => Err(SnapshotError::Malformed { reason: "empty snapshot".into() }),
        }
    }

    /// Number of peers held, over every gateway.
    pub fn peer_count(&self) -> usize {
        self.interfaces().map(|interface| interface.peers.len()).sum()
    }

    fn interfaces(&self) -> impl Iterator<Item = &InterfaceState> {
        self.gateways.values().flat_map(|hosts| hosts.values()).flat_map(|host| host.interfaces.values())
    }

    /// The current record of one peer.
    pub fn peer(&self, org: &OrgId, host: &HostId, interface: &InterfaceName, key: &PublicKey) -> Option<&PeerRecord> {
        let peers = &self.gateways.get(org)?.get(host)?.interfaces.get(interface)?.peers;
        peers.get(key).map(|peer| &peer.record)
    }

    /// Statistics of one gateway, one row per clearance level (sorted by level); a level without
    /// peers has a row with no peers, which tells the store to remove that level's row.
    ///
    /// Peers are added in key order, so floating-point sums do not depend on hash-map order
    /// (which differs after a restore): the same state always gives the same bytes.
    pub fn host_stats(&self, org: &OrgId, host: &HostId) -> Vec<HostStats> {
        let gateway = self.gateways.get(org).and_then(|hosts| hosts.get(host));
        let mut records: Vec<&PeerRecord> = gateway
            .into_iter()
            .flat_map(|gateway| gateway.interfaces.values())
            .flat_map(|interface| interface.peers.values())
            .map(|peer| &peer.record)
            .collect();
        records.sort_unstable_by(|left, right| {
            (left.clearance, &left.interface, left.public_key).cmp(&(
                right.clearance,
                &right.interface,
                right.public_key,
            ))
        });
        let mut by_clearance: Vec<HostStats> = Clearance::ALL
            .iter()
            .map(|&clearance| HostStats {
                org_id: org.clone(),
                host: host.clone(),
                clearance,
                peers: StatusCounts::default(),
                rx_total_bytes: 0,
                tx_total_bytes: 0,
                rx_bytes_per_s: 0.0,
                tx_bytes_per_s: 0.0,
            })
            .collect();
        for record in records {
            let stats = &mut by_clearance[record.clearance as usize];
            stats.peers.add(record.status);
            stats.rx_total_bytes = stats.rx_total_bytes.saturating_add(record.rx_total_bytes);
            stats.tx_total_bytes = stats.tx_total_bytes.saturating_add(record.tx_total_bytes);
            if record.status != PeerStatus::Removed {
                stats.rx_bytes_per_s += record.rx_bytes_per_s;
                stats.tx_bytes_per_s += record.tx_bytes_per_s;
            }
        }
        by_clearance
    }

    /// Folds one event in, appending what must happen to `effects`. `now` is processing time. A
    /// refused event changes nothing (not even its collector's last `seq`).
    pub fn apply(&mut self, event: &Event, now: UnixMillis, effects: &mut Vec<Effect>) -> Result<(), Refusal> {
        let header = event.header();
        let Self { config, staleness_overrides, gateways } = self;
        let allowed_ms = millis(config.max_clock_skew);
        if i64::try_from(header.seq / 1_000).map_or(true, |seq_ms| seq_ms > now.saturating_add(allowed_ms)) {
            return Err(Refusal::SeqAhead { seq: header.seq, now, allowed_s: config.max_clock_skew.as_secs() });
        }
        let hosts = gateways.entry_ref(&header.org_id).or_insert_with(LookupMap::default);
        let gateway = hosts.entry_ref(&header.host).or_default();
        let existing = gateway.interfaces.get(&header.interface);
        if let Event::PeerObservation(observation) = event {
            check_writer(existing, observation)?;
        }
        if let Event::SilenceSet(silence) = event {
            // checked before the seq is taken: a refused silence changes nothing
            let mut silences = gateway.silences.clone();
            silences.set(silence)?;
            if gateway.accept(header) {
                gateway.silences = silences;
                effects.push(Effect::SilenceSet(silence.clone()));
            }
            return Ok(());
        }
        if !gateway.accept(header) {
            return Ok(());
        }
        let first_effect = effects.len();
        let interface = gateway.interfaces.entry_ref(&header.interface).or_insert_with(|| {
            InterfaceState::new(resolve_staleness(config, staleness_overrides, &header.org_id, &header.interface))
        });
        match event {
            Event::PeerObservation(observation) => observe(interface, observation, config, effects),
            Event::Heartbeat(heartbeat) => heartbeat_seen(interface, heartbeat, now, effects),
            Event::PeerRemoved(removal) => remove(interface, removal, effects),
            Event::PathProbe(probe) => probe_seen(interface, probe, config, effects),
            Event::RotationManifestSet(manifest) => set_manifest(interface, manifest, effects),
            Event::AlertAcknowledged(acknowledgement) => {
                effects.push(Effect::AlertAcknowledged(acknowledgement.clone()))
            }
            Event::SilenceSet(_) => {}
        }
        gateway.silences.mark(&mut effects[first_effect..], header.observed_at);
        Ok(())
    }

    /// The runner could not read its log until `now` (it was starting from a checkpoint, or the log
    /// was unreachable): heartbeats it did not hear meanwhile say nothing about the gateways, so
    /// every silence clock starts again at `now`. An open GATEWAY_SILENT stays open until a
    /// heartbeat arrives.
    pub fn restart_silence_clocks(&mut self, now: UnixMillis) {
        let interfaces = self
            .gateways
            .values_mut()
            .flat_map(|hosts| hosts.values_mut())
            .flat_map(|host| host.interfaces.values_mut());
        for heartbeat in interfaces.filter_map(|interface| interface.heartbeat.as_mut()) {
            heartbeat.received_at = heartbeat.received_at.max(now);
        }
    }

    /// The timer: raises GATEWAY_SILENT for interfaces whose heartbeats stopped. `now` is processing time.
    pub fn tick(&mut self, now: UnixMillis, effects: &mut Vec<Effect>) {
        let scans = i64::from(self.config.gateway_silence_scans);
        for host in self.gateways.values_mut().flat_map(|hosts| hosts.values_mut()) {
            let first_effect = effects.len();
            for interface in host.interfaces.values_mut() {
                let Some(heartbeat) = interface.heartbeat.as_mut() else { continue };
                let silent_for = now.saturating_sub(heartbeat.received_at);
                let allowed = scans * i64::from(heartbeat.record.scan_interval_ms);
                if interface.silence_alert.is_some() || silent_for <= allowed {
                    continue;
                }
                heartbeat.record.status = HostStatus::Silent;
                let record = &heartbeat.record;
                let subject = gateway_subject(record);
                let evidence =
                    Evidence::from([("silent_for_s", seconds(silent_for)), ("allowed_silence_s", seconds(allowed))]);
                let (open, alert) = subject.raise(
                    AlertKind::GatewaySilent,
                    Severity::Critical,
                    Some(ProbableCause::GatewaySilent),
                    record.last_heartbeat_at,
                    now,
                    evidence,
                );
                interface.silence_alert = Some(open);
                effects.push(Effect::HostUpdated(record.clone()));
                effects.push(alert);
            }
            host.silences.mark(&mut effects[first_effect..], now);
        }
    }
}

/// An API write (one carrying its writer's clearance) may create a peer at or below that
/// clearance, and change one only at or below it, never lowering the peer's clearance.
fn check_writer(interface: Option<&InterfaceState>, observation: &PeerObservation) -> Result<(), Refusal> {
    let Some(writer) = observation.writer_clearance else { return Ok(()) };
    let requested = observation.clearance;
    if requested > writer {
        return Err(Refusal::ClearanceAboveWriter { writer, requested });
    }
    let Some(peer) = interface.and_then(|interface| interface.peers.get(&observation.public_key)) else {
        return Ok(());
    };
    let header = &observation.header;
    let (key, host, interface) = (observation.public_key, header.host.clone(), header.interface.clone());
    let current = peer.record.clearance;
    if current > writer {
        return Err(Refusal::PeerAboveWriter { key, host, interface, peer: current, writer });
    }
    if current > requested {
        return Err(Refusal::LowersClearance { key, host, interface, from: current, to: requested });
    }
    Ok(())
}

fn resolve_staleness(
    config: &RuleConfig, overrides: &FxHashMap<OrgId, StalenessOverrides>, org: &OrgId, interface: &InterfaceName,
) -> StalenessWindow {
    overrides
        .get(org)
        .and_then(|overrides| overrides.interfaces.get(interface).copied().or(overrides.organisation))
        .unwrap_or(config.staleness)
}

fn gateway_subject(record: &HostRecord) -> AlertSubject<'_> {
    AlertSubject {
        org_id: &record.org_id,
        host: &record.host,
        interface: &record.interface,
        public_key: None,
        name: None,
        clearance: record.clearance,
    }
}

fn observe(
    interface: &mut InterfaceState, observation: &PeerObservation, config: &RuleConfig, effects: &mut Vec<Effect>,
) {
    let key = observation.public_key;
    let window = interface.staleness;
    // A key seen for the first time (or again after removal) is checked against the manifest.
    let (check_key, outcome) = match interface.peers.get_mut(&key) {
        Some(peer) => (peer.record.status == PeerStatus::Removed, peer.observe(observation, &window, config)),
        None => {
            // the peers of an interface share one copy of its names (a million peers would
            // otherwise hold a million copies of a few hundred names)
            let header = &observation.header;
            let names = interface.peers.values().next().map(|sibling| &sibling.record);
            let (peer, outcome) = PeerState::first_seen(
                names.map_or(&header.org_id, |names| &names.org_id),
                names.map_or(&header.host, |names| &names.host),
                names.map_or(&header.interface, |names| &names.interface),
                observation,
                &window,
                config,
            );
            interface.peers.insert(key, Box::new(peer));
            (true, outcome)
        }
    };
    if check_key {
        check_rotation(interface, &key, observation.header.observed_at, effects);
    }
    let at = observation.header.observed_at;
    let judgement = outcome.became_stale.then(|| interface.stale_cause(&key, at, config));
    let Some(peer) = interface.peers.get_mut(&key) else { return };
    let ObservationOutcome { became_stale, became_fresh, anomaly, rate_bytes_per_s, endpoint_change } = outcome;
    effects.push(Effect::PeerUpdated(peer.record.clone()));
    let moved = endpoint_change.is_some();
    if let Some(change) = endpoint_change {
        effects.push(Effect::EndpointChanged(change));
    }
    // a stale alert may change the interface's incidents: the peer is looked up again after
    let peer = if let Some(judgement) = judgement.filter(|_| became_stale) {
        incident::settle_stale_alert(interface, &key, judgement, at, config, effects);
        let Some(peer) = interface.peers.get_mut(&key) else { return };
        peer
    } else if became_fresh {
        let evidence =
            Evidence::from([("handshake_age_s", peer.record.handshake_age_ms.map_or(f64::INFINITY, seconds))]);
        resolve_stale_alert(interface, &key, at, evidence, effects);
        let Some(peer) = interface.peers.get_mut(&key) else { return };
        peer
    } else {
        peer
    };
    let subject = AlertSubject::of_peer(&peer.record);
    // only a move can open the cloned-key alert, and time without one closes it
    let cloned_open = peer.alerts.is_open(PeerAlert::ClonedKey);
    if moved || cloned_open {
        match (peer.key_cloned(at, config), peer.alerts.get(PeerAlert::ClonedKey)) {
            (true, None) => {
                let evidence = Evidence::from([
                    ("network_switches", peer.recent_network_switches(at, config) as f64),
                    ("window_s", seconds(millis(config.cloned_key_window))),
                ]);
                let cause = Some(ProbableCause::ClonedKey);
                let (open, alert) = subject.raise(AlertKind::ClonedKey, Severity::Critical, cause, at, at, evidence);
                peer.alerts.set(PeerAlert::ClonedKey, Some(open));
                effects.push(alert);
            }
            (false, Some(open)) if peer.recent_network_switches(at, config) == 0 => {
                peer.alerts.set(PeerAlert::ClonedKey, None);
                let evidence = Evidence::from([("window_s", seconds(millis(config.cloned_key_window)))]);
                effects.push(subject.resolve(AlertKind::ClonedKey, open, at, evidence));
            }
            _ => {}
        }
    }
    if let (Some(verdict), Some(rate)) = (anomaly, rate_bytes_per_s) {
        let evidence = || {
            Evidence::from([
                ("rate_bytes_per_s", rate),
                ("baseline_bytes_per_s", peer.baseline.bytes_per_s().unwrap_or(0.0)),
                ("raise_factor", config.anomaly.raise_factor),
            ])
        };
        match (verdict, peer.alerts.get(PeerAlert::Anomaly)) {
            (AnomalyVerdict::Anomalous, None) => {
                let (open, alert) =
                    subject.raise(AlertKind::TrafficAnomaly, Severity::Warning, None, at, at, evidence());
                peer.alerts.set(PeerAlert::Anomaly, Some(open));
                effects.push(alert);
            }
            (AnomalyVerdict::Normal, Some(open)) => {
                let resolved = subject.resolve(AlertKind::TrafficAnomaly, open, at, evidence());
                peer.alerts.set(PeerAlert::Anomaly, None);
                effects.push(resolved);
            }
            _ => {}
        }
    }
}

/// How bad a stale peer is, by its cause: one site is a warning; many, or a security cause, critical.
fn stale_severity(cause: ProbableCause) -> Severity {
    match cause {
        ProbableCause::SiteDown | ProbableCause::WireguardDown | ProbableCause::PathDown => Severity::Warning,
        _ => Severity::Critical,
    }
}

/// The numbers behind a stale peer's cause.
fn stale_evidence(record: &PeerRecord, window: &StalenessWindow, judgement: &StaleJudgement) -> Evidence {
    let StaleJudgement { quiet, probe, .. } = judgement;
    let mut evidence = Evidence::from([
        ("handshake_age_s", record.handshake_age_ms.map_or(f64::INFINITY, seconds)),
        ("stale_after_s", seconds(millis(window.stale_after))),
        ("quiet_peers", quiet.quiet as f64),
        ("connected_peers", quiet.connected as f64),
        ("quiet_peers_in_same_network", quiet.quiet_in_same_network as f64),
    ]);
    if let Some(probe) = probe {
        evidence.insert("probe_sent", f64::from(probe.sent));
        evidence.insert("probe_received", f64::from(probe.received));
        evidence.insert("probe_loss", probe.loss());
        evidence.insert("probe_age_s", seconds(record.observed_at.saturating_sub(probe.at).max(0)));
        if let Some(rtt) = probe.rtt_ms {
            evidence.insert("probe_rtt_ms", rtt);
        }
    }
    evidence
}

/// A path probe of a peer's endpoint: kept as evidence while the peer stays quiet; a stale alert
/// whose cause it changes is revised (same id, new cause and evidence).
fn probe_seen(interface: &mut InterfaceState, probe: &PathProbe, config: &RuleConfig, effects: &mut Vec<Effect>) {
    let key = probe.public_key;
    let Some(peer) = interface.peers.get(&key) else { return };
    let current_target = peer.record.endpoint.is_some_and(|endpoint| endpoint.ip() == probe.target);
    if peer.record.status == PeerStatus::Removed || !current_target {
        return; // a probe of an endpoint the peer has left says nothing about it now
    }
    let stale = peer.alerts.is_open(PeerAlert::Stale);
    interface.probes.insert(key, ProbeSeen::of(probe));
    if stale {
        let at = probe.header.observed_at;
        let judgement = interface.stale_cause(&key, at, config);
        incident::settle_stale_alert(interface, &key, judgement, at, config, effects);
    }
}

/// Resolves `key`'s open stale alert, and takes it out of its incident.
fn resolve_stale_alert(
    interface: &mut InterfaceState, key: &PublicKey, at: UnixMillis, evidence: Evidence, effects: &mut Vec<Effect>,
) {
    let Some(peer) = interface.peers.get_mut(key) else { return };
    let Some(open) = peer.alerts.take(PeerAlert::Stale) else { return };
    effects.push(AlertSubject::of_peer(&peer.record).resolve(AlertKind::PeerStale, open, at, evidence));
    if let Some(incident) = open.incident {
        incident::leave(interface, incident, key, at, effects);
    }
}

/// Raises or resolves the rotation flag of one peer against its interface's manifest.
fn check_rotation(interface: &mut InterfaceState, key: &PublicKey, at: UnixMillis, effects: &mut Vec<Effect>) {
    let Some(peer) = interface.peers.get_mut(key) else { return };
    let verdict = interface.manifests.verdict(key, peer.record.clearance);
    let subject = AlertSubject::of_peer(&peer.record);
    match (verdict, peer.alerts.get(PeerAlert::Rotation)) {
        (KeyVerdict::Expected, Some(open)) => {
            peer.alerts.set(PeerAlert::Rotation, None);
            effects.push(subject.resolve(AlertKind::KeyRotation, open, at, Evidence::new()));
        }
        (KeyVerdict::Retired | KeyVerdict::Unlisted, None) if peer.record.status != PeerStatus::Removed => {
            let retired = verdict == KeyVerdict::Retired;
            let evidence = Evidence::from([("retired_key", if retired { 1.0 } else { 0.0 })]);
            let (open, alert) = subject.raise(
                AlertKind::KeyRotation,
                Severity::Critical,
                Some(ProbableCause::Security),
                at,
                at,
                evidence,
            );
            peer.alerts.set(PeerAlert::Rotation, Some(open));
            effects.push(alert);
        }
        _ => {}
    }
}

fn heartbeat_seen(interface: &mut InterfaceState, heartbeat: &Heartbeat, now: UnixMillis, effects: &mut Vec<Effect>) {
    let header = &heartbeat.header;
    let record = HostRecord {
        org_id: header.org_id.clone(),
        host: header.host.clone(),
        interface: header.interface.clone(),
        status: HostStatus::Alive,
        last_heartbeat_at: header.observed_at,
        interface_public_key: heartbeat.interface_public_key,
        listen_port: heartbeat.listen_port,
        peer_count: heartbeat.peer_count,
        scan_interval_ms: heartbeat.scan_interval_ms,
        clearance: heartbeat.clearance,
    };
    if let Some(open) = interface.silence_alert.take() {
        let silent_for = interface
            .heartbeat
            .as_ref()
            .map_or(0, |previous| header.observed_at.saturating_sub(previous.record.last_heartbeat_at));
        let evidence = Evidence::from([("silent_for_s", seconds(silent_for))]);
        effects.push(gateway_subject(&record).resolve(AlertKind::GatewaySilent, open, header.observed_at, evidence));
    }
    effects.push(Effect::HostUpdated(record.clone()));
    interface.heartbeat = Some(HeartbeatSeen { record, received_at: now });
    if !interface.probes.is_empty() {
        interface.forget_answered_probes();
    }
}

fn remove(interface: &mut InterfaceState, removal: &PeerRemoved, effects: &mut Vec<Effect>) {
    let Some(peer) = interface.peers.get_mut(&removal.public_key) else { return };
    let at = removal.header.observed_at;
    peer.record.status = PeerStatus::Removed;
    peer.record.observed_at = at;
    peer.record.rx_delta_bytes = 0;
    peer.record.tx_delta_bytes = 0;
    peer.record.rx_bytes_per_s = 0.0;
    peer.record.tx_bytes_per_s = 0.0;
    peer.record.counter_reset = false;
    effects.push(Effect::PeerUpdated(peer.record.clone()));
    let removed = || Evidence::from([("removed", 1.0)]);
    resolve_stale_alert(interface, &removal.public_key, at, removed(), effects);
    let Some(peer) = interface.peers.get_mut(&removal.public_key) else { return };
    let subject = AlertSubject::of_peer(&peer.record);
    for (kind, open) in [
        (AlertKind::KeyRotation, peer.alerts.take(PeerAlert::Rotation)),
        (AlertKind::ClonedKey, peer.alerts.take(PeerAlert::ClonedKey)),
    ] {
        if let Some(open) = open {
            effects.push(subject.resolve(kind, open, at, removed()));
        }
    }
}

fn set_manifest(interface: &mut InterfaceState, manifest: &RotationManifestSet, effects: &mut Vec<Effect>) {
    let scope = manifest.scope();
    interface.manifests.set(scope, &manifest.entries);
    effects.push(Effect::ManifestSet(manifest.clone()));
    // peers above the manifest's scope are judged by other manifests, which did not change
    let mut keys: Vec<PublicKey> =
        interface.peers.iter().filter(|(_, peer)| peer.record.clearance <= scope).map(|(key, _)| *key).collect();
    keys.sort_unstable();
    for key in keys {
        check_rotation(interface, &key, manifest.header.observed_at, effects);
    }
}
