//! Alert sinks: each configured sink is a durable consumer of the alert topic (its own consumer
//! group, so its own position) that delivers every transition its filter lets through, in order,
//! at least once, retrying a down receiver with backoff without ever blocking the processor or
//! another sink. One module per sink ([`webhook`], [`alertmanager`], [`syslog`]); one delivery loop
//! ([`delivery`]) for all.

pub mod alertmanager;
pub mod delivery;
pub mod filter;
pub mod notification;
pub mod syslog;
pub mod webhook;

use std::time::Duration;

use serde::Deserialize;

pub use self::alertmanager::{AlertmanagerConfig, AlertmanagerSink};
pub use self::delivery::{DeliveryError, Sink, run_sink};
pub use self::filter::SinkFilter;
pub use self::notification::{Notification, dedup_key};
pub use self::syslog::{SyslogConfig, SyslogFormat, SyslogSink, SyslogTransport};
pub use self::webhook::{WebhookConfig, WebhookFormat, WebhookSink};

/// One `[[alerts.sinks]]` entry: a name (its consumer group and its metrics label), what it may
/// carry, and exactly one receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Names the sink in metrics and logs and keeps its position (`argus-sink-<name>`): renaming a
    /// sink starts it again from the oldest transition `max_age_s` lets through.
    pub name: String,
    pub filter: SinkFilter,
    /// A transition older than this when its turn comes is counted (`outcome="expired"`) and not
    /// sent: a receiver back after a long outage, or a sink added to a running system, gets the
    /// recent past, not the whole history.
    #[serde(default = "default_max_age_s")]
    pub max_age_s: u64,
    /// The longest wait between two attempts at a failing delivery (the first retry waits 1 s).
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    pub webhook: Option<WebhookConfig>,
    pub alertmanager: Option<AlertmanagerConfig>,
    pub syslog: Option<SyslogConfig>,
}

const fn default_max_age_s() -> u64 {
    3_600
}

const fn default_max_backoff_ms() -> u64 {
    30_000
}

/// Why a sink's configuration cannot be used; each names the sink and the field.
#[derive(Debug, thiserror::Error)]
pub enum SinkConfigError {
    #[error("alerts.sinks: name {0:?} must be 1-64 letters, digits, '-' or '_'")]
    Name(String),
    #[error("alerts.sinks: two sinks are named {0:?}; each keeps its own position under its name")]
    Duplicate(String),
    #[error("alerts.sinks {0:?}: give exactly one receiver (webhook, alertmanager or syslog)")]
    Receiver(String),
    #[error("alerts.sinks {sink:?}: filter.orgs must list at least one organisation")]
    NoOrgs { sink: String },
    #[error("alerts.sinks {sink:?}: {field}: {reason}")]
    Field { sink: String, field: &'static str, reason: String },
}

impl SinkConfig {
    /// The sink's consumer group on the alert topic.
    pub fn group(&self) -> String {
        format!("argus-sink-{}", self.name)
    }

    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_s)
    }

    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms.max(1_000))
    }

    /// Checks every sink of a configuration, without connecting to any receiver.
    pub fn validate_all(sinks: &[SinkConfig]) -> Result<(), SinkConfigError> {
        let mut names = std::collections::BTreeSet::new();
        for sink in sinks {
            let valid_name = (1..=64).contains(&sink.name.len())
                && sink.name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
            if !valid_name {
                return Err(SinkConfigError::Name(sink.name.clone()));
            }
            if !names.insert(sink.name.as_str()) {
                return Err(SinkConfigError::Duplicate(sink.name.clone()));
            }
            if sink.filter.orgs.is_empty() {
                return Err(SinkConfigError::NoOrgs { sink: sink.name.clone() });
            }
            let checked = match (&sink.webhook, &sink.alertmanager, &sink.syslog) {
                (Some(webhook), None, None) => webhook.validate(),
                (None, Some(alertmanager), None) => alertmanager.validate(),
                (None, None, Some(syslog)) => syslog.validate(),
                _ => return Err(SinkConfigError::Receiver(sink.name.clone())),
            };
            checked.map_err(|(field, reason)| sink.field_error(field, reason))?;
        }
        Ok(())
    }

    fn field_error(&self, field: &'static str, reason: String) -> SinkConfigError {
        SinkConfigError::Field { sink: self.name.clone(), field, reason }
    }

    /// The sink's receiver, ready to deliver (connecting on the first delivery). `host_name` is
    /// this machine's, the default syslog HOSTNAME.
    pub fn receiver(&self, host_name: &str) -> Result<Box<dyn Sink>, SinkConfigError> {
        let built: Result<Box<dyn Sink>, _> = match (&self.webhook, &self.alertmanager, &self.syslog) {
            (Some(webhook), None, None) => WebhookSink::new(webhook).map(|sink| Box::new(sink) as Box<dyn Sink>),
            (None, Some(alertmanager), None) => {
                AlertmanagerSink::new(alertmanager).map(|sink| Box::new(sink) as Box<dyn Sink>)
            }
            (None, None, Some(syslog)) => {
                SyslogSink::new(syslog, host_name).map(|sink| Box::new(sink) as Box<dyn Sink>)
            }
            _ => return Err(SinkConfigError::Receiver(self.name.clone())),
        };
        built.map_err(|(field, reason)| self.field_error(field, reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sinks(text: &str) -> Vec<SinkConfig> {
        #[derive(Deserialize)]
        struct Alerts {
            sinks: Vec<SinkConfig>,
        }
        toml::from_str::<Alerts>(text).expect("sinks").sinks
    }

    const FILTER: &str = "[sinks.filter]\norgs = [\"acme\"]\nmax_clearance = \"SECRET\"\n";
    const WEBHOOK: &str =
        "[sinks.webhook]\nurl = \"https://hooks.example/argus\"\nsecret = \"a-webhook-secret-of-at-least-32-bytes\"\n";
    const SYSLOG: &str = "[sinks.syslog]\naddress = \"192.0.2.10:6514\"\ntransport = \"tcp\"\n";

    #[test]
    fn each_sink_names_what_is_wrong_with_it() {
        let sink = |name: &str, receivers: &str| format!("[[sinks]]\nname = \"{name}\"\n{FILTER}{receivers}");
        assert!(
            SinkConfig::validate_all(&sinks(&format!("{}{}", sink("pager", WEBHOOK), sink("siem", SYSLOG)))).is_ok()
        );
        let error = |text: String| SinkConfig::validate_all(&sinks(&text)).expect_err("refused").to_string();
        let twice = error(format!("{}{}", sink("pager", WEBHOOK), sink("pager", SYSLOG)));
        assert!(twice.contains("two sinks are named \"pager\""), "{twice}");
        assert!(error(sink("pager", "")).contains("exactly one receiver"));
        assert!(error(sink("pager", &format!("{WEBHOOK}{SYSLOG}"))).contains("exactly one receiver"));
        assert!(error(sink("no spaces", WEBHOOK)).contains("name \"no spaces\""));
        let plain = error(sink("pager", "[sinks.webhook]\nurl = \"http://hooks.example/\"\nformat = \"text\"\n"));
        assert!(plain.contains("\"pager\": webhook.url") && plain.contains("loopback"), "{plain}");
        let facility =
            error(sink("siem", &SYSLOG.replace("transport = \"tcp\"", "transport = \"tcp\"\nfacility = \"kern\"")));
        assert!(facility.contains("syslog.facility"), "{facility}");
        let no_orgs = SinkConfig::validate_all(&sinks(&format!(
            "[[sinks]]\nname = \"pager\"\n[sinks.filter]\norgs = []\nmax_clearance = \"SECRET\"\n{WEBHOOK}"
        )))
        .expect_err("no orgs")
        .to_string();
        assert!(no_orgs.contains("filter.orgs"), "{no_orgs}");
    }
}
