//! The ScyllaDB store: the tables of `schemas/cql/argus.cql`, prepared statements, idempotent writes.
//!
//! Its tables are laid out for ScyllaDB's partitions, not as the embedded store's; what both must
//! return to every read is the contract suite's, run against it when `SCYLLA_URI` is set.

use std::future::Future;
use std::pin::Pin;

use argus_core::fold::Effect;
use argus_core::{
    Alert, AlertId, AlertState, Clearance, EndpointChange, HostRecord, HostStats, OrgId, PeerRecord, PublicKey,
    UnixMillis,
};
use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt, stream};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;

use crate::keys;
use crate::model::{
    AlertFilter, AlertRow, Batch, Checkpoint, HistoryRow, Listing, ManifestRow, Page, PageRequest, PeerFilter,
    SilenceRow, Stats, StoreError, TimeRange,
};
use crate::scan::{PageBuilder, alerts_scan, decode, encode, peers_scan, timeline_scan, unavailable, visible};
use crate::{ProjectionStore, export_line};

/// The committed CQL, with `${KEYSPACE}` and `${REPLICATION_FACTOR}` placeholders.
pub const SCHEMA: &str = include_str!("../../../schemas/cql/argus.cql");

/// How many statements of one batch run at once.
const WRITE_CONCURRENCY: usize = 64;

const DAY_MS: i64 = 86_400_000;

fn day_of(at: UnixMillis) -> i32 {
    i32::try_from(at.div_euclid(DAY_MS)).unwrap_or(if at < 0 { i32::MIN } else { i32::MAX })
}

/// The statements applying [`SCHEMA`] for one keyspace.
pub fn schema_statements(keyspace: &str, replication_factor: u32) -> Result<Vec<String>, StoreError> {
    let valid = !keyspace.is_empty()
        && keyspace.len() <= 48
        && keyspace.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_');
    if !valid || replication_factor == 0 {
        return Err(StoreError::Unavailable(format!(
            "keyspace {keyspace:?} must be 1-48 of [a-z0-9_] and the replication factor at least 1"
        )));
    }
    let text: String =
        SCHEMA.lines().filter(|line| !line.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    Ok(text
        .split(";\n")
        .map(|statement| statement.trim().trim_end_matches(';').trim())
        .filter(|statement| !statement.is_empty())
        .map(|statement| {
            statement.replace("${KEYSPACE}", keyspace).replace("${REPLICATION_FACTOR}", &replication_factor.to_string())
        })
        .collect())
}

/// Prepared statements, one per access path.
#[derive(Debug)]
struct Statements {
    insert_peer: PreparedStatement,
    insert_peer_by_key: PreparedStatement,
    insert_history: PreparedStatement,
    insert_history_day: PreparedStatement,
    insert_endpoint_change: PreparedStatement,
    insert_alert: PreparedStatement,
    insert_alert_day: PreparedStatement,
    acknowledge_alert: PreparedStatement,
    insert_alert_id: PreparedStatement,
    insert_host: PreparedStatement,
    insert_host_stats: PreparedStatement,
    delete_host_stats: PreparedStatement,
    insert_manifest: PreparedStatement,
    insert_silence: PreparedStatement,
    insert_checkpoint: PreparedStatement,
    select_peers: PreparedStatement,
    select_peer_locations: PreparedStatement,
    select_peer: PreparedStatement,
    select_history_days: PreparedStatement,
    select_history: PreparedStatement,
    select_endpoint_changes: PreparedStatement,
    select_alert_days: PreparedStatement,
    select_alerts: PreparedStatement,
    select_alert_id: PreparedStatement,
    select_alert: PreparedStatement,
    select_manifests: PreparedStatement,
    select_silences: PreparedStatement,
    select_hosts: PreparedStatement,
    select_host_stats: PreparedStatement,
    select_checkpoint: PreparedStatement,
}

impl Statements {
    async fn prepare(session: &Session) -> Result<Self, StoreError> {
        let prepare = |cql: &'static str| async move { session.prepare(cql).await.map_err(unavailable) };
        Ok(Self {
            insert_peer: prepare("INSERT INTO peers (org_id, key, value) VALUES (?, ?, ?)").await?,
            insert_peer_by_key: prepare("INSERT INTO peers_by_key (org_id, public_key, key, value) VALUES (?, ?, ?, ?)").await?,
            insert_history: prepare("INSERT INTO peer_history (org_id, public_key, day, key, value) VALUES (?, ?, ?, ?, ?)").await?,
            insert_history_day: prepare("INSERT INTO peer_history_days (org_id, public_key, day) VALUES (?, ?, ?)").await?,
            insert_endpoint_change: prepare("INSERT INTO endpoint_changes (org_id, public_key, key, value) VALUES (?, ?, ?, ?)").await?,
            insert_alert: prepare("INSERT INTO alerts (org_id, day, key, alert) VALUES (?, ?, ?, ?) USING TIMESTAMP ?").await?,
            insert_alert_day: prepare("INSERT INTO alert_days (org_id, day) VALUES (?, ?)").await?,
            acknowledge_alert: prepare(
                "UPDATE alerts USING TIMESTAMP ? SET acknowledged_by = ?, acknowledged_at = ? WHERE org_id = ? AND day = ? AND key = ?",
            )
            .await?,
            insert_alert_id: prepare("INSERT INTO alert_ids (org_id, key, value) VALUES (?, ?, ?)").await?,
            insert_host: prepare("INSERT INTO hosts (org_id, key, value) VALUES (?, ?, ?)").await?,
            insert_host_stats: prepare("INSERT INTO host_stats (org_id, key, value) VALUES (?, ?, ?)").await?,
            delete_host_stats: prepare("DELETE FROM host_stats WHERE org_id = ? AND key = ?").await?,
            insert_manifest: prepare("INSERT INTO manifests (org_id, key, value) VALUES (?, ?, ?)").await?,
            insert_silence: prepare("INSERT INTO silences (org_id, key, value) VALUES (?, ?, ?)").await?,
            insert_checkpoint: prepare("INSERT INTO checkpoints (key, value) VALUES (?, ?)").await?,
            select_peers: prepare("SELECT key, value FROM peers WHERE org_id = ? AND key >= ? AND key < ?").await?,
            select_peer_locations: prepare("SELECT key FROM peers_by_key WHERE org_id = ? AND public_key = ?").await?,
            select_peer: prepare("SELECT value FROM peers WHERE org_id = ? AND key = ?").await?,
            select_history_days: prepare("SELECT day FROM peer_history_days WHERE org_id = ? AND public_key = ? AND day >= ? AND day <= ?").await?,
            select_history: prepare(
                "SELECT key, value FROM peer_history WHERE org_id = ? AND public_key = ? AND day = ? AND key >= ? AND key < ?",
            )
            .await?,
            select_endpoint_changes: prepare(
                "SELECT key, value FROM endpoint_changes WHERE org_id = ? AND public_key = ? AND key >= ? AND key < ?",
            )
            .await?,
            select_alert_days: prepare("SELECT day FROM alert_days WHERE org_id = ? AND day >= ? AND day <= ? ORDER BY day DESC").await?,
            select_alerts: prepare(
                "SELECT key, alert, acknowledged_by, acknowledged_at FROM alerts WHERE org_id = ? AND day = ? AND key >= ? AND key < ? ORDER BY key DESC",
            )
            .await?,
            select_alert_id: prepare("SELECT value FROM alert_ids WHERE org_id = ? AND key = ?").await?,
            select_alert: prepare(
                "SELECT key, alert, acknowledged_by, acknowledged_at FROM alerts WHERE org_id = ? AND day = ? AND key = ?",
            )
            .await?,
            select_manifests: prepare("SELECT key, value FROM manifests WHERE org_id = ?").await?,
            select_silences: prepare("SELECT key, value FROM silences WHERE org_id = ?").await?,
            select_hosts: prepare("SELECT key, value FROM hosts WHERE org_id = ?").await?,
            select_host_stats: prepare("SELECT key, value FROM host_stats WHERE org_id = ?").await?,
            select_checkpoint: prepare("SELECT value FROM checkpoints WHERE key = ?").await?,
        })
    }
}

/// Projections in a ScyllaDB keyspace.
pub struct ScyllaStore {
    session: Session,
    statements: Statements,
}

impl std::fmt::Debug for ScyllaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaStore").finish_non_exhaustive()
    }
}

type Write<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// A row of an alerts partition: key, alert, acknowledgement.
type AlertColumns = (Vec<u8>, Option<Vec<u8>>, Option<String>, Option<i64>);

impl ScyllaStore {
    /// Connects to `uri` (`host:port`), applies the schema to `keyspace`, prepares every statement.
    pub async fn connect(uri: &str, keyspace: &str, replication_factor: u32) -> Result<Self, StoreError> {
        let statements = schema_statements(keyspace, replication_factor)?;
        let session = SessionBuilder::new().known_node(uri).build().await.map_err(unavailable)?;
        for statement in statements {
            session.query_unpaged(statement, ()).await.map_err(unavailable)?;
        }
        session.use_keyspace(keyspace, false).await.map_err(unavailable)?;
        let statements = Statements::prepare(&session).await?;
        Ok(Self { session, statements })
    }

    fn execute<'a, V: scylla::serialize::row::SerializeRow + Send + 'a>(
        &'a self, statement: &'a PreparedStatement, values: V,
    ) -> Write<'a> {
        Box::pin(async move { self.session.execute_unpaged(statement, values).await.map(drop).map_err(unavailable) })
    }

    /// Rows of a statement as (key, value) pairs, read page by page from the server.
    async fn key_values(
        &self, statement: &PreparedStatement, values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let pager = self.session.execute_iter(statement.clone(), values).await.map_err(unavailable)?;
        pager.rows_stream::<(Vec<u8>, Vec<u8>)>().map_err(unavailable)?.try_collect().await.map_err(unavailable)
    }

    /// Offers the rows of one ordered range to a page, honouring an exclusive lower bound.
    fn offer_rows<T>(
        page: &mut PageBuilder<T>, rows: Vec<(Vec<u8>, Vec<u8>)>, skip_key: Option<&[u8]>,
        mut keep: impl FnMut(&[u8]) -> Result<Option<T>, StoreError>,
    ) -> Result<bool, StoreError> {
        for (key, value) in rows {
            if skip_key == Some(key.as_slice()) {
                continue;
            }
            if !page.offer(&key, keep(&value)?) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn alert_key_for(&self, org: &OrgId, alert_id: &argus_core::AlertId) -> Result<Option<Vec<u8>>, StoreError> {
        let id_key = keys::alert_id(org, alert_id).into_bytes();
        let result = self
            .session
            .execute_unpaged(&self.statements.select_alert_id, (org.as_str(), id_key))
            .await
            .map_err(unavailable)?;
        let rows = result.into_rows_result().map_err(unavailable)?;
        let row = rows.maybe_first_row::<(Vec<u8>,)>().map_err(unavailable)?;
        Ok(row.map(|(key,)| key))
    }

    fn raised_at(alert_key: &[u8]) -> Result<UnixMillis, StoreError> {
        keys::alert_raised_at(alert_key)
            .ok_or_else(|| StoreError::Corrupt { table: "alert_ids", reason: "alert key without a time".into() })
    }

    fn alert_row(columns: AlertColumns) -> Result<Option<(Vec<u8>, AlertRow)>, StoreError> {
        let (key, alert, acknowledged_by, acknowledged_at) = columns;
        let Some(alert) = alert else { return Ok(None) };
        let alert: Alert = decode("alerts", &alert)?;
        Ok(Some((key, AlertRow { alert, acknowledged_by, acknowledged_at })))
    }

    /// Write timestamp of an alert transition, its own time: a revision beats the RAISED it revises,
    /// RESOLVED beats both (it is never earlier than a revision; at the same millisecond, by one).
    fn alert_write_timestamp(alert: &Alert) -> i64 {
        let at = match alert.state {
            AlertState::Raised => alert.revised_at.unwrap_or(alert.raised_at),
            AlertState::Resolved => alert.resolved_at.unwrap_or(alert.raised_at),
        };
        at.saturating_mul(1_000).saturating_add(i64::from(alert.state == AlertState::Resolved))
    }

    /// Write timestamp of an acknowledgement: the earliest one wins.
    fn acknowledgement_write_timestamp(acknowledged_at: UnixMillis) -> i64 {
        4_000_000_000_000_000_i64.saturating_sub(acknowledged_at.saturating_mul(1_000))
    }
}

#[async_trait]
impl ProjectionStore for ScyllaStore {
    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let statements = &self.statements;
        let mut writes: Vec<Write<'_>> = Vec::new();
        let mut acknowledgements = Vec::new();
        for effect in &batch.effects {
            match effect {
                Effect::PeerUpdated(record) => {
                    let PeerRecord { org_id, host, interface, public_key, observed_at, .. } = record;
                    let org = org_id.as_str().to_owned();
                    let key_bytes = public_key.as_bytes().to_vec();
                    let peer_key = keys::peer(org_id, host, interface, public_key).into_bytes();
                    writes.push(self.execute(&statements.insert_peer, (org.clone(), peer_key, encode(record))));
                    let by_key = keys::peer_by_key(org_id, public_key, host, interface).into_bytes();
                    writes.push(self.execute(
                        &statements.insert_peer_by_key,
                        (org.clone(), key_bytes.clone(), by_key, Vec::<u8>::new()),
                    ));
                    let day = day_of(*observed_at);
                    let timeline = keys::peer_timeline(org_id, public_key, *observed_at, host, interface).into_bytes();
                    let row = encode(&HistoryRow::from(record));
                    writes.push(
                        self.execute(&statements.insert_history, (org.clone(), key_bytes.clone(), day, timeline, row)),
                    );
                    writes.push(self.execute(&statements.insert_history_day, (org, key_bytes, day)));
                }
                Effect::HostUpdated(record) => {
                    let key = keys::host(&record.org_id, &record.host, &record.interface).into_bytes();
                    writes.push(
                        self.execute(&statements.insert_host, (record.org_id.as_str().to_owned(), key, encode(record))),
                    );
                }
                Effect::EndpointChanged(change) => {
                    let EndpointChange { org_id, host, interface, public_key, changed_at, .. } = change;
                    let key = keys::peer_timeline(org_id, public_key, *changed_at, host, interface).into_bytes();
                    let values = (org_id.as_str().to_owned(), public_key.as_bytes().to_vec(), key, encode(change));
                    writes.push(self.execute(&statements.insert_endpoint_change, values));
                }
                Effect::Alert(alert) => {
                    let org = alert.org_id.as_str().to_owned();
                    let day = day_of(alert.raised_at);
                    let key = keys::alert(&alert.org_id, alert.raised_at, &alert.alert_id).into_bytes();
                    let id_key = keys::alert_id(&alert.org_id, &alert.alert_id).into_bytes();
                    let timestamp = Self::alert_write_timestamp(alert);
                    writes.push(
                        self.execute(
                            &statements.insert_alert,
                            (org.clone(), day, key.clone(), encode(alert), timestamp),
                        ),
                    );
                    writes.push(self.execute(&statements.insert_alert_day, (org.clone(), day)));
                    writes.push(self.execute(&statements.insert_alert_id, (org, id_key, key)));
                }
                Effect::SilenceSet(silence) => {
                    let header = &silence.header;
                    let key = keys::silence(&header.org_id, &header.host, &silence.silence_id).into_bytes();
                    let values = (header.org_id.as_str().to_owned(), key, encode(&SilenceRow::from(silence)));
                    writes.push(self.execute(&statements.insert_silence, values));
                }
                Effect::ManifestSet(manifest) => {
                    let header = &manifest.header;
                    let key =
                        keys::manifest(&header.org_id, &header.host, &header.interface, manifest.scope()).into_bytes();
                    let values = (header.org_id.as_str().to_owned(), key, encode(&ManifestRow::from(manifest)));
                    writes.push(self.execute(&statements.insert_manifest, values));
                }
                Effect::AlertAcknowledged(acknowledgement) => acknowledgements.push(acknowledgement),
            }
        }
        for stats in &batch.host_stats {
            let (org, key) = (
                stats.org_id.as_str().to_owned(),
                keys::host_stats(&stats.org_id, &stats.host, stats.clearance).into_bytes(),
            );
            writes.push(if stats.is_empty() {
                self.execute(&statements.delete_host_stats, (org, key))
            } else {
                self.execute(&statements.insert_host_stats, (org, key, encode(stats)))
            });
        }
        stream::iter(writes).buffer_unordered(WRITE_CONCURRENCY).try_collect::<Vec<()>>().await?;
        // acknowledgements need the alert rows above to exist
        for acknowledgement in acknowledgements {
            let org = &acknowledgement.header.org_id;
            let Some(alert_key) = self.alert_key_for(org, &acknowledgement.alert_id).await? else { continue };
            let acknowledged_at = acknowledgement.header.observed_at;
            let values = (
                Self::acknowledgement_write_timestamp(acknowledged_at),
                acknowledgement.acknowledged_by.clone(),
                acknowledged_at,
                org.as_str().to_owned(),
                day_of(Self::raised_at(&alert_key)?),
                alert_key,
            );
            self.execute(&statements.acknowledge_alert, values).await?;
        }
        // last: the checkpoint never runs ahead of the rows it covers
        if let Some(checkpoint) = &batch.checkpoint {
            let values = (checkpoint.partition.as_bytes().to_vec(), encode(checkpoint));
            self.execute(&statements.insert_checkpoint, values).await?;
        }
        Ok(())
    }

    async fn peers(
        &self, org: &OrgId, filter: &PeerFilter, max_clearance: Clearance, page: &PageRequest,
    ) -> Result<Page<PeerRecord>, StoreError> {
        let scan = peers_scan(org, filter, page.after.as_ref())?;
        let (lower, skip_lower) = scan.lower_inclusive();
        let mut builder = PageBuilder::new(Listing::Peers, page.first);
        if builder.is_full() {
            return Ok(builder.finish());
        }
        let pager = self
            .session
            .execute_iter(self.statements.select_peers.clone(), (org.as_str(), lower.clone(), scan.upper_exclusive()))
            .await
            .map_err(unavailable)?;
        let mut rows = pager.rows_stream::<(Vec<u8>, Vec<u8>)>().map_err(unavailable)?;
        while let Some(row) = rows.next().await {
            let (key, value) = row.map_err(unavailable)?;
            if skip_lower && key == lower {
                continue;
            }
            if !builder.offer(&key, visible::peer(&value, filter, max_clearance)?) {
                break;
            }
        }
        Ok(builder.finish())
    }

    async fn peer(
        &self, org: &OrgId, key: &PublicKey, max_clearance: Clearance,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        let pager = self
            .session
            .execute_iter(self.statements.select_peer_locations.clone(), (org.as_str(), key.as_bytes().to_vec()))
            .await
            .map_err(unavailable)?;
        let locations: Vec<(Vec<u8>,)> =
            pager.rows_stream::<(Vec<u8>,)>().map_err(unavailable)?.try_collect().await.map_err(unavailable)?;
        let mut records = Vec::new();
        for (index_key,) in locations {
            let Some(peer_key) = keys::peer_from_index(org, key, &index_key) else { continue };
            let result = self
                .session
                .execute_unpaged(&self.statements.select_peer, (org.as_str(), peer_key))
                .await
                .map_err(unavailable)?;
            let rows = result.into_rows_result().map_err(unavailable)?;
            if let Some((value,)) = rows.maybe_first_row::<(Vec<u8>,)>().map_err(unavailable)? {
                records.extend(visible::peer(&value, &PeerFilter::default(), max_clearance)?);
            }
        }
        Ok(records)
    }

    async fn history(
        &self, org: &OrgId, key: &PublicKey, range: TimeRange, max_clearance: Clearance, page: &PageRequest,
    ) -> Result<Page<HistoryRow>, StoreError> {
        let scan = timeline_scan(org, key, range, page.after.as_ref())?;
        let (lower, skip_lower) = scan.lower_inclusive();
        let upper = scan.upper_exclusive();
        let mut builder = PageBuilder::new(Listing::History, page.first);
        if builder.is_full() {
            return Ok(builder.finish());
        }
        let last_day = day_of(range.to.saturating_sub(1));
        let first_day = keys::timeline_time(&lower).map_or(day_of(range.from), day_of);
        let days_pager = self
            .session
            .execute_iter(
                self.statements.select_history_days.clone(),
                (org.as_str(), key.as_bytes().to_vec(), first_day, last_day),
            )
            .await
            .map_err(unavailable)?;
        let days: Vec<(i32,)> =
            days_pager.rows_stream::<(i32,)>().map_err(unavailable)?.try_collect().await.map_err(unavailable)?;
        for (day,) in days {
            let values = (org.as_str(), key.as_bytes().to_vec(), day, lower.clone(), upper.clone());
            let rows = self.key_values(&self.statements.select_history, values).await?;
            let skip = skip_lower.then_some(lower.as_slice());
            let more = Self::offer_rows(&mut builder, rows, skip, |bytes| visible::history(bytes, max_clearance))?;
            if !more {
                break;
            }
        }
        Ok(builder.finish())
    }

    async fn endpoint_changes(
        &self, org: &OrgId, key: &PublicKey, range: TimeRange, max_clearance: Clearance,
    ) -> Result<Vec<EndpointChange>, StoreError> {
        let scan = timeline_scan(org, key, range, None)?;
        let values = (org.as_str(), key.as_bytes().to_vec(), scan.lower_inclusive().0, scan.upper_exclusive());
        let mut changes = Vec::new();
        for (_, value) in self.key_values(&self.statements.select_endpoint_changes, values).await? {
            changes.extend(visible::endpoint_change(&value, max_clearance)?);
        }
        Ok(changes)
    }

    async fn alerts(
        &self, org: &OrgId, filter: &AlertFilter, max_clearance: Clearance, page: &PageRequest,
    ) -> Result<Page<AlertRow>, StoreError> {
        let scan = alerts_scan(org, filter.range, page.after.as_ref())?;
        let (lower, _) = scan.lower_inclusive();
        let upper = scan.upper_exclusive();
        let mut builder = PageBuilder::new(Listing::Alerts, page.first);
        if builder.is_full() {
            return Ok(builder.finish());
        }
        let newest_day = keys::alert_raised_at(&upper).map_or(day_of(filter.range.to.saturating_sub(1)), day_of);
        let days_pager = self
            .session
            .execute_iter(
                self.statements.select_alert_days.clone(),
                (org.as_str(), day_of(filter.range.from), newest_day),
            )
            .await
            .map_err(unavailable)?;
        let days: Vec<(i32,)> =
            days_pager.rows_stream::<(i32,)>().map_err(unavailable)?.try_collect().await.map_err(unavailable)?;
        'days: for (day,) in days {
            let pager = self
                .session
                .execute_iter(self.statements.select_alerts.clone(), (org.as_str(), day, lower.clone(), upper.clone()))
                .await
                .map_err(unavailable)?;
            let mut rows = pager.rows_stream::<AlertColumns>().map_err(unavailable)?;
            while let Some(columns) = rows.next().await {
                let Some((key, row)) = Self::alert_row(columns.map_err(unavailable)?)? else { continue };
                if !builder.offer(&key, visible::alert(row, filter, max_clearance)) {
                    break 'days;
                }
            }
        }
        Ok(builder.finish())
    }

    async fn alert(
        &self, org: &OrgId, alert_id: &AlertId, max_clearance: Clearance,
    ) -> Result<Option<AlertRow>, StoreError> {
        let Some(alert_key) = self.alert_key_for(org, alert_id).await? else { return Ok(None) };
        let values = (org.as_str(), day_of(Self::raised_at(&alert_key)?), alert_key);
        let result = self.session.execute_unpaged(&self.statements.select_alert, values).await.map_err(unavailable)?;
        let rows = result.into_rows_result().map_err(unavailable)?;
        let Some(columns) = rows.maybe_first_row::<AlertColumns>().map_err(unavailable)? else { return Ok(None) };
        Ok(Self::alert_row(columns)?.and_then(|(_, row)| visible::alert(row, &AlertFilter::default(), max_clearance)))
    }

    async fn silences(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<SilenceRow>, StoreError> {
        let rows = self.key_values(&self.statements.select_silences, (org.as_str(),)).await?;
        let rows: Vec<SilenceRow> =
            rows.iter().map(|(_, value)| decode("silences", value)).collect::<Result<_, _>>()?;
        Ok(rows.into_iter().filter(|row| row.clearance <= max_clearance).collect())
    }

    async fn manifests(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<ManifestRow>, StoreError> {
        let rows = self.key_values(&self.statements.select_manifests, (org.as_str(),)).await?;
        let rows: Vec<ManifestRow> =
            rows.iter().map(|(_, value)| decode("manifests", value)).collect::<Result<_, _>>()?;
        Ok(rows.into_iter().filter(|row| row.clearance <= max_clearance).collect())
    }

    async fn hosts(&self, org: &OrgId, max_clearance: Clearance) -> Result<Vec<HostRecord>, StoreError> {
        let mut hosts = Vec::new();
        for (_, value) in self.key_values(&self.statements.select_hosts, (org.as_str(),)).await? {
            hosts.extend(visible::host(&value, max_clearance)?);
        }
        Ok(hosts)
    }

    async fn stats(&self, org: &OrgId, max_clearance: Clearance) -> Result<Stats, StoreError> {
        let rows = self.key_values(&self.statements.select_host_stats, (org.as_str(),)).await?;
        let rows: Vec<HostStats> =
            rows.iter().map(|(_, value)| decode("host_stats", value)).collect::<Result<_, _>>()?;
        Ok(Stats::from_rows(&rows, max_clearance))
    }

    async fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError> {
        let result = self
            .session
            .execute_unpaged(&self.statements.select_checkpoint, (partition.as_bytes().to_vec(),))
            .await
            .map_err(unavailable)?;
        let rows = result.into_rows_result().map_err(unavailable)?;
        match rows.maybe_first_row::<(Vec<u8>,)>().map_err(unavailable)? {
            Some((value,)) => decode("checkpoints", &value).map(Some),
            None => Ok(None),
        }
    }

    async fn export(&self) -> Result<String, StoreError> {
        let mut out = String::new();
        for table in ["peers", "peers_by_key", "peer_history", "endpoint_changes"] {
            self.export_key_values(&mut out, table, &format!("SELECT key, value FROM {table}")).await?;
        }
        let pager = self
            .session
            .query_iter("SELECT key, alert, acknowledged_by, acknowledged_at FROM alerts", ())
            .await
            .map_err(unavailable)?;
        let columns: Vec<AlertColumns> =
            pager.rows_stream::<AlertColumns>().map_err(unavailable)?.try_collect().await.map_err(unavailable)?;
        let mut alerts = Vec::new();
        for row in columns {
            if let Some((key, row)) = Self::alert_row(row)? {
                alerts.push((key, encode(&row)));
            }
        }
        alerts.sort();
        out.extend(alerts.iter().map(|(key, value)| export_line("alerts", key, value)));
        for table in ["alert_ids", "hosts", "host_stats", "manifests", "silences", "checkpoints"] {
            self.export_key_values(&mut out, table, &format!("SELECT key, value FROM {table}")).await?;
        }
        Ok(out)
    }
}

impl ScyllaStore {
    async fn export_key_values(&self, out: &mut String, table: &str, cql: &str) -> Result<(), StoreError> {
        let pager = self.session.query_iter(cql.to_owned(), ()).await.map_err(unavailable)?;
        let mut rows: Vec<(Vec<u8>, Vec<u8>)> =
            pager.rows_stream::<(Vec<u8>, Vec<u8>)>().map_err(unavailable)?.try_collect().await.map_err(unavailable)?;
        rows.sort();
        out.extend(rows.iter().map(|(key, value)| export_line(table, key, value)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_schema_splits_into_statements_for_a_keyspace() {
        let statements = schema_statements("argus_test", 3).expect("statements");
        assert!(statements[0].starts_with("CREATE KEYSPACE IF NOT EXISTS argus_test"));
        assert!(statements[0].contains("'replication_factor': 3"));
        assert_eq!(statements.iter().filter(|s| s.starts_with("CREATE TABLE")).count(), 13);
        assert!(statements.iter().all(|s| !s.contains("${") && !s.contains("--")));
        assert!(schema_statements("Bad-Name", 1).is_err());
        assert!(schema_statements("argus", 0).is_err());
    }

    #[test]
    fn resolutions_outrank_raisings_and_first_acknowledgements_win() {
        let org: OrgId = "acme".parse().expect("org");
        let host = "gw".parse().expect("host");
        let interface = "wg0".parse().expect("iface");
        let id = argus_core::AlertId::derive(argus_core::AlertKind::PeerStale, &org, &host, &interface, None, 5);
        let raised = Alert {
            alert_id: id,
            kind: argus_core::AlertKind::PeerStale,
            severity: argus_core::Severity::Warning,
            state: AlertState::Raised,
            org_id: org,
            host,
            interface,
            public_key: None,
            clearance: Clearance::Unclassified,
            probable_cause: None,
            evidence: Default::default(),
            summary: String::new(),
            raised_at: 1_780_000_000_000,
            resolved_at: None,
            revised_at: None,
            silenced: false,
            incident_id: None,
        };
        let revised = Alert { revised_at: Some(raised.raised_at + 30_000), ..raised.clone() };
        let resolved =
            Alert { state: AlertState::Resolved, resolved_at: revised.revised_at, revised_at: None, ..raised.clone() };
        assert!(ScyllaStore::alert_write_timestamp(&revised) > ScyllaStore::alert_write_timestamp(&raised));
        assert!(ScyllaStore::alert_write_timestamp(&resolved) > ScyllaStore::alert_write_timestamp(&revised));
        assert!(
            ScyllaStore::acknowledgement_write_timestamp(1_780_000_000_000)
                > ScyllaStore::acknowledgement_write_timestamp(1_780_000_000_001)
        );
    }
}
