//! A healthy synthetic fleet survives the codec unchanged and folds without a single alert.

use argus_core::codec::{decode_event, encode_event};
use argus_core::fold::Effect;
use argus_core::synthetic::{Fleet, FleetSpec};
use argus_core::{FoldState, PeerStatus};

#[test]
fn a_healthy_fleet_round_trips_and_raises_nothing() {
    let mut fleet = Fleet::new(FleetSpec {
        org: "acme".parse().expect("org"),
        hosts: 5,
        peers_per_host: 40,
        scan_interval_ms: 10_000,
        start: 1_780_272_000_000,
    });
    assert_eq!(fleet.peer_count(), 200);
    let mut state = FoldState::default();
    let mut effects = Vec::new();
    let mut bytes = Vec::new();
    for _ in 0..60 {
        let mut events = Vec::new();
        fleet.next_scan(&mut events);
        assert_eq!(events.len(), 5 * 41);
        for event in &events {
            bytes.clear();
            encode_event(event, &mut bytes);
            assert_eq!(&decode_event(&bytes).expect("decode"), event);
            state.apply(event, event.header().observed_at, &mut effects).expect("the fold accepts it");
        }
    }
    assert!(!effects.iter().any(|effect| matches!(effect, Effect::Alert(_))));
    let last_records = effects.iter().rev().filter_map(|effect| match effect {
        Effect::PeerUpdated(record) => Some(record),
        _ => None,
    });
    for record in last_records.take(200) {
        assert_eq!(record.status, PeerStatus::Active);
        assert!(record.rx_delta_bytes >= 1_000);
    }
    assert_eq!(state.peer_count(), 200);
}
