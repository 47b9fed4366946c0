//! Argus WireGuard core: domain types, events, Avro codecs, and the pure fold with its rules.
//!
//! Nothing here performs I/O: no sockets, no files, no clocks. Time is always an argument.

pub mod alert;
pub mod codec;
pub mod dead_letter;
pub mod event;
pub mod fold;
pub mod ids;
pub mod key;
pub mod net;
pub mod packed;
pub mod registry;
pub mod secret;
pub mod synthetic;
pub mod text;

pub use alert::{Alert, AlertId, AlertKind, AlertState, ProbableCause, Severity, SilenceId};
pub use dead_letter::DeadLetter;
pub use event::{
    AlertAcknowledged, Event, EventHeader, Heartbeat, ManifestEntry, PathProbe, PeerObservation, PeerRemoved,
    PeerSource, RotationManifestSet, SeqCounter, SilenceSet, UnixMillis,
};
pub use fold::{
    Effect, EndpointChange, FoldState, HostRecord, HostStats, HostStatus, PeerRecord, PeerStatus, Refusal, RuleConfig,
    StalenessWindow, StatusCounts,
};
pub use ids::{Clearance, CollectorId, HostId, InterfaceName, OrgId};
pub use key::PublicKey;
pub use net::{Cidr, Endpoint};
pub use registry::{CollectorGrant, CollectorRegistry};
pub use secret::Secret;
