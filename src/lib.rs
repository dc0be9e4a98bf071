//! # uptime-ledger
//!
//! A verifiable record of whether government digital services are up. Probes send
//! Ed25519-signed observations over gRPC; the ledger appends them to an append-only log
//! with an RFC 6962 Merkle tree and signed C2SP checkpoints, acknowledging only what is on
//! disk.
//!
//! # Layout (in reading order; data flows down)
//!
//! - [`domain`]: plain validated types (ids, observations, commands, genesis);
//! - [`crypto`]: domain-separated Ed25519 signatures, the one rule for valid keys and
//!   signatures, key files;
//! - [`entry`]: the one place protobuf bytes become domain types (the log's entry codec);
//! - [`merkle`]: RFC 6962 hashing, proofs and tiles — pure;
//! - [`checkpoint`]: C2SP signed-note checkpoints — pure;
//! - [`governance`]: who may write over time: admin keys added and revoked, k-of-n
//!   approval — pure;
//! - [`log`]: the store, the single writer with group commit, recovery, the `Ledger` handle;
//! - [`projection`]: the pure SLA core; [`projector`]: the task that keeps it up to date;
//! - [`window`], [`query`]: resolving windows and answering queries, for gRPC and HTTP alike;
//! - [`alert`]: outage, no-data and SLO burn-rate alerts as answers of a prefix (pure), and
//!   their delivery through a durable outbox to Alertmanager and signed webhooks;
//! - [`rpc`]: the gRPC services (protobuf types stop there);
//! - [`audit`]: the auditor's independent check of a log prefix (signatures, ingest rules,
//!   recomputed reports compared with the server's) — pure;
//! - [`evidence`]: files that prove what the log held without the ledger: the raw export
//!   and its offline audit, evidence bundles built and verified — pure;
//! - [`http`]: the status page, the JSON API, `/metrics`, health and readiness;
//! - [`limits`]: what the servers allow one client and all clients (connections, headers,
//!   timeouts, rates), shared by gRPC and HTTP;
//! - [`metrics`]: the write path's Prometheus counters (`/metrics` is `http::metrics`);
//! - [`probe`]: the probe agent: checks, signing, the spool, delivery;
//! - [`client`]: helpers the CLI and tests use to talk to a ledger;
//! - [`tls`]: TLS certificates and keys from PEM files (servers and clients);
//!   [`read_token`]: the optional bearer token of the read APIs;
//! - [`clock`]: the injected wall clock;
//! - [`pb`]: generated protobuf types.

pub mod alert;
pub mod audit;
pub mod bench;
pub mod checkpoint;
pub mod client;
pub mod clock;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod entry;
pub mod evidence;
pub mod governance;
pub mod http;
pub mod limits;
pub mod log;
pub mod merkle;
pub mod metrics;
pub mod pb;
pub mod probe;
pub mod projection;
pub mod projector;
pub mod query;
pub mod read_token;
pub mod rpc;
pub mod tls;
pub mod window;
