//! Alerts: outage, no-data and SLO burn-rate alerts computed from the same projection as
//! reports, so an alert's history is a pure function of the log prefix (and the policy)
//! that anyone holding the log can recompute; delivery is the only side effect.
//!
//! # Layout
//!
//! - [`rules`]: the rules and the policy (which rules, `for`, burn windows) — plain values;
//! - [`evaluate`]: what fires at an instant and what fired over a window — pure;
//! - [`config`]: the `--alerts` TOML file → a policy and receivers, errors naming the line;
//! - [`notification`]: a transition (fired / resolved) and the bodies each receiver gets;
//! - [`signing`]: Standard Webhooks signatures (`v1a,` Ed25519, `v1,` HMAC-SHA256);
//! - [`outbox`]: the durable outbox in its own sled database, `DATA_DIR/alerts`;
//! - [`notifier`]: `Alerting`: the task that evaluates each prefix into the outbox;
//! - `delivery`: one receiver's delivery from the outbox: order, retries, re-posts.

pub mod config;
mod delivery;
pub mod evaluate;
pub mod notification;
pub mod notifier;
pub mod outbox;
pub mod rules;
pub mod signing;

#[cfg(test)]
mod tests;

pub use evaluate::{
    burn_rate, firing_at, firing_for, firing_holds_until, history, Alert, BurnFigure, Figures,
};
pub use rules::{AlertPolicy, BurnWindows, Rule, ServiceRules, Severity};
