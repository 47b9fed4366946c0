//! Avro single-object encoding (`C3 01` + CRC-64-AVRO fingerprint + datum) of events and alerts.
//!
//! The committed `.avsc` files under `schemas/avro/` are the source of truth: `apache-avro` parses
//! them and computes their fingerprints; this module's hand-written datum reader and writer follow
//! them field by field for speed (the generic `apache-avro` path builds a `Value` tree per message),
//! and the schema-drift tests prove both agree byte for byte.

mod binary;

use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::headers::{HeaderBuilder, RabinFingerprintHeader};

use self::binary::{AvroReader, AvroWriter};
use crate::alert::{Alert, AlertId, AlertKind, AlertState, ProbableCause, Severity, SilenceId};
use crate::dead_letter::DeadLetter;
use crate::event::{
    AlertAcknowledged, Event, EventHeader, Heartbeat, ManifestEntry, PathProbe, PeerObservation, PeerRemoved,
    PeerSource, RotationManifestSet, SilenceSet,
};
use crate::ids::{Clearance, NameError};
use crate::key::{KEY_LEN, KeyError, PublicKey};
use crate::net::{CidrError, EndpointError};

/// The two marker bytes that open every single-object encoded message.
pub const MARKER: [u8; 2] = [0xC3, 0x01];
/// Marker plus the 8-byte schema fingerprint.
pub const HEADER_LEN: usize = 10;

/// A committed schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaId {
    /// Read only: data written before the writer's clearance was carried.
    PeerObservationV1,
    HeartbeatV1,
    PeerRemovedV1,
    /// Read only, like [`SchemaId::PeerObservationV1`].
    RotationManifestSetV1,
    AlertV1,
    DeadLetterV1,
    AlertAcknowledgedV1,
    PeerObservationV2,
    RotationManifestSetV2,
    PathProbeV1,
    /// Read only: alerts written before incidents.
    AlertV2,
    AlertV3,
    SilenceSetV1,
}

impl SchemaId {
    pub const ALL: [SchemaId; 13] = [
        SchemaId::PeerObservationV1,
        SchemaId::HeartbeatV1,
        SchemaId::PeerRemovedV1,
        SchemaId::RotationManifestSetV1,
        SchemaId::AlertV1,
        SchemaId::DeadLetterV1,
        SchemaId::AlertAcknowledgedV1,
        SchemaId::PeerObservationV2,
        SchemaId::RotationManifestSetV2,
        SchemaId::PathProbeV1,
        SchemaId::AlertV2,
        SchemaId::AlertV3,
        SchemaId::SilenceSetV1,
    ];

    /// File name under `schemas/avro/`.
    pub const fn file_name(self) -> &'static str {
        match self {
            SchemaId::PeerObservationV1 => "PeerObservation.v1.avsc",
            SchemaId::HeartbeatV1 => "Heartbeat.v1.avsc",
            SchemaId::PeerRemovedV1 => "PeerRemoved.v1.avsc",
            SchemaId::RotationManifestSetV1 => "RotationManifestSet.v1.avsc",
            SchemaId::AlertV1 => "Alert.v1.avsc",
            SchemaId::DeadLetterV1 => "DeadLetter.v1.avsc",
            SchemaId::AlertAcknowledgedV1 => "AlertAcknowledged.v1.avsc",
            SchemaId::PeerObservationV2 => "PeerObservation.v2.avsc",
            SchemaId::RotationManifestSetV2 => "RotationManifestSet.v2.avsc",
            SchemaId::PathProbeV1 => "PathProbe.v1.avsc",
            SchemaId::AlertV2 => "Alert.v2.avsc",
            SchemaId::AlertV3 => "Alert.v3.avsc",
            SchemaId::SilenceSetV1 => "SilenceSet.v1.avsc",
        }
    }

    /// The committed schema text, compiled in.
    pub const fn text(self) -> &'static str {
        match self {
            SchemaId::PeerObservationV1 => include_str!("../../../../schemas/avro/PeerObservation.v1.avsc"),
            SchemaId::HeartbeatV1 => include_str!("../../../../schemas/avro/Heartbeat.v1.avsc"),
            SchemaId::PeerRemovedV1 => include_str!("../../../../schemas/avro/PeerRemoved.v1.avsc"),
            SchemaId::RotationManifestSetV1 => include_str!("../../../../schemas/avro/RotationManifestSet.v1.avsc"),
            SchemaId::AlertV1 => include_str!("../../../../schemas/avro/Alert.v1.avsc"),
            SchemaId::DeadLetterV1 => include_str!("../../../../schemas/avro/DeadLetter.v1.avsc"),
            SchemaId::AlertAcknowledgedV1 => include_str!("../../../../schemas/avro/AlertAcknowledged.v1.avsc"),
            SchemaId::PeerObservationV2 => include_str!("../../../../schemas/avro/PeerObservation.v2.avsc"),
            SchemaId::RotationManifestSetV2 => include_str!("../../../../schemas/avro/RotationManifestSet.v2.avsc"),
            SchemaId::PathProbeV1 => include_str!("../../../../schemas/avro/PathProbe.v1.avsc"),
            SchemaId::AlertV2 => include_str!("../../../../schemas/avro/Alert.v2.avsc"),
            SchemaId::AlertV3 => include_str!("../../../../schemas/avro/Alert.v3.avsc"),
            SchemaId::SilenceSetV1 => include_str!("../../../../schemas/avro/SilenceSet.v1.avsc"),
        }
    }

    /// The parsed schema.
    pub fn schema(self) -> &'static Schema {
        &registry()[self as usize].schema
    }

    /// The single-object header: marker and Rabin fingerprint.
    pub fn header(self) -> [u8; HEADER_LEN] {
        registry()[self as usize].header
    }
}

struct RegisteredSchema {
    schema: Schema,
    header: [u8; HEADER_LEN],
}

fn registry() -> &'static [RegisteredSchema] {
    static REGISTRY: OnceLock<Vec<RegisteredSchema>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        SchemaId::ALL
            .iter()
            .map(|id| {
                let schema = Schema::parse_str(id.text())
                    .unwrap_or_else(|error| panic!("committed schema {} does not parse: {error}", id.file_name()));
                let header = RabinFingerprintHeader::from_schema(&schema).build_header();
                let header = <[u8; HEADER_LEN]>::try_from(header.as_slice()).expect("Rabin header is 10 bytes");
                RegisteredSchema { schema, header }
            })
            .collect()
    })
}

/// Why bytes could not be decoded; each variant is bad input (dead-letter it, never retry).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("message is {length} bytes, shorter than the {HEADER_LEN}-byte single-object header")]
    TooShort { length: usize },
    #[error("not Avro single-object encoding: marker {found:02x?}, expected [c3, 01]")]
    BadMarker { found: [u8; 2] },
    #[error("unknown schema fingerprint {fingerprint:02x?}")]
    UnknownFingerprint { fingerprint: [u8; 8] },
    #[error("a record of schema {} where {expected} was expected", found.file_name())]
    UnexpectedSchema { found: SchemaId, expected: &'static str },
    #[error("field {field}: input ends early")]
    Truncated { field: &'static str },
    #[error("field {field}: {reason}")]
    Malformed { field: &'static str, reason: &'static str },
    #[error("field {field}: {source}")]
    Invalid {
        field: &'static str,
        #[source]
        source: InvalidValue,
    },
    #[error("{count} bytes left over after the record")]
    TrailingBytes { count: usize },
}

/// A well-formed value that breaks a domain rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidValue {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Cidr(#[from] CidrError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("{value} is not an id: {reason}")]
    Id { value: String, reason: String },
    #[error("{value} is outside {min}..={max}")]
    OutOfRange { value: i64, min: i64, max: i64 },
}

fn checked<T, E: Into<InvalidValue>>(field: &'static str, result: Result<T, E>) -> Result<T, DecodeError> {
    result.map_err(|error| DecodeError::Invalid { field, source: error.into() })
}

fn ranged<T: TryFrom<i64>>(field: &'static str, value: i64, min: i64, max: i64) -> Result<T, DecodeError> {
    if value < min || value > max {
        return Err(DecodeError::Invalid { field, source: InvalidValue::OutOfRange { value, min, max } });
    }
    T::try_from(value).map_err(|_| DecodeError::Invalid { field, source: InvalidValue::OutOfRange { value, min, max } })
}

/// A record with a committed schema and a hand-written datum codec that follows it.
trait AvroRecord: Sized {
    const SCHEMA: SchemaId;
    fn write(&self, writer: &mut AvroWriter<'_>);
    fn read(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError>;
}

fn encode_record<T: AvroRecord>(record: &T, out: &mut Vec<u8>) {
    out.extend_from_slice(&T::SCHEMA.header());
    record.write(&mut AvroWriter::new(out));
}

/// Appends one event, single-object encoded, to `out`.
pub fn encode_event(event: &Event, out: &mut Vec<u8>) {
    match event {
        Event::PeerObservation(event) => encode_record(event, out),
        Event::Heartbeat(event) => encode_record(event, out),
        Event::PeerRemoved(event) => encode_record(event, out),
        Event::PathProbe(event) => encode_record(event, out),
        Event::RotationManifestSet(event) => encode_record(event, out),
        Event::AlertAcknowledged(event) => encode_record(event, out),
        Event::SilenceSet(event) => encode_record(event, out),
    }
}

/// Appends one alert, single-object encoded, to `out`.
pub fn encode_alert(alert: &Alert, out: &mut Vec<u8>) {
    encode_record(alert, out);
}

fn split_header(bytes: &[u8]) -> Result<(SchemaId, &[u8]), DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::TooShort { length: bytes.len() });
    }
    let (header, body) = bytes.split_at(HEADER_LEN);
    if header[..2] != MARKER {
        return Err(DecodeError::BadMarker { found: [header[0], header[1]] });
    }
    let schema = SchemaId::ALL
        .into_iter()
        .find(|id| id.header() == header)
        .ok_or_else(|| DecodeError::UnknownFingerprint { fingerprint: header[2..].try_into().unwrap_or_default() })?;
    Ok((schema, body))
}

fn read_whole<T: AvroRecord>(body: &[u8]) -> Result<T, DecodeError> {
    read_whole_with(body, T::read)
}

fn read_whole_with<T>(
    body: &[u8], read: impl FnOnce(&mut AvroReader<'_>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut reader = AvroReader::new(body);
    let record = read(&mut reader)?;
    match reader.remaining() {
        0 => Ok(record),
        count => Err(DecodeError::TrailingBytes { count }),
    }
}

/// Decodes one single-object encoded event, validating every field.
pub fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    let (schema, body) = split_header(bytes)?;
    match schema {
        SchemaId::PeerObservationV2 => read_whole(body).map(Event::PeerObservation),
        SchemaId::PeerObservationV1 => read_whole_with(body, PeerObservation::read_v1).map(Event::PeerObservation),
        SchemaId::HeartbeatV1 => read_whole(body).map(Event::Heartbeat),
        SchemaId::PeerRemovedV1 => read_whole(body).map(Event::PeerRemoved),
        SchemaId::PathProbeV1 => read_whole(body).map(Event::PathProbe),
        SchemaId::RotationManifestSetV2 => read_whole(body).map(Event::RotationManifestSet),
        SchemaId::RotationManifestSetV1 => {
            read_whole_with(body, RotationManifestSet::read_v1).map(Event::RotationManifestSet)
        }
        SchemaId::AlertAcknowledgedV1 => read_whole(body).map(Event::AlertAcknowledged),
        SchemaId::SilenceSetV1 => read_whole(body).map(Event::SilenceSet),
        SchemaId::AlertV1 | SchemaId::AlertV2 | SchemaId::AlertV3 | SchemaId::DeadLetterV1 => {
            Err(DecodeError::UnexpectedSchema { found: schema, expected: "an event" })
        }
    }
}

/// Appends one alert as JSON with the Avro schema's field names (keys in base64), for SIEMs.
pub fn encode_alert_json(alert: &Alert, out: &mut Vec<u8>) {
    serde_json::to_writer(out, alert).expect("alerts serialise to JSON");
}

/// How alerts are written on the alerts topic: the processor writes with it, the API's live feed
/// reads with it, and both take it from one configuration key (`api.alert_encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertEncoding {
    /// Avro single-object encoding (`schemas/avro/Alert.v3.avsc`).
    #[default]
    Avro,
    /// JSON with the same fields, for SIEMs that read JSON.
    Json,
}

impl AlertEncoding {
    /// Appends `alert` to `out` in this encoding.
    pub fn encode(self, alert: &Alert, out: &mut Vec<u8>) {
        match self {
            Self::Avro => encode_alert(alert, out),
            Self::Json => encode_alert_json(alert, out),
        }
    }

    /// Reads one alert in this encoding; `None` if the bytes are not one.
    pub fn decode(self, bytes: &[u8]) -> Option<Alert> {
        match self {
            Self::Avro => decode_alert(bytes).ok(),
            Self::Json => serde_json::from_slice(bytes).ok(),
        }
    }
}

/// Appends one dead letter, single-object encoded, to `out`.
pub fn encode_dead_letter(letter: &DeadLetter, out: &mut Vec<u8>) {
    encode_record(letter, out);
}

/// Decodes one single-object encoded dead letter.
pub fn decode_dead_letter(bytes: &[u8]) -> Result<DeadLetter, DecodeError> {
    match split_header(bytes)? {
        (SchemaId::DeadLetterV1, body) => read_whole(body),
        (found, _) => Err(DecodeError::UnexpectedSchema { found, expected: "a dead letter" }),
    }
}

/// Decodes one single-object encoded alert.
pub fn decode_alert(bytes: &[u8]) -> Result<Alert, DecodeError> {
    match split_header(bytes)? {
        (SchemaId::AlertV3, body) => read_whole(body),
        (SchemaId::AlertV2, body) => read_whole_with(body, Alert::read_v2),
        (SchemaId::AlertV1, body) => read_whole_with(body, Alert::read_v1),
        (found, _) => Err(DecodeError::UnexpectedSchema { found, expected: "an alert" }),
    }
}

fn write_u64(writer: &mut AvroWriter<'_>, value: u64) {
    writer.long(i64::try_from(value).unwrap_or(i64::MAX));
}

fn read_u64(reader: &mut AvroReader<'_>, field: &'static str) -> Result<u64, DecodeError> {
    let value = reader.long(field)?;
    ranged(field, value, 0, i64::MAX)
}

fn read_key(reader: &mut AvroReader<'_>, field: &'static str) -> Result<PublicKey, DecodeError> {
    reader.fixed::<KEY_LEN>(field).map(PublicKey::from_bytes)
}

fn read_enum<T: Copy>(reader: &mut AvroReader<'_>, field: &'static str, symbols: &[T]) -> Result<T, DecodeError> {
    reader.index(field, symbols.len()).map(|index| symbols[index])
}

fn read_owned_string(reader: &mut AvroReader<'_>, field: &'static str) -> Result<String, DecodeError> {
    reader.string(field).map(str::to_owned)
}

fn read_parsed<T: std::str::FromStr>(reader: &mut AvroReader<'_>, field: &'static str) -> Result<T, DecodeError>
where
    T::Err: Into<InvalidValue>,
{
    let text = reader.string(field)?;
    checked(field, text.parse::<T>())
}

impl EventHeader {
    fn write(&self, writer: &mut AvroWriter<'_>) {
        writer.string(self.org_id.as_str());
        writer.string(self.host.as_str());
        writer.string(self.interface.as_str());
        writer.long(self.observed_at);
        writer.string(self.collector_id.as_str());
        write_u64(writer, self.seq);
    }

    fn read(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            org_id: read_parsed(reader, "org_id")?,
            host: read_parsed(reader, "host")?,
            interface: read_parsed(reader, "interface")?,
            observed_at: reader.long("observed_at")?,
            collector_id: read_parsed(reader, "collector_id")?,
            seq: read_u64(reader, "seq")?,
        })
    }
}

impl AvroRecord for PeerObservation {
    const SCHEMA: SchemaId = SchemaId::PeerObservationV2;

    fn write(&self, writer: &mut AvroWriter<'_>) {
        let Self {
            header,
            public_key,
            endpoint,
            allowed_ips,
            latest_handshake,
            rx_bytes,
            tx_bytes,
            persistent_keepalive,
            source,
            clearance,
            display_name,
            owner,
            tags,
            writer_clearance,
        } = self;
        header.write(writer);
        writer.fixed(public_key.as_bytes());
        writer.optional(endpoint.as_ref(), |writer, endpoint| writer.string(&endpoint.to_string()));
        writer.block(allowed_ips.iter(), |writer, cidr| writer.string(&cidr.to_string()));
        writer.optional(*latest_handshake, AvroWriter::long);
        write_u64(writer, *rx_bytes);
        write_u64(writer, *tx_bytes);
        writer.optional(*persistent_keepalive, |writer, seconds| writer.long(i64::from(seconds)));
        writer.index(*source as usize);
        writer.index(*clearance as usize);
        writer.optional(display_name.as_deref(), AvroWriter::string);
        writer.optional(owner.as_deref(), AvroWriter::string);
        writer.block(tags.iter(), |writer, tag| writer.string(tag));
        writer.optional(*writer_clearance, |writer, clearance| writer.index(clearance as usize));
    }

    fn read(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        let mut observation = Self::read_v1(reader)?;
        observation.writer_clearance = read_writer_clearance(reader)?;
        Ok(observation)
    }
}

fn read_writer_clearance(reader: &mut AvroReader<'_>) -> Result<Option<Clearance>, DecodeError> {
    reader.optional("writer_clearance", |reader| read_enum(reader, "writer_clearance", &Clearance::ALL))
}

impl PeerObservation {
    /// The fields of `PeerObservation.v1.avsc`: no writer's clearance.
    fn read_v1(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            header: EventHeader::read(reader)?,
            public_key: read_key(reader, "public_key")?,
            endpoint: reader.optional("endpoint", |reader| read_parsed(reader, "endpoint"))?,
            allowed_ips: reader.blocks("allowed_ips", |reader| read_parsed(reader, "allowed_ips"))?,
            latest_handshake: reader.optional("latest_handshake", |reader| reader.long("latest_handshake"))?,
            rx_bytes: read_u64(reader, "rx_bytes")?,
            tx_bytes: read_u64(reader, "tx_bytes")?,
            persistent_keepalive: reader.optional("persistent_keepalive", |reader| {
                let seconds = reader.long("persistent_keepalive")?;
                ranged("persistent_keepalive", seconds, 0, i64::from(u16::MAX))
            })?,
            source: read_enum(reader, "source", &PeerSource::ALL)?,
            clearance: read_enum(reader, "clearance", &Clearance::ALL)?,
            display_name: reader.optional("display_name", |reader| read_owned_string(reader, "display_name"))?,
            owner: reader.optional("owner", |reader| read_owned_string(reader, "owner"))?,
            tags: reader.blocks("tags", |reader| read_owned_string(reader, "tags"))?,
            writer_clearance: None,
        })
    }
}

impl AvroRecord for Heartbeat {
    const SCHEMA: SchemaId = SchemaId::HeartbeatV1;

    fn write(&self, writer: &mut AvroWriter<'_>) {
        let Self { header, interface_public_key, listen_port, peer_count, scan_interval_ms, clearance } = self;
        header.write(writer);
        writer.optional(interface_public_key.as_ref(), |writer, key| writer.fixed(key.as_bytes()));
        writer.optional(*listen_port, |writer, port| writer.long(i64::from(port)));
        writer.long(i64::from(*peer_count));
        writer.long(i64::from(*scan_interval_ms));
        writer.index(*clearance as usize);
    }

    fn read(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            header: EventHeader::read(reader)?,
            interface_public_key: reader
                .optional("interface_public_key", |reader| read_key(reader, "interface_public_key"))?,
            listen_port: reader.optional("listen_port", |reader| {
                let port = reader.long("listen_port")?;
                ranged("listen_port", port, 0, i64::from(u16::MAX))
            })?,
            peer_count: {
                let count = reader.int("peer_count")?;
                ranged("peer_count", i64::from(count), 0, i64::from(i32::MAX))?
            },
            scan_interval_ms: {
                let interval = reader.int("scan_interval_ms")?;
                ranged("scan_interval_ms", i64::from(interval), 1, i64::from(i32::MAX))?
            },
            clearance: read_enum(reader, "clearance", &Clearance::ALL)?,
        })
    }
}

impl AvroRecord for PeerRemoved {
    const SCHEMA: SchemaId = SchemaId::PeerRemovedV1;

    fn write(&self, writer: &mut AvroWriter<'_>) {
        let Self { header, public_key } = self;
        header.write(writer);
        writer.fixed(public_key.as_bytes());
    }

    fn read(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { header: EventHeader::read(reader)?, public_key: read_key(reader, "public_key")? })
    }
}

impl AvroRecord for PathProbe {
    const SCHEMA: SchemaId = SchemaId::PathProbeV1;

    fn write(&self, writer: &mut AvroWriter<'_>) {
        let Self { header, public_key, target, sent, received, rtt_ms } = self;
        header.write(writer);
        writer.fixed(public_key.as_bytes());
        writer.string(&target.to_string());
        writer.long(i64::from(*sent));
        writer.long(i64::from(*received));
        writer.optional(*rtt_ms, AvroWriter::double);
    }

    fn read(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        let header = EventHeader::read(reader)?;
        let public_key = read_key(reader, "public_key")?;
        let target = reader.string("target")?;
        let target = target
            .parse()
            .map_err(|_| DecodeError::Malformed { field: "target", reason: "not an IPv4 or IPv6 address" })?;
        let sent: u8 = ranged("sent", i64::from(reader.int("sent")?), 0, i64::from(u8::MAX))?;
        let received = ranged("received", i64::from(reader.int("received")?), 0, i64::from(sent))?;
        let rtt_ms = reader.optional("rtt_ms", |reader| reader.double("rtt_ms"))?;
        if rtt_ms.is_some_and(|rtt: f64| !rtt.is_finite() || rtt < 0.0) {
            return Err(DecodeError::Malformed { field: "rtt_ms", reason: "not a finite, non-negative time" });
        }
        Ok(Self { header, public_key, target, sent, received, rtt_ms })
    }
}

impl AvroRecord for RotationManifestSet {
    const SCHEMA: SchemaId = SchemaId::RotationManifestSetV2;

    fn write(&self, writer: &mut AvroWriter<'_>) {
        let Self { header, entries, writer_clearance } = self;
        header.write(writer);
        writer.block(entries.iter(), |writer, entry| {
            let ManifestEntry { label, expected_key, retired_keys } = entry;
            writer.optional(label.as_deref(), AvroWriter::string);
            writer.fixed(expected_key.as_bytes());
            writer.block(retired_keys.iter(), |writer, key| writer.fixed(key.as_bytes()));
        });
        writer.optional(*writer_clearance, |writer, clearance| writer.index(clearance as usize));
    }

    fn read(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        let mut manifest = Self::read_v1(reader)?;
        manifest.writer_clearance = read_writer_clearance(reader)?;
        Ok(manifest)
    }
}

impl RotationManifestSet {
    /// The fields of `RotationManifestSet.v1.avsc`: no writer's clearance.
    fn read_v1(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            header: EventHeader::read(reader)?,
            entries: reader.blocks("entries", |reader| {
                Ok(ManifestEntry {
                    label: reader.optional("label", |reader| read_owned_string(reader, "label"))?,
                    expected_key: read_key(reader, "expected_key")?,
                    retired_keys: reader.blocks("retired_keys", |reader| read_key(reader, "retired_keys"))?,
                })
            })?,
            writer_clearance: None,
        })
    }
}

fn read_alert_id(reader: &mut AvroReader<'_>) -> Result<AlertId, DecodeError> {
    read_id(reader, "alert_id", AlertId::parse)
}

/// A UUID id written as its text.
fn read_id<T>(
    reader: &mut AvroReader<'_>, field: &'static str, parse: fn(&str) -> Result<T, uuid::Error>,
) -> Result<T, DecodeError> {
    let text = reader.string(field)?;
    parse(text).map_err(|error| DecodeError::Invalid {
        field,
        source: InvalidValue::Id { value: text.to_owned(), reason: error.to_string() },
    })
}

impl AvroRecord for AlertAcknowledged {
    const SCHEMA: SchemaId = SchemaId::AlertAcknowledgedV1;

    fn write(&self, writer: &mut AvroWriter<'_>) {
        let Self { header, alert_id, acknowledged_by } = self;
        header.write(writer);
        writer.string(&alert_id.to_string());
        writer.string(acknowledged_by);
    }

    fn read(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            header: EventHeader::read(reader)?,
            alert_id: read_alert_id(reader)?,
            acknowledged_by: read_owned_string(reader, "acknowledged_by")?,
        })
    }
}

impl AvroRecord for SilenceSet {
    const SCHEMA: SchemaId = SchemaId::SilenceSetV1;

    fn write(&self, writer: &mut AvroWriter<'_>) {
        let Self { header, silence_id, whole_host, public_key, starts_at, ends_at, reason, author, clearance } = self;
        header.write(writer);
        writer.string(&silence_id.to_string());
        writer.boolean(*whole_host);
        writer.optional(public_key.as_ref(), |writer, key| writer.fixed(key.as_bytes()));
        writer.long(*starts_at);
        writer.long(*ends_at);
        writer.string(reason);
        writer.string(author);
        writer.index(*clearance as usize);
    }

    fn read(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        let header = EventHeader::read(reader)?;
        Ok(Self {
            header,
            silence_id: read_id(reader, "silence_id", SilenceId::parse)?,
            whole_host: reader.boolean("whole_host")?,
            public_key: reader.optional("public_key", |reader| read_key(reader, "public_key"))?,
            starts_at: reader.long("starts_at")?,
            ends_at: reader.long("ends_at")?,
            reason: read_owned_string(reader, "reason")?,
            author: read_owned_string(reader, "author")?,
            clearance: read_enum(reader, "clearance", &Clearance::ALL)?,
        })
    }
}

impl AvroRecord for Alert {
    const SCHEMA: SchemaId = SchemaId::AlertV3;

    fn write(&self, writer: &mut AvroWriter<'_>) {
        let Self {
            alert_id,
            kind,
            severity,
            state,
            org_id,
            host,
            interface,
            public_key,
            clearance,
            probable_cause,
            evidence,
            summary,
            raised_at,
            resolved_at,
            revised_at,
            silenced,
            incident_id,
        } = self;
        writer.string(&alert_id.to_string());
        writer.index(*kind as usize);
        writer.index(*severity as usize);
        writer.index(*state as usize);
        writer.string(org_id.as_str());
        writer.string(host.as_str());
        writer.string(interface.as_str());
        writer.optional(public_key.as_ref(), |writer, key| writer.fixed(key.as_bytes()));
        writer.index(*clearance as usize);
        writer.optional(*probable_cause, |writer, cause| writer.index(cause as usize));
        writer.block(evidence.iter(), |writer, (name, value)| {
            writer.string(name);
            writer.double(*value);
        });
        writer.string(summary);
        writer.long(*raised_at);
        writer.optional(*resolved_at, AvroWriter::long);
        writer.optional(*revised_at, AvroWriter::long);
        writer.boolean(*silenced);
        writer.optional(incident_id.as_ref(), |writer, id| writer.string(&id.to_string()));
    }

    fn read(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        let mut alert = Self::read_fields(reader, &AlertKind::ALL, &ProbableCause::ALL)?;
        alert.revised_at = reader.optional("revised_at", |reader| reader.long("revised_at"))?;
        alert.silenced = reader.boolean("silenced")?;
        alert.incident_id = reader.optional("incident_id", |reader| read_id(reader, "incident_id", AlertId::parse))?;
        Ok(alert)
    }
}

impl Alert {
    /// The fields of `Alert.v1.avsc`: never revised, and only the first symbols of v2's enums.
    fn read_v1(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        Self::read_fields(reader, &AlertKind::ALL[..4], &ProbableCause::ALL[..4])
    }

    /// The fields of `Alert.v2.avsc`: no incidents, no silences.
    fn read_v2(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        let mut alert = Self::read_fields(reader, &AlertKind::ALL[..5], &ProbableCause::ALL)?;
        alert.revised_at = reader.optional("revised_at", |reader| reader.long("revised_at"))?;
        Ok(alert)
    }

    /// The fields every version has, with the enum symbols of one version.
    fn read_fields(
        reader: &mut AvroReader<'_>, kinds: &[AlertKind], causes: &[ProbableCause],
    ) -> Result<Self, DecodeError> {
        Ok(Self {
            alert_id: read_alert_id(reader)?,
            kind: read_enum(reader, "kind", kinds)?,
            severity: read_enum(reader, "severity", &Severity::ALL)?,
            state: read_enum(reader, "state", &AlertState::ALL)?,
            org_id: read_parsed(reader, "org_id")?,
            host: read_parsed(reader, "host")?,
            interface: read_parsed(reader, "interface")?,
            public_key: reader.optional("public_key", |reader| read_key(reader, "public_key"))?,
            clearance: read_enum(reader, "clearance", &Clearance::ALL)?,
            probable_cause: reader.optional("probable_cause", |reader| read_enum(reader, "probable_cause", causes))?,
            evidence: reader
                .blocks("evidence", |reader| Ok((read_owned_string(reader, "evidence")?, reader.double("evidence")?)))?
                .into_iter()
                .collect(),
            summary: read_owned_string(reader, "summary")?,
            raised_at: reader.long("raised_at")?,
            resolved_at: reader.optional("resolved_at", |reader| reader.long("resolved_at"))?,
            revised_at: None,
            silenced: false,
            incident_id: None,
        })
    }
}

impl AvroRecord for DeadLetter {
    const SCHEMA: SchemaId = SchemaId::DeadLetterV1;

    fn write(&self, writer: &mut AvroWriter<'_>) {
        let Self { source_topic, source_partition, source_offset, key, value, reason, rejected_at } = self;
        writer.string(source_topic);
        writer.long(i64::from(*source_partition));
        write_u64(writer, *source_offset);
        writer.bytes(key);
        writer.bytes(value);
        writer.string(reason);
        writer.long(*rejected_at);
    }

    fn read(reader: &mut AvroReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            source_topic: read_owned_string(reader, "source_topic")?,
            source_partition: {
                let partition = reader.int("source_partition")?;
                ranged("source_partition", i64::from(partition), 0, i64::from(i32::MAX))?
            },
            source_offset: read_u64(reader, "source_offset")?,
            key: reader.bytes("key")?.to_vec(),
            value: reader.bytes("value")?.to_vec(),
            reason: read_owned_string(reader, "reason")?,
            rejected_at: reader.long("rejected_at")?,
        })
    }
}
