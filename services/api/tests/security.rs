//! Authentication, organisation scoping, clearance hiding, query limits and input validation,
//! all over real HTTP.

mod common;

use argus_api::auth::{Claims, Role, Secret, mint_hs256};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn b64(n: u8) -> String {
    key(n).to_string()
}

fn iso(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis).expect("time").to_rfc3339()
}

fn claims(exp: u64) -> Claims {
    Claims {
        sub: "mallory".into(),
        org: "acme".into(),
        clearance: "TOP_SECRET".into(),
        role: Role::Admin,
        exp,
        iat: None,
    }
}

/// A token with any header, the given claims and a junk signature.
fn forged_with_header(header: Value) -> String {
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let payload = serde_json::to_value(claims(jsonwebtoken::get_current_timestamp() + 600)).expect("claims");
    format!("{}.{}.{}", encode(&header), encode(&payload), if header["alg"] == "none" { "" } else { "c2ln" })
}

const HOSTS: &str = "{ wireguardHosts { host } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_rfc_6750_refusals() {
    let api = Api::start().await;
    let (status, challenge, body) = api.graphql(None, HOSTS, json!({})).await;
    assert_eq!((status, challenge.as_deref()), (401, Some(r#"Bearer realm="argus""#)));
    assert_eq!(body["errors"][0]["extensions"]["code"], "unauthenticated");

    let expired = mint_hs256(&Secret::new(SECRET), &claims(1_000_000)).expect("mint");
    let wrong_key =
        mint_hs256(&Secret::new("another-secret-thirty-two-bytes-long!!"), &claims(u64::MAX / 2)).expect("mint");
    let unsigned = forged_with_header(json!({ "alg": "none", "typ": "JWT" }));
    let other_algorithm = forged_with_header(json!({ "alg": "RS256", "typ": "JWT" }));
    for (token, reason) in [
        (expired.as_str(), "token has expired"),
        (wrong_key.as_str(), "token signature does not verify"),
        (unsigned.as_str(), "token is not a signed JWT"),
        (other_algorithm.as_str(), "tokens signed with RS256 are not accepted"),
        ("not-a-jwt", "token is not a signed JWT"),
    ] {
        let (status, challenge, body) = api.graphql(Some(token), HOSTS, json!({})).await;
        assert_eq!(status, 401, "{reason}: {body}");
        let challenge = challenge.expect("WWW-Authenticate");
        assert!(
            challenge.starts_with(r#"Bearer realm="argus", error="invalid_token", error_description=""#),
            "{challenge}"
        );
        assert!(challenge.contains(reason), "{challenge} should say {reason}");
        assert!(body.get("data").is_none(), "nothing ran");
    }

    let response = api
        .http
        .post(api.url("/graphql"))
        .header("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")
        .json(&json!({ "query": HOSTS }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    assert!(response.headers()["www-authenticate"].to_str().expect("ascii").contains(r#"error="invalid_request""#));

    // a valid viewer token may read but not write
    let viewer = token("acme", "SECRET", Role::Viewer);
    let mutation =
        r#"mutation { setRotationManifest(input: { host: "gw-1", interface: "wg0", entries: [] }) { eventId } }"#;
    let (status, challenge, body) = api.graphql(Some(&viewer), mutation, json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(challenge.expect("challenge").contains(r#"error="insufficient_scope""#));
    assert_eq!(body["errors"][0]["extensions"]["code"], "insufficient_scope");

    // a websocket upgrade with a bad token is refused before it upgrades
    let response = api
        .http
        .get(api.url("/graphql/ws"))
        .header("authorization", format!("Bearer {expired}"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", "graphql-transport-ws")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
}

/// A token signed with a fixture key (`tests/fixtures`), with any claims and `kid`.
fn signed(algorithm: jsonwebtoken::Algorithm, key_file: &str, kid: Option<&str>, claims: Value) -> String {
    let pem = std::fs::read(format!("{}/tests/fixtures/{key_file}", env!("CARGO_MANIFEST_DIR"))).expect("fixture");
    let key = match algorithm {
        jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(&pem),
        _ => jsonwebtoken::EncodingKey::from_ec_pem(&pem),
    }
    .expect("fixture key");
    let mut header = jsonwebtoken::Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

fn public_key(algorithm: &str, file: &str, key_id: Option<&str>) -> argus_api::auth::PublicKeyConfig {
    let pem = std::fs::read_to_string(format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"))).expect("pem");
    argus_api::auth::PublicKeyConfig { algorithm: algorithm.into(), key_id: key_id.map(str::to_owned), pem }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_claims_are_required_nbf_is_enforced_and_rotated_keys_verify() {
    use jsonwebtoken::Algorithm::{ES256, RS256};
    let auth = argus_api::auth::AuthConfig {
        public_keys: vec![
            public_key("RS256", "rsa-1.pub", None),
            public_key("RS256", "rsa-2.pub", None),
            public_key("ES256", "ec-1.pub", Some("ec-old")),
            public_key("ES256", "ec-2.pub", Some("ec-new")),
        ],
        issuer: Some("https://idp.example".into()),
        audience: Some("argus".into()),
        ..argus_api::auth::AuthConfig::default()
    };
    let api = Api::start_with_auth(argus_api::ApiConfig::default(), auth).await;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = |extra: Value| {
        let mut claims = json!({
            "sub": "noc-1", "org": "acme", "clearance": "SECRET", "role": "viewer", "exp": now + 600,
            "iss": "https://idp.example", "aud": "argus",
        });
        for (name, value) in extra.as_object().expect("object") {
            if value.is_null() {
                claims.as_object_mut().expect("object").remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    };
    let accepted = |token: String| {
        let api = &api;
        async move {
            let (status, _, body) = api.graphql(Some(&token), HOSTS, json!({})).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    // either RSA key verifies a token without kid (rotation); a kid picks its key
    accepted(signed(RS256, "rsa-1.key", None, claims(json!({})))).await;
    accepted(signed(RS256, "rsa-2.key", None, claims(json!({})))).await;
    accepted(signed(ES256, "ec-1.key", Some("ec-old"), claims(json!({})))).await;
    accepted(signed(ES256, "ec-2.key", Some("ec-new"), claims(json!({})))).await;
    accepted(signed(ES256, "ec-2.key", None, claims(json!({})))).await;
    // nbf in the past, or within the leeway, is fine
    accepted(signed(RS256, "rsa-1.key", None, claims(json!({ "nbf": now + 10 })))).await;

    for (token, reason) in [
        (signed(RS256, "rsa-1.key", None, claims(json!({ "iss": null }))), "token lacks the iss claim"),
        (signed(RS256, "rsa-2.key", None, claims(json!({ "aud": null }))), "token lacks the aud claim"),
        (signed(ES256, "ec-1.key", None, claims(json!({ "iss": "https://evil.example" }))), "issuer is not accepted"),
        (signed(ES256, "ec-2.key", None, claims(json!({ "aud": "other" }))), "audience is not accepted"),
        (signed(RS256, "rsa-2.key", None, claims(json!({ "nbf": now + 600 }))), "token is not valid yet"),
        (signed(ES256, "ec-1.key", Some("ec-new"), claims(json!({}))), "token signature does not verify"),
        (signed(ES256, "ec-1.key", Some("ec-unknown"), claims(json!({}))), "no ES256 key has the id"),
    ] {
        let (status, challenge, body) = api.graphql(Some(&token), HOSTS, json!({})).await;
        assert_eq!(status, 401, "{reason}: {body}");
        let challenge = challenge.expect("WWW-Authenticate");
        assert!(challenge.contains(r#"error="invalid_token""#) && challenge.contains(reason), "{challenge}: {reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_argument_reaches_another_organisation() {
    let mut api = Api::start().await;
    api.seed().await;
    let acme = token("acme", "TOP_SECRET", Role::Operator);
    let globex = token("globex", "TOP_SECRET", Role::Operator);
    let range = json!({ "from": iso(api.t0 - 1), "to": iso(api.t0 + 3_600 * SECOND) });

    let peers = api.data(&globex, "{ wireguardPeers { edges { node { publicKey } } } }", json!({})).await;
    assert_eq!(peers["wireguardPeers"]["edges"], json!([{ "node": { "publicKey": b64(9) } }]));
    for n in [1, 2, 3, 4] {
        let lookup = api
            .data(&globex, "query($k: String!) { wireguardPeer(publicKey: $k) { host } }", json!({ "k": b64(n) }))
            .await;
        assert_eq!(lookup["wireguardPeer"], json!([]), "acme key {n} is not globex's");
        let mut variables = range.clone();
        variables["k"] = json!(b64(n));
        let history = api
            .data(
                &globex,
                "query($k: String!, $from: DateTime!, $to: DateTime!) { wireguardPeerHistory(publicKey: $k, from: $from, to: $to) { edges { node { host } } } \
                 wireguardEndpointChanges(publicKey: $k, from: $from, to: $to) { endpoint } }",
                variables,
            )
            .await;
        assert_eq!(history["wireguardPeerHistory"]["edges"], json!([]));
        assert_eq!(history["wireguardEndpointChanges"], json!([]));
    }
    let stats = api.data(&globex, "{ wireguardStats { peers { total } hosts { host } } }", json!({})).await;
    assert_eq!(stats["wireguardStats"], json!({ "peers": { "total": 1 }, "hosts": [{ "host": "gw-1" }] }));
    let alerts = api.data(&globex, "{ wireguardAlerts { edges { node { publicKey } } } }", json!({})).await;
    assert_eq!(alerts["wireguardAlerts"]["edges"], json!([{ "node": { "publicKey": b64(9) } }]));
    let hosts = api.data(&globex, HOSTS, json!({})).await;
    assert_eq!(hosts["wireguardHosts"], json!([{ "host": "gw-1" }]));
    let active = api
        .data(
            &globex,
            "query($from: DateTime!, $to: DateTime!) { wireguardActivePeers(from: $from, to: $to) { edges { node { publicKey } } } }",
            range.clone(),
        )
        .await;
    assert_eq!(active["wireguardActivePeers"]["edges"], json!([]));
    let export = api.data(&globex, r#"{ wireguardConfigExport(host: "gw-1", interface: "wg0") }"#, json!({})).await;
    let export = export["wireguardConfigExport"].as_str().expect("text");
    assert_eq!(export.matches("[Peer]").count(), 1, "globex's own gw-1 only: {export}");
    assert!(export.contains(&b64(9)));
    let (_, code) = api.error(&globex, r#"{ wireguardConfigExport(host: "gw-2", interface: "wg0") }"#, json!({})).await;
    assert_eq!(code, "NOT_FOUND");

    // acme's cursor is refused in globex's listing
    let page = api.data(&acme, "{ wireguardPeers(first: 1) { pageInfo { endCursor } } }", json!({})).await;
    let cursor = page["wireguardPeers"]["pageInfo"]["endCursor"].clone();
    let (message, code) = api
        .error(
            &globex,
            "query($after: String) { wireguardPeers(after: $after) { edges { cursor } } }",
            json!({ "after": cursor }),
        )
        .await;
    assert_eq!((message.as_str(), code.as_str()), ("after: cursor is not valid for this listing", "BAD_USER_INPUT"));

    // acme's alert cannot be acknowledged by globex
    let acme_alerts = api.data(&acme, "{ wireguardAlerts { edges { node { alertId } } } }", json!({})).await;
    let alert_id = acme_alerts["wireguardAlerts"]["edges"][0]["node"]["alertId"].clone();
    let (_, code) = api
        .error(
            &globex,
            "mutation($id: String!) { acknowledgeAlert(alertId: $id) { eventId } }",
            json!({ "id": alert_id }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");

    // a globex sync lands in globex, whatever host it names
    let sync = "mutation($input: SyncWireguardPeerInput!) { syncWireguardPeer(input: $input) { peer { host } } }";
    let input = json!({ "input": { "host": "gw-1", "interface": "wg0", "publicKey": b64(1), "transferRx": 1 } });
    let synced = api.data(&globex, sync, input).await;
    assert_eq!(synced["syncWireguardPeer"]["peer"], json!({ "host": "gw-1" }));
    let acme_view =
        api.data(&acme, "query($k: String!) { wireguardPeer(publicKey: $k) { source } }", json!({ "k": b64(1) })).await;
    assert_eq!(acme_view["wireguardPeer"], json!([{ "source": "USERSPACE" }]), "acme's peer 1 untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearance_hides_peers_everywhere() {
    let mut api = Api::start().await;
    api.seed().await;
    let low = token("acme", "UNCLASSIFIED", Role::Operator);
    let range = json!({ "k": b64(2), "from": iso(api.t0 - 1), "to": iso(api.t0 + 3_600 * SECOND) });
    let peers = api.data(&low, "{ wireguardPeers { edges { node { publicKey } } } }", json!({})).await;
    let keys: Vec<&str> = peers["wireguardPeers"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"]["publicKey"].as_str().expect("key"))
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(!keys.contains(&b64(2).as_str()), "the SECRET peer is not listed");
    let lookup =
        api.data(&low, "query($k: String!) { wireguardPeer(publicKey: $k) { host } }", json!({ "k": b64(2) })).await;
    assert_eq!(lookup["wireguardPeer"], json!([]));
    let history = api
        .data(
            &low,
            "query($k: String!, $from: DateTime!, $to: DateTime!) { wireguardPeerHistory(publicKey: $k, from: $from, to: $to) { edges { node { host } } } }",
            range,
        )
        .await;
    assert_eq!(history["wireguardPeerHistory"]["edges"], json!([]));
    let stats = api.data(&low, "{ wireguardStats { peers { total stale } transferRx } }", json!({})).await;
    assert_eq!(stats["wireguardStats"], json!({ "peers": { "total": 3, "stale": 1 }, "transferRx": 57_000 }));
    // peer 4's alert alone: the SECRET peer quiet beside it makes an incident of its own level only
    let alerts = api.data(&low, "{ wireguardAlerts { edges { node { kind publicKey clearance } } } }", json!({})).await;
    let mut alerts: Vec<Value> =
        alerts["wireguardAlerts"]["edges"].as_array().expect("edges").iter().map(|edge| edge["node"].clone()).collect();
    alerts.sort_by_key(|alert| alert["kind"].to_string());
    assert_eq!(alerts, [json!({ "kind": "PEER_STALE", "publicKey": b64(4), "clearance": "UNCLASSIFIED" })]);
    let export = api.data(&low, r#"{ wireguardConfigExport(host: "gw-1", interface: "wg0") }"#, json!({})).await;
    let export = export["wireguardConfigExport"].as_str().expect("text");
    assert_eq!(export.matches("[Peer]").count(), 2);
    assert!(!export.contains(&b64(2)));
    // a manifest entry about the SECRET peer is hidden too
    let manifest = "mutation($input: RotationManifestInput!) { setRotationManifest(input: $input) { eventId } }";
    let entries = json!({ "input": { "host": "gw-1", "interface": "wg0", "entries": [
        { "label": "secret-site", "expectedKey": b64(7), "retiredKeys": [b64(2)] },
        { "label": "open-site", "expectedKey": b64(1) }
    ]}});
    api.data(&low, manifest, entries).await;
    let status = rotation_status(&api, &low, 2).await;
    // the answer does not depend on the SECRET peer: its key counts as not seen, the entry stays
    assert_eq!(
        status,
        json!([{ "label": "secret-site", "state": "NOT_SEEN" }, { "label": "open-site", "state": "ROTATED" }])
    );
    // nor does the low operator's manifest judge the SECRET peer for anyone
    let high = token("acme", "SECRET", Role::Viewer);
    assert_eq!(rotation_status(&api, &high, 2).await, status);
    // nor can a low-clearance operator sync a peer above its own clearance
    let sync = "mutation($input: SyncWireguardPeerInput!) { syncWireguardPeer(input: $input) { eventId } }";
    let input = json!({ "input": { "host": "gw-1", "interface": "wg0", "publicKey": b64(8), "clearance": "SECRET" } });
    let (message, code) = api.error(&low, sync, input).await;
    assert_eq!(
        (message.as_str(), code.as_str()),
        ("input.clearance: cannot be above your own clearance", "BAD_USER_INPUT")
    );
}

/// `wireguardRotationStatus` as `token` sees it, once it lists `entries` entries.
async fn rotation_status(api: &Api, token: &str, entries: usize) -> Value {
    let mut status = Value::Null;
    for _ in 0..250 {
        status = api.data(token, "{ wireguardRotationStatus { label state } }", json!({})).await;
        if status["wireguardRotationStatus"].as_array().is_some_and(|listed| listed.len() == entries) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    status["wireguardRotationStatus"].clone()
}

/// Key-rotation alerts (raised and open) of `n` as TOP_SECRET sees them.
async fn open_rotation_alerts(api: &Api, n: u8) -> usize {
    let admin = token("acme", "TOP_SECRET", Role::Viewer);
    let query = "{ wireguardAlerts(filter: { kind: KEY_ROTATION }) { edges { node { publicKey state } } } }";
    let alerts = api.data(&admin, query, json!({})).await;
    let edges = alerts["wireguardAlerts"]["edges"].as_array().cloned().unwrap_or_default();
    edges.iter().filter(|edge| edge["node"]["publicKey"] == b64(n) && edge["node"]["state"] == "RAISED").count()
}

/// The dead letters on the embedded log, with their reasons.
async fn dead_letter_reasons(api: &Api) -> Vec<String> {
    use argus_log::{Delivery, EventLog, LogConsumer};
    let group = format!("dead-{}", now_millis());
    let mut consumer = api.log.subscribe("wireguard.dead-letter", &group).await.expect("subscribe");
    let mut reasons = Vec::new();
    loop {
        match consumer.poll(1_000, std::time::Duration::from_millis(100)).await.expect("poll") {
            Delivery::Records(records) if records.is_empty() => return reasons,
            Delivery::Records(records) => reasons.extend(
                records
                    .iter()
                    .map(|record| argus_core::codec::decode_dead_letter(&record.value).expect("a dead letter").reason),
            ),
            Delivery::Assigned(_) | Delivery::Revoked(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncing_a_peer_above_the_writer_reveals_and_changes_nothing() {
    let config = argus_api::ApiConfig { sync_wait: std::time::Duration::from_millis(600), ..Default::default() };
    let mut api = Api::start_with(config).await;
    api.seed().await;
    let low = token("acme", "UNCLASSIFIED", Role::Operator);
    let admin = token("acme", "TOP_SECRET", Role::Viewer);
    let peer_query =
        "query($k: String!) { wireguardPeer(publicKey: $k) { clearance endpoint allowedIps displayName transferRx } }";
    let before = api.data(&admin, peer_query, json!({ "k": b64(2) })).await;
    assert_eq!(before["wireguardPeer"][0]["clearance"], "SECRET");
    let sync = "mutation($input: SyncWireguardPeerInput!) { syncWireguardPeer(input: $input) { eventId peer { publicKey transferRx latestHandshake } } }";
    let input = |n: u8, clearance: &str| json!({ "input": { "host": "gw-1", "interface": "wg0", "publicKey": b64(n), "clearance": clearance } });

    // the UNCLASSIFIED operator syncing the SECRET peer's key gets the answer of a write it cannot
    // see the result of: an event id and no peer
    let answer = api.data(&low, sync, input(2, "UNCLASSIFIED")).await;
    assert!(answer["syncWireguardPeer"]["eventId"].is_string());
    assert_eq!(answer["syncWireguardPeer"]["peer"], Value::Null, "{answer}");
    // a SECRET operator cannot lower it either
    let secret = token("acme", "SECRET", Role::Operator);
    let answer = api.data(&secret, sync, input(2, "RESTRICTED")).await;
    assert_eq!(answer["syncWireguardPeer"]["peer"], Value::Null, "{answer}");
    // a write the operator may make is applied and answered (the fold got past the refusals)
    let answer = api.data(&low, sync, input(60, "UNCLASSIFIED")).await;
    assert_eq!(answer["syncWireguardPeer"]["peer"]["publicKey"], b64(60), "{answer}");

    // the peer is as it was: clearance, endpoint, allowed IPs, metadata
    assert_eq!(api.data(&admin, peer_query, json!({ "k": b64(2) })).await, before);
    let lookup = api.data(&low, peer_query, json!({ "k": b64(2) })).await;
    assert_eq!(lookup["wireguardPeer"], json!([]), "still hidden from the low operator");
    let stats = api.data(&low, "{ wireguardStats { peers { total } } }", json!({})).await;
    assert_eq!(stats["wireguardStats"]["peers"]["total"], 4, "three seeded peers and the new one");
    // both refusals are recorded with their reasons
    let reasons = dead_letter_reasons(&api).await;
    assert!(
        reasons.iter().any(|reason| reason.contains("is SECRET, above the API writer's UNCLASSIFIED")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|reason| reason.contains("cannot lower peer")), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_manifests_never_reach_above_their_writer() {
    let mut api = Api::start().await;
    api.seed().await;
    let manifest = "mutation($input: RotationManifestInput!) { setRotationManifest(input: $input) { eventId } }";
    let set = |entries: Value| json!({ "input": { "host": "gw-1", "interface": "wg0", "entries": entries } });
    let low = token("acme", "UNCLASSIFIED", Role::Operator);
    let secret = token("acme", "SECRET", Role::Operator);

    // a SECRET operator retires the SECRET peer's key: flagged
    api.data(&secret, manifest, set(json!([{ "label": "vault", "expectedKey": b64(70), "retiredKeys": [b64(2)] }])))
        .await;
    let mut flagged = 0;
    for _ in 0..250 {
        flagged = open_rotation_alerts(&api, 2).await;
        if flagged > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(flagged, 1);
    // the low operator sees nothing of that manifest
    assert_eq!(rotation_status(&api, &low, 0).await, json!([]));
    // and a low manifest expecting the SECRET key clears nothing: the flag stays
    api.data(
        &low,
        manifest,
        set(json!([{ "label": "probe", "expectedKey": b64(2) }, { "expectedKey": b64(1) }, { "expectedKey": b64(4) }])),
    )
    .await;
    let status = rotation_status(&api, &low, 3).await;
    assert_eq!(status[0], json!({ "label": "probe", "state": "NOT_SEEN" }), "the hidden key is not seen");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(open_rotation_alerts(&api, 2).await, 1, "the SECRET peer's flag is untouched");
    let secret_view = rotation_status(&api, &token("acme", "SECRET", Role::Viewer), 4).await;
    assert!(
        secret_view.as_array().expect("entries").contains(&json!({ "label": "vault", "state": "PENDING" })),
        "{secret_view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_resumes_only_its_own_listing_and_names_cannot_break_the_export() {
    let mut api = Api::start().await;
    api.seed().await;
    let operator = token("acme", "TOP_SECRET", Role::Operator);
    let alerts = api.data(&operator, "{ wireguardAlerts(first: 1) { pageInfo { endCursor } } }", json!({})).await;
    let alert_cursor = alerts["wireguardAlerts"]["pageInfo"]["endCursor"].as_str().expect("cursor").to_owned();
    let peers = api.data(&operator, "{ wireguardPeers(first: 1) { pageInfo { endCursor } } }", json!({})).await;
    let peer_cursor = peers["wireguardPeers"]["pageInfo"]["endCursor"].as_str().expect("cursor").to_owned();
    let peers_after = "query($after: String) { wireguardPeers(first: 1, after: $after) { edges { cursor } } }";
    let alerts_after = "query($after: String) { wireguardAlerts(first: 1, after: $after) { edges { cursor } } }";
    for (query, cursor) in [(peers_after, &alert_cursor), (alerts_after, &peer_cursor)] {
        let (message, code) = api.error(&operator, query, json!({ "after": cursor })).await;
        assert_eq!(
            (message.as_str(), code.as_str()),
            ("after: cursor is not valid for this listing", "BAD_USER_INPUT"),
            "{query}"
        );
    }
    api.data(&operator, peers_after, json!({ "after": peer_cursor })).await;

    // a display name with a carriage return and other control characters stays one comment line
    let sync = "mutation($input: SyncWireguardPeerInput!) { syncWireguardPeer(input: $input) { peer { publicKey } } }";
    let name = "fob\r\nPublicKey = forged\u{0b}\u{1b}[31m";
    let input = json!({ "input": { "host": "gw-9", "interface": "wg0", "publicKey": b64(61), "displayName": name } });
    let answer = api.data(&operator, sync, input).await;
    assert_eq!(answer["syncWireguardPeer"]["peer"]["publicKey"], b64(61));
    let export = api.data(&operator, r#"{ wireguardConfigExport(host: "gw-9", interface: "wg0") }"#, json!({})).await;
    let export = export["wireguardConfigExport"].as_str().expect("text");
    assert!(export.contains("# Name = fob  PublicKey = forged  [31m\n"), "{export:?}");
    assert_eq!(export.matches("PublicKey = ").count(), 2, "one key line and the name's text in a comment: {export}");
    assert!(!export.chars().any(|c| c.is_control() && c != '\n'), "{export:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_deep_and_complex_requests_are_refused() {
    let api = Api::start().await;
    let viewer = token("acme", "SECRET", Role::Viewer);
    let deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } }";
    let (message, _) = api.error(&viewer, deep, json!({})).await;
    assert!(message.contains("nested too deep"), "{message}");
    let wide: String = (0..600).map(|index| format!("h{index}: wireguardHosts {{ host }} ")).collect();
    let (message, code) = api.error(&viewer, &format!("{{ {wide} }}"), json!({})).await;
    assert_eq!(code, "QUERY_TOO_COSTLY", "{message}");
    assert!(message.starts_with("the query costs 60600, more than the 20000 allowed"), "{message}");
    let (message, code) = api.error(&viewer, "{ wireguardPeers(first: 10000) { edges { cursor } } }", json!({})).await;
    assert_eq!((message.as_str(), code.as_str()), ("first: must be between 1 and 500", "BAD_USER_INPUT"));
    let huge = format!("{{ wireguardHosts {{ host }} }} # {}", "x".repeat(100 * 1024));
    let (status, _, _) = api.graphql(Some(&viewer), &huge, json!({})).await;
    assert_eq!(status, 413, "bodies over 64 KiB are refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_sync_input_gets_precise_errors_and_publishes_nothing() {
    let api = Api::start().await;
    let operator = token("acme", "SECRET", Role::Operator);
    let sync = "mutation($input: SyncWireguardPeerInput!) { syncWireguardPeer(input: $input) { eventId } }";
    let valid = json!({ "host": "gw-1", "interface": "wg0", "publicKey": b64(1), "allowedIps": ["10.0.0.0/24"] });
    let with = |field: &str, value: Value| {
        let mut input = valid.clone();
        input[field] = value;
        json!({ "input": input })
    };
    let before = api.observation_count().await;
    let cases = [
        (with("publicKey", json!("not-a-key")), "input.publicKey: "),
        (with("publicKey", json!("AAAA")), "input.publicKey: "),
        (with("allowedIps", json!(["10.0.0.0/24", "10.0.0.1/24"])), "input.allowedIps[1]: "),
        (with("allowedIps", json!(["300.0.0.0/8"])), "input.allowedIps[0]: "),
        (with("transferRx", json!(-5)), "input.transferRx: must not be negative, got -5"),
        (with("transferTx", json!(-1)), "input.transferTx: must not be negative, got -1"),
        (with("interface", json!("wg/0")), "input.interface: "),
        (with("interface", json!("an-interface-name-too-long")), "input.interface: "),
        (with("endpoint", json!("2001:db8::1:51820")), "input.endpoint: "),
        (with("persistentKeepalive", json!(70000)), "input.persistentKeepalive: must be 0 to 65535 seconds"),
    ];
    for (input, prefix) in cases {
        let (message, code) = api.error(&operator, sync, input.clone()).await;
        assert_eq!(code, "BAD_USER_INPUT", "{input}: {message}");
        assert!(message.starts_with(prefix), "{input}: {message:?} should start with {prefix:?}");
        assert!(message.len() > prefix.len() || !prefix.ends_with(": "), "the reason is given: {message}");
    }
    assert_eq!(api.observation_count().await, before, "nothing was published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_costs_the_rows_it_reads_and_time_ranges_are_bounded() {
    let mut api = Api::start().await;
    api.seed().await;
    let viewer = token("acme", "SECRET", Role::Viewer);
    let costly = |message: &str, code: &str| {
        assert_eq!(code, "QUERY_TOO_COSTLY", "{message}");
        assert!(message.contains("ask for smaller pages (first), shorter time ranges"), "{message}");
    };
    // a hundred whole-history activity audits in one document
    let audit = r#"wireguardActivePeers(from: "0001-01-01T00:00:00Z", to: "9999-01-01T00:00:00Z", first: 500) { edges { cursor } }"#;
    let copies: String = (0..100).map(|index| format!("a{index}: {audit} ")).collect();
    let (message, code) = api.error(&viewer, &format!("{{ {copies} }}"), json!({})).await;
    costly(&message, &code);
    // the cost counts arguments sent as variables, as real clients send them
    let with_variables = "query($from: DateTime!, $to: DateTime!, $first: Int) { wireguardActivePeers(from: $from, to: $to, first: $first) { edges { cursor } } }";
    let (from, to) = (api.t0, api.t0 + 31 * 86_400 * SECOND);
    let (message, code) =
        api.error(&viewer, with_variables, json!({ "from": iso(from), "to": iso(to), "first": 500 })).await;
    costly(&message, &code);
    // a short shift audit with a small page is fine
    let shift = json!({ "from": iso(from), "to": iso(from + 12 * 3_600 * SECOND), "first": 20 });
    api.data(&viewer, with_variables, shift).await;
    // alerts filtered on state or kind read on until a page is full: twenty of those are too many
    let alerts: String = (0..20)
        .map(|index| {
            format!("a{index}: wireguardAlerts(first: 1, filter: {{ state: RAISED }}) {{ nodes {{ alertId }} }} ")
        })
        .collect();
    let (message, code) = api.error(&viewer, &format!("{{ {alerts} }}"), json!({})).await;
    costly(&message, &code);
    let unfiltered: String =
        (0..20).map(|index| format!("a{index}: wireguardAlerts(first: 1) {{ nodes {{ alertId }} }} ")).collect();
    api.data(&viewer, &format!("{{ {unfiltered} }}"), json!({})).await;
    // every page of an interface, several times over
    let export = r#"wireguardConfigExport(host: "gw-1", interface: "wg0")"#;
    let exports: String = (0..5).map(|index| format!("e{index}: {export} ")).collect();
    let (message, code) = api.error(&viewer, &format!("{{ {exports} }}"), json!({})).await;
    costly(&message, &code);

    // history and activity span at most 31 days
    let history = "query($k: String!, $from: DateTime!, $to: DateTime!) { wireguardPeerHistory(publicKey: $k, from: $from, to: $to, first: 10) { edges { cursor } } }";
    let month = json!({ "k": b64(1), "from": iso(from), "to": iso(to) });
    let rows = api.data(&viewer, history, month).await;
    assert!(!rows["wireguardPeerHistory"]["edges"].as_array().expect("edges").is_empty(), "{rows}");
    let longer = json!({ "k": b64(1), "from": iso(from), "to": iso(to + 1) });
    let (message, code) = api.error(&viewer, history, longer).await;
    assert_eq!(
        (message.as_str(), code.as_str()),
        ("to: the range may span at most 31 days: ask for it in parts", "BAD_USER_INPUT")
    );
    let moves = "query($k: String!, $from: DateTime!, $to: DateTime!) { wireguardEndpointChanges(publicKey: $k, from: $from, to: $to) { endpoint } }";
    let earlier = iso(to - 32 * 86_400 * SECOND);
    let (message, _) = api.error(&viewer, moves, json!({ "k": b64(3), "from": earlier, "to": iso(to) })).await;
    assert!(message.starts_with("to: the range may span at most 31 days"), "{message}");
    let (message, _) = api.error(&viewer, with_variables, json!({ "from": earlier, "to": iso(to), "first": 1 })).await;
    assert!(message.starts_with("to: the range may span at most 31 days"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expensive_request_holds_one_of_its_callers_slots_and_every_request_has_a_deadline() {
    use std::time::Duration;
    // every request is expensive here, and a caller has one slot
    let config = argus_api::ApiConfig {
        sync_wait: Duration::from_millis(1_500),
        expensive_cost: 1,
        max_expensive_per_caller: 1,
        ..Default::default()
    };
    let mut api = Api::start_with(config).await;
    api.seed().await;
    let low = token("acme", "UNCLASSIFIED", Role::Operator);
    // a sync the fold refuses waits the whole sync_wait for a projection that never comes
    let sync = "mutation($input: SyncWireguardPeerInput!) { syncWireguardPeer(input: $input) { eventId } }";
    let refused = json!({ "input": { "host": "gw-1", "interface": "wg0", "publicKey": b64(2) } });
    let slow = {
        let (address, low) = (api.address, low.clone());
        tokio::spawn(async move {
            let body = json!({ "query": sync, "variables": refused });
            let url = format!("http://{address}/graphql");
            reqwest::Client::new().post(url).bearer_auth(low).json(&body).send().await.expect("sync").status()
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let response = api
        .http
        .post(api.url("/graphql"))
        .bearer_auth(&low)
        .json(&json!({ "query": HOSTS }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["errors"][0]["extensions"]["code"], "TOO_MANY_REQUESTS", "{body}");
    assert!(body["errors"][0]["message"].as_str().expect("message").contains("wait for one to finish"), "{body}");
    // another caller is not held up by it
    api.data(&token("acme", "SECRET", Role::Viewer), HOSTS, json!({})).await;
    assert_eq!(slow.await.expect("slow request"), 200);
    // the slot is given back
    api.data(&low, HOSTS, json!({})).await;

    // a request still running at its deadline is answered with a clear error
    let config = argus_api::ApiConfig {
        sync_wait: Duration::from_secs(5),
        request_deadline: Duration::from_millis(300),
        ..Default::default()
    };
    let mut api = Api::start_with(config).await;
    api.seed().await;
    let started = std::time::Instant::now();
    let refused = json!({ "input": { "host": "gw-1", "interface": "wg0", "publicKey": b64(2) } });
    let (message, code) = api.error(&low, sync, refused).await;
    assert_eq!(code, "DEADLINE_EXCEEDED", "{message}");
    assert_eq!(
        message,
        "the request took longer than its 300 ms deadline: ask for a smaller page or a shorter time range"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "answered at the deadline, not after the wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_lives_no_longer_than_its_token_and_is_bounded_like_a_request() {
    use std::time::Duration;
    let config = argus_api::ApiConfig {
        socket_init_timeout: Duration::from_millis(500),
        max_subscriptions_per_socket: 2,
        ..Default::default()
    };
    let api = Api::start_with(config).await;
    // no connection_init in time: closed with 4408
    let mut idle = open_socket(&api, None).await;
    assert_eq!(receive(&mut idle, Duration::from_secs(5)).await, Err(Some(4408)));

    // a token accepted for three more seconds (expired, within the 30 s leeway): closed with 4401
    let exp = jsonwebtoken::get_current_timestamp() - 27;
    let expiring = token_with_exp("acme", "SECRET", Role::Viewer, exp);
    let mut socket = subscribe(&api, &expiring, "subscription { wireguardAlerts { alertId } }").await;
    let started = std::time::Instant::now();
    loop {
        match receive(&mut socket, Duration::from_secs(10)).await {
            Ok(message) => assert_ne!(message["type"], "error", "{message}"),
            Err(code) => {
                assert_eq!(code, Some(4401), "closed because the token expired");
                break;
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(6), "closed when the token expired");

    // over the socket a viewer is refused a mutation exactly as over HTTP
    let viewer = token("acme", "SECRET", Role::Viewer);
    let mut socket = open_socket(&api, Some(&viewer)).await;
    let acknowledge = r#"mutation { acknowledgeAlert(alertId: "8f1f1a1e-0000-5000-8000-000000000000") { eventId } }"#;
    send(&mut socket, json!({ "id": "m", "type": "subscribe", "payload": { "query": acknowledge } })).await;
    let answer = receive(&mut socket, Duration::from_secs(5)).await.expect("answer");
    let errors = if answer["type"] == "error" { &answer["payload"] } else { &answer["payload"]["errors"] };
    assert_eq!(errors[0]["extensions"]["code"], "insufficient_scope", "{answer}");

    // two subscriptions on a socket; a third is refused, and the socket serves the two
    for id in ["s1", "s2", "s3"] {
        let query = "subscription { wireguardAlerts { alertId } }";
        send(&mut socket, json!({ "id": id, "type": "subscribe", "payload": { "query": query } })).await;
    }
    let refusal = loop {
        let message = receive(&mut socket, Duration::from_secs(5)).await.expect("refusal");
        if message["type"] != "complete" {
            break message;
        }
    };
    assert_eq!(refusal["id"], "s3", "{refusal}");
    let errors = if refusal["type"] == "error" { &refusal["payload"] } else { &refusal["payload"]["errors"] };
    assert_eq!(errors[0]["extensions"]["code"], "TOO_MANY_REQUESTS", "{refusal}");
    // a message larger than a request body may be closes the socket
    let huge = format!("{{ wireguardHosts {{ host }} }} # {}", "x".repeat(100 * 1024));
    send(&mut socket, json!({ "id": "h", "type": "subscribe", "payload": { "query": huge } })).await;
    loop {
        match receive(&mut socket, Duration::from_secs(5)).await {
            Ok(message) => assert_ne!(message["id"], "h", "the huge message was not run: {message}"),
            Err(code) => {
                assert_eq!(code, Some(1009), "closed: message too big");
                break;
            }
        }
    }

    // open sockets are bounded: the next upgrade is answered 503
    let config = argus_api::ApiConfig { max_open_sockets: 2, ..Default::default() };
    let api = Api::start_with(config).await;
    let _held = (open_socket(&api, Some(&viewer)).await, open_socket(&api, None).await);
    let mut request = format!("ws://{}/graphql/ws", api.address).into_client_request().expect("request");
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected 503, got {other:?}"),
    }
}

/// The `argus_api_direct_answers_total` counter on `/metrics`.
async fn direct_answers(api: &Api) -> u64 {
    let text = reqwest::get(api.url("/metrics")).await.expect("metrics").text().await.expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix("argus_api_direct_answers_total "))
        .map_or(0, |count| count.trim().parse().expect("a count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_answers_and_kept_answers_are_scoped_and_limited_like_executed_ones() {
    let mut api = Api::start().await;
    api.seed().await;
    let secret = token("acme", "SECRET", Role::Viewer);
    let unclassified = token("acme", "UNCLASSIFIED", Role::Viewer);
    let globex = token("globex", "TOP_SECRET", Role::Viewer);
    let page = "query Page($first: Int, $after: String) { wireguardPeers(first: $first, after: $after) { \
                edges { cursor node { ...peer } } pageInfo { hasNextPage endCursor } } } \
                fragment peer on WireguardPeer { publicKey clearance host }";
    let keys = |data: &serde_json::Value| -> Vec<String> {
        let edges = data["wireguardPeers"]["edges"].as_array().expect("edges").clone();
        edges.iter().map(|edge| edge["node"]["publicKey"].as_str().expect("a key").to_owned()).collect()
    };
    // executed once by async-graphql, then answered directly, the same
    let executed = api.data(&secret, page, json!({ "first": 50 })).await;
    let before = direct_answers(&api).await;
    let direct = api.data(&secret, page, json!({ "first": 50 })).await;
    assert!(direct_answers(&api).await > before, "the second request is answered directly");
    assert_eq!(executed, direct);
    assert!(keys(&direct).contains(&b64(2)), "the SECRET peer is there for a SECRET caller: {direct}");
    // the same document and variables, the same kept store answer: another scope sees only its own
    let lower = api.data(&unclassified, page, json!({ "first": 50 })).await;
    assert!(!keys(&lower).is_empty() && !keys(&lower).contains(&b64(2)), "{lower}");
    let other = api.data(&globex, page, json!({ "first": 50 })).await;
    assert_eq!(keys(&other), vec![b64(9)], "{other}");
    // a later page through a cursor sent as a variable
    let first = api.data(&secret, page, json!({ "first": 1 })).await;
    let cursor = first["wireguardPeers"]["pageInfo"]["endCursor"].clone();
    let second = api.data(&secret, page, json!({ "first": 1, "after": cursor })).await;
    assert_eq!(keys(&second), keys(&direct)[1..2].to_vec());
    // another organisation's cursor is refused, directly too
    let (message, code) = api.error(&globex, page, json!({ "first": 1, "after": cursor })).await;
    assert_eq!((message.as_str(), code.as_str()), ("after: cursor is not valid for this listing", "BAD_USER_INPUT"));
    // the cost of a planned document follows its variables
    let (message, code) = api.error(&secret, page, json!({ "first": 100_000 })).await;
    assert_eq!(code, "QUERY_TOO_COSTLY", "{message}");
    // a write is seen at once: kept answers last only while the store is unchanged
    let seen = api.data(&unclassified, page, json!({ "first": 50 })).await;
    let at = api.t0 + 800 * SECOND;
    api.observe(
        "acme",
        "gw-1",
        5,
        argus_core::Clearance::Unclassified,
        at,
        at - 5 * SECOND,
        5_000,
        "198.51.100.5:51820",
    )
    .await;
    api.wait_for_peer("acme", 5, at).await;
    let after = api.data(&unclassified, page, json!({ "first": 50 })).await;
    assert_eq!(keys(&after).len(), keys(&seen).len() + 1, "{after}");
}
