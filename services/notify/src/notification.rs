//! What a sink sends for one alert transition: the versioned JSON body
//! (`schemas/json/alert-notification.v1.schema.json`), its deduplication key and its one line of text.

use argus_core::{Alert, AlertState};
use serde::Serialize;

/// The body's `version`; a change a receiver must notice gets a new version and a new schema file.
pub const NOTIFICATION_VERSION: u32 = 1;

/// The webhook body (and the syslog JSON message). `alert` has the fields of the alert topic's
/// JSON encoding (`schemas/avro/Alert.v3.avsc`): keys in base64, times in milliseconds.
#[derive(Debug, Serialize)]
pub struct Notification<'a> {
    pub version: u32,
    pub dedup_key: String,
    /// One line an operator reads: state, severity, kind, where, summary and cause.
    pub text: String,
    /// The probable cause in words, if the alert has one.
    pub cause_explanation: Option<&'static str>,
    pub alert: &'a Alert,
}

impl<'a> Notification<'a> {
    pub fn of(alert: &'a Alert) -> Self {
        Self {
            version: NOTIFICATION_VERSION,
            dedup_key: dedup_key(alert),
            text: text(alert),
            cause_explanation: alert.probable_cause.map(|cause| cause.explanation()),
            alert,
        }
    }
}

/// The same for every delivery of one transition and different for any other: the alert id, its
/// state, and its revision (a revised cause is a new transition of a raised alert, not a repeat).
pub fn dedup_key(alert: &Alert) -> String {
    format!("{}/{}/{}", alert.alert_id, alert.state.name(), alert.revised_at.unwrap_or(0))
}

/// `RAISED CRITICAL PEER_STALE acme/hub-1/wg0: no handshake: FOB 3 ... (cause: ...)`
pub fn text(alert: &Alert) -> String {
    let mut line = format!(
        "{} {} {} {}/{}/{}: {}",
        alert.state.name(),
        alert.severity.name(),
        alert.kind.name(),
        alert.org_id,
        alert.host,
        alert.interface,
        alert.summary
    );
    if let Some(cause) = alert.probable_cause {
        line.push_str(" (");
        line.push_str(cause.explanation());
        line.push(')');
    }
    line
}

/// When the transition happened (milliseconds): its resolution, its revision, or its raising.
pub fn transition_at(alert: &Alert) -> i64 {
    match alert.state {
        AlertState::Resolved => alert.resolved_at.unwrap_or(alert.raised_at),
        AlertState::Raised => alert.revised_at.unwrap_or(alert.raised_at),
    }
}

/// The wall clock in milliseconds, the unit of the alert's times.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

/// `2026-06-01T00:00:00.000Z`.
pub(crate) fn rfc3339(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
