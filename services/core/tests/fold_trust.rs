//! The log as a trust boundary: API writes carry their writer's clearance and the fold refuses what
//! that writer may not do; a `seq` from the future is refused; crafted times never overflow.

mod common;

use argus_core::fold::{Effect, Refusal};
use argus_core::{AlertKind, AlertState, Clearance, Event, FoldState, ManifestEntry, PeerSource};
use common::*;

/// What an operator at `writer` syncing peer `n` at `clearance` through the API publishes.
fn api_write(gateway: &mut Gateway, at: i64, n: u8, clearance: Clearance, writer: Clearance) -> Event {
    let Event::PeerObservation(mut observation) = gateway.observe_at_endpoint(at, n, None, 0, 0, "192.0.2.66:1") else {
        unreachable!("an observation")
    };
    observation.source = PeerSource::Api;
    observation.clearance = clearance;
    observation.writer_clearance = Some(writer);
    observation.display_name = None;
    Event::PeerObservation(observation)
}

fn secret_peer(gateway: &mut Gateway, at: i64, n: u8) -> Event {
    let Event::PeerObservation(mut observation) = gateway.observe(at, n, Some(at), 5_000, 7_000) else {
        unreachable!("an observation")
    };
    observation.clearance = Clearance::Secret;
    Event::PeerObservation(observation)
}

#[test]
fn an_api_write_cannot_touch_a_peer_above_its_writer_nor_lower_a_clearance() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    apply_all(&mut state, &[secret_peer(&mut gateway, T0, 7)]);
    let before = gateway.peer(&state, 7).clone();

    for (writer, requested, expected) in [
        (Clearance::Unclassified, Clearance::Unclassified, "is SECRET, above the API writer's UNCLASSIFIED"),
        (Clearance::Confidential, Clearance::Confidential, "is SECRET, above the API writer's CONFIDENTIAL"),
        (Clearance::TopSecret, Clearance::Restricted, "cannot lower peer"),
        (Clearance::Restricted, Clearance::Secret, "cannot give a peer clearance SECRET"),
    ] {
        let mut effects = Vec::new();
        let write = api_write(&mut gateway, T0 + SECOND, 7, requested, writer);
        let refusal = state.apply(&write, T0 + SECOND, &mut effects).expect_err("refused");
        assert!(refusal.to_string().contains(expected), "{refusal} should say {expected}");
        assert!(effects.is_empty(), "a refused write changes nothing: {effects:?}");
        assert_eq!(gateway.peer(&state, 7), &before, "the peer is untouched");
    }

    // at or above the peer's clearance, keeping or raising it, the write is applied
    let raise = api_write(&mut gateway, T0 + 2 * SECOND, 7, Clearance::TopSecret, Clearance::TopSecret);
    let effects = apply_one(&mut state, &raise);
    assert!(matches!(&effects[0], Effect::PeerUpdated(record) if record.clearance == Clearance::TopSecret));
    // a new key at or below the writer's clearance is created
    apply_one(&mut state, &api_write(&mut gateway, T0 + 3 * SECOND, 8, Clearance::Restricted, Clearance::Restricted));
    assert_eq!(gateway.peer(&state, 8).clearance, Clearance::Restricted);
    // a collector (no writer's clearance) still sets what its configuration says
    apply_one(&mut state, &gateway.observe(T0 + 4 * SECOND, 7, Some(T0), 5_000, 7_000));
    assert_eq!(gateway.peer(&state, 7).clearance, Clearance::Restricted);
}

#[test]
fn a_refused_write_does_not_advance_its_collectors_seq() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    apply_all(&mut state, &[secret_peer(&mut gateway, T0, 7)]);
    let mut refused = api_write(&mut gateway, T0 + SECOND, 7, Clearance::Unclassified, Clearance::Unclassified);
    refused.header_mut().seq = 1_000;
    assert!(state.apply(&refused, T0, &mut Vec::new()).is_err());
    // the collector's next events (seq 3, 4, ...) still count
    let effects = apply_one(&mut state, &gateway.observe(T0 + 2 * SECOND, 1, Some(T0), 0, 0));
    assert_eq!(effects.len(), 1);
}

#[test]
fn a_seq_from_the_future_is_refused_and_does_not_blind_the_fold() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    let now = T0;
    let mut crafted = gateway.observe(T0, 1, Some(T0), 0, 0);
    crafted.header_mut().seq = u64::MAX;
    let refusal = state.apply(&crafted, now, &mut Vec::new()).expect_err("refused");
    assert!(matches!(refusal, Refusal::SeqAhead { .. }), "{refusal}");
    // just beyond the allowed skew (five minutes) is refused, within it is accepted
    let micros = |millis: i64| u64::try_from(millis).expect("positive") * 1_000;
    let mut ahead = gateway.observe(T0, 1, Some(T0), 0, 0);
    ahead.header_mut().seq = micros(now + 5 * MINUTE + 1);
    assert!(state.apply(&ahead, now, &mut Vec::new()).is_err());
    let mut within = gateway.observe(T0, 1, Some(T0), 0, 0);
    within.header_mut().seq = micros(now + 5 * MINUTE - 1);
    let mut effects = Vec::new();
    state.apply(&within, now, &mut effects).expect("accepted");
    assert_eq!(effects.len(), 1);
}

#[test]
fn crafted_times_never_overflow() {
    let mut state = FoldState::default();
    for (observed_at, handshake) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (0, i64::MIN), (i64::MIN, 0)] {
        let mut gateway = Gateway::new("edge");
        let mut effects = Vec::new();
        for event in [
            gateway.observe(0, 1, Some(0), 0, 0),
            gateway.observe(observed_at, 1, Some(handshake), 10, 10),
            gateway.heartbeat(observed_at, 10_000),
            gateway.observe(observed_at.wrapping_add(1), 1, Some(handshake), 20, 20),
            gateway.heartbeat(0, 10_000),
        ] {
            state.apply(&event, 0, &mut effects).expect("accepted");
        }
        state.tick(i64::MAX, &mut effects);
        state.tick(i64::MIN, &mut effects);
    }
}

fn entry(expected: u8, retired: &[u8]) -> ManifestEntry {
    ManifestEntry { label: None, expected_key: key(expected), retired_keys: retired.iter().map(|n| key(*n)).collect() }
}

fn scoped_manifest(gateway: &mut Gateway, at: i64, writer: Clearance, entries: Vec<ManifestEntry>) -> Event {
    let Event::RotationManifestSet(mut manifest) = gateway.manifest(at, entries) else { unreachable!("a manifest") };
    manifest.writer_clearance = Some(writer);
    Event::RotationManifestSet(manifest)
}

#[test]
fn a_manifest_affects_only_peers_at_or_below_its_writers_clearance() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    // peer 1 RESTRICTED, peer 7 SECRET
    apply_all(&mut state, &[gateway.observe(T0, 1, Some(T0), 0, 0), secret_peer(&mut gateway, T0, 7)]);

    // a SECRET operator flags peer 7 (retired) and peer 1 (unlisted)
    let secret = scoped_manifest(&mut gateway, T0 + SECOND, Clearance::Secret, vec![entry(70, &[7])]);
    let flagged = apply_one(&mut state, &secret);
    let raised = alerts_of(&flagged, AlertKind::KeyRotation, AlertState::Raised);
    let mut flagged_keys: Vec<_> = raised.iter().filter_map(|alert| alert.public_key).collect();
    flagged_keys.sort();
    assert_eq!(flagged_keys, [key(1), key(7)]);

    // a RESTRICTED operator's manifest listing both keys clears only what it may see: peer 1 is
    // judged by both manifests (listed in one is enough), peer 7 only by the SECRET one
    let restricted =
        scoped_manifest(&mut gateway, T0 + 2 * SECOND, Clearance::Restricted, vec![entry(1, &[]), entry(7, &[])]);
    let effects = apply_one(&mut state, &restricted);
    let resolved = alerts_of(&effects, AlertKind::KeyRotation, AlertState::Resolved);
    assert_eq!(resolved.iter().map(|alert| alert.public_key).collect::<Vec<_>>(), [Some(key(1))]);
    assert!(alerts_of(&effects, AlertKind::KeyRotation, AlertState::Raised).is_empty());

    // nor can it raise one: an empty RESTRICTED manifest, then one retiring key 7, leave peer 7 alone
    let retire = scoped_manifest(&mut gateway, T0 + 3 * SECOND, Clearance::Restricted, vec![entry(1, &[7])]);
    let effects = apply_one(&mut state, &retire);
    assert!(alerts(&effects).iter().all(|alert| alert.public_key != Some(key(7))), "{effects:?}");

    // the SECRET operator clearing theirs resolves peer 7's flag
    let cleared = apply_one(&mut state, &scoped_manifest(&mut gateway, T0 + 4 * SECOND, Clearance::Secret, vec![]));
    let resolved = alerts_of(&cleared, AlertKind::KeyRotation, AlertState::Resolved);
    assert_eq!(resolved.iter().map(|alert| alert.public_key).collect::<Vec<_>>(), [Some(key(7))]);
}

#[test]
fn a_clearance_level_left_without_peers_gets_an_empty_statistics_row() {
    let mut gateway = Gateway::new("gw-1");
    let mut state = FoldState::default();
    apply_all(&mut state, &[secret_peer(&mut gateway, T0, 7)]);
    let (org, host) = ("acme".parse().expect("org"), "gw-1".parse().expect("host"));
    let level = |state: &FoldState, clearance: Clearance| {
        let stats = state.host_stats(&org, &host);
        stats.into_iter().find(|row| row.clearance == clearance).expect("one row per level").peers.total()
    };
    assert_eq!((level(&state, Clearance::Secret), level(&state, Clearance::Restricted)), (1, 0));
    // the collector now reports the peer at RESTRICTED: the SECRET row empties (the store removes it)
    apply_one(&mut state, &gateway.observe(T0 + SECOND, 7, Some(T0), 5_000, 7_000));
    assert_eq!((level(&state, Clearance::Secret), level(&state, Clearance::Restricted)), (0, 1));
    assert!(
        state.host_stats(&org, &host).iter().find(|row| row.clearance == Clearance::Secret).expect("row").is_empty()
    );
}
