//! The server's answers held against the ones recomputed from the audited log, field by
//! field, and a checkpoint saved earlier against the latest one.

use super::{AuditError, LogPrefix};
use crate::alert::notification::alert_json;
use crate::alert::Alert;
use crate::checkpoint::{Checkpoint, NoteVerifier};
use crate::domain::{format_millis, Millis, PreviousLog};
use crate::merkle::{self, Hash};
use crate::projection::{AvailabilityReport, Incident};

/// Compares a served availability report with the recomputed one, field by field (the
/// fields of its JSON form, in order); the error names the first field that differs and
/// both values.
pub fn compare_report(
    service_id: &str,
    served: &AvailabilityReport,
    recomputed: &AvailabilityReport,
) -> Result<(), AuditError> {
    if served == recomputed {
        return Ok(());
    }
    let fields = |report| match serde_json::to_value(report) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => unreachable!("an availability report serializes to a JSON object"),
    };
    let (served, recomputed) = (fields(served), fields(recomputed));
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::Null => "absent".to_owned(),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    for ((field, served), recomputed) in served.iter().zip(recomputed.values()) {
        if served != recomputed {
            return Err(mismatch(
                service_id,
                format!("availability report's {field}"),
                text(served),
                text(recomputed),
            ));
        }
    }
    // Equal in JSON but not as values: a non-finite number (JSON writes NaN and ±inf as
    // null, as it writes an absent one). The recomputed report never holds one.
    Err(mismatch(
        service_id,
        "availability report".to_owned(),
        format!("{served:?}"),
        format!("{recomputed:?}"),
    ))
}

/// Compares a served incident list (and the window it resolved) with the recomputed one.
pub fn compare_incidents(
    service_id: &str,
    served_window: (Millis, Millis),
    served: &[Incident],
    recomputed_window: (Millis, Millis),
    recomputed: &[Incident],
) -> Result<(), AuditError> {
    let time = |millis| format_millis(millis);
    first_difference(
        service_id,
        "incident list's",
        [
            (
                "window start",
                time(served_window.0),
                time(recomputed_window.0),
            ),
            (
                "window end",
                time(served_window.1),
                time(recomputed_window.1),
            ),
            (
                "number of incidents",
                served.len().to_string(),
                recomputed.len().to_string(),
            ),
        ],
    )?;
    for (n, (served, recomputed)) in served.iter().zip(recomputed).enumerate() {
        let describe = |incident: &Incident| {
            format!(
                "[{}, {}) open={} probes=[{}]",
                time(incident.start),
                time(incident.end),
                incident.open,
                incident.probes.join(",")
            )
        };
        if served != recomputed {
            return Err(mismatch(
                service_id,
                format!("incident {n}"),
                describe(served),
                describe(recomputed),
            ));
        }
    }
    Ok(())
}

/// Compares served alerts (`what`: "firing alerts" or "alert history") with the
/// recomputed ones, one by one in their JSON form; the error names the first that differs.
pub fn compare_alerts(
    service_id: &str,
    what: &str,
    served: &[Alert],
    recomputed: &[Alert],
) -> Result<(), AuditError> {
    let describe = |alert: &Alert| alert_json(alert, None).to_string();
    first_difference(
        service_id,
        what,
        [(
            "count",
            served.len().to_string(),
            recomputed.len().to_string(),
        )],
    )?;
    for (n, (served, recomputed)) in served.iter().zip(recomputed).enumerate() {
        if served != recomputed {
            return Err(mismatch(
                service_id,
                format!("{what} {n}"),
                describe(served),
                describe(recomputed),
            ));
        }
    }
    Ok(())
}

/// Checks that an answer names the prefix that was audited.
pub fn compare_prefix(
    service_id: &str,
    answer: &str,
    served: &LogPrefix,
    audited: &LogPrefix,
) -> Result<(), AuditError> {
    first_difference(
        service_id,
        answer,
        [
            (
                "tree_size",
                served.tree_size.to_string(),
                audited.tree_size.to_string(),
            ),
            (
                "checkpoint",
                format!("{:?}", served.checkpoint),
                format!("{:?}", audited.checkpoint),
            ),
        ],
    )
}

fn first_difference<const N: usize>(
    service_id: &str,
    answer: &str,
    fields: [(&str, String, String); N],
) -> Result<(), AuditError> {
    match fields.into_iter().find(|(_, served, ours)| served != ours) {
        Some((field, served, recomputed)) => Err(mismatch(
            service_id,
            format!("{answer} {field}"),
            served,
            recomputed,
        )),
        None => Ok(()),
    }
}

fn mismatch(service_id: &str, field: String, served: String, recomputed: String) -> AuditError {
    AuditError::ReportMismatch {
        service_id: service_id.to_owned(),
        field,
        served,
        recomputed,
    }
}

/// Checks that `latest` extends `saved` (both already verified against the pinned key),
/// given the RFC 9162 consistency proof between them (empty for equal sizes).
pub fn check_consistency(
    saved: &Checkpoint,
    latest: &Checkpoint,
    proof: &[Hash],
) -> Result<(), AuditError> {
    if saved.tree_size > latest.tree_size {
        return Err(AuditError::RolledBack {
            saved: saved.tree_size,
            latest: latest.tree_size,
        });
    }
    merkle::verify_consistency(
        saved.tree_size,
        latest.tree_size,
        &saved.root_hash,
        &latest.root_hash,
        proof,
    )
    .map_err(|e| AuditError::Inconsistent {
        saved: saved.tree_size,
        latest: latest.tree_size,
        detail: e.to_string(),
    })
}

/// Checks that the log a genesis says it continues is the one the auditor pinned and that
/// the new log starts exactly where the previous one ended. `named` is the previous log's
/// checkpoint at the size the genesis names and `latest` its latest one (both verified with
/// `pinned`, and proven consistent by the caller).
pub fn check_succession(
    previous: Option<&PreviousLog>,
    pinned: &NoteVerifier,
    named: &Checkpoint,
    latest: &Checkpoint,
) -> Result<(), AuditError> {
    let previous = previous.ok_or(AuditError::NoPreviousLog)?;
    let claimed = format!(
        "{} (key {}) at tree size {} with root {}",
        previous.origin,
        hex::encode(previous.ledger_public_key.as_bytes()),
        previous.tree_size,
        hex::encode(previous.root_hash)
    );
    let broken = |actual: String| AuditError::BrokenChain {
        claimed: claimed.clone(),
        actual,
    };
    if previous.origin != pinned.name() || &previous.ledger_public_key != pinned.public_key() {
        return Err(broken(format!(
            "pinned by the auditor is {} (key {})",
            pinned.name(),
            hex::encode(pinned.public_key().as_bytes())
        )));
    }
    if previous.tree_size != named.tree_size || previous.root_hash != named.root_hash {
        return Err(broken(format!(
            "has root {} at tree size {}",
            hex::encode(named.root_hash),
            named.tree_size
        )));
    }
    if latest.tree_size > previous.tree_size {
        return Err(AuditError::PreviousLogGrew {
            named: previous.tree_size,
            now: latest.tree_size,
        });
    }
    Ok(())
}

/// Compares the server's admin keys or proposals with the recomputed ones, item by item
/// (`what` names the list; items are compared in their wire form, named by `name`).
pub fn compare_governance<T: PartialEq + std::fmt::Debug>(
    what: &str,
    served: &[T],
    recomputed: &[T],
    name: impl Fn(&T) -> String,
) -> Result<(), AuditError> {
    for (index, (served, ours)) in served.iter().zip(recomputed).enumerate() {
        if served != ours {
            return Err(AuditError::GovernanceMismatch {
                what: format!("{what} #{index} ({})", name(ours)),
                served: format!("{served:?}"),
                recomputed: format!("{ours:?}"),
            });
        }
    }
    if served.len() != recomputed.len() {
        return Err(AuditError::GovernanceMismatch {
            what: format!("number of {what}"),
            served: served.len().to_string(),
            recomputed: recomputed.len().to_string(),
        });
    }
    Ok(())
}
