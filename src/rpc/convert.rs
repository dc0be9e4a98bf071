//! Conversions between the RPC layer's protobuf types and the domain's plain types.

use crate::domain::{Outcome, RejectReason};
use crate::log::Envelope;
use crate::pb;

pub fn envelope(signed: pb::SignedObservation) -> Envelope {
    Envelope {
        body: signed.body,
        signature: signed.signature,
    }
}

pub fn ack(outcome: Outcome) -> pb::Ack {
    match outcome {
        Outcome::Accepted { index } => pb::Ack {
            status: pb::AckStatus::Accepted as i32,
            index,
            ..Default::default()
        },
        Outcome::Duplicate { index } => pb::Ack {
            status: pb::AckStatus::Duplicate as i32,
            index,
            ..Default::default()
        },
        Outcome::Rejected(rejection) => pb::Ack {
            status: pb::AckStatus::Rejected as i32,
            index: 0,
            reason: reject_reason(rejection.reason) as i32,
            message: rejection.message,
        },
    }
}

pub fn reject_reason(reason: RejectReason) -> pb::RejectReason {
    match reason {
        RejectReason::Invalid => pb::RejectReason::Invalid,
        RejectReason::BadSignature => pb::RejectReason::BadSignature,
        RejectReason::UnknownProbe => pb::RejectReason::UnknownProbe,
        RejectReason::ProbeRevoked => pb::RejectReason::ProbeRevoked,
        RejectReason::UnknownService => pb::RejectReason::UnknownService,
        RejectReason::StaleSeq => pb::RejectReason::StaleSeq,
        RejectReason::Equivocation => pb::RejectReason::Equivocation,
        RejectReason::TooLate => pb::RejectReason::TooLate,
        RejectReason::TooEarly => pb::RejectReason::TooEarly,
    }
}

pub fn window_spec(window: Option<pb::Window>) -> Result<crate::window::WindowSpec, String> {
    use crate::window::WindowSpec;
    let window = window
        .and_then(|w| w.window)
        .ok_or("a window is required: a range, a named window or a calendar month")?;
    Ok(match window {
        pb::window::Window::Range(range) => WindowSpec::Range {
            start: crate::entry::timestamp_millis(range.start.as_ref(), "window start")
                .map_err(|e| e.0)?,
            end: crate::entry::timestamp_millis(range.end.as_ref(), "window end")
                .map_err(|e| e.0)?,
        },
        pb::window::Window::Named(named) => match pb::NamedWindow::try_from(named) {
            Ok(pb::NamedWindow::Last24h) => WindowSpec::Last24Hours,
            Ok(pb::NamedWindow::Last7d) => WindowSpec::Last7Days,
            Ok(pb::NamedWindow::Last30d) => WindowSpec::Last30Days,
            Ok(pb::NamedWindow::Last90d) => WindowSpec::Last90Days,
            _ => return Err(format!("unknown named window {named}")),
        },
        pb::window::Window::Month(month) => WindowSpec::Month {
            year: month.year,
            month: u8::try_from(month.month)
                .map_err(|_| format!("month {} is not 1-12", month.month))?,
            time_zone: month.time_zone,
        },
    })
}

pub fn service_state(state: crate::projection::State) -> pb::ServiceState {
    use crate::projection::State;
    match state {
        State::Up => pb::ServiceState::Up,
        State::Down => pb::ServiceState::Down,
        State::Unknown => pb::ServiceState::Unknown,
        State::Maintenance => pb::ServiceState::Maintenance,
    }
}

pub fn projection_spec_to_pb(spec: &crate::projection::ServiceSpec) -> pb::ServiceSpec {
    use crate::domain::Quorum;
    let (kind, at_least) = match spec.quorum {
        Quorum::Any => (pb::QuorumKind::Any, 0),
        Quorum::Majority => (pb::QuorumKind::Majority, 0),
        Quorum::All => (pb::QuorumKind::All, 0),
        Quorum::AtLeast(k) => (pb::QuorumKind::AtLeast, k),
    };
    pb::ServiceSpec {
        service_id: spec.service_id.to_string(),
        name: spec.name.clone(),
        agency: spec.agency.clone(),
        slo_target: spec.slo_target,
        quorum: Some(pb::QuorumPolicy {
            kind: kind as i32,
            at_least,
        }),
        staleness: Some(crate::entry::duration_to_pb(
            std::time::Duration::from_millis(spec.staleness_ms().max(0) as u64),
        )),
    }
}

pub fn service_summary(service: &crate::query::ServiceStatus) -> pb::ServiceSummary {
    pb::ServiceSummary {
        spec: Some(projection_spec_to_pb(&service.spec)),
        state: service_state(service.state) as i32,
        state_since: service.since.map(crate::entry::millis_timestamp),
    }
}

pub fn probe_report(probe: crate::projection::ProbeSummary) -> pb::ProbeReport {
    pb::ProbeReport {
        last_status: match probe.last_status {
            crate::domain::Status::Up => pb::Status::Up,
            crate::domain::Status::Down => pb::Status::Down,
        } as i32,
        last_observed_at: Some(crate::entry::millis_timestamp(probe.last_observed_at)),
        probe_id: probe.probe_id,
        ..registration(probe.registration)
    }
}

/// A probe report's registration fields.
fn registration(registration: Option<crate::projection::RegisteredProbe>) -> pb::ProbeReport {
    match registration {
        None => pb::ProbeReport::default(),
        Some(registered) => pb::ProbeReport {
            location: registered.location,
            revoked: registered.revoked_at.is_some(),
            registered_index: registered.registered_index,
            registered_at: Some(crate::entry::millis_timestamp(registered.registered_at)),
            registered_by: registered.registered_by,
            approved_by: registered.approved_by,
            ..Default::default()
        },
    }
}

pub fn availability_report(
    service_id: &str,
    report: &crate::projection::AvailabilityReport,
    published: &crate::projector::Published,
) -> pb::AvailabilityReport {
    pb::AvailabilityReport {
        service_id: service_id.to_owned(),
        start: Some(crate::entry::millis_timestamp(report.start)),
        end: Some(crate::entry::millis_timestamp(report.end)),
        up_ms: report.up_ms,
        down_ms: report.down_ms,
        unknown_ms: report.unknown_ms,
        maintenance_ms: report.maintenance_ms,
        availability: report.availability,
        coverage: report.coverage,
        slo_target: report.slo_target,
        slo_met: report.slo_met,
        error_budget_ms: report.error_budget_ms,
        error_budget_remaining_ms: report.error_budget_remaining_ms,
        incident_count: report.incident_count,
        tree_size: published.tree_size,
        checkpoint: published.checkpoint.clone(),
    }
}

pub fn incident(incident: crate::projection::Incident) -> pb::Incident {
    pb::Incident {
        start: Some(crate::entry::millis_timestamp(incident.start)),
        end: Some(crate::entry::millis_timestamp(incident.end)),
        open: incident.open,
        probes: incident.probes,
        last_observed_at: incident
            .last_observed_at
            .map(crate::entry::millis_timestamp),
    }
}

pub fn state_interval(interval: crate::projection::Interval) -> pb::StateInterval {
    pb::StateInterval {
        start: Some(crate::entry::millis_timestamp(interval.start)),
        end: Some(crate::entry::millis_timestamp(interval.end)),
        state: service_state(interval.state) as i32,
    }
}

pub fn state_change(
    change: crate::projector::StateChange,
    projections: &crate::projector::Projections,
) -> pb::WatchStatesResponse {
    let checkpoint = {
        let published = projections.read();
        (published.tree_size == change.tree_size).then(|| published.checkpoint.clone())
    };
    pb::WatchStatesResponse {
        service_id: change.service_id,
        state: service_state(change.state) as i32,
        previous_state: change
            .previous
            .map_or(pb::ServiceState::Unspecified, service_state) as i32,
        at: Some(crate::entry::millis_timestamp(change.at)),
        prefix: Some(pb::LogPrefix {
            tree_size: change.tree_size,
            checkpoint: checkpoint.unwrap_or_default(),
        }),
    }
}

fn log_position(position: crate::governance::Position) -> pb::LogPosition {
    pb::LogPosition {
        index: position.index,
        received_at: Some(crate::entry::millis_timestamp(position.received_at)),
    }
}

pub fn admin_key(admin: &crate::governance::AdminRecord) -> pb::AdminKeyRecord {
    pb::AdminKeyRecord {
        name: admin.name.clone(),
        public_key: admin.public_key.to_bytes().to_vec(),
        added: admin.added.map(log_position),
        added_by: admin.added_by.clone(),
        revoked: admin.revoked.as_ref().map(|r| log_position(r.at)),
        revoke_reason: admin
            .revoked
            .as_ref()
            .map(|r| r.reason.clone())
            .unwrap_or_default(),
    }
}

pub fn proposal(proposal: crate::governance::ProposalStatus) -> pb::Proposal {
    use crate::governance::ProposalState;
    pb::Proposal {
        digest: proposal.digest.to_vec(),
        command: Some(pb::SignedCommand {
            signer: proposal.proposer,
            body: proposal.body,
            signature: proposal.signature,
        }),
        proposed: Some(log_position(proposal.proposed)),
        approvals: proposal
            .signers
            .into_iter()
            .map(|signer| pb::Approval {
                admin: signer.admin,
                at: Some(log_position(signer.at)),
                counts: signer.counts,
            })
            .collect(),
        state: match proposal.state {
            ProposalState::Pending => pb::ProposalState::Pending,
            ProposalState::InForce => pb::ProposalState::InForce,
            ProposalState::Lapsed => pb::ProposalState::Lapsed,
        } as i32,
        in_force: proposal.in_force.map(log_position),
        expires_at: Some(crate::entry::millis_timestamp(proposal.expires_at)),
        approvals_needed: proposal.approvals_needed,
    }
}

pub fn alert_rule(rule: crate::alert::Rule) -> pb::AlertRule {
    use crate::alert::Rule;
    match rule {
        Rule::Outage => pb::AlertRule::Outage,
        Rule::NoData => pb::AlertRule::NoData,
        Rule::SloBurn1h => pb::AlertRule::SloBurn1h,
        Rule::SloBurn6h => pb::AlertRule::SloBurn6h,
        Rule::SloBurn3d => pb::AlertRule::SloBurn3d,
    }
}

pub fn alert(alert: &crate::alert::Alert) -> pb::Alert {
    use crate::alert::{Figures, Severity};
    let burn_window = |figure: &crate::alert::BurnFigure| pb::BurnWindowFigures {
        window_ms: figure.window_ms.unsigned_abs(),
        up_ms: figure.up_ms,
        down_ms: figure.down_ms,
        burn_rate: figure.burn_rate,
    };
    let figures = match &alert.figures {
        Figures::State {
            state,
            state_since,
            for_ms,
        } => pb::alert::Figures::State(pb::StateAlertFigures {
            state: service_state(*state) as i32,
            state_since: Some(crate::entry::millis_timestamp(*state_since)),
            for_ms: for_ms.unsigned_abs(),
        }),
        Figures::Burn {
            slo_target,
            threshold,
            long,
            short,
        } => pb::alert::Figures::Burn(pb::BurnAlertFigures {
            slo_target: *slo_target,
            threshold: *threshold,
            long_window: Some(burn_window(long)),
            short_window: Some(burn_window(short)),
        }),
    };
    pb::Alert {
        service_id: alert.service_id.clone(),
        agency: alert.agency.clone(),
        rule: alert_rule(alert.rule) as i32,
        severity: match alert.rule.severity() {
            Severity::Page => pb::AlertSeverity::Page,
            Severity::Ticket => pb::AlertSeverity::Ticket,
        } as i32,
        since: Some(crate::entry::millis_timestamp(alert.since)),
        until: alert.until.map(crate::entry::millis_timestamp),
        figures: Some(figures),
    }
}
