//! The `--alerts` file (TOML): the alert policy and where notifications go. Pure apart
//! from [`load`], which reads the file.
//!
//! A file is refused as a whole at start when anything in it is wrong, naming the line
//! (`alerts.toml line 7: unknown rule "outgae", expected one of …`); unknown keys are errors.
//!
//! ```toml
//! for = "1m"                    # default `for` of outage and no_data
//! rules = ["outage", "no_data", "slo_burn_1h", "slo_burn_6h", "slo_burn_3d"]
//! link = "https://status.example.gov"   # where annotations point (the status page)
//!
//! [delivery]
//! expiry = "24h"                # give up on a notification this long after its transition
//! repost_interval = "1m"        # Alertmanager: firing alerts are posted again this often
//! evaluation_interval = "5s"    # besides every new checkpoint
//! timeout = "10s"               # per HTTP attempt
//! max_backoff = "5m"            # retries wait 1 s, 2 s, 4 s, … up to this (with jitter)
//!
//! [[receiver]]
//! name = "ops"
//! alertmanager = "http://127.0.0.1:9093"
//!
//! [[receiver]]
//! name = "hooks"
//! webhook = "https://hooks.example.gov/uptime"
//! secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"   # optional: also sign `v1,` (HMAC)
//!
//! [service.tax-portal]
//! for = "5m"
//! rules = ["outage"]
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use reqwest::Url;
use serde::Deserialize;
use toml::Spanned;

use super::rules::{AlertPolicy, Rule, ServiceRules};
use crate::domain::ServiceId;
use crate::probe::config::line_of;

/// A validated alerts file.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    pub policy: AlertPolicy,
    /// Prepended to `/services/ID` in annotations and bodies; `None`: no link.
    pub link: Option<String>,
    pub delivery: DeliveryConfig,
    /// Names are unique.
    pub receivers: Vec<Receiver>,
}

/// How the outbox delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    pub expiry: Duration,
    pub repost_interval: Duration,
    pub evaluation_interval: Duration,
    pub timeout: Duration,
    pub max_backoff: Duration,
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    /// Unique in the file; outbox entries are kept per receiver name.
    pub name: String,
    pub kind: ReceiverKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverKind {
    /// An Alertmanager's base URL; alerts go to `BASE/api/v2/alerts`.
    Alertmanager { url: Url },
    /// A Standard Webhooks endpoint, with the optional symmetric secret (decoded bytes).
    Webhook { url: Url, secret: Option<Vec<u8>> },
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            expiry: Duration::from_secs(24 * 3600),
            repost_interval: Duration::from_secs(60),
            evaluation_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl Default for AlertsConfig {
    /// The default policy and no receivers: alerts are computed and served, not sent.
    fn default() -> Self {
        AlertsConfig {
            policy: AlertPolicy::default(),
            link: None,
            delivery: DeliveryConfig::default(),
            receivers: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the alerts file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `line` is 1-based; `None` when the problem is the file as a whole.
    #[error("{file}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Invalid {
        file: String,
        line: Option<usize>,
        message: String,
    },
}

/// Reads and validates the alerts file at `path`.
pub fn load(path: &Path) -> Result<AlertsConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates `text`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<AlertsConfig, ConfigError> {
    let problem = |span: Option<Range<usize>>, message: String| ConfigError::Invalid {
        file: file.to_owned(),
        line: span.map(|span| line_of(text, span.start)),
        message,
    };
    let raw: RawConfig =
        toml::from_str(text).map_err(|error| problem(error.span(), error.message().to_owned()))?;
    validate(raw).map_err(|(span, message)| problem(span, message))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "for")]
    for_: Option<Spanned<String>>,
    rules: Option<Spanned<Vec<Spanned<String>>>>,
    link: Option<Spanned<String>>,
    delivery: Option<RawDelivery>,
    #[serde(rename = "receiver", default)]
    receivers: Vec<Spanned<RawReceiver>>,
    #[serde(rename = "service", default)]
    services: BTreeMap<Spanned<String>, Spanned<RawService>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    expiry: Option<Spanned<String>>,
    repost_interval: Option<Spanned<String>>,
    evaluation_interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    max_backoff: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    name: Spanned<String>,
    alertmanager: Option<Spanned<String>>,
    webhook: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    #[serde(rename = "for")]
    for_: Option<Spanned<String>>,
    rules: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A problem and where it is.
type Problem = (Option<Range<usize>>, String);

fn at<T>(spanned: &Spanned<T>, message: impl Into<String>) -> Problem {
    (Some(spanned.span()), message.into())
}

fn validate(raw: RawConfig) -> Result<AlertsConfig, Problem> {
    let mut policy = AlertPolicy::default();
    if let Some(for_) = &raw.for_ {
        policy.defaults.for_ms = duration_ms(for_, "for", true)?;
    }
    if let Some(rules) = &raw.rules {
        policy.defaults.enabled = rule_list(rules)?;
    }
    for (service_id, service) in &raw.services {
        ServiceId::parse(service_id.get_ref()).map_err(|e| {
            at(
                service_id,
                format!("service {:?}: {e}", service_id.get_ref()),
            )
        })?;
        let service = service.get_ref();
        let rules = ServiceRules {
            for_ms: match &service.for_ {
                Some(for_) => duration_ms(for_, "for", true)?,
                None => policy.defaults.for_ms,
            },
            enabled: match &service.rules {
                Some(rules) => rule_list(rules)?,
                None => policy.defaults.enabled.clone(),
            },
        };
        policy.services.insert(service_id.get_ref().clone(), rules);
    }
    let link = match &raw.link {
        Some(link) => {
            let url = http_url(link, "link")?;
            Some(url.as_str().trim_end_matches('/').to_owned())
        }
        None => None,
    };
    let mut delivery = DeliveryConfig::default();
    if let Some(raw) = &raw.delivery {
        let field = |value: &Option<Spanned<String>>, name: &str, default: Duration| match value {
            Some(value) => {
                duration_ms(value, name, false).map(|ms| Duration::from_millis(ms.unsigned_abs()))
            }
            None => Ok(default),
        };
        delivery = DeliveryConfig {
            expiry: field(&raw.expiry, "expiry", delivery.expiry)?,
            repost_interval: field(
                &raw.repost_interval,
                "repost_interval",
                delivery.repost_interval,
            )?,
            evaluation_interval: field(
                &raw.evaluation_interval,
                "evaluation_interval",
                delivery.evaluation_interval,
            )?,
            timeout: field(&raw.timeout, "timeout", delivery.timeout)?,
            max_backoff: field(&raw.max_backoff, "max_backoff", delivery.max_backoff)?,
        };
    }
    let mut receivers: Vec<Receiver> = Vec::new();
    for spanned in &raw.receivers {
        let receiver = validate_receiver(spanned)?;
        if receivers.iter().any(|r| r.name == receiver.name) {
            return Err(at(
                &spanned.get_ref().name,
                format!("a second receiver named {:?}", receiver.name),
            ));
        }
        receivers.push(receiver);
    }
    Ok(AlertsConfig {
        policy,
        link,
        delivery,
        receivers,
    })
}

fn validate_receiver(spanned: &Spanned<RawReceiver>) -> Result<Receiver, Problem> {
    let raw = spanned.get_ref();
    let name = raw.name.get_ref();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(at(
            &raw.name,
            "a receiver name is 1–64 characters of letters, digits, `.`, `_`, `-`",
        ));
    }
    let kind = match (&raw.alertmanager, &raw.webhook) {
        (Some(url), None) => {
            if let Some(secret) = &raw.secret {
                return Err(at(
                    secret,
                    "`secret` is for webhook receivers (Alertmanager is not signed)",
                ));
            }
            ReceiverKind::Alertmanager {
                url: http_url(url, "alertmanager")?,
            }
        }
        (None, Some(url)) => ReceiverKind::Webhook {
            url: http_url(url, "webhook")?,
            secret: raw.secret.as_ref().map(webhook_secret).transpose()?,
        },
        _ => {
            return Err(at(
                spanned,
                format!(
                    "receiver {name:?} needs exactly one of `alertmanager` or `webhook` (a URL)"
                ),
            ))
        }
    };
    Ok(Receiver {
        name: name.clone(),
        kind,
    })
}

/// A Standard Webhooks symmetric secret: `whsec_` and base64 of 24 to 64 bytes.
fn webhook_secret(secret: &Spanned<String>) -> Result<Vec<u8>, Problem> {
    let encoded = secret
        .get_ref()
        .strip_prefix("whsec_")
        .unwrap_or(secret.get_ref());
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| at(secret, "`secret` must be `whsec_` followed by base64"))?;
    if !(24..=64).contains(&bytes.len()) {
        return Err(at(secret, "`secret` must decode to 24–64 bytes"));
    }
    Ok(bytes)
}

fn http_url(text: &Spanned<String>, field: &str) -> Result<Url, Problem> {
    let url =
        Url::parse(text.get_ref()).map_err(|e| at(text, format!("`{field}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(at(
            text,
            format!("`{field}` must be an http:// or https:// URL with a host"),
        ));
    }
    Ok(url)
}

fn rule_list(rules: &Spanned<Vec<Spanned<String>>>) -> Result<Vec<Rule>, Problem> {
    let mut enabled = Vec::new();
    for name in rules.get_ref() {
        let rule = Rule::parse(name.get_ref()).ok_or_else(|| {
            let known: Vec<&str> = Rule::ALL.iter().map(|rule| rule.name()).collect();
            at(
                name,
                format!(
                    "unknown rule {:?}, expected one of {}",
                    name.get_ref(),
                    known.join(", ")
                ),
            )
        })?;
        if enabled.contains(&rule) {
            return Err(at(
                name,
                format!("rule {:?} is listed twice", name.get_ref()),
            ));
        }
        enabled.push(rule);
    }
    enabled.sort();
    Ok(enabled)
}

/// A duration like `90s` or `5m`, in milliseconds; zero only when `zero_allowed`.
fn duration_ms(text: &Spanned<String>, field: &str, zero_allowed: bool) -> Result<i64, Problem> {
    let duration = humantime::parse_duration(text.get_ref()).map_err(|e| {
        at(
            text,
            format!("`{field}` is not a duration like 90s or 5m: {e}"),
        )
    })?;
    if duration.is_zero() && !zero_allowed {
        return Err(at(text, format!("`{field}` must be more than zero")));
    }
    i64::try_from(duration.as_millis())
        .ok()
        .filter(|&ms| ms <= 366 * 24 * 3_600_000)
        .ok_or_else(|| at(text, format!("`{field}` must be at most a year")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        parse(text, "alerts.toml").unwrap_err().to_string()
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|line| !line.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|line| !line.starts_with("//! ```"))
            .map(|line| format!("{}\n", line.trim_start_matches("//!").trim_start()))
            .collect();
        let config = parse(&example, "example").unwrap();
        assert_eq!(config.policy.defaults.for_ms, 60_000);
        assert_eq!(config.policy.defaults.enabled, Rule::ALL.to_vec());
        assert_eq!(
            config.policy.rules_for("tax-portal"),
            &ServiceRules {
                for_ms: 300_000,
                enabled: vec![Rule::Outage]
            }
        );
        assert_eq!(config.link.as_deref(), Some("https://status.example.gov"));
        assert_eq!(config.delivery.expiry, Duration::from_secs(86_400));
        assert_eq!(config.receivers.len(), 2);
        assert!(matches!(
            &config.receivers[1].kind,
            ReceiverKind::Webhook { secret: Some(secret), .. } if secret.len() == 24
        ));
    }

    #[test]
    fn an_empty_file_is_the_default_policy_with_no_receivers() {
        assert_eq!(parse("", "alerts.toml").unwrap(), AlertsConfig::default());
    }

    #[test]
    fn each_problem_is_refused_with_its_line() {
        let cases = [
            ("for = \"1m\"\nfro = 3\n", "alerts.toml line 2: unknown field `fro`"),
            ("\nrules = [\"outgae\"]\n", "alerts.toml line 2: unknown rule \"outgae\", expected one of outage, no_data, slo_burn_1h, slo_burn_6h, slo_burn_3d"),
            ("rules = [\"outage\",\n \"outage\"]\n", "alerts.toml line 2: rule \"outage\" is listed twice"),
            ("for = \"soon\"\n", "alerts.toml line 1: `for` is not a duration like 90s or 5m"),
            ("[delivery]\nexpiry = \"0s\"\n", "alerts.toml line 2: `expiry` must be more than zero"),
            ("[delivery]\nretries = 3\n", "alerts.toml line 2: unknown field `retries`"),
            ("[[receiver]]\nname = \"a\"\n", "alerts.toml line 1: receiver \"a\" needs exactly one of `alertmanager` or `webhook`"),
            ("[[receiver]]\nname = \"a\"\nwebhook = \"ftp://x\"\n", "alerts.toml line 3: `webhook` must be an http:// or https:// URL"),
            ("[[receiver]]\nname = \"a\"\nwebhook = \"http://x\"\nsecret = \"whsec_!!\"\n", "alerts.toml line 4: `secret` must be `whsec_` followed by base64"),
            ("[[receiver]]\nname = \"a\"\nwebhook = \"http://x\"\nsecret = \"whsec_AAAA\"\n", "alerts.toml line 4: `secret` must decode to 24–64 bytes"),
            ("[[receiver]]\nname = \"a\"\nalertmanager = \"http://x\"\nsecret = \"whsec_AAAA\"\n", "alerts.toml line 4: `secret` is for webhook receivers"),
            ("[[receiver]]\nname = \"a\"\nwebhook = \"http://x\"\n[[receiver]]\nname = \"a\"\nwebhook = \"http://y\"\n", "alerts.toml line 5: a second receiver named \"a\""),
            ("[[receiver]]\nname = \"a b\"\nwebhook = \"http://x\"\n", "alerts.toml line 2: a receiver name is"),
            ("[service.\"Tax Portal\"]\nfor = \"1m\"\n", "alerts.toml line 1: service \"Tax Portal\""),
            ("[service.tax]\nfor = \"1m\"\ncolour = 1\n", "alerts.toml line 3: unknown field `colour`"),
            ("link = \"not a url\"\n", "alerts.toml line 1: `link` is not a URL"),
            ("for = 60\n", "alerts.toml line 1: invalid type"),
        ];
        for (text, expected) in cases {
            let message = refused(text);
            assert!(message.starts_with(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn a_service_override_inherits_what_it_does_not_say() {
        let config = parse(
            "for = \"2m\"\nrules = [\"outage\", \"no_data\"]\n[service.tax]\nrules = [\"no_data\"]\n[service.pay]\nfor = \"0s\"\n",
            "alerts.toml",
        )
        .unwrap();
        assert_eq!(config.policy.rules_for("tax").for_ms, 120_000);
        assert_eq!(config.policy.rules_for("tax").enabled, vec![Rule::NoData]);
        assert_eq!(config.policy.rules_for("pay").for_ms, 0);
        assert_eq!(
            config.policy.rules_for("pay").enabled,
            vec![Rule::Outage, Rule::NoData]
        );
        assert_eq!(config.policy.rules_for("other").for_ms, 120_000);
    }
}
