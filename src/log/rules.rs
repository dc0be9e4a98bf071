//! The observation ingest rules that depend on the log (DESIGN.md "Ingest rules" 2, 4 and
//! 5), as pure functions of the state the log made. Ingest judges every new observation with
//! them and `audit` judges every stored one with them, so the ledger and its auditors can
//! never disagree on what the log may hold. Rule 1 (decoding) belongs to `entry` and
//! `domain`, rule 3 (the signature) to `crypto`.

use super::registry::Registry;
use crate::crypto::PublicKey;
use crate::domain::{duration_millis, format_millis, Millis, Observation, RejectReason, Rejection};

/// What the rules say of an observation that passed rule 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement<'a> {
    /// A new observation within the time bounds: its signature must verify against `key`.
    New { key: &'a PublicKey },
    /// Its `seq` is not above the probe's last accepted one (`last_seq`). Only the entry
    /// holding that (probe, seq), if any, tells a retry (`DUPLICATE`) from a second story
    /// (`EQUIVOCATION`) and a never-accepted seq (`STALE_SEQ`, see [`stale_seq`]).
    SeqNotAbove { key: &'a PublicKey, last_seq: u64 },
}

impl<'a> Judgement<'a> {
    /// The probe's registered key, which its signature must verify against.
    pub fn key(&self) -> &'a PublicKey {
        match self {
            Judgement::New { key } | Judgement::SeqNotAbove { key, .. } => key,
        }
    }
}

/// Rules 2, 4 and 5, in that order, for `observation` received at `received_at`, where
/// `last_seq` is the probe's last accepted seq in the log so far.
pub fn judge_observation<'a>(
    registry: &'a Registry,
    last_seq: Option<u64>,
    observation: &Observation,
    received_at: Millis,
) -> Result<Judgement<'a>, Rejection> {
    let key = registered_key(registry, observation)?;
    if let Some(last_seq) = last_seq.filter(|&last| observation.seq <= last) {
        return Ok(Judgement::SeqNotAbove { key, last_seq });
    }
    check_time(registry, observation, received_at)?;
    Ok(Judgement::New { key })
}

/// Rule 2: the probe is registered and not revoked, and the service is defined. Returns the
/// probe's key, the one its signature must verify against (rule 3).
pub fn registered_key<'a>(
    registry: &'a Registry,
    observation: &Observation,
) -> Result<&'a PublicKey, Rejection> {
    let probe_id = &observation.probe_id;
    let record = registry.probe(probe_id).ok_or_else(|| {
        Rejection::new(
            RejectReason::UnknownProbe,
            format!("probe {probe_id} is not registered"),
        )
    })?;
    if record.revoked.is_some() {
        return Err(Rejection::new(
            RejectReason::ProbeRevoked,
            format!("probe {probe_id} is revoked"),
        ));
    }
    if registry.service(&observation.service_id).is_none() {
        return Err(Rejection::new(
            RejectReason::UnknownService,
            format!("service {} is not defined", observation.service_id),
        ));
    }
    Ok(&record.public_key)
}

/// The `STALE_SEQ` rejection of rule 4: `observation`'s seq is at or below `last_seq` and
/// no accepted observation of the probe has it.
pub fn stale_seq(observation: &Observation, last_seq: u64) -> Rejection {
    Rejection::new(
        RejectReason::StaleSeq,
        format!(
            "seq {} is not above probe {}'s last accepted seq {last_seq}",
            observation.seq, observation.probe_id
        ),
    )
}

/// Rule 5: `received_at - max_lateness <= observed_at <= received_at + max_skew`, with the
/// bounds fixed at genesis.
fn check_time(
    registry: &Registry,
    observation: &Observation,
    received_at: Millis,
) -> Result<(), Rejection> {
    let genesis = registry.genesis();
    let max_lateness = duration_millis(genesis.max_lateness);
    let max_skew = duration_millis(genesis.max_skew);
    let observed_at = observation.observed_at;
    if observed_at < received_at.saturating_sub(max_lateness) {
        return Err(Rejection::new(
            RejectReason::TooLate,
            format!(
                "observed_at {} is {} ms before received_at {}; at most {max_lateness} ms is accepted (max_lateness)",
                format_millis(observed_at),
                received_at.saturating_sub(observed_at),
                format_millis(received_at),
            ),
        ));
    }
    if observed_at > received_at.saturating_add(max_skew) {
        return Err(Rejection::new(
            RejectReason::TooEarly,
            format!(
                "observed_at {} is {} ms after received_at {}; at most {max_skew} ms of clock skew is accepted (max_skew)",
                format_millis(observed_at),
                observed_at.saturating_sub(received_at),
                format_millis(received_at),
            ),
        ));
    }
    Ok(())
}
