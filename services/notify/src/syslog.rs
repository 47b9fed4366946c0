//! The syslog sink: each transition as one RFC 5424 message (structured data `argus@32473` with the
//! alert id, state, organisation and deduplication key), its text the notification JSON or a CEF
//! event for ArcSight, QRadar and Splunk; over UDP (RFC 5426), TCP (RFC 6587 octet counting) or
//! TLS (RFC 5425).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use argus_core::{Alert, AlertState, ProbableCause, Severity};
use async_trait::async_trait;
use serde::Deserialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;

use crate::delivery::{DeliveryError, Sink};
use crate::notification::{Notification, dedup_key, rfc3339, transition_at};

/// The structured-data id: 32473 is the private enterprise number RFC 5612 reserves for
/// documentation, used until the project has its own.
pub const SD_ID: &str = "argus@32473";

/// `[alerts.sinks.syslog]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// The receiver, `host:port` (an IP address; TLS names the certificate's host in `server_name`).
    pub address: SocketAddr,
    pub transport: SyslogTransport,
    #[serde(default)]
    pub format: SyslogFormat,
    /// The syslog facility, `local0` to `local7`.
    #[serde(default = "default_facility")]
    pub facility: String,
    /// HOSTNAME of every message; default: this machine's host name.
    pub hostname: Option<String>,
    /// With TLS: the name the receiver's certificate must carry (default: the address).
    pub server_name: Option<String>,
    /// With TLS: PEM roots the receiver's certificate must chain to; unset: the system's.
    pub ca_file: Option<PathBuf>,
    /// Each connection attempt and write's limit.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_facility() -> String {
    "local0".into()
}

const fn default_timeout_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    /// One datagram per message: nothing says it arrived.
    Udp,
    /// Octet-counted frames on one connection, kept open and opened again after a failure.
    Tcp,
    /// The same inside TLS.
    Tls,
}

/// What a message's text holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    /// The notification JSON (`schemas/json/alert-notification.v1.schema.json`).
    #[default]
    Json,
    /// ArcSight Common Event Format, version 0.
    Cef,
}

impl SyslogConfig {
    fn facility_code(&self) -> Option<u8> {
        let number: u8 = self.facility.strip_prefix("local")?.parse().ok()?;
        (number <= 7).then_some(16 + number)
    }

    /// The field at fault and why.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.facility_code().is_none() {
            return Err(("syslog.facility", format!("{:?} is not local0 to local7", self.facility)));
        }
        if let Some(hostname) = &self.hostname
            && !header_field(hostname, 255)
        {
            return Err(("syslog.hostname", "1-255 printable ASCII characters without spaces".into()));
        }
        if self.transport != SyslogTransport::Tls && (self.ca_file.is_some() || self.server_name.is_some()) {
            return Err(("syslog.transport", "ca_file and server_name apply to tls only".into()));
        }
        if self.timeout_ms == 0 {
            return Err(("syslog.timeout_ms", "must be above 0".into()));
        }
        Ok(())
    }
}

/// RFC 5424 header fields: printable US-ASCII without spaces, at most `max` long.
fn header_field(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len()) && text.bytes().all(|byte| (33..=126).contains(&byte))
}

/// The syslog severity of a transition: its alert's, and `notice` for a resolution.
const fn syslog_severity(alert: &Alert) -> u8 {
    match (alert.state, alert.severity) {
        (AlertState::Resolved, _) => 5,
        (AlertState::Raised, Severity::Critical) => 2,
        (AlertState::Raised, Severity::Warning) => 4,
        (AlertState::Raised, Severity::Info) => 6,
    }
}

/// An SD-PARAM value: `"`, `\` and `]` escaped (RFC 5424, 6.3.3).
fn sd_value(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '"' | '\\' | ']') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// One RFC 5424 message (without transport framing) for `alert`.
pub fn rfc5424_message(alert: &Alert, facility: u8, hostname: &str, format: SyslogFormat) -> Vec<u8> {
    let text = match format {
        SyslogFormat::Json => serde_json::to_string(&Notification::of(alert)).unwrap_or_default(),
        SyslogFormat::Cef => cef_event(alert),
    };
    format!(
        "<{pri}>1 {timestamp} {hostname} argus {procid} {msgid} [{SD_ID} alert_id=\"{id}\" state=\"{state}\" org=\"{org}\" dedup_key=\"{key}\"] {text}",
        pri = u16::from(facility) * 8 + u16::from(syslog_severity(alert)),
        timestamp = rfc3339(transition_at(alert)),
        procid = std::process::id(),
        msgid = alert.kind.name(),
        id = alert.alert_id,
        state = alert.state.name(),
        org = sd_value(alert.org_id.as_str()),
        key = sd_value(&dedup_key(alert)),
    )
    .into_bytes()
}

/// A CEF header field: `\` and `|` escaped, line breaks as spaces.
fn cef_header(text: &str) -> String {
    text.replace('\\', "\\\\").replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// A CEF extension value: `\` and `=` escaped, line breaks as `\n` / `\r`.
fn cef_value(text: &str) -> String {
    text.replace('\\', "\\\\").replace('=', "\\=").replace('\n', "\\n").replace('\r', "\\r")
}

/// The CEF:0 event of a transition: signature id the alert kind, severity 3 / 6 / 9, and the
/// alert's fields as extension keys (custom strings with their labels).
pub fn cef_event(alert: &Alert) -> String {
    let severity = match alert.severity {
        Severity::Info => 3,
        Severity::Warning => 6,
        Severity::Critical => 9,
    };
    let mut extension: Vec<(&str, String)> = vec![
        ("rt", transition_at(alert).to_string()),
        ("dvchost", alert.host.to_string()),
        ("act", alert.state.name().to_owned()),
        ("msg", alert.summary.clone()),
        ("cs1Label", "org".into()),
        ("cs1", alert.org_id.to_string()),
        ("cs2Label", "interface".into()),
        ("cs2", alert.interface.to_string()),
        ("cs3Label", "alertId".into()),
        ("cs3", alert.alert_id.to_string()),
        ("cs4Label", "clearance".into()),
        ("cs4", alert.clearance.name().to_owned()),
        ("cs5Label", "probableCause".into()),
        ("cs5", alert.probable_cause.map_or("", ProbableCause::name).to_owned()),
        ("cs6Label", "dedupKey".into()),
        ("cs6", dedup_key(alert)),
        ("start", alert.raised_at.to_string()),
    ];
    if let Some(key) = &alert.public_key {
        extension.push(("flexString1Label", "publicKey".into()));
        extension.push(("flexString1", key.to_string()));
    }
    if let Some(incident) = &alert.incident_id {
        extension.push(("flexString2Label", "incidentId".into()));
        extension.push(("flexString2", incident.to_string()));
    }
    if let Some(resolved) = alert.resolved_at {
        extension.push(("end", resolved.to_string()));
    }
    let extension: Vec<String> =
        extension.into_iter().map(|(key, value)| format!("{key}={}", cef_value(&value))).collect();
    format!(
        "CEF:0|Argus|Argus WireGuard|{}|{}|{}|{severity}|{}",
        cef_header(env!("CARGO_PKG_VERSION")),
        cef_header(alert.kind.name()),
        cef_header(alert.kind.words()),
        extension.join(" ")
    )
}

/// An open connection to the receiver.
enum Connection {
    Udp(UdpSocket),
    Stream(Box<dyn AsyncWrite + Send + Unpin>),
}

/// Sends transitions to one syslog receiver.
pub struct SyslogSink {
    config: SyslogConfig,
    facility: u8,
    hostname: String,
    tls: Option<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>)>,
    connection: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink").field("address", &self.config.address).finish_non_exhaustive()
    }
}

impl SyslogSink {
    /// Checks `config` and prepares TLS; connects on the first delivery.
    pub fn new(config: &SyslogConfig, machine_host_name: &str) -> Result<Self, (&'static str, String)> {
        config.validate()?;
        let facility = config.facility_code().ok_or(("syslog.facility", "not local0 to local7".to_owned()))?;
        let hostname = config.hostname.clone().unwrap_or_else(|| {
            Some(machine_host_name).filter(|name| header_field(name, 255)).unwrap_or("-").to_owned()
        });
        let tls = match config.transport {
            SyslogTransport::Tls => Some(tls_connector(config)?),
            SyslogTransport::Udp | SyslogTransport::Tcp => None,
        };
        Ok(Self { config: config.clone(), facility, hostname, tls, connection: Mutex::new(None) })
    }

    async fn connect(&self) -> Result<Connection, String> {
        let address = self.config.address;
        let connected = async {
            match (&self.config.transport, &self.tls) {
                (SyslogTransport::Udp, _) => {
                    let local: SocketAddr = if address.is_ipv4() {
                        ([0, 0, 0, 0], 0).into()
                    } else {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    };
                    let socket = UdpSocket::bind(local).await.map_err(|error| error.to_string())?;
                    socket.connect(address).await.map_err(|error| error.to_string())?;
                    Ok(Connection::Udp(socket))
                }
                (SyslogTransport::Tcp, _) => {
                    let stream = TcpStream::connect(address).await.map_err(|error| error.to_string())?;
                    Ok(Connection::Stream(Box::new(stream)))
                }
                (SyslogTransport::Tls, Some((connector, name))) => {
                    let stream = TcpStream::connect(address).await.map_err(|error| error.to_string())?;
                    let stream = connector
                        .connect(name.clone(), stream)
                        .await
                        .map_err(|error| format!("tls: {}", argus_log::error_chain(&error)))?;
                    Ok(Connection::Stream(Box::new(stream)))
                }
                (SyslogTransport::Tls, None) => Err("tls is not prepared".to_owned()),
            }
        };
        tokio::time::timeout(Duration::from_millis(self.config.timeout_ms), connected)
            .await
            .map_err(|_| "connecting timed out".to_owned())?
    }
}

fn tls_connector(
    config: &SyslogConfig,
) -> Result<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>), (&'static str, String)> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect)
                .map_err(|error| ("syslog.ca_file", format!("{}: {error}", path.display())))?;
            for certificate in certificates {
                roots.add(certificate).map_err(|error| ("syslog.ca_file", format!("{}: {error}", path.display())))?;
            }
        }
        None => {
            for certificate in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(certificate);
            }
        }
    }
    if roots.is_empty() {
        return Err(("syslog.ca_file", "no certificate to trust".into()));
    }
    let name = config.server_name.clone().unwrap_or_else(|| config.address.ip().to_string());
    let server_name = rustls::pki_types::ServerName::try_from(name.clone())
        .map_err(|error| ("syslog.server_name", format!("{name:?}: {error}")))?;
    let client = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    Ok((tokio_rustls::TlsConnector::from(Arc::new(client)), server_name))
}

#[async_trait]
impl Sink for SyslogSink {
    async fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let message = rfc5424_message(alert, self.facility, &self.hostname, self.config.format);
        let mut connection = self.connection.lock().await;
        if connection.is_none() {
            let opened = self
                .connect()
                .await
                .map_err(|reason| DeliveryError::Unavailable(format!("syslog {}: {reason}", self.config.address)))?;
            *connection = Some(opened);
        }
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let sent = match connection.as_mut() {
            Some(Connection::Udp(socket)) => {
                tokio::time::timeout(timeout, socket.send(&message)).await.map(|sent| sent.map(|_| ()))
            }
            Some(Connection::Stream(stream)) => {
                let mut frame = format!("{} ", message.len()).into_bytes();
                frame.extend_from_slice(&message);
                tokio::time::timeout(timeout, async {
                    stream.write_all(&frame).await?;
                    stream.flush().await
                })
                .await
            }
            None => return Err(DeliveryError::Unavailable("no connection".into())),
        };
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                *connection = None;
                Err(DeliveryError::Unavailable(format!("syslog {}: {error}", self.config.address)))
            }
            Err(_) => {
                *connection = None;
                Err(DeliveryError::Unavailable(format!("syslog {}: writing timed out", self.config.address)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_core::{AlertId, AlertKind, Clearance};

    fn alert() -> Alert {
        Alert {
            alert_id: AlertId::from_bytes([5; 16]),
            kind: AlertKind::PeerStale,
            severity: Severity::Critical,
            state: AlertState::Raised,
            org_id: "acme".parse().expect("org"),
            host: "hub-1".parse().expect("host"),
            interface: "wg0".parse().expect("interface"),
            public_key: None,
            clearance: Clearance::Restricted,
            probable_cause: Some(ProbableCause::PathDown),
            evidence: Default::default(),
            summary: "no handshake: FOB|3 a=b \\ done".into(),
            raised_at: 1_780_272_000_000,
            resolved_at: None,
            revised_at: None,
            silenced: false,
            incident_id: None,
        }
    }

    #[test]
    fn a_message_has_the_rfc5424_header_and_structured_data() {
        let message =
            String::from_utf8(rfc5424_message(&alert(), 16, "argus-central", SyslogFormat::Json)).expect("utf-8");
        let prefix = format!(
            "<130>1 2026-06-01T00:00:00.000Z argus-central argus {} PEER_STALE [argus@32473 alert_id=\"05050505-0505-0505-0505-050505050505\" state=\"RAISED\" org=\"acme\" dedup_key=\"05050505-0505-0505-0505-050505050505/RAISED/0\"] {{",
            std::process::id()
        );
        assert!(message.starts_with(&prefix), "{message}");
        assert_eq!(sd_value("a\"b]c\\"), "a\\\"b\\]c\\\\");
    }

    #[test]
    fn cef_escapes_its_separators() {
        let event = cef_event(&alert());
        assert!(event.starts_with("CEF:0|Argus|Argus WireGuard|"), "{event}");
        assert!(event.contains("|PEER_STALE|no handshake|9|"), "{event}");
        assert!(event.contains("msg=no handshake: FOB|3 a\\=b \\\\ done "), "{event}");
        assert!(event.contains("cs5=PATH_DOWN"), "{event}");
    }

    #[test]
    fn a_facility_is_local0_to_local7() {
        let config = |facility: &str| {
            toml::from_str::<SyslogConfig>(&format!(
                "address = \"127.0.0.1:514\"\ntransport = \"udp\"\nfacility = \"{facility}\""
            ))
            .expect("syslog")
        };
        assert!(config("local7").validate().is_ok());
        assert_eq!(config("kern").validate().expect_err("kern").0, "syslog.facility");
        assert_eq!(config("local8").validate().expect_err("local8").0, "syslog.facility");
    }
}
