//! One gateway interface: its peers, heartbeat liveness, rotation manifest, path probes of its quiet
//! peers, and stale-cause reasoning.

use std::net::IpAddr;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use super::config::{RuleConfig, StalenessWindow, millis};
use super::incident::OpenIncident;
use super::peer::{PeerAlert, PeerState, endpoint_network};
use super::{HostRecord, OpenAlert, PeerStatus};
use crate::alert::ProbableCause;
use crate::event::{ManifestEntry, PathProbe, UnixMillis};
use crate::ids::Clearance;
use crate::key::PublicKey;
use crate::net::Cidr;

/// The last heartbeat of an interface and when (processing time) the fold received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HeartbeatSeen {
    pub(crate) record: HostRecord,
    pub(crate) received_at: UnixMillis,
}

/// Keys an interface's peers must present, after a rotation: one manifest per clearance of the
/// operators who set them. A peer is judged only against those set at or above its own clearance,
/// so an operator can neither flag nor clear a peer they may not see.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Manifests(Vec<(Clearance, Manifest)>);

impl Manifests {
    /// Replaces the manifest set at `scope` (no entries removes it).
    pub(crate) fn set(&mut self, scope: Clearance, entries: &[ManifestEntry]) {
        self.0.retain(|(set_at, _)| *set_at != scope);
        if let Some(manifest) = Manifest::from_entries(entries) {
            self.0.push((scope, manifest));
        }
    }

    /// How `key`, presented by a peer at `clearance`, stands against the manifests that apply to it.
    pub(crate) fn verdict(&self, key: &PublicKey, clearance: Clearance) -> KeyVerdict {
        let applicable = || self.0.iter().filter(|(scope, _)| *scope >= clearance).map(|(_, manifest)| manifest);
        if applicable().next().is_none() || applicable().any(|manifest| manifest.expected.contains(key)) {
            KeyVerdict::Expected
        } else if applicable().any(|manifest| manifest.retired.contains(key)) {
            KeyVerdict::Retired
        } else {
            KeyVerdict::Unlisted
        }
    }
}

/// The keys one operator's manifest lists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Manifest {
    expected: FxHashSet<PublicKey>,
    retired: FxHashSet<PublicKey>,
}

/// How a key stands against the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyVerdict {
    Expected,
    /// A pre-rotation key, still presented.
    Retired,
    /// A key the manifest does not know.
    Unlisted,
}

impl Manifest {
    fn from_entries(entries: &[ManifestEntry]) -> Option<Self> {
        if entries.is_empty() {
            return None;
        }
        let mut manifest = Self::default();
        for entry in entries {
            manifest.expected.insert(entry.expected_key);
            manifest.retired.extend(entry.retired_keys.iter().copied());
        }
        Some(manifest)
    }
}

/// The latest path probe of a quiet peer's endpoint, from the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProbeSeen {
    pub(crate) at: UnixMillis,
    pub(crate) target: IpAddr,
    pub(crate) sent: u8,
    pub(crate) received: u8,
    pub(crate) rtt_ms: Option<f64>,
}

impl ProbeSeen {
    pub(crate) fn of(probe: &PathProbe) -> Self {
        Self {
            at: probe.header.observed_at,
            target: probe.target,
            sent: probe.sent,
            received: probe.received,
            rtt_ms: probe.rtt_ms,
        }
    }

    pub(crate) fn answered(&self) -> bool {
        self.received > 0
    }

    /// Share of echoes lost, 0 to 1.
    pub(crate) fn loss(&self) -> f64 {
        1.0 - f64::from(self.received.min(self.sent)) / f64::from(self.sent.max(1))
    }
}

/// Everything the fold keeps about one interface of one gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InterfaceState {
    pub(crate) staleness: StalenessWindow,
    pub(crate) heartbeat: Option<HeartbeatSeen>,
    pub(crate) silence_alert: Option<OpenAlert>,
    pub(crate) manifests: Manifests,
    /// Boxed: a map of 1,000 peers has 2,048 buckets, and inline states would double the memory.
    pub(crate) peers: FxHashMap<PublicKey, Box<PeerState>>,
    /// Only quiet peers are probed: a map beside the peers costs the others nothing. Pruned at
    /// each heartbeat (`forget_answered_probes`).
    pub(crate) probes: FxHashMap<PublicKey, ProbeSeen>,
    /// Open incidents, in the order they were opened.
    pub(crate) incidents: Vec<OpenIncident>,
}

/// How many of an interface's other connected peers have gone quiet, for the uplink and upstream
/// rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuietPeers {
    pub(crate) quiet: usize,
    pub(crate) connected: usize,
    /// Quiet ones whose endpoint lies in the same network as this peer's.
    pub(crate) quiet_in_same_network: usize,
}

/// Why a peer probably went stale, and what says so.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StaleJudgement {
    pub(crate) cause: ProbableCause,
    pub(crate) quiet: QuietPeers,
    /// The probe of the endpoint taken since the peer's last handshake, if any.
    pub(crate) probe: Option<ProbeSeen>,
}

impl InterfaceState {
    pub(crate) fn new(staleness: StalenessWindow) -> Self {
        Self {
            staleness,
            heartbeat: None,
            silence_alert: None,
            manifests: Manifests::default(),
            peers: FxHashMap::default(),
            probes: FxHashMap::default(),
            incidents: Vec::new(),
        }
    }

    /// Other connected peers up to `clearance`, those whose handshake at `at` is older than the
    /// fresh bound, and those of them with an endpoint in `network`. Peers above `clearance` are
    /// not counted: a judgement's evidence says nothing of peers its alert's readers cannot see.
    fn quiet_peers(
        &self, except: &PublicKey, clearance: Clearance, at: UnixMillis, network: Option<Cidr>, config: &RuleConfig,
    ) -> QuietPeers {
        let quiet_after = millis(self.staleness.fresh_below);
        let mut counts = QuietPeers { quiet: 0, connected: 0, quiet_in_same_network: 0 };
        for (key, peer) in &self.peers {
            if key == except || peer.record.status == PeerStatus::Removed || peer.record.clearance > clearance {
                continue;
            }
            if let Some(handshake) = peer.record.latest_handshake {
                counts.connected += 1;
                if at.saturating_sub(handshake) >= quiet_after {
                    counts.quiet += 1;
                    let endpoint = peer.record.endpoint.map(|endpoint| endpoint_network(endpoint.ip(), config));
                    if network.is_some() && endpoint == network {
                        counts.quiet_in_same_network += 1;
                    }
                }
            }
        }
        counts
    }

    /// The probe of `key`'s current endpoint taken since its last handshake: evidence about this
    /// silence, not an earlier one.
    pub(crate) fn probe_of(&self, key: &PublicKey) -> Option<ProbeSeen> {
        let record = &self.peers.get(key)?.record;
        let probe = self.probes.get(key)?;
        let current = record.endpoint.is_some_and(|endpoint| endpoint.ip() == probe.target);
        (current && record.latest_handshake.is_none_or(|handshake| probe.at > handshake)).then_some(*probe)
    }

    /// Forgets the probes of peers that have handshaken since (no longer quiet) or left: the one
    /// place probes are dropped, at each heartbeat (a probe is also judged on use, `probe_of`).
    pub(crate) fn forget_answered_probes(&mut self) {
        let peers = &self.peers;
        self.probes.retain(|key, probe| {
            peers.get(key).is_some_and(|peer| {
                peer.record.status != PeerStatus::Removed
                    && peer.record.latest_handshake.is_none_or(|handshake| handshake < probe.at)
            })
        });
    }

    /// Why `key` probably went stale at `at`, from what is known: its own history (a retired or
    /// cloned key, a roam into a new network), its endpoint's answer to the gateway's probes, and
    /// which of the interface's other peers went quiet with it.
    pub(crate) fn stale_cause(&self, key: &PublicKey, at: UnixMillis, config: &RuleConfig) -> StaleJudgement {
        let peer = self.peers.get(key);
        let network =
            peer.and_then(|peer| peer.record.endpoint).map(|endpoint| endpoint_network(endpoint.ip(), config));
        let clearance = peer.map_or(Clearance::Unclassified, |peer| peer.record.clearance);
        let quiet = self.quiet_peers(key, clearance, at, network, config);
        let probe = self.probe_of(key);
        let cloned = peer.is_some_and(|peer| peer.alerts.is_open(PeerAlert::ClonedKey) || peer.key_cloned(at, config));
        let suspicious =
            peer.is_some_and(|peer| peer.alerts.is_open(PeerAlert::Rotation) || peer.roamed_recently(at, config));
        let uplink = quiet.connected > 0 && quiet.quiet as f64 >= config.uplink_quiet_share * quiet.connected as f64;
        let cause = if cloned {
            ProbableCause::ClonedKey
        } else if suspicious {
            ProbableCause::Security
        } else if probe.is_some_and(|probe| probe.answered()) {
            ProbableCause::WireguardDown
        } else if uplink {
            ProbableCause::GatewayUplink
        } else if quiet.quiet_in_same_network > 0 {
            ProbableCause::UpstreamOutage
        } else if probe.is_some() {
            ProbableCause::PathDown
        } else {
            ProbableCause::SiteDown
        };
        StaleJudgement { cause, quiet, probe }
    }
}
