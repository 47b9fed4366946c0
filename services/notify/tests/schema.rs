//! The committed notification schema (`schemas/json/alert-notification.v1.schema.json`) against
//! the code: its `alert` object has exactly the fields of `Alert.v3.avsc`, and the bodies the code
//! writes (every optional field set, and none) validate against it.

use std::collections::BTreeMap;

use argus_core::{Alert, AlertId, AlertKind, AlertState, Clearance, ProbableCause, PublicKey, Severity};
use argus_notify::Notification;
use serde_json::Value;

fn load(relative: &str) -> Value {
    let path = argus_testkit::repository_file(relative);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file")).expect("schema JSON")
}

/// Checks `value` against the part of JSON Schema the committed file uses (type, const, enum,
/// required, properties, additionalProperties); returns the first mismatch with its path.
fn check(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    if let Some(expected) = schema.get("const") {
        return if expected == value { Ok(()) } else { Err(format!("{path}: {value} is not {expected}")) };
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("{path}: bad type in the schema")),
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        if !fits {
            return Err(format!("{path}: {actual} is not {types:?}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{path}: {value} is not one of {allowed:?}"));
    }
    if let Value::Object(fields) = value {
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = required.as_str().expect("required names");
            if !fields.contains_key(name) {
                return Err(format!("{path}: {name} is missing"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, field) in fields {
            let field_path = format!("{path}.{name}");
            match (properties.and_then(|properties| properties.get(name)), schema.get("additionalProperties")) {
                (Some(property), _) => check(property, field, &field_path)?,
                (None, Some(Value::Bool(false))) => return Err(format!("{field_path} is not in the schema")),
                (None, Some(additional)) => check(additional, field, &field_path)?,
                (None, None) => {}
            }
        }
    }
    Ok(())
}

fn alert(every_option: bool) -> Alert {
    Alert {
        alert_id: AlertId::from_bytes([3; 16]),
        kind: AlertKind::PeerStale,
        severity: Severity::Critical,
        state: if every_option { AlertState::Resolved } else { AlertState::Raised },
        org_id: "acme".parse().expect("org"),
        host: "hub-1".parse().expect("host"),
        interface: "wg0".parse().expect("interface"),
        public_key: every_option.then(|| PublicKey::from_bytes([7; 32])),
        clearance: Clearance::Restricted,
        probable_cause: every_option.then_some(ProbableCause::PathDown),
        evidence: BTreeMap::from([("handshake_age_s".into(), 312.5), ("probes_answered".into(), 0.0)]),
        summary: "no handshake: FOB 3".into(),
        raised_at: 1_780_272_000_000,
        resolved_at: every_option.then_some(1_780_272_600_000),
        revised_at: every_option.then_some(1_780_272_300_000),
        silenced: every_option,
        incident_id: every_option.then(|| AlertId::from_bytes([4; 16])),
    }
}

#[test]
fn the_committed_schema_describes_the_alert_of_the_avro_schema_and_the_bodies_written() {
    let schema = load("schemas/json/alert-notification.v1.schema.json");
    let avro = load("schemas/avro/Alert.v3.avsc");
    let avro_fields: Vec<&str> =
        avro["fields"].as_array().expect("fields").iter().map(|field| field["name"].as_str().expect("name")).collect();
    let alert_schema = &schema["properties"]["alert"];
    let described: Vec<&str> =
        alert_schema["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
    let mut sorted_avro = avro_fields.clone();
    sorted_avro.sort_unstable();
    assert_eq!(described, sorted_avro, "the alert's fields are Alert.v3.avsc's");
    for field in avro["fields"].as_array().expect("fields") {
        let name = field["name"].as_str().expect("name");
        let nullable_in_avro = field["type"].as_array().is_some_and(|union| union.contains(&Value::from("null")));
        let types = &alert_schema["properties"][name]["type"];
        let nullable_here = types.as_array().is_some_and(|types| types.contains(&Value::from("null")));
        assert_eq!(nullable_in_avro, nullable_here, "{name}: null allowed in one schema and not the other");
    }
    for every_option in [true, false] {
        let alert = alert(every_option);
        let body = serde_json::to_value(Notification::of(&alert)).expect("body");
        check(&schema, &body, "body").unwrap_or_else(|mismatch| panic!("{mismatch}\n{body:#}"));
    }
    // the check itself refuses what the schema does not allow
    let alert = alert(true);
    let mut body = serde_json::to_value(Notification::of(&alert)).expect("body");
    body["alert"]["private_key"] = Value::from("never");
    assert!(check(&schema, &body, "body").is_err(), "an unknown field is refused");
    body["alert"].as_object_mut().expect("alert").remove("private_key");
    body["alert"]["kind"] = Value::from("NO_SUCH_KIND");
    assert!(check(&schema, &body, "body").is_err(), "an unknown kind is refused");
}
