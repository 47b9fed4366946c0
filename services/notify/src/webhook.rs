//! The webhook sink: POSTs each transition as the versioned JSON body (or, for Slack and Teams
//! incoming webhooks, `{"text": ...}`), signed with HMAC-SHA256 over the timestamp and the body.
//!
//! A receiver verifies a delivery by computing `HMAC-SHA256(secret, "<X-Argus-Timestamp>.<body>")`,
//! comparing its hex form with `X-Argus-Signature` (after `v1=`) in constant time, and refusing
//! timestamps far from its clock (a replayed delivery).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argus_core::{Alert, Secret};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::delivery::{DeliveryError, Sink};
use crate::notification::{Notification, text};

/// `v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const SIGNATURE_HEADER: &str = "x-argus-signature";
/// Unix seconds at which the delivery was signed.
pub const TIMESTAMP_HEADER: &str = "x-argus-timestamp";
/// The transition's deduplication key (also in the body), for receivers that deduplicate on headers.
pub const DEDUP_KEY_HEADER: &str = "x-argus-dedup-key";

/// `[alerts.sinks.webhook]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://...`; plain `http://` only to a loopback address.
    pub url: String,
    /// The key of `X-Argus-Signature`; required with `format = "json"`.
    pub secret: Option<Secret>,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Each attempt's limit; a slower receiver counts as down and is tried again.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// PEM roots the receiver's certificate must chain to (a private PKI); unset: the system's.
    pub ca_file: Option<PathBuf>,
}

const fn default_timeout_ms() -> u64 {
    10_000
}

/// What the body holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The versioned notification (`schemas/json/alert-notification.v1.schema.json`).
    #[default]
    Json,
    /// `{"text": "<one line>"}`, which Slack and Microsoft Teams incoming webhooks post as is.
    Text,
}

impl WebhookConfig {
    /// The field at fault and why.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        argus_log::outbound_url(&self.url).map_err(|reason| ("webhook.url", reason))?;
        if self.format == WebhookFormat::Json && self.secret.as_ref().is_none_or(|secret| secret.expose().len() < 32) {
            return Err(("webhook.secret", "at least 32 bytes are required to sign the JSON format".into()));
        }
        if self.timeout_ms == 0 {
            return Err(("webhook.timeout_ms", "must be above 0".into()));
        }
        Ok(())
    }
}

/// Signs `body` sent at `timestamp` (Unix seconds) with `secret`: the `X-Argus-Signature` value.
pub fn signature(secret: &Secret, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts transitions to one URL.
#[derive(Debug)]
pub struct WebhookSink {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: Option<Secret>,
    format: WebhookFormat,
}

impl WebhookSink {
    /// Checks `config` and builds the client; connects on the first delivery.
    pub fn new(config: &WebhookConfig) -> Result<Self, (&'static str, String)> {
        config.validate()?;
        let url = argus_log::outbound_url(&config.url).map_err(|reason| ("webhook.url", reason))?;
        let client = argus_log::https_client(Duration::from_millis(config.timeout_ms), config.ca_file.as_deref())
            .map_err(|reason| ("webhook.ca_file", reason))?;
        Ok(Self { client, url, secret: config.secret.clone(), format: config.format })
    }
}

#[async_trait]
impl Sink for WebhookSink {
    async fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let notification = Notification::of(alert);
        let body = match self.format {
            WebhookFormat::Json => serde_json::to_vec(&notification),
            WebhookFormat::Text => serde_json::to_vec(&serde_json::json!({ "text": text(alert) })),
        }
        .map_err(|error| DeliveryError::Refused(format!("encoding the body: {error}")))?;
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(DEDUP_KEY_HEADER, &notification.dedup_key);
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, timestamp, &body));
        }
        let response =
            request.body(body).send().await.map_err(|error| {
                DeliveryError::Unavailable(format!("{}: {}", self.url, argus_log::error_chain(&error)))
            })?;
        DeliveryError::from_status(&self.url, response.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let secret = Secret::new("a-webhook-secret-of-at-least-32-bytes");
        let signed = signature(&secret, 1_780_272_000, b"{\"version\":1}");
        assert!(signed.starts_with("v1=") && signed.len() == 3 + 64, "{signed}");
        assert_eq!(signed, signature(&secret, 1_780_272_000, b"{\"version\":1}"));
        assert_ne!(signed, signature(&secret, 1_780_272_001, b"{\"version\":1}"), "another time");
        assert_ne!(signed, signature(&secret, 1_780_272_000, b"{\"version\":2}"), "another body");
        assert_ne!(signed, signature(&Secret::new("another"), 1_780_272_000, b"{\"version\":1}"), "another key");
    }

    #[test]
    fn a_webhook_needs_a_signing_key_and_https_beyond_loopback() {
        let config = |text: &str| toml::from_str::<WebhookConfig>(text).expect("webhook");
        let secret = "secret = \"a-webhook-secret-of-at-least-32-bytes\"";
        assert!(config(&format!("url = \"https://hooks.example/argus\"\n{secret}")).validate().is_ok());
        assert!(config(&format!("url = \"http://127.0.0.1:9/argus\"\n{secret}")).validate().is_ok());
        let (field, reason) =
            config(&format!("url = \"http://hooks.example/argus\"\n{secret}")).validate().expect_err("plain http");
        assert_eq!(field, "webhook.url");
        assert!(reason.contains("only to a loopback address"), "{reason}");
        let (field, _) = config("url = \"https://hooks.example/argus\"").validate().expect_err("unsigned json");
        assert_eq!(field, "webhook.secret");
        assert!(config("url = \"https://hooks.slack.example/T0\"\nformat = \"text\"").validate().is_ok());
    }
}
