//! One peer's history on one gateway, walked scan by scan.

use std::ops::Bound;

use argus_core::{Clearance, HostId, InterfaceName, OrgId, PublicKey};

use crate::keys::{self, SeenSpan};
use crate::model::{HistoryRow, PeerReading, StoreError};
use crate::scan::{Scan, decode, unavailable};

/// One peer's history rows on one gateway, found scan by scan.
pub(super) struct GatewayHistory<'a> {
    pub(super) table: &'a redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    pub(super) org: &'a OrgId,
    /// `host\0interface\0`, and the same two as names
    pub(super) gateway: &'a [u8],
    pub(super) host: HostId,
    pub(super) interface: InterfaceName,
    pub(super) key: &'a PublicKey,
    /// When the peer was seen on the gateway: no row of it lies outside.
    pub(super) seen: SeenSpan,
}

impl GatewayHistory<'_> {
    /// Appends up to `wanted` visible rows inside `scan` (a timeline scan of this key), oldest
    /// first, each with its timeline key. The gateway's rows are ordered by time, then peer key, so
    /// the walk goes from scan time to scan time, within both the range and the span the peer was
    /// seen in there: one seek finds the gateway's next scan time, one lookup the peer's row in
    /// that scan. A page of 100 rows costs about 200 B-tree descents; a peer removed from a gateway
    /// that keeps reporting costs at most an hour of its scans (two descents each) past its last row.
    pub(super) fn read(
        &self, scan: &Scan, max_clearance: Clearance, wanted: usize, rows: &mut Vec<(Vec<u8>, HistoryRow)>,
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
