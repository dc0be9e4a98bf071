//! `serve`'s limit flags, in one block (flattened into `ServeArgs`).

use std::time::Duration;

use clap::Args;

use uptime_ledger::limits::{self, Limits};

#[derive(Debug, Args)]
#[command(next_help_heading = "Limits (hostile and overloaded clients)")]
pub struct LimitArgs {
    /// Open gRPC connections at once; more are accepted and closed at once.
    #[arg(long, default_value_t = limits::DEFAULT_GRPC_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Open HTTP connections at once.
    #[arg(long, default_value_t = limits::DEFAULT_HTTP_MAX_CONNECTIONS)]
    http_max_connections: usize,
    /// Largest request header list (gRPC, HTTP/2) or request head (HTTP/1.1), in bytes.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_HEADER_BYTES)]
    max_header_bytes: u32,
    /// Close a connection whose client sends nothing for this long (idle, silent or
    /// slow-loris clients); longer than --keepalive-interval + --keepalive-timeout.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    idle_timeout: Duration,
    /// gRPC: ping a connection after this long without frames.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    keepalive_interval: Duration,
    /// gRPC: close a connection whose ping is not answered within this.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    keepalive_timeout: Duration,
    /// Longest a unary gRPC call may take.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    grpc_request_timeout: Duration,
    /// HTTP: a request head must arrive within this (from connecting, or from the previous
    /// response on a kept-alive connection).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    http_header_timeout: Duration,
    /// HTTP: longest a request may take before the answer is 503.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    http_request_timeout: Duration,
    /// Sustained observations per second one probe may submit; 0 turns the limit off.
    /// Over it, the call is refused with RESOURCE_EXHAUSTED and RetryInfo.
    #[arg(long, default_value_t = limits::DEFAULT_PROBE_RATE)]
    probe_rate: f64,
    /// Observations one probe may submit at once above its rate (token bucket size).
    #[arg(long, default_value_t = limits::DEFAULT_PROBE_BURST)]
    probe_burst: u32,
    /// Submit calls and SubmitStream chunks in flight at once; more are answered
    /// UNAVAILABLE at once (load shedding).
    #[arg(long, default_value_t = limits::DEFAULT_MAX_INFLIGHT_SUBMITS)]
    max_inflight_submits: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> anyhow::Result<Limits> {
        let limits = Limits {
            grpc_max_connections: self.max_connections,
            http_max_connections: self.http_max_connections,
            max_header_bytes: self.max_header_bytes,
            idle_timeout: self.idle_timeout,
            keepalive_interval: self.keepalive_interval,
            keepalive_timeout: self.keepalive_timeout,
            grpc_request_timeout: self.grpc_request_timeout,
            http_header_timeout: self.http_header_timeout,
            http_request_timeout: self.http_request_timeout,
            probe_rate: self.probe_rate,
            probe_burst: self.probe_burst,
            max_inflight_submits: self.max_inflight_submits,
        };
        limits.validate().map_err(anyhow::Error::msg)?;
        Ok(limits)
    }
}

impl Default for LimitArgs {
    /// The flags' defaults, from the same attributes `serve --help` shows.
    fn default() -> LimitArgs {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            limits: LimitArgs,
        }
        <Defaults as clap::Parser>::parse_from(["defaults"]).limits
    }
}
