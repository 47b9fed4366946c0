//! The projection store as the API reads it: the answers dashboards ask for again and again
//! (pages of peers, statistics, gateways) kept while the store's version is unchanged, every
//! other read passed through. Only a store that tells its version is cached; keys hold the whole
//! scope of a read (organisation and clearance), so an answer is never served to another scope.

use std::sync::Arc;

use argus_core::{AlertId, Clearance, EndpointChange, HostRecord, OrgId, PeerRecord, PublicKey};
use argus_store::{
    AlertFilter, AlertRow, Batch, Checkpoint, HistoryRow, ManifestRow, Page, PageRequest, PeerFilter, ProjectionStore,
    SilenceRow, Stats, StoreError, TimeRange,
};
use async_trait::async_trait;

use crate::cache::Memo;

/// Answers of one read, by its whole scope and arguments, each with the store version it was read at.
type Kept<K, T> = Memo<K, (u64, Arc<T>)>;

/// `inner`, with the answers of its repeated reads kept (see the module).
pub struct CachedStore {
    inner: Arc<dyn ProjectionStore>,
    peers: Kept<(OrgId, PeerFilter, Clearance, PageRequest), Page<PeerRecord>>,
    stats: Kept<(OrgId, Clearance), Stats>,
    hosts: Kept<(OrgId, Clearance), Vec<HostRecord>>,
}

impl CachedStore {
    /// Answers expected of each read: a page per dashboard view and its neighbours.
    const ANSWERS: usize = 1_024;
    /// Rows each read keeps at most, over its answers (a few hundred bytes each): callers asking
    /// for many different pages push out older answers, never past this bound.
    const MOST_ROWS_KEPT: u64 = 50_000;

    pub fn new(inner: Arc<dyn ProjectionStore>) -> Self {
        let (answers, rows) = (Self::ANSWERS, Self::MOST_ROWS_KEPT);
        Self {
            inner,
            peers: Memo::weighed(answers, rows, |(_, page)| page.items.len() as u64),
            stats: Memo::weighed(answers, rows, |(_, stats)| stats.hosts.len() as u64 + 1),
            hosts: Memo::weighed(answers, rows, |(_, hosts)| hosts.len() as u64),
        }
    }

    /// The answer to the read `key` of `kept`: kept, when it was read at the store's current
    /// version; else read now by `fresh` (and kept).
    async fn answer<K, T>(
        &self, kept: &Kept<K, T>, key: K, fresh: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError>
    where
        K: Eq + std::hash::Hash + Clone,
        T: Clone,
    {
        let Some(version) = self.inner.version() else { return fresh.await };
        if let Some((kept_at, answer)) = kept.get(&key)
            && kept_at == version
        {
            return Ok(T::clone(&answer));
        }
        let answer = fresh.await?;
        // read at `version` or later: kept as of `version`, so a later write is never hidden
        kept.insert(key, (version, Arc::new(answer.clone())));
        Ok(answer)
    }
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore").finish_non_exhaustive()
    }
}

#[async_trait]
impl ProjectionStore for CachedStore {
    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        self.inner.write(batch).await
    }

    fn version(&self) -> Option<u64> {
        self.inner.version()
    }

    async fn peers(
        &self, org: &OrgId, filter: &PeerFilter, max_clearance: Clearance, page: &PageRequest,
    ) -> Result<Page<PeerRecord>, StoreError> {
        let key = (org.clone(), filter.clone(), max_clearance, page.clone());
        self.answer(&self.peers, key, self.inner.peers(org, filter, max_clearance, page)).await
    }

    async fn stats(&self, org: &OrgId, max_clearance: Clearance) -> Result<Stats, StoreError> {
        self.answer(&self.stats, (org.clone(), max_clearance), self.inner.stats(org, max_clearance)).await
    }

    async fn hosts(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<HostRecord>, StoreError> {
        self.answer(&self.hosts, (org.clone(), max_clearance), self.inner.hosts(org, max_clearance)).await
    }

    async fn peer(
        &self, org: &OrgId, key: &PublicKey, max_clearance: Clearance,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        self.inner.peer(org, key, max_clearance).await
    }

    async fn history(
        &self, org: &OrgId, key: &PublicKey, range: TimeRange, max_clearance: Clearance, page: &PageRequest,
    ) -> Result<Page<HistoryRow>, StoreError> {
        self.inner.history(org, key, range, max_clearance, page).await
    }

    async fn endpoint_changes(
        &self, org: &OrgId, key: &PublicKey, range: TimeRange, max_clearance: Clearance,
    ) -> Result<Vec<EndpointChange>, StoreError> {
        self.inner.endpoint_changes(org, key, range, max_clearance).await
    }

    async fn alerts(
        &self, org: &OrgId, filter: &AlertFilter, max_clearance: Clearance, page: &PageRequest,
    ) -> Result<Page<AlertRow>, StoreError> {
        self.inner.alerts(org, filter, max_clearance, page).await
    }

    async fn alert(
        &self, org: &OrgId, alert_id: &AlertId, max_clearance: Clearance,
    ) -> Result<Option<AlertRow>, StoreError> {
        self.inner.alert(org, alert_id, max_clearance).await
    }

    async fn manifests(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<ManifestRow>, StoreError> {
        self.inner.manifests(org, max_clearance).await
    }

    async fn silences(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<SilenceRow>, StoreError> {
        self.inner.silences(org, max_clearance).await
    }

    async fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.checkpoint(partition).await
    }

    async fn export(&self) -> Result<String, StoreError> {
        self.inner.export().await
    }
}
