//! The fold's throughput with 100,000 peers in state: `cargo bench -p argus-benches --bench fold`,
//! once with the scans as collectors send them and once with a path probe of 1% of the peers in
//! every scan (a fleet with that many quiet peers), which must cost no more than 5% of the rate.

use std::collections::HashMap;
use std::hint::black_box;

use argus_core::synthetic::{Fleet, FleetSpec};
use argus_core::{Event, FoldState, HostId, PathProbe};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const HOSTS: u32 = 100;
const PEERS_PER_HOST: u32 = 1_000;
/// Peers of each gateway probed in every scan: 1% of the fleet.
const PROBED_PER_HOST: u32 = 10;

/// One scan of the fleet with a probe after each of the first `probed_per_host` observations of
/// every gateway (of that peer's endpoint, as a collector probes a quiet peer), every event
/// numbered in order per gateway.
fn next_scan(fleet: &mut Fleet, probed_per_host: u32, seqs: &mut HashMap<HostId, u64>, scan: &mut Vec<Event>) {
    let mut generated = Vec::with_capacity((HOSTS * (PEERS_PER_HOST + 1)) as usize);
    fleet.next_scan(&mut generated);
    let mut observed_on_host = 0;
    for event in generated {
        let probe = match &event {
            Event::PeerObservation(observation) if observed_on_host < probed_per_host => {
                Some(Event::PathProbe(PathProbe {
                    header: observation.header.clone(),
                    public_key: observation.public_key,
                    target: observation.endpoint.expect("synthetic peers have endpoints").ip(),
                    sent: 3,
                    received: 3,
                    rtt_ms: Some(1.5),
                }))
            }
            _ => None,
        };
        observed_on_host = if matches!(event, Event::Heartbeat(_)) { 0 } else { observed_on_host + 1 };
        scan.push(event);
        scan.extend(probe);
    }
    for event in scan.iter_mut() {
        let header = event.header_mut();
        let seq = seqs.entry(header.host.clone()).or_default();
        *seq += 1;
        header.seq = *seq;
    }
}

/// One fleet and the fold state it warmed: every peer known, baselines started, probes held.
struct Warmed {
    fleet: Fleet,
    seqs: HashMap<HostId, u64>,
    state: FoldState,
    probed_per_host: u32,
}

impl Warmed {
    fn new(probed_per_host: u32) -> Self {
        let fleet = Fleet::new(FleetSpec {
            org: "bench".parse().expect("org"),
            hosts: HOSTS,
            peers_per_host: PEERS_PER_HOST,
            scan_interval_ms: 10_000,
            start: 1_780_272_000_000,
        });
        let mut warmed = Self { fleet, seqs: HashMap::new(), state: FoldState::default(), probed_per_host };
        let mut effects = Vec::new();
        for _ in 0..3 {
            for event in &warmed.scan() {
                warmed.state.apply(event, event.header().observed_at, &mut effects).expect("the fold accepts it");
                effects.clear();
            }
        }
        assert_eq!(warmed.state.peer_count(), (HOSTS * PEERS_PER_HOST) as usize);
        warmed
    }

    fn events_per_scan(&self) -> u64 {
        u64::from(HOSTS * (PEERS_PER_HOST + 1 + self.probed_per_host))
    }

    fn scan(&mut self) -> Vec<Event> {
        let mut scan = Vec::with_capacity(self.events_per_scan() as usize);
        next_scan(&mut self.fleet, self.probed_per_host, &mut self.seqs, &mut scan);
        scan
    }
}

/// Both fleets are warmed before either is measured, and the two are measured in turn twice, so
/// the machine's drift within the sitting shows beside the difference.
fn fold_with_100k_peers(criterion: &mut Criterion) {
    let mut plain = Warmed::new(0);
    let mut probed = Warmed::new(PROBED_PER_HOST);
    let mut group = criterion.benchmark_group("fold");
    group.sample_size(20);
    // shorter measurements of these 25 ms iterations scatter by more than the 5% they are to show
    group.measurement_time(std::time::Duration::from_secs(20));
    for round in ["", ", again"] {
        for (name, warmed) in [
            ("apply one scan of 100k peers (events/s)", &mut plain),
            ("the same with 1% of peers probed (events/s)", &mut probed),
        ] {
            let events_per_scan = warmed.events_per_scan();
            let Warmed { fleet, seqs, state, probed_per_host } = warmed;
            group.throughput(Throughput::Elements(events_per_scan));
            let mut effects = Vec::new();
            group.bench_function(format!("{name}{round}"), |bench| {
                bench.iter_batched(
                    || {
                        let mut scan = Vec::with_capacity(events_per_scan as usize);
                        next_scan(fleet, *probed_per_host, seqs, &mut scan);
                        scan
                    },
                    |scan| {
                        for event in &scan {
                            state.apply(event, event.header().observed_at, &mut effects).expect("the fold accepts it");
                            black_box(effects.len());
                            effects.clear();
                        }
                        scan
                    },
                    BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(benches, fold_with_100k_peers);
criterion_main!(benches);
