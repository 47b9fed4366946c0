//! One peer's state and the per-observation rules: counter deltas, staleness status, baseline, roaming.

use std::sync::{Arc, OnceLock};

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
        static EMPTY: OnceLock<Arc<PeerMetadata>> = OnceLock::new();
        if observation.display_name.is_none() && observation.owner.is_none() && observation.tags.is_empty() {
            return EMPTY.get_or_init(Arc::default).clone();
        }
        Arc::new(PeerMetadata {
            display_name: observation.display_name.clone(),
            owner: observation.owner.clone(),
            tags: observation.tags.clone(),
        })
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
    endpoint_networks: Vec<Cidr>,
    roamed_to_new_network_at: Option<UnixMillis>,
    pub(crate) stale_alert: Option<OpenAlert>,
    pub(crate) anomaly_alert: Option<OpenAlert>,
    pub(crate) rotation_alert: Option<OpenAlert>,
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
        org_id: &OrgId,
        host: &HostId,
        interface: &InterfaceName,
        observation: &PeerObservation,
        window: &StalenessWindow,
        config: &RuleConfig,
    ) -> (Self, ObservationOutcome) {
        let handshake_age_ms =
            observation.latest_handshake.map(|handshake| (observation.header.observed_at - handshake).max(0));
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
            roamed_to_new_network_at: None,
            stale_alert: None,
            anomaly_alert: None,
            rotation_alert: None,
        };
        let outcome = ObservationOutcome { became_stale: status == PeerStatus::Stale, ..ObservationOutcome::default() };
        (state, outcome)
    }

    /// Folds a later observation of the same peer into its state.
    pub(crate) fn observe(
        &mut self,
        observation: &PeerObservation,
        window: &StalenessWindow,
        config: &RuleConfig,
    ) -> ObservationOutcome {
        let mut outcome = ObservationOutcome::default();
        let record = &mut self.record;
        let observed_at = observation.header.observed_at;
        let elapsed_ms = observed_at - record.observed_at;

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
                if new_network {
                    self.roamed_to_new_network_at = Some(observed_at);
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
        if !record.metadata.matches(observation) {
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
        record.handshake_age_ms = record.latest_handshake.map(|handshake| (observed_at - handshake).max(0));
        let was_stale = self.stale_alert.is_some();
        record.status = status_for(record.handshake_age_ms, was_stale, window);
        outcome.became_stale = !was_stale && record.status == PeerStatus::Stale;
        outcome.became_fresh = was_stale && record.status != PeerStatus::Stale;

        if elapsed_ms > 0 {
            let rate = per_second(rx_delta.saturating_add(tx_delta), elapsed_ms);
            let verdict = self.baseline.judge(rate, &config.anomaly);
            let keep_out_of_baseline = verdict == AnomalyVerdict::Anomalous
                || (self.anomaly_alert.is_some() && verdict != AnomalyVerdict::Normal);
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
        self.roamed_to_new_network_at.is_some_and(|roamed| at - roamed <= millis(config.roam_suspicion))
    }
}

fn endpoint_network(address: std::net::IpAddr, config: &RuleConfig) -> Cidr {
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
