//! `uptime-ledger serve`: open (or create) the ledger and serve it until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use super::console;
use uptime_ledger::alert::config::{AlertsConfig, ReceiverKind};
use uptime_ledger::alert::{self, notifier::Alerting};
use uptime_ledger::checkpoint::{open_checkpoint, NoteVerifier};
use uptime_ledger::clock::SystemClock;
use uptime_ledger::crypto;
use uptime_ledger::domain::{AdminKey, PreviousLog};
use uptime_ledger::http::{DisplayZone, HttpState};
use uptime_ledger::limits::Limits;
use uptime_ledger::log::{GenesisParams, Ledger, LedgerConfig};
use uptime_ledger::projector::{Projections, ProjectorConfig, DEFAULT_STATE_CHANGE_BUFFER};
use uptime_ledger::read_token::{self, ReadToken};
use uptime_ledger::rpc::RpcConfig;
use uptime_ledger::tls::ServerTls;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the log and the generated keys live.
    #[arg(long, default_value = "ledger-data")]
    pub(super) data_dir: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub(super) grpc_addr: SocketAddr,
    /// HTTP listen address: the status page, the JSON API, /metrics, /healthz, /readyz.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(super) http_addr: SocketAddr,
    /// The log's origin: the checkpoint signer name auditors pin (genesis only).
    #[arg(long)]
    pub(super) origin: Option<String>,
    /// An admin key, NAME=PUBKEY.pem (repeatable; genesis only). Without it, a key named
    /// `admin` is generated in DATA_DIR/keys on first start.
    #[arg(long = "admin-key", value_name = "NAME=PUBKEY.pem")]
    pub(super) admin_keys: Vec<String>,
    /// How far back an observation may be dated, e.g. 1h (genesis only; default 1h).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(super) max_lateness: Option<Duration>,
    /// How far ahead of the ledger's clock an observation may be dated (genesis only; default 30s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(super) max_skew: Option<Duration>,
    /// How many distinct admin keys must sign a command that changes who may write
    /// (adding or revoking an admin key, registering or revoking a probe): the first
    /// signature proposes it, `admin approve` adds the others (genesis only; default 1).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub(super) admin_threshold: Option<u32>,
    /// Start a new log that continues another: FILE holds that log's last checkpoint and
    /// its verifier key, as `uptime-ledger log checkpoint` prints them; the new genesis
    /// names its origin, size, root and key so auditors can chain the two (genesis only).
    /// Used to rotate the ledger's checkpoint key.
    #[arg(long, value_name = "FILE")]
    pub(super) continue_from: Option<PathBuf>,
    /// Ignore the projection snapshot and rebuild projections from the log.
    #[arg(long)]
    pub(super) rebuild_projections: bool,
    /// Longest time a grown log waits for a new signed checkpoint.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "500ms")]
    pub(super) checkpoint_interval: Duration,
    /// Alert rules and receivers (TOML; see `alert::config`). Without it, alerts are
    /// computed under the default rules and served, and nothing is sent.
    #[arg(long, value_name = "FILE")]
    pub(super) alerts: Option<PathBuf>,
    /// The IANA time zone the status pages show times and days in, e.g. Africa/Nairobi
    /// (the JSON API stays RFC 3339 UTC).
    #[arg(long, value_name = "ZONE", default_value = "UTC", value_parser = parse_time_zone)]
    pub(super) time_zone: String,
    #[command(flatten)]
    pub(super) limits: super::limits::LimitArgs,
    #[command(flatten)]
    pub(super) security: SecurityArgs,
}

/// TLS, mutual TLS for ingest, and the read token.
#[derive(Debug, Default, Args)]
pub(super) struct SecurityArgs {
    /// Serve gRPC and HTTP over TLS with this certificate chain (PEM, leaf first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, SEC1 or PKCS#1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS for ingest: a probe must present a certificate issued by this CA (PEM)
    /// whose DNS subject alternative name is its probe id. Other services take clients
    /// without a certificate.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// Require `authorization: Bearer TOKEN` on the read APIs (gRPC Query and Log
    /// services but GetCheckpoint, HTTP /api/ but /api/v1/checkpoint and /api/v1/badge/,
    /// and /metrics).
    /// Prefer the environment variable or --read-token-file: arguments show in `ps`.
    #[arg(long, env = read_token::ENV_VAR, hide_env_values = true)]
    read_token: Option<String>,
    /// A file holding the read token (surrounding whitespace ignored); takes precedence
    /// over --read-token and the environment variable.
    #[arg(long, value_name = "FILE")]
    read_token_file: Option<PathBuf>,
}

impl SecurityArgs {
    /// Reads and checks every file before anything listens.
    fn load(&self) -> anyhow::Result<(Option<ServerTls>, Option<Arc<ReadToken>>)> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(ServerTls::load(cert, key, self.client_ca.as_deref())?),
            _ => None,
        };
        let token = match (&self.read_token_file, &self.read_token) {
            (Some(path), _) => Some(ReadToken::new(&read_token::read_file(path)?)?),
            (None, Some(token)) => Some(ReadToken::new(token).context("--read-token")?),
            (None, None) => None,
        };
        Ok((tls, token.map(Arc::new)))
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let server = Server::open(&args, args.limits.limits()?).await?;
    server.print_banner("uptime-ledger serving", &args.data_dir)?;
    println!("{}", server.ledger.verifier());
    server.serve_until(shutdown_signal()).await
}

/// An open ledger with its projections and both listeners bound, not yet serving.
pub(super) struct Server {
    pub ledger: Arc<Ledger>,
    pub projections: Arc<Projections>,
    pub alerting: Arc<Alerting>,
    grpc_listener: tokio::net::TcpListener,
    http_listener: tokio::net::TcpListener,
    limits: Limits,
    tls: Option<ServerTls>,
    read_token: Option<Arc<ReadToken>>,
    time_zone: DisplayZone,
}

/// `--time-zone`: an IANA name the bundled time zone database knows.
pub(super) fn parse_time_zone(name: &str) -> Result<String, String> {
    DisplayZone::named(name)
        .map(|_| name.to_owned())
        .map_err(|e| e.to_string())
}

impl Server {
    /// Opens (or creates) the ledger in `args.data_dir`, starts its projections and binds
    /// both listeners, which will serve within `limits` (`args.limits` is not read).
    pub async fn open(args: &ServeArgs, limits: Limits) -> anyhow::Result<Server> {
        if args.checkpoint_interval > Duration::from_secs(1) || args.checkpoint_interval.is_zero() {
            bail!("--checkpoint-interval must be between 1ms and 1s (checkpoints are published at least every second)");
        }
        let (tls, read_token) = args.security.load()?;
        let alerts_config = match &args.alerts {
            Some(path) => alert::config::load(path)?,
            None => AlertsConfig::default(),
        };
        let keys_dir = args.data_dir.join("keys");
        std::fs::create_dir_all(&keys_dir)
            .with_context(|| format!("cannot create {}", keys_dir.display()))?;
        let ledger_key_path = keys_dir.join("ledger.pem");
        let ledger_key = if ledger_key_path.exists() {
            crypto::read_signing_key(&ledger_key_path)?
        } else {
            let key = crypto::generate_key_files(&ledger_key_path)?;
            console::say(format_args!(
                "generated the ledger's checkpoint key: {}",
                ledger_key_path.display()
            ));
            key
        };
        if args.continue_from.is_some() && args.admin_keys.is_empty() {
            bail!(
                "a successor log starts empty: name its admins with --admin-key NAME=PUBKEY.pem (and restate --admin-threshold); define its services and register its probes again once it runs"
            );
        }
        let admin_keys = admin_keys(args, &keys_dir)?;
        let alert_key = ledger_key.clone();
        let config = LedgerConfig {
            data_dir: args.data_dir.clone(),
            ledger_key,
            genesis: GenesisParams {
                origin: args.origin.clone(),
                admin_keys,
                max_lateness: args.max_lateness,
                max_skew: args.max_skew,
                admin_threshold: args.admin_threshold,
                previous_log: args
                    .continue_from
                    .as_deref()
                    .map(previous_log)
                    .transpose()?,
            },
            checkpoint_interval: args.checkpoint_interval,
            clock: Arc::new(SystemClock),
        };
        let data_dir = args.data_dir.clone();
        let ledger = tokio::task::spawn_blocking(move || Ledger::open(config))
            .await?
            .with_context(|| format!("cannot open the ledger in {}", data_dir.display()))?;
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
        let alerting = Alerting::start(
            alerts_config,
            &args.data_dir,
            projections.clone(),
            alert_key,
        )
        .context("cannot start alerting")?;
        let grpc_listener = tokio::net::TcpListener::bind(args.grpc_addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.grpc_addr))?;
        let http_listener = tokio::net::TcpListener::bind(args.http_addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.http_addr))?;
        Ok(Server {
            ledger,
            projections,
            alerting,
            grpc_listener,
            http_listener,
            limits,
            tls,
            read_token,
            time_zone: DisplayZone::named(&args.time_zone)?,
        })
    }

    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc_listener.local_addr()
    }

    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http_listener.local_addr()
    }

    /// Where it serves and what it holds, on stderr.
    pub fn print_banner(&self, title: &str, data_dir: &Path) -> anyhow::Result<()> {
        let checkpoint = self.ledger.checkpoint();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut fields = vec![
            ("gRPC", format!("{scheme}://{}", self.grpc_addr()?)),
            ("status page", format!("{scheme}://{}/", self.http_addr()?)),
        ];
        let tls = match &self.tls {
            None => "off (plaintext; use --tls-cert/--tls-key beyond localhost)",
            Some(tls) if tls.client_ca() => {
                "on; ingest needs a client certificate naming the probe (--client-ca)"
            }
            Some(_) => "on",
        };
        fields.push(("TLS", tls.to_owned()));
        if self.read_token.is_some() {
            fields.push(("read token", "required by Query/Log gRPC (but GetCheckpoint), /api/ (but /api/v1/checkpoint and /api/v1/badge/) and /metrics".to_owned()));
        }
        let receivers: Vec<String> = self
            .alerting
            .receivers()
            .iter()
            .map(|receiver| match &receiver.kind {
                ReceiverKind::Alertmanager { url } => {
                    format!("{} (Alertmanager {url})", receiver.name)
                }
                ReceiverKind::Webhook { url, .. } => format!("{} (webhook {url})", receiver.name),
            })
            .collect();
        let alerts = if receivers.is_empty() {
            "computed and served; nothing sent (no receivers in --alerts)".to_owned()
        } else {
            format!("sent to {}", receivers.join(", "))
        };
        fields.push(("alerts", alerts));
        fields.push(("time zone", self.time_zone.name().to_owned()));
        fields.extend([
            ("data dir", data_dir.display().to_string()),
            ("tree size", self.ledger.tree_size().to_string()),
            ("verifier key", self.ledger.verifier().to_string()),
            ("checkpoint", format!("tree size {}", checkpoint.tree_size)),
        ]);
        console::banner(title, &fields);
        Ok(())
    }

    /// Serves gRPC and HTTP until `shutdown` resolves (or either server fails), drains
    /// in-flight requests, then stops the projections and the ledger.
    pub async fn serve_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Server {
            ledger,
            projections,
            alerting,
            grpc_listener,
            http_listener,
            limits,
            tls,
            read_token,
            time_zone,
        } = self;
        // `shutdown` stops both servers, and so does either one failing; each drains its
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
                shutdown.await;
                let _ = stop.send(true);
            }
        });
        let http = tokio::spawn({
            let stop = stop.clone();
            let state = HttpState::new(ledger.clone(), projections.clone())
                .with_read_token(read_token.clone())
                .with_alerting(alerting.clone())
                .with_time_zone(time_zone);
            let server = uptime_ledger::http::serve_maybe_tls(
                http_listener,
                tls.as_ref().map(ServerTls::http),
                state,
                limits.clone(),
                when_stopped(),
            );
            async move {
                let result = server.await;
                let _ = stop.send(true);
                result
            }
        });
        let grpc_result = uptime_ledger::rpc::serve(
            grpc_listener,
            ledger.clone(),
            projections.clone(),
            RpcConfig {
                limits,
                tls,
                read_token,
                admission: None,
                alerting: Some(alerting.clone()),
            },
            when_stopped(),
        )
        .await;
        let _ = stop.send(true);
        grpc_result.context("the gRPC server failed")?;
        http.await?.context("the HTTP server failed")?;
        alerting.shutdown().await;
        projections.shutdown().await;
        ledger.shutdown().await;
        tracing::info!(tree_size = ledger.tree_size(), "shut down cleanly");
        Ok(())
    }
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
                public_key: crypto::read_public_key(Path::new(path))
                    .with_context(|| format!("--admin-key {name}"))?,
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
        crypto::PublicKey::from(&crypto::read_signing_key(&admin_path)?)
    } else {
        let key = crypto::generate_key_files(&admin_path)?;
        console::say(format_args!(
            "generated admin key `admin`: {} (sign admin commands with it; keep it safe)",
            admin_path.display()
        ));
        crypto::PublicKey::from(&key)
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

/// The log a new log continues, from a file holding its checkpoint and verifier key (what
/// `log checkpoint` prints): the signature is checked with that key.
fn previous_log(path: &Path) -> anyhow::Result<PreviousLog> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --continue-from {}", path.display()))?;
    let (note, key) = text.split_once("verifier key: ").with_context(|| {
        format!(
            "{} holds no \"verifier key: \" line; write it with `uptime-ledger log checkpoint > FILE`",
            path.display()
        )
    })?;
    let verifier: NoteVerifier = key
        .trim()
        .parse()
        .with_context(|| format!("the verifier key in {}", path.display()))?;
    let checkpoint = open_checkpoint(note, &verifier)
        .with_context(|| format!("the checkpoint in {}", path.display()))?;
    Ok(PreviousLog {
        origin: checkpoint.origin,
        tree_size: checkpoint.tree_size,
        root_hash: checkpoint.root_hash,
        ledger_public_key: verifier.public_key().clone(),
    })
}
