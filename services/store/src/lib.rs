//! Argus WireGuard projections: one store contract, an embedded store (redb) and a ScyllaDB adapter.
//!
//! The processor writes [`Batch`]es (fold effects, host statistics and the
//! checkpoint that covers them); the API reads. Every read is scoped by organisation and a
//! maximum clearance; no argument, filter or cursor reaches another organisation's rows.

mod audit;
mod embedded;
mod keys;
mod model;
mod scan;
pub mod scylla;

use argus_core::{AlertId, Clearance, EndpointChange, HostId, HostRecord, OrgId, PeerRecord, PublicKey};
use async_trait::async_trait;

pub use self::audit::{ACTIVE_PEERS_EXAMINED, KeyRotation, PeerActivity, RotationState, add_activity, judge_rotation};
pub use self::embedded::{EmbeddedStore, SYNC_INTERVAL};
pub use self::model::{
    AlertFilter, AlertRow, Batch, Checkpoint, Cursor, HistoryRow, HostStatsSummary, Listing, ManifestRow, Page,
    PageRequest, PeerFilter, PeerReading, SilenceRow, Stats, StoreError, TimeRange,
};

/// What the processor writes and the API reads. Implementations pass `tests/contract.rs`.
#[async_trait]
pub trait ProjectionStore: Send + Sync + 'static {
    /// Applies a batch: atomically (embedded), idempotently (everywhere).
    async fn write(&self, batch: Batch) -> Result<(), StoreError>;

    /// A number that changes whenever a write is committed, where the store can tell (a reader
    /// may keep an answer while it is unchanged); `None` where it cannot (another process writes).
    fn version(&self) -> Option<u64> {
        None
    }

    /// Peers of an organisation ordered by (host, interface, key), filtered, one page.
    async fn peers(
        &self, org: &OrgId, filter: &PeerFilter, max_clearance: Clearance, page: &PageRequest,
    ) -> Result<Page<PeerRecord>, StoreError>;

    /// One key on every gateway that lists it.
    async fn peer(&self, org: &OrgId, key: &PublicKey, max_clearance: Clearance)
    -> Result<Vec<PeerRecord>, StoreError>;

    /// A peer's history (all gateways) over a time range, oldest first, one page.
    async fn history(
        &self, org: &OrgId, key: &PublicKey, range: TimeRange, max_clearance: Clearance, page: &PageRequest,
    ) -> Result<Page<HistoryRow>, StoreError>;

    /// A peer's endpoint moves over a time range, oldest first (the roaming audit).
    async fn endpoint_changes(
        &self, org: &OrgId, key: &PublicKey, range: TimeRange, max_clearance: Clearance,
    ) -> Result<Vec<EndpointChange>, StoreError>;

    /// Alerts raised in a time range, newest first, one page.
    async fn alerts(
        &self, org: &OrgId, filter: &AlertFilter, max_clearance: Clearance, page: &PageRequest,
    ) -> Result<Page<AlertRow>, StoreError>;

    /// One alert of an organisation by id, if the caller may see it.
    async fn alert(
        &self, org: &OrgId, alert_id: &AlertId, max_clearance: Clearance,
    ) -> Result<Option<AlertRow>, StoreError>;

    /// The rotation manifests of an organisation set at or below `max_clearance`, ordered by (host,
    /// interface, clearance).
    async fn manifests(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<ManifestRow>, StoreError>;

    /// The silences of an organisation set by authors at or below `max_clearance` (ended ones
    /// too), ordered by (host, id).
    async fn silences(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<SilenceRow>, StoreError>;

    /// Where each key of the manifests at or below `max_clearance` stands on its interface, judged
    /// by the peers at or below both the manifest's clearance and `max_clearance`.
    async fn rotation_status(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<KeyRotation>, StoreError> {
        audit::rotation_status(self, org, max_clearance, AUDIT_PAGE).await
    }

    /// Peers (of one gateway, or all) that handshook or moved traffic in `range`, ordered by
    /// (host, interface, key). A page examines at most [`ACTIVE_PEERS_EXAMINED`] times its size,
    /// so it may hold fewer than asked while `next` is set.
    async fn active_peers(
        &self, org: &OrgId, range: TimeRange, host: Option<&HostId>, max_clearance: Clearance, page: &PageRequest,
    ) -> Result<Page<PeerActivity>, StoreError> {
        audit::active_peers(self, org, range, host, max_clearance, page, AUDIT_PAGE).await
    }

    /// Gateway interfaces and their liveness, ordered by (host, interface).
    async fn hosts(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<HostRecord>, StoreError>;

    /// Counts by status, traffic totals and rates, per host; from per-host rows, not peer scans.
    async fn stats(&self, org: &OrgId, max_clearance: Clearance) -> Result<Stats, StoreError>;

    /// The checkpoint of one log partition.
    async fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError>;

    /// Every row of every table in key order, one line each (`table key value`, hex): two stores
    /// of one engine holding the same projections export the same text. Engines lay their rows
    /// out differently; across engines, the reads above agree.
    async fn export(&self) -> Result<String, StoreError>;
}

/// Rows an audit read asks for at once.
const AUDIT_PAGE: usize = 1_000;

/// One line of [`ProjectionStore::export`].
fn export_line(table: &str, key: &[u8], value: &[u8]) -> String {
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
    format!("{table} {} {}\n", hex(key), hex(value))
}
