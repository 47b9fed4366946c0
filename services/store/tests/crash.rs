//! Crash safety of the embedded store: a child process writing batches is SIGKILLed at random
//! points; after every kill each batch is wholly present or wholly absent, and the checkpoint
//! names the newest batch present. Batches not yet made durable may be gone, but only whole and
//! only together with their checkpoint.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use argus_core::fold::{Effect, PeerMetadata};
use argus_core::{Clearance, PeerRecord, PeerSource, PeerStatus, PublicKey};
use argus_store::{Batch, Checkpoint, EmbeddedStore, PageRequest, PeerFilter, ProjectionStore, TimeRange};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const CHILD_VARIABLE: &str = "ARGUS_CRASH_CHILD_STORE";
const PARTITION: &str = "wireguard.observations/0";
const PEERS_PER_BATCH: u8 = 200;
const T0: i64 = 1_780_272_000_000;
const KILLS: usize = 24;
const SYNC_EVERY: Duration = Duration::from_millis(50);

fn record(n: u8, batch: u64) -> PeerRecord {
    PeerRecord {
        org_id: "acme".parse().expect("org"),
        host: "gw-crash".parse().expect("host"),
        interface: "wg0".parse().expect("interface"),
        public_key: PublicKey::from_bytes([n; 32]),
        observed_at: T0 + batch as i64,
        status: PeerStatus::Active,
        endpoint: None,
        allowed_ips: Arc::from(Vec::new()),
        latest_handshake: Some(T0),
        handshake_age_ms: Some(batch as i64),
        rx_bytes: batch,
        tx_bytes: batch,
        rx_delta_bytes: 1,
        tx_delta_bytes: 1,
        rx_total_bytes: batch,
        tx_total_bytes: batch,
        rx_bytes_per_s: 0.1,
        tx_bytes_per_s: 0.1,
        counter_reset: false,
        persistent_keepalive: None,
        source: PeerSource::Kernel,
        clearance: Clearance::Unclassified,
        metadata: Arc::new(PeerMetadata::default()),
    }
}

/// Batch `number`: every peer observed at `T0 + number`, and the checkpoint after it.
fn batch(number: u64) -> Batch {
    Batch {
        effects: (0..PEERS_PER_BATCH).map(|n| Effect::PeerUpdated(record(n, number))).collect(),
        checkpoint: Some(Checkpoint {
            partition: PARTITION.into(),
            next_offset: number + 1,
            snapshot: number.to_be_bytes().to_vec(),
        }),
        ..Batch::default()
    }
}

/// The child: resumes after the stored checkpoint and writes batches until it is killed.
fn write_until_killed(path: &str) -> ! {
    // durable every 50 ms: kills land both after durable commits and among non-durable ones
    let store =
        EmbeddedStore::open_with_sync_interval(std::path::Path::new(path), SYNC_EVERY).expect("child opens the store");
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut next = runtime.block_on(store.checkpoint(PARTITION)).expect("checkpoint").map_or(0, |c| c.next_offset);
    loop {
        store.write_blocking(&batch(next)).expect("child writes");
        next += 1;
    }
}

#[test]
fn batches_survive_sigkill_whole_or_not_at_all() {
    if let Ok(path) = std::env::var(CHILD_VARIABLE) {
        write_until_killed(&path);
    }
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("crash-store");
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut rng = SmallRng::seed_from_u64(0xdead);
    let mut newest_seen = None;
    let mut progressed = 0;
    for kill in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "batches_survive_sigkill_whole_or_not_at_all", "--nocapture"])
            .env(CHILD_VARIABLE, &path)
            .spawn()
            .expect("spawn child");
        // the first kills land early, while the child may still be creating the store
        let delay = if kill < 4 { rng.random_range(0..30) } else { rng.random_range(100..900) };
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");

        let store = EmbeddedStore::open(&path).expect("store reopens after SIGKILL");
        let checkpoint = runtime.block_on(store.checkpoint(PARTITION)).expect("read checkpoint");
        let Some(checkpoint) = checkpoint else {
            assert!(newest_seen.is_none(), "kill {kill}: checkpoint went missing");
            let peers = runtime.block_on(store.peers(
                &"acme".parse().expect("org"),
                &PeerFilter::default(),
                Clearance::TopSecret,
                &PageRequest::first(10),
            ));
            assert!(peers.expect("peers").items.is_empty(), "kill {kill}: rows without a checkpoint");
            continue;
        };
        let newest = checkpoint.next_offset - 1;
        assert_eq!(checkpoint.snapshot, newest.to_be_bytes(), "kill {kill}: snapshot belongs to its batch");
        if let Some(previous) = newest_seen {
            assert!(newest >= previous, "kill {kill}: durable batches went back from {previous} to {newest}");
            if newest > previous {
                progressed += 1;
            }
        }
        newest_seen = Some(newest);
        let org = "acme".parse().expect("org");
        for n in 0..PEERS_PER_BATCH {
            let key = PublicKey::from_bytes([n; 32]);
            let history = runtime
                .block_on(store.history(
                    &org,
                    &key,
                    TimeRange::default(),
                    Clearance::TopSecret,
                    &PageRequest::first(100_000),
                ))
                .expect("history");
            let times: Vec<i64> = history.items.iter().map(|row| row.observed_at - T0).collect();
            let expected: Vec<i64> = (0..=newest as i64).collect();
            assert_eq!(times, expected, "kill {kill}, peer {n}: every batch up to {newest} whole, none after");
            let current = runtime.block_on(store.peer(&org, &key, Clearance::TopSecret)).expect("peer");
            assert_eq!(
                current[0].observed_at,
                T0 + newest as i64,
                "kill {kill}, peer {n}: current row from the newest batch"
            );
        }
    }
    // a child killed before its first durable commit (or while recovering the previous crash)
    // adds nothing; most later ones must have
    assert!(progressed >= KILLS / 3, "the child made progress between kills only {progressed} of {KILLS} times");
}
