//! End to end: the `argus` binary (`argus run`) against the WireGuard lab, over HTTP GraphQL, as an
//! operator would use it. Needs root (namespaces); fails, never skips, without it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use argus_testkit::lab::{Lab, LabOptions};
use common::{Argus, SECRET, argus_command, counters, free_port};
use serde_json::{Value, json};

/// WireGuard renews handshakes every 120 s while traffic flows: a window just above that.
const SHORT_WINDOW: &str = "stale_after_s = 135\nfresh_below_s = 125";

fn evidence(alert: &Value, name: &str) -> Option<f64> {
    alert["evidence"].as_array()?.iter().find(|item| item["name"] == name)?["value"].as_f64()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// The 02:30 question on a real hub: one site's WireGuard stops (its address still answers), another
/// site's link is cut, at once. The probes from the hub's own namespace tell them apart: two
/// different causes, each with its probe evidence, within the stale window plus one probe round;
/// the healthy sites raise nothing; both resolve when restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_site_and_a_cut_site_get_different_causes_with_probe_evidence() {
    a_stopped_and_a_cut_site_are_told_apart("").await;
}

/// The same with `argus run`'s log on a real broker (`log = "kafka"`, tansu on loopback) and its
/// store embedded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_a_stopped_site_and_a_cut_site_get_different_causes_with_probe_evidence() {
    let broker = argus_testkit::Tansu::start();
    broker.create_topic("wireguard.observations", 4).await;
    broker.create_topic("wireguard.alerts", 1).await;
    broker.create_topic("wireguard.dead-letter", 1).await;
    a_stopped_and_a_cut_site_are_told_apart(&format!("log = \"kafka\"\n[kafka]\nbrokers = \"{}\"", broker.bootstrap()))
        .await;
}

async fn a_stopped_and_a_cut_site_are_told_apart(log: &str) {
    let lab = Lab::up(5, LabOptions::default());
    let directory = tempfile::tempdir().expect("tempdir");
    let (stopped, cut) = (lab.site_public_key(2), lab.site_public_key(3));
    // the inventory names the cut site; the stopped one is known by its key alone
    let inventory = directory.path().join("peers.conf");
    std::fs::write(&inventory, format!("[Peer]\n# Name = FOB 3\n# Site = fob-03\nPublicKey = {cut}\n"))
        .expect("inventory");
    let collector = format!("inventory = \"{}\"", inventory.display());
    let argus = Argus::start_on(directory.path(), &lab, log, &collector, SHORT_WINDOW).await;
    argus
        .eventually("the hub is projected", Duration::from_secs(20), async |argus| {
            (argus.peer(&stopped).await["status"] == "ACTIVE").then_some(())
        })
        .await;
    let dump = lab.hub_dump();
    let handshake = |key: &str| dump.iter().find(|peer| peer.public_key == key).expect("site").latest_handshake;
    lab.fail(2);
    lab.fail_link(3);

    // stale at handshake + 135 s; a probe round is three echoes of a second after a 1 s scan
    let settled_by = handshake(&stopped).max(handshake(&cut)) + 135 + 2 + 5;
    let settled = argus
        .eventually("both sites are stale with a probed cause", Duration::from_secs(200), async |argus| {
            let alerts = argus.alerts("PEER_STALE").await;
            let cause = |key: &str| {
                alerts.iter().find(|alert| alert["publicKey"] == key).map(|alert| alert["probableCause"].clone())
            };
            (cause(&stopped) == Some(json!("WIREGUARD_DOWN")) && cause(&cut) == Some(json!("PATH_DOWN")))
                .then_some(alerts)
        })
        .await;
    assert!(unix_now() <= settled_by, "settled {} s after the window plus a probe round", unix_now() - settled_by);
    assert_eq!(settled.len(), 2, "the healthy sites raise nothing: {settled:?}");
    let alert = |key: &str| settled.iter().find(|alert| alert["publicKey"] == key).expect("alert").clone();
    let (service, path) = (alert(&stopped), alert(&cut));
    assert_eq!(evidence(&service, "probe_sent"), Some(3.0), "{service}");
    assert!(evidence(&service, "probe_received") >= Some(1.0), "{service}");
    assert!(evidence(&service, "probe_rtt_ms").is_some(), "{service}");
    assert_eq!(evidence(&path, "probe_received"), Some(0.0), "{path}");
    assert_eq!(evidence(&path, "probe_loss"), Some(1.0), "{path}");
    let hub = lab.hub_interface();
    for (alert, words, site) in [
        (&service, "its WireGuard is not", format!("peer {stopped} on hub-01/{hub}")),
        (&path, "the path to the site is down", format!("FOB 3 (peer {cut} on hub-01/{hub})")),
    ] {
        let summary = alert["summary"].as_str().expect("summary");
        assert!(summary.contains(words) && summary.contains(&site), "{summary}");
        for name in ["WireguardDown", "WIREGUARD_DOWN", "PathDown", "PATH_DOWN", "PeerStale", "PEER_STALE"] {
            assert!(!summary.contains(name), "no enum names in words for people: {summary}");
        }
        assert_eq!(alert["severity"], "WARNING");
    }

    // the inventory's name is the peer's, and the export writes it back in the inventory's form
    let named = argus
        .graphql("query($key: String!) { wireguardPeer(publicKey: $key) { displayName tags } }", json!({ "key": cut }))
        .await;
    assert_eq!(named["wireguardPeer"][0], json!({ "displayName": "FOB 3", "tags": ["site:fob-03"] }));
    let export = argus
        .graphql(
            "query($interface: String!) { wireguardConfigExport(host: \"hub-01\", interface: $interface) }",
            json!({ "interface": hub }),
        )
        .await;
    let export = export["wireguardConfigExport"].as_str().expect("text");
    assert!(export.contains(&format!("# Name = FOB 3\nPublicKey = {cut}")), "{export}");

    lab.restore(2);
    lab.restore(3);
    argus
        .eventually("both alerts resolve", Duration::from_secs(40), async |argus| {
            let alerts = argus.alerts("PEER_STALE").await;
            (alerts.len() == 2 && alerts.iter().all(|alert| alert["state"] == "RESOLVED")).then_some(())
        })
        .await;
    assert_ne!(argus.peer(&cut).await["status"], "STALE");
}

/// Every site's link of the hub is cut at once. With handshakes `stagger` apart (sites started at
/// different times), the first sites to turn stale look like single path failures until enough are
/// quiet; either way the outage is one gateway-uplink incident holding every site, by name, with no
/// single-site cause left standing, and it resolves once when the links return.
async fn an_uplink_cut_is_one_incident(stagger: Duration) {
    const SITES: u32 = 4;
    let lab = Lab::up(SITES, LabOptions::default());
    let directory = tempfile::tempdir().expect("tempdir");
    let inventory = directory.path().join("peers.conf");
    let names: String = (1..=SITES)
        .map(|site| format!("[Peer]\n# Name = FOB {site}\nPublicKey = {}\n", lab.site_public_key(site)))
        .collect();
    std::fs::write(&inventory, names).expect("inventory");
    let collector = format!("inventory = \"{}\"", inventory.display());
    let argus = Argus::start_with(directory.path(), &lab, &collector, SHORT_WINDOW).await;
    if !stagger.is_zero() {
        for site in 1..=SITES {
            lab.fail(site); // a restarted site handshakes at once: sites renew at different times
            lab.restore(site);
            tokio::time::sleep(stagger).await;
        }
    }
    let keys: Vec<String> = (1..=SITES).map(|site| lab.site_public_key(site)).collect();
    argus
        .eventually("every site is projected", Duration::from_secs(20), async |argus| {
            for key in &keys {
                if argus.peer(key).await["status"] != "ACTIVE" {
                    return None;
                }
            }
            Some(())
        })
        .await;
    let dump = lab.hub_dump();
    let handshakes: Vec<u64> = dump.iter().map(|peer| peer.latest_handshake).collect();
    let spread = handshakes.iter().max().expect("sites") - handshakes.iter().min().expect("sites");
    assert!(spread >= stagger.as_secs() * u64::from(SITES - 1) / 2, "handshakes {spread} s apart");
    for site in 1..=SITES {
        lab.fail_link(site);
    }

    let last_stale = handshakes.iter().max().expect("sites") + 135;
    let incident = argus
        .eventually("one incident holds every site", Duration::from_secs(220), async |argus| {
            let incidents = argus.alerts("INCIDENT").await;
            let [incident] = &incidents[..] else { return None };
            let members = argus.alerts_where(json!({ "incidentId": incident["alertId"] })).await;
            (members.len() == keys.len()).then(|| (incident.clone(), members))
        })
        .await;
    let (incident, members) = incident;
    assert!(unix_now() <= last_stale + 10, "held every site {} s after the last was stale", unix_now() - last_stale);
    assert_eq!((&incident["state"], &incident["probableCause"]), (&json!("RAISED"), &json!("GATEWAY_UPLINK")));
    assert_eq!(incident["severity"], "CRITICAL");
    let when_raised = evidence(&incident, "peers_when_raised").expect("evidence");
    assert!((1.0..=f64::from(SITES)).contains(&when_raised), "{incident}");
    let hub = lab.hub_interface();
    assert!(incident["summary"].as_str().expect("summary").contains(&format!("gateway hub-01/{hub}")), "{incident}");
    for member in &members {
        assert_eq!(member["probableCause"], "GATEWAY_UPLINK", "{member}");
        assert_eq!(member["incidentId"], incident["alertId"], "{member}");
        assert!(member["raisedAt"].as_str() >= incident["raisedAt"].as_str(), "the incident dates from its first site");
    }
    for key in &keys {
        let member = members.iter().find(|member| member["publicKey"] == *key).expect("every site is a member");
        let site = 1 + keys.iter().position(|other| other == key).expect("site");
        let summary = member["summary"].as_str().expect("summary");
        assert!(summary.starts_with(&format!("no handshake: FOB {site} (peer {key}")), "{summary}");
    }
    let standing = argus.alerts("PEER_STALE").await;
    assert!(
        standing.iter().all(|alert| alert["incidentId"] == incident["alertId"]),
        "no single-site alert: {standing:?}"
    );
    let revised = members.iter().filter(|member| !member["revisedAt"].is_null()).count();
    if stagger >= Duration::from_secs(10) {
        assert!(revised >= 1, "the first sites were revised into the incident: {members:?}");
    }

    for site in 1..=SITES {
        lab.restore(site);
    }
    argus
        .eventually("the incident resolves once its sites are back", Duration::from_secs(60), async |argus| {
            let incidents = argus.alerts("INCIDENT").await;
            let members = argus.alerts("PEER_STALE").await;
            let resolved = |alerts: &[Value]| alerts.iter().all(|alert| alert["state"] == "RESOLVED");
            (incidents.len() == 1 && resolved(&incidents) && resolved(&members)).then_some(())
        })
        .await;
    let resolved = argus.alerts("INCIDENT").await;
    assert_eq!(resolved[0]["alertId"], incident["alertId"], "one incident, resolved");
    assert_eq!(evidence(&resolved[0], "peers"), Some(f64::from(SITES)), "it held every site: {}", resolved[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_every_site_at_once_is_one_uplink_incident() {
    an_uplink_cut_is_one_incident(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_sites_with_staggered_handshakes_is_one_uplink_incident() {
    an_uplink_cut_is_one_incident(Duration::from_secs(12)).await;
}

/// Maintenance on a real hub. An operator at RESTRICTED silences the whole hub: it covers site 1
/// (UNCLASSIFIED) and not site 2 (SECRET, above its author), which that operator cannot silence by
/// key either; an operator at TOP_SECRET silences site 3 alone, and site 4 is left alone. Sites 1
/// to 3 fail: 1 and 3 are recorded silenced, 2 alerts as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_marks_its_sites_alerts_and_never_one_above_its_author() {
    let lab = Lab::up(4, LabOptions::default());
    let directory = tempfile::tempdir().expect("tempdir");
    let inventory = directory.path().join("peers.conf");
    let clearance = |site: u32| if site == 1 { "UNCLASSIFIED" } else { "SECRET" };
    let peers: String = (1..=4)
        .map(|site| {
            format!(
                "[Peer]\n# Name = FOB {site}\n# Clearance = {}\nPublicKey = {}\n",
                clearance(site),
                lab.site_public_key(site)
            )
        })
        .collect();
    std::fs::write(&inventory, peers).expect("inventory");
    let collector = format!("inventory = \"{}\"", inventory.display());
    let argus = Argus::start_with(directory.path(), &lab, &collector, SHORT_WINDOW).await;
    let keys: Vec<String> = (1..=4).map(|site| lab.site_public_key(site)).collect();
    argus
        .eventually("every site is projected", Duration::from_secs(20), async |argus| {
            let data = argus.graphql("{ wireguardPeers { edges { node { status } } } }", json!({})).await;
            let active = data["wireguardPeers"]["edges"]
                .as_array()
                .map_or(0, |edges| edges.iter().filter(|edge| edge["node"]["status"] == "ACTIVE").count());
            (active == keys.len()).then_some(())
        })
        .await;
    let set = "mutation($input: WireguardSilenceInput!) { setWireguardSilence(input: $input) { silenceId } }";
    let hub = lab.hub_interface();
    let hour_from_now = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let restricted = argus.token("RESTRICTED", "operator");
    let whole_hub = json!({ "input": { "host": "hub-01", "endsAt": hour_from_now, "reason": "hub maintenance" } });
    let answer = argus.graphql_as(&restricted, set, whole_hub).await;
    assert!(answer["data"]["setWireguardSilence"]["silenceId"].is_string(), "{answer}");
    let site_2 = json!({ "input": { "host": "hub-01", "interface": hub, "publicKey": keys[1],
        "endsAt": hour_from_now, "reason": "not theirs" } });
    let refused = argus.graphql_as(&restricted, set, site_2).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "NOT_FOUND", "{refused}");
    let site_3 = json!({ "input": { "host": "hub-01", "interface": hub, "publicKey": keys[2],
        "endsAt": hour_from_now, "reason": "generator swap at FOB 3" } });
    argus.graphql(set, site_3).await;
    for site in 1..=3 {
        lab.fail(site);
    }

    let alerts = argus
        .eventually("the three sites are stale", Duration::from_secs(200), async |argus| {
            let alerts = argus.alerts("PEER_STALE").await;
            (alerts.len() == 3).then_some(alerts)
        })
        .await;
    let silenced = |site: usize| {
        let alert = alerts.iter().find(|alert| alert["publicKey"] == keys[site - 1]).expect("alert of the site");
        alert["silenced"].as_bool().expect("silenced")
    };
    assert_eq!((silenced(1), silenced(2), silenced(3)), (true, false, true), "{alerts:?}");
    let listed = argus.alerts_where(json!({ "silenced": false, "kind": "PEER_STALE" })).await;
    let keys_listed: Vec<_> = listed.iter().map(|alert| alert["publicKey"].clone()).collect();
    assert_eq!(keys_listed, [json!(keys[1])], "only site 2 is notified: {listed:?}");

    // a name given through the API reaches the alert and the export (a peer known only to the API,
    // its last handshake an hour ago, under the hub's silence)
    let named = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let sync = "mutation($input: SyncWireguardPeerInput!) { syncWireguardPeer(input: $input) { eventId } }";
    let input = json!({ "input": { "host": "hub-01", "interface": hub, "publicKey": named,
        "latestHandshake": hour_ago, "displayName": "FOB API" } });
    argus.graphql(sync, input).await;
    let alert = argus
        .eventually("the named peer's alert", Duration::from_secs(20), async |argus| {
            argus.alerts("PEER_STALE").await.into_iter().find(|alert| alert["publicKey"] == named)
        })
        .await;
    let summary = alert["summary"].as_str().expect("summary");
    assert!(summary.starts_with(&format!("no handshake: FOB API (peer {named} on hub-01/{hub})")), "{summary}");
    assert_eq!(alert["silenced"], true, "under the hub's silence: {alert}");
    let export = argus
        .graphql(
            "query($interface: String!) { wireguardConfigExport(host: \"hub-01\", interface: $interface) }",
            json!({ "interface": hub }),
        )
        .await;
    let export = export["wireguardConfigExport"].as_str().expect("text");
    assert!(export.contains(&format!("# Name = FOB API\nPublicKey = {named}")), "{export}");
}

/// A malformed inventory refuses to start, naming the file, the line and the reason.
#[test]
fn a_malformed_inventory_is_refused_at_start_with_its_line() {
    let directory = tempfile::tempdir().expect("tempdir");
    let inventory = directory.path().join("peers.conf");
    std::fs::write(&inventory, "[Interface]\nListenPort = 51820\n\n[Peer]\n# Name = FOB 1\nPublicKey = not-a-key\n")
        .expect("inventory");
    let config = directory.path().join("argus.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\nlisten = \"127.0.0.1:{}\"\n[auth]\nhs256_secret = \"{SECRET}\"\n[collector]\ninventory = \"{}\"\n",
            directory.path().join("data").display(),
            free_port(),
            inventory.display()
        ),
    )
    .expect("config");
    let output = argus_command(&config).arg("run").output().expect("argus run");
    assert!(!output.status.success(), "argus run refuses to start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("collector.inventory: {}: line 6: PublicKey", inventory.display());
    assert!(stderr.contains(&expected), "{stderr}");
}

/// Two sites configured with one key pair: the hub hears that key from two networks in turn, and
/// CLONED_KEY is raised within two minutes; a site that roams once to a new network raises nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_with_one_key_raise_cloned_key_and_a_roaming_site_does_not() {
    let lab = Lab::up(4, LabOptions::default());
    let directory = tempfile::tempdir().expect("tempdir");
    let argus = Argus::start(directory.path(), &lab, "").await;
    let (roaming, cloned) = (lab.site_public_key(1), lab.site_public_key(2));
    argus
        .eventually("the hub is projected", Duration::from_secs(20), async |argus| {
            (argus.peer(&cloned).await["status"] == "ACTIVE").then_some(())
        })
        .await;
    lab.roam(1);
    lab.clone_key(3, 2);
    let started = Instant::now();
    let raised = argus
        .eventually("CLONED_KEY is raised", Duration::from_secs(120), async |argus| {
            let alerts = argus.alerts("CLONED_KEY").await;
            (!alerts.is_empty()).then_some(alerts)
        })
        .await;
    println!("CLONED_KEY after {:?}", started.elapsed());
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0]["publicKey"], cloned.as_str());
    assert_eq!(raised[0]["probableCause"], "CLONED_KEY");
    assert_eq!(raised[0]["severity"], "CRITICAL");
    assert!(raised[0]["summary"].as_str().expect("summary").contains("two machines hold the same key"));
    let data = argus
        .graphql("query($key: String!) { wireguardPeer(publicKey: $key) { endpoint } }", json!({ "key": roaming }))
        .await;
    let moved = data["wireguardPeer"][0]["endpoint"].as_str().map(str::to_owned);
    assert!(moved.as_deref().is_some_and(|endpoint| endpoint.starts_with("198.19.1.2:")), "roamed: {moved:?}");
    assert!(argus.alerts("CLONED_KEY").await.iter().all(|alert| alert["publicKey"] == cloned.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_manifest_flags_the_old_key_until_the_site_rotates() {
    let lab = Lab::up(3, LabOptions::default());
    let directory = tempfile::tempdir().expect("tempdir");
    let argus = Argus::start(directory.path(), &lab, "").await;
    let old_key = lab.site_public_key(1);
    let new_private = Command::new("wg").arg("genkey").output().expect("wg genkey").stdout;
    let key_file = directory.path().join("site1.key");
    std::fs::write(&key_file, &new_private).expect("key file");
    let mut pubkey = Command::new("wg").arg("pubkey").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("wg");
    std::io::Write::write_all(pubkey.stdin.as_mut().expect("stdin"), &new_private).expect("write");
    let new_key =
        String::from_utf8(pubkey.wait_with_output().expect("wg pubkey").stdout).expect("utf-8").trim().to_owned();
    argus
        .eventually("the hub is projected", Duration::from_secs(20), async |argus| {
            (argus.peer(&old_key).await["status"] == "ACTIVE").then_some(())
        })
        .await;

    let mut entries = vec![json!({ "label": "site-1", "expectedKey": new_key, "retiredKeys": [old_key] })];
    for site in 2..=3 {
        entries.push(json!({ "label": format!("site-{site}"), "expectedKey": lab.site_public_key(site) }));
    }
    argus
        .graphql(
            "mutation($input: RotationManifestInput!) { setRotationManifest(input: $input) { eventId } }",
            json!({ "input": { "host": "hub-01", "interface": lab.hub_interface(), "entries": entries } }),
        )
        .await;
    let raised = argus.raised("the old key is flagged", "KEY_ROTATION").await;
    assert_eq!(raised.len(), 1, "only site 1 is flagged: {raised:?}");
    assert_eq!(raised[0]["publicKey"], old_key.as_str());
    assert_eq!(raised[0]["probableCause"], "SECURITY");
    let status = argus.graphql("{ wireguardRotationStatus { label state } }", json!({})).await;
    let pending: Vec<&Value> = status["wireguardRotationStatus"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|entry| entry["state"] == "PENDING")
        .collect();
    assert_eq!(pending.len(), 1, "{status}");
    assert_eq!(pending[0]["label"], "site-1");

    assert_eq!(lab.rotate(1, &key_file), new_key);
    argus
        .eventually("the flag clears", Duration::from_secs(30), async |argus| {
            let alerts = argus.alerts("KEY_ROTATION").await;
            let status = argus.graphql("{ wireguardRotationStatus { state } }", json!({})).await;
            let rotated = status["wireguardRotationStatus"].as_array()?.iter().all(|entry| entry["state"] == "ROTATED");
            (alerts.iter().all(|alert| alert["state"] == "RESOLVED") && rotated).then_some(())
        })
        .await;
}

/// The collector loses sight of the gateway (its UAPI socket moved away) while the gateway and
/// every tunnel stay up, for longer than the peers' staleness window: one GATEWAY_SILENT, no
/// per-peer alerts (a peer judged on the clock would have gone stale); it resolves when the
/// collector sees the gateway again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_collector_is_one_gateway_alert_not_a_storm() {
    let lab = Lab::up(3, LabOptions::default());
    let directory = tempfile::tempdir().expect("tempdir");
    // WireGuard re-handshakes every 120 s while the lab's pings flow: a handshake is never older
    // than this window while the gateway is seen, and every one is once it has been hidden longer
    let window = Duration::from_secs(130);
    let rules = format!("gateway_silence_scans = 3\nstale_after_s = {}\nfresh_below_s = 122", window.as_secs());
    let argus = Argus::start(directory.path(), &lab, &rules).await;
    argus
        .eventually("the gateway is projected", Duration::from_secs(20), async |argus| {
            let hosts = argus.graphql("{ wireguardHosts { status } }", json!({})).await;
            (hosts["wireguardHosts"][0]["status"] == "ALIVE").then_some(())
        })
        .await;
    let socket = format!("/var/run/wireguard/{}.sock", lab.hub_interface());
    let hidden = directory.path().join("hub.sock");
    std::fs::rename(&socket, &hidden).expect("hide the UAPI socket");
    let silent = argus.raised("GATEWAY_SILENT", "GATEWAY_SILENT").await;
    assert_eq!(silent.len(), 1, "{silent:?}");
    assert_eq!(silent[0]["probableCause"], "GATEWAY_SILENT");
    // silent past the window: still one alert, and no peer alerts at all
    let hidden_until = Instant::now() + window + Duration::from_secs(10);
    while Instant::now() < hidden_until {
        assert_eq!(argus.alerts("GATEWAY_SILENT").await.len(), 1);
        assert!(argus.alerts("PEER_STALE").await.is_empty(), "no storm of per-peer alerts");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    std::fs::rename(&hidden, &socket).expect("restore the UAPI socket");
    argus
        .eventually("the gateway alert resolves", Duration::from_secs(20), async |argus| {
            let alerts = argus.alerts("GATEWAY_SILENT").await;
            (alerts.len() == 1 && alerts[0]["state"] == "RESOLVED").then_some(())
        })
        .await;
}

/// The hub's counters for `key` in `dump`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_argus_mid_stream_leaves_no_gap_and_no_double_count() {
    let lab = Lab::up(3, LabOptions::default());
    lab.quiet();
    let site = lab.site_public_key(3);
    let first = counters(&lab.hub_dump(), &site);
    let directory = tempfile::tempdir().expect("tempdir");
    let mut argus = Argus::start(directory.path(), &lab, "").await;
    argus
        .eventually("first observation", Duration::from_secs(20), async |argus| {
            argus.peer(&site).await.get("status").filter(|status| !status.is_null()).map(drop)
        })
        .await;
    lab.traffic();
    tokio::time::sleep(Duration::from_secs(4)).await;
    argus.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    argus.restart().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    lab.quiet();
    let last = counters(&lab.hub_dump(), &site);
    assert!(last.0 > first.0, "traffic flowed");
    let expected = json!([last.0 - first.0, last.1 - first.1]);
    argus
        .eventually("the totals match the counters exactly", Duration::from_secs(20), async |argus| {
            let peer = argus.peer(&site).await;
            (json!([peer["transferRx"], peer["transferTx"]]) == expected).then_some(())
        })
        .await;
    // and the history's deltas add up to the same totals: nothing missed, nothing counted twice
    let day = |days: i64| (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339();
    let history = argus
        .graphql(
            "query($key: String!, $from: DateTime!, $to: DateTime!) {
                wireguardPeerHistory(publicKey: $key, from: $from, to: $to, first: 500) {
                    edges { node { rxDeltaBytes txDeltaBytes } } } }",
            json!({ "key": site, "from": day(-1), "to": day(1) }),
        )
        .await;
    let edges = history["wireguardPeerHistory"]["edges"].as_array().expect("edges");
    let sum = |field: &str| edges.iter().map(|edge| edge["node"][field].as_u64().expect("delta")).sum::<u64>();
    assert_eq!(json!([sum("rxDeltaBytes"), sum("txDeltaBytes")]), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_times_the_baseline_raises_a_traffic_anomaly_for_that_peer_only() {
    let lab = Lab::up(3, LabOptions::default());
    let directory = tempfile::tempdir().expect("tempdir");
    let argus = Argus::start(
        directory.path(),
        &lab,
        "anomaly_raise_factor = 50.0\nanomaly_warmup_s = 15\nanomaly_floor_bytes_per_s = 20000.0\n\
         anomaly_baseline_time_constant_s = 600",
    )
    .await;
    // the background ping (two per second) is the baseline; let it warm up
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(argus.alerts("TRAFFIC_ANOMALY").await.is_empty(), "normal traffic raises nothing");
    lab.burst(1, 6);
    let raised = argus.raised("an anomaly is raised", "TRAFFIC_ANOMALY").await;
    assert_eq!(raised[0]["publicKey"], lab.site_public_key(1).as_str());
    // the alert measured fifty times the baseline (and the floor)
    let evidence = |name: &str| {
        let evidence = raised[0]["evidence"].as_array().expect("evidence");
        let item = evidence.iter().find(|item| item["name"] == name).unwrap_or_else(|| panic!("{name}: {evidence:?}"));
        item["value"].as_f64().expect("a number")
    };
    let (rate, baseline) = (evidence("rate_bytes_per_s"), evidence("baseline_bytes_per_s"));
    assert!(baseline > 0.0 && rate > 50.0 * baseline && rate > 20_000.0, "rate {rate} against baseline {baseline}");
    // through the burst and after it, no other peer is flagged
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let flagged: Vec<Value> =
            argus.alerts("TRAFFIC_ANOMALY").await.iter().map(|alert| alert["publicKey"].clone()).collect();
        assert_eq!(flagged, vec![json!(lab.site_public_key(1))], "that peer only");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_queries_list_twelve_sites() {
    let lab = Lab::up(12, LabOptions::default());
    let directory = tempfile::tempdir().expect("tempdir");
    let argus = Argus::start(directory.path(), &lab, "").await;
    let peers = argus
        .eventually("twelve peers", Duration::from_secs(20), async |argus| {
            let data = argus
                .graphql("{ wireguardPeers(first: 20) { edges { node { publicKey status endpoint } } } }", json!({}))
                .await;
            let edges = data["wireguardPeers"]["edges"].as_array()?.clone();
            (edges.len() == 12).then_some(edges)
        })
        .await;
    assert!(peers.iter().all(|edge| edge["node"]["status"] == "ACTIVE"), "{peers:?}");
    let stats = argus.graphql("{ wireguardStats { peers { total active stale } } }", json!({})).await;
    assert_eq!(stats["wireguardStats"]["peers"], json!({ "total": 12, "active": 12, "stale": 0 }));
    let hosts = argus.graphql("{ wireguardHosts { host status peerCount } }", json!({})).await;
    assert_eq!(hosts["wireguardHosts"], json!([{ "host": "hub-01", "status": "ALIVE", "peerCount": 12 }]));
}
