//! The collector registry: which organisations and hosts each collector id may speak for.

use std::collections::BTreeMap;

use argus_core::EventHeader;
use serde::Deserialize;

/// What one collector id may publish: events of these organisations (`"*"`: any, for the API,
/// whose tokens name the organisation) and, when listed, only of these hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorGrant {
    pub orgs: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let registry: CollectorRegistry = toml::from_str(
            r#"
            gw-1 = { orgs = ["acme"], hosts = ["gw-1"] }
            api-1 = { orgs = ["*"] }
            "#,
        )
        .expect("registry");
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
}
