//! The Prometheus Alertmanager sink: posts each transition to `POST /api/v2/alerts` as Alertmanager
//! expects from an alert source — labels that identify the alert, annotations that describe it,
//! `startsAt`, and an `endsAt` a few re-send intervals ahead while it is open (re-sent every
//! interval, so Alertmanager resolves it by itself if Argus goes away) or its resolution time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use argus_core::{Alert, AlertId, AlertState};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::delivery::{DeliveryError, Sink};
use crate::notification::{now_millis, rfc3339, text};

/// An open alert's `endsAt` is this many re-send intervals ahead (as Prometheus does): one or two
/// missed re-sends do not resolve it, a stopped Argus does within minutes.
const INTERVALS_AHEAD: u32 = 4;

/// `[alerts.sinks.alertmanager]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// The Alertmanager's base URL (`https://am.example:9093`); plain `http://` only to loopback.
    pub url: String,
    /// How often open alerts are sent again.
    #[serde(default = "default_resend_interval_s")]
    pub resend_interval_s: u64,
    /// Each attempt's limit; a slower Alertmanager counts as down and is tried again.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// PEM roots the Alertmanager's certificate must chain to; unset: the system's.
    pub ca_file: Option<PathBuf>,
}

const fn default_resend_interval_s() -> u64 {
    60
}

const fn default_timeout_ms() -> u64 {
    10_000
}

impl AlertmanagerConfig {
    /// The field at fault and why.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        argus_log::outbound_url(&self.url).map_err(|reason| ("alertmanager.url", reason))?;
        if self.resend_interval_s == 0 {
            return Err(("alertmanager.resend_interval_s", "must be above 0".into()));
        }
        if self.timeout_ms == 0 {
            return Err(("alertmanager.timeout_ms", "must be above 0".into()));
        }
        Ok(())
    }
}

/// One alert as `POST /api/v2/alerts` takes it (`postableAlert`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    /// What identifies the alert to Alertmanager (grouping, silences, inhibition): the same for
    /// every transition and revision of one Argus alert.
    labels: BTreeMap<&'static str, String>,
    /// What describes it, and may change with a revision.
    annotations: BTreeMap<&'static str, String>,
    starts_at: String,
    ends_at: String,
}

impl PostableAlert {
    fn of(alert: &Alert, open_until: i64) -> Self {
        let mut labels = BTreeMap::from([
            ("alertname", alert.kind.name().to_owned()),
            ("alert_id", alert.alert_id.to_string()),
            ("org", alert.org_id.to_string()),
            ("host", alert.host.to_string()),
            ("interface", alert.interface.to_string()),
            ("severity", alert.severity.name().to_ascii_lowercase()),
        ]);
        if let Some(key) = &alert.public_key {
            labels.insert("public_key", key.to_string());
        }
        let mut annotations = BTreeMap::from([("summary", alert.summary.clone()), ("description", text(alert))]);
        if let Some(cause) = alert.probable_cause {
            annotations.insert("probable_cause", cause.name().to_owned());
            annotations.insert("cause", cause.explanation().to_owned());
        }
        if let Some(incident) = alert.incident_id {
            annotations.insert("incident_id", incident.to_string());
        }
        let ends_at = match alert.state {
            AlertState::Resolved => alert.resolved_at.unwrap_or(alert.raised_at),
            AlertState::Raised => open_until,
        };
        Self { labels, annotations, starts_at: rfc3339(alert.raised_at), ends_at: rfc3339(ends_at) }
    }
}

/// Posts transitions to one Alertmanager and keeps the alerts it holds open there alive.
#[derive(Debug)]
pub struct AlertmanagerSink {
    client: reqwest::Client,
    alerts_url: reqwest::Url,
    resend_interval: Duration,
    /// The open alerts the Alertmanager was given, by id. Held across each post, so a re-send
    /// never races a resolution and revives it.
    open: Mutex<BTreeMap<AlertId, Alert>>,
}

impl AlertmanagerSink {
    /// Checks `config` and builds the client; connects on the first delivery.
    pub fn new(config: &AlertmanagerConfig) -> Result<Self, (&'static str, String)> {
        config.validate()?;
        let base = argus_log::outbound_url(&config.url).map_err(|reason| ("alertmanager.url", reason))?;
        let alerts_url = base
            .join(&format!("{}/api/v2/alerts", base.path().trim_end_matches('/')))
            .map_err(|error| ("alertmanager.url", error.to_string()))?;
        let client = argus_log::https_client(Duration::from_millis(config.timeout_ms), config.ca_file.as_deref())
            .map_err(|reason| ("alertmanager.ca_file", reason))?;
        Ok(Self {
            client,
            alerts_url,
            resend_interval: Duration::from_secs(config.resend_interval_s),
            open: Mutex::new(BTreeMap::new()),
        })
    }

    fn open_until(&self) -> i64 {
        now_millis().saturating_add(i64::try_from((self.resend_interval * INTERVALS_AHEAD).as_millis()).unwrap_or(0))
    }

    async fn post(&self, alerts: &[PostableAlert]) -> Result<(), DeliveryError> {
        let response = self.client.post(self.alerts_url.clone()).json(alerts).send().await.map_err(|error| {
            DeliveryError::Unavailable(format!("{}: {}", self.alerts_url, argus_log::error_chain(&error)))
        })?;
        DeliveryError::from_status(&self.alerts_url, response.status())
    }
}

/// Keeps `alert` among the open ones while it is raised, and forgets it once resolved.
fn hold_open(open: &mut BTreeMap<AlertId, Alert>, alert: &Alert) {
    match alert.state {
        AlertState::Raised => open.insert(alert.alert_id, alert.clone()),
        AlertState::Resolved => open.remove(&alert.alert_id),
    };
}

#[async_trait]
impl Sink for AlertmanagerSink {
    async fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let mut open = self.open.lock().await;
        self.post(&[PostableAlert::of(alert, self.open_until())]).await?;
        hold_open(&mut open, alert);
        Ok(())
    }

    async fn recall(&self, alert: &Alert) {
        hold_open(&mut *self.open.lock().await, alert);
    }

    fn refresh_every(&self) -> Option<Duration> {
        Some(self.resend_interval)
    }

    async fn refresh(&self) -> Result<usize, DeliveryError> {
        let open = self.open.lock().await;
        let until = self.open_until();
        let alerts: Vec<PostableAlert> = open.values().map(|alert| PostableAlert::of(alert, until)).collect();
        for chunk in alerts.chunks(500) {
            self.post(chunk).await?;
        }
        Ok(alerts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_core::synthetic::stale_alert;
    use argus_core::{Clearance, ProbableCause, PublicKey, Severity};

    #[test]
    fn labels_identify_the_alert_and_annotations_describe_it() {
        let mut alert = Alert {
            severity: Severity::Warning,
            public_key: Some(PublicKey::from_bytes([7; 32])),
            raised_at: 1_780_272_000_000,
            ..stale_alert(1, "acme", Clearance::Restricted, AlertState::Raised, 1_780_272_060_000)
        };
        let raised = PostableAlert::of(&alert, 1_780_272_240_000);
        assert_eq!(raised.labels["alertname"], "PEER_STALE");
        assert_eq!(raised.labels["severity"], "warning");
        assert_eq!(raised.labels["public_key"], PublicKey::from_bytes([7; 32]).to_string());
        assert_eq!(raised.starts_at, "2026-06-01T00:00:00.000Z");
        assert_eq!(raised.ends_at, "2026-06-01T00:04:00.000Z", "open: ends ahead, re-sent before");
        alert.probable_cause = Some(ProbableCause::PathDown);
        alert.revised_at = Some(1_780_272_060_000);
        let revised = PostableAlert::of(&alert, 1_780_272_300_000);
        assert_eq!(revised.labels, raised.labels, "a revision is the same alert to Alertmanager");
        assert_eq!(revised.annotations["probable_cause"], "PATH_DOWN");
        alert.state = AlertState::Resolved;
        alert.resolved_at = Some(1_780_272_120_000);
        let resolved = PostableAlert::of(&alert, 1_780_272_360_000);
        assert_eq!(resolved.ends_at, "2026-06-01T00:02:00.000Z", "resolved: ends when it resolved");
        assert_eq!(resolved.labels, raised.labels);
    }

    #[test]
    fn an_alertmanager_needs_https_beyond_loopback_and_a_resend_interval() {
        let config = |text: &str| toml::from_str::<AlertmanagerConfig>(text).expect("alertmanager");
        assert!(config("url = \"https://am.example:9093\"").validate().is_ok());
        assert!(config("url = \"http://127.0.0.1:9093\"").validate().is_ok());
        assert_eq!(config("url = \"http://am.example:9093\"").validate().expect_err("plain").0, "alertmanager.url");
        let (field, _) = config("url = \"https://am.example\"\nresend_interval_s = 0").validate().expect_err("zero");
        assert_eq!(field, "alertmanager.resend_interval_s");
        let sink = AlertmanagerSink::new(&config("url = \"https://am.example:9093/prefix/\"")).expect("sink");
        assert_eq!(sink.alerts_url.as_str(), "https://am.example:9093/prefix/api/v2/alerts");
    }
}
