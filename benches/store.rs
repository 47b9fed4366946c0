//! The embedded store: batched upserts, and the latency of the API's hottest reads with 100,000
//! peers stored. `cargo bench -p argus-benches --bench store`

use std::hint::black_box;
use std::time::{Duration, Instant};

use argus_benches::{BatchSource, FLEET_START, HOSTS, PEERS_PER_HOST, org};
use argus_core::Clearance;
use argus_core::synthetic::Fleet;
use argus_store::{EmbeddedStore, PageRequest, PeerFilter, ProjectionStore, TimeRange};
use criterion::{BatchSize, Criterion, Throughput, criterion_group};

const BATCH_ROWS: usize = argus_benches::BATCH_ROWS;

fn upserts(criterion: &mut Criterion) {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&directory.path().join("bench-store")).expect("open");
    let mut source = BatchSource::new();
    let mut group = criterion.benchmark_group("embedded store");
    group.throughput(Throughput::Elements(BATCH_ROWS as u64));
    group.sample_size(30);
    group.bench_function("durable batch of 1,000 peer rows (+ history rows) (rows/s)", |bench| {
        bench.iter_batched(
            || source.next_batch(),
            |batch| store.write_blocking(&batch).expect("write"),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * fraction) as usize).min(samples.len() - 1)]
}

/// Times `calls` sequential calls and prints p50, p99 and max.
fn report<F: std::future::Future>(
    runtime: &tokio::runtime::Runtime, name: &str, calls: usize, mut call: impl FnMut() -> F,
) {
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        black_box(runtime.block_on(call()));
        samples.push(started.elapsed());
    }
    let p50 = percentile(&mut samples, 0.50);
    let p99 = percentile(&mut samples, 0.99);
    let max = samples[samples.len() - 1];
    println!("{name}: p50 {p50:?}, p99 {p99:?}, max {max:?} over {calls} calls");
}

fn read_latency() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&directory.path().join("bench-store")).expect("open");
    let mut source = BatchSource::new();
    let rows = (HOSTS * PEERS_PER_HOST) as usize;
    for _ in 0..rows / BATCH_ROWS {
        store.write_blocking(&source.next_batch()).expect("load");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let stats = runtime.block_on(store.stats(&org(), Clearance::TopSecret)).expect("stats");
    assert_eq!(stats.peers.total(), rows as u64, "100,000 peers stored");
    let org = org();
    let filter = PeerFilter::default();
    let first_page = PageRequest::first(100);
    report(&runtime, "first page of 100 peers, 100,000 stored", 5_000, || {
        store.peers(&org, &filter, Clearance::TopSecret, &first_page)
    });
    report(&runtime, "statistics, 100,000 peers on 100 gateways", 5_000, || store.stats(&org, Clearance::TopSecret));
    let stale_only = PeerFilter { stale: Some(true), ..PeerFilter::default() };
    report(&runtime, "first page of stale peers (none: scans all 100,000)", 50, || {
        store.peers(&org, &stale_only, Clearance::TopSecret, &first_page)
    });
    history_latency(&runtime);
}

/// A peer's history: one gateway of 1,000 peers scanned every 10 s for an hour (360,000 rows).
fn history_latency(runtime: &tokio::runtime::Runtime) {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&directory.path().join("bench-store")).expect("open");
    let mut source = BatchSource::with_hosts(1);
    for _ in 0..360 {
        store.write_blocking(&source.next_batch()).expect("load");
    }
    let (org, key) = (org(), Fleet::peer_key(0, 7));
    let day = TimeRange { from: FLEET_START - 12 * 3_600_000, to: FLEET_START + 12 * 3_600_000 };
    let first_page = PageRequest::first(100);
    let second_page = runtime
        .block_on(store.history(&org, &key, day, Clearance::TopSecret, &first_page))
        .expect("history")
        .next
        .map(|after| PageRequest { first: 100, after: Some(after) })
        .expect("a second page");
    report(runtime, "history of one peer over a day (its 360 rows among 360,000), first page of 100", 5_000, || {
        store.history(&org, &key, day, Clearance::TopSecret, &first_page)
    });
    report(runtime, "the same history, second page of 100", 5_000, || {
        store.history(&org, &key, day, Clearance::TopSecret, &second_page)
    });
}

criterion_group!(benches, upserts);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|argument| argument == "--bench") {
        read_latency();
    }
}
