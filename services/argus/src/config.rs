//! Configuration in layers: built-in defaults < TOML file < `ARGUS_*` environment < `--set` flags.
//! Unknown keys are errors; secrets never print; values are checked before anything connects.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use argus_api::auth::AuthConfig;
use argus_api::{ApiConfig, IngestConfig};
use argus_collector::{CollectorConfig, InterfaceOverride};
use argus_core::CollectorRegistry;
use argus_core::fold::{AnomalyConfig, UpstreamGroup};
use argus_core::{Clearance, RuleConfig, StalenessWindow};
use argus_log::KafkaSecurity;
use argus_processor::ProcessorConfig;
use serde::Deserialize;

/// Everything `argus` reads; see `infra/argus.example.toml` for every key with its default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded log (`log/`) and store (`store/`) live.
    pub data_dir: PathBuf,
    /// The HTTP listener: GraphQL at `/graphql`, plus `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Partitions of the embedded log.
    pub partitions: u32,
    /// Where `argus run` keeps its log: `embedded` (in `data_dir`) or `kafka` (`[kafka]`).
    pub log: LogChoice,
    pub auth: AuthConfig,
    pub api: ApiConfig,
    pub collector: CollectorSection,
    pub rules: RulesSection,
    pub processor: ProcessorSection,
    pub kafka: KafkaSection,
    pub scylla: ScyllaSection,
    /// `[ingest]`: where remote `argus collector`s push their events to this `argus run`.
    pub ingest: IngestConfig,
    /// `[alerts]`: where alert transitions are delivered besides the alert topic.
    pub alerts: AlertsSection,
    /// `/metrics` and `/healthz` of `argus collector` and `argus processor`.
    pub metrics_listen: SocketAddr,
}

/// The log `argus run` reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogChoice {
    /// The embedded log in `data_dir/log`: one machine, nothing else to run.
    Embedded,
    /// The brokers of `[kafka]` (with `[kafka.security]`), for sites that run Kafka but no ScyllaDB.
    Kafka,
}

/// `[processor]`: pacing of the fold's writes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorSection {
    /// Most records taken from the log in one poll; each partition's share becomes one projection
    /// batch. A poll takes what is waiting, so batches reach this size only while a backlog is read.
    pub max_batch_records: usize,
    /// How often a partition's fold is snapshotted into its checkpoint: a restart replays at most
    /// this much of the log; each snapshot costs time in proportion to the peers held.
    pub checkpoint_interval_ms: u64,
    /// How often each partition's lag is checked: the lag gauge, and a partition with records
    /// waiting that delivered none in a whole interval is sought to its position again.
    pub lag_check_interval_ms: u64,
    /// `[processor.collectors]`: collector id -> the organisations (`"*"`: any) and hosts it may
    /// publish for; events of other collectors, or outside their grant, are dead-lettered. Empty:
    /// every collector is accepted.
    pub collectors: CollectorRegistry,
}

impl Default for ProcessorSection {
    fn default() -> Self {
        let defaults = ProcessorConfig::default();
        Self {
            max_batch_records: defaults.max_batch_records,
            checkpoint_interval_ms: defaults.checkpoint_interval.as_millis() as u64,
            lag_check_interval_ms: defaults.lag_check_interval.as_millis() as u64,
            collectors: defaults.collectors,
        }
    }
}

/// `[kafka]`: the log of the scale-out services.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSection {
    /// `host:port,...`
    pub brokers: String,
    /// The processors' consumer group.
    pub group: String,
    /// TLS and SASL of every Kafka client (`[kafka.security]`).
    pub security: KafkaSecurity,
}

impl Default for KafkaSection {
    fn default() -> Self {
        Self { brokers: "127.0.0.1:9092".into(), group: "argus-processor".into(), security: KafkaSecurity::default() }
    }
}

/// `[scylla]`: the projections of the scale-out services (processor and API share them).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScyllaSection {
    /// `host:port` of one node; unset: `argus processor` and `argus api` refuse to start.
    pub uri: Option<String>,
    pub keyspace: String,
    pub replication_factor: u32,
}

impl Default for ScyllaSection {
    fn default() -> Self {
        Self { uri: None, keyspace: "argus".into(), replication_factor: 3 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("argus-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            partitions: 4,
            log: LogChoice::Embedded,
            auth: AuthConfig::default(),
            api: ApiConfig::default(),
            collector: CollectorSection::default(),
            rules: RulesSection::default(),
            processor: ProcessorSection::default(),
            kafka: KafkaSection::default(),
            scylla: ScyllaSection::default(),
            ingest: IngestConfig::default(),
            alerts: AlertsSection::default(),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
        }
    }
}

/// `[alerts]`: `[[alerts.sinks]]`, each a durable consumer of the alert topic delivering to one
/// receiver (run by `argus run` and `argus processor`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSection {
    pub sinks: Vec<argus_notify::SinkConfig>,
}

/// `[collector]`: whose interfaces these are and how often to scan them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorSection {
    /// `false`: `argus run` without a collector (the log is fed by `syncWireguardPeer`, or was
    /// recorded elsewhere).
    pub enabled: bool,
    pub org: String,
    /// The gateway's name; defaults to this machine's host name.
    pub host: Option<String>,
    /// Defaults to the host name.
    pub collector_id: Option<String>,
    pub clearance: Clearance,
    pub scan_interval_ms: u64,
    /// Interfaces to watch; empty: every WireGuard interface found.
    pub interfaces: Vec<String>,
    /// Per-interface identity and probing: `[collector.overrides.wg0] host = "fob-07"`.
    pub overrides: BTreeMap<String, OverrideSection>,
    /// `[collector.probes]`: ICMP probes of quiet peers' last endpoints.
    pub probes: ProbesSection,
    /// A peer inventory naming peers by key: a wg-quick configuration with `# Name = ...` (and
    /// `# Owner`, `# Site`, `# Clearance`) comments in its `[Peer]` sections, or TOML `[[peer]]`
    /// tables; read at start, a malformed one refuses to start with its line and the reason.
    pub inventory: Option<PathBuf>,
    /// `[collector.central]`: push to a central `argus run` instead of Kafka.
    pub central: CentralSection,
}

/// `[collector.central]`: the central `argus run` that `argus collector` pushes its events to
/// (its `[ingest]` listener); unset `url`: the collector publishes to Kafka.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CentralSection {
    /// `https://central.example:8443`; `http://` only to a loopback address.
    pub url: Option<String>,
    /// The collector credential an admin issued with `argus token --collector ID`.
    pub credential: Option<argus_core::Secret>,
    /// PEM roots the central's certificate must chain to (a private PKI); unset: the system's.
    pub ca_file: Option<PathBuf>,
    /// Most events in one request.
    pub max_batch_records: usize,
    /// Longest one request may take before it is retried.
    pub timeout_ms: u64,
}

impl Default for CentralSection {
    fn default() -> Self {
        let defaults = argus_log::IngestSettings::new("", argus_core::Secret::new(""), "");
        Self {
            url: None,
            credential: None,
            ca_file: None,
            max_batch_records: defaults.max_batch_records,
            timeout_ms: defaults.timeout.as_millis() as u64,
        }
    }
}

/// `[collector.probes]`: when a peer's handshake ages, its last endpoint is pinged from the
/// gateway, so a site whose host answers (its WireGuard is down) differs from one cut off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbesSection {
    /// `false`: no interface is probed (one interface: `[collector.overrides.NAME] probe = false`).
    pub enabled: bool,
    /// Probe a peer once its handshake is this old; unset: `rules.fresh_below_s`, so the evidence
    /// is there before the peer turns stale.
    pub after_handshake_age_s: Option<u64>,
    /// Probe a peer that stays quiet again this often.
    pub repeat_every_s: u64,
    /// Echo requests per probe (1-10).
    pub echoes: u8,
    /// How long each echo waits for its reply.
    pub echo_timeout_ms: u64,
    /// Most peers of one interface probed per scan.
    pub max_per_scan: usize,
}

impl Default for ProbesSection {
    fn default() -> Self {
        let defaults = argus_collector::ProbeSettings::default();
        Self {
            enabled: defaults.enabled,
            after_handshake_age_s: None,
            repeat_every_s: defaults.repeat_every.as_secs(),
            echoes: defaults.echoes,
            echo_timeout_ms: defaults.echo_timeout.as_millis() as u64,
            max_per_scan: defaults.max_per_scan,
        }
    }
}

impl Default for CollectorSection {
    fn default() -> Self {
        Self {
            enabled: true,
            org: "default".into(),
            host: None,
            collector_id: None,
            clearance: Clearance::default(),
            scan_interval_ms: 10_000,
            interfaces: Vec::new(),
            overrides: BTreeMap::new(),
            probes: ProbesSection::default(),
            inventory: None,
            central: CentralSection::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideSection {
    pub org: Option<String>,
    pub host: Option<String>,
    pub clearance: Option<Clearance>,
    /// `false`: never probe this interface's peers.
    pub probe: Option<bool>,
    /// The network namespace the interface lives in, by name (`/run/netns/NAME`) or path
    /// (`/proc/PID/ns/net` of a gateway container): its probes leave from there.
    pub netns: Option<String>,
}

/// `[rules]`: the fold's thresholds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesSection {
    /// A peer is stale once its handshake is this old.
    pub stale_after_s: u64,
    /// A stale peer is fresh again only below this age (hysteresis).
    pub fresh_below_s: u64,
    /// A gateway is silent after this many scan intervals without a heartbeat.
    pub gateway_silence_scans: u32,
    /// Traffic anomaly: raise above this multiple of the peer's baseline...
    pub anomaly_raise_factor: f64,
    /// ...resolve below this multiple...
    pub anomaly_resolve_factor: f64,
    /// ...never below this throughput (bytes/s, rx + tx)...
    pub anomaly_floor_bytes_per_s: f64,
    /// ...and only once the peer has been watched this long.
    pub anomaly_warmup_s: u64,
    /// Time constant of the baseline's moving average.
    pub anomaly_baseline_time_constant_s: u64,
    /// A key whose endpoint switched networks this many times within `cloned_key_window_s` is held
    /// by two machines (CLONED_KEY); one roam, or a roam and back, is not.
    pub cloned_key_switches: u32,
    pub cloned_key_window_s: u64,
    /// `[rules.upstream_groups]`: name -> the networks (CIDRs) of one upstream, e.g. a carrier's
    /// ranges; sites whose endpoints lie in one group and go quiet together are UPSTREAM_OUTAGE.
    /// Ungrouped endpoints are grouped by /24 (IPv4) and /48 (IPv6).
    pub upstream_groups: BTreeMap<String, Vec<String>>,
    /// An event whose `seq` (its collector's clock, in microseconds) is further ahead of this
    /// processor's clock than this is refused (dead-lettered), so one crafted `seq` cannot blind
    /// the fold to a collector.
    pub max_clock_skew_s: u64,
}

impl Default for RulesSection {
    fn default() -> Self {
        let rules = RuleConfig::default();
        Self {
            stale_after_s: rules.staleness.stale_after.as_secs(),
            fresh_below_s: rules.staleness.fresh_below.as_secs(),
            gateway_silence_scans: rules.gateway_silence_scans,
            anomaly_raise_factor: rules.anomaly.raise_factor,
            anomaly_resolve_factor: rules.anomaly.resolve_factor,
            anomaly_floor_bytes_per_s: rules.anomaly.floor_bytes_per_s,
            anomaly_warmup_s: rules.anomaly.warmup.as_secs(),
            anomaly_baseline_time_constant_s: rules.anomaly.baseline_time_constant.as_secs(),
            cloned_key_switches: rules.cloned_key_switches,
            cloned_key_window_s: rules.cloned_key_window.as_secs(),
            upstream_groups: BTreeMap::new(),
            max_clock_skew_s: rules.max_clock_skew.as_secs(),
        }
    }
}

/// `ARGUS_*` variables that are not configuration keys.
const NOT_KEYS: [&str; 2] = ["ARGUS_CONFIG", "ARGUS_LOG"];

/// Reads the layers in order; a key that no layer may hold is an error naming it. Environment
/// variables name keys as `ARGUS_SECTION__KEY` (`ARGUS_AUTH__HS256_SECRET`, `ARGUS_DATA_DIR`).
pub fn load(file: Option<&Path>, environment: &[(String, String)], sets: &[String]) -> anyhow::Result<Config> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            text.parse::<toml::Table>().with_context(|| format!("parsing {}", path.display()))?
        }
        None => toml::Table::new(),
    };
    let mut from_environment = Vec::new();
    for (name, value) in environment {
        if let Some(path) = name.strip_prefix("ARGUS_").filter(|_| !NOT_KEYS.contains(&name.as_str())) {
            let path = path.to_ascii_lowercase().replace("__", ".");
            assign(&mut table, &path, value).with_context(|| format!("environment variable {name}"))?;
            from_environment.push(name.as_str());
        }
    }
    for set in sets {
        let (path, value) = set.split_once('=').with_context(|| format!("--set {set:?}: expected key.path=value"))?;
        assign(&mut table, path.trim(), value.trim()).with_context(|| format!("--set {set:?}"))?;
    }
    Config::deserialize(table).with_context(|| match from_environment.as_slice() {
        [] => "configuration".to_owned(),
        names => format!("configuration (keys were also read from the environment: {})", names.join(", ")),
    })
}

/// Sets `a.b.c = value` in `table`; the value is read as TOML when it parses as such, else as text.
fn assign(table: &mut toml::Table, path: &str, value: &str) -> anyhow::Result<()> {
    let parsed = format!("value = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut parsed| parsed.remove("value"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let mut keys: Vec<&str> = path.split('.').collect();
    let Some(last) = keys.pop().filter(|key| !key.is_empty()) else { bail!("empty key") };
    let mut current = table;
    for key in keys {
        let entry = current.entry(key.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().with_context(|| format!("{key} is not a section"))?;
    }
    current.insert(last.to_owned(), parsed);
    Ok(())
}

/// This machine's host name, for the default gateway name.
pub fn machine_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Config {
    pub fn rules(&self) -> anyhow::Result<RuleConfig> {
        if self.rules.anomaly_resolve_factor >= self.rules.anomaly_raise_factor
            || self.rules.anomaly_resolve_factor < 1.0
        {
            bail!(
                "rules: anomaly_resolve_factor ({}) must be at least 1 and below anomaly_raise_factor ({})",
                self.rules.anomaly_resolve_factor,
                self.rules.anomaly_raise_factor
            );
        }
        if self.rules.fresh_below_s >= self.rules.stale_after_s {
            bail!(
                "rules: fresh_below_s ({}) must be below stale_after_s ({})",
                self.rules.fresh_below_s,
                self.rules.stale_after_s
            );
        }
        Ok(RuleConfig {
            staleness: StalenessWindow {
                stale_after: Duration::from_secs(self.rules.stale_after_s),
                fresh_below: Duration::from_secs(self.rules.fresh_below_s),
            },
            gateway_silence_scans: self.rules.gateway_silence_scans.max(1),
            anomaly: AnomalyConfig {
                raise_factor: self.rules.anomaly_raise_factor,
                resolve_factor: self.rules.anomaly_resolve_factor,
                floor_bytes_per_s: self.rules.anomaly_floor_bytes_per_s,
                warmup: Duration::from_secs(self.rules.anomaly_warmup_s),
                baseline_time_constant: Duration::from_secs(self.rules.anomaly_baseline_time_constant_s.max(1)),
            },
            max_clock_skew: Duration::from_secs(self.rules.max_clock_skew_s),
            cloned_key_switches: self.rules.cloned_key_switches.max(2),
            cloned_key_window: Duration::from_secs(self.rules.cloned_key_window_s.max(1)),
            upstream_groups: self.upstream_groups()?.into(),
            ..RuleConfig::default()
        })
    }

    fn upstream_groups(&self) -> anyhow::Result<Vec<UpstreamGroup>> {
        let mut groups = Vec::new();
        for (name, networks) in &self.rules.upstream_groups {
            if networks.is_empty() {
                bail!("rules.upstream_groups.{name}: lists no network");
            }
            let networks = networks
                .iter()
                .enumerate()
                .map(|(index, network)| {
                    network.parse().with_context(|| format!("rules.upstream_groups.{name}[{index}]: {network:?}"))
                })
                .collect::<anyhow::Result<_>>()?;
            groups.push(UpstreamGroup { name: name.clone(), networks });
        }
        Ok(groups)
    }

    pub fn processor(&self) -> anyhow::Result<ProcessorConfig> {
        Ok(ProcessorConfig {
            observations_topic: self.api.observations_topic.clone(),
            alerts_topic: self.api.alerts_topic.clone(),
            alert_encoding: self.api.alert_encoding,
            rules: self.rules()?,
            group: self.kafka.group.clone(),
            max_batch_records: self.processor.max_batch_records.max(1),
            checkpoint_interval: Duration::from_millis(self.processor.checkpoint_interval_ms),
            lag_check_interval: Duration::from_millis(self.processor.lag_check_interval_ms.max(100)),
            collectors: self.processor.collectors.clone(),
            ..ProcessorConfig::default()
        })
    }

    /// How `argus collector` reaches its central, when `[collector.central]` names one.
    pub fn central(&self) -> anyhow::Result<Option<argus_log::IngestSettings>> {
        let central = &self.collector.central;
        let Some(url) = &central.url else { return Ok(None) };
        let credential = central
            .credential
            .clone()
            .context("collector.central.credential is not set: issue one with `argus token --collector ID`")?;
        let mut settings = argus_log::IngestSettings::new(url.clone(), credential, self.api.observations_topic.clone());
        settings.ca_file = central.ca_file.clone();
        settings.max_batch_records = central.max_batch_records.max(1);
        settings.timeout = Duration::from_millis(central.timeout_ms.max(100));
        Ok(Some(settings))
    }

    /// The processor's collector registry in `argus run`: the configured one, plus this process's
    /// own collector and API when it lists anyone (they write to the log directly, not through
    /// ingest, and need no entry of their own).
    pub fn processor_registry(&self, collector: Option<&CollectorConfig>) -> CollectorRegistry {
        let mut registry = self.processor.collectors.clone();
        if registry.0.is_empty() {
            return registry;
        }
        let grant = |orgs: Vec<String>| argus_core::CollectorGrant { orgs, ..argus_core::CollectorGrant::default() };
        registry.0.entry(self.api.instance_id.clone()).or_insert_with(|| grant(vec!["*".into()]));
        if let Some(collector) = collector {
            let mut orgs: Vec<String> = std::iter::once(collector.org.to_string())
                .chain(
                    collector
                        .overrides
                        .values()
                        .filter_map(|overrides| overrides.org.as_ref().map(ToString::to_string)),
                )
                .collect();
            orgs.sort();
            orgs.dedup();
            registry.0.entry(collector.collector_id.to_string()).or_insert_with(|| grant(orgs));
        }
        registry
    }

    pub fn collector(&self) -> anyhow::Result<CollectorConfig> {
        let section = &self.collector;
        let host = section.host.clone().unwrap_or_else(machine_host_name);
        let collector_id = section.collector_id.clone().unwrap_or_else(|| host.clone());
        let mut config = CollectorConfig::new(
            section.org.parse().context("collector.org")?,
            host.parse().context("collector.host")?,
            collector_id.parse().context("collector.collector_id")?,
        );
        config.clearance = section.clearance;
        config.scan_interval = Duration::from_millis(section.scan_interval_ms.max(100));
        config.observations_topic = self.api.observations_topic.clone();
        config.interfaces = section
            .interfaces
            .iter()
            .map(|name| name.parse().with_context(|| format!("collector.interfaces: {name:?}")))
            .collect::<anyhow::Result<_>>()?;
        for (name, overrides) in &section.overrides {
            let interface = name.parse().with_context(|| format!("collector.overrides: {name:?}"))?;
            let org = overrides.org.as_deref().map(str::parse).transpose().context("collector.overrides org")?;
            let host = overrides.host.as_deref().map(str::parse).transpose().context("collector.overrides host")?;
            let netns = overrides.netns.as_deref().map(argus_collector::probe::namespace_path);
            config.overrides.insert(
                interface,
                InterfaceOverride { org, host, clearance: overrides.clearance, probe: overrides.probe, netns },
            );
        }
        if let Some(path) = &section.inventory {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("collector.inventory: reading {}", path.display()))?;
            let inventory = argus_collector::Inventory::parse(&text)
                .map_err(|error| anyhow::anyhow!("collector.inventory: {}: {error}", path.display()))?;
            config.inventory = std::sync::Arc::new(inventory);
        }
        let probes = &section.probes;
        if !(1..=10).contains(&probes.echoes) {
            bail!("collector.probes.echoes ({}) must be 1 to 10", probes.echoes);
        }
        config.probes = argus_collector::ProbeSettings {
            enabled: probes.enabled,
            after_handshake_age: Duration::from_secs(probes.after_handshake_age_s.unwrap_or(self.rules.fresh_below_s)),
            repeat_every: Duration::from_secs(probes.repeat_every_s.max(1)),
            echoes: probes.echoes,
            echo_timeout: Duration::from_millis(probes.echo_timeout_ms.clamp(10, 10_000)),
            max_per_scan: probes.max_per_scan,
        };
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_holds_every_default() {
        // read at run time (cargo and nextest set it): a shared build must not point into another checkout
        let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
        let example = Path::new(&manifest).join("../../infra/argus.example.toml");
        let from_file = load(Some(&example), &[], &[]).expect("the example parses, with no unknown key");
        assert_eq!(format!("{from_file:?}"), format!("{:?}", Config::default()));
        // and it names every key, set or commented out (`# key = ...` under its section)
        let text = std::fs::read_to_string(&example).expect("example");
        let named = keys::named_in(&text);
        let missing: Vec<String> = keys::of::<Config>().into_iter().filter(|key| !named.contains(key)).collect();
        assert!(missing.is_empty(), "infra/argus.example.toml does not name {missing:?}");
    }

    #[test]
    fn every_key_of_the_configuration_is_found() {
        let keys = keys::of::<Config>();
        for key in ["data_dir", "api.max_complexity", "kafka.security.sasl_username", "rules.max_clock_skew_s"] {
            assert!(keys.contains(key), "{key} in {keys:?}");
        }
        let named = keys::named_in("a = 1\n[kafka.security]\n# sasl_username = \"argus\"\nprotocol = \"ssl\"\n");
        let expected = ["a", "kafka", "kafka.security", "kafka.security.protocol", "kafka.security.sasl_username"];
        assert_eq!(named, expected.map(String::from).into());
    }

    /// The keys a configuration type reads (its struct fields, as dotted paths, found through its
    /// `Deserialize`), and the keys a TOML text names.
    mod keys {
        use std::collections::BTreeSet;

        use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};

        /// Every key path of `T`: each struct's fields are asked of a deserializer that presents
        /// one path at a time, so a field that is itself a struct is explored in turn.
        pub fn of<T: DeserializeOwned>() -> BTreeSet<String> {
            let mut found = BTreeSet::new();
            let mut pending: Vec<Vec<&'static str>> = vec![Vec::new()];
            while let Some(path) = pending.pop() {
                let mut fields = None;
                let _ = T::deserialize(Explorer { path: &path, fields: &mut fields });
                for field in fields.unwrap_or_default() {
                    let mut deeper = path.clone();
                    deeper.push(field);
                    found.insert(deeper.join("."));
                    pending.push(deeper);
                }
            }
            // a path is a key when it is a leaf: drop the sections (paths that have keys below)
            let sections: BTreeSet<String> =
                found.iter().filter_map(|key| key.rsplit_once('.').map(|(section, _)| section.to_owned())).collect();
            found.retain(|key| !sections.contains(key));
            found
        }

        /// Key paths a TOML text names: `key = ` lines, commented out or not, under their `[section]`.
        pub fn named_in(text: &str) -> BTreeSet<String> {
            let mut section = String::new();
            let mut named = BTreeSet::new();
            for line in text.lines() {
                let commented = line.trim_start().starts_with('#');
                let line = line.trim().trim_start_matches('#').trim();
                if let Some(header) = line.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
                    // a section (a table of free keys, such as `[collector.overrides.<name>]`) and
                    // every table above it are named; a commented one leaves the section as it was
                    let header = header.trim_matches(|c| c == '[' || c == ']');
                    let mut prefix = String::new();
                    for part in header.split('.') {
                        prefix = if prefix.is_empty() { part.to_owned() } else { format!("{prefix}.{part}") };
                        named.insert(prefix.clone());
                    }
                    if !commented {
                        section = header.to_owned();
                    }
                    continue;
                }
                let Some((key, _)) = line.split_once('=') else { continue };
                let key = key.trim();
                if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    named.insert(if section.is_empty() { key.to_owned() } else { format!("{section}.{key}") });
                }
            }
            named
        }

        /// Deserializes as a map holding only `path` (its first key, whose value is the rest of
        /// the path); at the path's end, records the fields the struct there asks for.
        struct Explorer<'a> {
            path: &'a [&'static str],
            fields: &'a mut Option<Vec<&'static str>>,
        }

        #[derive(Debug)]
        struct Stop;

        impl std::fmt::Display for Stop {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("explored")
            }
        }

        impl std::error::Error for Stop {}

        impl de::Error for Stop {
            fn custom<T: std::fmt::Display>(_: T) -> Self {
                Stop
            }
        }

        impl<'de> Deserializer<'de> for Explorer<'_> {
            type Error = Stop;

            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
                Err(Stop)
            }

            fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
                visitor.visit_some(self)
            }

            fn deserialize_struct<V: Visitor<'de>>(
                self, _: &'static str, fields: &'static [&'static str], visitor: V,
            ) -> Result<V::Value, Stop> {
                match self.path.split_first() {
                    None => {
                        *self.fields = Some(fields.to_vec());
                        Err(Stop)
                    }
                    Some((first, rest)) => visitor.visit_map(OneKey { key: Some(first), rest, fields: self.fields }),
                }
            }

            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
                unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
            }
        }

        struct OneKey<'a> {
            key: Option<&'static str>,
            rest: &'a [&'static str],
            fields: &'a mut Option<Vec<&'static str>>,
        }

        impl<'de> MapAccess<'de> for OneKey<'_> {
            type Error = Stop;

            fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Stop> {
                self.key.take().map(|key| seed.deserialize(de::value::BorrowedStrDeserializer::new(key))).transpose()
            }

            fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
                seed.deserialize(Explorer { path: self.rest, fields: self.fields })
            }
        }
    }

    #[test]
    fn layers_apply_in_order_and_unknown_keys_are_refused() {
        let directory = tempfile::tempdir().expect("tempdir");
        let file = directory.path().join("argus.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[collector]\norg = \"file-org\"\nhost = \"gw-01\"\nscan_interval_ms = 5000\n",
        )
        .expect("write");
        let environment = vec![
            ("ARGUS_COLLECTOR__ORG".to_owned(), "env-org".to_owned()),
            ("ARGUS_AUTH__HS256_SECRET".to_owned(), "0123456789abcdef0123456789abcdef".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let config = load(Some(&file), &environment, &["collector.scan_interval_ms=2000".into()]).expect("config");
        assert_eq!(config.listen.port(), 9000, "file over default");
        assert_eq!(config.collector.org, "env-org", "environment over file");
        assert_eq!(config.collector.scan_interval_ms, 2000, "flag over file");
        assert!(config.auth.hs256_secret.is_some());
        assert!(!format!("{config:?}").contains("0123456789abcdef"), "secrets never print");
        assert_eq!(config.collector().expect("collector").host.as_str(), "gw-01");

        let error = load(None, &[], &["collector.colour=blue".into()]).expect_err("unknown key");
        assert!(format!("{error:#}").contains("unknown field `colour`"), "{error:#}");
        // a stray ARGUS_ variable is a key too, and the error says where it came from
        let error = load(None, &[("ARGUS_BIN".to_owned(), "/usr/bin/argus".to_owned())], &[]).expect_err("stray");
        assert!(format!("{error:#}").contains("unknown field `bin`"), "{error:#}");
        assert!(format!("{error:#}").contains("from the environment: ARGUS_BIN"), "{error:#}");
        let error =
            load(None, &[], &["collector.org=acme/corp".into()]).expect("parses").collector().expect_err("bad org");
        assert!(format!("{error:#}").contains("collector.org"), "{error:#}");
        let error = load(None, &[], &["rules.fresh_below_s=300".into()]).expect("parses").rules().expect_err("window");
        assert!(error.to_string().contains("fresh_below_s"), "{error}");
    }

    #[test]
    fn upstream_groups_and_probe_settings_are_read_and_checked() {
        let groups = ["rules.upstream_groups.carrier-a=[\"203.0.113.0/24\", \"2001:db8::/32\"]".to_owned()];
        let rules = load(None, &[], &groups).expect("parses").rules().expect("valid");
        assert_eq!(rules.upstream_groups.len(), 1);
        assert_eq!(rules.upstream_groups[0].name, "carrier-a");
        assert_eq!(rules.upstream_groups[0].networks[1].to_string(), "2001:db8::/32");
        let bad = ["rules.upstream_groups.carrier-a=[\"203.0.113.0/24\", \"203.0.113.7/24\"]".to_owned()];
        let error = load(None, &[], &bad).expect("parses").rules().expect_err("host bits");
        assert!(format!("{error:#}").contains("rules.upstream_groups.carrier-a[1]"), "{error:#}");
        assert!(format!("{error:#}").contains("host bits"), "{error:#}");
        let error =
            load(None, &[], &["rules.upstream_groups.empty=[]".into()]).expect("parses").rules().expect_err("empty");
        assert!(format!("{error:#}").contains("rules.upstream_groups.empty"), "{error:#}");

        // probes follow the fresh bound unless set, and a netns names /run/netns or a path
        let sets = ["rules.fresh_below_s=120".to_owned(), "collector.overrides.wg0.netns=gw-7".to_owned()];
        let collector = load(None, &[], &sets).expect("parses").collector().expect("valid");
        assert_eq!(collector.probes.after_handshake_age, Duration::from_secs(120));
        let wg0 = "wg0".parse().expect("interface");
        assert_eq!(collector.probing(&wg0), Some(Some(PathBuf::from("/run/netns/gw-7"))));
        let off = ["collector.overrides.wg0.probe=false".to_owned()];
        assert_eq!(load(None, &[], &off).expect("parses").collector().expect("valid").probing(&wg0), None);
        let error =
            load(None, &[], &["collector.probes.echoes=0".into()]).expect("parses").collector().expect_err("echoes");
        assert!(error.to_string().contains("collector.probes.echoes"), "{error}");
    }
}
