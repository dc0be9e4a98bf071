//! The probe's configuration file (TOML): parsing and validation. Pure apart from
//! [`load`], which reads the file.
//!
//! A config is refused as a whole at start when anything in it is wrong, with the line and
//! the problem (`probe.toml line 12: unknown field `intervall`, expected one of …`). Unknown
//! keys are errors, never silently ignored: a misspelt `max_latency` must not turn into a
//! check that never counts slowness.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use toml::Spanned;

use crate::domain::{ProbeId, ServiceId};

/// Default of `spool_max_observations`: undelivered observations kept on disk (about an
/// hour of 25 checks every second, or a day of 35 checks every 30 s).
pub const DEFAULT_SPOOL_MAX_OBSERVATIONS: usize = 100_000;

/// A validated probe configuration. Relative paths are already resolved against the
/// directory of the config file, so the agent's working directory does not matter.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    pub probe_id: ProbeId,
    /// The probe's private key (PKCS#8 PEM).
    pub key_file: PathBuf,
    /// The ledger's gRPC address, `http://host:port` or `https://host:port`.
    pub ledger: String,
    pub spool_dir: PathBuf,
    /// At least 1.
    pub spool_max_observations: usize,
    /// At least one; no two for the same service.
    pub checks: Vec<CheckConfig>,
    /// TLS to an `https://` ledger (the `[tls]` table); empty for the defaults.
    pub tls: TlsFiles,
}

/// The `[tls]` table: files for TLS to the ledger. Without `ca_file` the Mozilla roots
/// built into the binary are trusted; `cert_file` and `key_file` (both or neither) are the
/// client certificate a ledger with `--client-ca` requires, whose DNS name is the probe id.
/// (A table of its own because the top-level `key_file` is the probe's signing key.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// One service to watch, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckConfig {
    pub service_id: ServiceId,
    /// Time between runs; never zero.
    pub interval: Duration,
    /// Longest a run may take before it counts as DOWN; never zero, at most `interval`.
    pub timeout: Duration,
    /// A run slower than this counts as DOWN; at most `timeout`.
    pub max_latency: Option<Duration>,
    pub target: CheckTarget,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckTarget {
    /// An HTTP(S) GET.
    Http(HttpTarget),
    /// A TCP connect to `host:port`.
    Tcp { address: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpTarget {
    /// An `http` or `https` URL with a host.
    pub url: Url,
    pub expect_status: ExpectStatus,
    /// The response body must contain this text (never empty).
    pub body_contains: Option<String>,
    /// Follow up to 10 redirects; otherwise a redirect is itself the answer.
    pub follow_redirects: bool,
}

/// Which HTTP status codes count as UP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectStatus {
    /// Any 2xx or 3xx (the default).
    SuccessOrRedirect,
    /// Exactly these codes (each 100–599, at least one).
    OneOf(Vec<u16>),
}

impl ExpectStatus {
    pub fn accepts(&self, code: u16) -> bool {
        match self {
            ExpectStatus::SuccessOrRedirect => (200..400).contains(&code),
            ExpectStatus::OneOf(codes) => codes.contains(&code),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the probe config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `line` is 1-based; `None` when the problem is the file as a whole (a missing table).
    #[error("{file}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Invalid {
        file: String,
        line: Option<usize>,
        message: String,
    },
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<ProbeConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base_dir = path.parent().unwrap_or(Path::new(""));
    parse(&text, &path.display().to_string(), base_dir)
}

/// Parses and validates config `text`; `file` names it in errors and relative paths are
/// resolved against `base_dir`.
pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<ProbeConfig, ConfigError> {
    let problem = |span: Option<Range<usize>>, message: String| ConfigError::Invalid {
        file: file.to_owned(),
        line: span.map(|span| line_of(text, span.start)),
        message,
    };
    let raw: RawConfig =
        toml::from_str(text).map_err(|error| problem(error.span(), error.message().to_owned()))?;
    validate(raw, base_dir).map_err(|(span, message)| problem(span, message))
}

/// The 1-based line holding byte `offset` of `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The file as written. Fields whose value is checked after parsing keep their span, so a
/// bad value is reported on its own line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    probe_id: Spanned<String>,
    key_file: PathBuf,
    ledger: Spanned<String>,
    spool_dir: PathBuf,
    /// Signed, so that a negative count gets our message rather than serde's "expected usize".
    spool_max_observations: Option<Spanned<i64>>,
    #[serde(rename = "check", default)]
    checks: Vec<Spanned<RawCheck>>,
    tls: Option<Spanned<RawTls>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    service_id: Spanned<String>,
    kind: Spanned<CheckKind>,
    url: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    interval: Spanned<String>,
    timeout: Spanned<String>,
    expect_status: Option<Spanned<Vec<Spanned<u16>>>>,
    body_contains: Option<Spanned<String>>,
    max_latency: Option<Spanned<String>>,
    follow_redirects: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CheckKind {
    Http,
    Tcp,
}

/// A problem and where it is.
type Problem = (Option<Range<usize>>, String);

fn at<T>(spanned: &Spanned<T>, message: impl Into<String>) -> Problem {
    (Some(spanned.span()), message.into())
}

fn validate(raw: RawConfig, base_dir: &Path) -> Result<ProbeConfig, Problem> {
    let probe_id =
        ProbeId::parse(raw.probe_id.get_ref()).map_err(|e| at(&raw.probe_id, e.to_string()))?;
    let ledger = validate_ledger(&raw.ledger)?;
    let spool_max_observations = match &raw.spool_max_observations {
        None => DEFAULT_SPOOL_MAX_OBSERVATIONS,
        Some(max) => usize::try_from(*max.get_ref())
            .ok()
            .filter(|&max| max >= 1)
            .ok_or_else(|| {
                at(
                    max,
                    format!(
                        "spool_max_observations must be at least 1, got {}",
                        max.get_ref()
                    ),
                )
            })?,
    };
    if raw.checks.is_empty() {
        return Err((
            None,
            "no checks: add at least one [[check]] table (see the README's \"Run a probe\")".into(),
        ));
    }
    let mut checks = Vec::with_capacity(raw.checks.len());
    let mut first_line_of_service: HashMap<String, Range<usize>> = HashMap::new();
    for raw_check in &raw.checks {
        let check = validate_check(raw_check)?;
        if first_line_of_service.contains_key(check.service_id.as_str()) {
            return Err(at(
                &raw_check.get_ref().service_id,
                format!(
                    "service_id {} is already checked by an earlier [[check]]; a probe checks each service once",
                    check.service_id
                ),
            ));
        }
        first_line_of_service.insert(check.service_id.to_string(), raw_check.span());
        checks.push(check);
    }
    let tls = match &raw.tls {
        None => TlsFiles::default(),
        Some(tls) => validate_tls(tls, &raw.ledger, base_dir)?,
    };
    Ok(ProbeConfig {
        probe_id,
        key_file: base_dir.join(raw.key_file),
        ledger,
        spool_dir: base_dir.join(raw.spool_dir),
        spool_max_observations,
        checks,
        tls,
    })
}

fn validate_tls(
    spanned: &Spanned<RawTls>,
    ledger: &Spanned<String>,
    base_dir: &Path,
) -> Result<TlsFiles, Problem> {
    let raw = spanned.get_ref();
    if raw.cert_file.is_some() != raw.key_file.is_some() {
        return Err(at(
            spanned,
            "[tls] needs both cert_file (the probe's client certificate) and key_file (its private key), or neither",
        ));
    }
    if !ledger
        .get_ref()
        .to_ascii_lowercase()
        .starts_with("https://")
    {
        return Err(at(
            ledger,
            format!(
                "the [tls] table is set, but ledger {:?} is not an https:// address",
                ledger.get_ref()
            ),
        ));
    }
    let resolve = |path: &Option<PathBuf>| path.as_ref().map(|path| base_dir.join(path));
    Ok(TlsFiles {
        ca_file: resolve(&raw.ca_file),
        cert_file: resolve(&raw.cert_file),
        key_file: resolve(&raw.key_file),
    })
}

fn validate_ledger(ledger: &Spanned<String>) -> Result<String, Problem> {
    let url = Url::parse(ledger.get_ref()).map_err(|e| {
        at(
            ledger,
            format!("ledger {:?} is not a URL: {e}", ledger.get_ref()),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(at(
            ledger,
            format!(
                "ledger must be http://host:port or https://host:port, got {:?}",
                ledger.get_ref()
            ),
        ));
    }
    Ok(ledger.get_ref().clone())
}

fn validate_check(spanned: &Spanned<RawCheck>) -> Result<CheckConfig, Problem> {
    let raw = spanned.get_ref();
    let service_id = ServiceId::parse(raw.service_id.get_ref())
        .map_err(|e| at(&raw.service_id, e.to_string()))?;
    let interval = positive_duration(&raw.interval, "interval")?;
    let timeout = positive_duration(&raw.timeout, "timeout")?;
    if timeout > interval {
        return Err(at(
            &raw.timeout,
            format!(
                "timeout {} is longer than interval {}: a run would still be going when the next is due",
                raw.timeout.get_ref(),
                raw.interval.get_ref()
            ),
        ));
    }
    let max_latency = match &raw.max_latency {
        None => None,
        Some(text) => {
            let max_latency = positive_duration(text, "max_latency")?;
            if max_latency > timeout {
                return Err(at(
                    text,
                    format!(
                        "max_latency {} is longer than timeout {}: the run would time out first",
                        text.get_ref(),
                        raw.timeout.get_ref()
                    ),
                ));
            }
            Some(max_latency)
        }
    };
    let target = match raw.kind.get_ref() {
        CheckKind::Http => CheckTarget::Http(validate_http(spanned)?),
        CheckKind::Tcp => CheckTarget::Tcp {
            address: validate_tcp(spanned)?,
        },
    };
    Ok(CheckConfig {
        service_id,
        interval,
        timeout,
        max_latency,
        target,
    })
}

fn validate_http(spanned: &Spanned<RawCheck>) -> Result<HttpTarget, Problem> {
    let raw = spanned.get_ref();
    if let Some(address) = &raw.address {
        return Err(at(
            address,
            "`address` is for tcp checks; an http check takes `url`",
        ));
    }
    let Some(url_text) = &raw.url else {
        return Err(at(spanned, "an http check needs `url`"));
    };
    let url = Url::parse(url_text.get_ref()).map_err(|e| {
        at(
            url_text,
            format!("url {:?} is not a URL: {e}", url_text.get_ref()),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(at(
            url_text,
            format!(
                "url must be an http:// or https:// URL with a host, got {:?}",
                url_text.get_ref()
            ),
        ));
    }
    let expect_status = match &raw.expect_status {
        None => ExpectStatus::SuccessOrRedirect,
        Some(codes) if codes.get_ref().is_empty() => {
            return Err(at(
                codes,
                "expect_status is empty; leave it out to accept any 2xx or 3xx",
            ))
        }
        Some(codes) => {
            let mut accepted = Vec::with_capacity(codes.get_ref().len());
            for code in codes.get_ref() {
                if !(100..=599).contains(code.get_ref()) {
                    return Err(at(
                        code,
                        format!("{} is not an HTTP status code (100-599)", code.get_ref()),
                    ));
                }
                accepted.push(*code.get_ref());
            }
            ExpectStatus::OneOf(accepted)
        }
    };
    let body_contains = match &raw.body_contains {
        Some(text) if text.get_ref().is_empty() => {
            return Err(at(
                text,
                "body_contains is empty; leave it out to not check the body",
            ))
        }
        other => other.as_ref().map(|text| text.get_ref().clone()),
    };
    Ok(HttpTarget {
        url,
        expect_status,
        body_contains,
        follow_redirects: raw
            .follow_redirects
            .as_ref()
            .is_some_and(|follow| *follow.get_ref()),
    })
}

fn validate_tcp(spanned: &Spanned<RawCheck>) -> Result<String, Problem> {
    let raw = spanned.get_ref();
    let http_only: [(&str, Option<Range<usize>>); 4] = [
        ("url", raw.url.as_ref().map(Spanned::span)),
        (
            "expect_status",
            raw.expect_status.as_ref().map(Spanned::span),
        ),
        (
            "body_contains",
            raw.body_contains.as_ref().map(Spanned::span),
        ),
        (
            "follow_redirects",
            raw.follow_redirects.as_ref().map(Spanned::span),
        ),
    ];
    for (field, span) in http_only {
        if let Some(span) = span {
            return Err((
                Some(span),
                format!("`{field}` is for http checks; a tcp check takes `address`"),
            ));
        }
    }
    let Some(address) = &raw.address else {
        return Err(at(spanned, "a tcp check needs `address` (host:port)"));
    };
    let text = address.get_ref();
    let port_ok = text
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
    if !port_ok {
        return Err(at(
            address,
            format!("address must be host:port (e.g. portal.example.go.ke:443), got {text:?}"),
        ));
    }
    Ok(text.clone())
}

fn positive_duration(text: &Spanned<String>, field: &str) -> Result<Duration, Problem> {
    let duration = humantime::parse_duration(text.get_ref()).map_err(|e| {
        at(
            text,
            format!(
                "{field} {:?} is not a duration like \"30s\", \"500ms\" or \"2m\": {e}",
                text.get_ref()
            ),
        )
    })?;
    if duration.is_zero() {
        return Err(at(text, format!("{field} must be longer than zero")));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's example, verbatim.
    const EXAMPLE: &str = r#"probe_id = "nbo-1"
key_file = "probe.pem"                  # PKCS#8 PEM from `uptime-ledger keygen`
ledger = "http://127.0.0.1:50051"       # https:// with TLS when the ledger has it
spool_dir = "probe-spool"

[[check]]
service_id = "ecitizen.passport"
kind = "http"                           # http | tcp
url = "https://passport.example.go.ke/health"
interval = "30s"
timeout = "5s"
expect_status = [200, 204]              # default: any 2xx/3xx
body_contains = "ok"                    # optional
max_latency = "3s"                      # optional: slower counts as DOWN

[[check]]
service_id = "ecitizen.portal"
kind = "tcp"
address = "portal.example.go.ke:443"
interval = "30s"
timeout = "5s"
"#;

    fn parse_example(text: &str) -> Result<ProbeConfig, ConfigError> {
        parse(text, "probe.toml", Path::new("/etc/probe"))
    }

    /// The error text for `text`, which must be refused.
    fn refused(text: &str) -> String {
        match parse_example(text) {
            Ok(config) => panic!("accepted: {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let config = parse_example(EXAMPLE).unwrap();
        assert_eq!(config.probe_id.as_str(), "nbo-1");
        assert_eq!(config.key_file, Path::new("/etc/probe/probe.pem"));
        assert_eq!(config.spool_dir, Path::new("/etc/probe/probe-spool"));
        assert_eq!(config.ledger, "http://127.0.0.1:50051");
        assert_eq!(
            config.spool_max_observations,
            DEFAULT_SPOOL_MAX_OBSERVATIONS
        );
        assert_eq!(config.checks.len(), 2);
        let passport = &config.checks[0];
        assert_eq!(passport.interval, Duration::from_secs(30));
        assert_eq!(passport.timeout, Duration::from_secs(5));
        assert_eq!(passport.max_latency, Some(Duration::from_secs(3)));
        let CheckTarget::Http(http) = &passport.target else {
            panic!("{passport:?}")
        };
        assert_eq!(http.url.as_str(), "https://passport.example.go.ke/health");
        assert_eq!(http.expect_status, ExpectStatus::OneOf(vec![200, 204]));
        assert_eq!(http.body_contains.as_deref(), Some("ok"));
        assert!(!http.follow_redirects);
        assert_eq!(
            config.checks[1].target,
            CheckTarget::Tcp {
                address: "portal.example.go.ke:443".into()
            }
        );
    }

    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme
            .find("## Run a probe")
            .expect("the README has the section")..];
        let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + section[start..].find("```").expect("the block ends");
        let config = parse_example(&section[start..end]).unwrap();
        assert_eq!(config.checks.len(), 2);
        assert_eq!(config.checks[1].max_latency, Some(Duration::from_secs(1)));
    }

    #[test]
    fn absolute_paths_stay_absolute() {
        let text = EXAMPLE.replace("\"probe.pem\"", "\"/keys/probe.pem\"");
        assert_eq!(
            parse_example(&text).unwrap().key_file,
            Path::new("/keys/probe.pem")
        );
    }

    #[test]
    fn expect_status_defaults_to_any_success_or_redirect() {
        let expect = ExpectStatus::SuccessOrRedirect;
        for (code, up) in [
            (199, false),
            (200, true),
            (204, true),
            (301, true),
            (399, true),
            (400, false),
            (503, false),
        ] {
            assert_eq!(expect.accepts(code), up, "{code}");
        }
        assert!(!ExpectStatus::OneOf(vec![200]).accepts(204));
    }

    #[test]
    fn each_problem_is_refused_with_its_line() {
        // (what to change in the example, the line the error must name, words it must say)
        let cases: &[(&str, &str, usize, &str)] = &[
            (
                "interval = \"30s\"\ntimeout = \"5s\"\nexpect",
                "intervall = \"30s\"\ntimeout = \"5s\"\nexpect",
                10,
                "unknown field `intervall`",
            ),
            (
                "spool_dir = \"probe-spool\"",
                "spool_dir = \"probe-spool\"\nspool_size = 3",
                5,
                "unknown field `spool_size`",
            ),
            (
                "kind = \"tcp\"",
                "kind = \"udp\"",
                18,
                "unknown variant `udp`",
            ),
            (
                "probe_id = \"nbo-1\"",
                "probe_id = \"NBO 1\"",
                1,
                "probe_id",
            ),
            (
                "interval = \"30s\"\ntimeout = \"5s\"\nexpect",
                "interval = \"30 parsecs\"\ntimeout = \"5s\"\nexpect",
                10,
                "interval \"30 parsecs\" is not a duration",
            ),
            (
                "timeout = \"5s\"\nexpect",
                "timeout = \"0s\"\nexpect",
                11,
                "timeout must be longer than zero",
            ),
            (
                "timeout = \"5s\"\nexpect",
                "timeout = \"1m\"\nexpect",
                11,
                "timeout 1m is longer than interval 30s",
            ),
            (
                "max_latency = \"3s\"",
                "max_latency = \"6s\"",
                14,
                "max_latency 6s is longer than timeout 5s",
            ),
            (
                "[200, 204]",
                "[200, 2040]",
                12,
                "2040 is not an HTTP status code",
            ),
            ("[200, 204]", "[]", 12, "expect_status is empty"),
            (
                "body_contains = \"ok\"",
                "body_contains = \"\"",
                13,
                "body_contains is empty",
            ),
            (
                "url = \"https://passport.example.go.ke/health\"",
                "url = \"ftp://passport.example.go.ke/\"",
                9,
                "url must be an http:// or https:// URL",
            ),
            (
                "url = \"https://passport.example.go.ke/health\"",
                "address = \"passport.example.go.ke:443\"",
                9,
                "`address` is for tcp checks",
            ),
            (
                "url = \"https://passport.example.go.ke/health\"\n",
                "",
                6,
                "an http check needs `url`",
            ),
            (
                "address = \"portal.example.go.ke:443\"",
                "address = \"portal.example.go.ke\"",
                19,
                "address must be host:port",
            ),
            (
                "address = \"portal.example.go.ke:443\"",
                "url = \"https://portal.example.go.ke/\"",
                19,
                "`url` is for http checks",
            ),
            (
                "service_id = \"ecitizen.portal\"",
                "service_id = \"ecitizen.passport\"",
                17,
                "already checked",
            ),
            (
                "ledger = \"http://127.0.0.1:50051\"",
                "ledger = \"127.0.0.1:50051\"",
                3,
                "ledger",
            ),
            (
                "spool_dir = \"probe-spool\"",
                "spool_dir = \"probe-spool\"\nspool_max_observations = 0",
                5,
                "at least 1",
            ),
            (
                "spool_dir = \"probe-spool\"",
                "spool_dir = \"probe-spool\"\nspool_max_observations = -5",
                5,
                "spool_max_observations must be at least 1, got -5",
            ),
            ("probe_id = \"nbo-1\"", "probe_id = \"nbo-1", 1, ""),
        ];
        for (from, to, line, words) in cases {
            assert!(
                EXAMPLE.contains(from),
                "the case must change the example: {from:?}"
            );
            let message = refused(&EXAMPLE.replacen(from, to, 1));
            assert!(
                message.starts_with(&format!("probe.toml line {line}: ")),
                "{to:?}: expected line {line}: {message}"
            );
            assert!(
                message.contains(words),
                "{to:?}: expected {words:?}: {message}"
            );
        }
    }

    #[test]
    fn a_config_without_checks_or_required_keys_is_refused() {
        let no_checks = EXAMPLE.split("[[check]]").next().unwrap();
        assert!(refused(no_checks).contains("no checks"));
        let no_key = EXAMPLE.replacen("key_file = \"probe.pem\"", "", 1);
        assert!(refused(&no_key).contains("missing field `key_file`"));
        let no_interval = EXAMPLE.replacen(
            "interval = \"30s\"\ntimeout = \"5s\"\nexpect",
            "timeout = \"5s\"\nexpect",
            1,
        );
        let message = refused(&no_interval);
        assert!(message.contains("missing field `interval`"), "{message}");
        assert!(message.starts_with("probe.toml line 6: "), "{message}");
    }

    #[test]
    fn the_tls_table_names_files_relative_to_the_config() {
        let text = EXAMPLE.replacen("http://127.0.0.1:50051", "https://ledger.example.go.ke:50051", 1)
            + "\n[tls]\nca_file = \"ledger-ca.pem\"\ncert_file = \"/certs/nbo-1.pem\"\nkey_file = \"nbo-1-key.pem\"\n";
        let config = parse_example(&text).unwrap();
        assert_eq!(
            config.tls,
            TlsFiles {
                ca_file: Some(PathBuf::from("/etc/probe/ledger-ca.pem")),
                cert_file: Some(PathBuf::from("/certs/nbo-1.pem")),
                key_file: Some(PathBuf::from("/etc/probe/nbo-1-key.pem")),
            }
        );
        // The signing key stays the top-level key_file.
        assert_eq!(config.key_file, Path::new("/etc/probe/probe.pem"));
        let ca_only = EXAMPLE.replacen("http://127.0.0.1:50051", "https://ledger:50051", 1)
            + "\n[tls]\nca_file = \"ca.pem\"\n";
        let config = parse_example(&ca_only).unwrap();
        assert_eq!(config.tls.ca_file, Some(PathBuf::from("/etc/probe/ca.pem")));
        assert_eq!(config.tls.cert_file, None);
        assert_eq!(parse_example(EXAMPLE).unwrap().tls, TlsFiles::default());
    }

    #[test]
    fn tls_problems_are_refused_with_their_line() {
        let https = EXAMPLE.replacen("http://127.0.0.1:50051", "https://ledger:50051", 1);
        let lines = EXAMPLE.lines().count();
        let cases: Vec<(String, usize, &str)> = vec![
            (
                format!("{https}\n[tls]\ncert_file = \"nbo-1.pem\"\n"),
                lines + 2,
                "[tls] needs both cert_file (the probe's client certificate) and key_file",
            ),
            (
                format!("{https}\n[tls]\nkey_file = \"nbo-1-key.pem\"\n"),
                lines + 2,
                "or neither",
            ),
            (
                format!("{https}\n[tls]\nca_file = \"ca.pem\"\nca_flie = \"x\"\n"),
                lines + 4,
                "unknown field `ca_flie`",
            ),
            (
                format!("{EXAMPLE}\n[tls]\nca_file = \"ca.pem\"\n"),
                3,
                "the [tls] table is set, but ledger \"http://127.0.0.1:50051\" is not an https:// address",
            ),
        ];
        for (text, line, words) in cases {
            let message = refused(&text);
            assert!(message.contains(words), "expected {words:?}: {message}");
            assert!(
                message.starts_with(&format!("probe.toml line {line}: ")),
                "expected line {line}: {message}"
            );
        }
    }

    #[test]
    fn lines_are_counted_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
