//! Alerts published to `wireguard.alerts`, with ids derived from their input so replays repeat them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::event::{EventHeader, UnixMillis};
use crate::ids::{Clearance, HostId, InterfaceName, OrgId};
use crate::key::PublicKey;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertKind {
    /// A peer has not completed a handshake within its staleness window.
    PeerStale,
    /// No heartbeat from a gateway interface for several scan intervals.
    GatewaySilent,
    /// A peer moves far more traffic than its own baseline.
    TrafficAnomaly,
    /// A peer presents a key the rotation manifest retired or does not list.
    KeyRotation,
    /// One key is presented alternately from endpoints in different networks: two machines hold it.
    ClonedKey,
    /// Several sites went quiet for one shared reason (the gateway's uplink, or one upstream
    /// network): their PEER_STALE alerts name this one as their incident.
    Incident,
}

impl AlertKind {
    pub const ALL: [AlertKind; 6] = [
        AlertKind::PeerStale,
        AlertKind::GatewaySilent,
        AlertKind::TrafficAnomaly,
        AlertKind::KeyRotation,
        AlertKind::ClonedKey,
        AlertKind::Incident,
    ];

    /// What the alert says, in words.
    pub const fn words(self) -> &'static str {
        match self {
            AlertKind::PeerStale => "no handshake",
            AlertKind::GatewaySilent => "gateway silent",
            AlertKind::TrafficAnomaly => "unusual traffic",
            AlertKind::KeyRotation => "key not in the rotation manifest",
            AlertKind::ClonedKey => "one key used from two places",
            AlertKind::Incident => "several sites down for one reason",
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            AlertKind::PeerStale => "PEER_STALE",
            AlertKind::GatewaySilent => "GATEWAY_SILENT",
            AlertKind::TrafficAnomaly => "TRAFFIC_ANOMALY",
            AlertKind::KeyRotation => "KEY_ROTATION",
            AlertKind::ClonedKey => "CLONED_KEY",
            AlertKind::Incident => "INCIDENT",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    pub const fn name(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertState {
    Raised,
    Resolved,
}

impl AlertState {
    pub const ALL: [AlertState; 2] = [AlertState::Raised, AlertState::Resolved];

    pub const fn name(self) -> &'static str {
        match self {
            AlertState::Raised => "RAISED",
            AlertState::Resolved => "RESOLVED",
        }
    }
}

/// The fold's best explanation of a stale peer or silent gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProbableCause {
    /// Nothing is heard from the gateway itself.
    GatewaySilent,
    /// The gateway is alive but all or most of its peers are stale.
    GatewayUplink,
    /// The gateway is alive, its other peers are fresh, this one is stale; no probe has answered
    /// for or against its endpoint yet.
    SiteDown,
    /// The peer presents a retired or unlisted key, or an endpoint in a network never seen for it.
    Security,
    /// The site's endpoint answers the gateway's pings but completes no handshake.
    WireguardDown,
    /// The site's endpoint answers nothing from the gateway.
    PathDown,
    /// Other sites whose endpoints share this one's network went quiet with it.
    UpstreamOutage,
    /// The key is presented alternately from endpoints in different networks.
    ClonedKey,
}

impl ProbableCause {
    pub const ALL: [ProbableCause; 8] = [
        ProbableCause::GatewaySilent,
        ProbableCause::GatewayUplink,
        ProbableCause::SiteDown,
        ProbableCause::Security,
        ProbableCause::WireguardDown,
        ProbableCause::PathDown,
        ProbableCause::UpstreamOutage,
        ProbableCause::ClonedKey,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            ProbableCause::GatewaySilent => "GATEWAY_SILENT",
            ProbableCause::GatewayUplink => "GATEWAY_UPLINK",
            ProbableCause::SiteDown => "SITE_DOWN",
            ProbableCause::Security => "SECURITY",
            ProbableCause::WireguardDown => "WIREGUARD_DOWN",
            ProbableCause::PathDown => "PATH_DOWN",
            ProbableCause::UpstreamOutage => "UPSTREAM_OUTAGE",
            ProbableCause::ClonedKey => "CLONED_KEY",
        }
    }

    /// What the cause means, in words an operator on shift reads.
    pub const fn explanation(self) -> &'static str {
        match self {
            ProbableCause::GatewaySilent => {
                "nothing is heard from the gateway itself: its host or its collector is down"
            }
            ProbableCause::GatewayUplink => {
                "most of the gateway's other peers went quiet too: the gateway's own link is the likely fault"
            }
            ProbableCause::SiteDown => {
                "the gateway and its other peers are fine: this site is down or cut off from the gateway (no path \
                 probe has answered yet)"
            }
            ProbableCause::Security => {
                "the peer presents a key the rotation manifest retired or does not list, or came from a network \
                 never seen for it"
            }
            ProbableCause::WireguardDown => {
                "the site's address answers the gateway's pings but its tunnel does not: the site's host is up and \
                 its WireGuard is not (service, configuration or key failure)"
            }
            ProbableCause::PathDown => {
                "the site's address does not answer the gateway's pings: the path to the site is down (WAN outage, \
                 or the site lost power)"
            }
            ProbableCause::UpstreamOutage => {
                "other sites in the same network went quiet at the same time: an upstream outage of that network"
            }
            ProbableCause::ClonedKey => {
                "the key is presented from two networks in turn: two machines hold the same key (cloned key)"
            }
        }
    }
}

/// A UUID newtype written as its hyphenated text (in Avro, JSON and GraphQL alike).
macro_rules! uuid_id {
    ($(#[doc = $doc:literal])* $name:ident) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }

            pub fn parse(text: &str) -> Result<Self, uuid::Error> {
                Uuid::parse_str(text).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id! {
    /// A deterministic alert id (UUID v5): the same episode in the same stream always gets the same id.
    AlertId
}

uuid_id! {
    /// A silence (maintenance window): derived from the event that first set it, so replays agree.
    SilenceId
}

impl SilenceId {
    /// Namespace of Argus silence ids.
    const NAMESPACE: Uuid = Uuid::from_u128(0x7d3e_91a4_52c8_4f06_b1d7_3c9e_e25a_6b14);

    /// The id of a silence first set by the event with `header`.
    pub fn derive(header: &EventHeader) -> Self {
        let mut name = Vec::with_capacity(96);
        for part in [header.org_id.as_str(), header.host.as_str(), header.collector_id.as_str()] {
            name.extend_from_slice(part.as_bytes());
            name.push(0);
        }
        name.extend_from_slice(&header.seq.to_be_bytes());
        Self(Uuid::new_v5(&Self::NAMESPACE, &name))
    }
}

impl AlertId {
    /// Namespace of Argus alert ids.
    const NAMESPACE: Uuid = Uuid::from_u128(0x5f0c_2d1e_8a47_4c3b_9e61_7a2b_d4c8_1f90);

    /// Derives the id of one episode of `kind` on one subject, starting at `episode_start`.
    pub fn derive(
        kind: AlertKind, org: &OrgId, host: &HostId, interface: &InterfaceName, public_key: Option<&PublicKey>,
        episode_start: UnixMillis,
    ) -> Self {
        let subject = public_key.map_or(&[][..], |key| key.as_bytes());
        Self::of_subject(kind, org, host, interface, subject, episode_start)
    }

    /// Derives the id of one incident of an interface: `scope` tells its incidents apart (their
    /// cause, network and clearance), `episode_start` is its first member's raising.
    pub fn derive_incident(
        org: &OrgId, host: &HostId, interface: &InterfaceName, scope: &str, episode_start: UnixMillis,
    ) -> Self {
        Self::of_subject(AlertKind::Incident, org, host, interface, scope.as_bytes(), episode_start)
    }

    fn of_subject(
        kind: AlertKind, org: &OrgId, host: &HostId, interface: &InterfaceName, subject: &[u8],
        episode_start: UnixMillis,
    ) -> Self {
        let mut name = Vec::with_capacity(128);
        for part in [kind.name(), org.as_str(), host.as_str(), interface.as_str()] {
            name.extend_from_slice(part.as_bytes());
            name.push(0);
        }
        name.extend_from_slice(subject);
        name.push(0);
        name.extend_from_slice(&episode_start.to_be_bytes());
        Self(Uuid::new_v5(&Self::NAMESPACE, &name))
    }
}

/// One transition of one alert (raised, its cause revised, or resolved); the same id links them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: AlertId,
    pub kind: AlertKind,
    pub severity: Severity,
    pub state: AlertState,
    pub org_id: OrgId,
    pub host: HostId,
    pub interface: InterfaceName,
    pub public_key: Option<PublicKey>,
    pub clearance: Clearance,
    pub probable_cause: Option<ProbableCause>,
    /// The numbers that triggered the alert, e.g. `handshake_age_s`, `rate_bytes_per_s`.
    pub evidence: BTreeMap<String, f64>,
    pub summary: String,
    pub raised_at: UnixMillis,
    pub resolved_at: Option<UnixMillis>,
    /// When evidence that arrived after raising last changed the cause or evidence of this raised
    /// alert (a revision, published with the same id and state RAISED).
    pub revised_at: Option<UnixMillis>,
    /// A silence covered the alert's subject when this transition happened: recorded, not notified.
    pub silenced: bool,
    /// The INCIDENT alert this one is part of (a PEER_STALE alert whose cause several sites share).
    pub incident_id: Option<AlertId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_depend_on_every_input_and_nothing_else() {
        let org: OrgId = "acme".parse().expect("org");
        let host: HostId = "gw-1".parse().expect("host");
        let interface: InterfaceName = "wg0".parse().expect("iface");
        let key = PublicKey::from_bytes([7; 32]);
        let id = |kind, key: Option<&PublicKey>, start| AlertId::derive(kind, &org, &host, &interface, key, start);
        assert_eq!(id(AlertKind::PeerStale, Some(&key), 1_000), id(AlertKind::PeerStale, Some(&key), 1_000));
        assert_ne!(id(AlertKind::PeerStale, Some(&key), 1_000), id(AlertKind::PeerStale, Some(&key), 1_001));
        assert_ne!(id(AlertKind::PeerStale, Some(&key), 1_000), id(AlertKind::TrafficAnomaly, Some(&key), 1_000));
        assert_ne!(id(AlertKind::PeerStale, Some(&key), 1_000), id(AlertKind::PeerStale, None, 1_000));
        let text = id(AlertKind::GatewaySilent, None, 5).to_string();
        assert_eq!(AlertId::parse(&text).expect("uuid"), id(AlertKind::GatewaySilent, None, 5));
    }
}
