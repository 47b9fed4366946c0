//! Incidents: the stale alerts of one interface whose cause reaches beyond one site (the gateway's
//! uplink, or one upstream network), grouped under one INCIDENT alert that resolves once.

use serde::{Deserialize, Serialize};

use super::config::{RuleConfig, millis};
use super::interface::{InterfaceState, StaleJudgement};
use super::peer::{PeerAlert, endpoint_network};
use super::{AlertSubject, Effect, Evidence, OpenAlert, PeerRecord, stale_evidence, stale_severity};
use crate::alert::{AlertId, AlertKind, ProbableCause, Severity};
use crate::event::UnixMillis;
use crate::ids::Clearance;
use crate::key::PublicKey;
use crate::net::Cidr;

/// An open incident: its alert, what it covers, and whose stale alerts are in it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OpenIncident {
    alert: OpenAlert,
    /// The network of an upstream outage; none for the gateway's uplink.
    network: Option<Cidr>,
    /// Only peers of one clearance are grouped, so an incident says nothing of peers its readers
    /// may not see.
    clearance: Clearance,
    /// Sorted, so that nothing about an incident depends on hash-map order.
    members: Vec<PublicKey>,
    /// Peers that were ever members.
    joined: u32,
}

impl OpenIncident {
    fn admit(&mut self, key: PublicKey) {
        if let Err(at) = self.members.binary_search(&key) {
            self.members.insert(at, key);
            self.joined += 1;
        }
    }

    fn subject<'a>(&self, record: &'a PeerRecord, network: Option<&'a str>) -> AlertSubject<'a> {
        AlertSubject {
            org_id: &record.org_id,
            host: &record.host,
            interface: &record.interface,
            public_key: None,
            name: network,
            clearance: self.clearance,
        }
    }

    fn network_words(&self) -> Option<String> {
        self.network.map(|network| format!("network {network}"))
    }
}

/// Whether several sites share the cause, so that it is an incident's.
fn is_shared(cause: ProbableCause) -> bool {
    matches!(cause, ProbableCause::GatewayUplink | ProbableCause::UpstreamOutage)
}

/// Whether an incident of cause `shared` explains an alert of cause `single` better than it does:
/// the causes judged from one site's view, before the others were known.
fn explains(shared: ProbableCause, single: ProbableCause) -> bool {
    match single {
        ProbableCause::SiteDown | ProbableCause::PathDown => true,
        ProbableCause::UpstreamOutage => shared == ProbableCause::GatewayUplink,
        _ => false,
    }
}

/// Raises `key`'s stale alert with `judgement`, or revises its open one when the cause changed.
/// A shared cause puts the alert into that cause's incident, which is opened, when none is, with
/// the one-site alerts of the same clearance raised within the staleness window before: they went
/// quiet together. A member stays in its incident until it recovers or evidence of another kind
/// (an answered probe, a security cause) explains it better.
pub(super) fn settle_stale_alert(
    interface: &mut InterfaceState, key: &PublicKey, judgement: StaleJudgement, at: UnixMillis, config: &RuleConfig,
    effects: &mut Vec<Effect>,
) {
    let Some(peer) = interface.peers.get(key) else { return };
    let open = peer.alerts.get(PeerAlert::Stale);
    let cause = judgement.cause;
    if let Some(open) = open {
        let member_kept =
            open.incident.is_some() && (is_shared(cause) || explains(ProbableCause::GatewayUplink, cause));
        if open.cause == Some(cause) || member_kept {
            return;
        }
    }
    let incident = if is_shared(cause) { join(interface, key, &judgement, at, config, effects) } else { None };
    if let Some(previous) = open.and_then(|open| open.incident).filter(|previous| Some(*previous) != incident) {
        leave(interface, previous, key, at, effects);
    }
    let window = interface.staleness;
    let Some(peer) = interface.peers.get_mut(key) else { return };
    let evidence = stale_evidence(&peer.record, &window, &judgement);
    let subject = AlertSubject::of_peer(&peer.record);
    let severity = stale_severity(cause);
    let (settled, effect) = match open {
        None => {
            let raised = OpenAlert { incident, ..subject.open(AlertKind::PeerStale, severity, Some(cause), at, at) };
            (raised, subject.raised(AlertKind::PeerStale, raised, evidence))
        }
        Some(open) => {
            let revised = OpenAlert { cause: Some(cause), severity, incident, ..open };
            (revised, subject.revise(AlertKind::PeerStale, revised, at, evidence))
        }
    };
    peer.alerts.set(PeerAlert::Stale, Some(settled));
    effects.push(effect);
}

/// The incident `key`'s alert belongs in for the shared cause of `judgement`: the open one of its
/// kind, network and clearance, or a new one (raised as of its earliest member, whose earlier
/// one-site alerts are revised into it).
fn join(
    interface: &mut InterfaceState, key: &PublicKey, judgement: &StaleJudgement, at: UnixMillis, config: &RuleConfig,
    effects: &mut Vec<Effect>,
) -> Option<AlertId> {
    let cause = judgement.cause;
    let peer = interface.peers.get(key)?;
    let clearance = peer.record.clearance;
    let network_of = |record: &PeerRecord| record.endpoint.map(|endpoint| endpoint_network(endpoint.ip(), config));
    let network = if cause == ProbableCause::UpstreamOutage { network_of(&peer.record) } else { None };
    let same_scope = |incident: &&mut OpenIncident| {
        incident.alert.cause == Some(cause) && incident.network == network && incident.clearance == clearance
    };
    if let Some(incident) = interface.incidents.iter_mut().find(same_scope) {
        incident.admit(*key);
        return Some(incident.alert.id);
    }
    let since = at.saturating_sub(millis(interface.staleness.stale_after));
    let mut joining: Vec<(UnixMillis, PublicKey)> = interface
        .peers
        .iter()
        .filter(|(other, peer)| {
            *other != key
                && peer.record.clearance == clearance
                && (network.is_none() || network_of(&peer.record) == network)
        })
        .filter_map(|(other, peer)| {
            let open = peer.alerts.get(PeerAlert::Stale)?;
            let explained = open.cause.is_some_and(|single| explains(cause, single));
            (open.incident.is_none() && open.raised_at >= since && explained).then_some((open.raised_at, *other))
        })
        .collect();
    joining.sort_unstable();
    let raised_at = joining.first().map_or(at, |(raised_at, _)| *raised_at);
    let record = &peer.record;
    let scope = match network {
        Some(network) => format!("network {network} at {clearance}"),
        None => format!("uplink at {clearance}"),
    };
    let id = AlertId::derive_incident(&record.org_id, &record.host, &record.interface, &scope, raised_at);
    let open = OpenAlert { id, raised_at, severity: Severity::Critical, cause: Some(cause), incident: None };
    let incident = OpenIncident { alert: open, network, clearance, members: vec![*key], joined: 1 };
    let evidence = Evidence::from([
        ("peers_when_raised", (joining.len() + 1) as f64),
        ("quiet_peers", judgement.quiet.quiet as f64),
        ("connected_peers", judgement.quiet.connected as f64),
    ]);
    let network_words = incident.network_words();
    effects.push(incident.subject(record, network_words.as_deref()).raised(AlertKind::Incident, open, evidence));
    interface.incidents.push(incident);
    for (_, member) in joining {
        let judgement = StaleJudgement { cause, ..interface.stale_cause(&member, at, config) };
        settle_stale_alert(interface, &member, judgement, at, config, effects);
    }
    Some(id)
}

/// Takes `key` out of incident `id`; the incident resolves when its last member leaves.
pub(super) fn leave(
    interface: &mut InterfaceState, id: AlertId, key: &PublicKey, at: UnixMillis, effects: &mut Vec<Effect>,
) {
    let Some(index) = interface.incidents.iter().position(|incident| incident.alert.id == id) else { return };
    let incident = &mut interface.incidents[index];
    if let Ok(member) = incident.members.binary_search(key) {
        incident.members.remove(member);
    }
    if !incident.members.is_empty() {
        return;
    }
    let incident = interface.incidents.remove(index);
    let Some(peer) = interface.peers.get(key) else { return };
    let network_words = incident.network_words();
    let evidence = Evidence::from([("peers", f64::from(incident.joined))]);
    let subject = incident.subject(&peer.record, network_words.as_deref());
    effects.push(subject.resolve(AlertKind::Incident, incident.alert, at, evidence));
}
