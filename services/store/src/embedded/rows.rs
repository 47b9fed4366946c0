//! How a `peers` row is laid out: the peer's observation time (8 bytes, big-endian), then its
//! record (postcard). A write reads the time of the row it replaces from there, without decoding
//! the record.

use argus_core::{PeerRecord, UnixMillis};

use crate::model::StoreError;

const TIME_BYTES: usize = 8;

/// `record`'s row, over `buffer` (kept across the rows of a batch).
pub(super) fn encode<'b>(record: &PeerRecord, buffer: &'b mut Vec<u8>) -> &'b [u8] {
    buffer.clear();
    buffer.extend_from_slice(&record.observed_at.to_be_bytes());
    *buffer = postcard::to_extend(record, std::mem::take(buffer)).expect("rows serialise to postcard");
    buffer
}

/// The observation time of a row.
pub(super) fn observed_at(row: &[u8]) -> Option<UnixMillis> {
    Some(UnixMillis::from_be_bytes(row.get(..TIME_BYTES)?.try_into().ok()?))
}

/// The record's bytes of a row.
pub(super) fn record(row: &[u8]) -> Result<&[u8], StoreError> {
    row.get(TIME_BYTES..)
        .ok_or_else(|| StoreError::Corrupt { table: "peers", reason: "the row is shorter than its time".into() })
}
