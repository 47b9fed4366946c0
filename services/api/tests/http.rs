//! Every query, mutation and the subscription over real HTTP, against the real processor folding
//! what collectors (and the API itself) publish to the embedded log.

mod common;

use std::time::Duration;

use argus_api::auth::Role;
use common::*;
use serde_json::{Value, json};

const PEER_FIELDS: &str = "publicKey host interface status endpoint allowedIps latestHandshake handshakeAgeSeconds \
    transferRx transferTx rxBytesPerSecond clearance displayName observedAt";

fn iso(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis).expect("time").to_rfc3339()
}

fn b64(n: u8) -> String {
    key(n).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_page_with_stable_cursors_and_filter() {
    let mut api = Api::start().await;
    api.seed().await;
    let admin = token("acme", "TOP_SECRET", Role::Viewer);
    let query = format!(
        "query($after: String, $filter: WireguardPeerFilter) {{ wireguardPeers(first: 2, after: $after, filter: $filter) {{ \
         edges {{ cursor node {{ {PEER_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
    );
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = api.data(&admin, &query, json!({ "after": after })).await;
        let connection = &data["wireguardPeers"];
        for edge in connection["edges"].as_array().expect("edges") {
            seen.push((
                edge["node"]["host"].as_str().expect("host").to_owned(),
                edge["node"]["publicKey"].as_str().expect("key").to_owned(),
            ));
        }
        if !connection["pageInfo"]["hasNextPage"].as_bool().expect("bool") {
            break;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
    let expected: Vec<(String, String)> = [("gw-1", 1), ("gw-1", 2), ("gw-1", 4), ("gw-2", 3)]
        .iter()
        .map(|(host, n)| (host.to_string(), b64(*n)))
        .collect();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "every acme peer once, in (host, key) order, across pages");

    let stale = api.data(&admin, &query, json!({ "filter": { "stale": true } })).await;
    let stale_keys: Vec<&str> = stale["wireguardPeers"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"]["publicKey"].as_str().expect("key"))
        .collect();
    assert_eq!(stale_keys.len(), 2, "peers 2 and 4 are stale: {stale}");
    let text = api.data(&admin, &query, json!({ "filter": { "text": "203.0.113" } })).await;
    let node = &text["wireguardPeers"]["edges"][0]["node"];
    assert_eq!(node["publicKey"], b64(3), "text search finds the roamed endpoint");
    assert_eq!(node["transferRx"], 7_000, "totals count from first sight");
    assert_eq!(node["status"], "ACTIVE");
    assert_eq!(node["allowedIps"], json!(["10.3.0.0/24"]));
    let host = api.data(&admin, &query, json!({ "filter": { "host": "gw-2", "interface": "wg0" } })).await;
    assert_eq!(host["wireguardPeers"]["edges"].as_array().expect("edges").len(), 1);
}

/// Times `wireguardPeers` was answered directly (`/metrics`).
async fn direct_answers(api: &Api) -> u64 {
    let metrics = api.http.get(api.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("argus_api_direct_answers_total "))
        .map_or(0, |count| count.trim().parse().expect("a count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_query_answered_directly_is_the_answer_async_graphql_gives() {
    let mut api = Api::start().await;
    api.seed().await;
    let admin = token("acme", "TOP_SECRET", Role::Viewer);
    let viewer = token("acme", "UNCLASSIFIED", Role::Viewer);
    let globex = token("globex", "TOP_SECRET", Role::Viewer);
    let first_page = api.data(&admin, "{ wireguardPeers(first: 1) { pageInfo { endCursor } } }", json!({})).await;
    let after = first_page["wireguardPeers"]["pageInfo"]["endCursor"].as_str().expect("cursor").to_owned();
    let every_field = "publicKey host interface status endpoint allowedIps latestHandshake handshakeAgeSeconds \
        transferRx transferTx rxBytesPerSecond txBytesPerSecond persistentKeepalive source clearance displayName \
        owner tags observedAt";
    let queries = [
        format!("{{ wireguardPeers(first: 100) {{ edges {{ cursor node {{ {every_field} }} }} }} }}"),
        format!(
            "query Page {{ list: wireguardPeers(first: 2, after: \"{after}\") {{ info: pageInfo {{ hasPreviousPage \
             hasNextPage startCursor endCursor }} nodes {{ key: publicKey rx: transferRx }} edges {{ c: cursor }} }} }}"
        ),
        "{ wireguardPeers(filter: { host: \"gw-1\", stale: true }) { edges { node { publicKey status } } } }".into(),
        "{ wireguardPeers(filter: { text: \"no such peer\" }) { pageInfo { startCursor endCursor hasNextPage } \
         edges { cursor } } }"
            .into(),
        "{ wireguardPeers(first: 1) { pageInfo { hasNextPage hasPreviousPage } } }".into(),
        "{ wireguardStats { peers { total neverConnected active stale removed } transferRx transferTx \
         rxBytesPerSecond txBytesPerSecond hosts { host peers { total neverConnected active stale removed } \
         transferRx transferTx rxBytesPerSecond txBytesPerSecond } } }"
            .into(),
        "query Stats { s: wireguardStats { gateways: hosts { name: host p: peers { stale } } p: peers { total } } }"
            .into(),
    ];
    for query in &queries {
        for caller in [&admin, &viewer, &globex] {
            // async-graphql's executor answers a request with variables, whatever its text
            let executed = api.graphql_text_with_variables(caller, query, json!({ "unused": 1 })).await;
            // the plain request is answered directly once the text has been executed on the
            // server thread that takes it: ask until one is
            let mut compared = false;
            for _ in 0..20 {
                let before = direct_answers(&api).await;
                let answer = api.graphql_text(caller, query).await;
                if direct_answers(&api).await > before {
                    assert_eq!(answer, executed, "direct answer of {query}");
                    compared = true;
                    break;
                }
                assert_eq!(answer, executed, "executed answer of {query}");
            }
            // an error (a cursor of another organisation) is always async-graphql's answer
            let refused = executed.starts_with(r#"{"data":null,"errors""#);
            assert!(compared != refused, "{query} answered directly: {compared}, refused: {executed}");
        }
    }
    let hidden = api.graphql_text(&viewer, &queries[0]).await;
    assert!(!hidden.contains(&b64(2)), "peer 2 is SECRET: {hidden}");
    let other_org = api.graphql_text(&globex, &queries[0]).await;
    assert!(other_org.contains(&b64(9)) && !other_org.contains(&b64(1)), "{other_org}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_stats_history_hosts_and_roaming() {
    let mut api = Api::start().await;
    api.seed().await;
    let viewer = token("acme", "TOP_SECRET", Role::Viewer);
    let peer = api
        .data(
            &viewer,
            "query($k: String!) { wireguardPeer(publicKey: $k) { host status transferRx } }",
            json!({ "k": b64(1) }),
        )
        .await;
    assert_eq!(peer["wireguardPeer"], json!([{ "host": "gw-1", "status": "ACTIVE", "transferRx": 50_000 }]));

    let stats = api
        .data(
            &viewer,
            "{ wireguardStats { peers { total active stale } transferRx hosts { host peers { total } } } }",
            json!({}),
        )
        .await;
    let stats = &stats["wireguardStats"];
    assert_eq!(stats["peers"], json!({ "total": 4, "active": 2, "stale": 2 }));
    assert_eq!(stats["transferRx"], 50_000 + 7_000);
    assert_eq!(
        stats["hosts"],
        json!([{ "host": "gw-1", "peers": { "total": 3 } }, { "host": "gw-2", "peers": { "total": 1 } }])
    );

    let history_query = "query($k: String!, $from: DateTime!, $to: DateTime!, $after: String) { \
        wireguardPeerHistory(publicKey: $k, from: $from, to: $to, first: 1, after: $after) { \
        edges { node { observedAt rxDeltaBytes transferRx status endpoint } } pageInfo { hasNextPage endCursor } } }";
    let range = json!({ "k": b64(1), "from": iso(api.t0), "to": iso(api.t0 + 3_600 * SECOND) });
    let first = api.data(&viewer, history_query, range.clone()).await;
    let first = &first["wireguardPeerHistory"];
    assert_eq!(first["edges"][0]["node"]["rxDeltaBytes"], 0);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let mut next = range.clone();
    next["after"] = first["pageInfo"]["endCursor"].clone();
    let second = api.data(&viewer, history_query, next).await;
    let second = &second["wireguardPeerHistory"];
    assert_eq!(second["edges"][0]["node"]["rxDeltaBytes"], 50_000);
    assert_eq!(second["pageInfo"]["hasNextPage"], false);

    let hosts = api.data(&viewer, "{ wireguardHosts { host interface status listenPort peerCount } }", json!({})).await;
    assert_eq!(
        hosts["wireguardHosts"],
        json!([
            { "host": "gw-1", "interface": "wg0", "status": "ALIVE", "listenPort": 51820, "peerCount": 2 },
            { "host": "gw-2", "interface": "wg0", "status": "ALIVE", "listenPort": 51820, "peerCount": 2 }
        ])
    );

    let moves = api
        .data(
            &viewer,
            "query($k: String!, $from: DateTime!, $to: DateTime!) { wireguardEndpointChanges(publicKey: $k, from: $from, to: $to) { previousEndpoint endpoint newNetwork } }",
            json!({ "k": b64(3), "from": iso(api.t0), "to": iso(api.t0 + 3_600 * SECOND) }),
        )
        .await;
    assert_eq!(
        moves["wireguardEndpointChanges"],
        json!([{ "previousEndpoint": "198.51.100.3:51820", "endpoint": "203.0.113.3:40000", "newNetwork": true }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_active_peers_and_config_export() {
    let mut api = Api::start().await;
    api.seed().await;
    let viewer = token("acme", "TOP_SECRET", Role::Viewer);
    let alerts = api
        .data(
            &viewer,
            "{ wireguardAlerts(filter: { state: RAISED, kind: PEER_STALE }) { edges { node { kind state host publicKey probableCause evidence { name value } } } } }",
            json!({}),
        )
        .await;
    let mut keys: Vec<String> = alerts["wireguardAlerts"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"]["publicKey"].as_str().expect("key").to_owned())
        .collect();
    keys.sort();
    let mut expected = vec![b64(2), b64(4)];
    expected.sort();
    assert_eq!(keys, expected);
    let first = &alerts["wireguardAlerts"]["edges"][0]["node"];
    assert!(first["evidence"].as_array().expect("evidence").iter().any(|item| item["name"] == "handshake_age_s"));

    // the shift: peers 1 and 3 moved traffic and handshook after t0 + 200 s; 2 and 4 did neither
    let active = api
        .data(
            &viewer,
            "query($from: DateTime!, $to: DateTime!) { wireguardActivePeers(from: $from, to: $to) { edges { node { publicKey host rxBytes } } pageInfo { hasNextPage } } }",
            json!({ "from": iso(api.t0 + 200 * SECOND), "to": iso(api.t0 + 500 * SECOND) }),
        )
        .await;
    assert_eq!(
        active["wireguardActivePeers"]["edges"],
        json!([
            { "node": { "publicKey": b64(1), "host": "gw-1", "rxBytes": 50_000 } },
            { "node": { "publicKey": b64(3), "host": "gw-2", "rxBytes": 7_000 } }
        ])
    );
    assert_eq!(active["wireguardActivePeers"]["pageInfo"]["hasNextPage"], false);

    let export = api.data(&viewer, r#"{ wireguardConfigExport(host: "gw-1", interface: "wg0") }"#, json!({})).await;
    let text = export["wireguardConfigExport"].as_str().expect("text");
    assert!(text.contains("[Interface]\n"), "{text}");
    assert!(text.contains("ListenPort = 51820"));
    assert!(!text.contains("PrivateKey ="), "never a private key line");
    assert_eq!(text.matches("[Peer]").count(), 3);
    assert!(text.contains(&format!(
        "PublicKey = {}\nAllowedIPs = 10.1.0.0/24\nEndpoint = 198.51.100.1:51820\nPersistentKeepalive = 25",
        b64(1)
    )));
    let (message, code) =
        api.error(&viewer, r#"{ wireguardConfigExport(host: "gw-9", interface: "wg0") }"#, json!({})).await;
    assert_eq!((message.as_str(), code.as_str()), ("no interface wg0 on host gw-9", "NOT_FOUND"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_manifest_and_acknowledge_go_through_the_log() {
    let mut api = Api::start().await;
    api.seed().await;
    let operator = token("acme", "SECRET", Role::Operator);
    let sync = "mutation($input: SyncWireguardPeerInput!) { syncWireguardPeer(input: $input) { eventId peer { publicKey host status transferRx clearance displayName source } } }";
    let input = json!({ "input": {
        "host": "gw-3", "interface": "wg1", "publicKey": b64(5), "endpoint": "[2001:db8::5]:51820",
        "allowedIps": ["10.5.0.0/24", "fd00:5::/64"], "latestHandshake": iso(now_millis() - 10 * SECOND),
        "transferRx": 1234, "transferTx": 99, "persistentKeepalive": 25, "clearance": "RESTRICTED",
        "displayName": "synced-site", "tags": ["api"]
    }});
    let synced = api.data(&operator, sync, input).await;
    let synced = &synced["syncWireguardPeer"];
    assert!(synced["eventId"].as_str().expect("id").starts_with("wireguard.observations/"));
    assert_eq!(
        synced["peer"],
        json!({ "publicKey": b64(5), "host": "gw-3", "status": "ACTIVE", "transferRx": 0, "clearance": "RESTRICTED", "displayName": "synced-site", "source": "API" }),
        "projected by the processor; totals count from first sight"
    );

    // rotation: expect key 6 on gw-1 where key 1 (retired) is still live; key 4 is expected and live
    let manifest = "mutation($input: RotationManifestInput!) { setRotationManifest(input: $input) { eventId } }";
    let entries = json!({ "input": { "host": "gw-1", "interface": "wg0", "entries": [
        { "label": "site-01", "expectedKey": b64(6), "retiredKeys": [b64(1)] },
        { "label": "site-04", "expectedKey": b64(4) }
    ]}});
    api.data(&operator, manifest, entries).await;
    let status_query = "{ wireguardRotationStatus { host interface label expectedKey state retiredKeysLive } }";
    let mut status = Value::Null;
    for _ in 0..250 {
        status = api.data(&operator, status_query, json!({})).await;
        if status["wireguardRotationStatus"].as_array().is_some_and(|entries| !entries.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        status["wireguardRotationStatus"],
        json!([
            { "host": "gw-1", "interface": "wg0", "label": "site-01", "expectedKey": b64(6), "state": "PENDING", "retiredKeysLive": [b64(1)] },
            { "host": "gw-1", "interface": "wg0", "label": "site-04", "expectedKey": b64(4), "state": "ROTATED", "retiredKeysLive": [] }
        ])
    );

    // acknowledge peer 4's stale alert
    let alerts = api
        .data(
            &operator,
            "{ wireguardAlerts(filter: { kind: PEER_STALE }) { edges { node { alertId publicKey } } } }",
            json!({}),
        )
        .await;
    let alert_id = alerts["wireguardAlerts"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .find(|edge| edge["node"]["publicKey"] == b64(4))
        .map(|edge| edge["node"]["alertId"].clone())
        .expect("peer 4 alert");
    let acknowledge = "mutation($id: String!) { acknowledgeAlert(alertId: $id) { eventId } }";
    api.data(&operator, acknowledge, json!({ "id": alert_id })).await;
    let mut acknowledged_by = Value::Null;
    for _ in 0..250 {
        let alerts = api
            .data(&operator, "{ wireguardAlerts(filter: { kind: PEER_STALE }) { edges { node { alertId acknowledgedBy acknowledgedAt } } } }", json!({}))
            .await;
        acknowledged_by = alerts["wireguardAlerts"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .find(|edge| edge["node"]["alertId"] == alert_id)
            .map(|edge| edge["node"]["acknowledgedBy"].clone())
            .expect("alert");
        if !acknowledged_by.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(acknowledged_by, "acme-operator");
    let (message, code) =
        api.error(&operator, acknowledge, json!({ "id": "8f1f1a1e-0000-5000-8000-000000000000" })).await;
    assert_eq!(code, "NOT_FOUND", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_alerts_arrive_scoped_by_organisation_and_clearance() {
    let mut api = Api::start().await;
    let query = "subscription { wireguardAlerts { kind state host publicKey clearance } }";
    let mut unclassified = subscribe(&api, &token("acme", "UNCLASSIFIED", Role::Viewer), query).await;
    let mut secret = subscribe(&api, &token("acme", "SECRET", Role::Viewer), query).await;
    let mut globex = subscribe(&api, &token("globex", "TOP_SECRET", Role::Viewer), query).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.seed().await;
    // each subscriber's stale peers, and the clearances of its incidents (gw-1's SECRET peer 2 and
    // UNCLASSIFIED peer 4 are quiet at once: an uplink to peer 2's readers, who see both; peer 4's
    // readers see no other quiet peer, so nothing tells them of one)
    async fn received(subscription: &mut Socket) -> (Vec<String>, Vec<String>) {
        let (mut keys, mut incidents) = (Vec::new(), Vec::new());
        let mut wait = Duration::from_secs(10);
        while let Some(event) = next_event(subscription, wait).await {
            wait = Duration::from_millis(1_500);
            let alert = &event["data"]["wireguardAlerts"];
            match alert["kind"].as_str() {
                Some("PEER_STALE") => keys.push(alert["publicKey"].as_str().expect("key").to_owned()),
                Some("INCIDENT") => incidents.push(alert["clearance"].as_str().expect("clearance").to_owned()),
                _ => panic!("an alert the seed does not raise: {event}"),
            }
        }
        keys.sort();
        incidents.sort();
        (keys, incidents)
    }
    // acme UNCLASSIFIED sees peer 4's alert only (peer 2 is SECRET, peer 9 is globex's), and no
    // incident: the other quiet peer is above it
    assert_eq!(received(&mut unclassified).await, (vec![b64(4)], vec![]));
    let mut expected = vec![b64(2), b64(4)];
    expected.sort();
    assert_eq!(received(&mut secret).await, (expected, vec!["SECRET".to_owned()]));
    assert_eq!(received(&mut globex).await, (vec![b64(9)], vec![]), "a lone quiet peer is no incident");
}

/// An operator silences one site for maintenance: its alert is recorded and listed as silenced,
/// the live feed leaves it out unless asked; a silence of a peer or gateway the operator may not
/// see is refused as unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_marks_its_peers_alerts_and_the_live_feed_leaves_them_out() {
    let mut api = Api::start().await;
    api.seed().await;
    let operator = token("acme", "UNCLASSIFIED", Role::Operator);
    let set = "mutation($input: WireguardSilenceInput!) { setWireguardSilence(input: $input) { silenceId eventId } }";
    let now = chrono::Utc::now().timestamp_millis();
    let silence = |host: &str, interface: Option<&str>, key: Option<String>, ends_at: i64| {
        json!({ "input": { "host": host, "interface": interface, "publicKey": key,
            "startsAt": iso(api.t0 - 3_600 * SECOND), "endsAt": iso(ends_at), "reason": "generator swap" } })
    };
    let (message, code) = api
        .error(&token("acme", "UNCLASSIFIED", Role::Viewer), set, silence("gw-1", Some("wg0"), Some(b64(1)), now))
        .await;
    assert_eq!(code, "insufficient_scope", "{message}");
    for (input, field, expected_code) in [
        (silence("gw-9", None, None, now), "input.host: no gateway gw-9", "NOT_FOUND"),
        (silence("gw-1", Some("wg7"), None, now), "input.interface: no interface gw-1/wg7", "NOT_FOUND"),
        // peer 2 is SECRET: above this operator, so unknown to them
        (silence("gw-1", Some("wg0"), Some(b64(2)), now), "input.publicKey: no peer", "NOT_FOUND"),
        (silence("gw-1", None, Some(b64(1)), now), "input.interface: is needed with input.publicKey", "BAD_USER_INPUT"),
        (
            silence("gw-1", None, None, now + 40 * 86_400_000),
            "input.endsAt: a silence lasts at most 31 days",
            "BAD_USER_INPUT",
        ),
        (silence("gw-1", Some("wg0"), Some("not-a-key".into()), now), "input.publicKey:", "BAD_USER_INPUT"),
    ] {
        let (message, code) = api.error(&operator, set, input.clone()).await;
        assert_eq!(code, expected_code, "{input}: {message}");
        assert!(message.starts_with(field), "{input}: {message}");
    }
    let set = api.data(&operator, set, silence("gw-1", Some("wg0"), Some(b64(1)), now + 3_600 * SECOND)).await;
    let silence_id = set["setWireguardSilence"]["silenceId"].clone();
    assert!(silence_id.as_str().is_some_and(|id| id.len() == 36), "{set}");
    // listed once the processor has it, to its organisation only
    let list = "{ wireguardSilences { silenceId host interface publicKey reason author clearance } }";
    let listed = loop {
        let listed = api.data(&operator, list, json!({})).await;
        if listed["wireguardSilences"].as_array().is_some_and(|silences| !silences.is_empty()) {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let expected = json!([{ "silenceId": silence_id, "host": "gw-1", "interface": "wg0", "publicKey": b64(1),
        "reason": "generator swap", "author": "acme-operator", "clearance": "UNCLASSIFIED" }]);
    assert_eq!(listed["wireguardSilences"], expected);
    let globex = api.data(&token("globex", "TOP_SECRET", Role::Viewer), list, json!({})).await;
    assert_eq!(globex["wireguardSilences"], json!([]));

    let query = "subscription($all: Boolean) { wireguardAlerts(includeSilenced: $all) { kind publicKey silenced } }";
    let viewer = token("acme", "UNCLASSIFIED", Role::Viewer);
    let mut notified = subscribe_with(&api, &viewer, query, json!({ "all": false })).await;
    let mut recorded = subscribe_with(&api, &viewer, query, json!({ "all": true })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // site 1 goes quiet too, inside its silence
    let t2 = api.t0 + 800 * SECOND;
    api.observe(
        "acme",
        "gw-1",
        1,
        argus_core::Clearance::Unclassified,
        t2,
        api.t0 - 5 * SECOND,
        60_000,
        "198.51.100.1:51820",
    )
    .await;
    api.wait_for_peer("acme", 1, t2).await;
    // with peer 4 quiet too, two sites of one level share an uplink incident, which no silence
    // covers: only the peers' alerts are of this test
    async fn next_peer_alert(subscription: &mut Socket, wait: Duration) -> Option<Value> {
        while let Some(event) = next_event(subscription, wait).await {
            if event["data"]["wireguardAlerts"]["kind"] == "PEER_STALE" {
                return Some(event["data"]["wireguardAlerts"].clone());
            }
        }
        None
    }
    let alert = next_peer_alert(&mut recorded, Duration::from_secs(10)).await.expect("the recorded alert");
    assert_eq!(alert, json!({ "kind": "PEER_STALE", "publicKey": b64(1), "silenced": true }));
    assert_eq!(next_peer_alert(&mut notified, Duration::from_millis(1_500)).await, None, "not notified");
    let listed = api
        .data(
            &viewer,
            "{ wireguardAlerts(filter: { silenced: true }) { edges { node { publicKey silenced } } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["wireguardAlerts"]["edges"], json!([{ "node": { "publicKey": b64(1), "silenced": true } }]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_graphiql() {
    let api = Api::start().await;
    let get = |path: &str| api.http.get(api.url(path)).send();
    assert_eq!(get("/healthz").await.expect("healthz").status(), 200);
    assert_eq!(get("/readyz").await.expect("readyz").status(), 200);
    api.data(&token("acme", "SECRET", Role::Viewer), "{ wireguardHosts { host } }", json!({})).await;
    let metrics = get("/metrics").await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("argus_api_requests_total"), "{metrics}");
    let graphiql = get("/graphql").await.expect("graphiql").text().await.expect("text");
    assert!(graphiql.to_lowercase().contains("graphiql"));
}
