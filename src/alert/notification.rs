//! A transition of an alert (it fired, it resolved) and what each receiver is sent for it:
//! the alert as JSON (one form for the JSON API, webhooks and Alertmanager annotations), the
//! Standard Webhooks body, the Alertmanager `POST /api/v2/alerts` body, and the stable
//! `webhook-id` of a transition. Pure.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::evaluate::{Alert, BurnFigure, Figures};
use crate::domain::format_millis;
use crate::projection::State;

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Fired,
    Resolved,
}

impl Transition {
    /// The Standard Webhooks event `type`.
    pub fn event_type(self) -> &'static str {
        match self {
            Transition::Fired => "alert.fired",
            Transition::Resolved => "alert.resolved",
        }
    }
}

/// The prefix an alert was computed from, named in every body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix<'a> {
    pub tree_size: u64,
    /// The signed checkpoint note at `tree_size`.
    pub checkpoint: &'a str,
}

/// The alert as JSON: `alert` (the rule), `severity`, `service_id`, `agency`, `since`,
/// `until` (RFC 3339; `null` while firing), `figures`, and `link` when one is configured.
pub fn alert_json(alert: &Alert, link: Option<&str>) -> Value {
    let mut value = json!({
        "alert": alert.rule.name(),
        "severity": alert.rule.severity().name(),
        "service_id": alert.service_id,
        "agency": alert.agency,
        "since": format_millis(alert.since),
        "until": alert.until.map(format_millis),
        "figures": figures_json(&alert.figures),
    });
    if let Some(link) = link {
        value["link"] = Value::String(service_link(link, &alert.service_id));
    }
    value
}

/// The status page of a service under `link`.
pub fn service_link(link: &str, service_id: &str) -> String {
    format!("{}/services/{service_id}", link.trim_end_matches('/'))
}

fn figures_json(figures: &Figures) -> Value {
    match figures {
        Figures::State {
            state,
            state_since,
            for_ms,
        } => json!({
            "state": if *state == State::Down { "down" } else { "unknown" },
            "state_since": format_millis(*state_since),
            "for_ms": for_ms,
        }),
        Figures::Burn {
            slo_target,
            threshold,
            long,
            short,
        } => json!({
            "slo_target": slo_target,
            "threshold": threshold,
            "long": burn_json(long),
            "short": burn_json(short),
        }),
    }
}

/// An infinite burn rate (no budget) is written as the string `"+Inf"`, as Prometheus does.
fn burn_json(figure: &BurnFigure) -> Value {
    let rate = match figure.burn_rate {
        None => Value::Null,
        Some(rate) if rate.is_finite() => json!(rate),
        Some(_) => json!("+Inf"),
    };
    json!({
        "window_ms": figure.window_ms,
        "up_ms": figure.up_ms,
        "down_ms": figure.down_ms,
        "burn_rate": rate,
    })
}

/// The `webhook-id` of a transition: the same for the same alert episode (service, rule,
/// `since`) and transition, however often it is computed, so receivers can deduplicate.
pub fn webhook_id(alert: &Value, transition: Transition) -> String {
    let mut hasher = Sha256::new();
    for field in ["service_id", "alert", "since"] {
        hasher.update(alert[field].as_str().unwrap_or_default().as_bytes());
        hasher.update([0]);
    }
    hasher.update(transition.event_type().as_bytes());
    format!("msg_{}", &hex::encode(hasher.finalize())[..32])
}

/// The Standard Webhooks body: `type`, `timestamp` (when the transition was seen) and
/// `data`: the alert, `tree_size` and `checkpoint`.
pub fn webhook_body(alert: &Value, transition: Transition, at: i64, prefix: &Prefix) -> String {
    json!({
        "type": transition.event_type(),
        "timestamp": format_millis(at),
        "data": {
            "alert": alert,
            "tree_size": prefix.tree_size,
            "checkpoint": prefix.checkpoint,
        },
    })
    .to_string()
}

/// Alertmanager's `POST /api/v2/alerts` body for these alerts: labels `alertname` (the
/// rule), `service_id`, `agency`, `severity`; annotations with the figures, the prefix and
/// the link; `startsAt` the alert's `since`; `endsAt` its `until` once resolved.
pub fn alertmanager_body<'a>(alerts: impl IntoIterator<Item = (&'a Value, Prefix<'a>)>) -> String {
    let alerts: Vec<Value> = alerts
        .into_iter()
        .map(|(alert, prefix)| {
            let service_id = alert["service_id"].as_str().unwrap_or_default();
            let rule = alert["alert"].as_str().unwrap_or_default();
            let mut value = json!({
                "labels": {
                    "alertname": rule,
                    "service_id": service_id,
                    "agency": alert["agency"],
                    "severity": alert["severity"],
                },
                "annotations": {
                    "summary": format!("{rule} of {service_id}"),
                    "description": summary(alert),
                    "figures": alert["figures"].to_string(),
                    "tree_size": prefix.tree_size.to_string(),
                    "checkpoint": prefix.checkpoint,
                },
                "startsAt": alert["since"],
            });
            if let Some(link) = alert["link"].as_str() {
                value["annotations"]["link"] = json!(link);
                value["generatorURL"] = json!(link);
            }
            if let Some(until) = alert["until"].as_str() {
                value["endsAt"] = json!(until);
            }
            value
        })
        .collect();
    Value::Array(alerts).to_string()
}

/// One sentence with the numbers, for people.
fn summary(alert: &Value) -> String {
    let figures = &alert["figures"];
    let service_id = alert["service_id"].as_str().unwrap_or_default();
    match figures["state"].as_str() {
        Some(state) => format!(
            "{service_id} is {} since {} (for ≥ {} ms)",
            state.to_uppercase(),
            figures["state_since"].as_str().unwrap_or_default(),
            figures["for_ms"]
        ),
        None => format!(
            "{service_id} burns its error budget at {} over {} ms and {} over {} ms (threshold {}, SLO {})",
            figures["long"]["burn_rate"],
            figures["long"]["window_ms"],
            figures["short"]["burn_rate"],
            figures["short"]["window_ms"],
            figures["threshold"],
            figures["slo_target"]
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Rule;

    fn outage() -> Alert {
        Alert {
            service_id: "tax".into(),
            agency: "Revenue".into(),
            rule: Rule::Outage,
            since: 60_000,
            until: None,
            figures: Figures::State {
                state: State::Down,
                state_since: 0,
                for_ms: 60_000,
            },
        }
    }

    #[test]
    fn a_webhook_id_names_the_episode_and_the_transition() {
        let fired = alert_json(&outage(), None);
        let id = webhook_id(&fired, Transition::Fired);
        assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
        let mut resolved = fired.clone();
        resolved["until"] = json!(format_millis(120_000));
        assert_eq!(webhook_id(&resolved, Transition::Fired), id);
        assert_ne!(webhook_id(&resolved, Transition::Resolved), id);
        let mut later = outage();
        later.since = 61_000;
        assert_ne!(webhook_id(&alert_json(&later, None), Transition::Fired), id);
    }

    #[test]
    fn bodies_name_the_prefix_and_carry_the_labels() {
        let alert = alert_json(&outage(), Some("https://status.example.gov/"));
        assert_eq!(alert["link"], "https://status.example.gov/services/tax");
        let prefix = Prefix {
            tree_size: 42,
            checkpoint: "note",
        };
        let body: Value =
            serde_json::from_str(&webhook_body(&alert, Transition::Fired, 61_000, &prefix))
                .unwrap();
        assert_eq!(body["type"], "alert.fired");
        assert_eq!(body["data"]["tree_size"], 42);
        assert_eq!(body["data"]["checkpoint"], "note");
        assert_eq!(body["data"]["alert"]["figures"]["state"], "down");
        let am: Value = serde_json::from_str(&alertmanager_body([(&alert, prefix)])).unwrap();
        assert_eq!(
            am[0]["labels"],
            json!({"alertname": "outage", "service_id": "tax", "agency": "Revenue", "severity": "page"})
        );
        assert_eq!(am[0]["startsAt"], "1970-01-01T00:01:00.000Z");
        assert!(am[0].get("endsAt").is_none());
        assert_eq!(am[0]["annotations"]["tree_size"], "42");
    }
}
