//! The syslog sink against a real rsyslog (Debian's, started by the test): RFC 5424 messages over
//! UDP, TCP and TLS that rsyslog parses into the expected header and structured data, with the
//! notification JSON or a CEF event whose fields parse back to the alert's; a receiver that is not
//! there is a retryable failure.

use std::collections::BTreeMap;

use argus_core::{Alert, AlertId, AlertKind, AlertState, Clearance, ProbableCause, PublicKey, Severity};
use argus_notify::{DeliveryError, Sink, SyslogConfig, SyslogSink, dedup_key};
use argus_testkit::syslog::Rsyslog;

fn alert(n: u8, state: AlertState) -> Alert {
    Alert {
        alert_id: AlertId::from_bytes([n; 16]),
        kind: AlertKind::PeerStale,
        severity: Severity::Critical,
        state,
        org_id: "acme".parse().expect("org"),
        host: "hub-1".parse().expect("host"),
        interface: "wg0".parse().expect("interface"),
        public_key: Some(PublicKey::from_bytes([n; 32])),
        clearance: Clearance::Restricted,
        probable_cause: Some(ProbableCause::PathDown),
        evidence: BTreeMap::from([("handshake_age_s".into(), 240.0)]),
        summary: format!("no handshake: FOB {n} | a=b \\ c"),
        raised_at: 1_780_272_000_000,
        resolved_at: (state == AlertState::Resolved).then_some(1_780_272_600_000),
        revised_at: None,
        silenced: false,
        incident_id: None,
    }
}

fn sink(address: std::net::SocketAddr, transport: &str, format: &str) -> SyslogSink {
    let mut text =
        format!("address = \"{address}\"\ntransport = \"{transport}\"\nformat = \"{format}\"\ntimeout_ms = 3000\n");
    if transport == "tls" {
        let ca = argus_testkit::repository_file("services/log/tests/fixtures/ca.pem");
        text.push_str(&format!("ca_file = \"{}\"\nserver_name = \"localhost\"\n", ca.display()));
    }
    let config: SyslogConfig = toml::from_str(&text).expect("syslog config");
    SyslogSink::new(&config, "argus-central").expect("sink")
}

/// A CEF:0 event's seven header fields and its extension, unescaped.
fn parse_cef(event: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let mut header = Vec::new();
    let mut field = String::new();
    let mut characters = event.chars();
    while header.len() < 7 {
        match characters.next().expect("seven header fields") {
            '\\' => field.push(characters.next().expect("escaped")),
            '|' => header.push(std::mem::take(&mut field)),
            other => field.push(other),
        }
    }
    // the extension: `key=value` pairs; a value runs until the space before the next unescaped `=`'s key
    let rest: String = characters.collect();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for character in rest.chars() {
        if escaped {
            current.push(match character {
                'n' => '\n',
                'r' => '\r',
                other => other,
            });
            escaped = false;
            continue;
        }
        match character {
            '\\' => escaped = true,
            '=' => {
                let (value, key) = match current.rfind(' ') {
                    Some(space) => (current[..space].to_owned(), current[space + 1..].to_owned()),
                    None => (String::new(), current.clone()),
                };
                if let Some(last) = pairs.last_mut() {
                    last.1 = value;
                }
                pairs.push((key, String::new()));
                current.clear();
            }
            other => current.push(other),
        }
    }
    if let Some(last) = pairs.last_mut() {
        last.1 = current;
    }
    (header, pairs.into_iter().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_parses_the_messages_over_udp_tcp_and_tls_and_their_cef_fields() {
    let rsyslog = Rsyslog::start();
    let raised = alert(1, AlertState::Raised);
    let resolved = alert(1, AlertState::Resolved);
    for (transport, address, format) in
        [("udp", rsyslog.udp, "json"), ("tcp", rsyslog.tcp, "cef"), ("tls", rsyslog.tls, "json")]
    {
        let sink = sink(address, transport, format);
        sink.deliver(&raised).await.unwrap_or_else(|error| panic!("{transport}: {error}"));
        sink.deliver(&resolved).await.unwrap_or_else(|error| panic!("{transport}: {error}"));
        let messages = rsyslog.wait_for(transport, 2);
        for (message, alert) in messages.iter().zip([&raised, &resolved]) {
            assert_eq!(message.version, "1", "{transport}: parsed as RFC 5424: {message:?}");
            assert_eq!(
                message.pri,
                if alert.state == AlertState::Raised { "130" } else { "133" },
                "local0.crit / notice"
            );
            assert_eq!((message.hostname.as_str(), message.app_name.as_str()), ("argus-central", "argus"));
            assert_eq!(message.msgid, "PEER_STALE");
            let timestamp =
                if alert.state == AlertState::Raised { "2026-06-01T00:00:00" } else { "2026-06-01T00:10:00" };
            assert!(message.timestamp.starts_with(timestamp), "{transport}: {message:?}");
            let sd = format!(
                "[argus@32473 alert_id=\"{}\" state=\"{}\" org=\"acme\" dedup_key=\"{}\"]",
                alert.alert_id,
                alert.state.name(),
                dedup_key(alert)
            );
            assert_eq!(message.structured_data, sd, "{transport}");
            match format {
                "json" => {
                    let body: serde_json::Value = serde_json::from_str(&message.msg).expect("the JSON notification");
                    assert_eq!(body["dedup_key"], dedup_key(alert).as_str());
                    assert_eq!(body["alert"]["summary"], alert.summary.as_str());
                }
                _ => {
                    let (header, extension) = parse_cef(&message.msg);
                    assert_eq!(header[..3], ["CEF:0", "Argus", "Argus WireGuard"], "{header:?}");
                    assert_eq!(header[4..], ["PEER_STALE", "no handshake", "9"], "{header:?}");
                    assert_eq!(extension["msg"], alert.summary, "{extension:?}");
                    assert_eq!(extension["act"], alert.state.name());
                    assert_eq!((extension["cs1Label"].as_str(), extension["cs1"].as_str()), ("org", "acme"));
                    assert_eq!(extension["cs3"], alert.alert_id.to_string());
                    assert_eq!(extension["cs5"], "PATH_DOWN");
                    assert_eq!(extension["cs6"], dedup_key(alert));
                    assert_eq!(extension["flexString1"], alert.public_key.expect("key").to_string());
                    assert_eq!(extension["dvchost"], "hub-1");
                    assert_eq!(extension.contains_key("end"), alert.state == AlertState::Resolved);
                }
            }
        }
    }
    // nothing listens on this port: a failure to retry, not a refusal
    let absent = sink(std::net::SocketAddr::from(([127, 0, 0, 1], argus_testkit::free_port())), "tcp", "cef");
    assert!(matches!(absent.deliver(&raised).await, Err(DeliveryError::Unavailable(_))));
}
