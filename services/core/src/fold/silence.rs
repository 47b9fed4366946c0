//! Silences (maintenance windows) of one gateway, and which alert transitions they cover.

use serde::{Deserialize, Serialize};

use super::{Effect, Refusal};
use crate::alert::{Alert, SilenceId};
use crate::event::{SilenceSet, UnixMillis};
use crate::ids::{Clearance, InterfaceName};
use crate::key::PublicKey;

/// Most silences a gateway holds at once: a silence is a maintenance window, not a filter.
pub const MAX_SILENCES_PER_HOST: usize = 256;

/// The silences of one gateway that are not over yet.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Silences(Vec<Silence>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Silence {
    id: SilenceId,
    /// `None`: every interface of the host.
    interface: Option<InterfaceName>,
    /// `None`: every peer (and the interface's own alerts).
    public_key: Option<PublicKey>,
    starts_at: UnixMillis,
    ends_at: UnixMillis,
    /// Its author's: it covers no alert above.
    clearance: Clearance,
}

impl Silences {
    /// Sets `event`'s silence, replacing the one of the same id; silences over by the event's time
    /// are dropped, and one whose range is over is only an end.
    pub(crate) fn set(&mut self, event: &SilenceSet) -> Result<(), Refusal> {
        let now = event.header.observed_at;
        self.0.retain(|silence| silence.id != event.silence_id && silence.ends_at > now);
        if event.ends_at <= event.starts_at.max(now) {
            return Ok(());
        }
        if self.0.len() >= MAX_SILENCES_PER_HOST {
            return Err(Refusal::TooManySilences { host: event.header.host.clone(), max: MAX_SILENCES_PER_HOST });
        }
        self.0.push(Silence {
            id: event.silence_id,
            interface: (!event.whole_host).then(|| event.header.interface.clone()),
            public_key: event.public_key,
            starts_at: event.starts_at,
            ends_at: event.ends_at,
            clearance: event.clearance,
        });
        Ok(())
    }

    /// Marks the alert transitions among `effects` that a silence covers at `at`, their time.
    pub(crate) fn mark(&self, effects: &mut [Effect], at: UnixMillis) {
        if self.0.is_empty() {
            return;
        }
        for effect in effects {
            if let Effect::Alert(alert) = effect {
                alert.silenced = self.covers(alert, at);
            }
        }
    }

    fn covers(&self, alert: &Alert, at: UnixMillis) -> bool {
        self.0.iter().any(|silence| {
            (silence.starts_at..silence.ends_at).contains(&at)
                && silence.interface.as_ref().is_none_or(|interface| *interface == alert.interface)
                && silence.public_key.is_none_or(|key| alert.public_key == Some(key))
                && alert.clearance <= silence.clearance
        })
    }
}
