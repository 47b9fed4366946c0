//! One gateway interface: its peers, heartbeat liveness, rotation manifest, and stale-cause reasoning.

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use super::config::{RuleConfig, StalenessWindow, millis};
use super::peer::{PeerAlert, PeerState};
use super::{HostRecord, OpenAlert, PeerStatus};
use crate::alert::ProbableCause;
use crate::event::{ManifestEntry, UnixMillis};
use crate::ids::Clearance;
use crate::key::PublicKey;

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

/// Everything the fold keeps about one interface of one gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InterfaceState {
    pub(crate) staleness: StalenessWindow,
    pub(crate) heartbeat: Option<HeartbeatSeen>,
    pub(crate) silence_alert: Option<OpenAlert>,
    pub(crate) manifests: Manifests,
    /// Boxed: a map of 1,000 peers has 2,048 buckets, and inline states would double the memory.
    pub(crate) peers: FxHashMap<PublicKey, Box<PeerState>>,
}

/// How many of an interface's other connected peers have gone quiet, for the uplink rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuietPeers {
    pub(crate) quiet: usize,
    pub(crate) connected: usize,
}

impl InterfaceState {
    pub(crate) fn new(staleness: StalenessWindow) -> Self {
        Self {
            staleness,
            heartbeat: None,
            silence_alert: None,
            manifests: Manifests::default(),
            peers: FxHashMap::default(),
        }
    }

    /// Other connected peers, and those whose handshake at `at` is older than the fresh bound.
    pub(crate) fn quiet_peers(&self, except: &PublicKey, at: UnixMillis) -> QuietPeers {
        let quiet_after = millis(self.staleness.fresh_below);
        let mut counts = QuietPeers { quiet: 0, connected: 0 };
        for (key, peer) in &self.peers {
            if key == except || peer.record.status == PeerStatus::Removed {
                continue;
            }
            if let Some(handshake) = peer.record.latest_handshake {
                counts.connected += 1;
                if at.saturating_sub(handshake) >= quiet_after {
                    counts.quiet += 1;
                }
            }
        }
        counts
    }

    /// Why `key` probably went stale at `at`.
    pub(crate) fn stale_cause(
        &self, key: &PublicKey, at: UnixMillis, config: &RuleConfig,
    ) -> (ProbableCause, QuietPeers) {
        let quiet = self.quiet_peers(key, at);
        let suspicious = self
            .peers
            .get(key)
            .is_some_and(|peer| peer.alerts.is_open(PeerAlert::Rotation) || peer.roamed_recently(at, config));
        let cause = if suspicious {
            ProbableCause::Security
        } else if quiet.connected > 0 && quiet.quiet as f64 >= config.uplink_quiet_share * quiet.connected as f64 {
            ProbableCause::GatewayUplink
        } else {
            ProbableCause::SiteDown
        };
        (cause, quiet)
    }
}
