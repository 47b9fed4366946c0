//! Given events / when an event / then effects: every rule of the fold.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use argus_core::fold::{Effect, PeerStatus, RuleConfig, StalenessWindow};
use argus_core::{
    Alert, AlertId, AlertKind, AlertState, Clearance, Event, FoldState, HostStatus, ManifestEntry, ProbableCause,
};
use common::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const SCAN: i64 = 10 * SECOND;

/// The handshake time of a peer that re-handshakes every two minutes while alive.
fn live_handshake(at: i64) -> i64 {
    at - (at - T0) % (2 * MINUTE)
}

#[test]
fn deltas_follow_counters_and_a_reset_restarts_from_the_new_value() {
    let mut gateway = Gateway::new("gw-1");
    let mut state = FoldState::default();
    let hs = Some(T0);
    apply_all(&mut state, &[gateway.observe(T0, 1, hs, 1_000, 500)]);
    let first = gateway.peer(&state, 1).clone();
    assert_eq!((first.rx_delta_bytes, first.tx_delta_bytes, first.rx_total_bytes), (0, 0, 0));

    apply_all(&mut state, &[gateway.observe(T0 + SCAN, 1, hs, 6_000, 1_500)]);
    let second = gateway.peer(&state, 1);
    assert_eq!((second.rx_delta_bytes, second.tx_delta_bytes), (5_000, 1_000));
    assert_eq!(second.rx_bytes_per_s, 500.0);
    assert_eq!(second.tx_bytes_per_s, 100.0);
    assert!(!second.counter_reset);

    // the interface restarts: counters drop and start again
    apply_all(&mut state, &[gateway.observe(T0 + 2 * SCAN, 1, hs, 700, 20)]);
    let reset = gateway.peer(&state, 1);
    assert!(reset.counter_reset);
    assert_eq!((reset.rx_delta_bytes, reset.tx_delta_bytes), (700, 20));
    assert_eq!((reset.rx_total_bytes, reset.tx_total_bytes), (5_700, 1_020));

    apply_all(&mut state, &[gateway.observe(T0 + 3 * SCAN, 1, hs, 1_700, 1_020)]);
    let after = gateway.peer(&state, 1);
    assert!(!after.counter_reset);
    assert_eq!((after.rx_total_bytes, after.tx_total_bytes), (6_700, 2_020), "totals survive the restart");
}

/// Given a hub with five fresh peers, when one stops handshaking, then exactly one PEER_STALE
/// (SITE_DOWN) is raised once it crosses the window, and exactly one RESOLVED when it is back.
#[test]
fn a_single_stale_peer_raises_once_as_site_down_and_resolves_once() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    let window = RuleConfig::default().staleness;
    let down_from = T0 + 10 * MINUTE;
    let back_at = down_from + 20 * MINUTE;
    let mut effects = Vec::new();
    let mut at = T0;
    while at < T0 + HOUR {
        for n in 1..=5u8 {
            let handshake = if n == 3 && at >= down_from && at < back_at {
                live_handshake(down_from - 1)
            } else {
                live_handshake(at)
            };
            effects.extend(apply_one(&mut state, &gateway.observe(at, n, Some(handshake), 0, 0)));
        }
        effects.extend(apply_one(&mut state, &gateway.heartbeat(at, SCAN as u32)));
        at += SCAN;
    }
    let raised = alerts_of(&effects, AlertKind::PeerStale, AlertState::Raised);
    let resolved = alerts_of(&effects, AlertKind::PeerStale, AlertState::Resolved);
    assert_eq!(raised.len(), 1, "{raised:#?}");
    assert_eq!(resolved.len(), 1);
    let alert = raised[0];
    assert_eq!(alert.public_key, Some(key(3)));
    assert_eq!(alert.probable_cause, Some(ProbableCause::SiteDown));
    assert_eq!(resolved[0].alert_id, alert.alert_id);
    // raised within one scan of crossing the window
    let crossed = live_handshake(down_from - 1) + window.stale_after.as_millis() as i64;
    assert!(alert.raised_at >= crossed && alert.raised_at < crossed + SCAN, "raised at {}", alert.raised_at - crossed);
    assert!(alert.evidence["handshake_age_s"] >= 210.0);
    assert_eq!(gateway.peer(&state, 3).status, PeerStatus::Active);
    // the alert names the site by its display name and says the cause in words
    let site = format!("site-3 (peer {} on hub/wg0)", key(3));
    let cause = "the gateway and its other peers are fine: this site is down or cut off from the gateway (no path \
                 probe has answered yet)";
    assert_eq!(alert.summary, format!("no handshake: {site}; {cause}"));
    assert_eq!(resolved[0].summary, format!("no handshake over: {site}"));
}

#[test]
fn a_peer_held_exactly_at_the_window_boundary_raises_once_and_never_flaps() {
    let mut gateway = Gateway::new("gw-1");
    let mut state = FoldState::default();
    let stale_after = RuleConfig::default().staleness.stale_after.as_millis() as i64;
    let mut effects = Vec::new();
    for scan in 0..500 {
        let at = T0 + scan * SCAN;
        // the handshake moves along so the age sits exactly on the boundary
        effects.extend(apply_one(&mut state, &gateway.observe(at, 1, Some(at - stale_after), 0, 0)));
    }
    assert_eq!(alerts(&effects).len(), 1);
    assert_eq!(alerts_of(&effects, AlertKind::PeerStale, AlertState::Raised).len(), 1);

    // hovering a second either side of the boundary changes nothing either
    let mut hover = Vec::new();
    for scan in 500..1_000 {
        let at = T0 + scan * SCAN;
        let jitter = if scan % 2 == 0 { SECOND } else { -SECOND };
        hover.extend(apply_one(&mut state, &gateway.observe(at, 1, Some(at - stale_after + jitter), 0, 0)));
    }
    assert!(alerts(&hover).is_empty(), "{:#?}", alerts(&hover));
}

#[test]
fn hovering_around_the_boundary_from_fresh_raises_only_once() {
    let mut gateway = Gateway::new("gw-1");
    let mut state = FoldState::default();
    let stale_after = RuleConfig::default().staleness.stale_after.as_millis() as i64;
    let mut effects = Vec::new();
    for scan in 0..1_000 {
        let at = T0 + scan * SCAN;
        let age = stale_after + if scan % 3 == 0 { SECOND } else { -SECOND };
        effects.extend(apply_one(&mut state, &gateway.observe(at, 1, Some(at - age), 0, 0)));
    }
    assert_eq!(alerts_of(&effects, AlertKind::PeerStale, AlertState::Raised).len(), 1);
    assert_eq!(alerts_of(&effects, AlertKind::PeerStale, AlertState::Resolved).len(), 0);
}

#[test]
fn never_connected_peers_have_their_own_status_and_raise_nothing() {
    let mut gateway = Gateway::new("gw-1");
    let mut state = FoldState::default();
    let events: Vec<_> = (0..100).map(|scan| gateway.observe(T0 + scan * SCAN, 9, None, 0, 0)).collect();
    let effects = apply_all(&mut state, &events);
    assert!(alerts(&effects).is_empty());
    assert_eq!(gateway.peer(&state, 9).status, PeerStatus::NeverConnected);
    assert_eq!(gateway.peer(&state, 9).handshake_age_ms, None);
}

#[test]
fn an_interface_restart_reporting_no_handshake_keeps_the_known_handshake() {
    let mut gateway = Gateway::new("gw-1");
    let mut state = FoldState::default();
    apply_all(&mut state, &[gateway.observe(T0, 1, Some(T0 - SECOND), 100, 100)]);
    let effects = apply_all(&mut state, &[gateway.observe(T0 + SCAN, 1, None, 0, 0)]);
    let peer = gateway.peer(&state, 1);
    assert_eq!(peer.latest_handshake, Some(T0 - SECOND));
    assert_eq!(peer.status, PeerStatus::Active);
    assert!(peer.counter_reset);
    assert!(alerts(&effects).is_empty());
}

/// Given a gateway whose heartbeats stop, when the timer runs past three scan intervals and on
/// past its peers' staleness window, then one GATEWAY_SILENT alert (and no per-peer alert: a
/// peer is judged on what is seen of it, never on the clock while nothing is), and one RESOLVED
/// when heartbeats return.
#[test]
fn gateway_silence_is_judged_on_the_timer_and_raised_once() {
    let mut gateway = Gateway::new("gw-7");
    let window = StalenessWindow { stale_after: Duration::from_secs(150), fresh_below: Duration::from_secs(130) };
    let mut state = FoldState::new(RuleConfig { staleness: window, ..RuleConfig::default() });
    let mut effects = Vec::new();
    for scan in 0..6 {
        let at = T0 + scan * SCAN;
        for n in 1..=4u8 {
            effects.extend(apply_one(&mut state, &gateway.observe(at, n, Some(live_handshake(at)), 0, 0)));
        }
        effects.extend(apply_one(&mut state, &gateway.heartbeat(at, SCAN as u32)));
    }
    let last_heartbeat = T0 + 5 * SCAN;
    let mut ticks = Vec::new();
    // long enough for every peer's last handshake to be older than the window
    for second in 0..=300 {
        state.tick(last_heartbeat + second * SECOND, &mut ticks);
    }
    let silent = alerts_of(&ticks, AlertKind::GatewaySilent, AlertState::Raised);
    assert_eq!(silent.len(), 1);
    assert_eq!(alerts(&ticks).len(), 1, "no per-peer storm");
    assert_eq!(silent[0].raised_at, last_heartbeat + 3 * SCAN + SECOND);
    assert_eq!(silent[0].probable_cause, Some(ProbableCause::GatewaySilent));
    assert_eq!(
        silent[0].summary,
        "gateway silent: gateway gw-7/wg0; nothing is heard from the gateway itself: its host or its collector is down"
    );
    assert!(
        ticks.iter().any(|effect| matches!(effect, Effect::HostUpdated(host) if host.status == HostStatus::Silent))
    );

    let back = apply_one(&mut state, &gateway.heartbeat(last_heartbeat + 3 * MINUTE, SCAN as u32));
    let resolved = alerts_of(&back, AlertKind::GatewaySilent, AlertState::Resolved);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].alert_id, silent[0].alert_id);
    assert!(back.iter().any(|effect| matches!(effect, Effect::HostUpdated(host) if host.status == HostStatus::Alive)));
    let mut later = Vec::new();
    state.tick(last_heartbeat + 3 * MINUTE + SCAN, &mut later);
    assert!(later.is_empty());
}

/// Given a gateway heard until the processor lost its log, when the log is back after longer than
/// the allowed silence, then no GATEWAY_SILENT: the clock starts again when reading resumes, and
/// the gateway is judged silent only if it stays quiet for the whole allowance after that.
#[test]
fn the_processors_own_outage_does_not_make_gateways_silent() {
    let mut gateway = Gateway::new("gw-8");
    let mut state = FoldState::default();
    apply_one(&mut state, &gateway.heartbeat(T0, SCAN as u32));
    let log_back = T0 + 5 * MINUTE;
    state.restart_silence_clocks(log_back);
    let mut ticks = Vec::new();
    for second in 0..=3 * SCAN / SECOND {
        state.tick(log_back + second * SECOND, &mut ticks);
    }
    assert!(ticks.is_empty(), "silence is counted from when reading resumed");
    state.tick(log_back + 3 * SCAN + SECOND, &mut ticks);
    assert_eq!(alerts_of(&ticks, AlertKind::GatewaySilent, AlertState::Raised).len(), 1);
}

/// Given an uplink outage that freezes every peer's handshake, the first stale peer is blamed on
/// the gateway uplink, not on its site.
#[test]
fn most_peers_quiet_means_gateway_uplink() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    let outage = T0 + 10 * MINUTE;
    let mut effects = Vec::new();
    let mut at = T0;
    while at < T0 + 30 * MINUTE {
        for n in 1..=8u8 {
            // peers handshake at staggered times; the outage freezes all of them
            let handshake = live_handshake(at.min(outage) - i64::from(n) * 7 * SECOND);
            effects.extend(apply_one(&mut state, &gateway.observe(at, n, Some(handshake), 0, 0)));
        }
        effects.extend(apply_one(&mut state, &gateway.heartbeat(at, SCAN as u32)));
        at += SCAN;
    }
    let raised = alerts_of(&effects, AlertKind::PeerStale, AlertState::Raised);
    assert_eq!(raised.len(), 8);
    for alert in raised {
        assert_eq!(alert.probable_cause, Some(ProbableCause::GatewayUplink), "{alert:#?}");
    }
}

/// Eight sites behind one hub whose uplink fails at `outage` and returns at `back`; site `n` last
/// handshook `n * spread` before the outage, and `clearance(n)` is its level. Returns every effect.
fn uplink_outage(spread: i64, clearance: impl Fn(u8) -> Clearance) -> Vec<Effect> {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    let (outage, back) = (T0 + 10 * MINUTE, T0 + 30 * MINUTE);
    let mut effects = Vec::new();
    let mut at = T0;
    while at < T0 + 40 * MINUTE {
        for n in 1..=8u8 {
            let handshake = if (outage..back).contains(&at) { outage - i64::from(n) * spread } else { at - SECOND };
            let mut observation =
                gateway.observe_at_endpoint(at, n, Some(handshake), 0, 0, &format!("198.51.{n}.2:51820"));
            if let Event::PeerObservation(observation) = &mut observation {
                observation.clearance = clearance(n);
            }
            effects.extend(apply_one(&mut state, &observation));
        }
        effects.extend(apply_one(&mut state, &gateway.heartbeat(at, SCAN as u32)));
        at += SCAN;
    }
    effects
}

/// Each stale alert's transitions in order, by id.
fn histories(effects: &[Effect]) -> BTreeMap<AlertId, Vec<&Alert>> {
    let mut by_id = BTreeMap::<_, Vec<_>>::new();
    for alert in alerts(effects).into_iter().filter(|alert| alert.kind == AlertKind::PeerStale) {
        by_id.entry(alert.alert_id).or_default().push(alert);
    }
    by_id
}

/// Handshakes are staggered, so the first sites to turn stale look like single site failures:
/// once enough are quiet they are revised into one uplink incident, which resolves once.
#[test]
fn an_uplink_outage_with_staggered_handshakes_is_one_incident_holding_every_site() {
    let effects = uplink_outage(20 * SECOND, |_| Clearance::Restricted);
    let opened = alerts_of(&effects, AlertKind::Incident, AlertState::Raised);
    assert_eq!(opened.len(), 1, "one incident: {opened:#?}");
    let incident = opened[0];
    assert_eq!(incident.probable_cause, Some(ProbableCause::GatewayUplink));
    assert_eq!((incident.public_key, incident.clearance), (None, Clearance::Restricted));
    assert!(incident.summary.starts_with("several sites down for one reason: gateway hub/wg0"), "{}", incident.summary);
    let histories = histories(&effects);
    assert_eq!(histories.len(), 8, "one stale alert per site");
    let first_raised = histories.values().map(|history| history[0].raised_at).min();
    assert_eq!(Some(incident.raised_at), first_raised, "the incident dates from its first site");
    let mut revised_into_it = 0;
    for history in histories.values() {
        let (first, last_raised) = (history[0], history[history.len() - 2]);
        assert_eq!(last_raised.incident_id, Some(incident.alert_id), "{history:#?}");
        assert_eq!(last_raised.probable_cause, Some(ProbableCause::GatewayUplink));
        if first.incident_id.is_none() {
            assert_eq!(first.probable_cause, Some(ProbableCause::SiteDown), "{history:#?}");
            assert_eq!(history.len(), 3, "raised, revised into the incident once, resolved: {history:#?}");
            revised_into_it += 1;
        }
        let resolution = history[history.len() - 1];
        assert_eq!((resolution.state, resolution.incident_id), (AlertState::Resolved, Some(incident.alert_id)));
    }
    assert!(revised_into_it >= 1, "the stagger made some sites look like single failures first");
    // no single-site cause is left standing once the incident is open: its opening revises them
    let all = alerts(&effects);
    let position = |wanted: &Alert| all.iter().position(|alert| std::ptr::eq(*alert, wanted));
    let opened_at = position(incident).expect("the incident is among the effects");
    for history in histories.values().filter(|history| history[0].incident_id.is_none()) {
        let revised_at = position(history[1]).expect("revision among the effects");
        assert!((opened_at + 1..=opened_at + 8).contains(&revised_at), "revised as the incident opened: {history:#?}");
    }
    let resolved = alerts_of(&effects, AlertKind::Incident, AlertState::Resolved);
    assert_eq!(resolved.len(), 1, "one resolution");
    assert_eq!(resolved[0].alert_id, incident.alert_id);
    assert_eq!(resolved[0].evidence["peers"], 8.0);
    let last_member = histories.values().filter_map(|history| history.last().and_then(|alert| alert.resolved_at)).max();
    assert_eq!(resolved[0].resolved_at, last_member, "when its last site is back");
}

/// A stale peer's evidence counts only the interface's peers its alert's readers may see: those
/// of its clearance or below.
#[test]
fn a_stale_alerts_peer_counts_leave_out_peers_above_its_clearance() {
    let level = |n: u8| if n <= 4 { Clearance::Restricted } else { Clearance::Secret };
    let effects = uplink_outage(SECOND, level);
    let raised = alerts_of(&effects, AlertKind::PeerStale, AlertState::Raised);
    assert_eq!(raised.len(), 8, "{raised:#?}");
    for alert in raised {
        let (connected, quiet) = (alert.evidence["connected_peers"], alert.evidence["quiet_peers"]);
        match alert.clearance {
            Clearance::Restricted => assert!(connected <= 3.0 && quiet <= 3.0, "{alert:#?}"),
            _ => assert!(connected > 3.0, "a SECRET peer's readers see every peer: {alert:#?}"),
        }
    }
}

/// All at once or staggered, the peers of another clearance are another incident: an incident
/// tells its readers nothing of peers above them.
#[test]
fn an_incident_holds_only_peers_of_its_own_clearance() {
    for spread in [SECOND, 20 * SECOND] {
        let level = |n: u8| if n <= 4 { Clearance::Restricted } else { Clearance::Secret };
        let effects = uplink_outage(spread, level);
        let opened = alerts_of(&effects, AlertKind::Incident, AlertState::Raised);
        let levels: Vec<_> = opened.iter().map(|incident| incident.clearance).collect();
        assert_eq!(levels.len(), 2, "{opened:#?}");
        assert!(levels.contains(&Clearance::Restricted) && levels.contains(&Clearance::Secret));
        for history in histories(&effects).values() {
            let member_of = history.last().and_then(|alert| alert.incident_id).expect("in an incident");
            let incident = opened.iter().find(|incident| incident.alert_id == member_of).expect("a raised incident");
            assert_eq!(incident.clearance, history[0].clearance, "{history:#?}");
        }
        assert_eq!(alerts_of(&effects, AlertKind::Incident, AlertState::Resolved).len(), 2);
    }
}

/// A member whose address answers the gateway's probe is explained better on its own: it leaves
/// the incident; an unanswered probe keeps it in.
#[test]
fn an_answered_probe_takes_a_site_out_of_its_incident() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    let mut effects = Vec::new();
    let outage = T0 + 10 * MINUTE;
    let mut at = T0;
    while at < T0 + 20 * MINUTE {
        for n in 1..=4u8 {
            let handshake = if at >= outage { outage - SECOND } else { at - SECOND };
            effects.extend(apply_one(
                &mut state,
                &gateway.observe_at_endpoint(at, n, Some(handshake), 0, 0, &format!("198.51.{n}.2:51820")),
            ));
        }
        if at == outage + 5 * MINUTE {
            effects.extend(apply_one(&mut state, &gateway.probe(at + SECOND, 1, "198.51.1.2", 0)));
            effects.extend(apply_one(&mut state, &gateway.probe(at + 2 * SECOND, 2, "198.51.2.2", 3)));
        }
        effects.extend(apply_one(&mut state, &gateway.heartbeat(at, SCAN as u32)));
        at += SCAN;
    }
    let incident = alerts_of(&effects, AlertKind::Incident, AlertState::Raised)[0].alert_id;
    let histories = histories(&effects);
    let of_site = |n: u8| histories.values().find(|history| history[0].public_key == Some(key(n))).expect("history");
    let quiet_probe = of_site(1).last().expect("transitions");
    assert_eq!(
        (quiet_probe.probable_cause, quiet_probe.incident_id),
        (Some(ProbableCause::GatewayUplink), Some(incident))
    );
    let answered = of_site(2).last().expect("transitions");
    assert_eq!((answered.probable_cause, answered.incident_id), (Some(ProbableCause::WireguardDown), None));
    assert!(alerts_of(&effects, AlertKind::Incident, AlertState::Resolved).is_empty(), "three sites still hold it");
}

/// Sites 1, 2 and 3 fail; site 1 is silenced for maintenance (by an operator at RESTRICTED, the
/// sites' level), and the interface by an operator at UNCLASSIFIED, below every site. Returns
/// each alert transition with whether it was silenced.
fn maintenance(silences: impl Fn(&mut Gateway, i64) -> Vec<Event>) -> Vec<Effect> {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    let mut effects = Vec::new();
    let down_from = T0 + 10 * MINUTE;
    let mut at = T0;
    while at < T0 + 40 * MINUTE {
        for event in silences(&mut gateway, at) {
            effects.extend(apply_one(&mut state, &event));
        }
        for n in 1..=8u8 {
            let down = n <= 3 && (down_from..T0 + 30 * MINUTE).contains(&at);
            let handshake = if down { down_from - SECOND } else { at - SECOND };
            let endpoint = format!("198.51.{n}.2:51820");
            effects
                .extend(apply_one(&mut state, &gateway.observe_at_endpoint(at, n, Some(handshake), 0, 0, &endpoint)));
        }
        effects.extend(apply_one(&mut state, &gateway.heartbeat(at, SCAN as u32)));
        at += SCAN;
    }
    effects
}

#[test]
fn a_silence_marks_its_sites_alerts_and_no_other_and_none_above_its_author() {
    let effects = maintenance(|gateway, at| {
        if at != T0 {
            return vec![];
        }
        vec![
            gateway.silence(at, Some(1), T0..T0 + HOUR, Clearance::Restricted),
            // the interface, by an author below the sites: it covers none of them
            gateway.silence(at, None, T0..T0 + HOUR, Clearance::Unclassified),
        ]
    });
    let histories = histories(&effects);
    assert_eq!(histories.len(), 3, "{histories:#?}");
    for history in histories.values() {
        let silenced = history[0].public_key == Some(key(1));
        assert!(history.len() >= 2, "raised and resolved: {history:#?}");
        assert!(history.iter().all(|alert| alert.silenced == silenced), "{history:#?}");
    }
}

#[test]
fn a_silence_covers_only_its_range_and_ends_when_set_again_in_the_past() {
    let window = T0 + 12 * MINUTE..T0 + 14 * MINUTE;
    // site 1 is seen stale at 13:30: inside the window; it is back at 30:00: outside
    let effects = maintenance(|gateway, at| {
        (at == T0).then(|| gateway.silence(at, Some(1), window.clone(), Clearance::TopSecret)).into_iter().collect()
    });
    let histories = histories(&effects);
    let of_site = |n: u8| histories.values().find(|history| history[0].public_key == Some(key(n))).expect("history");
    let site_1: Vec<_> = of_site(1).iter().map(|alert| (alert.state, alert.silenced)).collect();
    assert_eq!(site_1.first(), Some(&(AlertState::Raised, true)), "{site_1:?}");
    assert_eq!(site_1.last(), Some(&(AlertState::Resolved, false)), "the resolution came after the window");

    // set again with its end in the past: over, from then on
    let effects = maintenance(|gateway, at| {
        let silence = |gateway: &mut Gateway, at, range| {
            let mut event = gateway.silence(at, Some(1), range, Clearance::TopSecret);
            if let Event::SilenceSet(silence) = &mut event {
                silence.silence_id =
                    argus_core::SilenceId::derive(&argus_core::EventHeader { seq: 1, ..silence.header.clone() });
            }
            event
        };
        match at {
            T0 => vec![silence(gateway, at, T0..T0 + HOUR)],
            at if at == T0 + 5 * MINUTE => vec![silence(gateway, at, T0..T0 + MINUTE)],
            _ => vec![],
        }
    });
    assert!(alerts(&effects).iter().all(|alert| !alert.silenced), "the silence was ended before the outage");
}

#[test]
fn a_gateway_holds_a_bounded_number_of_silences() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    let max = argus_core::fold::MAX_SILENCES_PER_HOST;
    for n in 0..max {
        let event = gateway.silence(T0 + n as i64, None, T0..T0 + HOUR, Clearance::Restricted);
        apply_one(&mut state, &event);
    }
    let one_more = gateway.silence(T0 + HOUR / 2, None, T0..T0 + HOUR, Clearance::Restricted);
    let refusal = state.apply(&one_more, T0 + HOUR / 2, &mut Vec::new()).expect_err("refused");
    assert_eq!(refusal.to_string(), format!("host hub already has {max} silences that are not over"));
    // once they are over, there is room again
    let later = gateway.silence(T0 + 2 * HOUR, None, T0 + 2 * HOUR..T0 + 3 * HOUR, Clearance::Restricted);
    state.apply(&later, T0 + 2 * HOUR, &mut Vec::new()).expect("accepted");
}

#[test]
fn roaming_into_a_never_seen_network_makes_a_stale_peer_a_security_matter() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    let mut effects = Vec::new();
    for scan in 0..10 {
        let at = T0 + scan * SCAN;
        effects.extend(apply_one(&mut state, &gateway.observe(at, 1, Some(live_handshake(at)), 0, 0)));
        effects.extend(apply_one(&mut state, &gateway.observe(at, 2, Some(live_handshake(at)), 0, 0)));
    }
    let moved_at = T0 + 10 * SCAN;
    let frozen = live_handshake(moved_at);
    let mut at = moved_at;
    while at < moved_at + 10 * MINUTE {
        effects
            .extend(apply_one(&mut state, &gateway.observe_at_endpoint(at, 1, Some(frozen), 0, 0, "192.0.2.99:4500")));
        effects.extend(apply_one(&mut state, &gateway.observe(at, 2, Some(live_handshake(at)), 0, 0)));
        at += SCAN;
    }
    let moves: Vec<_> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::EndpointChanged(change) => Some(change),
            _ => None,
        })
        .collect();
    assert_eq!(moves.len(), 1, "endpoint change recorded once for audit");
    assert!(moves[0].new_network);
    assert_eq!(moves[0].to.to_string(), "192.0.2.99:4500");
    assert_eq!(moves[0].from.map(|from| from.to_string()), Some("198.51.100.1:51820".to_owned()));
    let raised = alerts_of(&effects, AlertKind::PeerStale, AlertState::Raised);
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].probable_cause, Some(ProbableCause::Security));
}

/// A hub of six sites, each on its own network (`198.51.N.0/24`) unless `shared` puts them in one;
/// sites in `down` stop handshaking at `down_from`; `probes(at, n)` gives what the collector's
/// probe of site `n` saw at `at` (`None`: no probe). Returns every effect of the hour.
fn six_sites(
    down: &[u8], shared: bool, probes: impl FnMut(i64, u8) -> Option<u8>,
) -> (Vec<argus_core::fold::Effect>, FoldState, Gateway) {
    six_sites_under(RuleConfig::default(), down, shared, probes)
}

fn six_sites_under(
    config: RuleConfig, down: &[u8], shared: bool, mut probes: impl FnMut(i64, u8) -> Option<u8>,
) -> (Vec<argus_core::fold::Effect>, FoldState, Gateway) {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::new(config);
    let down_from = T0 + 10 * MINUTE;
    let endpoint = |n: u8| if shared { format!("198.51.100.{n}") } else { format!("198.51.{n}.2") };
    let mut effects = Vec::new();
    let mut at = T0;
    while at < T0 + HOUR {
        for n in 1..=6u8 {
            let handshake =
                if down.contains(&n) && at >= down_from { live_handshake(down_from - 1) } else { live_handshake(at) };
            let observation =
                gateway.observe_at_endpoint(at, n, Some(handshake), 0, 0, &format!("{}:51820", endpoint(n)));
            effects.extend(apply_one(&mut state, &observation));
            if let Some(received) = probes(at, n) {
                effects.extend(apply_one(&mut state, &gateway.probe(at + SECOND, n, &endpoint(n), received)));
            }
        }
        effects.extend(apply_one(&mut state, &gateway.heartbeat(at, SCAN as u32)));
        at += SCAN;
    }
    (effects, state, gateway)
}

/// The collector probes a quiet site once its handshake passes the fresh bound (150 s), before it
/// is stale (210 s), and again every minute.
fn probed_while_quiet(answers: impl Fn(u8) -> u8) -> impl FnMut(i64, u8) -> Option<u8> {
    let down_from = T0 + 10 * MINUTE;
    move |at, n| {
        let quiet_for = at - live_handshake(down_from - 1);
        let due = at >= down_from && quiet_for >= 150 * SECOND && (quiet_for - 150 * SECOND) % MINUTE < SCAN;
        (due && answers(n) < u8::MAX).then(|| answers(n))
    }
}

#[test]
fn a_site_whose_address_answers_is_wireguard_down_and_a_silent_one_is_path_down() {
    // site 2's WireGuard stopped (its address answers); site 3's link is cut (nothing answers)
    let (effects, _, _) = six_sites(
        &[2, 3],
        false,
        probed_while_quiet(|n| match n {
            2 => 3,
            3 => 0,
            _ => u8::MAX,
        }),
    );
    let raised = alerts_of(&effects, AlertKind::PeerStale, AlertState::Raised);
    assert_eq!(raised.len(), 2, "only the two failed sites, once each: {raised:#?}");
    let by_site = |n: u8| raised.iter().find(|alert| alert.public_key == Some(key(n))).expect("alert of the site");
    let (service, path) = (by_site(2), by_site(3));
    assert_eq!(service.probable_cause, Some(ProbableCause::WireguardDown));
    assert_eq!((service.evidence["probe_sent"], service.evidence["probe_received"]), (3.0, 3.0));
    assert_eq!(service.evidence["probe_rtt_ms"], 0.5);
    assert!(service.summary.contains("answers the gateway's pings but its tunnel does not"), "{}", service.summary);
    assert_eq!(path.probable_cause, Some(ProbableCause::PathDown));
    assert_eq!((path.evidence["probe_received"], path.evidence["probe_loss"]), (0.0, 1.0));
    assert!(!path.evidence.contains_key("probe_rtt_ms"));
    assert!(path.summary.contains("the path to the site is down"), "{}", path.summary);
    assert!(alerts(&effects).iter().all(|alert| alert.revised_at.is_none()), "the evidence was there in time");
}

#[test]
fn a_probe_after_raising_revises_the_cause_under_the_same_id_once_per_change() {
    let down_from = T0 + 10 * MINUTE;
    let stale_at = live_handshake(down_from - 1) + 210 * SECOND;
    // no probe before the site is stale; then silence for three minutes; then its address answers
    let (effects, _, _) = six_sites(&[4], false, |at, n| {
        (n == 4 && at > stale_at && (at - stale_at) % MINUTE < SCAN).then_some(if at < stale_at + 3 * MINUTE {
            0
        } else {
            2
        })
    });
    let raised = alerts_of(&effects, AlertKind::PeerStale, AlertState::Raised);
    let causes: Vec<_> = raised.iter().map(|alert| (alert.probable_cause, alert.revised_at.is_some())).collect();
    assert_eq!(
        causes,
        [
            (Some(ProbableCause::SiteDown), false),
            (Some(ProbableCause::PathDown), true),
            (Some(ProbableCause::WireguardDown), true)
        ],
        "raised, then one revision per change of cause"
    );
    assert!(raised.iter().all(|alert| alert.alert_id == raised[0].alert_id && alert.raised_at == raised[0].raised_at));
    assert!(raised[1].revised_at < raised[2].revised_at);
    assert_eq!(raised[2].evidence["probe_received"], 2.0);
}

#[test]
fn sites_in_one_network_going_quiet_together_are_an_upstream_outage() {
    let (effects, _, _) = six_sites(&[1, 2], true, probed_while_quiet(|n| if n <= 2 { 0 } else { u8::MAX }));
    let raised = alerts_of(&effects, AlertKind::PeerStale, AlertState::Raised);
    assert_eq!(raised.len(), 2);
    for alert in raised {
        assert_eq!(alert.probable_cause, Some(ProbableCause::UpstreamOutage), "{alert:#?}");
        assert_eq!(alert.evidence["quiet_peers_in_same_network"], 1.0);
    }
    // the same two sites on networks of their own are two path failures
    let probes = || probed_while_quiet(|n| if n <= 2 { 0 } else { u8::MAX });
    let (effects, _, _) = six_sites(&[1, 2], false, probes());
    let raised = alerts_of(&effects, AlertKind::PeerStale, AlertState::Raised);
    assert!(raised.iter().all(|alert| alert.probable_cause == Some(ProbableCause::PathDown)), "{raised:#?}");
    // unless the operator says their networks share one upstream
    let carrier = argus_core::fold::UpstreamGroup {
        name: "carrier-a".into(),
        networks: vec!["198.51.1.0/24".parse().expect("cidr"), "198.51.2.0/24".parse().expect("cidr")],
    };
    let config = RuleConfig { upstream_groups: vec![carrier].into(), ..RuleConfig::default() };
    let (effects, _, _) = six_sites_under(config, &[1, 2], false, probes());
    let raised = alerts_of(&effects, AlertKind::PeerStale, AlertState::Raised);
    assert!(raised.iter().all(|alert| alert.probable_cause == Some(ProbableCause::UpstreamOutage)), "{raised:#?}");
}

#[test]
fn a_probe_of_an_old_endpoint_or_from_before_the_last_handshake_is_no_evidence() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    let handshake = T0;
    let mut events = vec![
        gateway.observe_at_endpoint(T0, 1, Some(handshake), 0, 0, "198.51.1.2:51820"),
        gateway.observe_at_endpoint(T0, 2, Some(T0), 0, 0, "198.51.2.2:51820"),
        // answered, but of an address the peer has left
        gateway.probe(T0 + 160 * SECOND, 1, "198.51.9.9", 3),
    ];
    events.push(gateway.observe_at_endpoint(T0 + 220 * SECOND, 2, Some(T0 + 200 * SECOND), 0, 0, "198.51.2.2:51820"));
    events.push(gateway.observe_at_endpoint(T0 + 220 * SECOND, 1, Some(handshake), 0, 0, "198.51.1.2:51820"));
    let raised: Vec<_> = alerts_of(&apply_all(&mut state, &events), AlertKind::PeerStale, AlertState::Raised)
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].probable_cause, Some(ProbableCause::SiteDown), "the probe of another address is ignored");
    // a probe taken before the handshake that followed it says nothing of the next silence
    let mut effects = apply_one(&mut state, &gateway.probe(T0 + 230 * SECOND, 2, "198.51.2.2", 3));
    effects.extend(apply_one(
        &mut state,
        &gateway.observe_at_endpoint(T0 + 240 * SECOND, 2, Some(T0 + 235 * SECOND), 0, 0, "198.51.2.2:51820"),
    ));
    effects.extend(apply_one(&mut state, &gateway.heartbeat(T0 + 240 * SECOND, SCAN as u32)));
    effects.extend(apply_one(
        &mut state,
        &gateway.observe_at_endpoint(T0 + 460 * SECOND, 2, Some(T0 + 235 * SECOND), 0, 0, "198.51.2.2:51820"),
    ));
    let raised = alerts_of(&effects, AlertKind::PeerStale, AlertState::Raised);
    assert_eq!(raised.len(), 1);
    assert_ne!(raised[0].probable_cause, Some(ProbableCause::WireguardDown), "{:#?}", raised[0]);
    assert!(!raised[0].evidence.contains_key("probe_sent"), "{:#?}", raised[0]);
}

#[test]
fn one_key_presented_from_two_networks_in_turn_is_a_cloned_key_and_one_roam_is_not() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    let mut effects = Vec::new();
    // site 1 roams once to a new network and stays; site 2's key is held by two machines, whose
    // packets reach the hub in turn for five minutes, after which one machine is switched off
    let mut at = T0;
    for scan in 0..120 {
        let roamed = if scan < 30 { "198.51.1.2:51820" } else { "203.0.113.7:4500" };
        effects
            .extend(apply_one(&mut state, &gateway.observe_at_endpoint(at, 1, Some(live_handshake(at)), 0, 0, roamed)));
        let clone = if (10..40).contains(&scan) && scan % 3 == 0 { "192.0.2.50:51820" } else { "198.51.2.2:51820" };
        effects
            .extend(apply_one(&mut state, &gateway.observe_at_endpoint(at, 2, Some(live_handshake(at)), 0, 0, clone)));
        effects.extend(apply_one(&mut state, &gateway.heartbeat(at, SCAN as u32)));
        at += SCAN;
    }
    let raised = alerts_of(&effects, AlertKind::ClonedKey, AlertState::Raised);
    assert_eq!(raised.len(), 1, "{raised:#?}");
    assert_eq!(raised[0].public_key, Some(key(2)));
    assert_eq!(raised[0].probable_cause, Some(ProbableCause::ClonedKey));
    assert_eq!(raised[0].severity, argus_core::Severity::Critical);
    // four switches: 198.51.2 -> 192.0.2 (scan 12) -> 198.51.2 -> 192.0.2 (scan 15) -> 198.51.2 (scan 16)
    assert_eq!(raised[0].raised_at, T0 + 16 * SCAN);
    assert!(raised[0].summary.contains("two machines hold the same key"), "{}", raised[0].summary);
    let resolved = alerts_of(&effects, AlertKind::ClonedKey, AlertState::Resolved);
    assert_eq!(resolved.len(), 1, "resolved once the key stays in one network for the window");
    assert_eq!(resolved[0].alert_id, raised[0].alert_id);
    assert!(resolved[0].resolved_at >= Some(T0 + 40 * SCAN + 600 * SECOND - SCAN));
}

#[test]
fn an_endpoint_move_within_a_known_network_is_audited_but_not_suspicious() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    apply_all(&mut state, &[gateway.observe_at_endpoint(T0, 1, Some(T0), 0, 0, "198.51.100.1:51820")]);
    let effects =
        apply_all(&mut state, &[gateway.observe_at_endpoint(T0 + SCAN, 1, Some(T0), 0, 0, "198.51.100.77:40000")]);
    let change = effects.iter().find_map(|effect| match effect {
        Effect::EndpointChanged(change) => Some(change),
        _ => None,
    });
    assert!(!change.expect("endpoint change").new_network);
    assert!(alerts(&effects).is_empty(), "roaming alone does not alert");
}

/// 10-second samples at `bytes_per_day`, for `duration`, continuing the counters.
fn steady_traffic(
    gateway: &mut Gateway, state: &mut FoldState, from: i64, duration: i64, bytes_per_day: f64, counter: &mut u64,
) -> Vec<Effect> {
    let mut effects = Vec::new();
    let per_scan = (bytes_per_day * SCAN as f64 / DAY as f64) as u64;
    let mut at = from;
    while at < from + duration {
        *counter += per_scan;
        effects.extend(apply_one(state, &gateway.observe(at, 1, Some(live_handshake(at)), *counter / 2, *counter / 2)));
        at += SCAN;
    }
    effects
}

/// Given a peer moving 50 MB/day for two hours, when it jumps to 50 GB/day, then TRAFFIC_ANOMALY
/// is raised on the first sample after the change, once, and resolved when traffic falls back.
#[test]
fn fifty_megabytes_a_day_to_fifty_gigabytes_a_day_raises_within_one_scan() {
    let mut gateway = Gateway::new("gw-1");
    let mut state = FoldState::default();
    let mut counter = 0;
    let normal = steady_traffic(&mut gateway, &mut state, T0, 2 * HOUR, 50e6, &mut counter);
    assert!(alerts(&normal).is_empty());
    let change_at = T0 + 2 * HOUR;
    let surge = steady_traffic(&mut gateway, &mut state, change_at, 30 * MINUTE, 50e9, &mut counter);
    let raised = alerts_of(&surge, AlertKind::TrafficAnomaly, AlertState::Raised);
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].raised_at, change_at, "raised on the first sample after the change");
    assert!(raised[0].evidence["rate_bytes_per_s"] > 500_000.0);
    assert!(raised[0].evidence["baseline_bytes_per_s"] < 1_000.0, "the surge did not leak into the baseline");
    assert_eq!(alerts(&surge).len(), 1);
    let calm = steady_traffic(&mut gateway, &mut state, change_at + 30 * MINUTE, 10 * MINUTE, 50e6, &mut counter);
    let resolved = alerts_of(&calm, AlertKind::TrafficAnomaly, AlertState::Resolved);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].alert_id, raised[0].alert_id);
    assert_eq!(resolved[0].resolved_at, Some(change_at + 30 * MINUTE));
}

/// Given a week of 10-second samples swinging x3 between night and day with ±25% noise, nothing fires.
#[test]
fn a_week_of_diurnal_swing_raises_no_anomaly() {
    let mut gateway = Gateway::new("gw-1");
    let mut state = FoldState::default();
    let mut rng = SmallRng::seed_from_u64(7);
    let mean_bytes_per_s = 2.0e6;
    let mut counter: u64 = 0;
    let mut effects = Vec::new();
    let mut at = T0;
    let mut samples = 0;
    while at < T0 + 7 * DAY {
        let phase = (at - T0) as f64 / DAY as f64 * std::f64::consts::TAU;
        // 0.5x at night to 1.5x at midday: a x3 swing
        let rate = mean_bytes_per_s * (1.0 + 0.5 * phase.sin()) * rng.random_range(0.75..1.25);
        counter += (rate * SCAN as f64 / 1000.0) as u64;
        effects.extend(apply_one(&mut state, &gateway.observe(at, 1, Some(live_handshake(at)), counter, counter / 4)));
        at += SCAN;
        samples += 1;
    }
    assert_eq!(samples, 7 * 8_640);
    assert!(alerts(&effects).is_empty(), "{:#?}", alerts(&effects).first());
}

fn entry(label: &str, expected: u8, retired: &[u8]) -> ManifestEntry {
    ManifestEntry {
        label: Some(label.into()),
        expected_key: key(expected),
        retired_keys: retired.iter().map(|n| key(*n)).collect(),
    }
}

/// Given a manifest expecting key 31 instead of key 3, then key 3 is flagged (SECURITY) until the
/// site rotates: the old peer is removed and the new key appears, which is not flagged.
#[test]
fn a_pre_rotation_key_is_flagged_until_it_is_rotated() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    apply_all(&mut state, &[gateway.observe(T0, 1, Some(T0), 0, 0), gateway.observe(T0, 3, Some(T0), 0, 0)]);
    let manifest = gateway.manifest(T0 + SECOND, vec![entry("site-1", 1, &[]), entry("site-3", 31, &[3])]);
    let flagged = apply_one(&mut state, &manifest);
    let raised = alerts_of(&flagged, AlertKind::KeyRotation, AlertState::Raised);
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].public_key, Some(key(3)));
    assert_eq!(raised[0].probable_cause, Some(ProbableCause::Security));
    assert_eq!(raised[0].evidence["retired_key"], 1.0);

    // still presenting the old key: no repeat
    let still = apply_all(&mut state, &[gateway.observe(T0 + SCAN, 3, Some(T0 + SCAN), 0, 0)]);
    assert!(alerts(&still).is_empty());

    // going stale while flagged is a security matter
    let stale = apply_all(&mut state, &[gateway.observe(T0 + 10 * MINUTE, 3, Some(T0 + SCAN), 0, 0)]);
    let stale_alert = alerts_of(&stale, AlertKind::PeerStale, AlertState::Raised);
    assert_eq!(stale_alert[0].probable_cause, Some(ProbableCause::Security));

    let rotated = apply_all(
        &mut state,
        &[gateway.remove(T0 + 11 * MINUTE, 3), gateway.observe(T0 + 11 * MINUTE, 31, Some(T0 + 11 * MINUTE), 0, 0)],
    );
    let resolved = alerts_of(&rotated, AlertKind::KeyRotation, AlertState::Resolved);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].alert_id, raised[0].alert_id);
    assert_eq!(alerts_of(&rotated, AlertKind::KeyRotation, AlertState::Raised).len(), 0, "new key is expected");
    assert_eq!(alerts_of(&rotated, AlertKind::PeerStale, AlertState::Resolved).len(), 1, "removal ends the episode");
    assert_eq!(gateway.peer(&state, 3).status, PeerStatus::Removed);

    // an unknown key turning up later is flagged too
    let intruder = apply_all(&mut state, &[gateway.observe(T0 + 12 * MINUTE, 66, Some(T0 + 12 * MINUTE), 0, 0)]);
    let unlisted = alerts_of(&intruder, AlertKind::KeyRotation, AlertState::Raised);
    assert_eq!(unlisted.len(), 1);
    assert_eq!(unlisted[0].evidence["retired_key"], 0.0);

    // clearing the manifest clears the flag
    let cleared = apply_all(&mut state, &[gateway.manifest(T0 + 13 * MINUTE, vec![])]);
    assert_eq!(alerts_of(&cleared, AlertKind::KeyRotation, AlertState::Resolved).len(), 1);
}

#[test]
fn replayed_and_late_events_change_nothing() {
    let mut gateway = Gateway::new("gw-1");
    let mut state = FoldState::default();
    let first = gateway.observe(T0, 1, Some(T0), 100, 100);
    let skipped = gateway.observe(T0 + SCAN, 1, Some(T0), 150, 150);
    let third = gateway.observe(T0 + 2 * SCAN, 1, Some(T0), 300, 300);
    apply_all(&mut state, &[first.clone(), third.clone()]);
    let before = gateway.peer(&state, 1).clone();
    assert!(apply_one(&mut state, &third).is_empty(), "replay");
    assert!(apply_one(&mut state, &first).is_empty(), "replay of an older event");
    assert!(apply_one(&mut state, &skipped).is_empty(), "late arrival");
    assert_eq!(gateway.peer(&state, 1), &before);
    // another collector on the same gateway has its own sequence
    let mut other = gateway.clone();
    other.collector = "collector-api".into();
    other.seq = 0;
    assert!(!apply_one(&mut state, &other.observe(T0 + 3 * SCAN, 2, Some(T0), 0, 0)).is_empty());
}

#[test]
fn the_same_stream_gives_the_same_effects_and_alert_ids() {
    let stream = |gateway: &mut Gateway| {
        let mut events = Vec::new();
        for scan in 0..200 {
            let at = T0 + scan * SCAN;
            for n in 1..=3u8 {
                let handshake = if n == 2 && scan > 50 { live_handshake(T0 + 50 * SCAN) } else { live_handshake(at) };
                events.push(gateway.observe(at, n, Some(handshake), (scan * 1000) as u64, 0));
            }
        }
        events
    };
    let first = apply_all(&mut FoldState::default(), &stream(&mut Gateway::new("gw")));
    let second = apply_all(&mut FoldState::default(), &stream(&mut Gateway::new("gw")));
    assert!(!alerts(&first).is_empty());
    assert_eq!(first, second);
}

#[test]
fn staleness_windows_can_be_set_per_organisation_and_interface() {
    let mut gateway = Gateway::new("gw-1");
    let mut state = FoldState::default();
    apply_all(&mut state, &[gateway.observe(T0, 1, Some(T0), 0, 0)]);
    let short = StalenessWindow {
        stale_after: std::time::Duration::from_secs(30),
        fresh_below: std::time::Duration::from_secs(20),
    };
    state.set_staleness_window("acme".parse().expect("org"), Some("wg0".parse().expect("iface")), short);
    let effects = apply_all(&mut state, &[gateway.observe(T0 + 40 * SECOND, 1, Some(T0), 0, 0)]);
    assert_eq!(alerts_of(&effects, AlertKind::PeerStale, AlertState::Raised).len(), 1);
    // other interfaces keep the default window
    let mut other = gateway.clone();
    other.interface = "wg1".into();
    apply_all(&mut state, &[other.observe(T0, 1, Some(T0), 0, 0)]);
    let effects = apply_all(&mut state, &[other.observe(T0 + 40 * SECOND, 1, Some(T0), 0, 0)]);
    assert!(alerts(&effects).is_empty());
}

/// Names come from the API (`syncWireguardPeer`) or from a collector's inventory; a collector
/// that knows no names for a peer leaves the ones it has, and an API write may clear them.
#[test]
fn names_stay_until_a_writer_that_knows_them_changes_them() {
    let mut gateway = Gateway::new("hub");
    let mut state = FoldState::default();
    let collected = |gateway: &mut Gateway, at: i64, name: Option<&str>| {
        let mut event = gateway.observe(at, 1, Some(at), 0, 0);
        if let Event::PeerObservation(observation) = &mut event {
            observation.display_name = name.map(str::to_owned);
            observation.clearance = argus_core::Clearance::Restricted;
        }
        event
    };
    let written = |gateway: &mut Gateway, at: i64, name: Option<&str>| {
        let mut event = collected(gateway, at, name);
        if let Event::PeerObservation(observation) = &mut event {
            observation.writer_clearance = Some(argus_core::Clearance::Secret);
            observation.source = argus_core::PeerSource::Api;
        }
        event
    };
    let name = |state: &FoldState, gateway: &Gateway| gateway.peer(state, 1).metadata.display_name.clone();
    apply_all(&mut state, &[written(&mut gateway, T0, Some("FOB 1"))]);
    apply_all(&mut state, &[collected(&mut gateway, T0 + SCAN, None)]);
    assert_eq!(name(&state, &gateway).as_deref(), Some("FOB 1"), "a scan without names keeps the API's");
    apply_all(&mut state, &[collected(&mut gateway, T0 + 2 * SCAN, Some("fob-01 (inventory)"))]);
    assert_eq!(name(&state, &gateway).as_deref(), Some("fob-01 (inventory)"), "an inventory name replaces it");
    apply_all(&mut state, &[written(&mut gateway, T0 + 3 * SCAN, None)]);
    assert_eq!(name(&state, &gateway), None, "an API write without a name clears it");
}

#[test]
fn every_observation_yields_a_peer_record_for_the_projections() {
    let mut gateway = Gateway::new("gw-1");
    let mut state = FoldState::default();
    let effects = apply_all(&mut state, &[gateway.observe(T0, 4, Some(T0 - SECOND), 10, 20)]);
    let Effect::PeerUpdated(record) = &effects[0] else { panic!("expected a peer record, got {effects:?}") };
    assert_eq!(record.public_key, key(4));
    assert_eq!(record.status, PeerStatus::Active);
    assert_eq!(record.handshake_age_ms, Some(SECOND));
    assert_eq!(record.allowed_ips[0].to_string(), "10.0.0.4/32");
    assert_eq!(record.metadata.display_name.as_deref(), Some("site-4"));
    assert_eq!(state.peer_count(), 1);
}

#[test]
fn host_statistics_count_by_status_and_sum_traffic_per_clearance() {
    let mut gateway = Gateway::new("gw-1");
    let mut state = FoldState::default();
    apply_all(
        &mut state,
        &[
            gateway.observe(T0, 1, Some(T0), 1_000, 0),
            gateway.observe(T0, 2, None, 0, 0),
            gateway.observe(T0, 3, Some(T0 - HOUR), 0, 0),
            gateway.observe(T0 + SCAN, 1, Some(T0), 11_000, 500),
        ],
    );
    let stats = state.host_stats(&"acme".parse().expect("org"), &"gw-1".parse().expect("host"));
    assert_eq!(stats.len(), 5, "one row per clearance level");
    assert_eq!(stats.iter().filter(|row| !row.is_empty()).count(), 1, "all peers share one clearance");
    let row = &stats[1];
    assert_eq!(row.clearance, argus_core::Clearance::Restricted);
    assert_eq!((row.peers.active, row.peers.never_connected, row.peers.stale, row.peers.removed), (1, 1, 1, 0));
    assert_eq!((row.rx_total_bytes, row.tx_total_bytes), (10_000, 500));
    assert_eq!(row.rx_bytes_per_s, 1_000.0);
    let unknown = state.host_stats(&"acme".parse().expect("org"), &"gw-unknown".parse().expect("host"));
    assert!(unknown.iter().all(|row| row.is_empty()));
}
