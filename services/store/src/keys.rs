//! Order-preserving row keys: ids end in NUL (they cannot contain one), times sort as signed.

use argus_core::{AlertId, Clearance, HostId, InterfaceName, OrgId, PublicKey, SilenceId, UnixMillis};

/// Builds a key from parts; byte order equals the order of the parts.
#[derive(Debug, Default, Clone)]
pub(crate) struct Key(Vec<u8>);

impl Key {
    pub(crate) fn new() -> Self {
        Self(Vec::with_capacity(96))
    }

    pub(crate) fn text(mut self, text: &str) -> Self {
        self.0.extend_from_slice(text.as_bytes());
        self.0.push(0);
        self
    }

    pub(crate) fn bytes(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    pub(crate) fn time(mut self, at: UnixMillis) -> Self {
        self.0.extend_from_slice(&((at as u64) ^ (1 << 63)).to_be_bytes());
        self
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

pub(crate) fn org(org: &OrgId) -> Key {
    Key::new().text(org.as_str())
}

pub(crate) fn peer(org_id: &OrgId, host: &HostId, interface: &InterfaceName, key: &PublicKey) -> Key {
    org(org_id).text(host.as_str()).text(interface.as_str()).bytes(key.as_bytes())
}

pub(crate) fn peer_by_key(org_id: &OrgId, key: &PublicKey, host: &HostId, interface: &InterfaceName) -> Key {
    org(org_id).bytes(key.as_bytes()).text(host.as_str()).text(interface.as_str())
}

/// The `peers` key that a `peers_by_key` row (`org, key, host, interface`) points at.
pub(crate) fn peer_from_index(org_id: &OrgId, key: &PublicKey, index_key: &[u8]) -> Option<Vec<u8>> {
    let location = index_key.strip_prefix(org(org_id).bytes(key.as_bytes()).into_bytes().as_slice())?;
    // location is host\0interface\0, which the peers key holds before the public key
    Some(org(org_id).bytes(location).bytes(key.as_bytes()).into_bytes())
}

/// The gateway part of a key (`host\0interface\0`), as a `peers_by_key` row ends with it.
pub(crate) fn gateway(host: &HostId, interface: &InterfaceName) -> Key {
    Key::new().text(host.as_str()).text(interface.as_str())
}

/// The host and interface of a gateway part (`host\0interface\0`).
pub(crate) fn gateway_names(gateway: &[u8]) -> Option<(HostId, InterfaceName)> {
    let text = std::str::from_utf8(gateway.strip_suffix(b"\0")?).ok()?;
    let (host, interface) = text.split_once('\0')?;
    Some((host.parse().ok()?, interface.parse().ok()?))
}

/// The embedded store's history rows of one gateway: `org, gateway`.
pub(crate) fn gateway_history(org_id: &OrgId, gateway: &[u8]) -> Key {
    org(org_id).bytes(gateway)
}

/// An embedded store history row: by gateway, then time, then peer key. A gateway's scans follow
/// each other, so one scan's rows fill new neighbouring pages instead of landing between older
/// rows of the same peers.
pub(crate) fn history(org_id: &OrgId, gateway: &[u8], key: &PublicKey, at: UnixMillis) -> Key {
    gateway_history(org_id, gateway).time(at).bytes(key.as_bytes())
}

/// The time in a history key whose gateway part is `prefix_len` bytes long (with the organisation).
pub(crate) fn history_time(key: &[u8], prefix_len: usize) -> Option<UnixMillis> {
    time_at(key, prefix_len)
}

/// A `peers_by_key` value's bound on a peer's observations on one gateway: the hour after the
/// latest, so the row changes about once an hour instead of on every observation.
pub(crate) const SEEN_UNTIL_STEP_MS: i64 = 3_600_000;

/// The times a peer was seen on one gateway, as its `peers_by_key` value holds them: its first
/// observation there, and a time no observation there is later than.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeenSpan {
    pub(crate) first: UnixMillis,
    pub(crate) until: UnixMillis,
}

impl SeenSpan {
    /// The span of one observation at `at`.
    pub(crate) fn at(at: UnixMillis) -> Self {
        let until = at.div_euclid(SEEN_UNTIL_STEP_MS).saturating_add(1).saturating_mul(SEEN_UNTIL_STEP_MS);
        Self { first: at, until }
    }

    /// This span grown to cover `other` (say, one observation's), or `None` when it already does.
    /// Whatever order observations arrive in, the span ends as that of the earliest and the latest.
    pub(crate) fn covering(self, other: Self) -> Option<Self> {
        let grown = Self { first: self.first.min(other.first), until: self.until.max(other.until) };
        (grown != self).then_some(grown)
    }

    pub(crate) fn to_value(self) -> Vec<u8> {
        Key::new().time(self.first).time(self.until).into_bytes()
    }

    pub(crate) fn from_value(value: &[u8]) -> Option<Self> {
        Some(Self { first: time_at(value, 0)?, until: time_at(value, 8)? })
    }
}

/// Timelines (history read order, endpoint changes): by peer key, then time, then gateway.
pub(crate) fn peer_timeline(
    org_id: &OrgId, key: &PublicKey, at: UnixMillis, host: &HostId, interface: &InterfaceName,
) -> Key {
    org(org_id).bytes(key.as_bytes()).time(at).text(host.as_str()).text(interface.as_str())
}

pub(crate) fn alert(org_id: &OrgId, raised_at: UnixMillis, id: &AlertId) -> Key {
    org(org_id).time(raised_at).bytes(id.as_bytes())
}

pub(crate) fn alert_id(org_id: &OrgId, id: &AlertId) -> Key {
    org(org_id).bytes(id.as_bytes())
}

pub(crate) fn host(org_id: &OrgId, host: &HostId, interface: &InterfaceName) -> Key {
    org(org_id).text(host.as_str()).text(interface.as_str())
}

/// A rotation manifest: one per interface and clearance of the operators who set it.
pub(crate) fn manifest(org_id: &OrgId, host: &HostId, interface: &InterfaceName, clearance: Clearance) -> Key {
    self::host(org_id, host, interface).bytes(&[clearance as u8])
}

/// A silence: by host, then id.
pub(crate) fn silence(org_id: &OrgId, host: &HostId, id: &SilenceId) -> Key {
    org(org_id).text(host.as_str()).bytes(id.as_bytes())
}

pub(crate) fn host_stats(org_id: &OrgId, host: &HostId, clearance: Clearance) -> Key {
    org(org_id).text(host.as_str()).bytes(&[clearance as u8])
}

/// The time in an alert key (org\0, time, id), or in a bound built the same way.
pub(crate) fn alert_raised_at(key: &[u8]) -> Option<UnixMillis> {
    let organisation_end = key.iter().position(|byte| *byte == 0)?;
    time_at(key, organisation_end + 1)
}

/// The time in a timeline key (org\0, 32-byte public key, time, ...), or in a bound built the same way.
pub(crate) fn timeline_time(key: &[u8]) -> Option<UnixMillis> {
    let organisation_end = key.iter().position(|byte| *byte == 0)?;
    time_at(key, organisation_end + 1 + 32)
}

fn time_at(key: &[u8], start: usize) -> Option<UnixMillis> {
    let bytes: [u8; 8] = key.get(start..start + 8)?.try_into().ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_sort_in_order_including_negative() {
        let keys: Vec<Vec<u8>> =
            [-5_i64, -1, 0, 1, 1_780_000_000_000].iter().map(|at| Key::new().time(*at).into_bytes()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn times_are_read_back_from_keys() {
        let org_id: OrgId = "acme".parse().expect("org");
        let id = AlertId::from_bytes([3; 16]);
        assert_eq!(alert_raised_at(&alert(&org_id, -42, &id).into_bytes()), Some(-42));
        let key = PublicKey::from_bytes([0; 32]);
        let timeline = peer_timeline(
            &org_id,
            &key,
            1_780_000_000_000,
            &"h".parse().expect("host"),
            &"wg0".parse().expect("iface"),
        );
        assert_eq!(timeline_time(&timeline.into_bytes()), Some(1_780_000_000_000));
        assert_eq!(timeline_time(b"acme\0short"), None);
    }

    #[test]
    fn a_seen_span_ends_the_same_whatever_order_observations_arrive_in() {
        let times = [1_780_000_000_000_i64, 1_780_000_010_000, 1_779_990_000_000, 1_780_007_200_000, -5];
        let fold = |order: &[i64]| {
            let mut span = SeenSpan::at(order[0]);
            for at in &order[1..] {
                span = span.covering(SeenSpan::at(*at)).unwrap_or(span);
            }
            span
        };
        let mut reversed = times;
        reversed.reverse();
        let span = fold(&times);
        assert_eq!(span, fold(&reversed));
        assert_eq!(span.first, -5);
        assert!(span.until > 1_780_007_200_000 && span.until <= 1_780_007_200_000 + SEEN_UNTIL_STEP_MS);
        assert_eq!(span.until % SEEN_UNTIL_STEP_MS, 0);
        assert_eq!(span.covering(SeenSpan::at(1_780_007_200_001)), None, "inside the span: the row is not rewritten");
        assert_eq!(SeenSpan::from_value(&span.to_value()), Some(span));
        assert_eq!(SeenSpan::at(i64::MAX).until, i64::MAX);
    }

    #[test]
    fn an_org_prefix_never_matches_a_longer_org() {
        let acme = org(&"acme".parse().expect("org")).into_bytes();
        let acme2 = org(&"acme2".parse().expect("org")).into_bytes();
        assert!(!acme2.starts_with(&acme));
    }
}
