//! A fold restored from a snapshot continues exactly as the one it was taken of.

mod common;

use argus_core::fold::{Effect, RuleConfig, SNAPSHOT_FORMAT, SnapshotError};
use argus_core::{Event, FoldState, ManifestEntry};
use common::*;

/// An hour at one hub: five peers, one going stale and coming back, a traffic surge, a manifest
/// flagging a retired key, heartbeats, and the silence timer running after each scan.
fn eventful_hour() -> Vec<Event> {
    let mut gateway = Gateway::new("hub");
    let mut events = Vec::new();
    let mut counters = [0u64; 6];
    let mut at = T0;
    while at < T0 + 2 * HOUR {
        for n in 1..=5u8 {
            let handshake = if n == 2 && at > T0 + 80 * MINUTE && at < T0 + 100 * MINUTE {
                T0 + 80 * MINUTE
            } else {
                at - (at - T0) % (2 * MINUTE)
            };
            let surge = n == 4 && at > T0 + 90 * MINUTE;
            counters[usize::from(n)] += if surge { 50_000_000 } else { 5_000 };
            events.push(gateway.observe(at, n, Some(handshake), counters[usize::from(n)], 100));
        }
        events.push(gateway.heartbeat(at, 10_000));
        if at == T0 + 30 * MINUTE {
            let entry =
                ManifestEntry { label: Some("site-5".into()), expected_key: key(55), retired_keys: vec![key(5)] };
            let others = (1..=4).map(|n| ManifestEntry { label: None, expected_key: key(n), retired_keys: vec![] });
            events.push(gateway.manifest(at, std::iter::once(entry).chain(others).collect()));
        }
        at += 10 * SECOND;
    }
    events
}

fn run(state: &mut FoldState, events: &[Event]) -> Vec<Effect> {
    let mut effects = Vec::new();
    for event in events {
        let now = event.header().observed_at;
        state.apply(event, now, &mut effects).expect("the fold accepts it");
        state.tick(now + 5 * SECOND, &mut effects);
    }
    effects
}

#[test]
fn restoring_anywhere_continues_with_identical_effects() {
    let events = eventful_hour();
    let mut uninterrupted = FoldState::default();
    let whole = run(&mut uninterrupted, &events);
    assert!(whole.iter().filter(|effect| matches!(effect, Effect::Alert(_))).count() >= 4, "the hour raises alerts");
    for split in [1, 7, events.len() / 3, events.len() / 2, events.len() - 1] {
        let mut before = FoldState::default();
        let head = run(&mut before, &events[..split]);
        let snapshot = before.snapshot();
        assert_eq!(snapshot[0], SNAPSHOT_FORMAT);
        let mut restored = FoldState::restore(RuleConfig::default(), &snapshot).expect("restore");
        let tail = run(&mut restored, &events[split..]);
        assert_eq!(head.len() + tail.len(), whole.len(), "split at {split}");
        assert_eq!(&whole[head.len()..], &tail[..], "effects after a restore at {split}");
        assert_eq!(restored.peer_count(), uninterrupted.peer_count());
        let (org, host) = ("acme".parse().expect("org"), "hub".parse().expect("host"));
        assert_eq!(restored.host_stats(&org, &host), uninterrupted.host_stats(&org, &host), "statistics, bit for bit");
        // a replay of the events before the split is recognised as such after the restore
        assert!(run(&mut restored, &events[..split]).iter().all(|effect| !matches!(effect, Effect::PeerUpdated(_))));
    }
}

#[test]
fn bad_snapshots_are_refused_with_the_reason() {
    assert!(matches!(FoldState::restore(RuleConfig::default(), &[]), Err(SnapshotError::Malformed { .. })));
    assert_eq!(
        FoldState::restore(RuleConfig::default(), &[99, 1, 2]).map(|_| ()),
        Err(SnapshotError::UnknownFormat { found: 99 })
    );
    let mut state = FoldState::default();
    run(&mut state, &eventful_hour()[..50]);
    let mut snapshot = state.snapshot();
    snapshot.truncate(snapshot.len() / 2);
    assert!(matches!(FoldState::restore(RuleConfig::default(), &snapshot), Err(SnapshotError::Malformed { .. })));
}

/// Every event decodes names of its own; the fold keeps one copy per interface, before a snapshot
/// and after a restore (a million peers would otherwise hold a million copies).
#[test]
fn the_peers_of_an_interface_share_its_names() {
    let mut gateway = Gateway::new("hub");
    let events: Vec<Event> = (1..=3).map(|n| gateway.observe(T0, n, Some(T0), 1, 1)).collect();
    let mut state = FoldState::default();
    apply_all(&mut state, &events);
    let shared = |state: &FoldState| {
        let first = gateway.peer(state, 1);
        (2..=3).all(|n| {
            let other = gateway.peer(state, n);
            std::ptr::eq(first.org_id.as_str(), other.org_id.as_str())
                && std::ptr::eq(first.host.as_str(), other.host.as_str())
                && std::ptr::eq(first.interface.as_str(), other.interface.as_str())
        })
    };
    assert!(shared(&state), "peers folded from separate events");
    let restored = FoldState::restore(RuleConfig::default(), &state.snapshot()).expect("restore");
    assert!(shared(&restored), "peers restored from a snapshot");
}
