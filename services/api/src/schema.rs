//! The GraphQL schema: queries over the projections, mutations through the event log, live alerts.
//!
//! Every resolver takes the organisation and clearance from the authenticated [`Caller`]; no
//! argument names an organisation, so none can widen the caller's scope.

use std::sync::Arc;
use std::time::Duration;

use argus_core::{
    AlertId, Cidr, Endpoint, HostId, InterfaceName, ManifestEntry, PeerObservation, PeerRecord, PeerSource, PeerStatus,
    PublicKey, RotationManifestSet,
};
use argus_store::{AlertFilter, AlertRow, Cursor, PageRequest, PeerFilter, Stats, StoreError, TimeRange};
use async_graphql::{Context, ErrorExtensions, Object as GraphqlObject, Schema};
use chrono::{DateTime, Utc};

use crate::auth::{AuthError, Caller, Role};
use crate::events::PublishError;
use crate::limits::{Limits, LimitsExtension, cost};
use crate::object::{Connection, Object, Objects};
use crate::types::*;
use crate::{ApiConfig, ApiContext};

pub type ApiSchema = Schema<QueryRoot, MutationRoot, crate::live::SubscriptionRoot>;

/// Builds the schema with the configured depth limit and `limits` (cost, slots, deadline).
pub(crate) fn build(context: ApiContext, limits: Arc<Limits>) -> ApiSchema {
    let max_depth = context.config.max_depth;
    Schema::build(QueryRoot, MutationRoot, crate::live::SubscriptionRoot)
        .data(context)
        .limit_depth(max_depth)
        .extension(LimitsExtension(limits))
        .finish()
}

/// The committed SDL (`schemas/graphql/argus.graphql`) is this text.
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, crate::live::SubscriptionRoot).finish().sdl()
}

/// A GraphQL error with a machine-readable `extensions.code`.
pub(crate) fn error(code: &'static str, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, extensions| extensions.set("code", code))
}

pub(crate) fn bad_input(field: &str, message: impl std::fmt::Display) -> async_graphql::Error {
    error("BAD_USER_INPUT", format!("{field}: {message}"))
}

fn store_error(failure: StoreError) -> async_graphql::Error {
    match failure {
        StoreError::InvalidCursor => bad_input("after", "cursor is not valid for this listing"),
        StoreError::Unavailable(_) => error("UNAVAILABLE", "projection store unavailable, retry later"),
        StoreError::Corrupt { .. } | StoreError::Format { .. } => error("INTERNAL", "a stored row does not decode"),
    }
}

pub(crate) fn auth_error(failure: AuthError) -> async_graphql::Error {
    error(failure.code(), failure.to_string())
}

pub(crate) fn caller<'a>(context: &'a Context<'_>) -> async_graphql::Result<&'a Caller> {
    context.data_opt::<Caller>().ok_or_else(|| auth_error(AuthError::Missing))
}

pub(crate) fn api<'a>(context: &'a Context<'_>) -> &'a ApiContext {
    context.data_unchecked::<ApiContext>()
}

/// A caller's page request: `first` within the configured cap, `after` an opaque cursor.
fn page_request(config: &ApiConfig, first: Option<i32>, after: Option<String>) -> async_graphql::Result<PageRequest> {
    let first = first.unwrap_or(config.default_page_size as i32);
    if first < 1 || first as usize > config.max_page_size {
        return Err(bad_input("first", format!("must be between 1 and {}", config.max_page_size)));
    }
    let after = after.map(|text| Cursor::parse(&text)).transpose().map_err(store_error)?;
    Ok(PageRequest { first: first as usize, after })
}

fn parse<T: std::str::FromStr>(field: &str, text: &str) -> async_graphql::Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse::<T>().map_err(|failure| bad_input(field, failure))
}

/// `[from, to)`, at most the configured number of days long.
fn time_range(config: &ApiConfig, from: &DateTime<Utc>, to: &DateTime<Utc>) -> async_graphql::Result<TimeRange> {
    if from >= to {
        return Err(bad_input("to", "must be later than from"));
    }
    let (from, to) = (unix_millis(from), unix_millis(to));
    let longest = i64::from(config.max_time_range_days) * 86_400_000;
    if to.saturating_sub(from) > longest {
        let days = config.max_time_range_days;
        return Err(bad_input("to", format!("the range may span at most {days} days: ask for it in parts")));
    }
    Ok(TimeRange { from, to })
}

/// `wireguardPeers`: a page of the peers the caller may see (also answered by [`crate::direct`],
/// as are the other functions of this form).
pub(crate) async fn peers(
    api: &ApiContext, caller: &Caller, filter: Option<WireguardPeerFilter>, first: Option<i32>, after: Option<String>,
) -> async_graphql::Result<Connection<PeerRecord>> {
    let filter = filter.unwrap_or_default();
    let filter = PeerFilter {
        host: filter.host.as_deref().map(|host| parse::<HostId>("filter.host", host)).transpose()?,
        interface: filter
            .interface
            .as_deref()
            .map(|interface| parse::<InterfaceName>("filter.interface", interface))
            .transpose()?,
        status: filter.status.map(Into::into),
        stale: filter.stale,
        text: filter.text.filter(|text| !text.is_empty()),
    };
    let request = page_request(&api.config, first, after)?;
    let after_given = request.after.is_some();
    let page = api.store.peers(&caller.org, &filter, caller.clearance, &request).await.map_err(store_error)?;
    Ok(Connection::of(page, after_given))
}

/// `wireguardPeer`: one key on every gateway interface that lists it.
pub(crate) async fn peer(
    api: &ApiContext, caller: &Caller, public_key: &str,
) -> async_graphql::Result<Vec<PeerRecord>> {
    let key = parse::<PublicKey>("publicKey", public_key)?;
    api.store.peer(&caller.org, &key, caller.clearance).await.map_err(store_error)
}

/// `wireguardStats`: statistics of the peers the caller may see.
pub(crate) async fn stats(api: &ApiContext, caller: &Caller) -> async_graphql::Result<Stats> {
    api.store.stats(&caller.org, caller.clearance).await.map_err(store_error)
}

/// `wireguardHosts`: the gateway interfaces the caller may see.
pub(crate) async fn hosts(api: &ApiContext, caller: &Caller) -> async_graphql::Result<Vec<argus_core::HostRecord>> {
    api.store.hosts(&caller.org, caller.clearance).await.map_err(store_error)
}

/// `wireguardAlerts`: a page of the alerts the caller may see, newest first.
pub(crate) async fn alerts(
    api: &ApiContext, caller: &Caller, filter: Option<WireguardAlertFilter>, first: Option<i32>, after: Option<String>,
) -> async_graphql::Result<Connection<AlertRow>> {
    let filter = filter.unwrap_or_default();
    let range = TimeRange {
        from: filter.from.as_ref().map_or(i64::MIN, unix_millis),
        to: filter.to.as_ref().map_or(i64::MAX, unix_millis),
    };
    if range.from >= range.to {
        return Err(bad_input("filter.to", "must be later than filter.from"));
    }
    let incident = filter
        .incident_id
        .as_deref()
        .map(|id| AlertId::parse(id).map_err(|failure| bad_input("filter.incidentId", failure)))
        .transpose()?;
    // an incident's alerts were raised while it was open: the scan starts at its first member
    let range = match incident {
        Some(incident) => match api.store.alert(&caller.org, &incident, caller.clearance).await.map_err(store_error)? {
            Some(row) => TimeRange { from: range.from.max(row.alert.raised_at), ..range },
            None => {
                return Err(error(
                    "NOT_FOUND",
                    format!("filter.incidentId: no incident {incident} in your organisation"),
                ));
            }
        },
        None => range,
    };
    let filter = AlertFilter {
        range,
        state: filter.state.map(Into::into),
        kind: filter.kind.map(Into::into),
        incident,
        silenced: filter.silenced,
    };
    let request = page_request(&api.config, first, after)?;
    let after_given = request.after.is_some();
    let page = api.store.alerts(&caller.org, &filter, caller.clearance, &request).await.map_err(store_error)?;
    Ok(Connection::of(page, after_given))
}

#[derive(Debug)]
pub struct QueryRoot;

#[GraphqlObject(name = "Query")]
impl QueryRoot {
    /// Who your token says you are: the scope every other answer is cut to, and what you may do.
    async fn wireguard_caller(&self, context: &Context<'_>) -> async_graphql::Result<WireguardCaller> {
        let caller = caller(context)?;
        Ok(WireguardCaller {
            subject: caller.subject.clone(),
            organisation: caller.org.as_str().to_owned(),
            clearance: caller.clearance.into(),
            role: caller.role.into(),
            // a token beyond the calendar's end never expires, as far as a screen can tell
            expires_at: i64::try_from(caller.accepted_until)
                .ok()
                .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        })
    }

    /// Peers of the caller's organisation, ordered by host, interface and key.
    #[graphql(complexity = "cost::peers(first, &filter, child_complexity)")]
    async fn wireguard_peers(
        &self, context: &Context<'_>, filter: Option<WireguardPeerFilter>, first: Option<i32>, after: Option<String>,
    ) -> async_graphql::Result<Object<Connection<PeerRecord>>> {
        peers(api(context), caller(context)?, filter, first, after).await.map(Object)
    }

    /// One public key on every gateway interface that lists it.
    #[graphql(complexity = "cost::ONE_KEY + child_complexity")]
    async fn wireguard_peer(
        &self, context: &Context<'_>, public_key: String,
    ) -> async_graphql::Result<Objects<PeerRecord>> {
        peer(api(context), caller(context)?, &public_key).await.map(Objects)
    }

    /// Counts by status, traffic totals and rates, per host: only peers the caller may see.
    #[graphql(complexity = "cost::GATEWAY_ROWS + child_complexity")]
    async fn wireguard_stats(&self, context: &Context<'_>) -> async_graphql::Result<WireguardStats> {
        stats(api(context), caller(context)?).await.map(Object)
    }

    /// A peer's observations (every gateway) in `[from, to)`, oldest first.
    #[graphql(complexity = "cost::ranged_page(first, &from, &to, child_complexity)")]
    async fn wireguard_peer_history(
        &self, context: &Context<'_>, public_key: String, from: DateTime<Utc>, to: DateTime<Utc>, first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Object<Connection<argus_store::HistoryRow>>> {
        let caller = caller(context)?;
        let api = api(context);
        let key = parse::<PublicKey>("publicKey", &public_key)?;
        let range = time_range(&api.config, &from, &to)?;
        let request = page_request(&api.config, first, after)?;
        let after_given = request.after.is_some();
        let page =
            api.store.history(&caller.org, &key, range, caller.clearance, &request).await.map_err(store_error)?;
        Ok(Object(Connection::of(page, after_given)))
    }

    /// A peer's endpoint moves in `[from, to)`, oldest first (roaming audit).
    #[graphql(complexity = "cost::ranged(&from, &to, child_complexity)")]
    async fn wireguard_endpoint_changes(
        &self, context: &Context<'_>, public_key: String, from: DateTime<Utc>, to: DateTime<Utc>,
    ) -> async_graphql::Result<Objects<argus_core::EndpointChange>> {
        let caller = caller(context)?;
        let key = parse::<PublicKey>("publicKey", &public_key)?;
        let range = time_range(&api(context).config, &from, &to)?;
        let changes = api(context)
            .store
            .endpoint_changes(&caller.org, &key, range, caller.clearance)
            .await
            .map_err(store_error)?;
        Ok(Objects(changes))
    }

    /// Alerts raised in a time range, newest first.
    #[graphql(complexity = "cost::alerts(first, &filter, child_complexity)")]
    async fn wireguard_alerts(
        &self, context: &Context<'_>, filter: Option<WireguardAlertFilter>, first: Option<i32>, after: Option<String>,
    ) -> async_graphql::Result<Object<Connection<AlertRow>>> {
        alerts(api(context), caller(context)?, filter, first, after).await.map(Object)
    }

    /// Silences (maintenance windows) set by authors at or below your clearance, by host; ended ones
    /// only with `includeEnded`.
    #[graphql(complexity = "cost::GATEWAY_ROWS + child_complexity")]
    async fn wireguard_silences(
        &self, context: &Context<'_>, include_ended: Option<bool>,
    ) -> async_graphql::Result<Objects<argus_store::SilenceRow>> {
        let caller = caller(context)?;
        let silences = api(context).store.silences(&caller.org, caller.clearance).await.map_err(store_error)?;
        let now = chrono::Utc::now().timestamp_millis();
        let shown = |silence: &argus_store::SilenceRow| include_ended.unwrap_or(false) || silence.ends_at > now;
        Ok(Objects(silences.into_iter().filter(shown).collect()))
    }

    /// Gateway interfaces and whether they are heard from.
    #[graphql(complexity = "cost::GATEWAY_ROWS + child_complexity")]
    async fn wireguard_hosts(&self, context: &Context<'_>) -> async_graphql::Result<Objects<argus_core::HostRecord>> {
        hosts(api(context), caller(context)?).await.map(Objects)
    }

    /// Peers that handshook or moved traffic in `[from, to)` (the shift audit), ordered by host,
    /// interface and key. Each page examines at most `first` x 10 peers, so a page may hold fewer
    /// than `first` while `hasNextPage` is true: keep paging until it is false.
    #[graphql(complexity = "cost::activity(first, &from, &to, child_complexity)")]
    async fn wireguard_active_peers(
        &self, context: &Context<'_>, from: DateTime<Utc>, to: DateTime<Utc>, host: Option<String>, first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Object<Connection<argus_store::PeerActivity>>> {
        let caller = caller(context)?;
        let api = api(context);
        let range = time_range(&api.config, &from, &to)?;
        let host = host.as_deref().map(|host| parse::<HostId>("host", host)).transpose()?;
        let request = page_request(&api.config, first, after)?;
        let after_given = request.after.is_some();
        let page = api
            .store
            .active_peers(&caller.org, range, host.as_ref(), caller.clearance, &request)
            .await
            .map_err(store_error)?;
        Ok(Object(Connection::of(page, after_given)))
    }

    /// Where each key of the rotation manifests you may see stands on its interface, judged by the
    /// peers you may see.
    #[graphql(complexity = "cost::ROTATION_STATUS + child_complexity")]
    async fn wireguard_rotation_status(
        &self, context: &Context<'_>,
    ) -> async_graphql::Result<Objects<argus_store::KeyRotation>> {
        let caller = caller(context)?;
        let status = api(context).store.rotation_status(&caller.org, caller.clearance).await.map_err(store_error)?;
        Ok(Objects(status))
    }

    /// The interface's configuration in `wg` format, for backup and audit: `[Interface]` without a
    /// private key, one `[Peer]` per visible peer.
    #[graphql(complexity = "cost::CONFIG_EXPORT + child_complexity")]
    async fn wireguard_config_export(
        &self, context: &Context<'_>, host: String, interface: String,
    ) -> async_graphql::Result<String> {
        let caller = caller(context)?;
        let api = api(context);
        let host = parse::<HostId>("host", &host)?;
        let interface = parse::<InterfaceName>("interface", &interface)?;
        let hosts = api.store.hosts(&caller.org, caller.clearance).await.map_err(store_error)?;
        let gateway = hosts.iter().find(|record| record.host == host && record.interface == interface);
        let filter =
            PeerFilter { host: Some(host.clone()), interface: Some(interface.clone()), ..PeerFilter::default() };
        let mut peers = Vec::new();
        let mut request = PageRequest::first(api.config.max_page_size);
        loop {
            let page = api.store.peers(&caller.org, &filter, caller.clearance, &request).await.map_err(store_error)?;
            peers.extend(page.items.into_iter().filter(|record| record.status != PeerStatus::Removed));
            match page.next {
                Some(next) => request.after = Some(next),
                None => break,
            }
        }
        if gateway.is_none() && peers.is_empty() {
            return Err(error("NOT_FOUND", format!("no interface {interface} on host {host}")));
        }
        Ok(crate::export::wg_config(&host, &interface, gateway, &peers))
    }
}

#[derive(Debug)]
pub struct MutationRoot;

#[GraphqlObject(name = "Mutation")]
impl MutationRoot {
    /// Publishes a peer record to the event log (validated like a collector's), then waits a
    /// bounded time for the processor to project it.
    async fn sync_wireguard_peer(
        &self, context: &Context<'_>, input: SyncWireguardPeerInput,
    ) -> async_graphql::Result<SyncWireguardPeerResult> {
        let caller = caller(context)?;
        caller.require(Role::Operator).map_err(auth_error)?;
        let api = api(context);
        let (host, interface) = gateway_interface("input", &input.host, &input.interface)?;
        let observation = validate_sync(caller, &input, api.publisher.header(&caller.org, host, interface))?;
        let (key, host, interface, observed_at) = (
            observation.public_key,
            observation.header.host.clone(),
            observation.header.interface.clone(),
            observation.header.observed_at,
        );
        let event_id =
            api.publisher.publish(&argus_core::Event::PeerObservation(observation)).await.map_err(publish_error)?;
        let deadline = tokio::time::Instant::now() + api.config.sync_wait;
        let peer = loop {
            let records = api.store.peer(&caller.org, &key, caller.clearance).await.map_err(store_error)?;
            if let Some(record) = records.iter().find(|record| {
                record.host == host && record.interface == interface && record.observed_at >= observed_at
            }) {
                break Some(Object(record.clone()));
            }
            if tokio::time::Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        Ok(SyncWireguardPeerResult { event_id, peer })
    }

    /// Sets the keys one interface's peers at or below your clearance must present, replacing the
    /// manifest set before at your clearance; a peer still presenting a retired or unlisted key is
    /// flagged (SECURITY) until it matches. Peers above your clearance are not affected.
    async fn set_rotation_manifest(
        &self, context: &Context<'_>, input: RotationManifestInput,
    ) -> async_graphql::Result<AcceptedEvent> {
        let caller = caller(context)?;
        caller.require(Role::Operator).map_err(auth_error)?;
        let api = api(context);
        let (host, interface) = gateway_interface("input", &input.host, &input.interface)?;
        let header = api.publisher.header(&caller.org, host, interface);
        let mut entries = Vec::with_capacity(input.entries.len());
        for (index, entry) in input.entries.iter().enumerate() {
            let field = |name: &str| format!("entries[{index}].{name}");
            let expected_key = parse::<PublicKey>(&field("expectedKey"), &entry.expected_key)?;
            let retired_keys = entry
                .retired_keys
                .iter()
                .enumerate()
                .map(|(position, key)| parse::<PublicKey>(&format!("{}[{position}]", field("retiredKeys")), key))
                .collect::<Result<Vec<_>, _>>()?;
            let label = entry.label.clone().map(|label| bounded_text(&field("label"), label)).transpose()?;
            entries.push(ManifestEntry { label, expected_key, retired_keys });
        }
        let event = argus_core::Event::RotationManifestSet(RotationManifestSet {
            header,
            entries,
            writer_clearance: Some(caller.clearance),
        });
        let event_id = api.publisher.publish(&event).await.map_err(publish_error)?;
        Ok(AcceptedEvent { event_id })
    }

    /// Silences a host, one of its interfaces or one peer for a time range (a maintenance window):
    /// its alerts in the range are recorded and marked silenced, and not notified. Set the same
    /// `silenceId` again to change it; an `endsAt` in the past ends it.
    async fn set_wireguard_silence(
        &self, context: &Context<'_>, input: WireguardSilenceInput,
    ) -> async_graphql::Result<WireguardSilenceSet> {
        let caller = caller(context)?;
        caller.require(Role::Operator).map_err(auth_error)?;
        let api = api(context);
        let silence = silence_event(api, caller, input).await?;
        let silence_id = silence.silence_id.to_string();
        let event_id = api.publisher.publish(&argus_core::Event::SilenceSet(silence)).await.map_err(publish_error)?;
        Ok(WireguardSilenceSet { silence_id, event_id })
    }

    /// Acknowledges an alert of the caller's organisation (recorded once, with the caller's name).
    async fn acknowledge_alert(&self, context: &Context<'_>, alert_id: String) -> async_graphql::Result<AcceptedEvent> {
        let caller = caller(context)?;
        caller.require(Role::Operator).map_err(auth_error)?;
        let api = api(context);
        let alert_id = AlertId::parse(&alert_id).map_err(|failure| bad_input("alertId", failure))?;
        let Some(row) = api.store.alert(&caller.org, &alert_id, caller.clearance).await.map_err(store_error)? else {
            return Err(error("NOT_FOUND", format!("alertId: no alert {alert_id} in your organisation")));
        };
        let header = api.publisher.header(&caller.org, row.alert.host.clone(), row.alert.interface.clone());
        let event = argus_core::Event::AlertAcknowledged(argus_core::AlertAcknowledged {
            header,
            alert_id,
            acknowledged_by: caller.subject.clone(),
        });
        let event_id = api.publisher.publish(&event).await.map_err(publish_error)?;
        Ok(AcceptedEvent { event_id })
    }
}

/// The longest silence: a maintenance window, not a way to switch alerting off.
const MAX_SILENCE_DAYS: i64 = 31;

/// `setWireguardSilence`: the silence event `input` stands for, once its scope is one the caller
/// may see (a precise error naming the field otherwise).
async fn silence_event(
    api: &ApiContext, caller: &Caller, input: WireguardSilenceInput,
) -> async_graphql::Result<argus_core::SilenceSet> {
    let host = parse::<HostId>("input.host", &input.host)?;
    let interface =
        input.interface.as_deref().map(|name| parse::<InterfaceName>("input.interface", name)).transpose()?;
    let public_key = input.public_key.as_deref().map(|key| parse::<PublicKey>("input.publicKey", key)).transpose()?;
    if public_key.is_some() && interface.is_none() {
        return Err(bad_input("input.interface", "is needed with input.publicKey"));
    }
    let now = chrono::Utc::now();
    let starts_at = unix_millis(input.starts_at.as_ref().unwrap_or(&now));
    let ends_at = unix_millis(&input.ends_at);
    if ends_at.saturating_sub(starts_at) > MAX_SILENCE_DAYS * 86_400_000 {
        return Err(bad_input("input.endsAt", format!("a silence lasts at most {MAX_SILENCE_DAYS} days")));
    }
    let reason = bounded_text("input.reason", input.reason)?;
    let silence_id = input
        .silence_id
        .as_deref()
        .map(|id| argus_core::SilenceId::parse(id).map_err(|failure| bad_input("input.silenceId", failure)))
        .transpose()?;
    // the scope must be one the caller sees: nobody silences what they may not know exists
    let interfaces: Vec<InterfaceName> = hosts(api, caller)
        .await?
        .into_iter()
        .filter(|gateway| gateway.host == host)
        .map(|gateway| gateway.interface)
        .collect();
    let header_interface = match &interface {
        Some(interface) if interfaces.contains(interface) => interface.clone(),
        Some(interface) => {
            return Err(error(
                "NOT_FOUND",
                format!("input.interface: no interface {host}/{interface} in your organisation"),
            ));
        }
        None => match interfaces.first() {
            Some(first) => first.clone(),
            None => return Err(error("NOT_FOUND", format!("input.host: no gateway {host} in your organisation"))),
        },
    };
    if let Some(key) = public_key {
        let records = api.store.peer(&caller.org, &key, caller.clearance).await.map_err(store_error)?;
        if !records.iter().any(|record| record.host == host && record.interface == header_interface) {
            return Err(error(
                "NOT_FOUND",
                format!("input.publicKey: no peer {key} on {host}/{header_interface} in your organisation"),
            ));
        }
    }
    let header = api.publisher.header(&caller.org, host, header_interface);
    Ok(argus_core::SilenceSet {
        silence_id: silence_id.unwrap_or_else(|| argus_core::SilenceId::derive(&header)),
        header,
        whole_host: interface.is_none(),
        public_key,
        starts_at,
        ends_at,
        reason,
        author: caller.subject.clone(),
        clearance: caller.clearance,
    })
}

fn publish_error(failure: PublishError) -> async_graphql::Error {
    tracing::warn!(%failure, "event not published");
    error("UNAVAILABLE", "event log unavailable, retry later")
}

fn gateway_interface(prefix: &str, host: &str, interface: &str) -> async_graphql::Result<(HostId, InterfaceName)> {
    Ok((parse(&format!("{prefix}.host"), host)?, parse(&format!("{prefix}.interface"), interface)?))
}

const MAX_TEXT: usize = 256;
const MAX_TAGS: usize = 32;

fn bounded_text(field: &str, text: String) -> async_graphql::Result<String> {
    if text.chars().count() > MAX_TEXT {
        return Err(bad_input(field, format!("at most {MAX_TEXT} characters")));
    }
    Ok(text)
}

/// The observation a sync input stands for, or a precise error naming the first bad field.
fn validate_sync(
    caller: &Caller, input: &SyncWireguardPeerInput, header: argus_core::EventHeader,
) -> async_graphql::Result<PeerObservation> {
    let public_key = parse::<PublicKey>("input.publicKey", &input.public_key)?;
    let endpoint =
        input.endpoint.as_deref().map(|endpoint| parse::<Endpoint>("input.endpoint", endpoint)).transpose()?;
    let allowed_ips = input
        .allowed_ips
        .iter()
        .enumerate()
        .map(|(index, cidr)| parse::<Cidr>(&format!("input.allowedIps[{index}]"), cidr))
        .collect::<Result<Vec<_>, _>>()?;
    let counter = |field: &str, value: i64| {
        u64::try_from(value).map_err(|_| bad_input(field, format!("must not be negative, got {value}")))
    };
    let rx_bytes = counter("input.transferRx", input.transfer_rx)?;
    let tx_bytes = counter("input.transferTx", input.transfer_tx)?;
    let persistent_keepalive = input
        .persistent_keepalive
        .map(|seconds| {
            u16::try_from(seconds).map_err(|_| bad_input("input.persistentKeepalive", "must be 0 to 65535 seconds"))
        })
        .transpose()?;
    let clearance = input.clearance.map_or(argus_core::Clearance::Unclassified, Into::into);
    if clearance > caller.clearance {
        return Err(bad_input("input.clearance", "cannot be above your own clearance"));
    }
    if input.tags.len() > MAX_TAGS {
        return Err(bad_input("input.tags", format!("at most {MAX_TAGS} tags")));
    }
    let tags = input
        .tags
        .iter()
        .enumerate()
        .map(|(index, tag)| bounded_text(&format!("input.tags[{index}]"), tag.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let latest_handshake = input.latest_handshake.as_ref().map(unix_millis);
    if latest_handshake.is_some_and(|at| at <= 0) {
        return Err(bad_input("input.latestHandshake", "must be after 1970-01-01"));
    }
    Ok(PeerObservation {
        header,
        public_key,
        endpoint,
        allowed_ips,
        latest_handshake,
        rx_bytes,
        tx_bytes,
        persistent_keepalive,
        source: PeerSource::Api,
        clearance,
        display_name: input.display_name.clone().map(|name| bounded_text("input.displayName", name)).transpose()?,
        owner: input.owner.clone().map(|owner| bounded_text("input.owner", owner)).transpose()?,
        tags,
        writer_clearance: Some(caller.clearance),
    })
}
