//! The hand-written Avro codec against the committed schemas and `apache-avro`, plus hostile input.

use std::collections::BTreeMap;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{GenericSingleObjectReader, Schema, to_value};
use argus_core::codec::{
    DecodeError, HEADER_LEN, SchemaId, decode_alert, decode_dead_letter, decode_event, encode_alert, encode_alert_json,
    encode_dead_letter, encode_event,
};
use argus_core::{
    Alert, AlertAcknowledged, AlertId, AlertKind, AlertState, Clearance, DeadLetter, Event, EventHeader, Heartbeat,
    ManifestEntry, PathProbe, PeerObservation, PeerRemoved, PeerSource, ProbableCause, PublicKey, RotationManifestSet,
    Severity, SilenceId, SilenceSet,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

fn header(seq: u64) -> EventHeader {
    EventHeader {
        org_id: "acme".parse().expect("org"),
        host: "gw-fob-07".parse().expect("host"),
        interface: "wg0".parse().expect("iface"),
        observed_at: 1_780_000_000_123,
        collector_id: "collector-gw-fob-07".parse().expect("collector"),
        seq,
    }
}

fn full_observation() -> PeerObservation {
    PeerObservation {
        header: header(41),
        public_key: PublicKey::from_bytes([0xab; 32]),
        endpoint: Some("[2001:db8::7]:51820".parse().expect("endpoint")),
        allowed_ips: vec!["10.8.0.7/32".parse().expect("cidr"), "fd00:8::/64".parse().expect("cidr")],
        latest_handshake: Some(1_779_999_990_000),
        rx_bytes: 1 << 40,
        tx_bytes: 12_345,
        persistent_keepalive: Some(25),
        source: PeerSource::Userspace,
        clearance: Clearance::Secret,
        display_name: Some("FOB 7 uplink".into()),
        owner: Some("noc@acme".into()),
        tags: vec!["fob".into(), "tier-1".into()],
        writer_clearance: Some(Clearance::Secret),
    }
}

fn sparse_observation() -> PeerObservation {
    PeerObservation {
        endpoint: None,
        allowed_ips: vec![],
        latest_handshake: None,
        persistent_keepalive: None,
        display_name: None,
        owner: None,
        tags: vec![],
        writer_clearance: None,
        source: PeerSource::Kernel,
        clearance: Clearance::Unclassified,
        ..full_observation()
    }
}

fn sample_events() -> Vec<Event> {
    vec![
        Event::PeerObservation(full_observation()),
        Event::PeerObservation(sparse_observation()),
        Event::Heartbeat(Heartbeat {
            header: header(42),
            interface_public_key: Some(PublicKey::from_bytes([1; 32])),
            listen_port: Some(51820),
            peer_count: 12,
            scan_interval_ms: 10_000,
            clearance: Clearance::Restricted,
        }),
        Event::Heartbeat(Heartbeat {
            header: header(43),
            interface_public_key: None,
            listen_port: None,
            peer_count: 0,
            scan_interval_ms: 1,
            clearance: Clearance::TopSecret,
        }),
        Event::PeerRemoved(PeerRemoved { header: header(44), public_key: PublicKey::from_bytes([9; 32]) }),
        Event::PathProbe(PathProbe {
            header: header(48),
            public_key: PublicKey::from_bytes([9; 32]),
            target: "198.18.7.2".parse().expect("address"),
            sent: 3,
            received: 2,
            rtt_ms: Some(0.42),
        }),
        Event::PathProbe(PathProbe {
            header: header(49),
            public_key: PublicKey::from_bytes([9; 32]),
            target: "2001:db8::7".parse().expect("address"),
            sent: 3,
            received: 0,
            rtt_ms: None,
        }),
        Event::RotationManifestSet(RotationManifestSet {
            header: header(45),
            entries: vec![
                ManifestEntry {
                    label: Some("fob-07".into()),
                    expected_key: PublicKey::from_bytes([2; 32]),
                    retired_keys: vec![PublicKey::from_bytes([3; 32]), PublicKey::from_bytes([4; 32])],
                },
                ManifestEntry { label: None, expected_key: PublicKey::from_bytes([5; 32]), retired_keys: vec![] },
            ],
            writer_clearance: Some(Clearance::Confidential),
        }),
        Event::RotationManifestSet(RotationManifestSet { header: header(46), entries: vec![], writer_clearance: None }),
        Event::SilenceSet(SilenceSet {
            silence_id: SilenceId::derive(&header(48)),
            header: header(48),
            whole_host: false,
            public_key: Some(PublicKey::from_bytes([6; 32])),
            starts_at: 1_780_000_000_000,
            ends_at: 1_780_003_600_000,
            reason: "generator swap at FOB 7".into(),
            author: "noc-operator-1".into(),
            clearance: Clearance::Restricted,
        }),
        Event::SilenceSet(SilenceSet {
            silence_id: SilenceId::derive(&header(49)),
            header: header(49),
            whole_host: true,
            public_key: None,
            starts_at: 1_780_000_000_000,
            ends_at: 1_780_000_000_000,
            reason: String::new(),
            author: "noc-operator-1".into(),
            clearance: Clearance::TopSecret,
        }),
        Event::AlertAcknowledged(AlertAcknowledged {
            header: header(47),
            alert_id: AlertId::derive(
                AlertKind::PeerStale,
                &header(0).org_id,
                &header(0).host,
                &header(0).interface,
                None,
                7,
            ),
            acknowledged_by: "noc-operator-1".into(),
        }),
    ]
}

fn sample_alerts() -> Vec<Alert> {
    let base = header(0);
    let raised = Alert {
        alert_id: AlertId::derive(AlertKind::PeerStale, &base.org_id, &base.host, &base.interface, None, 7),
        kind: AlertKind::PeerStale,
        severity: Severity::Critical,
        state: AlertState::Raised,
        org_id: base.org_id.clone(),
        host: base.host.clone(),
        interface: base.interface.clone(),
        public_key: Some(PublicKey::from_bytes([0xab; 32])),
        clearance: Clearance::Confidential,
        probable_cause: Some(ProbableCause::SiteDown),
        evidence: BTreeMap::from([("handshake_age_s".to_owned(), 211.5), ("window_s".to_owned(), 210.0)]),
        summary: "peer stale".into(),
        raised_at: 1_780_000_000_000,
        resolved_at: None,
        revised_at: None,
        silenced: false,
        incident_id: None,
    };
    let revised = Alert {
        probable_cause: Some(ProbableCause::WireguardDown),
        evidence: BTreeMap::from([("probe_received".to_owned(), 3.0)]),
        revised_at: Some(1_780_000_030_000),
        ..raised.clone()
    };
    let cloned = Alert { kind: AlertKind::ClonedKey, probable_cause: Some(ProbableCause::ClonedKey), ..raised.clone() };
    let resolved = Alert {
        kind: AlertKind::KeyRotation,
        severity: Severity::Info,
        state: AlertState::Resolved,
        public_key: None,
        probable_cause: None,
        evidence: BTreeMap::new(),
        resolved_at: Some(1_780_000_100_000),
        ..raised.clone()
    };
    let incident = Alert {
        alert_id: AlertId::derive_incident(&base.org_id, &base.host, &base.interface, "uplink", 7),
        kind: AlertKind::Incident,
        public_key: None,
        probable_cause: Some(ProbableCause::GatewayUplink),
        ..raised.clone()
    };
    let member = Alert {
        probable_cause: Some(ProbableCause::GatewayUplink),
        revised_at: Some(1_780_000_060_000),
        silenced: true,
        incident_id: Some(incident.alert_id),
        ..raised.clone()
    };
    vec![raised, resolved, revised, cloned, incident, member]
}

fn serde_value_of(event: &Event) -> Value {
    fn value<T: Serialize>(record: &T) -> Value {
        to_value(record).expect("serde to avro value")
    }
    match event {
        Event::PeerObservation(event) => value(event),
        Event::Heartbeat(event) => value(event),
        Event::PeerRemoved(event) => value(event),
        Event::PathProbe(event) => value(event),
        Event::RotationManifestSet(event) => value(event),
        Event::AlertAcknowledged(event) => value(event),
        Event::SilenceSet(event) => value(event),
    }
}

fn apache_encode(schema: &Schema, value: Value) -> Vec<u8> {
    GenericDatumWriter::builder(schema).build().expect("writer").write_value_to_vec(value).expect("apache-avro encodes")
}

fn apache_decode(schema: &Schema, mut datum: &[u8]) -> Value {
    GenericDatumReader::builder(schema).build().expect("reader").read_value(&mut datum).expect("apache-avro decodes")
}

fn schema_of(bytes: &[u8]) -> SchemaId {
    SchemaId::ALL.into_iter().find(|id| id.header()[..] == bytes[..HEADER_LEN]).expect("known header")
}

/// The Rust types (through serde, field names and all) and the committed `.avsc` agree, and the
/// hand-written codec writes exactly what `apache-avro` writes for them.
#[test]
fn rust_types_committed_schemas_and_codec_agree() {
    for event in sample_events() {
        let mut fast = Vec::new();
        encode_event(&event, &mut fast);
        let schema = schema_of(&fast).schema();
        let resolved = serde_value_of(&event)
            .resolve(schema)
            .unwrap_or_else(|error| panic!("Rust type and committed schema drift for {event:?}: {error}"));
        let reference = apache_encode(schema, resolved.clone());
        assert_eq!(&fast[HEADER_LEN..], &reference[..], "codec and apache-avro differ for {event:?}");
        let read_back = apache_decode(schema, &fast[HEADER_LEN..]);
        assert_eq!(read_back, resolved);
        assert_eq!(decode_event(&fast).expect("decode"), event);
    }
    for alert in sample_alerts() {
        let mut fast = Vec::new();
        encode_alert(&alert, &mut fast);
        let schema = SchemaId::AlertV3.schema();
        let resolved = to_value(&alert).expect("value").resolve(schema).expect("alert type matches its schema");
        // Avro maps have no order (apache-avro's iterate in hash order), so compare decoded values.
        assert_eq!(apache_decode(schema, &fast[HEADER_LEN..]), resolved);
        assert_eq!(decode_alert(&fast).expect("decode"), alert);
    }
}

#[test]
fn dead_letters_keep_the_original_bytes_and_match_their_schema() {
    let mut original = Vec::new();
    encode_event(&sample_events()[0], &mut original);
    original.truncate(original.len() / 2);
    let letter = DeadLetter {
        source_topic: "wireguard.observations".into(),
        source_partition: 3,
        source_offset: 1_234_567,
        key: b"acme/gw-fob-07".to_vec(),
        reason: decode_event(&original).expect_err("truncated").to_string(),
        value: original,
        rejected_at: 1_780_000_000_000,
    };
    let mut fast = Vec::new();
    encode_dead_letter(&letter, &mut fast);
    let schema = SchemaId::DeadLetterV1.schema();
    let resolved = to_value(&letter).expect("value").resolve(schema).expect("dead letter type matches its schema");
    assert_eq!(&fast[HEADER_LEN..], &apache_encode(schema, resolved)[..]);
    assert_eq!(decode_dead_letter(&fast).expect("decode"), letter);
    assert!(matches!(decode_event(&fast), Err(DecodeError::UnexpectedSchema { found: SchemaId::DeadLetterV1, .. })));
}

/// SIEMs may take alerts as JSON: the same fields as the Avro schema, keys readable.
#[test]
fn alert_json_has_exactly_the_avro_fields() {
    let schema: serde_json::Value = serde_json::from_str(SchemaId::AlertV3.text()).expect("schema json");
    let mut avro_fields: Vec<String> = schema["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|field| field["name"].as_str().expect("name").to_owned())
        .collect();
    avro_fields.sort();
    for alert in sample_alerts() {
        let mut json = Vec::new();
        encode_alert_json(&alert, &mut json);
        let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
        let mut json_fields: Vec<String> = value.as_object().expect("object").keys().cloned().collect();
        json_fields.sort();
        assert_eq!(json_fields, avro_fields);
        assert_eq!(serde_json::from_slice::<Alert>(&json).expect("round trip"), alert);
        if let Some(key) = alert.public_key {
            assert_eq!(value["public_key"], serde_json::Value::String(key.to_string()), "keys in base64");
        }
        assert_eq!(value["kind"], serde_json::Value::String(alert.kind.name().to_owned()));
    }
}

/// Framing matches what `apache-avro`'s single-object reader expects for each committed schema.
#[test]
fn single_object_framing_is_standard() {
    for event in sample_events() {
        let mut fast = Vec::new();
        encode_event(&event, &mut fast);
        let reader =
            GenericSingleObjectReader::builder().schema(schema_of(&fast).schema().clone()).build().expect("reader");
        reader.read_value(&mut &fast[..]).expect("apache-avro single-object reader accepts our framing");
    }
}

#[test]
fn every_committed_schema_file_is_registered_and_fingerprints_are_distinct() {
    // read at run time: a build shared between checkouts must look at this checkout's files
    let package = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let directory = format!("{package}/../../schemas/avro");
    let mut on_disk: Vec<String> = std::fs::read_dir(&directory)
        .expect("schemas/avro")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".avsc"))
        .collect();
    on_disk.sort();
    let mut registered: Vec<String> = SchemaId::ALL.iter().map(|id| id.file_name().to_owned()).collect();
    registered.sort();
    assert_eq!(on_disk, registered);
    for id in SchemaId::ALL {
        let committed = std::fs::read_to_string(format!("{directory}/{}", id.file_name())).expect("read");
        assert_eq!(committed, id.text(), "compiled-in schema text is stale for {}", id.file_name());
    }
    let mut headers: Vec<_> = SchemaId::ALL.iter().map(|id| id.header()).collect();
    headers.dedup();
    assert_eq!(headers.len(), SchemaId::ALL.len());
}

/// Private and preshared keys are never published: no committed schema has a place for one.
#[test]
fn no_schema_can_carry_a_private_or_preshared_key() {
    fn names(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(name)) = map.get("name") {
                    out.push(name.to_lowercase());
                }
                map.values().for_each(|inner| names(inner, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|inner| names(inner, out)),
            _ => {}
        }
    }
    for id in SchemaId::ALL {
        let schema: serde_json::Value = serde_json::from_str(id.text()).expect("schema json");
        let mut found = Vec::new();
        names(&schema, &mut found);
        assert!(found.len() > 3, "{} has named fields", id.file_name());
        for name in found {
            assert!(
                !name.contains("private") && !name.contains("preshared") && !name.contains("psk"),
                "{}: {name}",
                id.file_name()
            );
        }
    }
}

#[test]
fn framing_errors_are_typed() {
    assert_eq!(decode_event(&[0xc3, 0x01, 0]), Err(DecodeError::TooShort { length: 3 }));
    assert_eq!(decode_event(&[0u8; 12]), Err(DecodeError::BadMarker { found: [0, 0] }));
    let mut wrong_fingerprint = vec![0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8];
    wrong_fingerprint.extend_from_slice(b"payload");
    assert_eq!(
        decode_event(&wrong_fingerprint),
        Err(DecodeError::UnknownFingerprint { fingerprint: [1, 2, 3, 4, 5, 6, 7, 8] })
    );
    let mut alert = Vec::new();
    encode_alert(&sample_alerts()[0], &mut alert);
    assert!(matches!(decode_event(&alert), Err(DecodeError::UnexpectedSchema { found: SchemaId::AlertV3, .. })));
    let mut event = Vec::new();
    encode_event(&sample_events()[0], &mut event);
    assert!(matches!(decode_alert(&event), Err(DecodeError::UnexpectedSchema { .. })));
    event.push(0);
    assert_eq!(decode_event(&event), Err(DecodeError::TrailingBytes { count: 1 }));
}

#[test]
fn every_truncation_is_a_typed_error() {
    for event in sample_events() {
        let mut bytes = Vec::new();
        encode_event(&event, &mut bytes);
        for length in 0..bytes.len() {
            let error = decode_event(&bytes[..length]).expect_err("truncated input must not decode");
            assert!(
                matches!(error, DecodeError::TooShort { .. } | DecodeError::Truncated { .. }),
                "length {length} of {event:?}: {error}"
            );
        }
    }
}

#[test]
fn invalid_domain_values_name_the_field() {
    let mut observation = full_observation();
    observation.header.seq = 7;
    let mut bytes = Vec::new();
    encode_event(&Event::PeerObservation(observation), &mut bytes);
    // corrupt the interface name "wg0" into "w/0"
    let position = bytes.windows(3).position(|window| window == b"wg0").expect("interface bytes");
    bytes[position + 1] = b'/';
    let error = decode_event(&bytes).expect_err("invalid interface");
    assert_eq!(
        error.to_string(),
        "field interface: interface name contains '/' at byte 1; allowed: any printable character except '/', ':' and whitespace"
    );
}

#[test]
fn negative_counters_are_rejected() {
    let event = Event::PeerObservation(sparse_observation());
    let mut bytes = Vec::new();
    encode_event(&event, &mut bytes);
    let schema = SchemaId::PeerObservationV2.schema();
    let mut value = serde_value_of(&event).resolve(schema).expect("resolve");
    if let Value::Record(fields) = &mut value {
        for (name, field) in fields.iter_mut() {
            if name == "rx_bytes" {
                *field = Value::Long(-5);
            }
        }
    }
    let mut forged = SchemaId::PeerObservationV2.header().to_vec();
    forged.extend(apache_encode(schema, value));
    let error = decode_event(&forged).expect_err("negative counter");
    assert_eq!(error.to_string(), format!("field rx_bytes: -5 is outside 0..={}", i64::MAX));
}

/// 100,000+ hostile inputs: random bytes, random bytes behind every valid header, and valid
/// messages with random bytes flipped. None may panic; each returns a value or a typed error.
#[test]
fn random_and_mutated_inputs_never_panic() {
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let mut valid = Vec::new();
    for event in sample_events() {
        let mut bytes = Vec::new();
        encode_event(&event, &mut bytes);
        valid.push(bytes);
    }
    for alert in sample_alerts() {
        let mut bytes = Vec::new();
        encode_alert(&alert, &mut bytes);
        valid.push(bytes);
    }
    let mut decoded_ok = 0usize;
    let mut rejected = 0usize;
    for round in 0..120_000usize {
        let input: Vec<u8> = match round % 3 {
            0 => (0..rng.random_range(0..96)).map(|_| rng.random()).collect(),
            1 => {
                let id = SchemaId::ALL[rng.random_range(0..SchemaId::ALL.len())];
                let mut bytes = id.header().to_vec();
                bytes.extend((0..rng.random_range(0..160)).map(|_| rng.random::<u8>()));
                bytes
            }
            _ => {
                let mut bytes = valid[rng.random_range(0..valid.len())].clone();
                for _ in 0..rng.random_range(1..4) {
                    let position = rng.random_range(HEADER_LEN..bytes.len());
                    bytes[position] = rng.random();
                }
                bytes
            }
        };
        match (decode_event(&input), decode_alert(&input)) {
            (Ok(event), _) => {
                // what a damaged record decodes to is a valid event: it writes and reads back as itself
                let mut again = Vec::new();
                encode_event(&event, &mut again);
                assert_eq!(decode_event(&again).expect("re-encoded event decodes"), event);
                decoded_ok += 1;
            }
            (_, Ok(alert)) => {
                let mut again = Vec::new();
                encode_alert(&alert, &mut again);
                assert_eq!(decode_alert(&again).expect("re-encoded alert decodes"), alert);
                decoded_ok += 1;
            }
            (Err(_), Err(_)) => rejected += 1,
        }
        if round % 3 == 0 {
            // bytes without a schema's header are never taken for a record
            assert!(decode_event(&input).is_err() && decode_alert(&input).is_err(), "headerless {input:?}");
        }
    }
    assert!(rejected > 60_000, "most random input must be rejected, got {rejected}");
    assert!(decoded_ok > 0, "some single-byte damage still decodes (a changed count or name)");
}

/// Data written with `PeerObservation.v1` and `RotationManifestSet.v1` (before the writer's
/// clearance was carried) still decodes, with no writer's clearance.
#[test]
fn version_1_events_are_read_without_a_writers_clearance() {
    let mut manifest = match &sample_events()[7] {
        Event::RotationManifestSet(manifest) => manifest.clone(),
        other => panic!("sample 7 is a manifest, not {other:?}"),
    };
    manifest.writer_clearance = None;
    let mut observation = full_observation();
    observation.writer_clearance = None;
    for (event, old) in [
        (Event::PeerObservation(observation), SchemaId::PeerObservationV1),
        (Event::RotationManifestSet(manifest), SchemaId::RotationManifestSetV1),
    ] {
        // serde gives a map (the header is flattened): drop the field v1 does not have
        let Value::Map(mut fields) = serde_value_of(&event) else { panic!("a map of fields") };
        assert!(fields.remove("writer_clearance").is_some());
        let value = Value::Map(fields).resolve(old.schema()).expect("the v1 schema takes the v1 fields");
        let mut bytes = old.header().to_vec();
        bytes.extend(apache_encode(old.schema(), value));
        assert_eq!(decode_event(&bytes).expect("v1 decodes"), event);
        let mut current = Vec::new();
        encode_event(&event, &mut current);
        assert_ne!(schema_of(&current), old, "new data is written with the newest version");
    }
}

/// Alerts written with an older version still decode (v1: never revised, v2: in no incident and
/// never silenced); the
/// reader of an old version refuses a symbol only a later version has.
#[test]
fn older_alert_versions_are_read_without_the_fields_they_lack() {
    let versions = [
        (
            SchemaId::AlertV1,
            &["revised_at", "silenced", "incident_id"][..],
            &[AlertKind::ClonedKey, AlertKind::Incident][..],
        ),
        (SchemaId::AlertV2, &["silenced", "incident_id"][..], &[AlertKind::Incident][..]),
    ];
    for (old, missing, later_kinds) in versions {
        let lacks_nothing = |alert: &Alert| {
            missing.iter().all(|field| match *field {
                "revised_at" => alert.revised_at.is_none(),
                "silenced" => !alert.silenced,
                _ => alert.incident_id.is_none(),
            })
        };
        let mut decoded = 0;
        for alert in sample_alerts().into_iter().filter(lacks_nothing) {
            let Value::Record(mut fields) = to_value(&alert).expect("value") else { panic!("a record") };
            fields.retain(|(name, _)| !missing.contains(&name.as_str()));
            if later_kinds.contains(&alert.kind) {
                continue; // (apache-avro would write v2's enum default in its place)
            }
            let value = Value::Record(fields).resolve(old.schema()).expect("the old version holds it");
            let mut bytes = old.header().to_vec();
            bytes.extend(apache_encode(old.schema(), value));
            assert_eq!(decode_alert(&bytes).expect("an old version decodes"), alert, "{old:?}");
            decoded += 1;
            let mut current = Vec::new();
            encode_alert(&alert, &mut current);
            assert_eq!(schema_of(&current), SchemaId::AlertV3, "new alerts are written with v3");
        }
        assert!(decoded >= 2, "{old:?}: the samples exercise it");
    }
    // the hand-written readers refuse an index past their version's symbols
    for (old, sample, trailing) in [(SchemaId::AlertV1, 3, 3), (SchemaId::AlertV2, 4, 2)] {
        let mut bytes = old.header().to_vec();
        let mut body = Vec::new();
        encode_alert(&sample_alerts()[sample], &mut body);
        bytes.extend_from_slice(&body[HEADER_LEN..body.len() - trailing]);
        assert!(
            matches!(decode_alert(&bytes), Err(DecodeError::Malformed { field: "kind", .. })),
            "{old:?}: {:?}",
            decode_alert(&bytes)
        );
    }
}
