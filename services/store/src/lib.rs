//! Argus WireGuard projections: one store contract, an embedded store (redb) and a ScyllaDB adapter.
//!
//! The processor writes [`Batch`]es (fold effects, host statistics and the
//! checkpoint that covers them); the API reads. Every read is scoped by organisation and a
//! maximum clearance; no argument, filter or cursor reaches another organisation's rows.

mod embedded;
mod keys;
mod model;
mod scan;
pub mod scylla;

use argus_core::{AlertId, Clearance, EndpointChange, HostRecord, OrgId, PeerRecord, PublicKey};
use async_trait::async_trait;

pub use self::embedded::{EmbeddedStore, SYNC_INTERVAL};
pub use self::model::{
    AlertFilter, AlertRow, Batch, Checkpoint, Cursor, HistoryRow, HostStatsSummary, Listing, ManifestRow, Page,
    PageRequest, PeerFilter, PeerReading, Stats, StoreError, TimeRange,
};

/// What the processor writes and the API reads. Implementations pass `tests/contract.rs`.
#[async_trait]
pub trait ProjectionStore: Send + Sync + 'static {
    /// Applies a batch: atomically (embedded), idempotently (everywhere).
    async fn write(&self, batch: Batch) -> Result<(), StoreError>;

    /// Peers of an organisation ordered by (host, interface, key), filtered, one page.
    async fn peers(
        &self,
        org: &OrgId,
        filter: &PeerFilter,
        max_clearance: Clearance,
        page: &PageRequest,
    ) -> Result<Page<PeerRecord>, StoreError>;

    /// One key on every gateway that lists it.
    async fn peer(&self, org: &OrgId, key: &PublicKey, max_clearance: Clearance)
    -> Result<Vec<PeerRecord>, StoreError>;

    /// A peer's history (all gateways) over a time range, oldest first, one page.
    async fn history(
        &self,
        org: &OrgId,
        key: &PublicKey,
        range: TimeRange,
        max_clearance: Clearance,
        page: &PageRequest,
    ) -> Result<Page<HistoryRow>, StoreError>;

    /// A peer's endpoint moves over a time range, oldest first (the roaming audit).
    async fn endpoint_changes(
        &self,
        org: &OrgId,
        key: &PublicKey,
        range: TimeRange,
        max_clearance: Clearance,
    ) -> Result<Vec<EndpointChange>, StoreError>;

    /// Alerts raised in a time range, newest first, one page.
    async fn alerts(
        &self,
        org: &OrgId,
        filter: &AlertFilter,
        max_clearance: Clearance,
        page: &PageRequest,
    ) -> Result<Page<AlertRow>, StoreError>;

    /// One alert of an organisation by id, if the caller may see it.
    async fn alert(
        &self,
        org: &OrgId,
        alert_id: &AlertId,
        max_clearance: Clearance,
    ) -> Result<Option<AlertRow>, StoreError>;

    /// The rotation manifests of an organisation set at or below `max_clearance`, ordered by (host,
    /// interface, clearance).
    async fn manifests(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<ManifestRow>, StoreError>;

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

/// One line of [`ProjectionStore::export`].
fn export_line(table: &str, key: &[u8], value: &[u8]) -> String {
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
    format!("{table} {} {}\n", hex(key), hex(value))
}
