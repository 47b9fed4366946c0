//! What one request may cost and hold: the cost of each field, the most costly query, the
//! deadline, the slots of expensive requests per caller and in all, and the subscriptions of a
//! socket. One async-graphql extension applies them to every operation, over HTTP and WebSocket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argus_core::OrgId;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextSubscribe, NextValidation,
};
use async_graphql::{Response, ServerError, ValidationResult};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiConfig;
use crate::auth::Caller;

/// What a field costs: about one point per row the store reads for it, plus one per field
/// selected. Used by the schema's `complexity` attributes; a request's cost is their sum.
pub(crate) mod cost {
    use chrono::{DateTime, Utc};

    /// An absent `first` is costed as the built-in default page size.
    const ABSENT_FIRST: usize = crate::DEFAULT_PAGE_SIZE;
    /// Points per hour of a time range a history walk covers (a gateway scans every few seconds).
    const HOUR_OF_HISTORY: usize = 20;
    /// A row per gateway interface (hosts, statistics).
    pub(crate) const GATEWAY_ROWS: usize = 100;
    /// One key's rows on every gateway that lists it.
    pub(crate) const ONE_KEY: usize = 10;
    /// Every page of an interface's peers.
    pub(crate) const CONFIG_EXPORT: usize = 5_000;
    /// Every manifest and a lookup per key listed.
    pub(crate) const ROTATION_STATUS: usize = 1_000;

    fn rows(first: Option<i32>) -> usize {
        first.map_or(ABSENT_FIRST, |first| usize::try_from(first).unwrap_or(0))
    }

    /// Whole hours from `from` to `to`, at least one.
    fn hours(from: &DateTime<Utc>, to: &DateTime<Utc>) -> usize {
        let millis = to.timestamp_millis().saturating_sub(from.timestamp_millis());
        usize::try_from(millis).unwrap_or(0).div_ceil(3_600_000).max(1)
    }

    /// A filter on text, status or staleness reads the organisation's peers until a page is full.
    const FILTERED_SCAN: usize = 1_000;

    /// A page of peers: a filter on anything but the gateway reads on until the page is full.
    pub(crate) fn peers(
        first: Option<i32>, filter: &Option<crate::types::WireguardPeerFilter>, child_complexity: usize,
    ) -> usize {
        let scans = filter
            .as_ref()
            .is_some_and(|filter| filter.text.is_some() || filter.status.is_some() || filter.stale.is_some());
        page(first, child_complexity).saturating_add(if scans { FILTERED_SCAN } else { 0 })
    }

    /// A page of alerts: a filter on state or kind reads on until the page is full.
    pub(crate) fn alerts(
        first: Option<i32>, filter: &Option<crate::types::WireguardAlertFilter>, child_complexity: usize,
    ) -> usize {
        let scans = filter.as_ref().is_some_and(|filter| filter.state.is_some() || filter.kind.is_some());
        page(first, child_complexity).saturating_add(if scans { FILTERED_SCAN } else { 0 })
    }

    /// A page of `first` rows.
    pub(crate) fn page(first: Option<i32>, child_complexity: usize) -> usize {
        rows(first).saturating_add(child_complexity)
    }

    /// Rows of one peer over a time range, found by walking it.
    pub(crate) fn ranged(from: &DateTime<Utc>, to: &DateTime<Utc>, child_complexity: usize) -> usize {
        hours(from, to).saturating_mul(HOUR_OF_HISTORY).saturating_add(child_complexity)
    }

    /// A page of one peer's rows over a time range.
    pub(crate) fn ranged_page(
        first: Option<i32>, from: &DateTime<Utc>, to: &DateTime<Utc>, child_complexity: usize,
    ) -> usize {
        ranged(from, to, child_complexity).saturating_add(rows(first))
    }

    /// A page of peers, each examined over a time range.
    pub(crate) fn activity(
        first: Option<i32>, from: &DateTime<Utc>, to: &DateTime<Utc>, child_complexity: usize,
    ) -> usize {
        let examined = rows(first).saturating_mul(argus_store::ACTIVE_PEERS_EXAMINED);
        examined.saturating_mul(hours(from, to)).saturating_add(page(first, child_complexity))
    }
}

/// The slots and bounds every request of one API shares.
pub(crate) struct Limits {
    max_cost: usize,
    expensive_cost: usize,
    deadline: std::time::Duration,
    max_expensive_per_caller: usize,
    max_subscriptions_per_socket: usize,
    expensive_slots: Arc<Semaphore>,
    /// Expensive requests in flight per caller (organisation, subject); an entry lives while one does.
    in_flight: Mutex<HashMap<(OrgId, String), usize>>,
}

impl Limits {
    pub(crate) fn new(config: &ApiConfig) -> Arc<Self> {
        Arc::new(Self {
            max_cost: config.max_complexity,
            expensive_cost: config.expensive_cost,
            deadline: config.request_deadline,
            max_expensive_per_caller: config.max_expensive_per_caller,
            max_subscriptions_per_socket: config.max_subscriptions_per_socket,
            expensive_slots: Arc::new(Semaphore::new(config.max_expensive_requests.max(1))),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// The error of a request that ran out of time.
    pub(crate) fn deadline_error(&self) -> ServerError {
        error(
            "DEADLINE_EXCEEDED",
            format!(
                "the request took longer than its {} ms deadline: ask for a smaller page or a shorter time range",
                self.deadline.as_millis()
            ),
        )
    }

    pub(crate) fn deadline(&self) -> std::time::Duration {
        self.deadline
    }

    /// Whether a request of this cost is expensive.
    pub(crate) fn is_expensive(&self, cost: usize) -> bool {
        cost >= self.expensive_cost
    }

    /// Whether a request of this cost may run at all.
    pub(crate) fn allows(&self, cost: usize) -> bool {
        cost <= self.max_cost
    }

    /// The slots an expensive request of `caller` holds while it runs: one of the caller's (or
    /// the error saying they hold them all), then one of the API's (waited for).
    pub(crate) async fn hold(self: &Arc<Self>, caller: &Caller) -> Result<ExpensiveSlots, ServerError> {
        let caller_slot = self.caller_slot(caller)?;
        let shared = Arc::clone(&self.expensive_slots).acquire_owned().await.ok();
        Ok(ExpensiveSlots { _caller: caller_slot, _shared: shared })
    }

    fn caller_slot(self: &Arc<Self>, caller: &Caller) -> Result<CallerSlot, ServerError> {
        let key = (caller.org.clone(), caller.subject.clone());
        let mut in_flight = self.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = in_flight.entry(key.clone()).or_insert(0);
        if *held >= self.max_expensive_per_caller {
            return Err(error(
                "TOO_MANY_REQUESTS",
                format!(
                    "you already have {} expensive requests running: wait for one to finish",
                    self.max_expensive_per_caller
                ),
            ));
        }
        *held += 1;
        Ok(CallerSlot { limits: Arc::clone(self), key })
    }
}

/// The slots of one expensive request, given back when dropped.
pub(crate) struct ExpensiveSlots {
    _caller: CallerSlot,
    _shared: Option<OwnedSemaphorePermit>,
}

/// A caller's slot for one expensive request, given back when dropped.
struct CallerSlot {
    limits: Arc<Limits>,
    key: (OrgId, String),
}

impl Drop for CallerSlot {
    fn drop(&mut self) {
        let mut in_flight = self.limits.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(held) = in_flight.get_mut(&self.key) {
            *held -= 1;
            if *held == 0 {
                in_flight.remove(&self.key);
            }
        }
    }
}

pub(crate) fn error(code: &'static str, message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
    error
}

/// The subscriptions open on one socket (session data of a WebSocket connection).
#[derive(Default)]
pub(crate) struct SocketSubscriptions(Arc<AtomicUsize>);

/// Applies [`Limits`] to each operation: the cost after validation, then the slots and the
/// deadline around execution; the socket's bound around a subscription.
pub(crate) struct LimitsExtension(pub(crate) Arc<Limits>);

impl ExtensionFactory for LimitsExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestLimits { limits: Arc::clone(&self.0), cost: AtomicUsize::new(0) })
    }
}

struct RequestLimits {
    limits: Arc<Limits>,
    /// This request's cost, known after validation.
    cost: AtomicUsize,
}

#[async_trait::async_trait]
impl Extension for RequestLimits {
    async fn validation(
        &self, ctx: &ExtensionContext<'_>, next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if result.complexity > self.limits.max_cost {
            return Err(vec![error(
                "QUERY_TOO_COSTLY",
                format!(
                    "the query costs {}, more than the {} allowed: ask for smaller pages (first), shorter time \
                     ranges or fewer fields",
                    result.complexity, self.limits.max_cost
                ),
            )]);
        }
        self.cost.store(result.complexity, Ordering::Relaxed);
        Ok(result)
    }

    async fn execute(
        &self, ctx: &ExtensionContext<'_>, operation_name: Option<&str>, next: NextExecute<'_>,
    ) -> Response {
        let limits = &self.limits;
        let expensive = limits.is_expensive(self.cost.load(Ordering::Relaxed));
        let run = async {
            let _slots = match (expensive, ctx.data_opt::<Caller>()) {
                (true, Some(caller)) => match limits.hold(caller).await {
                    Ok(slots) => Some(slots),
                    Err(error) => return Response::from_errors(vec![error]),
                },
                // without a caller every resolver refuses: nothing to bound
                _ => None,
            };
            next.run(ctx, operation_name).await
        };
        match tokio::time::timeout(limits.deadline, run).await {
            Ok(response) => response,
            Err(_) => Response::from_errors(vec![limits.deadline_error()]),
        }
    }

    fn subscribe<'s>(
        &self, ctx: &ExtensionContext<'_>, stream: BoxStream<'s, Response>, next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let Some(SocketSubscriptions(open)) = ctx.data_opt::<SocketSubscriptions>() else {
            return next.run(ctx, stream);
        };
        let most = self.limits.max_subscriptions_per_socket;
        if open.fetch_add(1, Ordering::AcqRel) >= most {
            open.fetch_sub(1, Ordering::AcqRel);
            let refused = error(
                "TOO_MANY_REQUESTS",
                format!("this socket already has {most} subscriptions: stop one or open another socket"),
            );
            return futures_util::stream::once(async move { Response::from_errors(vec![refused]) }).boxed();
        }
        let open = OpenSubscription(Arc::clone(open));
        next.run(ctx, stream)
            .map(move |response| {
                let _held = &open;
                response
            })
            .boxed()
    }
}

/// One open subscription of a socket, counted until its stream is dropped.
struct OpenSubscription(Arc<AtomicUsize>);

impl Drop for OpenSubscription {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
