//! `argus`: Argus WireGuard in one binary. `argus run` is the all-in-one mode (collector,
//! processor and GraphQL API in one process on the embedded log and store, and the central that
//! remote collectors push to); `argus collector` publishes one host's interfaces to that central or
//! to Kafka; `argus processor` and `argus api` are the scale-out services on Kafka and ScyllaDB;
//! `argus token` mints a development JWT or a collector credential.

mod config;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use argus_api::auth::{Authenticator, COLLECTOR_AUDIENCE, Claims, CollectorClaims, Role, mint_hs256};
use argus_api::{ApiContext, RecordSink, ingest_routes, metrics_routes, routes, run_alert_feed, serve, serve_ingest};
use argus_collector::{Collector, WireguardHost};
use argus_log::{EmbeddedLog, EventLog, IngestLog, KafkaLog, LogError};
use argus_store::scylla::ScyllaStore;
use argus_store::{EmbeddedStore, ProjectionStore, StoreError};
use clap::{Parser, Subcommand};
use tokio::sync::watch;
use tracing::{info, warn};

/// Many threads allocating many small values (GraphQL responses, events): mimalloc keeps up with
/// them better than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Argus WireGuard: one live picture of every WireGuard peer.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// TOML configuration file (see infra/argus.example.toml); default: $ARGUS_CONFIG.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Override one key, e.g. `--set collector.org=acme` (repeatable; wins over file and environment).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    sets: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Collector, processor and API in one process on the embedded store, with the embedded log
    /// (or Kafka: `log = "kafka"`); the central remote collectors push to (`[ingest]`).
    Run,
    /// This host's WireGuard interfaces to a central `argus run` (`[collector.central]`) or to
    /// Kafka (one per gateway host).
    Collector,
    /// Kafka to ScyllaDB: fold, projections, alerts (scale out in one consumer group).
    Processor,
    /// The GraphQL API over ScyllaDB, writing through Kafka.
    Api,
    /// Rebuild the embedded store of `data_dir` from its embedded log (with `argus run` stopped);
    /// the old store is kept as `store.before-replay`.
    Replay,
    /// Print a development JWT signed with the configured HS256 secret, or with `--collector` a
    /// collector credential for pushing to this central's `[ingest]`.
    Token {
        #[arg(long, required_unless_present = "collector")]
        org: Option<String>,
        /// Issue a collector credential for this collector id (its grant is the collector
        /// registry's entry, `[processor.collectors]`).
        #[arg(long, conflicts_with_all = ["org", "role", "clearance"])]
        collector: Option<String>,
        #[arg(long, default_value = "UNCLASSIFIED")]
        clearance: String,
        /// viewer, operator or admin.
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Lifetime in hours.
        #[arg(long, default_value_t = 12)]
        hours: u64,
        #[arg(long, default_value = "developer")]
        subject: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let environment: Vec<(String, String)> = std::env::vars().collect();
    let file = cli.config.or_else(|| std::env::var_os("ARGUS_CONFIG").map(PathBuf::from));
    let config = config::load(file.as_deref(), &environment, &cli.sets)?;
    let service: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>> = match cli.command {
        Command::Run => Box::pin(run(config)),
        Command::Collector => Box::pin(collector(config)),
        Command::Processor => Box::pin(processor(config)),
        Command::Api => Box::pin(api(config)),
        Command::Replay => Box::pin(replay(config)),
        Command::Token { org, collector, clearance, role, hours, subject } => {
            let secret = config.auth.hs256_secret.as_ref().context("auth.hs256_secret is not set")?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            if let Some(collector) = collector {
                collector.parse::<argus_core::CollectorId>().context("--collector")?;
                let claims = CollectorClaims {
                    sub: collector,
                    aud: COLLECTOR_AUDIENCE.into(),
                    exp: now + hours * 3_600,
                    iat: now,
                };
                println!("{}", mint_hs256(secret, &claims)?);
                return Ok(());
            }
            let org = org.context("--org")?;
            org.parse::<argus_core::OrgId>().context("--org")?;
            clearance.parse::<argus_core::Clearance>().context("--clearance")?;
            let role: Role = role.parse().map_err(anyhow::Error::msg).context("--role")?;
            let claims = Claims { sub: subject, org, clearance, role, exp: now + hours * 3_600, iat: Some(now) };
            println!("{}", mint_hs256(secret, &claims)?);
            return Ok(());
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ARGUS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(service)
}

/// Resolves when `receiver` says stop.
async fn until_stopped(mut receiver: watch::Receiver<bool>) {
    while !*receiver.borrow() {
        if receiver.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn termination() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
}

type Task = tokio::task::JoinHandle<anyhow::Result<()>>;

/// The services of one process, started on a shared stop signal.
struct Services {
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
    /// Ends only on its own with an error (the processor): then everything stops.
    critical: Option<Task>,
    tasks: Vec<Task>,
}

impl Services {
    fn new() -> Self {
        let (stop, stopped) = watch::channel(false);
        Self { stop, stopped, critical: None, tasks: Vec::new() }
    }

    fn processor<L: EventLog + 'static, S: ProjectionStore + 'static>(
        &mut self, log: Arc<L>, store: Arc<S>, config: argus_processor::ProcessorConfig,
    ) {
        let stopped = self.stopped.clone();
        self.critical = Some(tokio::spawn(async move {
            argus_processor::run(&*log, &*store, &config, until_stopped(stopped)).await.context("processor")
        }));
    }

    fn collector<L: EventLog + 'static>(&mut self, log: Arc<L>, config: argus_collector::CollectorConfig) {
        let collector = Collector::new(WireguardHost::default(), log, config);
        let stopped = self.stopped.clone();
        self.tasks.push(tokio::spawn(async move {
            collector.run(until_stopped(stopped), Duration::from_secs(5)).await.context("collector")
        }));
    }

    /// The GraphQL API (and the live alert feed behind its subscription) on `listener`.
    fn api<L: EventLog + 'static>(
        &mut self, log: Arc<L>, store: Arc<dyn ProjectionStore>, config: &config::Config,
        listener: std::net::TcpListener,
    ) -> anyhow::Result<()> {
        let authenticator = Authenticator::new(&config.auth).context("auth")?;
        let context = ApiContext::new(store, log.clone(), config.api.clone()).context("api")?;
        let feed = run_alert_feed(
            log,
            config.api.alerts_topic.clone(),
            format!("argus-live-{}", config.api.instance_id),
            config.api.alert_encoding,
            context.live_alerts.clone(),
            self.stopped.clone(),
        );
        self.tasks.push(tokio::spawn(async move {
            feed.await;
            Ok(())
        }));
        let stopped = self.stopped.clone();
        self.tasks.push(tokio::spawn(async move {
            serve(listener, routes(context, authenticator), until_stopped(stopped)).await.context("api server")
        }));
        Ok(())
    }

    /// One delivery loop per `[[alerts.sinks]]` entry, each reading the alert topic of `log` in
    /// its own consumer group; checked before anything starts.
    fn sinks<L: EventLog + 'static>(&mut self, log: Arc<L>, config: &config::Config) -> anyhow::Result<()> {
        let sinks = &config.alerts.sinks;
        argus_notify::SinkConfig::validate_all(sinks)?;
        for sink_config in sinks {
            let sink = sink_config.receiver(&config::machine_host_name())?;
            let (log, sink_config, stopped) = (Arc::clone(&log), sink_config.clone(), self.stopped.clone());
            let (topic, encoding) = (config.api.alerts_topic.clone(), config.api.alert_encoding);
            self.tasks.push(tokio::spawn(async move {
                argus_notify::run_sink(&*log, &topic, encoding, &sink_config, &*sink, stopped).await;
                Ok(())
            }));
        }
        Ok(())
    }

    /// The ingest endpoint remote collectors push to, appending to `log`.
    fn ingest<L: EventLog + 'static>(&mut self, log: Arc<L>, config: &config::Config) -> anyhow::Result<()> {
        let Some(listen) = config.ingest.listen else { return Ok(()) };
        let tls = config.ingest.tls(&config.processor.collectors).context("ingest")?;
        let listener = std::net::TcpListener::bind(listen).with_context(|| format!("ingest.listen {listen}"))?;
        let authenticator = Authenticator::new(&config.auth).context("auth (collector credentials)")?;
        let sink: Arc<dyn RecordSink> = log;
        let routes = ingest_routes(
            sink,
            config.api.observations_topic.clone(),
            authenticator,
            config.processor.collectors.clone(),
            &config.ingest,
        );
        let stopped = self.stopped.clone();
        info!(%listen, tls = tls.is_some(), "ingest open for remote collectors");
        self.tasks.push(tokio::spawn(async move {
            serve_ingest(listener, tls, routes, until_stopped(stopped)).await.context("ingest server")
        }));
        Ok(())
    }

    /// `/metrics` and `/healthz` alone.
    fn metrics(&mut self, listen: std::net::SocketAddr) -> anyhow::Result<()> {
        let listener = std::net::TcpListener::bind(listen).with_context(|| format!("metrics_listen {listen}"))?;
        let stopped = self.stopped.clone();
        self.tasks.push(tokio::spawn(async move {
            serve(listener, metrics_routes(), until_stopped(stopped)).await.context("metrics server")
        }));
        Ok(())
    }

    /// Runs until Ctrl-C, SIGTERM or the critical service failing; then stops everything.
    async fn wait(mut self) -> anyhow::Result<()> {
        let ended_early = match self.critical.as_mut() {
            Some(critical) => tokio::select! {
                () = termination() => None,
                result = critical => Some(result),
            },
            None => {
                termination().await;
                None
            }
        };
        info!("stopping");
        let _ = self.stop.send(true);
        let critical = match (ended_early, self.critical) {
            (Some(result), _) => Some(result),
            (None, Some(critical)) => Some(critical.await),
            (None, None) => None,
        };
        for task in self.tasks {
            task.await??;
        }
        if let Some(result) = critical {
            result??;
        }
        Ok(())
    }
}

/// `argus run`: everything in one process on the embedded store, with its log embedded or on Kafka.
async fn run(config: config::Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("data_dir {}", config.data_dir.display()))?;
    match config.log {
        config::LogChoice::Embedded => {
            let log = EmbeddedLog::open(&config.data_dir.join("log"), config.partitions).context("embedded log")?;
            run_on(Arc::new(log), config).await
        }
        config::LogChoice::Kafka => {
            let log = kafka(&config).await?;
            run_on(log, config).await
        }
    }
}

async fn run_on<L: EventLog + 'static>(log: Arc<L>, config: config::Config) -> anyhow::Result<()> {
    let mut processor_config = config.processor()?;
    let collector_config = config.collector()?;
    processor_config.collectors = config.processor_registry(config.collector.enabled.then_some(&collector_config));
    let store = Arc::new(EmbeddedStore::open(&config.data_dir.join("store")).context("embedded store")?);
    let listener = std::net::TcpListener::bind(config.listen).with_context(|| format!("listen {}", config.listen))?;
    let mut services = Services::new();
    services.sinks(Arc::clone(&log), &config)?;
    services.processor(Arc::clone(&log), Arc::clone(&store), processor_config);
    services.api(Arc::clone(&log), store, &config, listener)?;
    services.ingest(Arc::clone(&log), &config)?;
    if config.collector.enabled {
        services.collector(log, collector_config);
    }
    info!(
        listen = %config.listen, data_dir = %config.data_dir.display(), log = ?config.log,
        "argus running: GraphQL at /graphql"
    );
    services.wait().await
}

/// The Kafka log with `[kafka.security]`; refuses to start when the brokers refuse its
/// credentials or TLS, and starts (retrying in the background) when they are only unreachable.
async fn kafka(config: &config::Config) -> anyhow::Result<Arc<KafkaLog>> {
    let brokers = &config.kafka.brokers;
    let log = KafkaLog::connect_with(brokers, &config.kafka.security).with_context(|| format!("kafka {brokers}"))?;
    match log.check(KAFKA_CHECK).await {
        Ok(()) => {}
        Err(refused @ LogError::Refused(_)) => {
            return Err(refused).context("check [kafka.security] (protocol, sasl_*, ca_file, certificate_file)");
        }
        Err(error) => warn!(%error, "kafka brokers not answering yet; retrying in the background"),
    }
    Ok(Arc::new(log))
}

/// How long a scale-out service waits for the brokers' first answer before starting anyway.
const KAFKA_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

async fn scylla(config: &config::Config) -> anyhow::Result<Arc<ScyllaStore>> {
    let uri =
        config.scylla.uri.as_deref().context(
            "scylla.uri is not set: the scale-out processor and API share their projections through ScyllaDB",
        )?;
    let store = ScyllaStore::connect(uri, &config.scylla.keyspace, config.scylla.replication_factor)
        .await
        .with_context(|| format!("scylla {uri}"))?;
    Ok(Arc::new(store))
}

/// `argus collector`: this host's interfaces to a central `argus run` or to Kafka.
async fn collector(config: config::Config) -> anyhow::Result<()> {
    let collector_config = config.collector()?;
    if let Err(error) = argus_collector::without_huge_pages() {
        warn!(%error, "transparent huge pages stay on for this process");
    }
    let mut services = Services::new();
    services.metrics(config.metrics_listen)?;
    if let Some(central) = config.central()? {
        let url = central.url.clone();
        services.collector(Arc::new(IngestLog::connect(central).context("collector.central")?), collector_config);
        info!(central = %url, "argus collector running");
    } else {
        services.collector(kafka(&config).await?, collector_config);
        info!(brokers = %config.kafka.brokers, "argus collector running");
    }
    services.wait().await
}

/// `argus processor`: Kafka to ScyllaDB, in the consumer group.
async fn processor(config: config::Config) -> anyhow::Result<()> {
    let processor_config = config.processor()?;
    let mut services = Services::new();
    services.metrics(config.metrics_listen)?;
    let log = kafka(&config).await?;
    services.sinks(Arc::clone(&log), &config)?;
    services.processor(log, scylla(&config).await?, processor_config);
    info!(brokers = %config.kafka.brokers, group = %config.kafka.group, "argus processor running");
    services.wait().await
}

/// `argus api`: GraphQL over ScyllaDB, writing through Kafka.
async fn api(config: config::Config) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(config.listen).with_context(|| format!("listen {}", config.listen))?;
    let mut services = Services::new();
    services.api(kafka(&config).await?, scylla(&config).await?, &config, listener)?;
    info!(listen = %config.listen, "argus api running: GraphQL at /graphql");
    services.wait().await
}

/// `argus replay`: folds the whole embedded log into a new store, then puts it in place of the old
/// one. Alerts and dead letters of the replay go to `<topic>.replay`, not to the SIEM's topic.
async fn replay(config: config::Config) -> anyhow::Result<()> {
    let current = config.data_dir.join("store");
    if current.exists() {
        // redb refuses a file another process holds: that is `argus run`; a store in an earlier
        // row format is what a replay rebuilds
        match EmbeddedStore::open(&current) {
            Ok(_) | Err(StoreError::Format { .. }) => {}
            Err(error) => return Err(error).context("the embedded store is in use: stop `argus run` first"),
        }
    }
    let log = EmbeddedLog::open(&config.data_dir.join("log"), config.partitions).context("embedded log")?;
    let mut processor_config = config.processor()?;
    processor_config.group = "argus-replay".into();
    processor_config.alerts_topic = format!("{}.replay", processor_config.alerts_topic);
    processor_config.dead_letter_topic = format!("{}.replay", processor_config.dead_letter_topic);
    processor_config.checkpoint_interval = Duration::from_millis(200);
    let end = log_end(&log, &processor_config.observations_topic).await?;
    let rebuilt = config.data_dir.join("store.rebuild");
    if rebuilt.exists() {
        std::fs::remove_file(&rebuilt).with_context(|| format!("removing {}", rebuilt.display()))?;
    }
    let store = EmbeddedStore::open(&rebuilt).context("new store")?;
    let started = std::time::Instant::now();
    argus_processor::run_until_caught_up(&log, &store, &processor_config, &end, draw_progress).await?;
    eprintln!();
    drop(store);
    if current.exists() {
        std::fs::rename(&current, config.data_dir.join("store.before-replay")).context("keeping the old store")?;
    }
    std::fs::rename(&rebuilt, &current).context("putting the new store in place")?;
    println!(
        "replayed {} records in {:.1} s into {}",
        end.values().sum::<u64>(),
        started.elapsed().as_secs_f64(),
        current.display()
    );
    Ok(())
}

/// Where each partition of `topic` ends now.
async fn log_end(log: &EmbeddedLog, topic: &str) -> anyhow::Result<std::collections::BTreeMap<u32, u64>> {
    use argus_log::{Delivery, LogConsumer};
    let mut consumer = log.subscribe(topic, "argus-replay-end").await?;
    loop {
        if let Delivery::Assigned(partitions) = consumer.poll(1, Duration::from_millis(100)).await? {
            let mut end = std::collections::BTreeMap::new();
            for partition in partitions {
                end.insert(partition, consumer.end_offset(partition).await?);
            }
            return Ok(end);
        }
    }
}

/// `replaying [##########..........]  50%  500000/1000000 records` on one terminal line.
fn draw_progress(done: u64, total: u64) {
    const WIDTH: u64 = 30;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    eprint!(
        "\rreplaying [{}{}] {percent:>3}% {done}/{total} records",
        "#".repeat(filled as usize),
        ".".repeat((WIDTH - filled) as usize)
    );
}
