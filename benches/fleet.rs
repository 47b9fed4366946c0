//! What the benchmarks share: a synthetic fleet of 100 gateways x 1,000 peers folded into store
//! batches, as the processor would write them.

use argus_core::synthetic::{Fleet, FleetSpec};
use argus_core::{FoldState, OrgId};
use argus_store::Batch;

pub const HOSTS: u32 = 100;
pub const PEERS_PER_HOST: u32 = 1_000;
/// When the synthetic fleet's first scan happens; scans follow every 10 s.
pub const FLEET_START: i64 = 1_780_272_000_000;
/// Peer rows per store batch.
pub const BATCH_ROWS: usize = 1_000;

pub fn org() -> OrgId {
    "bench".parse().expect("org")
}

/// Folds scans of the fleet into store batches of `BATCH_ROWS` peer rows each (plus the host
/// statistics of the gateways they touch).
#[derive(Debug)]
pub struct BatchSource {
    fleet: Fleet,
    state: FoldState,
    pending: Vec<argus_core::fold::Effect>,
}

impl Default for BatchSource {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchSource {
    pub fn new() -> Self {
        Self::with_hosts(HOSTS)
    }

    /// A fleet of `hosts` gateways of `PEERS_PER_HOST` peers each.
    pub fn with_hosts(hosts: u32) -> Self {
        let fleet = Fleet::new(FleetSpec {
            org: org(),
            hosts,
            peers_per_host: PEERS_PER_HOST,
            scan_interval_ms: 10_000,
            start: FLEET_START,
        });
        Self { fleet, state: FoldState::default(), pending: Vec::new() }
    }

    pub fn next_batch(&mut self) -> Batch {
        while self.pending.len() < BATCH_ROWS {
            let mut scan = Vec::new();
            self.fleet.next_scan(&mut scan);
            for event in &scan {
                self.state.apply(event, event.header().observed_at, &mut self.pending).expect("the fold accepts it");
            }
        }
        let rest = self.pending.split_off(BATCH_ROWS);
        let effects = std::mem::replace(&mut self.pending, rest);
        let mut hosts: Vec<_> = effects
            .iter()
            .filter_map(|effect| match effect {
                argus_core::fold::Effect::PeerUpdated(record) => Some(record.host.clone()),
                _ => None,
            })
            .collect();
        hosts.dedup();
        let host_stats = hosts.iter().flat_map(|host| self.state.host_stats(&org(), host)).collect();
        Batch { effects, host_stats, ..Batch::default() }
    }
}
