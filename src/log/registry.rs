//! The ledger's registry: admin keys, services, probes and maintenance windows, as the
//! log's genesis and admin commands have made them.
//!
//! The registry is derived state: it is rebuilt on start by replaying the genesis and the
//! command entries, never stored on its own. Ingest judges observations against it, and
//! admin commands are checked against it before they are appended. Who may sign, and when
//! a command that changes who may write takes effect, is the [`Governance`]'s rule.

use std::collections::HashMap;

use crate::crypto::PublicKey;
pub use crate::domain::CommandRefusal;
use crate::domain::{
    format_millis, AdminCommand, Command, Genesis, MaintenanceId, Millis, ProbeId, ServiceId,
    ServiceSpec,
};
use crate::governance::{self, Change, Effect, Governance, Position, Progress, Step};

#[derive(Debug, Clone)]
pub struct ProbeRecord {
    pub public_key: PublicKey,
    pub location: String,
    /// Set once the probe is revoked; revocation is permanent.
    pub revoked: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MaintenanceRecord {
    pub service_id: ServiceId,
    pub cancelled: bool,
}

/// A command that was appended, remembered so that a retry of the same bytes is answered
/// with the original index instead of an error.
#[derive(Debug, Clone)]
struct AppliedCommand {
    index: u64,
    body: Vec<u8>,
}

/// What checking a command found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandCheck {
    /// The command is new and valid: append it.
    Apply,
    /// These exact bytes were already appended by this signer at this index.
    AlreadyApplied { index: u64 },
}

#[derive(Debug, Clone)]
pub struct Registry {
    genesis: Genesis,
    /// The genesis entry's `received_at`: commands issued before it belong to another log.
    started_at: Millis,
    governance: Governance,
    services: HashMap<ServiceId, ServiceSpec>,
    probes: HashMap<ProbeId, ProbeRecord>,
    maintenance: HashMap<MaintenanceId, MaintenanceRecord>,
    applied: HashMap<(String, u64), AppliedCommand>,
    last_admin_seq: HashMap<String, u64>,
}

impl Registry {
    pub fn new(genesis: Genesis) -> Registry {
        Registry {
            governance: Governance::new(&genesis),
            genesis,
            started_at: Millis::MIN,
            services: HashMap::new(),
            probes: HashMap::new(),
            maintenance: HashMap::new(),
            applied: HashMap::new(),
            last_admin_seq: HashMap::new(),
        }
    }

    /// The registry of a log whose genesis was received at `received_at`.
    pub fn starting_at(mut self, received_at: Millis) -> Registry {
        self.started_at = received_at;
        self
    }

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The admin keys over time and every proposal.
    pub fn governance(&self) -> &Governance {
        &self.governance
    }

    /// The key of an admin that may sign now (known and not revoked).
    pub fn admin_key(&self, name: &str) -> Result<&PublicKey, CommandRefusal> {
        self.governance.signer_key(name)
    }

    pub fn probe(&self, probe_id: &ProbeId) -> Option<&ProbeRecord> {
        self.probes.get(probe_id)
    }

    pub fn probes(&self) -> impl Iterator<Item = (&ProbeId, &ProbeRecord)> {
        self.probes.iter()
    }

    pub fn service(&self, service_id: &ServiceId) -> Option<&ServiceSpec> {
        self.services.get(service_id)
    }

    /// Checks a command (whose signature was already verified) against the current state,
    /// at ledger time `received_at` (the time its entry would carry).
    pub fn check(
        &self,
        signer: &str,
        body: &[u8],
        command: &AdminCommand,
        received_at: Millis,
    ) -> Result<CommandCheck, CommandRefusal> {
        self.governance.signer_key(signer)?;
        if let Some(applied) = self.applied.get(&(signer.to_owned(), command.seq)) {
            if applied.body == body {
                return Ok(CommandCheck::AlreadyApplied {
                    index: applied.index,
                });
            }
        }
        if command.issued_at < self.started_at {
            return Err(CommandRefusal::Conflict(format!(
                "the command was issued at {}, before this log began ({}): a command signed for another log (e.g. the one this log continues) cannot be replayed here; sign it again",
                format_millis(command.issued_at),
                format_millis(self.started_at)
            )));
        }
        if let Some(&last) = self.last_admin_seq.get(signer) {
            if command.seq <= last {
                return Err(CommandRefusal::StaleSeq {
                    signer: signer.to_owned(),
                    last,
                    got: command.seq,
                });
            }
        }
        if let Some(change) = Change::of(&command.command) {
            self.check_probe_change(&change)?;
            self.governance
                .check_proposal(signer, &governance::digest(body), &change)?;
            return Ok(CommandCheck::Apply);
        }
        match &command.command {
            Command::ApproveCommand { proposal_digest } => {
                let change =
                    self.governance
                        .check_approval(signer, proposal_digest, received_at)?;
                self.check_probe_change(&change).map_err(|refusal| {
                    CommandRefusal::Conflict(format!(
                        "proposal {} ({}) can no longer take effect: {refusal}",
                        hex::encode(proposal_digest),
                        change.describe()
                    ))
                })?;
            }
            Command::DefineService(_) => {}
            Command::ScheduleMaintenance {
                maintenance_id,
                service_id,
                ..
            } => {
                if !self.services.contains_key(service_id) {
                    return Err(CommandRefusal::NotFound(format!(
                        "service {service_id} is not defined"
                    )));
                }
                if self.maintenance.contains_key(maintenance_id) {
                    return Err(CommandRefusal::Conflict(format!(
                        "maintenance id {maintenance_id} is already used; choose a new id"
                    )));
                }
            }
            Command::CancelMaintenance { maintenance_id } => {
                match self.maintenance.get(maintenance_id) {
                    None => {
                        return Err(CommandRefusal::NotFound(format!(
                            "maintenance {maintenance_id} was never scheduled"
                        )))
                    }
                    Some(record) if record.cancelled => {
                        return Err(CommandRefusal::Conflict(format!(
                            "maintenance {maintenance_id} is already cancelled"
                        )))
                    }
                    Some(_) => {}
                }
            }
            // Judged above, as proposals.
            Command::RegisterProbe { .. }
            | Command::RevokeProbe { .. }
            | Command::AddAdminKey(_)
            | Command::RevokeAdminKey { .. } => {}
        }
        Ok(CommandCheck::Apply)
    }

    /// The probe parts of a change's validity; admin keys are the governance's.
    fn check_probe_change(&self, change: &Change) -> Result<(), CommandRefusal> {
        match change {
            Change::RegisterProbe { probe_id, .. } => match self.probes.get(probe_id) {
                Some(record) if record.revoked.is_some() => Err(CommandRefusal::Conflict(format!(
                    "probe {probe_id} was revoked; revocation is permanent, register the new key under a new probe id"
                ))),
                Some(_) => Err(CommandRefusal::Conflict(format!(
                    "probe {probe_id} is already registered; to rotate its key, revoke it and register a new probe id"
                ))),
                None => Ok(()),
            },
            Change::RevokeProbe { probe_id, .. } => match self.probes.get(probe_id) {
                None => Err(CommandRefusal::NotFound(format!("probe {probe_id} is not registered"))),
                Some(record) if record.revoked.is_some() => {
                    Err(CommandRefusal::Conflict(format!("probe {probe_id} is already revoked")))
                }
                Some(_) => Ok(()),
            },
            Change::AddAdminKey(_) | Change::RevokeAdminKey { .. } => Ok(()),
        }
    }

    /// Applies a command that `check` accepted and that was appended at `at`. For a gated
    /// command or an approval, answers where its proposal stands.
    pub fn apply(
        &mut self,
        at: Position,
        signer: &str,
        body: &[u8],
        signature: &[u8],
        command: &AdminCommand,
    ) -> Option<Progress> {
        self.last_admin_seq.insert(signer.to_owned(), command.seq);
        self.applied.insert(
            (signer.to_owned(), command.seq),
            AppliedCommand {
                index: at.index,
                body: body.to_vec(),
            },
        );
        if let Some(step) = Step::of(signer, body, signature, &command.command) {
            let effect = self.governance.apply(at, step)?;
            let progress = *effect.progress();
            if let Effect::InForce { change, .. } = effect {
                self.apply_probe_change(change);
            }
            return Some(progress);
        }
        match &command.command {
            Command::DefineService(spec) => {
                self.services.insert(spec.service_id.clone(), spec.clone());
            }
            Command::ScheduleMaintenance {
                maintenance_id,
                service_id,
                ..
            } => {
                self.maintenance.insert(
                    maintenance_id.clone(),
                    MaintenanceRecord {
                        service_id: service_id.clone(),
                        cancelled: false,
                    },
                );
            }
            Command::CancelMaintenance { maintenance_id } => {
                if let Some(record) = self.maintenance.get_mut(maintenance_id) {
                    record.cancelled = true;
                }
            }
            _ => {}
        }
        None
    }

    fn apply_probe_change(&mut self, change: Change) {
        match change {
            Change::RegisterProbe {
                probe_id,
                public_key,
                location,
            } => {
                self.probes.insert(
                    probe_id,
                    ProbeRecord {
                        public_key,
                        location,
                        revoked: None,
                    },
                );
            }
            Change::RevokeProbe { probe_id, reason } => {
                if let Some(record) = self.probes.get_mut(&probe_id) {
                    record.revoked = Some(reason);
                }
            }
            Change::AddAdminKey(_) | Change::RevokeAdminKey { .. } => {}
        }
    }

    /// Where a gated command's proposal stands (for an answer to a retry).
    pub fn progress(&self, body: &[u8], command: &AdminCommand) -> Option<Progress> {
        let digest = match &command.command {
            Command::ApproveCommand { proposal_digest } => *proposal_digest,
            other => {
                Change::of(other)?;
                governance::digest(body)
            }
        };
        self.governance.progress(&digest)
    }
}
