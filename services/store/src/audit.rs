//! The audit reads built on the scoped reads of every store: where each key of the rotation
//! manifests stands, and which peers were active in a time window (the shift audit). Both are
//! given one organisation and clearance and never read outside them.

use argus_core::{Clearance, HostId, InterfaceName, OrgId, PeerRecord, PeerStatus, PublicKey, UnixMillis};

use crate::ProjectionStore;
use crate::model::{HistoryRow, ManifestRow, Page, PageRequest, PeerFilter, StoreError, TimeRange};

/// Where one expected key of a rotation manifest stands on its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    pub host: HostId,
    pub interface: InterfaceName,
    pub label: Option<String>,
    pub expected_key: PublicKey,
    pub state: RotationState,
    /// Retired keys still presented on the interface.
    pub retired_keys_live: Vec<PublicKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationState {
    /// The expected key is live and no retired key is.
    Rotated,
    /// A retired key is still presented.
    Pending,
    /// Neither the expected nor a retired key is on the interface.
    NotSeen,
}

/// What one peer did in a time window: handshakes in it, or traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerActivity {
    pub public_key: PublicKey,
    pub host: HostId,
    pub interface: InterfaceName,
    pub display_name: Option<String>,
    pub first_seen_active: UnixMillis,
    pub last_seen_active: UnixMillis,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Peers the shift audit examines per peer it may return: a page reads at most this many times
/// its size, so it may hold fewer than asked while more follow.
pub const ACTIVE_PEERS_EXAMINED: usize = 10;

/// Judges each entry of `manifests` by the live peers of its interface at or below the
/// manifest's clearance (`peers`: every peer the caller may see on that interface).
pub fn judge_rotation(manifest: &ManifestRow, peers: &[PeerRecord]) -> Vec<KeyRotation> {
    let live = |key: &PublicKey| {
        peers.iter().any(|peer| {
            peer.public_key == *key
                && peer.host == manifest.host
                && peer.interface == manifest.interface
                && peer.status != PeerStatus::Removed
                && peer.clearance <= manifest.clearance
        })
    };
    manifest
        .entries
        .iter()
        .map(|entry| {
            let retired_keys_live: Vec<PublicKey> =
                entry.retired_keys.iter().copied().filter(|key| live(key)).collect();
            let state = if !retired_keys_live.is_empty() {
                RotationState::Pending
            } else if live(&entry.expected_key) {
                RotationState::Rotated
            } else {
                RotationState::NotSeen
            };
            KeyRotation {
                host: manifest.host.clone(),
                interface: manifest.interface.clone(),
                label: entry.label.clone(),
                expected_key: entry.expected_key,
                state,
                retired_keys_live,
            }
        })
        .collect()
}

/// Adds one history row of `peer` to what it did in `range` (`None`: nothing yet).
pub fn add_activity(activity: &mut Option<PeerActivity>, peer: &PeerRecord, row: &HistoryRow, range: TimeRange) {
    let reading = &row.reading;
    if row.host != peer.host || row.interface != peer.interface {
        return;
    }
    let handshook = reading.latest_handshake.is_some_and(|at| range.contains(at));
    if !handshook && reading.rx_delta_bytes == 0 && reading.tx_delta_bytes == 0 {
        return;
    }
    let entry = activity.get_or_insert_with(|| PeerActivity {
        public_key: peer.public_key,
        host: peer.host.clone(),
        interface: peer.interface.clone(),
        display_name: peer.metadata.display_name.clone(),
        first_seen_active: row.observed_at,
        last_seen_active: row.observed_at,
        rx_bytes: 0,
        tx_bytes: 0,
    });
    entry.last_seen_active = row.observed_at;
    entry.rx_bytes = entry.rx_bytes.saturating_add(reading.rx_delta_bytes);
    entry.tx_bytes = entry.tx_bytes.saturating_add(reading.tx_delta_bytes);
}

/// Every page of `filter`'s peers.
async fn all_peers<S: ProjectionStore + ?Sized>(
    store: &S, org: &OrgId, filter: &PeerFilter, max_clearance: Clearance, page_size: usize,
) -> Result<Vec<PeerRecord>, StoreError> {
    let mut peers = Vec::new();
    let mut request = PageRequest::first(page_size);
    loop {
        let page = store.peers(org, filter, max_clearance, &request).await?;
        peers.extend(page.items);
        match page.next {
            Some(next) => request.after = Some(next),
            None => return Ok(peers),
        }
    }
}

/// See [`ProjectionStore::rotation_status`].
pub(crate) async fn rotation_status<S: ProjectionStore + ?Sized>(
    store: &S, org: &OrgId, max_clearance: Clearance, page_size: usize,
) -> Result<Vec<KeyRotation>, StoreError> {
    let manifests = store.manifests(org, max_clearance).await?;
    let mut status = Vec::new();
    let mut interface_peers: Option<((HostId, InterfaceName), Vec<PeerRecord>)> = None;
    for manifest in &manifests {
        let interface = (manifest.host.clone(), manifest.interface.clone());
        // manifests come ordered by interface: each interface's peers are read once
        let peers = match &mut interface_peers {
            Some((read, peers)) if *read == interface => peers,
            slot => {
                let filter = PeerFilter {
                    host: Some(manifest.host.clone()),
                    interface: Some(manifest.interface.clone()),
                    ..PeerFilter::default()
                };
                let peers = all_peers(store, org, &filter, max_clearance, page_size).await?;
                &mut slot.insert((interface, peers)).1
            }
        };
        status.extend(judge_rotation(manifest, peers));
    }
    Ok(status)
}

/// See [`ProjectionStore::active_peers`].
pub(crate) async fn active_peers<S: ProjectionStore + ?Sized>(
    store: &S, org: &OrgId, range: TimeRange, host: Option<&HostId>, max_clearance: Clearance, page: &PageRequest,
    history_page_size: usize,
) -> Result<Page<PeerActivity>, StoreError> {
    let filter = PeerFilter { host: host.cloned(), ..PeerFilter::default() };
    let examined = PageRequest { first: page.first.saturating_mul(ACTIVE_PEERS_EXAMINED), after: page.after.clone() };
    let peers = store.peers(org, &filter, max_clearance, &examined).await?;
    let mut found = Page { items: Vec::new(), cursors: Vec::new(), next: peers.next.clone() };
    for (peer, cursor) in peers.items.iter().zip(&peers.cursors) {
        if found.items.len() == page.first {
            // full: continue after the last peer returned (the ones between are inactive)
            found.next = found.cursors.last().cloned();
            break;
        }
        let mut activity = None;
        let mut request = PageRequest::first(history_page_size);
        loop {
            let rows = store.history(org, &peer.public_key, range, max_clearance, &request).await?;
            for row in &rows.items {
                add_activity(&mut activity, peer, row, range);
            }
            match rows.next {
                Some(next) => request.after = Some(next),
                None => break,
            }
        }
        if let Some(activity) = activity {
            found.items.push(activity);
            found.cursors.push(cursor.clone());
        }
    }
    Ok(found)
}
