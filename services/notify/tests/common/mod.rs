//! What the sink tests share: alerts to publish and the alert topic they go to.

use std::time::{SystemTime, UNIX_EPOCH};

use argus_core::codec::AlertEncoding;
use argus_core::{Alert, AlertState, Clearance};
use argus_log::{EmbeddedLog, EventLog};

pub const TOPIC: &str = "wireguard.alerts";
pub const SECRET: &str = "a-webhook-secret-of-at-least-32-bytes";

/// Alert `n` of `org` at `clearance`, raised a minute ago (or resolved now).
pub fn alert(n: u8, org: &str, clearance: Clearance, state: AlertState) -> Alert {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64;
    argus_core::synthetic::stale_alert(n.into(), org, clearance, state, now)
}

pub async fn publish(log: &EmbeddedLog, alerts: &[Alert]) {
    for alert in alerts {
        let mut bytes = Vec::new();
        AlertEncoding::Avro.encode(alert, &mut bytes);
        log.append(TOPIC, format!("{}/{}", alert.org_id, alert.host).as_bytes(), &bytes).await.expect("append");
    }
    log.flush().await.expect("flush");
}
