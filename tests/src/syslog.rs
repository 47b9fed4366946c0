//! A real syslog receiver for sink tests: `rsyslogd` (Debian's rsyslog) in the foreground with its
//! own configuration in a temporary directory, listening on loopback for UDP, TCP and TLS (GnuTLS,
//! with the repository's test certificates), and writing each message's parsed RFC 5424 fields to
//! one file per transport. Killed on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One message as rsyslog parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub pri: String,
    pub version: String,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub msgid: String,
    pub structured_data: String,
    pub msg: String,
}

/// A running rsyslogd.
#[derive(Debug)]
pub struct Rsyslog {
    child: Child,
    directory: tempfile::TempDir,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub tls: SocketAddr,
}

impl Rsyslog {
    pub fn start() -> Self {
        let directory = tempfile::tempdir().expect("tempdir");
        let (udp, tcp, tls) = (crate::free_port(), crate::free_port(), crate::free_port());
        let fixture = |name: &str| crate::repository_file(&format!("services/log/tests/fixtures/{name}"));
        let out = |name: &str| directory.path().join(format!("{name}.log"));
        let config = format!(
            r#"global(workDirectory="{work}"
       defaultNetstreamDriverCAFile="{ca}" defaultNetstreamDriverCertFile="{cert}" defaultNetstreamDriverKeyFile="{key}")
module(load="imudp")
module(load="imtcp" maxSessions="16")
template(name="fields" type="list") {{
  property(name="pri") constant(value="|")
  property(name="protocol-version") constant(value="|")
  property(name="timereported" dateFormat="rfc3339") constant(value="|")
  property(name="hostname") constant(value="|")
  property(name="app-name") constant(value="|")
  property(name="msgid") constant(value="|")
  property(name="structured-data") constant(value="|")
  property(name="msg" droplastlf="on") constant(value="\n")
}}
ruleset(name="udp") {{ action(type="omfile" file="{udp_out}" template="fields") }}
ruleset(name="tcp") {{ action(type="omfile" file="{tcp_out}" template="fields") }}
ruleset(name="tls") {{ action(type="omfile" file="{tls_out}" template="fields") }}
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="tls"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
"#,
            work = directory.path().display(),
            ca = fixture("ca.pem").display(),
            cert = fixture("server.pem").display(),
            key = fixture("server.key").display(),
            udp_out = out("udp").display(),
            tcp_out = out("tcp").display(),
            tls_out = out("tls").display(),
        );
        let config_path = directory.path().join("rsyslog.conf");
        std::fs::write(&config_path, config).expect("rsyslog.conf");
        let log = std::fs::File::create(directory.path().join("rsyslogd.out")).expect("rsyslogd.out");
        let child = Command::new("/usr/sbin/rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&config_path)
            .arg("-i")
            .arg(directory.path().join("rsyslogd.pid"))
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("rsyslogd (Debian's rsyslog, installed by infra/scripts/install-lab-deps.sh)");
        let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let rsyslog = Self { child, directory, udp: at(udp), tcp: at(tcp), tls: at(tls) };
        let started = Instant::now();
        while std::net::TcpStream::connect(rsyslog.tcp).is_err() || std::net::TcpStream::connect(rsyslog.tls).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "rsyslogd did not listen: {}", rsyslog.output());
            std::thread::sleep(Duration::from_millis(50));
        }
        rsyslog
    }

    /// What rsyslogd itself printed (its errors).
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.directory.path().join("rsyslogd.out")).unwrap_or_default()
    }

    fn file(&self, transport: &str) -> PathBuf {
        self.directory.path().join(format!("{transport}.log"))
    }

    /// The messages received over `transport` (`udp`, `tcp`, `tls`) so far, parsed.
    pub fn received(&self, transport: &str) -> Vec<Parsed> {
        let text = std::fs::read_to_string(self.file(transport)).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.splitn(8, '|').collect();
                let [pri, version, timestamp, hostname, app_name, msgid, structured_data, msg] = fields[..] else {
                    return None;
                };
                Some(Parsed {
                    pri: pri.into(),
                    version: version.into(),
                    timestamp: timestamp.into(),
                    hostname: hostname.into(),
                    app_name: app_name.into(),
                    msgid: msgid.into(),
                    structured_data: structured_data.into(),
                    msg: msg.trim_start().into(),
                })
            })
            .collect()
    }

    /// Waits up to 20 s for `count` messages over `transport`.
    pub fn wait_for(&self, transport: &str, count: usize) -> Vec<Parsed> {
        let started = Instant::now();
        loop {
            let received = self.received(transport);
            if received.len() >= count {
                return received;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{} of {count} messages over {transport}; rsyslogd said: {}",
                received.len(),
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
