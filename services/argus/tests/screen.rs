//! The NOC screen in headless Chromium against `argus run` on the WireGuard lab: signing in, the
//! fleet, a failed site turning stale live with its cause, its alert and acknowledging it, what a
//! viewer and another organisation see, the peer chart, the shift audit's CSV; and the fleet view
//! of 10,000 stored peers (first render, the server's cost of an open screen at rest).

mod common;

use std::time::{Duration, Instant};

use argus_testkit::browser::{self, Browser};
use argus_testkit::lab::{Lab, LabOptions};
use common::Argus;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

/// WireGuard renews handshakes every 120 s while traffic flows: a stale window just above that.
const STALE_AFTER_S: u64 = 135;

async fn eval(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.unwrap_or_else(|error| panic!("{script}: {error}"))
}

/// Polls the JavaScript expression `expression` until it is truthy; its value.
async fn until(client: &Client, what: &str, within: Duration, expression: &str) -> Value {
    let started = Instant::now();
    loop {
        let value = eval(client, &format!("return ({expression});")).await;
        if !(value.is_null() || value == json!(false) || value == json!("") || value == json!(0)) {
            return value;
        }
        if started.elapsed() > within {
            let live = eval(client, "return document.getElementById('live')?.title ?? null").await;
            panic!("{what}: not within {within:?} (live alerts: {live})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Signs out if signed in, then pastes `token` into the sign-in form.
async fn sign_in(client: &Client, url: &str, token: &str) {
    client.goto(url).await.expect("open the screen");
    eval(client, "sessionStorage.clear(); return true;").await;
    client.goto(url).await.expect("open the screen");
    let field =
        client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Id("token")).await.expect("the form");
    field.send_keys(token).await.expect("type the token");
    client.find(Locator::Css("#signin-form button")).await.expect("the button").click().await.expect("sign in");
}

const ROW: &str = "#peer-rows .row";

/// The painted fleet rows' keys.
fn row_keys() -> String {
    format!("[...document.querySelectorAll('{ROW}')].map(row => row.dataset.key)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_screen_shows_a_failed_site_turn_stale_live_and_only_what_each_token_may_see() {
    let lab = Lab::up(2, LabOptions::default());
    let directory = tempfile::tempdir().expect("tempdir");
    let rules = format!("stale_after_s = {STALE_AFTER_S}\nfresh_below_s = 125");
    let argus = Argus::start_on(directory.path(), &lab, "", "", &rules).await;
    let (failed, healthy) = (lab.site_public_key(1), lab.site_public_key(2));
    argus
        .eventually("both sites are projected", Duration::from_secs(20), async |argus| {
            for key in [&failed, &healthy] {
                if argus.peer(key).await["status"] != "ACTIVE" {
                    return None;
                }
            }
            Some(())
        })
        .await;
    let operator = argus.token("TOP_SECRET", "operator");
    let viewer = argus.token("TOP_SECRET", "viewer");
    let stranger = argus.token_of("elsewhere", "TOP_SECRET", "admin");
    let browser = Browser::start(1600, 1000).await;
    let downloads = browser.downloads().to_owned();
    let url = format!("{}/", argus.url);

    browser
        .run("screen", move |client| async move {
            let wait = Duration::from_secs(15);
            sign_in(&client, &url, "not.a.token").await;
            let refused = until(&client, "a refused token is said so", wait, "document.getElementById('signin-error').textContent").await;
            assert!(refused.as_str().unwrap_or("").contains("refused"), "{refused}");

            sign_in(&client, &url, &operator).await;
            let keys = until(&client, "every site is listed", wait, &format!("{}.length >= 2 && {}", row_keys(), row_keys())).await;
            for key in [&failed, &healthy] {
                assert!(keys.as_array().expect("keys").contains(&json!(key)), "{key} listed: {keys}");
            }
            assert!(until(&client, "the token stays out of the URL", wait, "location.href").await.as_str().is_some_and(|href| !href.contains(&operator)));
            until(&client, "the alerts are live", wait, "document.getElementById('live').textContent === 'live'").await;
            eprintln!("signed in, live");

            // the peer chart of the healthy site
            client.find(Locator::Css(&format!("{ROW}[data-key='{healthy}']"))).await.expect("row").click().await.expect("open");
            let note = until(&client, "the chart has points", wait, "/^[1-9][0-9]* observations/.test(document.getElementById('chart-note').textContent) && document.getElementById('chart-note').textContent").await;
            assert!(eval(&client, "return document.querySelectorAll('#rate-chart canvas, #age-chart canvas').length").await.as_u64() >= Some(2), "{note}");
            eval(&client, "location.hash = '#/fleet'; return true;").await;

            // nothing the screen or GraphiQL loaded came from elsewhere
            let origin = url.trim_end_matches('/').to_owned();
            let loaded = eval(&client, "return performance.getEntriesByType('resource').map(entry => entry.name)").await;
            for name in loaded.as_array().expect("entries") {
                assert!(name.as_str().is_some_and(|name| name.starts_with(&origin)), "loaded from outside: {name}");
            }

            // GraphiQL too, with the token the screen signed in with
            client.goto(&format!("{url}graphql")).await.expect("graphiql");
            until(&client, "GraphiQL renders", wait, "document.querySelector('.graphiql-container')").await;
            let loaded = eval(&client, "return performance.getEntriesByType('resource').map(entry => entry.name)").await;
            for name in loaded.as_array().expect("entries") {
                assert!(name.as_str().is_some_and(|name| name.starts_with(&origin)), "GraphiQL loaded from outside: {name}");
            }
            client.goto(&url).await.expect("back to the screen");
            until(&client, "the fleet again", wait, &format!("{}.length >= 2", row_keys())).await;
            until(&client, "the alerts are live again", wait, "document.getElementById('live').textContent === 'live'").await;

            // the failed site turns stale, with its cause, while the page stays loaded
            eval(&client, "window.argusStillLoaded = true; return true;").await;
            lab.fail(1);
            let failed_at = Instant::now();
            let stale_row = format!("document.querySelector(\"{ROW}[data-key='{failed}']\")");
            let cause = until(
                &client,
                "the failed site turns stale with its cause",
                Duration::from_secs(STALE_AFTER_S + 5),
                &format!("{stale_row}?.dataset.status === 'STALE' && {stale_row}.children[3].textContent"),
            )
            .await;
            eprintln!("stale on the page {:.1} s after the site failed, cause {cause}", failed_at.elapsed().as_secs_f64());
            let live = eval(&client, "return [document.getElementById('live').textContent, document.getElementById('live').title]").await;
            eprintln!("live alerts: {live}; sockets closed: {:?}", argus.metric("argus_api_sockets_closed_total").await);
            assert_eq!(eval(&client, "return window.argusStillLoaded === true").await, json!(true), "no reload");
            let stale_count = "document.querySelector('#counts [data-status=STALE] b').textContent";
            until(&client, "the stale peer is counted", wait, &format!("{stale_count} === '1'")).await;
            let card = format!("document.querySelector(\"#open-alerts [data-kind='PEER_STALE'][data-key='{failed}']\")");
            let text = until(&client, "its alert is listed live", wait, &format!("{card}?.textContent")).await;
            assert!(text.as_str().unwrap_or("").contains("Probable cause"), "{text}");
            assert_eq!(argus.raised("the failed site's alert", "PEER_STALE").await.len(), 1);

            // an operator acknowledges it
            eval(&client, &format!("{card}.querySelector('button.acknowledge').click(); return true;")).await;
            until(&client, "acknowledged", wait, &format!("{card}?.textContent.includes('acknowledged by developer')")).await;
            let listed = argus
                .graphql("{ wireguardAlerts(filter: {kind: PEER_STALE}) { nodes { publicKey acknowledgedBy } } }", json!({}))
                .await;
            assert_eq!(listed["wireguardAlerts"]["nodes"], json!([{ "publicKey": failed, "acknowledgedBy": "developer" }]));
            browser::screenshot(&client, "fleet").await;

            // the shift audit's CSV holds the active peers
            eval(&client, "location.hash = '#/audit'; return true;").await;
            until(&client, "the audit view", wait, "!document.getElementById('view-audit').hidden").await;
            client.find(Locator::Css("#audit-form button[type=submit]")).await.expect("show").click().await.expect("show");
            until(&client, "the audit lists peers", wait, "document.getElementById('audit-note').textContent.includes('peers active')").await;
            client.find(Locator::Id("audit-csv")).await.expect("csv").click().await.expect("download");
            let started = Instant::now();
            let csv = loop {
                let done = std::fs::read_dir(&downloads).expect("downloads").flatten().find(|entry| {
                    entry.path().extension().is_some_and(|extension| extension == "csv")
                });
                if let Some(entry) = done {
                    break std::fs::read_to_string(entry.path()).expect("csv");
                }
                assert!(started.elapsed() < wait, "no CSV downloaded");
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert!(csv.starts_with("\"host\",\"interface\""), "{csv}");
            for key in [&failed, &healthy] {
                assert!(csv.contains(key.as_str()), "{key} in the audit: {csv}");
            }

            // a viewer sees the alert but no control to acknowledge it
            sign_in(&client, &url, &viewer).await;
            until(&client, "the viewer sees the alert", wait, &card).await;
            assert_eq!(eval(&client, "return document.querySelectorAll('button.acknowledge').length").await, json!(0));

            // another organisation sees none of these peers or alerts
            sign_in(&client, &url, &stranger).await;
            until(&client, "the stranger's fleet is shown", wait, "document.body.dataset.fleetRendered === 'true'").await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(eval(&client, &format!("return {}", row_keys())).await, json!([]));
            assert_eq!(eval(&client, "return document.querySelectorAll('#open-alerts .alert, #resolved-alerts .alert').length").await, json!(0));
            let page = eval(&client, "return document.body.innerText").await;
            assert!(!page.as_str().unwrap_or("").contains(&failed[..10]), "{page}");

            // kiosk: the fleet and the alerts, nothing to press
            sign_in(&client, &url, &operator).await;
            until(&client, "signed in", wait, &format!("{}.length >= 2", row_keys())).await;
            client.goto(&format!("{url}?kiosk=1")).await.expect("kiosk");
            until(&client, "the kiosk shows the alert", wait, &card).await;
            until(&client, "the kiosk's alerts are live", wait, "document.getElementById('live').textContent === 'live'").await;
            assert_eq!(eval(&client, "return [...document.querySelectorAll('nav, #filters, button')].filter(e => e.offsetParent !== null).length").await, json!(0));
        })
        .await;
}

/// CPU time (user and system) `pid` has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // the fields after the command's closing parenthesis: utime and stime are the 12th and 13th
    let fields: Vec<&str> = stat.rsplit_once(')').expect("stat").1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_peers_render_within_a_second_and_an_open_screen_costs_the_server_little_at_rest() {
    const PEERS_PER_HOST: u32 = 500;
    const HOSTS: u32 = 20;
    const REST: Duration = Duration::from_secs(40);
    let directory = tempfile::tempdir().expect("tempdir");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    {
        let log = argus_log::EmbeddedLog::open(&directory.path().join("data/log"), 4).expect("log");
        let mut fleet = argus_core::synthetic::Fleet::new(argus_core::synthetic::FleetSpec {
            org: "e2e".parse().expect("org"),
            hosts: HOSTS,
            peers_per_host: PEERS_PER_HOST,
            scan_interval_ms: 10_000,
            start: now - 10_000,
        });
        let mut events = Vec::new();
        fleet.next_scan(&mut events);
        for event in &events {
            let header = event.header();
            let mut bytes = Vec::new();
            argus_core::codec::encode_event(event, &mut bytes);
            let key = format!("{}/{}", header.org_id, header.host);
            argus_log::EventLog::append(&log, "wireguard.observations", key.as_bytes(), &bytes).await.expect("append");
        }
        argus_log::EventLog::flush(&log).await.expect("flush");
    }
    let argus = Argus::start_config(directory.path(), "partitions = 4\n[collector]\nenabled = false\n").await;
    let total = (HOSTS * PEERS_PER_HOST) as u64;
    argus
        .eventually("every peer is projected", Duration::from_secs(60), async |argus| {
            let stats = argus.graphql("{ wireguardStats { peers { total } } }", json!({})).await;
            (stats["wireguardStats"]["peers"]["total"].as_u64() == Some(total)).then_some(())
        })
        .await;
    let pid = argus.pid().expect("argus runs");
    let token = argus.token("TOP_SECRET", "viewer");
    let browser = Browser::start(1600, 1000).await;
    let url = format!("{}/", argus.url);
    browser
        .run("ten-thousand", move |client| async move {
            client.goto(&url).await.expect("open");
            eval(&client, &format!("sessionStorage.setItem('argus.token', {}); return true;", json!(token))).await;
            let mut renders = Vec::new();
            for _ in 0..3 {
                client.goto(&url).await.expect("open");
                until(&client, "the fleet renders", Duration::from_secs(20), "document.body.dataset.fleetRendered === 'true'").await;
                let millis = eval(&client, "return performance.getEntriesByName('argus-fleet-rendered')[0].startTime").await;
                eprintln!("rendered in {millis} ms");
                renders.push(millis.as_f64().expect("milliseconds"));
            }
            let counted = eval(&client, "return document.querySelector('#counts .count b').textContent").await;
            assert_eq!(counted, json!(total.to_string()), "every peer counted");
            let painted = eval(&client, &format!("return document.querySelectorAll('{ROW}').length")).await;
            assert!(painted.as_u64().is_some_and(|rows| rows > 10 && rows < 100), "only the rows in sight are painted: {painted}");
            let first = renders[0];
            eprintln!("first render of {total} peers: {renders:?} ms (navigation to the painted fleet)");
            assert!(renders.iter().all(|&millis| millis < 1_000.0), "first render {first} ms: {renders:?}");

            // at rest: the server's CPU with the screen open, against the same time without it
            tokio::time::sleep(Duration::from_secs(5)).await;
            let before = cpu_seconds(pid);
            tokio::time::sleep(REST).await;
            let open = cpu_seconds(pid) - before;
            client.goto("about:blank").await.expect("close the screen");
            tokio::time::sleep(Duration::from_secs(2)).await;
            let before = cpu_seconds(pid);
            tokio::time::sleep(REST).await;
            let closed = cpu_seconds(pid) - before;
            let share = (open - closed).max(0.0) / REST.as_secs_f64();
            eprintln!(
                "server CPU at rest over {REST:?}: {open:.2} s with the screen open, {closed:.2} s without: the screen costs {:.2} % of a core",
                share * 100.0
            );
            assert!(share < 0.02, "one open screen costs {:.2} % of a core", share * 100.0);
        })
        .await;
}
