//! The collector registry: which organisations and hosts each collector id may speak for.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::event::EventHeader;

/// What one collector id may publish: events of these organisations (`"*"`: any, for the API,
/// whose tokens name the organisation) and, when listed, only of these hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorGrant {
    pub orgs: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Ingest credentials of this collector issued before this time (RFC 3339) are refused: how a
    /// leaked credential is revoked once a new one is issued.
    #[serde(default, deserialize_with = "rfc3339_seconds")]
    pub revoke_credentials_issued_before: Option<u64>,
}

/// An RFC 3339 time as seconds since the Unix epoch.
fn rfc3339_seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let at = chrono::DateTime::parse_from_rfc3339(&text)
        .map_err(|error| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time: {error}")))?;
    Ok(Some(u64::try_from(at.timestamp()).unwrap_or(0)))
}

/// Collector id -> grant. Empty: every event is accepted (one machine, where nothing else writes
/// to the embedded log); otherwise an event from an unlisted collector, or outside its grant, is
/// refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct CollectorRegistry(pub BTreeMap<String, CollectorGrant>);

impl CollectorRegistry {
    /// Why the event's collector may not speak for its organisation and host, if it may not.
    pub fn refusal(&self, header: &EventHeader) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        let collector = header.collector_id.as_str();
        let Some(grant) = self.0.get(collector) else {
            return Some(format!("collector {collector} is not in the collector registry"));
        };
        let org = header.org_id.as_str();
        if !grant.orgs.iter().any(|allowed| allowed == "*" || allowed == org) {
            return Some(format!("collector {collector} may not speak for organisation {org}"));
        }
        let host = header.host.as_str();
        if !grant.hosts.is_empty() && !grant.hosts.iter().any(|allowed| allowed == host) {
            return Some(format!("collector {collector} may not speak for host {host} of {org}"));
        }
        None
    }

    /// Why an ingest credential naming `collector`, issued at `issued_at` (seconds since the Unix
    /// epoch; `None`: unknown), is refused, if it is. With an empty registry no credential is
    /// accepted: a central that takes events over the network names who may send them.
    pub fn credential_refusal(&self, collector: &str, issued_at: Option<u64>) -> Option<String> {
        let Some(grant) = self.0.get(collector) else {
            return Some(format!("collector {collector} is not in the collector registry"));
        };
        match (grant.revoke_credentials_issued_before, issued_at) {
            (Some(before), Some(issued)) if issued < before => {
                Some(format!("this credential of collector {collector} was revoked"))
            }
            (Some(_), None) => Some(format!("credential of collector {collector} lacks iat; it may have been revoked")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> CollectorRegistry {
        serde_json::from_str(
            r#"{
                "gw-1": { "orgs": ["acme"], "hosts": ["gw-1"], "revoke_credentials_issued_before": "2026-12-01T00:00:00Z" },
                "api-1": { "orgs": ["*"] }
            }"#,
        )
        .expect("registry")
    }

    fn header(collector: &str, org: &str, host: &str) -> EventHeader {
        EventHeader {
            org_id: org.parse().expect("org"),
            host: host.parse().expect("host"),
            interface: "wg0".parse().expect("interface"),
            observed_at: 0,
            collector_id: collector.parse().expect("collector"),
            seq: 1,
        }
    }

    #[test]
    fn a_collector_speaks_only_for_its_grant() {
        let registry = registry();
        assert_eq!(registry.refusal(&header("gw-1", "acme", "gw-1")), None);
        assert_eq!(registry.refusal(&header("api-1", "globex", "any")), None);
        assert_eq!(
            registry.refusal(&header("gw-1", "globex", "gw-1")).as_deref(),
            Some("collector gw-1 may not speak for organisation globex")
        );
        assert_eq!(
            registry.refusal(&header("gw-1", "acme", "gw-2")).as_deref(),
            Some("collector gw-1 may not speak for host gw-2 of acme")
        );
        assert_eq!(
            registry.refusal(&header("mallory", "acme", "gw-1")).as_deref(),
            Some("collector mallory is not in the collector registry")
        );
        assert_eq!(CollectorRegistry::default().refusal(&header("mallory", "acme", "gw-1")), None);
    }

    #[test]
    fn a_credential_is_refused_outside_the_registry_and_once_revoked() {
        let registry = registry();
        let revoked_before = 1_796_083_200; // 2026-12-01T00:00:00Z
        assert_eq!(registry.credential_refusal("gw-1", Some(revoked_before)), None);
        assert_eq!(
            registry.credential_refusal("gw-1", Some(revoked_before - 1)).as_deref(),
            Some("this credential of collector gw-1 was revoked")
        );
        assert!(registry.credential_refusal("gw-1", None).is_some(), "no iat: cannot be told from a revoked one");
        assert_eq!(registry.credential_refusal("api-1", None), None);
        assert_eq!(
            CollectorRegistry::default().credential_refusal("gw-1", Some(revoked_before)).as_deref(),
            Some("collector gw-1 is not in the collector registry")
        );
        let error = serde_json::from_str::<CollectorRegistry>(
            r#"{ "gw-1": { "orgs": ["acme"], "revoke_credentials_issued_before": "yesterday" } }"#,
        )
        .expect_err("not a time");
        assert!(error.to_string().contains(r#""yesterday" is not an RFC 3339 time"#), "{error}");
    }
}
