//! Applying a batch: every effect to the tables it changes, in one transaction with its checkpoint.

use std::sync::atomic::Ordering;

use argus_core::fold::Effect;
use argus_core::{
    AlertAcknowledged, EndpointChange, HostId, HostRecord, HostStats, InterfaceName, OrgId, PeerRecord, PublicKey,
    RotationManifestSet, SilenceSet,
};
use redb::{ReadableTable, WriteTransaction};
use rustc_hash::FxHashMap;

use super::{
    ALERT_IDS, ALERTS, CHECKPOINTS, ENDPOINT_CHANGES, EmbeddedStore, HOST_STATS, HOSTS, MANIFESTS, PEER_HISTORY, PEERS,
    PEERS_BY_KEY, SILENCES, Table, rows,
};
use crate::keys::{self, SeenSpan};
use crate::model::{AlertRow, Batch, Checkpoint, ManifestRow, PeerReading, SilenceRow, StoreError};
use crate::scan::{decode, encode, encode_into, unavailable};

impl EmbeddedStore {
    /// Applies one batch in one transaction (durable when the last durable one is `sync_interval` old).
    pub fn write_blocking(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut transaction = self.database.begin_write().map_err(unavailable)?;
        transaction.set_durability(self.durability_for_this_batch()).map_err(unavailable)?;
        {
            let mut tables = Tables::open(&transaction)?;
            let last_updates = LastUpdates::of(&batch.effects);
            for (index, effect) in batch.effects.iter().enumerate() {
                match effect {
                    Effect::PeerUpdated(record) => tables.peer_updated(record, last_updates.ending_at(index))?,
                    Effect::HostUpdated(record) => tables.host_updated(record)?,
                    Effect::EndpointChanged(change) => tables.endpoint_changed(change)?,
                    Effect::Alert(alert) => tables.alert(alert)?,
                    Effect::ManifestSet(manifest) => tables.manifest_set(manifest)?,
                    Effect::AlertAcknowledged(acknowledgement) => tables.alert_acknowledged(acknowledgement)?,
                    Effect::SilenceSet(silence) => tables.silence_set(silence)?,
                }
            }
            for stats in &batch.host_stats {
                tables.host_stats(stats)?;
            }
            if let Some(checkpoint) = &batch.checkpoint {
                tables.checkpoint(checkpoint)?;
            }
        }
        transaction.commit().map_err(unavailable)?;
        self.commits.fetch_add(1, Ordering::Release);
        Ok(())
    }
}

type WriteTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

/// The tables of one write transaction, and a buffer kept across its rows.
struct Tables<'t> {
    peers: WriteTable<'t>,
    peers_by_key: WriteTable<'t>,
    history: WriteTable<'t>,
    endpoint_changes: WriteTable<'t>,
    alerts: WriteTable<'t>,
    alert_ids: WriteTable<'t>,
    hosts: WriteTable<'t>,
    host_stats: WriteTable<'t>,
    manifests: WriteTable<'t>,
    silences: WriteTable<'t>,
    checkpoints: WriteTable<'t>,
    row_buffer: Vec<u8>,
}

impl<'t> Tables<'t> {
    fn open(transaction: &'t WriteTransaction) -> Result<Self, StoreError> {
        let open = |table: Table| transaction.open_table(table).map_err(unavailable);
        Ok(Self {
            peers: open(PEERS)?,
            peers_by_key: open(PEERS_BY_KEY)?,
            history: open(PEER_HISTORY)?,
            endpoint_changes: open(ENDPOINT_CHANGES)?,
            alerts: open(ALERTS)?,
            alert_ids: open(ALERT_IDS)?,
            hosts: open(HOSTS)?,
            host_stats: open(HOST_STATS)?,
            manifests: open(MANIFESTS)?,
            silences: open(SILENCES)?,
            checkpoints: open(CHECKPOINTS)?,
            row_buffer: Vec::with_capacity(512),
        })
    }

    /// A peer's history row; and when this is its last update in the batch (`observed`: the span
    /// of its observations there), its `peers` row and, when that span is new, its index row.
    fn peer_updated(&mut self, record: &PeerRecord, observed: Option<SeenSpan>) -> Result<(), StoreError> {
        let PeerRecord { org_id, host, interface, public_key, observed_at, .. } = record;
        if let Some(observed) = observed {
            let peer_key = keys::peer(org_id, host, interface, public_key).into_bytes();
            let previous_at = self
                .peers
                .insert(peer_key.as_slice(), rows::encode(record, &mut self.row_buffer))
                .map_err(unavailable)?
                .and_then(|previous| rows::observed_at(previous.value()));
            // the index row bounds the peer's observations on this gateway to the hour, so it
            // rarely changes; it already covers the batch's observations when the span of the row
            // this one replaces does (that row's index update was written with it), else a lookup
            // tells, far cheaper than an insert
            let covered = previous_at.is_some_and(|previous_at| SeenSpan::at(previous_at).covering(observed).is_none());
            if !covered {
                let by_key = keys::peer_by_key(org_id, public_key, host, interface).into_bytes();
                let seen = self
                    .peers_by_key
                    .get(by_key.as_slice())
                    .map_err(unavailable)?
                    .and_then(|seen| SeenSpan::from_value(seen.value()));
                let grown = match seen {
                    Some(seen) => seen.covering(observed),
                    None => Some(observed),
                };
                if let Some(grown) = grown {
                    self.peers_by_key.insert(by_key.as_slice(), grown.to_value().as_slice()).map_err(unavailable)?;
                }
            }
        }
        let gateway = keys::gateway(host, interface).into_bytes();
        let history_key = keys::history(org_id, &gateway, public_key, *observed_at).into_bytes();
        // the key holds the rest of the row
        let row = encode_into(&PeerReading::from(record), &mut self.row_buffer);
        self.history.insert(history_key.as_slice(), row).map_err(unavailable)?;
        Ok(())
    }

    fn host_updated(&mut self, record: &HostRecord) -> Result<(), StoreError> {
        let key = keys::host(&record.org_id, &record.host, &record.interface).into_bytes();
        self.hosts.insert(key.as_slice(), encode(record).as_slice()).map_err(unavailable)?;
        Ok(())
    }

    fn endpoint_changed(&mut self, change: &EndpointChange) -> Result<(), StoreError> {
        let EndpointChange { org_id, host, interface, public_key, changed_at, .. } = change;
        let key = keys::peer_timeline(org_id, public_key, *changed_at, host, interface).into_bytes();
        self.endpoint_changes.insert(key.as_slice(), encode(change).as_slice()).map_err(unavailable)?;
        Ok(())
    }

    /// An alert's transition merged into its row, and the row found again by the alert's id.
    fn alert(&mut self, alert: &argus_core::Alert) -> Result<(), StoreError> {
        let key = keys::alert(&alert.org_id, alert.raised_at, &alert.alert_id).into_bytes();
        let existing = self.alert_row(&key)?;
        let row = encode(&AlertRow::merge(existing, alert));
        self.alerts.insert(key.as_slice(), row.as_slice()).map_err(unavailable)?;
        let id_key = keys::alert_id(&alert.org_id, &alert.alert_id).into_bytes();
        self.alert_ids.insert(id_key.as_slice(), key.as_slice()).map_err(unavailable)?;
        Ok(())
    }

    fn alert_row(&self, key: &[u8]) -> Result<Option<AlertRow>, StoreError> {
        match self.alerts.get(key).map_err(unavailable)? {
            Some(bytes) => decode("alerts", bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    fn silence_set(&mut self, silence: &SilenceSet) -> Result<(), StoreError> {
        let header = &silence.header;
        let key = keys::silence(&header.org_id, &header.host, &silence.silence_id).into_bytes();
        self.silences.insert(key.as_slice(), encode(&SilenceRow::from(silence)).as_slice()).map_err(unavailable)?;
        Ok(())
    }

    fn manifest_set(&mut self, manifest: &RotationManifestSet) -> Result<(), StoreError> {
        let header = &manifest.header;
        let key = keys::manifest(&header.org_id, &header.host, &header.interface, manifest.scope()).into_bytes();
        self.manifests.insert(key.as_slice(), encode(&ManifestRow::from(manifest)).as_slice()).map_err(unavailable)?;
        Ok(())
    }

    /// An acknowledgement of an alert this store has; of one it has not, nothing.
    fn alert_acknowledged(&mut self, acknowledgement: &AlertAcknowledged) -> Result<(), StoreError> {
        let id_key = keys::alert_id(&acknowledgement.header.org_id, &acknowledgement.alert_id).into_bytes();
        let Some(alert_key) =
            self.alert_ids.get(id_key.as_slice()).map_err(unavailable)?.map(|key| key.value().to_vec())
        else {
            return Ok(());
        };
        let Some(mut row) = self.alert_row(&alert_key)? else { return Ok(()) };
        row.acknowledge(acknowledgement);
        self.alerts.insert(alert_key.as_slice(), encode(&row).as_slice()).map_err(unavailable)?;
        Ok(())
    }

    /// A gateway's statistics at one clearance; a level without peers left has no row.
    fn host_stats(&mut self, stats: &HostStats) -> Result<(), StoreError> {
        let key = keys::host_stats(&stats.org_id, &stats.host, stats.clearance).into_bytes();
        if stats.is_empty() {
            self.host_stats.remove(key.as_slice()).map_err(unavailable)?;
        } else {
            self.host_stats.insert(key.as_slice(), encode(stats).as_slice()).map_err(unavailable)?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        // encoded straight into its page: a snapshot of a million peers is hundreds of MB
        let length = postcard::experimental::serialized_size(checkpoint).expect("rows serialise to postcard");
        let mut row = self.checkpoints.insert_reserve(checkpoint.partition.as_bytes(), length).map_err(unavailable)?;
        postcard::to_slice(checkpoint, row.as_mut()).expect("the row has the length postcard computed");
        Ok(())
    }
}

/// A peer of one gateway interface.
fn identity(record: &PeerRecord) -> (&OrgId, &HostId, &InterfaceName, &PublicKey) {
    (&record.org_id, &record.host, &record.interface, &record.public_key)
}

/// For each effect of a batch, the span of its peer's observations in the batch when it is that
/// peer's last `PeerUpdated` there. A batch read from a backlog holds several observations of many
/// a peer: each gets its history row, but only the last is written to `peers` (the row every
/// earlier one would be overwritten by in the same transaction), and the index row is grown once
/// to cover them all.
struct LastUpdates(Vec<Option<SeenSpan>>);

impl LastUpdates {
    fn of(effects: &[Effect]) -> Self {
        let mut last = FxHashMap::default();
        for (index, effect) in effects.iter().enumerate() {
            if let Effect::PeerUpdated(record) = effect {
                let seen = SeenSpan::at(record.observed_at);
                last.entry(identity(record))
                    .and_modify(|(last_index, span): &mut (usize, SeenSpan)| {
                        *last_index = index;
                        *span = span.covering(seen).unwrap_or(*span);
                    })
                    .or_insert((index, seen));
            }
        }
        let mut spans = vec![None; effects.len()];
        for (index, span) in last.into_values() {
            spans[index] = Some(span);
        }
        Self(spans)
    }

    /// When the effect at `index` is its peer's last in the batch: the span of that peer's
    /// observations in the batch.
    fn ending_at(&self, index: usize) -> Option<SeenSpan> {
        self.0[index]
    }
}
