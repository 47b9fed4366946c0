//! Listings over ordered keys, shared by both stores: which keys each read covers, cursors,
//! row encoding, the per-row filters, and page assembly.

use std::ops::Bound;

use argus_core::{Clearance, EndpointChange, HostRecord, OrgId, PeerRecord, PublicKey};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::keys;
use crate::model::{AlertFilter, AlertRow, Cursor, HistoryRow, Listing, Page, PeerFilter, StoreError, TimeRange};

pub(crate) fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// Rows are stored postcard-encoded, the same bytes in both stores.
pub(crate) fn encode<T: Serialize>(row: &T) -> Vec<u8> {
    postcard::to_allocvec(row).expect("rows serialise to postcard")
}

/// [`encode`] over `buffer`: a buffer kept across the rows of a batch saves an allocation a row.
pub(crate) fn encode_into<'b, T: Serialize>(row: &T, buffer: &'b mut Vec<u8>) -> &'b [u8] {
    buffer.clear();
    *buffer = postcard::to_extend(row, std::mem::take(buffer)).expect("rows serialise to postcard");
    buffer
}

pub(crate) fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|error| StoreError::Corrupt { table, reason: error.to_string() })
}

/// The `peers` rows of a listing: narrowed by host (and interface) when filtered, in `org`.
pub(crate) fn peers_scan(org: &OrgId, filter: &PeerFilter, after: Option<&Cursor>) -> Result<Scan, StoreError> {
    let scope = keys::org(org);
    let narrowed = match (&filter.host, &filter.interface) {
        (Some(host), Some(interface)) => scope.clone().text(host.as_str()).text(interface.as_str()),
        (Some(host), None) => scope.clone().text(host.as_str()),
        _ => scope.clone(),
    };
    Scan::prefix(narrowed.into_bytes()).after(after, Listing::Peers, &scope.into_bytes())
}

/// The timeline rows (history, endpoint changes) of one peer in a time range.
pub(crate) fn timeline_scan(
    org: &OrgId, key: &PublicKey, range: TimeRange, after: Option<&Cursor>,
) -> Result<Scan, StoreError> {
    let scope = keys::org(org).bytes(key.as_bytes());
    let (from, to) = (scope.clone().time(range.from), scope.clone().time(range.to));
    Scan::between(from.into_bytes(), to.into_bytes(), false).after(after, Listing::History, &scope.into_bytes())
}

/// The alerts of `org` raised in a time range, newest first.
pub(crate) fn alerts_scan(org: &OrgId, range: TimeRange, after: Option<&Cursor>) -> Result<Scan, StoreError> {
    let scope = keys::org(org);
    let (from, to) = (scope.clone().time(range.from), scope.clone().time(range.to));
    Scan::between(from.into_bytes(), to.into_bytes(), true).after(after, Listing::Alerts, &scope.into_bytes())
}

/// Per-row decoding and visibility, the same in both stores.
pub(crate) mod visible {
    use super::*;

    /// The peer row's record when `max` may see it and `filter` keeps it.
    pub(crate) fn peer(bytes: &[u8], filter: &PeerFilter, max: Clearance) -> Result<Option<PeerRecord>, StoreError> {
        let record: PeerRecord = decode("peers", bytes)?;
        Ok((record.clearance <= max && filter.matches(&record)).then_some(record))
    }

    pub(crate) fn history(bytes: &[u8], max: Clearance) -> Result<Option<HistoryRow>, StoreError> {
        let row: HistoryRow = decode("peer_history", bytes)?;
        Ok((row.reading.clearance <= max).then_some(row))
    }

    pub(crate) fn endpoint_change(bytes: &[u8], max: Clearance) -> Result<Option<EndpointChange>, StoreError> {
        let change: EndpointChange = decode("endpoint_changes", bytes)?;
        Ok((change.clearance <= max).then_some(change))
    }

    pub(crate) fn alert(row: AlertRow, filter: &AlertFilter, max: Clearance) -> Option<AlertRow> {
        (row.alert.clearance <= max && filter.matches(&row)).then_some(row)
    }

    pub(crate) fn host(bytes: &[u8], max: Clearance) -> Result<Option<HostRecord>, StoreError> {
        let record: HostRecord = decode("hosts", bytes)?;
        Ok((record.clearance <= max).then_some(record))
    }
}

/// Where a listing starts and ends, and in which direction it runs.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    pub(crate) lower: Bound<Vec<u8>>,
    /// Always exclusive or unbounded-by-prefix: every listing has a finite end.
    pub(crate) upper: Bound<Vec<u8>>,
    pub(crate) newest_first: bool,
}

impl Scan {
    /// Every key under `prefix`, smallest first.
    pub(crate) fn prefix(prefix: Vec<u8>) -> Self {
        let mut end = prefix.clone();
        end.push(0xff);
        Self { lower: Bound::Included(prefix), upper: Bound::Excluded(end), newest_first: false }
    }

    /// Keys from `from` (inclusive) to `to` (exclusive).
    pub(crate) fn between(from: Vec<u8>, to: Vec<u8>, newest_first: bool) -> Self {
        Self { lower: Bound::Included(from), upper: Bound::Excluded(to), newest_first }
    }

    /// Resumes after `cursor`, which `listing` must have issued inside `scope`.
    pub(crate) fn after(mut self, cursor: Option<&Cursor>, listing: Listing, scope: &[u8]) -> Result<Self, StoreError> {
        let Some(cursor) = cursor else { return Ok(self) };
        let key = cursor.key(listing)?;
        if !key.starts_with(scope) {
            return Err(StoreError::InvalidCursor);
        }
        if self.newest_first {
            self.upper = Bound::Excluded(key);
        } else {
            self.lower = Bound::Excluded(key);
        }
        Ok(self)
    }

    /// The bounds as borrowed slices, for a range over a table.
    pub(crate) fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (self.lower.as_ref().map(Vec::as_slice), self.upper.as_ref().map(Vec::as_slice))
    }

    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        <_ as std::ops::RangeBounds<&[u8]>>::contains(&self.bounds(), &key)
    }

    /// The lower bound as a value for `key >= ?`, and whether a row equal to it must be skipped.
    pub(crate) fn lower_inclusive(&self) -> (Vec<u8>, bool) {
        match &self.lower {
            Bound::Included(key) => (key.clone(), false),
            Bound::Excluded(key) => (key.clone(), true),
            Bound::Unbounded => (Vec::new(), false),
        }
    }

    /// The upper bound as a value for `key < ?`.
    pub(crate) fn upper_exclusive(&self) -> Vec<u8> {
        match &self.upper {
            Bound::Included(key) | Bound::Excluded(key) => key.clone(),
            Bound::Unbounded => vec![0xff; 64],
        }
    }
}

/// Collects up to `first` accepted rows, peeking one more to know whether a next page exists.
#[derive(Debug)]
pub(crate) struct PageBuilder<T> {
    listing: Listing,
    first: usize,
    items: Vec<T>,
    cursors: Vec<Cursor>,
    more: bool,
}

impl<T> PageBuilder<T> {
    pub(crate) fn new(listing: Listing, first: usize) -> Self {
        let capacity = first.min(1_024);
        Self { listing, first, items: Vec::with_capacity(capacity), cursors: Vec::with_capacity(capacity), more: false }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= self.first
    }

    /// Offers the row at `key` (`None` when filtered out); returns whether to keep reading.
    pub(crate) fn offer(&mut self, key: &[u8], item: Option<T>) -> bool {
        let Some(item) = item else { return true };
        if self.is_full() {
            self.more = true;
            return false;
        }
        self.items.push(item);
        self.cursors.push(Cursor::from_key(self.listing, key));
        true
    }

    pub(crate) fn finish(self) -> Page<T> {
        let next = if self.more { self.cursors.last().cloned() } else { None };
        Page { items: self.items, cursors: self.cursors, next }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use argus_core::{Clearance, PeerRecord, PeerSource, PeerStatus, PublicKey};

    use super::{encode, visible};
    use crate::model::{PeerFilter, StoreError};

    fn secret_peer(rx_bytes: u64) -> PeerRecord {
        PeerRecord {
            org_id: "acme".parse().expect("org"),
            host: "gw-memo".parse().expect("host"),
            interface: "wg0".parse().expect("interface"),
            public_key: PublicKey::from_bytes([7; 32]),
            observed_at: 1_780_000_000_000,
            status: PeerStatus::Stale,
            endpoint: None,
            allowed_ips: Arc::new([]),
            latest_handshake: None,
            handshake_age_ms: None,
            rx_bytes,
            tx_bytes: 0,
            rx_delta_bytes: 0,
            tx_delta_bytes: 0,
            rx_total_bytes: rx_bytes,
            tx_total_bytes: 0,
            rx_bytes_per_s: 0.0,
            tx_bytes_per_s: 0.0,
            counter_reset: false,
            persistent_keepalive: None,
            source: PeerSource::Kernel,
            clearance: Clearance::Secret,
            metadata: Arc::default(),
        }
    }

    #[test]
    fn a_row_decoded_before_is_still_filtered_and_a_changed_row_is_decoded_again() {
        let (row, everyone) = (encode(&secret_peer(1)), PeerFilter::default());
        let read = |bytes: &[u8], filter: &PeerFilter, max| visible::peer(bytes, filter, max).expect("decodes");
        assert_eq!(read(&row, &everyone, Clearance::TopSecret), Some(secret_peer(1)));
        // remembered now: a caller below its clearance, or a filter it fails, still sees nothing
        assert_eq!(read(&row, &everyone, Clearance::Confidential), None);
        let active = PeerFilter { status: Some(PeerStatus::Active), ..PeerFilter::default() };
        assert_eq!(read(&row, &active, Clearance::TopSecret), None);
        assert_eq!(read(&row, &everyone, Clearance::Secret), Some(secret_peer(1)));
        assert_eq!(read(&encode(&secret_peer(2)), &everyone, Clearance::TopSecret), Some(secret_peer(2)));
        let corrupt = &row[..row.len() / 2];
        assert!(matches!(visible::peer(corrupt, &everyone, Clearance::TopSecret), Err(StoreError::Corrupt { .. })));
    }
}
