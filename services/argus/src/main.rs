//! `argus`: Argus WireGuard in one binary. `argus run` is the all-in-one mode (collector,
//! processor and GraphQL API in one process on the embedded log and store); `argus token` mints a
//! development JWT.

mod config;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use argus_api::auth::{Authenticator, Claims, Role, mint_hs256};
use argus_api::{ApiContext, routes, run_alert_feed, serve};
use argus_collector::{Collector, WireguardHost};
use argus_log::EmbeddedLog;
use argus_store::EmbeddedStore;
use clap::{Parser, Subcommand};
use tokio::sync::watch;
use tracing::info;

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
    /// Collector, processor and API in one process on the embedded log and store.
    Run,
    /// Print a development JWT signed with the configured HS256 secret.
    Token {
        #[arg(long)]
        org: String,
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
    match cli.command {
        Command::Run => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("ARGUS_LOG")
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(config))
        }
        Command::Token { org, clearance, role, hours, subject } => {
            let secret = config.auth.hs256_secret.as_ref().context("auth.hs256_secret is not set")?;
            org.parse::<argus_core::OrgId>().context("--org")?;
            clearance.parse::<argus_core::Clearance>().context("--clearance")?;
            let role: Role = role.parse().map_err(anyhow::Error::msg).context("--role")?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let claims = Claims { sub: subject, org, clearance, role, exp: now + hours * 3_600, iat: Some(now) };
            println!("{}", mint_hs256(secret, &claims)?);
            Ok(())
        }
    }
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

async fn run(config: config::Config) -> anyhow::Result<()> {
    let processor_config = config.processor()?;
    let collector_config = config.collector()?;
    let authenticator = Authenticator::new(&config.auth).context("auth")?;
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("data_dir {}", config.data_dir.display()))?;
    let log = Arc::new(EmbeddedLog::open(&config.data_dir.join("log"), config.partitions).context("embedded log")?);
    let store = EmbeddedStore::open(&config.data_dir.join("store")).context("embedded store")?;
    let listener = std::net::TcpListener::bind(config.listen).with_context(|| format!("listen {}", config.listen))?;
    let (stop, stopped) = watch::channel(false);

    let mut processor = {
        let (log, store, stopped) = (Arc::clone(&log), store.clone(), stopped.clone());
        tokio::spawn(
            async move { argus_processor::run(&*log, &store, &processor_config, until_stopped(stopped)).await },
        )
    };
    let context = ApiContext::new(Arc::new(store.clone()), log.clone(), config.api.clone()).context("api")?;
    let alert_feed = tokio::spawn(run_alert_feed(
        Arc::clone(&log),
        config.api.alerts_topic.clone(),
        format!("argus-live-{}", config.api.instance_id),
        config.api.alert_encoding,
        context.live_alerts.clone(),
        stopped.clone(),
    ));
    let collector = Collector::new(WireguardHost::default(), Arc::clone(&log), collector_config);
    let collector = tokio::spawn(collector.run(until_stopped(stopped.clone()), Duration::from_secs(5)));
    let server = tokio::spawn(serve(listener, routes(context, authenticator), until_stopped(stopped.clone())));
    info!(listen = %config.listen, data_dir = %config.data_dir.display(), "argus running: GraphQL at /graphql");

    // the processor only ends on its own with an error: then everything stops
    let ended_early = tokio::select! {
        () = termination() => { info!("stopping"); None }
        result = &mut processor => Some(result),
    };
    let _ = stop.send(true);
    let processor_result = match ended_early {
        Some(result) => result,
        None => processor.await,
    };
    collector.await?.context("collector")?;
    alert_feed.await?;
    server.await?.context("api server")?;
    processor_result?.context("processor")?;
    Ok(())
}
