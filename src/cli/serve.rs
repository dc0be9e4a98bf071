//! `uptime-ledger serve`: open (or create) the ledger and serve it until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use uptime_ledger::clock::SystemClock;
use uptime_ledger::crypto;
use uptime_ledger::domain::AdminKey;
use uptime_ledger::http::HttpState;
use uptime_ledger::log::{GenesisParams, Ledger, LedgerConfig};
use uptime_ledger::projector::{Projections, ProjectorConfig, DEFAULT_STATE_CHANGE_BUFFER};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the log and the generated keys live.
    #[arg(long, default_value = "ledger-data")]
    data_dir: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    grpc_addr: SocketAddr,
    /// HTTP listen address: the status page, the JSON API, /metrics, /healthz, /readyz.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// The log's origin: the checkpoint signer name auditors pin (genesis only).
    #[arg(long)]
    origin: Option<String>,
    /// An admin key, NAME=PUBKEY.pem (repeatable; genesis only). Without it, a key named
    /// `admin` is generated in DATA_DIR/keys on first start.
    #[arg(long = "admin-key", value_name = "NAME=PUBKEY.pem")]
    admin_keys: Vec<String>,
    /// How far back an observation may be dated, e.g. 1h (genesis only; default 1h).
    #[arg(long, value_parser = humantime::parse_duration)]
    max_lateness: Option<Duration>,
    /// How far ahead of the ledger's clock an observation may be dated (genesis only; default 30s).
    #[arg(long, value_parser = humantime::parse_duration)]
    max_skew: Option<Duration>,
    /// Ignore the projection snapshot and rebuild projections from the log.
    #[arg(long)]
    rebuild_projections: bool,
    /// Longest time a grown log waits for a new signed checkpoint.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "500ms")]
    checkpoint_interval: Duration,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.checkpoint_interval > Duration::from_secs(1) || args.checkpoint_interval.is_zero() {
        bail!("--checkpoint-interval must be between 1ms and 1s (checkpoints are published at least every second)");
    }
    let keys_dir = args.data_dir.join("keys");
    std::fs::create_dir_all(&keys_dir)
        .with_context(|| format!("cannot create {}", keys_dir.display()))?;
    let ledger_key_path = keys_dir.join("ledger.pem");
    let ledger_key = if ledger_key_path.exists() {
        crypto::read_signing_key(&ledger_key_path)?
    } else {
        let key = crypto::generate_key_files(&ledger_key_path)?;
        eprintln!(
            "generated the ledger's checkpoint key: {}",
            ledger_key_path.display()
        );
        key
    };
    let admin_keys = admin_keys(&args, &keys_dir)?;
    let config = LedgerConfig {
        data_dir: args.data_dir.clone(),
        ledger_key,
        genesis: GenesisParams {
            origin: args.origin.clone(),
            admin_keys,
            max_lateness: args.max_lateness,
            max_skew: args.max_skew,
        },
        checkpoint_interval: args.checkpoint_interval,
        clock: Arc::new(SystemClock),
    };
    let ledger = tokio::task::spawn_blocking(move || Ledger::open(config))
        .await?
        .with_context(|| format!("cannot open the ledger in {}", args.data_dir.display()))?;
    let projector_config = ProjectorConfig {
        data_dir: args.data_dir.clone(),
        rebuild: args.rebuild_projections,
        snapshot_interval: Duration::from_secs(10),
        clock: Arc::new(SystemClock),
        state_change_buffer: DEFAULT_STATE_CHANGE_BUFFER,
    };
    let projections = {
        let ledger = ledger.clone();
        tokio::task::block_in_place(move || Projections::start(ledger, projector_config))
            .context("cannot start the projections")?
    };
    let listener = tokio::net::TcpListener::bind(args.grpc_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.grpc_addr))?;
    let http_listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.http_addr))?;
    let checkpoint = ledger.checkpoint();
    eprintln!("uptime-ledger serving");
    eprintln!("  gRPC:         http://{}", listener.local_addr()?);
    eprintln!("  status page:  http://{}/", http_listener.local_addr()?);
    eprintln!("  data dir:     {}", args.data_dir.display());
    eprintln!("  tree size:    {}", ledger.tree_size());
    eprintln!("  verifier key: {}", ledger.verifier());
    eprintln!("  checkpoint:   tree size {}", checkpoint.tree_size);
    println!("{}", ledger.verifier());

    // SIGINT/SIGTERM stops both servers, and so does either one failing; each drains its
    // in-flight requests.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let when_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|&stop| stop).await;
        }
    };
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        }
    });
    let http = tokio::spawn({
        let stop = stop.clone();
        let server = uptime_ledger::http::serve_http(
            http_listener,
            HttpState::new(ledger.clone(), projections.clone()),
            when_stopped(),
        );
        async move {
            let result = server.await;
            let _ = stop.send(true);
            result
        }
    });
    let grpc_result = uptime_ledger::rpc::serve(
        listener,
        ledger.clone(),
        projections.clone(),
        when_stopped(),
    )
    .await;
    let _ = stop.send(true);
    grpc_result.context("the gRPC server failed")?;
    http.await?.context("the HTTP server failed")?;
    projections.shutdown().await;
    ledger.shutdown().await;
    tracing::info!(tree_size = ledger.tree_size(), "shut down cleanly");
    Ok(())
}

/// The genesis admin keys: from `--admin-key`, else the generated `admin` key for a new log,
/// else (existing log, no flag) whatever the log has.
fn admin_keys(args: &ServeArgs, keys_dir: &Path) -> anyhow::Result<Option<Vec<AdminKey>>> {
    if !args.admin_keys.is_empty() {
        let mut keys = Vec::new();
        for spec in &args.admin_keys {
            let Some((name, path)) = spec.split_once('=') else {
                bail!("--admin-key takes NAME=PUBKEY.pem, got {spec:?}");
            };
            keys.push(AdminKey {
                name: name.to_owned(),
                public_key: crypto::read_verifying_key(Path::new(path))?,
            });
        }
        return Ok(Some(keys));
    }
    if args.data_dir.join("log").exists() {
        return Ok(None);
    }
    let admin_path = keys_dir.join("admin.pem");
    let public_key = if admin_path.exists() {
        // From the private key, written first: a start killed between the two files
        // must not leave a directory that can never start.
        crypto::read_signing_key(&admin_path)?.verifying_key()
    } else {
        let key = crypto::generate_key_files(&admin_path)?;
        eprintln!(
            "generated admin key `admin`: {} (sign admin commands with it; keep it safe)",
            admin_path.display()
        );
        key.verifying_key()
    };
    Ok(Some(vec![AdminKey {
        name: "admin".into(),
        public_key,
    }]))
}

/// Resolves on SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested: draining");
}
