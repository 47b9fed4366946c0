//! The embedded store: one redb file, one atomic transaction per batch, crash-safe by design.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argus_core::fold::Effect;
use argus_core::{
    AlertId, Clearance, EndpointChange, HostId, HostRecord, HostStats, InterfaceName, OrgId, PeerRecord, PublicKey,
    UnixMillis,
};
use async_trait::async_trait;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
    WriteTransaction,
};
use rustc_hash::FxHashMap;

use crate::ProjectionStore;
use crate::keys::{self, SeenSpan};
use crate::model::{
    AlertFilter, AlertRow, Batch, Checkpoint, HistoryRow, Listing, ManifestRow, Page, PageRequest, PeerFilter,
    PeerReading, Stats, StoreError, TimeRange,
};
use crate::scan::{
    PageBuilder, Scan, alerts_scan, decode, encode, encode_into, peers_scan, timeline_scan, unavailable, visible,
};

type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;

const PEERS: Table = TableDefinition::new("peers");
const PEERS_BY_KEY: Table = TableDefinition::new("peers_by_key");
const PEER_HISTORY: Table = TableDefinition::new("peer_history");
const ENDPOINT_CHANGES: Table = TableDefinition::new("endpoint_changes");
const ALERTS: Table = TableDefinition::new("alerts");
const ALERT_IDS: Table = TableDefinition::new("alert_ids");
const HOSTS: Table = TableDefinition::new("hosts");
const HOST_STATS: Table = TableDefinition::new("host_stats");
const MANIFESTS: Table = TableDefinition::new("manifests");
const CHECKPOINTS: Table = TableDefinition::new("checkpoints");
/// What the file itself holds: its row format.
const META: Table = TableDefinition::new("meta");

const ALL_TABLES: [Table; 11] = [
    PEERS,
    PEERS_BY_KEY,
    PEER_HISTORY,
    ENDPOINT_CHANGES,
    ALERTS,
    ALERT_IDS,
    HOSTS,
    HOST_STATS,
    MANIFESTS,
    CHECKPOINTS,
    META,
];

/// How rows are laid out, bumped whenever that changes, so a file written by another version is
/// refused when opened rather than misread. 1: before the marker (history by peer key and time);
/// 2: history by gateway and minute, `peers_by_key` holding the first observation; 3: history by
/// gateway and time without the key's parts in its values, `peers_by_key` holding a [`SeenSpan`],
/// endpoints and prefixes packed as bytes.
const ROW_FORMAT: u8 = 4;
const ROW_FORMAT_KEY: &[u8] = b"row_format";

/// Opens every table (a file made by an earlier version gains the tables added since) and checks
/// the row format, recording it in a file that has no rows yet.
fn prepare_tables(transaction: &WriteTransaction) -> Result<(), StoreError> {
    for table in ALL_TABLES {
        transaction.open_table(table).map_err(unavailable)?;
    }
    let mut meta = transaction.open_table(META).map_err(unavailable)?;
    let recorded = meta.get(ROW_FORMAT_KEY).map_err(unavailable)?.and_then(|format| format.value().first().copied());
    let found = match recorded {
        Some(format) => format,
        None if transaction.open_table(PEERS).map_err(unavailable)?.is_empty().map_err(unavailable)? => {
            meta.insert(ROW_FORMAT_KEY, [ROW_FORMAT].as_slice()).map_err(unavailable)?;
            ROW_FORMAT
        }
        None => 1,
    };
    if found == ROW_FORMAT { Ok(()) } else { Err(StoreError::Format { found, expected: ROW_FORMAT }) }
}

/// Creates the file with every table under a temporary name, then renames it into place, so a
/// crash during creation never leaves a half-made store behind.
fn create_atomically(path: &Path) -> Result<(), StoreError> {
    let mut creating = path.as_os_str().to_owned();
    creating.push(".creating");
    let creating = std::path::PathBuf::from(creating);
    // a leftover is a creation that crashed: never valid, start it again
    match std::fs::remove_file(&creating) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(unavailable(error)),
        _ => {}
    }
    {
        let database = Database::create(&creating).map_err(unavailable)?;
        let transaction = database.begin_write().map_err(unavailable)?;
        prepare_tables(&transaction)?;
        transaction.commit().map_err(unavailable)?;
    }
    std::fs::rename(&creating, path).map_err(unavailable)?;
    if let Some(directory) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::File::open(directory).and_then(|directory| directory.sync_all()).map_err(unavailable)?;
    }
    Ok(())
}

/// How often a batch is made durable by default.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Projections in one redb file. Cheap to clone; clones share the database.
///
/// Every batch is one atomic transaction holding its checkpoint. A batch is fsynced when the
/// previous durable one is `sync_interval` old; a crash can take the batches since, and their
/// checkpoint with them, so the processor replays exactly those from the log.
#[derive(Clone)]
pub struct EmbeddedStore {
    database: Arc<Database>,
    sync_interval: Duration,
    last_sync: Arc<Mutex<Instant>>,
    /// Batches committed since the store was opened ([`ProjectionStore::version`]).
    commits: Arc<AtomicU64>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

/// redb's page cache: bounded, so a process holding a million peers stays within its memory
/// budget (redb's default is 1 GiB). The pages a batch touches are few and neighbours, and the OS
/// page cache holds the rest.
const CACHE_BYTES: usize = 48 * 1024 * 1024;

impl EmbeddedStore {
    /// Opens the store file, creating it first if it does not exist; every table exists afterwards.
    /// A file whose rows are laid out in another format is refused with [`StoreError::Format`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_sync_interval(path, SYNC_INTERVAL)
    }

    /// [`EmbeddedStore::open`], making a batch durable whenever the last durable one is
    /// `sync_interval` old (zero: every batch).
    pub fn open_with_sync_interval(path: &Path, sync_interval: Duration) -> Result<Self, StoreError> {
        if !path.exists() {
            create_atomically(path)?;
        }
        let database = Database::builder().set_cache_size(CACHE_BYTES).open(path).map_err(unavailable)?;
        let transaction = database.begin_write().map_err(unavailable)?;
        prepare_tables(&transaction)?;
        transaction.commit().map_err(unavailable)?;
        Ok(Self {
            database: Arc::new(database),
            sync_interval,
            last_sync: Arc::new(Mutex::new(Instant::now())),
            commits: Arc::default(),
        })
    }

    fn durability_for_this_batch(&self) -> Durability {
        let mut last_sync = self.last_sync.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last_sync.elapsed() >= self.sync_interval {
            *last_sync = Instant::now();
            Durability::Immediate
        } else {
            Durability::None
        }
    }

    /// Applies one batch in one transaction (durable when the last durable one is `sync_interval` old).
    pub fn write_blocking(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut transaction = self.database.begin_write().map_err(unavailable)?;
        transaction.set_durability(self.durability_for_this_batch()).map_err(unavailable)?;
        {
            let mut peers = transaction.open_table(PEERS).map_err(unavailable)?;
            let mut peers_by_key = transaction.open_table(PEERS_BY_KEY).map_err(unavailable)?;
            let mut history = transaction.open_table(PEER_HISTORY).map_err(unavailable)?;
            let mut endpoint_changes = transaction.open_table(ENDPOINT_CHANGES).map_err(unavailable)?;
            let mut alerts = transaction.open_table(ALERTS).map_err(unavailable)?;
            let mut alert_ids = transaction.open_table(ALERT_IDS).map_err(unavailable)?;
            let mut hosts = transaction.open_table(HOSTS).map_err(unavailable)?;
            let mut host_stats = transaction.open_table(HOST_STATS).map_err(unavailable)?;
            let mut manifests = transaction.open_table(MANIFESTS).map_err(unavailable)?;
            let mut checkpoints = transaction.open_table(CHECKPOINTS).map_err(unavailable)?;
            let mut row_buffer = Vec::with_capacity(512);
            let last_updates = LastUpdates::of(&batch.effects);
            for (index, effect) in batch.effects.iter().enumerate() {
                match effect {
                    Effect::PeerUpdated(record) => {
                        let PeerRecord { org_id, host, interface, public_key, observed_at, .. } = record;
                        if let Some(observed) = last_updates.ending_at(index) {
                            let peer_key = keys::peer(org_id, host, interface, public_key).into_bytes();
                            let previous_at = peers
                                .insert(peer_key.as_slice(), encode_into(record, &mut row_buffer))
                                .map_err(unavailable)?
                                .and_then(|previous| previous_observed_at(previous.value(), record));
                            // the index row bounds the peer's observations on this gateway to the
                            // hour, so it rarely changes; it already covers the batch's observations
                            // when the span of the row this one replaces does (that row's index
                            // update was written with it), else a lookup tells, far cheaper than an
                            // insert
                            let covered = previous_at
                                .is_some_and(|previous_at| SeenSpan::at(previous_at).covering(observed).is_none());
                            if !covered {
                                let by_key = keys::peer_by_key(org_id, public_key, host, interface).into_bytes();
                                let seen = peers_by_key
                                    .get(by_key.as_slice())
                                    .map_err(unavailable)?
                                    .and_then(|seen| SeenSpan::from_value(seen.value()));
                                let grown = match seen {
                                    Some(seen) => seen.covering(observed),
                                    None => Some(observed),
                                };
                                if let Some(grown) = grown {
                                    peers_by_key
                                        .insert(by_key.as_slice(), grown.to_value().as_slice())
                                        .map_err(unavailable)?;
                                }
                            }
                        }
                        let gateway = keys::gateway(host, interface).into_bytes();
                        let history_key = keys::history(org_id, &gateway, public_key, *observed_at).into_bytes();
                        // the key holds the rest of the row
                        let row = encode_into(&PeerReading::from(record), &mut row_buffer);
                        history.insert(history_key.as_slice(), row).map_err(unavailable)?;
                    }
                    Effect::HostUpdated(record) => {
                        let key = keys::host(&record.org_id, &record.host, &record.interface).into_bytes();
                        hosts.insert(key.as_slice(), encode(record).as_slice()).map_err(unavailable)?;
                    }
                    Effect::EndpointChanged(change) => {
                        let EndpointChange { org_id, host, interface, public_key, changed_at, .. } = change;
                        let key = keys::peer_timeline(org_id, public_key, *changed_at, host, interface).into_bytes();
                        endpoint_changes.insert(key.as_slice(), encode(change).as_slice()).map_err(unavailable)?;
                    }
                    Effect::Alert(alert) => {
                        let key = keys::alert(&alert.org_id, alert.raised_at, &alert.alert_id).into_bytes();
                        let existing = match alerts.get(key.as_slice()).map_err(unavailable)? {
                            Some(bytes) => Some(decode::<AlertRow>("alerts", bytes.value())?),
                            None => None,
                        };
                        let row = encode(&AlertRow::merge(existing, alert));
                        alerts.insert(key.as_slice(), row.as_slice()).map_err(unavailable)?;
                        let id_key = keys::alert_id(&alert.org_id, &alert.alert_id).into_bytes();
                        alert_ids.insert(id_key.as_slice(), key.as_slice()).map_err(unavailable)?;
                    }
                    Effect::ManifestSet(manifest) => {
                        let header = &manifest.header;
                        let key = keys::manifest(&header.org_id, &header.host, &header.interface, manifest.scope())
                            .into_bytes();
                        manifests
                            .insert(key.as_slice(), encode(&ManifestRow::from(manifest)).as_slice())
                            .map_err(unavailable)?;
                    }
                    Effect::AlertAcknowledged(acknowledgement) => {
                        let id_key =
                            keys::alert_id(&acknowledgement.header.org_id, &acknowledgement.alert_id).into_bytes();
                        let Some(alert_key) =
                            alert_ids.get(id_key.as_slice()).map_err(unavailable)?.map(|key| key.value().to_vec())
                        else {
                            continue;
                        };
                        let Some(mut row) = (match alerts.get(alert_key.as_slice()).map_err(unavailable)? {
                            Some(bytes) => Some(decode::<AlertRow>("alerts", bytes.value())?),
                            None => None,
                        }) else {
                            continue;
                        };
                        row.acknowledge(acknowledgement);
                        alerts.insert(alert_key.as_slice(), encode(&row).as_slice()).map_err(unavailable)?;
                    }
                }
            }
            for stats in &batch.host_stats {
                let key = keys::host_stats(&stats.org_id, &stats.host, stats.clearance).into_bytes();
                if stats.is_empty() {
                    host_stats.remove(key.as_slice()).map_err(unavailable)?;
                } else {
                    host_stats.insert(key.as_slice(), encode(stats).as_slice()).map_err(unavailable)?;
                }
            }
            if let Some(checkpoint) = &batch.checkpoint {
                // encoded straight into its page: a snapshot of a million peers is hundreds of MB
                let length = postcard::experimental::serialized_size(checkpoint).expect("rows serialise to postcard");
                let mut row =
                    checkpoints.insert_reserve(checkpoint.partition.as_bytes(), length).map_err(unavailable)?;
                postcard::to_slice(checkpoint, row.as_mut()).expect("the row has the length postcard computed");
            }
        }
        transaction.commit().map_err(unavailable)?;
        self.commits.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Runs `work` on a blocking thread: a write, or a read that may walk many rows (history,
    /// a filtered scan, every alert or manifest), never holds up the async runtime and with it
    /// every other request and `/healthz`.
    async fn off_runtime<T: Send + 'static>(
        &self,
        work: impl FnOnce(&EmbeddedStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store)).await.map_err(unavailable)?
    }

    /// Runs `work` where it is called: a read bounded by its page, one key or the gateways costs
    /// less than the hand-over to a blocking thread.
    async fn in_place<T>(&self, work: impl FnOnce(&EmbeddedStore) -> Result<T, StoreError>) -> Result<T, StoreError> {
        work(self)
    }

    fn read_table<T>(
        &self,
        table: Table,
        read: impl FnOnce(&redb::ReadOnlyTable<&'static [u8], &'static [u8]>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let transaction = self.database.begin_read().map_err(unavailable)?;
        let opened = transaction.open_table(table).map_err(unavailable)?;
        read(&opened)
    }
}

/// A peer of one gateway interface: the fields a `peers` row begins with, in their order.
fn identity(record: &PeerRecord) -> (&OrgId, &HostId, &InterfaceName, &PublicKey) {
    (&record.org_id, &record.host, &record.interface, &record.public_key)
}

/// For each effect of a batch, the span of its peer's observations in the batch when it is that
/// peer's last `PeerUpdated` there. A batch read from a backlog holds several observations of many
/// a peer: each gets its history row, but only the last is written to `peers` (the row every
/// earlier one would be overwritten by in the same transaction), and the index row is grown once
/// to cover them all.
struct LastUpdates(Vec<Option<SeenSpan>>);

impl LastUpdates {
    fn of(effects: &[Effect]) -> Self {
        let mut last = FxHashMap::default();
        for (index, effect) in effects.iter().enumerate() {
            if let Effect::PeerUpdated(record) = effect {
                let seen = SeenSpan::at(record.observed_at);
                last.entry(identity(record))
                    .and_modify(|(last_index, span): &mut (usize, SeenSpan)| {
                        *last_index = index;
                        *span = span.covering(seen).unwrap_or(*span);
                    })
                    .or_insert((index, seen));
            }
        }
        let mut spans = vec![None; effects.len()];
        for (index, span) in last.into_values() {
            spans[index] = Some(span);
        }
        Self(spans)
    }

    /// When the effect at `index` is its peer's last in the batch: the span of that peer's
    /// observations in the batch.
    fn ending_at(&self, index: usize) -> Option<SeenSpan> {
        self.0[index]
    }
}

/// The observation time of a `peers` row of `record`'s own peer, read without decoding the row: a
/// row begins with the peer's organisation, host, interface and public key, the same bytes as
/// `record`'s, and its observation time follows them.
fn previous_observed_at(row: &[u8], record: &PeerRecord) -> Option<UnixMillis> {
    let identity_len = postcard::experimental::serialized_size(&identity(record)).ok()?;
    postcard::from_bytes(row.get(identity_len..)?).ok()
}

/// Visits the rows (key, value) of a scan over a redb table in its direction, while `visit` says
/// to go on.
fn visit_rows(
    scan: &Scan,
    table: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let range = table.range::<&[u8]>(scan.bounds()).map_err(unavailable)?;
    let rows: Box<dyn Iterator<Item = _>> = if scan.newest_first { Box::new(range.rev()) } else { Box::new(range) };
    for row in rows {
        let (key, value) = row.map_err(unavailable)?;
        if !visit(key.value(), value.value())? {
            break;
        }
    }
    Ok(())
}

/// Runs a scan over a redb table, offering rows to `keep` until the page is full.
fn scan_page<T>(
    scan: &Scan,
    table: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    listing: Listing,
    first: usize,
    mut keep: impl FnMut(&[u8]) -> Result<Option<T>, StoreError>,
) -> Result<Page<T>, StoreError> {
    let mut page = PageBuilder::new(listing, first);
    if !page.is_full() {
        visit_rows(scan, table, |key, value| Ok(page.offer(key, keep(value)?)))?;
    }
    Ok(page.finish())
}

/// Every row of a scan that `keep` keeps: a listing without pages, hence without cursors.
fn scan_all<T>(
    scan: &Scan,
    table: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    mut keep: impl FnMut(&[u8]) -> Result<Option<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut kept = Vec::new();
    visit_rows(scan, table, |_, value| {
        kept.extend(keep(value)?);
        Ok(true)
    })?;
    Ok(kept)
}

/// One peer's history rows on one gateway, found scan by scan.
struct GatewayHistory<'a> {
    table: &'a redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    org: &'a OrgId,
    /// `host\0interface\0`, and the same two as names
    gateway: &'a [u8],
    host: HostId,
    interface: InterfaceName,
    key: &'a PublicKey,
    /// When the peer was seen on the gateway: no row of it lies outside.
    seen: SeenSpan,
}

impl GatewayHistory<'_> {
    /// Appends up to `wanted` visible rows inside `scan` (a timeline scan of this key), oldest
    /// first, each with its timeline key. The gateway's rows are ordered by time, then peer key, so
    /// the walk goes from scan time to scan time, within both the range and the span the peer was
    /// seen in there: one seek finds the gateway's next scan time, one lookup the peer's row in
    /// that scan. A page of 100 rows costs about 200 B-tree descents; a peer removed from a gateway
    /// that keeps reporting costs at most an hour of its scans (two descents each) past its last row.
    fn read(
        &self,
        scan: &Scan,
        max_clearance: Clearance,
        wanted: usize,
        rows: &mut Vec<(Vec<u8>, HistoryRow)>,
    ) -> Result<(), StoreError> {
        let bound_time = |bound: &Bound<Vec<u8>>| match bound {
            Bound::Included(key) | Bound::Excluded(key) => keys::timeline_time(key),
            Bound::Unbounded => None,
        };
        let Some(last) = bound_time(&scan.upper).unwrap_or(i64::MAX).checked_sub(1) else { return Ok(()) };
        let last = last.min(self.seen.until);
        let gateway = keys::gateway_history(self.org, self.gateway);
        let gateway_prefix = gateway.clone().into_bytes();
        let gateway_end = Scan::prefix(gateway_prefix.clone()).upper;
        let timeline_prefix = keys::org(self.org).bytes(self.key.as_bytes());
        let mut next = Some(bound_time(&scan.lower).unwrap_or(i64::MIN).max(self.seen.first));
        let mut found = 0;
        while let Some(from) = next.filter(|from| *from <= last) {
            let lower = gateway.clone().time(from).into_bytes();
            let bounds = (Bound::Included(lower.as_slice()), gateway_end.as_ref().map(Vec::as_slice));
            let Some(scan_row) = self.table.range::<&[u8]>(bounds).map_err(unavailable)?.next() else {
                return Ok(());
            };
            let Some(at) = keys::history_time(scan_row.map_err(unavailable)?.0.value(), gateway_prefix.len()) else {
                return Ok(());
            };
            next = at.checked_add(1);
            if at > last {
                return Ok(());
            }
            let timeline_key = timeline_prefix.clone().time(at).bytes(self.gateway).into_bytes();
            if !scan.contains(&timeline_key) {
                continue;
            }
            let history_key = keys::history(self.org, self.gateway, self.key, at).into_bytes();
            let Some(value) = self.table.get(history_key.as_slice()).map_err(unavailable)? else { continue };
            let reading: PeerReading = decode("peer_history", value.value())?;
            if reading.clearance <= max_clearance {
                let row = HistoryRow {
                    org_id: self.org.clone(),
                    host: self.host.clone(),
                    interface: self.interface.clone(),
                    public_key: *self.key,
                    observed_at: at,
                    reading,
                };
                rows.push((timeline_key, row));
                found += 1;
                if found >= wanted {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ProjectionStore for EmbeddedStore {
    fn version(&self) -> Option<u64> {
        Some(self.commits.load(Ordering::Acquire))
    }

    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        self.off_runtime(move |store| store.write_blocking(&batch)).await
    }

    async fn peers(
        &self,
        org: &OrgId,
        filter: &PeerFilter,
        max_clearance: Clearance,
        page: &PageRequest,
    ) -> Result<Page<PeerRecord>, StoreError> {
        let scan = peers_scan(org, filter, page.after.as_ref())?;
        let page_filter_tests_rows = filter.tests_rows();
        let (filter, first) = (filter.clone(), page.first);
        let read = move |store: &EmbeddedStore| {
            store.read_table(PEERS, |table| {
                scan_page(&scan, table, Listing::Peers, first, |bytes| visible::peer(bytes, &filter, max_clearance))
            })
        };
        if page_filter_tests_rows { self.off_runtime(read).await } else { self.in_place(read).await }
    }

    async fn peer(
        &self,
        org: &OrgId,
        key: &PublicKey,
        max_clearance: Clearance,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        self.in_place(|store| {
            let transaction = store.database.begin_read().map_err(unavailable)?;
            let by_key = transaction.open_table(PEERS_BY_KEY).map_err(unavailable)?;
            let peers = transaction.open_table(PEERS).map_err(unavailable)?;
            let prefix = keys::org(org).bytes(key.as_bytes()).into_bytes();
            let mut records = Vec::new();
            for row in by_key.range(prefix.as_slice()..).map_err(unavailable)? {
                let (index_key, _) = row.map_err(unavailable)?;
                let Some(peer_key) = keys::peer_from_index(org, key, index_key.value()) else { break };
                if let Some(bytes) = peers.get(peer_key.as_slice()).map_err(unavailable)? {
                    records.extend(visible::peer(bytes.value(), &PeerFilter::default(), max_clearance)?);
                }
            }
            Ok(records)
        })
        .await
    }

    async fn history(
        &self,
        org: &OrgId,
        key: &PublicKey,
        range: TimeRange,
        max_clearance: Clearance,
        page: &PageRequest,
    ) -> Result<Page<HistoryRow>, StoreError> {
        // listed in timeline order (time, then gateway) with timeline cursors; stored by gateway
        // and time, so each gateway that lists the key is walked scan by scan and the rows merged
        let scan = timeline_scan(org, key, range, page.after.as_ref())?;
        let (org, key, first) = (org.clone(), *key, page.first);
        self.off_runtime(move |store| {
            let (org, key) = (&org, &key);
            let transaction = store.database.begin_read().map_err(unavailable)?;
            let by_key = transaction.open_table(PEERS_BY_KEY).map_err(unavailable)?;
            let history = transaction.open_table(PEER_HISTORY).map_err(unavailable)?;
            let key_prefix = keys::org(org).bytes(key.as_bytes()).into_bytes();
            let mut rows = Vec::new();
            for entry in by_key.range(key_prefix.as_slice()..).map_err(unavailable)? {
                let (index_key, seen) = entry.map_err(unavailable)?;
                let Some(gateway) = index_key.value().strip_prefix(key_prefix.as_slice()) else { break };
                // every row of this format holds one; without it the walk would have no ends
                let seen = SeenSpan::from_value(seen.value()).ok_or_else(|| StoreError::Corrupt {
                    table: "peers_by_key",
                    reason: "no span of observations in the index row".into(),
                })?;
                let (host, interface) = keys::gateway_names(gateway).ok_or_else(|| StoreError::Corrupt {
                    table: "peers_by_key",
                    reason: "the index key does not end in a host and an interface".into(),
                })?;
                let gateway = GatewayHistory { table: &history, org, gateway, host, interface, key, seen };
                gateway.read(&scan, max_clearance, first.saturating_add(1), &mut rows)?;
            }
            rows.sort_by(|(left, _), (right, _)| left.cmp(right));
            let mut listing = PageBuilder::new(Listing::History, first);
            for (timeline_key, row) in rows {
                if !listing.offer(&timeline_key, Some(row)) {
                    break;
                }
            }
            Ok(listing.finish())
        })
        .await
    }

    async fn endpoint_changes(
        &self,
        org: &OrgId,
        key: &PublicKey,
        range: TimeRange,
        max_clearance: Clearance,
    ) -> Result<Vec<EndpointChange>, StoreError> {
        let scan = timeline_scan(org, key, range, None)?;
        self.off_runtime(move |store| {
            store.read_table(ENDPOINT_CHANGES, |table| {
                scan_all(&scan, table, |bytes| visible::endpoint_change(bytes, max_clearance))
            })
        })
        .await
    }

    async fn alerts(
        &self,
        org: &OrgId,
        filter: &AlertFilter,
        max_clearance: Clearance,
        page: &PageRequest,
    ) -> Result<Page<AlertRow>, StoreError> {
        let scan = alerts_scan(org, filter.range, page.after.as_ref())?;
        let (filter, first) = (filter.clone(), page.first);
        self.off_runtime(move |store| {
            store.read_table(ALERTS, |table| {
                scan_page(&scan, table, Listing::Alerts, first, |bytes| {
                    Ok(visible::alert(decode("alerts", bytes)?, &filter, max_clearance))
                })
            })
        })
        .await
    }

    async fn alert(
        &self,
        org: &OrgId,
        alert_id: &AlertId,
        max_clearance: Clearance,
    ) -> Result<Option<AlertRow>, StoreError> {
        let id_key = keys::alert_id(org, alert_id).into_bytes();
        self.in_place(move |store| {
            let transaction = store.database.begin_read().map_err(unavailable)?;
            let alert_ids = transaction.open_table(ALERT_IDS).map_err(unavailable)?;
            let alerts = transaction.open_table(ALERTS).map_err(unavailable)?;
            let Some(alert_key) = alert_ids.get(id_key.as_slice()).map_err(unavailable)? else { return Ok(None) };
            let Some(bytes) = alerts.get(alert_key.value()).map_err(unavailable)? else { return Ok(None) };
            Ok(visible::alert(decode("alerts", bytes.value())?, &AlertFilter::default(), max_clearance))
        })
        .await
    }

    async fn manifests(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<ManifestRow>, StoreError> {
        let scan = Scan::prefix(keys::org(org).into_bytes());
        self.off_runtime(move |store| {
            store.read_table(MANIFESTS, |table| {
                scan_all(&scan, table, |bytes| {
                    decode::<ManifestRow>("manifests", bytes).map(|row| (row.clearance <= max_clearance).then_some(row))
                })
            })
        })
        .await
    }

    async fn hosts(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<HostRecord>, StoreError> {
        let scan = Scan::prefix(keys::org(org).into_bytes());
        self.in_place(move |store| {
            store.read_table(HOSTS, |table| scan_all(&scan, table, |bytes| visible::host(bytes, max_clearance)))
        })
        .await
    }

    async fn stats(&self, org: &OrgId, max_clearance: Clearance) -> Result<Stats, StoreError> {
        let scan = Scan::prefix(keys::org(org).into_bytes());
        let rows = self
            .in_place(move |store| {
                store.read_table(HOST_STATS, |table| {
                    scan_all(&scan, table, |bytes| decode::<HostStats>("host_stats", bytes).map(Some))
                })
            })
            .await?;
        Ok(Stats::from_rows(&rows, max_clearance))
    }

    async fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.in_place(|store| {
            store.read_table(CHECKPOINTS, |table| match table.get(partition.as_bytes()).map_err(unavailable)? {
                Some(bytes) => decode("checkpoints", bytes.value()).map(Some),
                None => Ok(None),
            })
        })
        .await
    }

    async fn export(&self) -> Result<String, StoreError> {
        self.off_runtime(|store| {
            let transaction = store.database.begin_read().map_err(unavailable)?;
            let mut out = String::new();
            for table in ALL_TABLES {
                let opened = transaction.open_table(table).map_err(unavailable)?;
                for row in opened.iter().map_err(unavailable)? {
                    let (key, value) = row.map_err(unavailable)?;
                    out.push_str(&crate::export_line(table.name(), key.value(), value.value()));
                }
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use argus_core::FoldState;
    use argus_core::synthetic::{Fleet, FleetSpec};

    use super::*;

    /// The effects of one scan of a fleet of one gateway.
    fn scan_effects(peers: u32) -> Vec<Effect> {
        let mut fleet = Fleet::new(FleetSpec {
            org: "acme".parse().expect("org"),
            hosts: 1,
            peers_per_host: peers,
            scan_interval_ms: 10_000,
            start: 1_780_000_000_000,
        });
        let (mut events, mut effects, mut state) = (Vec::new(), Vec::new(), FoldState::default());
        fleet.next_scan(&mut events);
        for event in &events {
            state.apply(event, event.header().observed_at, &mut effects).expect("the fold accepts it");
        }
        effects
    }

    /// Writes one scan of a small fleet.
    fn write_peers(path: &Path) {
        let store = EmbeddedStore::open(path).expect("open");
        store.write_blocking(&Batch { effects: scan_effects(3), ..Batch::default() }).expect("write");
    }

    fn set_row_format(path: &Path, format: Option<u8>) {
        let database = Database::open(path).expect("redb");
        let transaction = database.begin_write().expect("transaction");
        {
            let mut meta = transaction.open_table(META).expect("meta");
            match format {
                Some(format) => meta.insert(ROW_FORMAT_KEY, [format].as_slice()).map(drop),
                None => meta.remove(ROW_FORMAT_KEY).map(drop),
            }
            .expect("row format");
        }
        transaction.commit().expect("commit");
    }

    /// `record`'s peer observed at `times`, each observation written in a batch of its own.
    fn observe_at(store: &EmbeddedStore, record: &PeerRecord, times: &[UnixMillis]) {
        for at in times {
            let effects = vec![Effect::PeerUpdated(PeerRecord { observed_at: *at, ..record.clone() })];
            store.write_blocking(&Batch { effects, ..Batch::default() }).expect("write");
        }
    }

    /// The first peer of a scan of the synthetic fleet.
    fn a_peer() -> PeerRecord {
        scan_effects(1)
            .into_iter()
            .find_map(|effect| match effect {
                Effect::PeerUpdated(record) => Some(record),
                _ => None,
            })
            .expect("a peer")
    }

    fn seen_span(store: &EmbeddedStore, record: &PeerRecord) -> Option<SeenSpan> {
        let transaction = store.database.begin_read().expect("read");
        let by_key = transaction.open_table(PEERS_BY_KEY).expect("table");
        let key = keys::peer_by_key(&record.org_id, &record.public_key, &record.host, &record.interface).into_bytes();
        by_key.get(key.as_slice()).expect("get").and_then(|seen| SeenSpan::from_value(seen.value()))
    }

    #[test]
    fn the_index_spans_every_observation_whether_or_not_it_is_looked_up() {
        let directory = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&directory.path().join("store")).expect("open");
        let hour = keys::SEEN_UNTIL_STEP_MS;
        let start = 1_780_000_000_000 / hour * hour;
        // the same hour as the row each replaces and later (no lookup), the next hour, an earlier
        // hour (out of order), then the same hour as the row it replaces but earlier than it
        let times = [start + 60_000, start + 600_000, start + hour + 5_000, start - 2 * hour + 1_000, start - 2 * hour];
        let record = a_peer();
        observe_at(&store, &record, &times[..2]);
        assert_eq!(seen_span(&store, &record), Some(SeenSpan { first: times[0], until: start + hour }));
        observe_at(&store, &record, &times[2..3]);
        assert_eq!(seen_span(&store, &record), Some(SeenSpan { first: times[0], until: start + 2 * hour }));
        observe_at(&store, &record, &times[3..4]);
        assert_eq!(seen_span(&store, &record), Some(SeenSpan { first: times[3], until: start + 2 * hour }));
        observe_at(&store, &record, &times[4..]);
        assert_eq!(seen_span(&store, &record), Some(SeenSpan { first: times[4], until: start + 2 * hour }));
        let row = encode(&PeerRecord { observed_at: times[4], ..record.clone() });
        assert_eq!(previous_observed_at(&row, &record), Some(times[4]));
    }

    #[test]
    fn a_peer_observed_several_times_in_one_batch_ends_as_if_each_had_a_batch_of_its_own() {
        let hour = keys::SEEN_UNTIL_STEP_MS;
        let start = 1_780_000_000_000 / hour * hour;
        let record = a_peer();
        let other = PeerRecord { public_key: PublicKey::from_bytes([7; 32]), ..record.clone() };
        // the same hour, the next hour, an earlier hour (out of order), with another peer between
        let times = [start + 60_000, start + hour + 5_000, start - 2 * hour + 1_000];
        let mut effects: Vec<Effect> =
            times.iter().map(|at| Effect::PeerUpdated(PeerRecord { observed_at: *at, ..record.clone() })).collect();
        effects.insert(1, Effect::PeerUpdated(PeerRecord { observed_at: start, ..other.clone() }));
        let stored = |write: &dyn Fn(&EmbeddedStore)| {
            let directory = tempfile::tempdir().expect("tempdir");
            let store = EmbeddedStore::open(&directory.path().join("store")).expect("open");
            observe_at(&store, &record, &[start + 30 * 60_000]);
            write(&store);
            let transaction = store.database.begin_read().expect("read");
            let peers = transaction.open_table(PEERS).expect("table");
            let key = keys::peer(&record.org_id, &record.host, &record.interface, &record.public_key).into_bytes();
            let row = peers.get(key.as_slice()).expect("get").expect("the peer's row").value().to_vec();
            let history = transaction.open_table(PEER_HISTORY).expect("table").len().expect("len");
            (previous_observed_at(&row, &record), seen_span(&store, &record), seen_span(&store, &other), history)
        };
        let one_batch = stored(&|store| {
            store.write_blocking(&Batch { effects: effects.clone(), ..Batch::default() }).expect("write");
        });
        let a_batch_each = stored(&|store| {
            for effect in &effects {
                store.write_blocking(&Batch { effects: vec![effect.clone()], ..Batch::default() }).expect("write");
            }
        });
        assert_eq!(one_batch, a_batch_each);
        assert_eq!(one_batch.0, Some(times[2]), "the batch's last observation is the peer's row");
        assert_eq!(one_batch.1, Some(SeenSpan { first: times[2], until: start + 2 * hour }));
        assert_eq!(one_batch.2, Some(SeenSpan::at(start)));
        assert_eq!(one_batch.3, 5, "every observation has its history row");
    }

    #[test]
    fn a_file_in_another_row_format_is_refused_with_the_way_out() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("store");
        write_peers(&path);
        drop(EmbeddedStore::open(&path).expect("the format this version wrote opens again"));

        // rows written before the marker existed
        set_row_format(&path, None);
        let error = EmbeddedStore::open(&path).expect_err("format 1 refused");
        assert!(matches!(error, StoreError::Format { found: 1, expected: ROW_FORMAT }), "{error:?}");
        assert!(error.to_string().contains("argus replay"), "{error}");

        set_row_format(&path, Some(ROW_FORMAT + 1));
        let error = EmbeddedStore::open(&path).expect_err("a newer format refused");
        assert!(matches!(error, StoreError::Format { found, .. } if found == ROW_FORMAT + 1), "{error:?}");
    }

    #[test]
    fn a_file_without_rows_takes_this_versions_format() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("store");
        drop(EmbeddedStore::open(&path).expect("create"));
        set_row_format(&path, None);
        drop(EmbeddedStore::open(&path).expect("an empty file takes the current format"));
        write_peers(&path);
        drop(EmbeddedStore::open(&path).expect("and keeps it"));
    }
}
