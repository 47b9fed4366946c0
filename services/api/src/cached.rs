//! The projection store as the API reads it: the answers dashboards ask for again and again
//! (pages of peers, statistics, gateways) kept while the store's version is unchanged, every
//! other read passed through. Only a store that tells its version is cached; keys hold the whole
//! scope of a read (organisation and clearance), so an answer is never served to another scope.

use std::sync::Arc;

use argus_core::{AlertId, Clearance, EndpointChange, HostRecord, OrgId, PeerRecord, PublicKey};
use argus_store::{
    AlertFilter, AlertRow, Batch, Checkpoint, HistoryRow, ManifestRow, Page, PageRequest, PeerFilter, ProjectionStore,
    Stats, StoreError, TimeRange,
};
use async_trait::async_trait;

use crate::cache::Memo;

/// A read whose answer is kept, with its whole scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Read {
    Peers { org: OrgId, filter: PeerFilter, max_clearance: Clearance, page: PageRequest },
    Stats { org: OrgId, max_clearance: Clearance },
    Hosts { org: OrgId, max_clearance: Clearance },
}

#[derive(Clone)]
enum Kept {
    Peers(Arc<Page<PeerRecord>>),
    Stats(Arc<Stats>),
    Hosts(Arc<Vec<HostRecord>>),
}

impl Kept {
    /// Rows held: what an answer counts against [`CachedStore::MOST_ROWS_KEPT`].
    fn rows(&self) -> u64 {
        let rows = match self {
            Kept::Peers(page) => page.items.len(),
            Kept::Stats(stats) => stats.hosts.len() + 1,
            Kept::Hosts(hosts) => hosts.len(),
        };
        rows as u64
    }
}

/// `inner`, with the answers of its repeated reads kept (see the module).
pub struct CachedStore {
    inner: Arc<dyn ProjectionStore>,
    answers: Memo<Read, (u64, Kept)>,
}

impl CachedStore {
    /// Answers expected: a page per dashboard view and its neighbours.
    const ANSWERS: usize = 1_024;
    /// Rows kept at most, over every answer (a few hundred bytes each): callers asking for many
    /// different pages push out older answers, never past this bound.
    const MOST_ROWS_KEPT: u64 = 50_000;

    pub fn new(inner: Arc<dyn ProjectionStore>) -> Self {
        let answers = Memo::weighed(Self::ANSWERS, Self::MOST_ROWS_KEPT, |(_, kept): &(u64, Kept)| kept.rows());
        Self { inner, answers }
    }

    /// The answer to `read`: kept, when it was read at the store's current version; else read
    /// now by `fresh` (and kept).
    async fn answer<F>(&self, read: Read, fresh: F) -> Result<Kept, StoreError>
    where
        F: Future<Output = Result<Kept, StoreError>>,
    {
        let Some(version) = self.inner.version() else { return fresh.await };
        if let Some((kept_at, kept)) = self.answers.get(&read)
            && kept_at == version
        {
            return Ok(kept);
        }
        let kept = fresh.await?;
        // read at `version` or later: kept as of `version`, so a later write is never hidden
        self.answers.insert(read, (version, kept.clone()));
        Ok(kept)
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
        let read = Read::Peers { org: org.clone(), filter: filter.clone(), max_clearance, page: page.clone() };
        let fresh = async { Ok(Kept::Peers(Arc::new(self.inner.peers(org, filter, max_clearance, page).await?))) };
        match self.answer(read, fresh).await? {
            Kept::Peers(page) => Ok(Page::clone(&page)),
            _ => unreachable!("a peers read keeps a page"),
        }
    }

    async fn stats(&self, org: &OrgId, max_clearance: Clearance) -> Result<Stats, StoreError> {
        let read = Read::Stats { org: org.clone(), max_clearance };
        let fresh = async { Ok(Kept::Stats(Arc::new(self.inner.stats(org, max_clearance).await?))) };
        match self.answer(read, fresh).await? {
            Kept::Stats(stats) => Ok(Stats::clone(&stats)),
            _ => unreachable!("a stats read keeps statistics"),
        }
    }

    async fn hosts(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<HostRecord>, StoreError> {
        let read = Read::Hosts { org: org.clone(), max_clearance };
        let fresh = async { Ok(Kept::Hosts(Arc::new(self.inner.hosts(org, max_clearance).await?))) };
        match self.answer(read, fresh).await? {
            Kept::Hosts(hosts) => Ok(Vec::clone(&hosts)),
            _ => unreachable!("a hosts read keeps gateways"),
        }
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

    async fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.checkpoint(partition).await
    }

    async fn export(&self) -> Result<String, StoreError> {
        self.inner.export().await
    }
}
