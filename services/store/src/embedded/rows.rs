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

#[cfg(test)]
mod tests {
    use argus_core::synthetic::{Fleet, FleetSpec};

    use super::*;

    #[test]
    fn a_row_holds_its_records_time_and_the_record() {
        let mut fleet = Fleet::new(FleetSpec {
            org: "acme".parse().expect("org"),
            hosts: 1,
            peers_per_host: 1,
            scan_interval_ms: 10_000,
            start: 1_780_000_000_000,
        });
        let mut events = Vec::new();
        fleet.next_scan(&mut events);
        let (mut effects, mut state) = (Vec::new(), argus_core::FoldState::default());
        for event in &events {
            state.apply(event, event.header().observed_at, &mut effects).expect("the fold accepts it");
        }
        let peer = effects
            .into_iter()
            .find_map(|effect| match effect {
                argus_core::fold::Effect::PeerUpdated(record) => Some(record),
                _ => None,
            })
            .expect("a peer");
        for at in [peer.observed_at, -1, 0, i64::MAX] {
            let peer = PeerRecord { observed_at: at, ..peer.clone() };
            let mut buffer = Vec::new();
            let row = encode(&peer, &mut buffer).to_vec();
            assert_eq!(observed_at(&row), Some(at));
            let decoded: PeerRecord = postcard::from_bytes(record_bytes(&row)).expect("decodes");
            assert_eq!(decoded, peer);
        }
        assert!(observed_at(&[1, 2, 3]).is_none());
        assert!(matches!(record(&[1, 2, 3]), Err(StoreError::Corrupt { .. })));
    }

    fn record_bytes(row: &[u8]) -> &[u8] {
        record(row).expect("long enough")
    }
}
