//! The checks: an HTTP(S) GET or a TCP connect, turned into UP or DOWN with a `detail`
//! that says why (`HTTP 503`, `timeout after 5s`, `connection refused`,
//! `TLS: certificate expired`, `body mismatch`).
//!
//! Every run opens a fresh connection (no pooling): a probe measures what a citizen
//! arriving now would get, including DNS, the TCP handshake and the TLS certificate as it
//! is today, not a connection kept alive from an earlier run.

use std::error::Error as StdError;
use std::io;
use std::time::{Duration, Instant};

use reqwest::redirect;

use super::config::{CheckConfig, CheckTarget, HttpTarget};
use crate::domain::{Status, MAX_DETAIL_BYTES};

/// Most redirects followed when a check sets `follow_redirects = true`.
const MAX_REDIRECTS: usize = 10;
/// Most response body searched for `body_contains`; a page that has not shown the text by
/// then is a mismatch (and memory stays bounded whatever a server sends).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What one run of a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub status: Status,
    /// How long the run took: to the response headers, or to the matched body text when
    /// `body_contains` is set; to the failure for a DOWN.
    pub latency: Duration,
    /// Why, in a few words; at most `MAX_DETAIL_BYTES`.
    pub detail: String,
}

impl CheckResult {
    pub fn latency_ms(&self) -> u32 {
        u32::try_from(self.latency.as_millis()).unwrap_or(u32::MAX)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client for {service_id}: {source}")]
pub struct CheckSetupError {
    service_id: String,
    source: reqwest::Error,
}

/// A check ready to run: its configuration and, for HTTP, its client.
#[derive(Debug)]
pub struct Checker {
    config: CheckConfig,
    http: Option<reqwest::Client>,
}

impl Checker {
    pub fn new(config: CheckConfig) -> Result<Checker, CheckSetupError> {
        let http = match &config.target {
            CheckTarget::Http(target) => {
                Some(http_client(target).map_err(|source| CheckSetupError {
                    service_id: config.service_id.to_string(),
                    source,
                })?)
            }
            CheckTarget::Tcp { .. } => None,
        };
        Ok(Checker { config, http })
    }

    pub fn config(&self) -> &CheckConfig {
        &self.config
    }

    /// Runs the check once. Never takes (much) longer than the check's `timeout`.
    pub async fn run(&self) -> CheckResult {
        let started = Instant::now();
        let attempt = async {
            match (&self.config.target, &self.http) {
                (CheckTarget::Http(target), Some(client)) => http_attempt(client, target).await,
                (CheckTarget::Tcp { address }, _) => tcp_attempt(address).await,
                (CheckTarget::Http(_), None) => {
                    unreachable!("Checker::new builds a client for every http check")
                }
            }
        };
        let outcome = match tokio::time::timeout(self.config.timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "timeout after {}",
                humantime::format_duration(self.config.timeout)
            )),
        };
        judge(outcome, started.elapsed(), self.config.max_latency)
    }
}

/// Turns an attempt's outcome (the UP detail, or why it failed) and its latency into a
/// result; a success slower than `max_latency` is DOWN.
fn judge(
    outcome: Result<String, String>,
    latency: Duration,
    max_latency: Option<Duration>,
) -> CheckResult {
    let (status, detail) = match outcome {
        Ok(detail) => match max_latency {
            Some(max) if latency > max => (
                Status::Down,
                format!(
                    "slow: {} ms, over max_latency {} ({detail})",
                    latency.as_millis(),
                    humantime::format_duration(max)
                ),
            ),
            _ => (Status::Up, detail),
        },
        Err(why) => (Status::Down, why),
    };
    CheckResult {
        status,
        latency,
        detail: bounded_detail(detail),
    }
}

fn http_client(target: &HttpTarget) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(if target.follow_redirects {
            redirect::Policy::limited(MAX_REDIRECTS)
        } else {
            redirect::Policy::none()
        })
        .pool_max_idle_per_host(0)
        .user_agent(concat!("uptime-ledger-probe/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// One GET: `Ok(detail)` when the status (and body) are as expected, else `Err(why)`.
async fn http_attempt(client: &reqwest::Client, target: &HttpTarget) -> Result<String, String> {
    let mut response = client
        .get(target.url.clone())
        .send()
        .await
        .map_err(|error| describe_failure(&error))?;
    let code = response.status().as_u16();
    if !target.expect_status.accepts(code) {
        return Err(format!("HTTP {code}"));
    }
    if let Some(needle) = &target.body_contains {
        let mut searcher = BodySearch::new(needle.as_bytes());
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if searcher.feed(&chunk) {
                        break;
                    }
                    if searcher.seen() >= MAX_BODY_BYTES {
                        return Err("body mismatch".into());
                    }
                }
                Ok(None) => return Err("body mismatch".into()),
                Err(error) => return Err(format!("body: {}", describe_failure(&error))),
            }
        }
    }
    Ok(format!("HTTP {code}"))
}

/// Finds a needle in a body that arrives in chunks, keeping only the last `needle.len() - 1`
/// bytes between chunks.
struct BodySearch<'a> {
    needle: &'a [u8],
    tail: Vec<u8>,
    seen: usize,
}

impl<'a> BodySearch<'a> {
    fn new(needle: &'a [u8]) -> BodySearch<'a> {
        assert!(
            !needle.is_empty(),
            "config validation refuses an empty body_contains"
        );
        BodySearch {
            needle,
            tail: Vec::new(),
            seen: 0,
        }
    }

    /// Adds a chunk; true once the needle has been seen.
    fn feed(&mut self, chunk: &[u8]) -> bool {
        self.seen += chunk.len();
        self.tail.extend_from_slice(chunk);
        if self
            .tail
            .windows(self.needle.len())
            .any(|window| window == self.needle)
        {
            return true;
        }
        let keep = self.needle.len() - 1;
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
        false
    }

    fn seen(&self) -> usize {
        self.seen
    }
}

async fn tcp_attempt(address: &str) -> Result<String, String> {
    let addresses: Vec<_> = tokio::net::lookup_host(address)
        .await
        .map_err(|error| format!("DNS: {error}"))?
        .collect();
    let mut last_error = None;
    for socket_address in addresses {
        match tokio::net::TcpStream::connect(socket_address).await {
            Ok(_) => return Ok("connected".into()),
            Err(error) => last_error = Some(error),
        }
    }
    Err(match last_error {
        Some(error) => describe_failure(&error),
        None => format!("DNS: no address for {address}"),
    })
}

/// Says in a few words why a request or connection failed, looking through the whole
/// chain of causes (reqwest → hyper → io → rustls) for the one that explains it.
pub fn describe_failure(error: &(dyn StdError + 'static)) -> String {
    if let Some(known) = known_cause(error) {
        return known;
    }
    let chain: Vec<String> = causes(error).iter().map(ToString::to_string).collect();
    let innermost = chain.last().cloned().unwrap_or_default();
    if chain.iter().any(|text| text.contains("dns error")) {
        format!("DNS: {innermost}")
    } else {
        chain.join(": ")
    }
}

/// The cause a person would name (`connection refused`, `TLS: certificate expired`), if
/// the chain holds one this module recognizes.
pub fn known_cause(error: &(dyn StdError + 'static)) -> Option<String> {
    let causes = causes(error);
    for cause in &causes {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(describe_tls(tls));
        }
    }
    causes.iter().find_map(|cause| {
        let known = match cause.downcast_ref::<io::Error>()?.kind() {
            io::ErrorKind::ConnectionRefused => "connection refused",
            io::ErrorKind::ConnectionReset => "connection reset",
            io::ErrorKind::ConnectionAborted => "connection aborted",
            io::ErrorKind::TimedOut => "connect timed out",
            io::ErrorKind::HostUnreachable => "host unreachable",
            io::ErrorKind::NetworkUnreachable => "network unreachable",
            io::ErrorKind::UnexpectedEof => "connection closed early",
            _ => return None,
        };
        Some(known.to_owned())
    })
}

/// `error` and its causes, outermost first.
fn causes<'a>(error: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut causes = Vec::new();
    let mut current = Some(error);
    while let Some(cause) = current {
        causes.push(cause);
        // An io::Error's `source()` skips the error it wraps, so look inside it too.
        if let Some(inner) = cause
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
        {
            causes.push(inner);
        }
        current = cause.source();
    }
    causes
}

fn describe_tls(error: &rustls::Error) -> String {
    use rustls::CertificateError as Cert;
    match error {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            Cert::Expired | Cert::ExpiredContext { .. } => "TLS: certificate expired".into(),
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                "TLS: certificate not valid yet".into()
            }
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => {
                "TLS: certificate not valid for this host name".into()
            }
            Cert::UnknownIssuer => "TLS: certificate issued by an unknown authority".into(),
            Cert::Revoked => "TLS: certificate revoked".into(),
            other => format!("TLS: invalid certificate ({other:?})"),
        },
        other => format!("TLS: {other}"),
    }
}

/// Cuts `detail` to `MAX_DETAIL_BYTES` at a character boundary (the ledger refuses longer).
fn bounded_detail(mut detail: String) -> String {
    if detail.len() > MAX_DETAIL_BYTES {
        let mut end = MAX_DETAIL_BYTES;
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_io_error(error: rustls::Error) -> io::Error {
        // How tokio-rustls hands a handshake failure to hyper.
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Wrapper(#[source] io::Error);

    #[test]
    fn failures_are_described_by_their_cause() {
        let cases: Vec<(Box<dyn StdError + 'static>, &str)> = vec![
            (
                Box::new(Wrapper(io::Error::from(io::ErrorKind::ConnectionRefused))),
                "connection refused",
            ),
            (
                Box::new(Wrapper(tls_io_error(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Expired,
                )))),
                "TLS: certificate expired",
            ),
            (
                Box::new(tls_io_error(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName,
                ))),
                "TLS: certificate not valid for this host name",
            ),
            (
                Box::new(tls_io_error(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer,
                ))),
                "TLS: certificate issued by an unknown authority",
            ),
            (
                Box::new(Wrapper(io::Error::other(
                    "dns error: failed to lookup address information",
                ))),
                "DNS: dns error: failed to lookup address information",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(describe_failure(error.as_ref()), expected, "{error:?}");
        }
    }

    #[test]
    fn slow_successes_are_down_and_failures_keep_their_reason() {
        let up = judge(
            Ok("HTTP 200".into()),
            Duration::from_millis(20),
            Some(Duration::from_secs(1)),
        );
        assert_eq!((up.status, up.detail.as_str()), (Status::Up, "HTTP 200"));
        let slow = judge(
            Ok("HTTP 200".into()),
            Duration::from_millis(3412),
            Some(Duration::from_secs(3)),
        );
        assert_eq!(slow.status, Status::Down);
        assert_eq!(slow.detail, "slow: 3412 ms, over max_latency 3s (HTTP 200)");
        let down = judge(Err("HTTP 503".into()), Duration::from_millis(5), None);
        assert_eq!(
            (down.status, down.detail.as_str()),
            (Status::Down, "HTTP 503")
        );
        assert_eq!(down.latency_ms(), 5);
    }

    #[test]
    fn details_are_cut_to_the_ledger_limit_on_a_character_boundary() {
        let long = "é".repeat(200);
        let cut = bounded_detail(long);
        assert!(cut.len() <= MAX_DETAIL_BYTES);
        assert_eq!(cut.len(), 256);
        assert_eq!(bounded_detail("short".into()), "short");
        let odd = format!("x{}", "é".repeat(200));
        assert_eq!(bounded_detail(odd).len(), 255);
    }

    #[test]
    fn the_body_search_finds_text_split_across_chunks() {
        let mut search = BodySearch::new(b"status: ok");
        assert!(!search.feed(b"<html>... stat"));
        assert!(!search.feed(b"us"));
        assert!(search.feed(b": ok </html>"));
        let mut search = BodySearch::new(b"ok");
        assert!(!search.feed(b"o"));
        assert!(search.feed(b"k-not"), "\"ok\" spans the two chunks");
        let mut search = BodySearch::new(b"ok");
        assert!(!search.feed(b"maintenance page"));
    }
}
