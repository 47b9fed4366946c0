//! Live alerts for NOC screens: one feed per API process reads the alert topic from its end and
//! fans out to GraphQL subscriptions, each filtered by the subscriber's organisation and clearance.

use std::sync::Arc;
use std::time::Duration;

use argus_core::Alert;
use argus_core::codec::AlertEncoding;
use argus_log::{Delivery, EventLog, LogConsumer};
use argus_store::AlertRow;
use async_graphql::{Context, Subscription};
use futures_util::Stream;
use tokio::sync::{broadcast, watch};

use crate::object::Object;
use crate::schema::{api, caller};
use crate::types::{WireguardAlert, WireguardAlertKind};

/// Reads `topic` from its end and broadcasts every alert to `sender` until `shutdown` turns true.
/// Undecodable records are counted and skipped (the processor wrote them; nothing here to repair).
pub async fn run_alert_feed<L: EventLog>(
    log: Arc<L>, topic: String, group: String, encoding: AlertEncoding, sender: broadcast::Sender<Arc<Alert>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    while !*shutdown.borrow() {
        let mut consumer = match log.subscribe(&topic, &group).await {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::warn!(%topic, %error, "alert feed cannot subscribe");
                metrics::counter!("argus_api_alert_feed_errors_total").increment(1);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        loop {
            let delivery = tokio::select! {
                delivery = consumer.poll(1_000, Duration::from_millis(500)) => delivery,
                _ = shutdown.changed() => return,
            };
            match delivery {
                Ok(Delivery::Assigned(partitions)) => {
                    for partition in partitions {
                        if let Err(error) = consumer.seek_to_end(partition).await {
                            tracing::warn!(partition, %error, "alert feed cannot seek to the end");
                        }
                    }
                }
                Ok(Delivery::Revoked(_)) => {}
                Ok(Delivery::Records(records)) => {
                    for record in records {
                        match encoding.decode(&record.value) {
                            Some(alert) => {
                                // no subscriber is not an error
                                let _ = sender.send(Arc::new(alert));
                            }
                            None => metrics::counter!("argus_api_alert_feed_undecodable_total").increment(1),
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "alert feed poll failed, resubscribing");
                    metrics::counter!("argus_api_alert_feed_errors_total").increment(1);
                    break;
                }
            }
        }
    }
}

#[derive(Debug)]
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Alert transitions (RAISED, RESOLVED) of the caller's organisation as the processor publishes
    /// them, optionally of some kinds only; alerts above the caller's clearance never arrive, and
    /// silenced ones only when asked for (`includeSilenced`).
    async fn wireguard_alerts(
        &self, context: &Context<'_>, kinds: Option<Vec<WireguardAlertKind>>, include_silenced: Option<bool>,
    ) -> async_graphql::Result<impl Stream<Item = WireguardAlert> + use<>> {
        let include_silenced = include_silenced.unwrap_or(false);
        let caller = caller(context)?.clone();
        let receiver = api(context).live_alerts.subscribe();
        let kinds: Option<Vec<argus_core::AlertKind>> = kinds.map(|kinds| kinds.into_iter().map(Into::into).collect());
        Ok(futures_util::stream::unfold(receiver, move |mut receiver| {
            let (caller, kinds) = (caller.clone(), kinds.clone());
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(alert) => {
                            let visible = alert.org_id == caller.org
                                && alert.clearance <= caller.clearance
                                && kinds.as_ref().is_none_or(|kinds| kinds.contains(&alert.kind))
                                && (include_silenced || !alert.silenced);
                            if visible {
                                let row = AlertRow {
                                    alert: alert.as_ref().clone(),
                                    acknowledged_by: None,
                                    acknowledged_at: None,
                                };
                                return Some((Object(row), receiver));
                            }
                        }
                        // a slow screen skips what it missed rather than stalling the feed
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "alert subscription lagged");
                            metrics::counter!("argus_api_subscription_lagged_total").increment(missed);
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        }))
    }
}
