//! The fold's throughput with 100,000 peers in state: `cargo bench -p argus-benches --bench fold`.

use std::hint::black_box;

use argus_core::FoldState;
use argus_core::synthetic::{Fleet, FleetSpec};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const HOSTS: u32 = 100;
const PEERS_PER_HOST: u32 = 1_000;

fn fold_with_100k_peers(criterion: &mut Criterion) {
    let mut fleet = Fleet::new(FleetSpec {
        org: "bench".parse().expect("org"),
        hosts: HOSTS,
        peers_per_host: PEERS_PER_HOST,
        scan_interval_ms: 10_000,
        start: 1_780_272_000_000,
    });
    let mut state = FoldState::default();
    let mut effects = Vec::new();
    // warm the state: every peer known, baselines started
    for _ in 0..3 {
        let mut scan = Vec::new();
        fleet.next_scan(&mut scan);
        for event in &scan {
            state.apply(event, event.header().observed_at, &mut effects).expect("the fold accepts it");
            effects.clear();
        }
    }
    assert_eq!(state.peer_count(), (HOSTS * PEERS_PER_HOST) as usize);

    let events_per_scan = (HOSTS * (PEERS_PER_HOST + 1)) as u64;
    let mut group = criterion.benchmark_group("fold");
    group.throughput(Throughput::Elements(events_per_scan));
    group.sample_size(20);
    group.bench_function("apply one scan of 100k peers (events/s)", |bench| {
        bench.iter_batched(
            || {
                let mut scan = Vec::with_capacity(events_per_scan as usize);
                fleet.next_scan(&mut scan);
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
    group.finish();
}

criterion_group!(benches, fold_with_100k_peers);
criterion_main!(benches);
