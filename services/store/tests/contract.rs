//! The store contract, run against every implementation: the embedded store always, ScyllaDB
//! when `SCYLLA_URI` is set (the tests are marked ignored otherwise, so the summary counts them
//! as skipped; `make test` runs them whenever the variable is set).

use std::collections::BTreeSet;
use std::sync::Arc;

use argus_core::fold::{Effect, PeerMetadata};
use argus_core::synthetic::{Fleet, FleetSpec};
use argus_core::{
    Alert, AlertAcknowledged, AlertId, AlertKind, AlertState, Clearance, EndpointChange, FoldState, HostRecord,
    HostStats, HostStatus, ManifestEntry, OrgId, PeerRecord, PeerSource, PeerStatus, PublicKey, RotationManifestSet,
    Severity, StatusCounts,
};
use argus_store::{
    AlertFilter, Batch, Checkpoint, ManifestRow, PageRequest, PeerFilter, ProjectionStore, SilenceRow, StoreError,
    TimeRange,
};

const T0: i64 = 1_780_272_000_000;

fn org(name: &str) -> OrgId {
    name.parse().expect("org")
}

fn key(n: u8) -> PublicKey {
    PublicKey::from_bytes([n; 32])
}

fn record(org_name: &str, host: &str, n: u8, status: PeerStatus, clearance: Clearance, at: i64) -> PeerRecord {
    PeerRecord {
        org_id: org(org_name),
        host: host.parse().expect("host"),
        interface: "wg0".parse().expect("interface"),
        public_key: key(n),
        observed_at: at,
        status,
        endpoint: Some(format!("198.51.100.{n}:51820").parse().expect("endpoint")),
        allowed_ips: Arc::from(vec![format!("10.0.0.{n}/32").parse().expect("cidr")]),
        latest_handshake: Some(at - 5_000),
        handshake_age_ms: Some(5_000),
        rx_bytes: u64::from(n) * 1_000,
        tx_bytes: u64::from(n) * 10,
        rx_delta_bytes: 100,
        tx_delta_bytes: 10,
        rx_total_bytes: u64::from(n) * 1_000,
        tx_total_bytes: u64::from(n) * 10,
        rx_bytes_per_s: 10.0,
        tx_bytes_per_s: 1.0,
        counter_reset: false,
        persistent_keepalive: Some(25),
        source: PeerSource::Userspace,
        clearance,
        metadata: Arc::new(PeerMetadata {
            display_name: Some(format!("fob-{n:02}")),
            owner: Some("noc".into()),
            tags: vec!["forward".into()],
        }),
    }
}

fn header(org_name: &str, host: &str, at: i64) -> argus_core::EventHeader {
    argus_core::EventHeader {
        org_id: org(org_name),
        host: host.parse().expect("host"),
        interface: "wg0".parse().expect("interface"),
        observed_at: at,
        collector_id: "api-1".parse().expect("collector"),
        seq: 1,
    }
}

fn acknowledgement(org_name: &str, alert_id: AlertId, by: &str, at: i64) -> Effect {
    Effect::AlertAcknowledged(AlertAcknowledged {
        header: header(org_name, "gw-1", at),
        alert_id,
        acknowledged_by: by.into(),
    })
}

/// A manifest of `entries` entries for `host`/wg0, expecting keys 1.., each retiring key 100+n.
/// A silence of `host` set by an author at `clearance`, `seq` telling silences apart.
fn silence(org_name: &str, host: &str, seq: u64, ends_at: i64, clearance: Clearance) -> argus_core::SilenceSet {
    let header = argus_core::EventHeader { seq, ..header(org_name, host, T0) };
    argus_core::SilenceSet {
        silence_id: argus_core::SilenceId::derive(&header),
        header,
        whole_host: true,
        public_key: None,
        starts_at: T0,
        ends_at,
        reason: "maintenance".into(),
        author: "operator@noc".into(),
        clearance,
    }
}

fn manifest(org_name: &str, host: &str, at: i64, entries: u8) -> Effect {
    Effect::ManifestSet(RotationManifestSet {
        header: header(org_name, host, at),
        entries: (1..=entries)
            .map(|n| ManifestEntry {
                label: Some(format!("fob-{n:02}")),
                expected_key: key(n),
                retired_keys: vec![key(100 + n)],
            })
            .collect(),
        writer_clearance: None,
    })
}

fn host_record(org_name: &str, host: &str, clearance: Clearance) -> HostRecord {
    HostRecord {
        org_id: org(org_name),
        host: host.parse().expect("host"),
        interface: "wg0".parse().expect("interface"),
        status: HostStatus::Alive,
        last_heartbeat_at: T0,
        interface_public_key: Some(key(250)),
        listen_port: Some(51820),
        peer_count: 3,
        scan_interval_ms: 10_000,
        clearance,
    }
}

fn alert(org_name: &str, n: u8, state: AlertState, raised_at: i64, clearance: Clearance) -> Alert {
    let org_id = org(org_name);
    let host = "hub".parse().expect("host");
    let interface = "wg0".parse().expect("interface");
    Alert {
        alert_id: AlertId::derive(AlertKind::PeerStale, &org_id, &host, &interface, Some(&key(n)), raised_at),
        kind: AlertKind::PeerStale,
        severity: Severity::Warning,
        state,
        org_id,
        host,
        interface,
        public_key: Some(key(n)),
        clearance,
        probable_cause: None,
        evidence: Default::default(),
        summary: "stale".into(),
        raised_at,
        resolved_at: (state == AlertState::Resolved).then_some(raised_at + 60_000),
        revised_at: None,
        silenced: false,
        incident_id: None,
    }
}

/// A statistics row of `host`: `rx` bytes received, half as many sent, 100 and 50 bytes/s.
fn stats_row(org_name: &str, host: &str, clearance: Clearance, peers: StatusCounts, rx: u64) -> HostStats {
    HostStats {
        org_id: org(org_name),
        host: host.parse().expect("host"),
        clearance,
        peers,
        rx_total_bytes: rx,
        tx_total_bytes: rx / 2,
        rx_bytes_per_s: 100.0,
        tx_bytes_per_s: 50.0,
    }
}

fn peers_batch(records: Vec<PeerRecord>) -> Batch {
    Batch { effects: records.into_iter().map(Effect::PeerUpdated).collect(), ..Batch::default() }
}

async fn all_peers<S: ProjectionStore>(
    store: &S, org_id: &OrgId, filter: &PeerFilter, page_size: usize,
) -> Vec<PeerRecord> {
    let mut request = PageRequest::first(page_size);
    let mut all = Vec::new();
    for _ in 0..MAX_PAGES {
        let page = store.peers(org_id, filter, Clearance::TopSecret, &request).await.expect("peers");
        assert!(page.items.len() <= page_size);
        all.extend(page.items);
        match page.next {
            Some(cursor) => request.after = Some(cursor),
            None => return all,
        }
    }
    panic!("pagination did not end after {MAX_PAGES} pages: a cursor does not advance");
}

/// No listing in these tests needs more pages; more means a cursor that does not advance.
const MAX_PAGES: usize = 1_000;

/// The checks every implementation must pass.
mod checks {
    use super::*;

    pub async fn peers_are_ordered_and_paged_without_gaps_or_repeats<S: ProjectionStore>(store: &S) {
        let mut records = Vec::new();
        for host in ["gw-b", "gw-a", "gw-c"] {
            for n in (1..=20).rev() {
                records.push(record("acme", host, n, PeerStatus::Active, Clearance::Unclassified, T0));
            }
        }
        store.write(peers_batch(records)).await.expect("write");
        for page_size in [1, 7, 20, 60, 100] {
            let listed = all_peers(store, &org("acme"), &PeerFilter::default(), page_size).await;
            assert_eq!(listed.len(), 60, "page size {page_size}");
            let order: Vec<_> = listed.iter().map(|r| (r.host.to_string(), r.public_key)).collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, sorted, "ordered by host then key");
        }
        let first =
            store.peers(&org("acme"), &PeerFilter::default(), Clearance::TopSecret, &PageRequest::first(0)).await;
        assert!(first.expect("empty page").items.is_empty());
    }

    pub async fn pagination_is_stable_while_writes_happen<S: ProjectionStore>(store: &S) {
        let initial: Vec<_> =
            (10..50).map(|n| record("acme", "gw-a", n, PeerStatus::Active, Clearance::Unclassified, T0)).collect();
        store.write(peers_batch(initial)).await.expect("write");
        let mut request = PageRequest::first(10);
        let mut seen = Vec::new();
        let mut round = 0u8;
        for _ in 0..MAX_PAGES {
            let page =
                store.peers(&org("acme"), &PeerFilter::default(), Clearance::TopSecret, &request).await.expect("page");
            seen.extend(page.items.iter().map(|r| r.public_key));
            // between pages: update existing rows and insert new ones before and after the cursor
            round += 1;
            let writes = vec![
                record("acme", "gw-a", round, PeerStatus::Stale, Clearance::Unclassified, T0 + i64::from(round)),
                record("acme", "gw-a", 200 + round, PeerStatus::Active, Clearance::Unclassified, T0),
                record("acme", "gw-a", 10 + round, PeerStatus::Stale, Clearance::Unclassified, T0 + 1),
            ];
            store.write(peers_batch(writes)).await.expect("write");
            match page.next {
                Some(cursor) => request.after = Some(cursor),
                None => break,
            }
        }
        assert!(round < 100, "pagination did not end");
        let unique: BTreeSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "no row twice");
        for n in 10..50 {
            assert!(unique.contains(&key(n)), "pre-existing row {n} never skipped");
        }
    }

    pub async fn peers_filter_by_host_interface_status_stale_and_text<S: ProjectionStore>(store: &S) {
        let mut other_interface = record("acme", "gw-a", 5, PeerStatus::Active, Clearance::Unclassified, T0);
        other_interface.interface = "wg1".parse().expect("interface");
        store
            .write(peers_batch(vec![
                record("acme", "gw-a", 1, PeerStatus::Active, Clearance::Unclassified, T0),
                record("acme", "gw-a", 2, PeerStatus::Stale, Clearance::Unclassified, T0),
                record("acme", "gw-b", 3, PeerStatus::NeverConnected, Clearance::Unclassified, T0),
                record("acme", "gw-b", 4, PeerStatus::Stale, Clearance::Unclassified, T0),
                other_interface,
            ]))
            .await
            .expect("write");
        let keys_of = |records: Vec<PeerRecord>| records.iter().map(|r| r.public_key.as_bytes()[0]).collect::<Vec<_>>();
        let acme = org("acme");
        let by_host = PeerFilter { host: Some("gw-b".parse().expect("host")), ..PeerFilter::default() };
        assert_eq!(keys_of(all_peers(store, &acme, &by_host, 10).await), vec![3, 4]);
        let by_interface = PeerFilter { interface: Some("wg1".parse().expect("iface")), ..PeerFilter::default() };
        assert_eq!(keys_of(all_peers(store, &acme, &by_interface, 10).await), vec![5]);
        let both = PeerFilter {
            host: Some("gw-a".parse().expect("host")),
            interface: Some("wg0".parse().expect("iface")),
            ..PeerFilter::default()
        };
        assert_eq!(keys_of(all_peers(store, &acme, &both, 10).await), vec![1, 2]);
        let stale = PeerFilter { stale: Some(true), ..PeerFilter::default() };
        assert_eq!(keys_of(all_peers(store, &acme, &stale, 1).await), vec![2, 4]);
        let not_stale = PeerFilter { stale: Some(false), ..PeerFilter::default() };
        assert_eq!(keys_of(all_peers(store, &acme, &not_stale, 10).await), vec![1, 5, 3]);
        let never = PeerFilter { status: Some(PeerStatus::NeverConnected), ..PeerFilter::default() };
        assert_eq!(keys_of(all_peers(store, &acme, &never, 10).await), vec![3]);
        let text = PeerFilter { text: Some("FOB-04".into()), ..PeerFilter::default() };
        assert_eq!(keys_of(all_peers(store, &acme, &text, 10).await), vec![4]);
        let by_ip = PeerFilter { text: Some("10.0.0.2/".into()), ..PeerFilter::default() };
        assert_eq!(keys_of(all_peers(store, &acme, &by_ip, 10).await), vec![2]);
    }

    pub async fn a_key_is_found_on_every_gateway_that_lists_it<S: ProjectionStore>(store: &S) {
        store
            .write(peers_batch(vec![
                record("acme", "hub-1", 9, PeerStatus::Active, Clearance::Unclassified, T0),
                record("acme", "hub-2", 9, PeerStatus::Stale, Clearance::Unclassified, T0),
                record("acme", "hub-2", 8, PeerStatus::Active, Clearance::Unclassified, T0),
            ]))
            .await
            .expect("write");
        let found = store.peer(&org("acme"), &key(9), Clearance::TopSecret).await.expect("peer");
        let hosts: Vec<_> = found.iter().map(|r| r.host.to_string()).collect();
        assert_eq!(hosts, vec!["hub-1", "hub-2"]);
        assert!(store.peer(&org("acme"), &key(77), Clearance::TopSecret).await.expect("peer").is_empty());
    }

    pub async fn history_covers_a_time_range_and_pages<S: ProjectionStore>(store: &S) {
        let rows: Vec<_> = (0..50)
            .map(|minute| record("acme", "hub", 1, PeerStatus::Active, Clearance::Unclassified, T0 + minute * 60_000))
            .chain(
                (0..5).map(|minute| record("acme", "hub", 2, PeerStatus::Active, Clearance::Unclassified, T0 + minute)),
            )
            .collect();
        store.write(peers_batch(rows)).await.expect("write");
        let range = TimeRange { from: T0 + 10 * 60_000, to: T0 + 40 * 60_000 };
        let mut request = PageRequest::first(7);
        let mut times = Vec::new();
        for _ in 0..MAX_PAGES {
            let page =
                store.history(&org("acme"), &key(1), range, Clearance::TopSecret, &request).await.expect("history");
            times.extend(page.items.iter().map(|row| row.observed_at));
            match page.next {
                Some(cursor) => request.after = Some(cursor),
                None => break,
            }
        }
        let expected: Vec<_> = (10..40).map(|minute| T0 + minute * 60_000).collect();
        assert_eq!(times, expected);
    }

    pub async fn history_merges_every_gateway_in_time_order<S: ProjectionStore>(store: &S) {
        // one key on two gateways, several rows a minute, a gap of hours, and the oldest row of
        // "spoke" written last (its first observation there moves back)
        let at =
            |host: &str, offset: i64| record("acme", host, 1, PeerStatus::Active, Clearance::Unclassified, T0 + offset);
        let mut hub: Vec<_> = (0..12).map(|step| at("hub", step * 20_000)).collect();
        hub.extend((0..3).map(|step| at("hub", 5 * 3_600_000 + step * 20_000)));
        let spoke: Vec<_> = (1..8).map(|step| at("spoke", step * 30_000)).collect();
        store.write(peers_batch(hub.clone())).await.expect("hub");
        store.write(peers_batch(spoke.clone())).await.expect("spoke");
        store.write(peers_batch(vec![at("spoke", 0), at("spoke", -3_600_000)])).await.expect("older spoke rows");
        let mut expected: Vec<_> = hub
            .iter()
            .chain(&spoke)
            .chain([&at("spoke", 0)])
            .map(|row| (row.observed_at, row.host.to_string()))
            .collect();
        expected.sort();
        let listed = |range: TimeRange, first: usize| async move {
            let mut request = PageRequest::first(first);
            let mut rows = Vec::new();
            for _ in 0..MAX_PAGES {
                let page =
                    store.history(&org("acme"), &key(1), range, Clearance::TopSecret, &request).await.expect("history");
                rows.extend(page.items.iter().map(|row| (row.observed_at, row.host.to_string())));
                match page.next {
                    Some(cursor) => request.after = Some(cursor),
                    None => return rows,
                }
            }
            panic!("history never ended");
        };
        let range = TimeRange { from: T0, to: T0 + 6 * 3_600_000 };
        for first in [1, 4, 100] {
            assert_eq!(listed(range, first).await, expected, "pages of {first}");
        }
        let everything = listed(TimeRange::default(), 5).await;
        assert_eq!(everything.len(), expected.len() + 1, "the unbounded range holds the row an hour before");
        let tail = TimeRange { from: T0 + 60_000, to: T0 + 5 * 3_600_000 + 20_000 };
        let within: Vec<_> = expected.iter().filter(|(time, _)| tail.contains(*time)).cloned().collect();
        assert_eq!(listed(tail, 3).await, within);
    }

    pub async fn alerts_raise_resolve_acknowledge_and_filter<S: ProjectionStore>(store: &S) {
        let raised = alert("acme", 1, AlertState::Raised, T0, Clearance::Unclassified);
        let incident = AlertId::derive_incident(&raised.org_id, &raised.host, &raised.interface, "uplink", T0);
        let other = Alert {
            incident_id: Some(incident),
            silenced: true,
            ..alert("acme", 2, AlertState::Raised, T0 + 1_000, Clearance::Unclassified)
        };
        let resolved = Alert { state: AlertState::Resolved, resolved_at: Some(T0 + 5_000), ..raised.clone() };
        store
            .write(Batch {
                effects: vec![Effect::Alert(raised.clone()), Effect::Alert(other.clone())],
                ..Batch::default()
            })
            .await
            .expect("write");
        let first_acknowledgement = acknowledgement("acme", raised.alert_id, "operator@noc", T0 + 2_000);
        let later_acknowledgement = acknowledgement("acme", raised.alert_id, "someone-else", T0 + 3_000);
        let effects = vec![first_acknowledgement, later_acknowledgement];
        store.write(Batch { effects, ..Batch::default() }).await.expect("ack");
        store
            .write(Batch { effects: vec![Effect::Alert(resolved.clone())], ..Batch::default() })
            .await
            .expect("resolve");
        // a replayed RAISED never reopens a resolved episode
        store.write(Batch { effects: vec![Effect::Alert(raised.clone())], ..Batch::default() }).await.expect("replay");

        let all = store
            .alerts(&org("acme"), &AlertFilter::default(), Clearance::TopSecret, &PageRequest::first(10))
            .await
            .expect("alerts");
        assert_eq!(all.items.len(), 2);
        assert_eq!(all.items[0].alert.alert_id, other.alert_id, "newest first");
        let first = &all.items[1];
        assert_eq!(first.alert.state, AlertState::Resolved);
        assert_eq!(first.alert.resolved_at, Some(T0 + 5_000));
        assert_eq!(first.acknowledged_by.as_deref(), Some("operator@noc"));
        assert_eq!(first.acknowledged_at, Some(T0 + 2_000));
        let by_id = store.alert(&org("acme"), &raised.alert_id, Clearance::TopSecret).await.expect("by id");
        assert_eq!(by_id.as_ref(), Some(first), "one alert by id, as listed");
        let foreign = store.alert(&org("globex"), &raised.alert_id, Clearance::TopSecret).await.expect("foreign");
        assert_eq!(foreign, None, "an alert id is only found in its own organisation");

        let open = AlertFilter { state: Some(AlertState::Raised), ..AlertFilter::default() };
        let open =
            store.alerts(&org("acme"), &open, Clearance::TopSecret, &PageRequest::first(10)).await.expect("open");
        assert_eq!(open.items.len(), 1);
        let of_incident = AlertFilter { incident: Some(incident), ..AlertFilter::default() };
        let of_incident = store
            .alerts(&org("acme"), &of_incident, Clearance::TopSecret, &PageRequest::first(10))
            .await
            .expect("an incident's alerts");
        let members: Vec<_> = of_incident.items.iter().map(|row| row.alert.alert_id).collect();
        assert_eq!(members, [other.alert_id], "only the incident's members");
        for (silenced, expected) in [(true, other.alert_id), (false, raised.alert_id)] {
            let filter = AlertFilter { silenced: Some(silenced), ..AlertFilter::default() };
            let listed = store
                .alerts(&org("acme"), &filter, Clearance::TopSecret, &PageRequest::first(10))
                .await
                .expect("alerts");
            let ids: Vec<_> = listed.items.iter().map(|row| row.alert.alert_id).collect();
            assert_eq!(ids, [expected], "silenced: {silenced}");
        }
        let early = AlertFilter { range: TimeRange { from: T0, to: T0 + 1 }, ..AlertFilter::default() };
        let early =
            store.alerts(&org("acme"), &early, Clearance::TopSecret, &PageRequest::first(10)).await.expect("range");
        assert_eq!(early.items.len(), 1);
        assert_eq!(early.items[0].alert.alert_id, raised.alert_id);
        let paged = store
            .alerts(&org("acme"), &AlertFilter::default(), Clearance::TopSecret, &PageRequest::first(1))
            .await
            .expect("page");
        let rest = PageRequest { first: 1, after: paged.next.clone() };
        let rest =
            store.alerts(&org("acme"), &AlertFilter::default(), Clearance::TopSecret, &rest).await.expect("next");
        assert_eq!(rest.items[0].alert.alert_id, raised.alert_id);
        assert!(rest.next.is_none());
    }

    pub async fn silences_are_listed_as_last_set_within_scope<S: ProjectionStore>(store: &S) {
        let first = silence("acme", "gw-2", 1, T0 + 3_600_000, Clearance::Restricted);
        let effects = vec![
            Effect::SilenceSet(first.clone()),
            Effect::SilenceSet(silence("acme", "gw-1", 2, T0 + 60_000, Clearance::Secret)),
            Effect::SilenceSet(silence("globex", "gw-1", 3, T0 + 60_000, Clearance::Unclassified)),
        ];
        store.write(Batch { effects, ..Batch::default() }).await.expect("write");
        let ended = argus_core::SilenceSet { ends_at: T0, ..first.clone() };
        store.write(Batch { effects: vec![Effect::SilenceSet(ended.clone())], ..Batch::default() }).await.expect("end");
        let listed = store.silences(&org("acme"), Clearance::TopSecret).await.expect("silences");
        let hosts: Vec<_> = listed.iter().map(|silence| (silence.host.to_string(), silence.ends_at)).collect();
        assert_eq!(hosts, [("gw-1".to_owned(), T0 + 60_000), ("gw-2".to_owned(), T0)], "by host; as last set");
        let restricted = store.silences(&org("acme"), Clearance::Restricted).await.expect("silences");
        assert_eq!(restricted, [SilenceRow::from(&ended)], "a SECRET author's silence is above a RESTRICTED reader");
        assert_eq!(
            (restricted[0].interface.as_ref(), restricted[0].silence_id),
            (None, first.silence_id),
            "whole host"
        );
        let globex = store.silences(&org("globex"), Clearance::TopSecret).await.expect("silences");
        assert!(globex.len() == 1 && globex[0].org_id == org("globex"), "{globex:?}");
        assert!(store.silences(&org("initech"), Clearance::TopSecret).await.expect("silences").is_empty());
    }

    pub async fn manifests_are_replaced_whole_per_interface<S: ProjectionStore>(store: &S) {
        let effects =
            vec![manifest("acme", "gw-2", T0, 2), manifest("acme", "gw-1", T0, 1), manifest("globex", "gw-1", T0, 3)];
        store.write(Batch { effects, ..Batch::default() }).await.expect("write");
        store
            .write(Batch { effects: vec![manifest("acme", "gw-2", T0 + 1, 0)], ..Batch::default() })
            .await
            .expect("replace");
        let manifests = store.manifests(&org("acme"), Clearance::TopSecret).await.expect("manifests");
        let summary: Vec<_> =
            manifests.iter().map(|row| (row.host.to_string(), row.set_at, row.entries.len())).collect();
        assert_eq!(
            summary,
            [("gw-1".to_owned(), T0, 1), ("gw-2".to_owned(), T0 + 1, 0)],
            "ordered by host; replaced whole"
        );
        assert_eq!(manifests[0].entries[0].expected_key, key(1));
        let globex: Vec<ManifestRow> = store.manifests(&org("globex"), Clearance::TopSecret).await.expect("manifests");
        assert_eq!(globex.len(), 1);
        assert!(globex.iter().all(|row| row.org_id == org("globex")));

        // one manifest per clearance of its authors: a CONFIDENTIAL one beside the TOP_SECRET one,
        // seen only by callers at or above the clearance it was set at
        let mut confidential = manifest("acme", "gw-1", T0 + 2, 3);
        if let Effect::ManifestSet(set) = &mut confidential {
            set.writer_clearance = Some(Clearance::Confidential);
        }
        store.write(Batch { effects: vec![confidential], ..Batch::default() }).await.expect("write");
        let scopes = |rows: Vec<ManifestRow>| -> Vec<_> {
            rows.iter()
                .filter(|row| row.host.as_str() == "gw-1")
                .map(|row| (row.clearance, row.entries.len()))
                .collect()
        };
        let all = store.manifests(&org("acme"), Clearance::TopSecret).await.expect("manifests");
        assert_eq!(scopes(all), [(Clearance::Confidential, 3), (Clearance::TopSecret, 1)]);
        let confidential = store.manifests(&org("acme"), Clearance::Confidential).await.expect("manifests");
        assert_eq!(scopes(confidential), [(Clearance::Confidential, 3)]);
        assert!(store.manifests(&org("acme"), Clearance::Restricted).await.expect("manifests").is_empty());
    }

    pub async fn hosts_and_statistics_come_from_their_rows<S: ProjectionStore>(store: &S) {
        let stats = |host: &str, clearance, active, stale, rx| {
            stats_row("acme", host, clearance, StatusCounts { never_connected: 1, active, stale, removed: 0 }, rx)
        };
        store
            .write(Batch {
                effects: vec![
                    Effect::HostUpdated(host_record("acme", "gw-b", Clearance::Unclassified)),
                    Effect::HostUpdated(host_record("acme", "gw-a", Clearance::Unclassified)),
                ],
                host_stats: vec![
                    stats("gw-a", Clearance::Unclassified, 5, 1, 1_000),
                    stats("gw-a", Clearance::Secret, 2, 0, 500),
                    stats("gw-b", Clearance::Unclassified, 3, 2, 2_000),
                ],
                ..Batch::default()
            })
            .await
            .expect("write");
        let hosts = store.hosts(&org("acme"), Clearance::TopSecret).await.expect("hosts");
        assert_eq!(hosts.iter().map(|h| h.host.to_string()).collect::<Vec<_>>(), vec!["gw-a", "gw-b"]);
        let all = store.stats(&org("acme"), Clearance::TopSecret).await.expect("stats");
        assert_eq!((all.peers.active, all.peers.stale, all.peers.never_connected), (10, 3, 3));
        assert_eq!(all.rx_total_bytes, 3_500);
        assert_eq!(all.rx_bytes_per_s, 300.0);
        assert_eq!(all.hosts.len(), 2);
        assert_eq!(all.hosts[0].peers.active, 7);
        // rows are replaced whole: a newer row for gw-b supersedes the old one
        store
            .write(Batch { host_stats: vec![stats("gw-b", Clearance::Unclassified, 0, 5, 2_500)], ..Batch::default() })
            .await
            .expect("write");
        let after = store.stats(&org("acme"), Clearance::Restricted).await.expect("stats");
        assert_eq!((after.peers.active, after.peers.stale), (5, 6), "SECRET row hidden, gw-b replaced");
        // a level left without peers (they moved to another clearance) has its row removed
        let empty = stats_row("acme", "gw-a", Clearance::Secret, StatusCounts::default(), 0);
        store.write(Batch { host_stats: vec![empty], ..Batch::default() }).await.expect("write");
        let all = store.stats(&org("acme"), Clearance::TopSecret).await.expect("stats");
        assert_eq!((all.peers.active, all.peers.stale, all.rx_total_bytes), (5, 6, 3_500), "no SECRET row left");
    }

    pub async fn clearance_hides_rows_in_every_read<S: ProjectionStore>(store: &S) {
        let secret = record("acme", "gw-s", 7, PeerStatus::Stale, Clearance::Secret, T0);
        let secret_alert = alert("acme", 7, AlertState::Raised, T0, Clearance::Secret);
        let change = EndpointChange {
            org_id: org("acme"),
            host: "gw-s".parse().expect("host"),
            interface: "wg0".parse().expect("iface"),
            public_key: key(7),
            from: None,
            to: "192.0.2.1:1".parse().expect("endpoint"),
            changed_at: T0,
            new_network: false,
            clearance: Clearance::Secret,
        };
        store
            .write(Batch {
                effects: vec![
                    Effect::PeerUpdated(secret),
                    Effect::Alert(secret_alert),
                    Effect::HostUpdated(host_record("acme", "gw-s", Clearance::Secret)),
                    Effect::EndpointChanged(change),
                ],
                host_stats: vec![stats_row(
                    "acme",
                    "gw-s",
                    Clearance::Secret,
                    StatusCounts { stale: 1, ..StatusCounts::default() },
                    1,
                )],
                ..Batch::default()
            })
            .await
            .expect("write");
        let acme = org("acme");
        let low = Clearance::Confidential;
        let all = TimeRange::default();
        assert!(
            store
                .peers(&acme, &PeerFilter::default(), low, &PageRequest::first(10))
                .await
                .expect("peers")
                .items
                .is_empty()
        );
        assert!(store.peer(&acme, &key(7), low).await.expect("peer").is_empty());
        assert!(
            store.history(&acme, &key(7), all, low, &PageRequest::first(10)).await.expect("history").items.is_empty()
        );
        assert!(store.endpoint_changes(&acme, &key(7), all, low).await.expect("changes").is_empty());
        assert!(
            store
                .alerts(&acme, &AlertFilter::default(), low, &PageRequest::first(10))
                .await
                .expect("alerts")
                .items
                .is_empty()
        );
        assert!(store.hosts(&acme, low).await.expect("hosts").is_empty());
        assert_eq!(store.stats(&acme, low).await.expect("stats").peers.total(), 0);
        // and all of it is visible at SECRET
        let high = Clearance::Secret;
        assert_eq!(store.peer(&acme, &key(7), high).await.expect("peer").len(), 1);
        assert_eq!(store.endpoint_changes(&acme, &key(7), all, high).await.expect("changes").len(), 1);
        assert_eq!(store.stats(&acme, high).await.expect("stats").peers.stale, 1);
    }

    pub async fn no_read_crosses_the_organisation_boundary<S: ProjectionStore>(store: &S) {
        for name in ["acme", "acme2", "globex"] {
            store
                .write(Batch {
                    effects: vec![
                        Effect::PeerUpdated(record(name, "hub", 1, PeerStatus::Active, Clearance::Unclassified, T0)),
                        Effect::PeerUpdated(record(name, "hub", 2, PeerStatus::Stale, Clearance::Unclassified, T0)),
                        Effect::Alert(alert(name, 1, AlertState::Raised, T0, Clearance::Unclassified)),
                        Effect::HostUpdated(host_record(name, "hub", Clearance::Unclassified)),
                    ],
                    host_stats: vec![stats_row(
                        name,
                        "hub",
                        Clearance::Unclassified,
                        StatusCounts { active: 1, stale: 1, ..StatusCounts::default() },
                        10,
                    )],
                    ..Batch::default()
                })
                .await
                .expect("write");
        }
        let acme = org("acme");
        let top = Clearance::TopSecret;
        let peers = all_peers(store, &acme, &PeerFilter::default(), 1).await;
        assert_eq!(peers.len(), 2);
        assert!(peers.iter().all(|r| r.org_id == acme));
        assert!(store.peer(&acme, &key(1), top).await.expect("peer").iter().all(|r| r.org_id == acme));
        let history =
            store.history(&acme, &key(1), TimeRange::default(), top, &PageRequest::first(100)).await.expect("history");
        assert!(history.items.iter().all(|r| r.org_id == acme) && history.items.len() == 1);
        let alerts = store.alerts(&acme, &AlertFilter::default(), top, &PageRequest::first(100)).await.expect("alerts");
        assert!(alerts.items.iter().all(|r| r.alert.org_id == acme) && alerts.items.len() == 1);
        assert_eq!(store.hosts(&acme, top).await.expect("hosts").len(), 1);
        assert_eq!(store.stats(&acme, top).await.expect("stats").peers.total(), 2);
        // a cursor issued for another organisation is refused, not followed
        let globex_page =
            store.peers(&org("globex"), &PeerFilter::default(), top, &PageRequest::first(1)).await.expect("page");
        let foreign = PageRequest { first: 10, after: globex_page.next };
        assert!(matches!(
            store.peers(&acme, &PeerFilter::default(), top, &foreign).await,
            Err(StoreError::InvalidCursor)
        ));
        let globex_alerts =
            store.alerts(&org("globex"), &AlertFilter::default(), top, &PageRequest::first(1)).await.expect("alerts");
        assert!(globex_alerts.next.is_none());
    }

    pub async fn the_checkpoint_is_written_with_its_batch<S: ProjectionStore>(store: &S) {
        assert_eq!(store.checkpoint("wireguard.observations/0").await.expect("none"), None);
        let checkpoint =
            Checkpoint { partition: "wireguard.observations/0".into(), next_offset: 42, snapshot: vec![1, 2, 3] };
        let peer = record("acme", "hub", 1, PeerStatus::Active, Clearance::Unclassified, T0);
        let raised = alert("acme", 1, AlertState::Raised, T0, Clearance::Unclassified);
        let mut batch = peers_batch(vec![peer.clone()]);
        batch.effects.push(Effect::Alert(raised.clone()));
        store.write(Batch { checkpoint: Some(checkpoint.clone()), ..batch }).await.expect("write");
        assert_eq!(store.checkpoint("wireguard.observations/0").await.expect("checkpoint"), Some(checkpoint));
        assert_eq!(store.checkpoint("wireguard.observations/1").await.expect("other"), None);
        // the rows the checkpoint covers are there with it: the peer, its history row, the alert
        let top = Clearance::TopSecret;
        assert_eq!(store.peer(&org("acme"), &key(1), top).await.expect("peer"), vec![peer]);
        let range = TimeRange { from: T0 - 1, to: T0 + 1 };
        let history = store.history(&org("acme"), &key(1), range, top, &PageRequest::first(10)).await.expect("history");
        assert_eq!(history.items.iter().map(|row| row.observed_at).collect::<Vec<_>>(), vec![T0]);
        let alert = store.alert(&org("acme"), &raised.alert_id, top).await.expect("alert").expect("the alert");
        assert_eq!(alert.alert, raised);
    }

    /// Batches from a real fold over a synthetic fleet with an outage and an acknowledgement.
    pub fn folded_batches() -> Vec<Batch> {
        let mut fleet = Fleet::new(FleetSpec {
            org: org("acme"),
            hosts: 3,
            peers_per_host: 30,
            scan_interval_ms: 10_000,
            start: T0,
        });
        let mut state = FoldState::default();
        let mut batches = Vec::new();
        for scan in 0..20u64 {
            let mut events = Vec::new();
            fleet.next_scan(&mut events);
            let mut effects = Vec::new();
            for event in &events {
                state.apply(event, event.header().observed_at, &mut effects).expect("the fold accepts it");
            }
            let host_stats = ["gw-00000", "gw-00001", "gw-00002"]
                .iter()
                .flat_map(|host| state.host_stats(&org("acme"), &host.parse().expect("host")))
                .collect();
            let checkpoint =
                Checkpoint { partition: "p/0".into(), next_offset: scan, snapshot: scan.to_be_bytes().to_vec() };
            batches.push(Batch { effects, host_stats, checkpoint: Some(checkpoint) });
        }
        let stale = alert("acme", 3, AlertState::Raised, T0, Clearance::Restricted);
        batches[3].effects.push(Effect::Alert(stale.clone()));
        batches[5].effects.push(acknowledgement("acme", stale.alert_id, "op", T0 + 1));
        batches[6].effects.push(manifest("acme", "gw-00001", T0 + 2, 2));
        batches[9].effects.push(Effect::Alert(Alert {
            state: AlertState::Resolved,
            resolved_at: Some(T0 + 9),
            ..stale
        }));
        batches
    }

    /// Everything the reads of the contract return for the folded batches' organisation, in one
    /// text: what two stores holding the same projections must agree on, whatever their bytes.
    /// And how many history rows they hold.
    async fn every_read<S: ProjectionStore>(store: &S) -> (String, usize) {
        let (acme, top) = (org("acme"), Clearance::TopSecret);
        let mut out = String::new();
        let mut history_rows = 0;
        let mut peers = Vec::new();
        let mut request = PageRequest::first(7);
        loop {
            let page = store.peers(&acme, &PeerFilter::default(), top, &request).await.expect("peers");
            peers.extend(page.items);
            match page.next {
                Some(next) => request.after = Some(next),
                None => break,
            }
        }
        out.push_str(&format!("peers {peers:?}\n"));
        let keys: BTreeSet<PublicKey> = peers.iter().map(|peer| peer.public_key).collect();
        let everything = TimeRange { from: i64::MIN, to: i64::MAX };
        for key in &keys {
            out.push_str(&format!("peer {key} {:?}\n", store.peer(&acme, key, top).await.expect("peer")));
            let mut request = PageRequest::first(9);
            loop {
                let page = store.history(&acme, key, everything, top, &request).await.expect("history");
                history_rows += page.items.len();
                out.push_str(&format!("history {key} {:?}\n", page.items));
                match page.next {
                    Some(next) => request.after = Some(next),
                    None => break,
                }
            }
            let moves = store.endpoint_changes(&acme, key, everything, top).await.expect("moves");
            out.push_str(&format!("moves {key} {moves:?}\n"));
        }
        let alerts = store.alerts(&acme, &AlertFilter::default(), top, &PageRequest::first(500)).await.expect("alerts");
        for row in &alerts.items {
            let by_id = store.alert(&acme, &row.alert.alert_id, top).await.expect("alert");
            out.push_str(&format!("alert {row:?} {by_id:?}\n"));
        }
        out.push_str(&format!("manifests {:?}\n", store.manifests(&acme, top).await.expect("manifests")));
        out.push_str(&format!("hosts {:?}\n", store.hosts(&acme, top).await.expect("hosts")));
        for clearance in Clearance::ALL {
            out.push_str(&format!("stats {clearance:?} {:?}\n", store.stats(&acme, clearance).await.expect("stats")));
        }
        out.push_str(&format!("checkpoint {:?}\n", store.checkpoint("p/0").await.expect("checkpoint")));
        (out, history_rows)
    }

    pub async fn replaying_batches_gives_identical_tables<S: ProjectionStore>(store: &S) {
        for batch in folded_batches() {
            store.write(batch.clone()).await.expect("write");
            store.write(batch).await.expect("write again");
        }
        let (twice, history_rows) = every_read(store).await;
        assert_eq!(history_rows, 3 * 30 * 20, "a history row per peer and scan");
        assert!(twice.contains("Resolved") && twice.contains("acknowledged_by: Some"), "the alert's story is there");
        // the embedded reference, written once
        let directory = tempfile::tempdir().expect("tempdir");
        let reference = argus_store::EmbeddedStore::open(&directory.path().join("reference-store")).expect("open");
        for batch in folded_batches() {
            reference.write(batch).await.expect("write");
        }
        let (once, _) = every_read(&reference).await;
        if twice != once {
            let differing = twice.lines().zip(once.lines()).find(|(left, right)| left != right);
            panic!("the same batches read differently (written twice, then once): {differing:?}");
        }
    }
}

/// A store to run the checks on, and whatever keeps it alive.
struct Opened<S> {
    store: S,
    _directory: Option<tempfile::TempDir>,
}

async fn open_embedded() -> Option<Opened<argus_store::EmbeddedStore>> {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = argus_store::EmbeddedStore::open(&directory.path().join("argus-store")).expect("open");
    Some(Opened { store, _directory: Some(directory) })
}

async fn open_scylla() -> Option<Opened<argus_store::scylla::ScyllaStore>> {
    let uri = std::env::var("SCYLLA_URI").ok()?;
    let keyspace = format!("argus_contract_{}", std::process::id() ^ (rand::random::<u32>() >> 1));
    let store = argus_store::scylla::ScyllaStore::connect(&uri, &keyspace, 1).await.expect("connect to SCYLLA_URI");
    Some(Opened { store, _directory: None })
}

macro_rules! contract {
    ($store:ident, $open:ident, $ignore:meta, [$($check:ident),* $(,)?]) => {
        mod $store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[$ignore]
                async fn $check() {
                    let opened = super::$open().await.expect(concat!(stringify!($store), " store is configured"));
                    super::checks::$check(&opened.store).await;
                }
            )*
        }
    };
}

macro_rules! every_check {
    ($store:ident, $open:ident, $ignore:meta) => {
        contract!(
            $store,
            $open,
            $ignore,
            [
                peers_are_ordered_and_paged_without_gaps_or_repeats,
                pagination_is_stable_while_writes_happen,
                peers_filter_by_host_interface_status_stale_and_text,
                a_key_is_found_on_every_gateway_that_lists_it,
                history_covers_a_time_range_and_pages,
                history_merges_every_gateway_in_time_order,
                alerts_raise_resolve_acknowledge_and_filter,
                manifests_are_replaced_whole_per_interface,
                silences_are_listed_as_last_set_within_scope,
                hosts_and_statistics_come_from_their_rows,
                clearance_hides_rows_in_every_read,
                no_read_crosses_the_organisation_boundary,
                the_checkpoint_is_written_with_its_batch,
                replaying_batches_gives_identical_tables,
            ]
        );
    };
}

every_check!(embedded, open_embedded, cfg_attr(any(), ignore));
every_check!(
    scylla,
    open_scylla,
    ignore = "needs SCYLLA_URI: no ScyllaDB server can be installed on this build machine (make test runs it when SCYLLA_URI is set)"
);
