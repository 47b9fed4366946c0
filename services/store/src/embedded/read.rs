//! The store's reads: every one scoped by organisation and clearance, bounded reads where they are
//! called, walks of many rows on a blocking thread.

use std::sync::atomic::Ordering;

use argus_core::{AlertId, Clearance, EndpointChange, HostRecord, HostStats, OrgId, PeerRecord, PublicKey};
use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableHandle};

use super::history::GatewayHistory;
use super::{
    ALERT_IDS, ALERTS, ALL_TABLES, CHECKPOINTS, ENDPOINT_CHANGES, EmbeddedStore, HOST_STATS, HOSTS, MANIFESTS,
    PEER_HISTORY, PEERS, PEERS_BY_KEY, SILENCES, rows,
};
use crate::ProjectionStore;
use crate::keys::{self, SeenSpan};
use crate::model::{
    AlertFilter, AlertRow, Batch, Checkpoint, HistoryRow, Listing, ManifestRow, Page, PageRequest, PeerFilter,
    SilenceRow, Stats, StoreError, TimeRange,
};
use crate::scan::{PageBuilder, Scan, alerts_scan, decode, peers_scan, timeline_scan, unavailable, visible};

/// Visits the rows (key, value) of a scan over a redb table in its direction, while `visit` says
/// to go on.
fn visit_rows(
    scan: &Scan, table: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
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
    scan: &Scan, table: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>, listing: Listing, first: usize,
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
    scan: &Scan, table: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    mut keep: impl FnMut(&[u8]) -> Result<Option<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut kept = Vec::new();
    visit_rows(scan, table, |_, value| {
        kept.extend(keep(value)?);
        Ok(true)
    })?;
    Ok(kept)
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
        &self, org: &OrgId, filter: &PeerFilter, max_clearance: Clearance, page: &PageRequest,
    ) -> Result<Page<PeerRecord>, StoreError> {
        let scan = peers_scan(org, filter, page.after.as_ref())?;
        let page_filter_tests_rows = filter.tests_rows();
        let (filter, first) = (filter.clone(), page.first);
        let read = move |store: &EmbeddedStore| {
            store.read_table(PEERS, |table| {
                scan_page(&scan, table, Listing::Peers, first, |row| {
                    visible::peer(rows::record(row)?, &filter, max_clearance)
                })
            })
        };
        if page_filter_tests_rows { self.off_runtime(read).await } else { self.in_place(read).await }
    }

    async fn peer(
        &self, org: &OrgId, key: &PublicKey, max_clearance: Clearance,
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
                    records.extend(visible::peer(rows::record(bytes.value())?, &PeerFilter::default(), max_clearance)?);
                }
            }
            Ok(records)
        })
        .await
    }

    async fn history(
        &self, org: &OrgId, key: &PublicKey, range: TimeRange, max_clearance: Clearance, page: &PageRequest,
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
        &self, org: &OrgId, key: &PublicKey, range: TimeRange, max_clearance: Clearance,
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
        &self, org: &OrgId, filter: &AlertFilter, max_clearance: Clearance, page: &PageRequest,
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
        &self, org: &OrgId, alert_id: &AlertId, max_clearance: Clearance,
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

    async fn silences(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<SilenceRow>, StoreError> {
        let scan = Scan::prefix(keys::org(org).into_bytes());
        self.off_runtime(move |store| {
            store.read_table(SILENCES, |table| {
                scan_all(&scan, table, |bytes| {
                    decode::<SilenceRow>("silences", bytes).map(|row| (row.clearance <= max_clearance).then_some(row))
                })
            })
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
