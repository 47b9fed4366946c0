//! Rule settings with the defaults an operator starts from; all durations are event time.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::net::Cidr;

/// When a peer counts as stale, with hysteresis so a peer hovering at the edge flips only once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StalenessWindow {
    /// A peer whose handshake is at least this old is stale.
    pub stale_after: Duration,
    /// A stale peer is fresh again only once its handshake is younger than this.
    pub fresh_below: Duration,
}

impl Default for StalenessWindow {
    /// WireGuard re-handshakes every 120 s while traffic flows and gives a session up after 180 s
    /// (Reject-After-Time); 30 s of margin covers scan jitter. Recovery needs a handshake newer
    /// than the re-key interval plus margin.
    fn default() -> Self {
        Self { stale_after: Duration::from_secs(210), fresh_below: Duration::from_secs(150) }
    }
}

/// Per-peer traffic baseline and the anomaly rule on top of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalyConfig {
    /// Raise when throughput exceeds this multiple of the baseline.
    pub raise_factor: f64,
    /// Resolve when throughput falls back under this multiple of the baseline.
    pub resolve_factor: f64,
    /// Never raise below this throughput, whatever the baseline (quiet peers are noisy in ratio).
    pub floor_bytes_per_s: f64,
    /// How long a peer is watched before its baseline is trusted.
    pub warmup: Duration,
    /// Time constant of the exponentially weighted moving average.
    pub baseline_time_constant: Duration,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            raise_factor: 10.0,
            resolve_factor: 4.0,
            floor_bytes_per_s: 32.0 * 1024.0,
            warmup: Duration::from_secs(3600),
            baseline_time_constant: Duration::from_secs(6 * 3600),
        }
    }
}

/// Every rule setting of the fold.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    /// Default staleness window; organisations and interfaces may override it.
    pub staleness: StalenessWindow,
    /// A gateway interface is silent after this many scan intervals without a heartbeat.
    pub gateway_silence_scans: u32,
    /// A stale peer's cause is GATEWAY_UPLINK when at least this share of its interface's other
    /// connected peers have gone quiet too.
    pub uplink_quiet_share: f64,
    /// An endpoint move into a never-seen network makes a stale alert's cause SECURITY for this long.
    pub roam_suspicion: Duration,
    /// Endpoint networks are compared at these prefix lengths (IPv4, IPv6); stale sites in the same
    /// one are an upstream outage.
    pub endpoint_network_prefix: (u8, u8),
    /// Upstream groups set by the operator (a carrier's address ranges, say): an endpoint in one of
    /// a group's networks is in that group's network, whatever its prefix.
    pub upstream_groups: Arc<[UpstreamGroup]>,
    /// A key whose endpoint switched networks this many times within `cloned_key_window` is
    /// presented from two places at once (one roam, or a roam and back, is not).
    pub cloned_key_switches: u32,
    pub cloned_key_window: Duration,
    pub anomaly: AnomalyConfig,
    /// An event whose `seq` (microseconds of its collector's clock) is further than this ahead of
    /// processing time is refused: one crafted `seq` would otherwise blind the fold to that
    /// collector until its clock caught up.
    pub max_clock_skew: Duration,
}

impl Default for RuleConfig {
    fn default() -> Self {
        Self {
            staleness: StalenessWindow::default(),
            gateway_silence_scans: 3,
            uplink_quiet_share: 0.5,
            roam_suspicion: Duration::from_secs(3600),
            endpoint_network_prefix: (24, 48),
            upstream_groups: Arc::default(),
            cloned_key_switches: 4,
            cloned_key_window: Duration::from_secs(600),
            anomaly: AnomalyConfig::default(),
            max_clock_skew: Duration::from_secs(300),
        }
    }
}

/// Networks that share one upstream: their sites' endpoints count as one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamGroup {
    pub name: String,
    /// Not empty; the first stands for the whole group.
    pub networks: Vec<Cidr>,
}

pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
