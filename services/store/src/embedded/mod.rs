//! The embedded store: one redb file, one atomic transaction per batch, crash-safe by design.
//! This module owns the file, its tables and their format; `write` applies batches, `read`
//! answers the store's reads, `history` walks a peer's history, `rows` lays out a `peers` row.

mod history;
mod read;
mod rows;
mod write;

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use crate::model::StoreError;
use crate::scan::unavailable;

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
const SILENCES: Table = TableDefinition::new("silences");
const CHECKPOINTS: Table = TableDefinition::new("checkpoints");
/// What the file itself holds: its row format.
const META: Table = TableDefinition::new("meta");

const ALL_TABLES: [Table; 12] = [
    PEERS,
    PEERS_BY_KEY,
    PEER_HISTORY,
    ENDPOINT_CHANGES,
    ALERTS,
    ALERT_IDS,
    HOSTS,
    HOST_STATS,
    MANIFESTS,
    SILENCES,
    CHECKPOINTS,
    META,
];

/// How rows are laid out, bumped whenever that changes, so a file written by another version is
/// refused when opened rather than misread. 1: before the marker (history by peer key and time);
/// 2: history by gateway and minute, `peers_by_key` holding the first observation; 3: history by
/// gateway and time without the key's parts in its values, `peers_by_key` holding a [`SeenSpan`],
/// endpoints and prefixes packed as bytes; 4: manifests by clearance; 5: a `peers` row begins with
/// its observation time ([`rows`]).
const ROW_FORMAT: u8 = 5;
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

    /// Runs `work` on a blocking thread: a write, or a read that may walk many rows (history,
    /// a filtered scan, every alert or manifest), never holds up the async runtime and with it
    /// every other request and `/healthz`.
    async fn off_runtime<T: Send + 'static>(
        &self, work: impl FnOnce(&EmbeddedStore) -> Result<T, StoreError> + Send + 'static,
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
        &self, table: Table,
        read: impl FnOnce(&redb::ReadOnlyTable<&'static [u8], &'static [u8]>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let transaction = self.database.begin_read().map_err(unavailable)?;
        let opened = transaction.open_table(table).map_err(unavailable)?;
        read(&opened)
    }
}

#[cfg(test)]
mod tests {
    use argus_core::fold::Effect;
    use argus_core::synthetic::{Fleet, FleetSpec};
    use argus_core::{FoldState, PeerRecord, PublicKey, UnixMillis};

    use super::*;
    use crate::keys::{self, SeenSpan};
    use crate::model::Batch;

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
    fn a_peers_row_holds_its_records_time_and_the_record() {
        let peer = a_peer();
        for at in [peer.observed_at, -1, 0, i64::MAX] {
            let peer = PeerRecord { observed_at: at, ..peer.clone() };
            let mut buffer = Vec::new();
            let row = rows::encode(&peer, &mut buffer).to_vec();
            assert_eq!(rows::observed_at(&row), Some(at));
            let decoded: PeerRecord = postcard::from_bytes(rows::record(&row).expect("long enough")).expect("decodes");
            assert_eq!(decoded, peer);
        }
        assert!(rows::observed_at(&[1, 2, 3]).is_none());
        assert!(matches!(rows::record(&[1, 2, 3]), Err(StoreError::Corrupt { .. })));
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
        let mut buffer = Vec::new();
        let row = rows::encode(&PeerRecord { observed_at: times[4], ..record.clone() }, &mut buffer);
        assert_eq!(rows::observed_at(row), Some(times[4]));
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
            (rows::observed_at(&row), seen_span(&store, &record), seen_span(&store, &other), history)
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
