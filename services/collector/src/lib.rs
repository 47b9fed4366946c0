//! Argus WireGuard collector: scans this host's WireGuard interfaces on a fixed interval and
//! publishes what it sees to the event log — a `PeerObservation` per peer, a `Heartbeat` per
//! interface, a `PeerRemoved` per departed peer, and a `PathProbe` per probe of a quiet peer's
//! endpoint, keyed `org/host`.
//!
//! The scan loop never waits for the log or a probe: scans go into a bounded outbox that keeps the
//! newest event per peer, probes run in a task of their own, and a separate publisher drains the
//! outbox, retrying with backoff while the log is down. Private and preshared keys are dropped
//! where they are read (`wireguard`).

pub mod inventory;
pub mod outbox;
pub mod probe;
pub mod scan;
pub mod wireguard;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argus_core::codec::encode_event;
use argus_core::ids::partition_key;
use argus_core::{
    Clearance, CollectorId, Event, EventHeader, HostId, InterfaceName, OrgId, PathProbe, SeqCounter, UnixMillis,
};
use argus_log::{EventLog, LogError};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{debug, info, warn};

pub use self::inventory::{Inventory, InventoryEntry, InventoryError};
pub use self::outbox::{Outbox, Pending};
pub use self::probe::{ProbePlanner, ProbeSettings, ProbeTarget, Prober};
pub use self::scan::{InterfaceIdentity, Scanner};
pub use self::wireguard::{InterfaceSnapshot, PeerSnapshot, ReadError, WireguardHost};

/// Overrides of the collector-wide identity for one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceOverride {
    pub org: Option<OrgId>,
    pub host: Option<HostId>,
    pub clearance: Option<Clearance>,
    /// `Some(false)`: this interface's quiet peers are never probed.
    pub probe: Option<bool>,
    /// The network namespace the interface lives in (a path): its probes leave from there.
    pub netns: Option<std::path::PathBuf>,
}

/// What one collector watches and how it publishes.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub org: OrgId,
    /// The gateway's name in the NOC (defaults to the machine's host name in the `argus` binary).
    pub host: HostId,
    /// Unique per collector process; `seq` rises per collector id.
    pub collector_id: CollectorId,
    pub clearance: Clearance,
    pub scan_interval: Duration,
    /// Interfaces to watch; empty means every WireGuard interface found at each scan.
    pub interfaces: Vec<InterfaceName>,
    pub overrides: BTreeMap<InterfaceName, InterfaceOverride>,
    pub observations_topic: String,
    /// Most events held while the log is unreachable (one per peer and interface is enough).
    pub outbox_capacity: usize,
    /// Events appended concurrently per round trip to the log (to a central: per request).
    pub publish_chunk: usize,
    /// Longest wait between retries while the log is unreachable.
    pub max_backoff: Duration,
    /// Path probes of quiet peers' endpoints.
    pub probes: ProbeSettings,
    /// Names, owners, sites and clearances of peers, by key (`[collector] inventory`).
    pub inventory: Arc<Inventory>,
}

impl CollectorConfig {
    /// Defaults for everything but the identity: 10 s scans of every interface found.
    pub fn new(org: OrgId, host: HostId, collector_id: CollectorId) -> Self {
        Self {
            org,
            host,
            collector_id,
            clearance: Clearance::default(),
            scan_interval: Duration::from_secs(10),
            interfaces: Vec::new(),
            overrides: BTreeMap::new(),
            observations_topic: "wireguard.observations".into(),
            outbox_capacity: 1_000_000,
            // a round trip costs a collector more CPU than thousands of records in it: a
            // 10,000-peer gateway's scan is one, and one request to a central
            publish_chunk: argus_log::ingest::MAX_BATCH_RECORDS,
            max_backoff: Duration::from_secs(10),
            probes: ProbeSettings::default(),
            inventory: Arc::default(),
        }
    }

    /// The identity the events of `interface` carry.
    pub fn identity(&self, interface: &InterfaceName) -> InterfaceIdentity {
        let overrides = self.overrides.get(interface).cloned().unwrap_or_default();
        InterfaceIdentity {
            org: overrides.org.unwrap_or_else(|| self.org.clone()),
            host: overrides.host.unwrap_or_else(|| self.host.clone()),
            clearance: overrides.clearance.unwrap_or(self.clearance),
        }
    }

    /// Whether the quiet peers of `interface` are probed, and from which network namespace
    /// (`Some(None)`: this process's own).
    pub fn probing(&self, interface: &InterfaceName) -> Option<Option<std::path::PathBuf>> {
        let overrides = self.overrides.get(interface);
        let enabled = self.probes.enabled && overrides.and_then(|overrides| overrides.probe).unwrap_or(true);
        enabled.then(|| overrides.and_then(|overrides| overrides.netns.clone()))
    }
}

/// Live figures of a running collector (also exported as metrics).
#[derive(Debug, Default)]
pub struct CollectorStatus {
    scans: AtomicU64,
    published: AtomicU64,
    probes: AtomicU64,
    outbox_len: AtomicU64,
    outbox_high_water: AtomicU64,
    log_unreachable: AtomicBool,
}

impl CollectorStatus {
    /// Scans completed.
    pub fn scans(&self) -> u64 {
        self.scans.load(Ordering::Relaxed)
    }

    /// Events the log acknowledged.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Path probes completed (answered or not).
    pub fn probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }

    /// Events waiting for the log now, and the most ever waiting.
    pub fn outbox_len(&self) -> u64 {
        self.outbox_len.load(Ordering::Relaxed)
    }

    pub fn outbox_high_water(&self) -> u64 {
        self.outbox_high_water.load(Ordering::Relaxed)
    }

    /// Whether the last publish attempt failed.
    pub fn log_unreachable(&self) -> bool {
        self.log_unreachable.load(Ordering::Relaxed)
    }

    fn record_outbox(&self, outbox: &Outbox) {
        let len = outbox.len() as u64;
        self.outbox_len.store(len, Ordering::Relaxed);
        self.outbox_high_water.fetch_max(len, Ordering::Relaxed);
        metrics::gauge!("argus_collector_outbox_events").set(len as f64);
        metrics::counter!("argus_collector_outbox_dropped_total").absolute(outbox.dropped());
        metrics::counter!("argus_collector_outbox_coalesced_total").absolute(outbox.coalesced());
    }
}

fn now_millis() -> UnixMillis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
}

fn lock(outbox: &Mutex<Outbox>) -> MutexGuard<'_, Outbox> {
    outbox.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A collector bound to this host's interfaces and one event log.
#[derive(Debug)]
pub struct Collector<L> {
    wireguard: WireguardHost,
    log: Arc<L>,
    config: CollectorConfig,
    status: Arc<CollectorStatus>,
}

impl<L: EventLog + 'static> Collector<L> {
    pub fn new(wireguard: WireguardHost, log: Arc<L>, config: CollectorConfig) -> Self {
        Self { wireguard, log, config, status: Arc::default() }
    }

    pub fn status(&self) -> Arc<CollectorStatus> {
        Arc::clone(&self.status)
    }

    /// Scans and publishes until `shutdown` resolves; then publishes what is pending (for up to
    /// `drain_timeout`) and flushes the log.
    pub async fn run(self, shutdown: impl Future<Output = ()>, drain_timeout: Duration) -> Result<(), LogError> {
        let outbox = Arc::new(Mutex::new(Outbox::new(self.config.outbox_capacity)));
        let wake = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        let publisher = tokio::spawn(publish_loop(
            Arc::clone(&self.log),
            self.config.clone(),
            Arc::clone(&outbox),
            Arc::clone(&wake),
            Arc::clone(&self.status),
            stopped,
        ));
        let (probe_requests, probe_queue) = mpsc::channel(PROBE_BATCHES_QUEUED);
        let prober = tokio::spawn(probe_loop(
            Prober::new(self.config.probes.clone()),
            self.config.collector_id.clone(),
            probe_queue,
            Arc::clone(&outbox),
            Arc::clone(&wake),
            Arc::clone(&self.status),
        ));
        let mut planner = ProbePlanner::default();
        let mut scanner = Scanner::new(
            self.config.collector_id.clone(),
            u32::try_from(self.config.scan_interval.as_millis()).unwrap_or(u32::MAX),
        )
        .with_inventory(Arc::clone(&self.config.inventory));
        let mut failing: BTreeMap<InterfaceName, String> = BTreeMap::new();
        let mut ticker = tokio::time::interval(self.config.scan_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = ticker.tick() => {}
            }
            let started = Instant::now();
            let reads = self.read_interfaces().await;
            let mut events = Vec::new();
            for (interface, observed_at, read) in reads {
                match read {
                    Ok(snapshot) => {
                        if failing.remove(&interface).is_some() {
                            info!(%interface, "interface readable again");
                        }
                        let identity = self.config.identity(&interface);
                        scanner.scan(&snapshot, &identity, observed_at, &mut events);
                        if let Some(namespace) = self.config.probing(&interface) {
                            let mut targets = Vec::new();
                            planner.plan(&snapshot, observed_at, &self.config.probes, &mut targets);
                            if !targets.is_empty() {
                                let batch = ProbeBatch { interface, identity, namespace, targets };
                                if probe_requests.try_send(batch).is_err() {
                                    metrics::counter!("argus_collector_probes_skipped_total").increment(1);
                                }
                            }
                        }
                    }
                    Err(error) => {
                        metrics::counter!("argus_collector_interface_read_errors_total", "interface" => interface.to_string())
                            .increment(1);
                        let reason = error.to_string();
                        if failing.get(&interface) != Some(&reason) {
                            warn!(%interface, error = %reason, "interface not readable; no heartbeat for it this scan");
                            failing.insert(interface, reason);
                        }
                    }
                }
            }
            {
                let mut outbox = lock(&outbox);
                for event in events {
                    outbox.push(event);
                }
                self.status.record_outbox(&outbox);
            }
            wake.notify_one();
            self.status.scans.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("argus_collector_scans_total").increment(1);
            metrics::histogram!("argus_collector_scan_seconds").record(started.elapsed().as_secs_f64());
        }
        prober.abort();
        let _ = stop.send(true);
        wake.notify_one();
        let _ = tokio::time::timeout(drain_timeout, publisher).await;
        let remaining = lock(&outbox).len();
        if remaining > 0 {
            warn!(events = remaining, "stopped with events the log did not take");
        }
        self.log.flush().await
    }

    /// Reads every watched interface on a blocking thread; each read is dated when it finished.
    async fn read_interfaces(&self) -> Vec<(InterfaceName, UnixMillis, Result<InterfaceSnapshot, ReadError>)> {
        let wireguard = self.wireguard.clone();
        let configured = self.config.interfaces.clone();
        tokio::task::spawn_blocking(move || {
            let interfaces = if configured.is_empty() { wireguard.discover() } else { configured };
            interfaces
                .into_iter()
                .map(|interface| {
                    let read = wireguard.read(&interface);
                    (interface, now_millis(), read)
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }
}

/// Probe batches waiting while earlier ones run; a scan finding the queue full skips its probes.
const PROBE_BATCHES_QUEUED: usize = 16;
/// Probes run at once: each waits up to `echoes x echo_timeout` on a silent endpoint.
const PROBES_AT_ONCE: usize = 16;

/// The quiet peers of one interface due for a probe, planned at one scan.
#[derive(Debug)]
struct ProbeBatch {
    interface: InterfaceName,
    identity: InterfaceIdentity,
    namespace: Option<std::path::PathBuf>,
    targets: Vec<ProbeTarget>,
}

/// Runs the planned probes beside the scan loop and queues each result as a `PathProbe`. A probe
/// that could not be made (no namespace, no socket) publishes nothing: no evidence either way.
async fn probe_loop(
    prober: Prober, collector_id: CollectorId, mut batches: mpsc::Receiver<ProbeBatch>, outbox: Arc<Mutex<Outbox>>,
    wake: Arc<Notify>, status: Arc<CollectorStatus>,
) {
    let mut reported: std::collections::HashSet<String> = std::collections::HashSet::new();
    while let Some(batch) = batches.recv().await {
        for chunk in batch.targets.chunks(PROBES_AT_ONCE) {
            let probes = chunk.iter().map(|target| prober.probe(target.address, batch.namespace.as_deref()));
            let outcomes = futures_util::future::join_all(probes).await;
            let observed_at = now_millis();
            for (target, outcome) in chunk.iter().zip(outcomes) {
                match outcome {
                    Ok(outcome) => {
                        let answered = if outcome.received > 0 { "answered" } else { "silent" };
                        metrics::counter!("argus_collector_probes_total", "result" => answered).increment(1);
                        status.probes.fetch_add(1, Ordering::Relaxed);
                        let event = Event::PathProbe(PathProbe {
                            header: EventHeader {
                                org_id: batch.identity.org.clone(),
                                host: batch.identity.host.clone(),
                                interface: batch.interface.clone(),
                                observed_at,
                                collector_id: collector_id.clone(),
                                seq: 0,
                            },
                            public_key: target.public_key,
                            target: target.address,
                            sent: outcome.sent,
                            received: outcome.received,
                            rtt_ms: outcome.rtt_ms,
                        });
                        let mut outbox = lock(&outbox);
                        outbox.push(event);
                        status.record_outbox(&outbox);
                    }
                    Err(error) => {
                        metrics::counter!("argus_collector_probe_errors_total").increment(1);
                        let reason = error.to_string();
                        if reported.insert(reason.clone()) {
                            warn!(interface = %batch.interface, error = %reason, "cannot probe this interface's peers");
                        }
                    }
                }
            }
            wake.notify_one();
        }
    }
}

/// Drains the outbox into the log whenever the scan loop wakes it; retries with backoff while the
/// log refuses. Stops once told to and the outbox is empty (or the caller stops waiting).
async fn publish_loop<L: EventLog>(
    log: Arc<L>, config: CollectorConfig, outbox: Arc<Mutex<Outbox>>, wake: Arc<Notify>, status: Arc<CollectorStatus>,
    mut stopped: watch::Receiver<bool>,
) {
    let seq = SeqCounter::default();
    let mut backoff = Duration::from_millis(100);
    loop {
        let pending = lock(&outbox).take_all();
        if pending.is_empty() {
            if *stopped.borrow() {
                return;
            }
            tokio::select! {
                () = wake.notified() => {}
                _ = stopped.changed() => {}
            }
            continue;
        }
        match publish(&*log, &config, &seq, pending).await {
            Ok(count) => {
                status.published.fetch_add(count, Ordering::Relaxed);
                metrics::counter!("argus_collector_events_published_total").increment(count);
                if status.log_unreachable.swap(false, Ordering::Relaxed) {
                    info!("event log reachable again");
                    metrics::gauge!("argus_collector_log_unreachable").set(0.0);
                }
                backoff = Duration::from_millis(100);
                status.record_outbox(&lock(&outbox));
            }
            Err((unpublished, count, error)) => {
                status.published.fetch_add(count, Ordering::Relaxed);
                metrics::counter!("argus_collector_events_published_total").increment(count);
                metrics::counter!("argus_collector_publish_failures_total").increment(1);
                {
                    let mut outbox = lock(&outbox);
                    outbox.put_back(unpublished);
                    status.record_outbox(&outbox);
                }
                debug!(%error, retry_in_ms = backoff.as_millis(), "publish failed");
                if !status.log_unreachable.swap(true, Ordering::Relaxed) {
                    warn!(%error, "event log unreachable; buffering the newest event per peer and retrying");
                    metrics::gauge!("argus_collector_log_unreachable").set(1.0);
                }
                if *stopped.borrow() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

/// Each event's partition key (`org/host`) as an index into the keys, made once per run of one
/// interface's events rather than once per event.
fn partition_keys<'a>(headers: impl Iterator<Item = &'a EventHeader>) -> (Vec<String>, Vec<usize>) {
    let (mut keys, mut key_of) = (Vec::new(), Vec::new());
    let mut before: Option<&EventHeader> = None;
    for header in headers {
        if before.is_none_or(|before| before.org_id != header.org_id || before.host != header.host) {
            keys.push(partition_key(&header.org_id, &header.host));
        }
        key_of.push(keys.len() - 1);
        before = Some(header);
    }
    (keys, key_of)
}

/// Keeps this process off transparent huge pages. A collector's heap is small and turns over every
/// scan; the allocator asks for huge pages, and each fresh one is a 2 MiB clear that costs the push
/// path more than the records it holds.
pub fn without_huge_pages() -> Result<(), nix::Error> {
    nix::sys::prctl::set_thp_disable(true)
}

/// Stamps, encodes and appends `pending` in order, `publish_chunk` at a time. On failure returns
/// what was not published (oldest first), how many were, and the error.
async fn publish<L: EventLog>(
    log: &L, config: &CollectorConfig, seq: &SeqCounter, pending: Vec<Pending>,
) -> Result<u64, (Vec<Pending>, u64, LogError)> {
    let mut published = 0;
    let mut pending = pending.into_iter().peekable();
    while pending.peek().is_some() {
        let mut chunk: Vec<Pending> = pending.by_ref().take(config.publish_chunk.max(1)).collect();
        let values: Vec<Vec<u8>> = chunk
            .iter_mut()
            .map(|pending| {
                pending.event.header_mut().seq = seq.next(now_micros());
                let mut value = Vec::with_capacity(192);
                encode_event(&pending.event, &mut value);
                value
            })
            .collect();
        let (keys, key_of) = partition_keys(chunk.iter().map(|pending| pending.event.header()));
        let records: Vec<(&[u8], &[u8])> =
            key_of.iter().zip(&values).map(|(&key, value)| (keys[key].as_bytes(), value.as_slice())).collect();
        let results = log.append_all(&config.observations_topic, &records).await;
        let mut unpublished = Vec::new();
        let mut first_error = None;
        for (pending, result) in chunk.into_iter().zip(results) {
            match result {
                Ok(_) => published += 1,
                Err(error) => {
                    first_error.get_or_insert(error);
                    unpublished.push(pending);
                }
            }
        }
        if let Some(error) = first_error {
            unpublished.extend(pending);
            return Err((unpublished, published, error));
        }
    }
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_gets_its_own_org_and_host_as_key_when_a_chunk_spans_interfaces() {
        let header = |org: &str, host: &str| EventHeader {
            org_id: org.parse().expect("org"),
            host: host.parse().expect("host"),
            interface: "wg0".parse().expect("interface"),
            observed_at: 0,
            collector_id: "gw".parse().expect("collector"),
            seq: 0,
        };
        let headers = [
            header("acme", "gw-1"),
            header("acme", "gw-1"),
            header("acme", "gw-2"),
            header("beta", "gw-2"),
            header("acme", "gw-1"),
        ];
        let (keys, key_of) = partition_keys(headers.iter());
        assert_eq!(keys, ["acme/gw-1", "acme/gw-2", "beta/gw-2", "acme/gw-1"]);
        assert_eq!(key_of, [0, 0, 1, 2, 3]);
        for (header, key) in headers.iter().zip(key_of) {
            assert_eq!(keys[key], partition_key(&header.org_id, &header.host));
        }
        assert_eq!(partition_keys(std::iter::empty()), (Vec::new(), Vec::new()));
    }
}
