//! Which alert transitions a sink may carry: its organisations, its receivers' clearance, and
//! optionally some kinds, a minimum severity and whether silenced transitions go too.

use argus_core::{Alert, AlertKind, AlertState, Clearance, OrgId, Severity};
use serde::Deserialize;

/// `[alerts.sinks.filter]`. `orgs` and `max_clearance` have no default: a sink is a reader, and
/// whoever configures one says whose alerts it may carry and to which clearance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkFilter {
    /// The organisations whose alerts this sink carries.
    pub orgs: Vec<OrgId>,
    /// The highest clearance the sink's receivers may read; alerts above it never reach them.
    pub max_clearance: Clearance,
    /// Only these kinds (all kinds when empty).
    #[serde(default)]
    pub kinds: Vec<AlertKind>,
    #[serde(default = "lowest_severity")]
    pub min_severity: Severity,
    /// Silenced raisings (inside a maintenance window) are recorded, not notified, unless this is
    /// set. A resolution always goes: whoever was told of the raising learns that it is over.
    #[serde(default)]
    pub include_silenced: bool,
}

const fn lowest_severity() -> Severity {
    Severity::Info
}

impl SinkFilter {
    pub fn carries(&self, alert: &Alert) -> bool {
        self.orgs.contains(&alert.org_id)
            && alert.clearance <= self.max_clearance
            && (self.kinds.is_empty() || self.kinds.contains(&alert.kind))
            && alert.severity >= self.min_severity
            && (self.include_silenced || !alert.silenced || alert.state == AlertState::Resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_core::AlertId;

    fn alert(org: &str, clearance: Clearance, severity: Severity, silenced: bool) -> Alert {
        Alert {
            alert_id: AlertId::from_bytes([1; 16]),
            kind: AlertKind::PeerStale,
            severity,
            state: AlertState::Raised,
            org_id: org.parse().expect("org"),
            host: "hub-1".parse().expect("host"),
            interface: "wg0".parse().expect("interface"),
            public_key: None,
            clearance,
            probable_cause: None,
            evidence: Default::default(),
            summary: "no handshake".into(),
            raised_at: 0,
            resolved_at: None,
            revised_at: None,
            silenced,
            incident_id: None,
        }
    }

    #[test]
    fn a_sink_carries_its_organisations_up_to_its_clearance_and_nothing_else() {
        let filter: SinkFilter =
            toml::from_str("orgs = [\"acme\"]\nmax_clearance = \"RESTRICTED\"\nmin_severity = \"WARNING\"")
                .expect("filter");
        assert!(filter.carries(&alert("acme", Clearance::Restricted, Severity::Critical, false)));
        assert!(!filter.carries(&alert("globex", Clearance::Unclassified, Severity::Critical, false)), "another org");
        assert!(!filter.carries(&alert("acme", Clearance::Secret, Severity::Critical, false)), "above its clearance");
        assert!(!filter.carries(&alert("acme", Clearance::Unclassified, Severity::Info, false)), "below its severity");
        assert!(!filter.carries(&alert("acme", Clearance::Unclassified, Severity::Critical, true)), "silenced");
        let silenced_resolution =
            Alert { state: AlertState::Resolved, ..alert("acme", Clearance::Unclassified, Severity::Critical, true) };
        assert!(filter.carries(&silenced_resolution), "a resolution goes, silenced or not");
        let kinds: SinkFilter = toml::from_str(
            "orgs = [\"acme\"]\nmax_clearance = \"SECRET\"\nkinds = [\"GATEWAY_SILENT\"]\ninclude_silenced = true",
        )
        .expect("filter");
        assert!(!kinds.carries(&alert("acme", Clearance::Unclassified, Severity::Critical, false)), "another kind");
        let error = toml::from_str::<SinkFilter>("orgs = [\"acme\"]").expect_err("no clearance");
        assert!(error.to_string().contains("max_clearance"), "{error}");
    }
}
