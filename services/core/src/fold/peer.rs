//! One peer's state and the per-observation rules: counter deltas, staleness status, baseline,
//! roaming and cloned keys.

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

use super::baseline::{AnomalyVerdict, TrafficBaseline};
use super::config::{RuleConfig, StalenessWindow, millis};
use super::{EndpointChange, OpenAlert, PeerRecord, PeerStatus};
use crate::event::{PeerObservation, UnixMillis};
use crate::ids::{HostId, InterfaceName, OrgId};
use crate::net::Cidr;

/// Free-form metadata set through the API, shared between a peer's state and its records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerMetadata {
    pub display_name: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
}

impl PeerMetadata {
    fn shared(observation: &PeerObservation) -> Arc<PeerMetadata> {
        Self::share(PeerMetadata {
            display_name: observation.display_name.clone(),
            owner: observation.owner.clone(),
            tags: observation.tags.clone(),
        })
    }

    /// `metadata` to share; most peers have none, and those share one empty value.
    fn share(metadata: PeerMetadata) -> Arc<PeerMetadata> {
        static EMPTY: LazyLock<Arc<PeerMetadata>> = LazyLock::new(Arc::default);
        if metadata == PeerMetadata::default() {
            return Arc::clone(&EMPTY);
        }
        Arc::new(metadata)
    }

    /// Decodes shared metadata ([`PeerMetadata::share`]): a page of peers read from the store
    /// allocates none for the peers without.
    pub(crate) fn deserialize_shared<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Arc<PeerMetadata>, D::Error> {
        PeerMetadata::deserialize(deserializer).map(Self::share)
    }

    /// Whether an observation says what a peer's names are: any API write (which may clear them),
    /// or an observation carrying some.
    fn names_it(observation: &PeerObservation) -> bool {
        observation.writer_clearance.is_some()
            || observation.display_name.is_some()
            || observation.owner.is_some()
            || !observation.tags.is_empty()
    }

    fn matches(&self, observation: &PeerObservation) -> bool {
        self.display_name == observation.display_name
            && self.owner == observation.owner
            && self.tags == observation.tags
    }
}

/// How many distinct endpoint networks are remembered per peer.
const REMEMBERED_NETWORKS: usize = 8;

/// Everything the fold keeps about one peer of one interface.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PeerState {
    pub(crate) record: PeerRecord,
    pub(crate) baseline: TrafficBaseline,
    #[serde(with = "crate::packed::list")]
    endpoint_networks: Vec<Cidr>,
    /// Boxed: most peers never leave their network.
    roaming: Option<Box<Roaming>>,
    pub(crate) alerts: OpenAlerts,
}

/// How a peer's endpoint moved between networks lately.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Roaming {
    /// The endpoint last moved into a network never seen for this peer.
    new_network_at: Option<UnixMillis>,
    /// When the endpoint last switched from one network to another, oldest first; only as many as
    /// the cloned-key rule counts are kept.
    switches: Vec<UnixMillis>,
}

/// Which of a peer's own alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerAlert {
    Stale = 0,
    Anomaly = 1,
    Rotation = 2,
    ClonedKey = 3,
}

/// A peer's open alerts. Boxed, as almost every peer has none and inline slots would weigh on
/// every peer's state. Serialised as the optional alerts in a row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OpenAlerts(Option<Box<[Option<OpenAlert>; 4]>>);

impl OpenAlerts {
    pub(crate) fn get(&self, which: PeerAlert) -> Option<OpenAlert> {
        self.0.as_ref().and_then(|slots| slots[which as usize])
    }

    pub(crate) fn is_open(&self, which: PeerAlert) -> bool {
        self.get(which).is_some()
    }

    pub(crate) fn set(&mut self, which: PeerAlert, alert: Option<OpenAlert>) {
        if self.0.is_none() && alert.is_none() {
            return; // nothing open, nothing to open: no box to make and drop
        }
        let slots = self.0.get_or_insert_with(Box::default);
        slots[which as usize] = alert;
        if slots.iter().all(Option::is_none) {
            self.0 = None;
        }
    }

    pub(crate) fn take(&mut self, which: PeerAlert) -> Option<OpenAlert> {
        let alert = self.get(which);
        self.set(which, None);
        alert
    }

    fn slots(&self) -> [Option<OpenAlert>; 4] {
        self.0.as_deref().copied().unwrap_or_default()
    }

    fn from_slots(slots: [Option<OpenAlert>; 4]) -> Self {
        Self(slots.iter().any(Option::is_some).then(|| Box::new(slots)))
    }
}

impl Serialize for OpenAlerts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.slots().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for OpenAlerts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <[Option<OpenAlert>; 4]>::deserialize(deserializer).map(Self::from_slots)
    }
}

/// What an observation changed that the fold must turn into alerts.
#[derive(Debug, Default)]
pub(crate) struct ObservationOutcome {
    pub(crate) became_stale: bool,
    pub(crate) became_fresh: bool,
    pub(crate) anomaly: Option<AnomalyVerdict>,
    /// Throughput of this observation's interval (rx + tx), when there was an interval.
    pub(crate) rate_bytes_per_s: Option<f64>,
    pub(crate) endpoint_change: Option<EndpointChange>,
}

/// Stale or fresh, with hysteresis: a stale peer needs a clearly newer handshake to recover.
fn status_for(handshake_age_ms: Option<i64>, currently_stale: bool, window: &StalenessWindow) -> PeerStatus {
    match handshake_age_ms {
        None => PeerStatus::NeverConnected,
        Some(age) if currently_stale && age >= millis(window.fresh_below) => PeerStatus::Stale,
        Some(age) if !currently_stale && age >= millis(window.stale_after) => PeerStatus::Stale,
        Some(_) => PeerStatus::Active,
    }
}

/// Bytes moved since the previous reading of a cumulative counter; a drop is a reset (restart).
fn counter_delta(previous: u64, current: u64) -> (u64, bool) {
    if current >= previous { (current - previous, false) } else { (current, true) }
}

fn per_second(bytes: u64, elapsed_ms: i64) -> f64 {
    if elapsed_ms > 0 { bytes as f64 * 1000.0 / elapsed_ms as f64 } else { 0.0 }
}

impl PeerState {
    /// A peer seen for the first time: its counters become the starting point, no deltas yet.
    pub(crate) fn first_seen(
        org_id: &OrgId, host: &HostId, interface: &InterfaceName, observation: &PeerObservation,
        window: &StalenessWindow, config: &RuleConfig,
    ) -> (Self, ObservationOutcome) {
        let handshake_age_ms = observation
            .latest_handshake
            .map(|handshake| observation.header.observed_at.saturating_sub(handshake).max(0));
        let status = status_for(handshake_age_ms, false, window);
        let record = PeerRecord {
            org_id: org_id.clone(),
            host: host.clone(),
            interface: interface.clone(),
            public_key: observation.public_key,
            observed_at: observation.header.observed_at,
            status,
            endpoint: observation.endpoint,
            allowed_ips: Arc::from(observation.allowed_ips.as_slice()),
            latest_handshake: observation.latest_handshake,
            handshake_age_ms,
            rx_bytes: observation.rx_bytes,
            tx_bytes: observation.tx_bytes,
            rx_delta_bytes: 0,
            tx_delta_bytes: 0,
            rx_total_bytes: 0,
            tx_total_bytes: 0,
            rx_bytes_per_s: 0.0,
            tx_bytes_per_s: 0.0,
            counter_reset: false,
            persistent_keepalive: observation.persistent_keepalive,
            source: observation.source,
            clearance: observation.clearance,
            metadata: PeerMetadata::shared(observation),
        };
        let endpoint_networks =
            observation.endpoint.iter().map(|endpoint| endpoint_network(endpoint.ip(), config)).collect();
        let state = Self {
            record,
            baseline: TrafficBaseline::default(),
            endpoint_networks,
            roaming: None,
            alerts: OpenAlerts::default(),
        };
        let outcome = ObservationOutcome { became_stale: status == PeerStatus::Stale, ..ObservationOutcome::default() };
        (state, outcome)
    }

    /// Folds a later observation of the same peer into its state.
    pub(crate) fn observe(
        &mut self, observation: &PeerObservation, window: &StalenessWindow, config: &RuleConfig,
    ) -> ObservationOutcome {
        let mut outcome = ObservationOutcome::default();
        let record = &mut self.record;
        let observed_at = observation.header.observed_at;
        let elapsed_ms = observed_at.saturating_sub(record.observed_at);

        let (rx_delta, rx_reset) = counter_delta(record.rx_bytes, observation.rx_bytes);
        let (tx_delta, tx_reset) = counter_delta(record.tx_bytes, observation.tx_bytes);
        record.rx_delta_bytes = rx_delta;
        record.tx_delta_bytes = tx_delta;
        record.rx_total_bytes = record.rx_total_bytes.saturating_add(rx_delta);
        record.tx_total_bytes = record.tx_total_bytes.saturating_add(tx_delta);
        record.rx_bytes_per_s = per_second(rx_delta, elapsed_ms);
        record.tx_bytes_per_s = per_second(tx_delta, elapsed_ms);
        record.counter_reset = rx_reset || tx_reset;
        record.rx_bytes = observation.rx_bytes;
        record.tx_bytes = observation.tx_bytes;
        record.observed_at = observed_at;

        if observation.endpoint != record.endpoint {
            if let Some(to) = observation.endpoint {
                let network = endpoint_network(to.ip(), config);
                let new_network = !self.endpoint_networks.is_empty() && !self.endpoint_networks.contains(&network);
                if !self.endpoint_networks.contains(&network) {
                    if self.endpoint_networks.len() == REMEMBERED_NETWORKS {
                        self.endpoint_networks.remove(0);
                    }
                    self.endpoint_networks.push(network);
                }
                let switched = record.endpoint.is_some_and(|from| endpoint_network(from.ip(), config) != network);
                if switched || new_network {
                    let roaming = self.roaming.get_or_insert_with(Box::default);
                    if new_network {
                        roaming.new_network_at = Some(observed_at);
                    }
                    if switched {
                        let kept = config.cloned_key_switches.max(1) as usize;
                        if roaming.switches.len() >= kept {
                            roaming.switches.drain(..=roaming.switches.len() - kept);
                        }
                        roaming.switches.push(observed_at);
                    }
                }
                outcome.endpoint_change = Some(EndpointChange {
                    org_id: record.org_id.clone(),
                    host: record.host.clone(),
                    interface: record.interface.clone(),
                    public_key: record.public_key,
                    from: record.endpoint,
                    to,
                    changed_at: observed_at,
                    new_network,
                    clearance: observation.clearance,
                });
            }
            record.endpoint = observation.endpoint;
        }
        if *record.allowed_ips != *observation.allowed_ips {
            record.allowed_ips = Arc::from(observation.allowed_ips.as_slice());
        }
        // a collector that knows no names for a peer leaves the ones an operator or inventory gave it
        if !record.metadata.matches(observation) && PeerMetadata::names_it(observation) {
            record.metadata = PeerMetadata::shared(observation);
        }
        record.persistent_keepalive = observation.persistent_keepalive;
        record.source = observation.source;
        record.clearance = observation.clearance;

        // A restarted interface reports "never" until the peer handshakes again: age keeps counting
        // from the last handshake we know of, so a restart alone neither raises nor hides staleness.
        if observation.latest_handshake.is_some() {
            record.latest_handshake = observation.latest_handshake;
        }
        record.handshake_age_ms = record.latest_handshake.map(|handshake| observed_at.saturating_sub(handshake).max(0));
        let was_stale = self.alerts.is_open(PeerAlert::Stale);
        record.status = status_for(record.handshake_age_ms, was_stale, window);
        outcome.became_stale = !was_stale && record.status == PeerStatus::Stale;
        outcome.became_fresh = was_stale && record.status != PeerStatus::Stale;

        if elapsed_ms > 0 {
            let rate = per_second(rx_delta.saturating_add(tx_delta), elapsed_ms);
            let verdict = self.baseline.judge(rate, &config.anomaly);
            let keep_out_of_baseline = verdict == AnomalyVerdict::Anomalous
                || (self.alerts.is_open(PeerAlert::Anomaly) && verdict != AnomalyVerdict::Normal);
            if !keep_out_of_baseline {
                self.baseline.learn(rate, elapsed_ms, &config.anomaly);
            }
            outcome.anomaly = Some(verdict);
            outcome.rate_bytes_per_s = Some(rate);
        }
        outcome
    }

    /// Whether the peer moved into a never-seen network shortly before `at`.
    pub(crate) fn roamed_recently(&self, at: UnixMillis, config: &RuleConfig) -> bool {
        let roamed = self.roaming.as_ref().and_then(|roaming| roaming.new_network_at);
        roamed.is_some_and(|roamed| at.saturating_sub(roamed) <= millis(config.roam_suspicion))
    }

    /// How often the endpoint switched networks within the cloned-key window before `at`.
    pub(crate) fn recent_network_switches(&self, at: UnixMillis, config: &RuleConfig) -> usize {
        let window = millis(config.cloned_key_window);
        self.roaming.as_ref().map_or(0, |roaming| {
            roaming.switches.iter().filter(|&&switched| at.saturating_sub(switched) <= window).count()
        })
    }

    /// Whether the key is presented from two networks in turn: two machines hold it.
    pub(crate) fn key_cloned(&self, at: UnixMillis, config: &RuleConfig) -> bool {
        self.recent_network_switches(at, config) >= config.cloned_key_switches.max(1) as usize
    }
}

/// The network an endpoint address is compared in: its upstream group's (its first network), else
/// the one of `endpoint_network_prefix` around it.
pub(crate) fn endpoint_network(address: std::net::IpAddr, config: &RuleConfig) -> Cidr {
    let grouped =
        config.upstream_groups.iter().find(|group| group.networks.iter().any(|network| network.contains(address)));
    if let Some(first) = grouped.and_then(|group| group.networks.first()) {
        return *first;
    }
    let (v4, v6) = config.endpoint_network_prefix;
    Cidr::containing(address, if address.is_ipv4() { v4 } else { v6 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_going_down_is_a_reset_and_the_delta_is_the_new_value() {
        assert_eq!(counter_delta(100, 150), (50, false));
        assert_eq!(counter_delta(100, 100), (0, false));
        assert_eq!(counter_delta(100, 30), (30, true));
        assert_eq!(counter_delta(100, 0), (0, true));
    }

    fn open_alert(at: UnixMillis) -> OpenAlert {
        let (org, host, interface) =
            ("acme".parse().expect("org"), "hub".parse().expect("host"), "wg0".parse().expect("if"));
        OpenAlert {
            id: crate::alert::AlertId::derive(crate::alert::AlertKind::PeerStale, &org, &host, &interface, None, at),
            incident: None,
            raised_at: at,
            severity: crate::alert::Severity::Warning,
            cause: None,
        }
    }

    #[test]
    fn open_alerts_round_trip_and_hold_no_box_when_none_is_open() {
        let (one, two) = (Some(open_alert(1)), Some(open_alert(2)));
        for slots in [[None; 4], [one, None, None, None], [None, one, two, None], [one, two, one, two]] {
            let alerts = OpenAlerts::from_slots(slots);
            let bytes = postcard::to_allocvec(&alerts).expect("encode");
            let decoded: OpenAlerts = postcard::from_bytes(&bytes).expect("decode");
            assert_eq!(decoded, alerts);
            assert_eq!(decoded.0.is_none(), slots.iter().all(Option::is_none));
        }
    }

    fn observation_from(endpoint: &str, at: UnixMillis) -> PeerObservation {
        PeerObservation {
            header: crate::event::EventHeader {
                org_id: "acme".parse().expect("org"),
                host: "hub".parse().expect("host"),
                interface: "wg0".parse().expect("interface"),
                observed_at: at,
                collector_id: "hub".parse().expect("collector"),
                seq: 1,
            },
            public_key: crate::key::PublicKey::from_bytes([3; 32]),
            endpoint: Some(endpoint.parse().expect("endpoint")),
            allowed_ips: Vec::new(),
            latest_handshake: Some(at),
            rx_bytes: 0,
            tx_bytes: 0,
            persistent_keepalive: None,
            source: crate::event::PeerSource::Userspace,
            clearance: crate::ids::Clearance::Unclassified,
            display_name: None,
            owner: None,
            tags: Vec::new(),
            writer_clearance: None,
        }
    }

    #[test]
    fn a_key_switching_networks_in_turn_is_cloned_and_one_roam_or_a_port_change_is_not() {
        let (config, window) = (RuleConfig::default(), StalenessWindow::default());
        let first = observation_from("198.18.7.2:51820", 0);
        let header = &first.header;
        let (mut peer, _) =
            PeerState::first_seen(&header.org_id, &header.host, &header.interface, &first, &window, &config);
        peer.observe(&observation_from("198.18.7.2:40000", 1_000), &window, &config);
        assert!(peer.roaming.is_none(), "a new port in the same network is no move");
        peer.observe(&observation_from("203.0.113.9:51820", 2_000), &window, &config);
        assert!(peer.roamed_recently(2_000, &config) && !peer.key_cloned(2_000, &config), "one roam");
        peer.observe(&observation_from("198.18.7.2:51820", 3_000), &window, &config);
        peer.observe(&observation_from("203.0.113.9:51820", 4_000), &window, &config);
        assert!(!peer.key_cloned(4_000, &config), "three switches");
        peer.observe(&observation_from("198.18.7.2:51820", 5_000), &window, &config);
        assert!(peer.key_cloned(5_000, &config), "four switches in turn");
        let later = 5_000 + millis(config.cloned_key_window) - 1_000;
        assert!(!peer.key_cloned(later, &config), "the earliest switches left the window");
        assert_eq!(peer.roaming.as_ref().map(|roaming| roaming.switches.len()), Some(4), "only four are kept");
    }

    #[test]
    fn a_peer_without_open_alerts_holds_no_box() {
        let mut alerts = OpenAlerts::default();
        alerts.set(PeerAlert::Anomaly, Some(open_alert(5)));
        alerts.set(PeerAlert::Rotation, Some(open_alert(6)));
        assert!(alerts.is_open(PeerAlert::Anomaly) && !alerts.is_open(PeerAlert::Stale));
        assert_eq!(alerts.take(PeerAlert::Anomaly), Some(open_alert(5)));
        assert_eq!(alerts.get(PeerAlert::Rotation), Some(open_alert(6)));
        assert!(alerts.0.is_some());
        alerts.set(PeerAlert::Rotation, None);
        assert_eq!(alerts, OpenAlerts(None));
    }

    #[test]
    fn hysteresis_band_holds_status() {
        let window = StalenessWindow::default();
        let stale_after = millis(window.stale_after);
        let fresh_below = millis(window.fresh_below);
        assert_eq!(status_for(None, false, &window), PeerStatus::NeverConnected);
        assert_eq!(status_for(Some(stale_after - 1), false, &window), PeerStatus::Active);
        assert_eq!(status_for(Some(stale_after), false, &window), PeerStatus::Stale);
        assert_eq!(status_for(Some(fresh_below), true, &window), PeerStatus::Stale);
        assert_eq!(status_for(Some(fresh_below - 1), true, &window), PeerStatus::Active);
    }
}
