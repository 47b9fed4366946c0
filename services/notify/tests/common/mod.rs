//! What the sink tests share: alerts to publish and the alert topic they go to.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use argus_core::codec::AlertEncoding;
use argus_core::{Alert, AlertId, AlertKind, AlertState, Clearance, Severity};
use argus_log::{EmbeddedLog, EventLog};

pub const TOPIC: &str = "wireguard.alerts";
pub const SECRET: &str = "a-webhook-secret-of-at-least-32-bytes";

/// Alert `n` of `org` at `clearance`, raised a minute ago (or resolved now).
pub fn alert(n: u8, org: &str, clearance: Clearance, state: AlertState) -> Alert {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64;
    Alert {
        alert_id: AlertId::from_bytes([n; 16]),
        kind: AlertKind::PeerStale,
        severity: Severity::Critical,
        state,
        org_id: org.parse().expect("org"),
        host: format!("hub-{}", n % 3).parse().expect("host"),
        interface: "wg0".parse().expect("interface"),
        public_key: None,
        clearance,
        probable_cause: None,
        evidence: BTreeMap::from([("handshake_age_s".into(), 200.0)]),
        summary: format!("no handshake: FOB {n}"),
        raised_at: now - 60_000,
        resolved_at: (state == AlertState::Resolved).then_some(now),
        revised_at: None,
        silenced: false,
        incident_id: None,
    }
}

pub async fn publish(log: &EmbeddedLog, alerts: &[Alert]) {
    for alert in alerts {
        let mut bytes = Vec::new();
        AlertEncoding::Avro.encode(alert, &mut bytes);
        log.append(TOPIC, format!("{}/{}", alert.org_id, alert.host).as_bytes(), &bytes).await.expect("append");
    }
    log.flush().await.expect("flush");
}
