//! The ledger's registry: admin keys, services, probes and maintenance windows, as the
//! log's genesis and admin commands have made them.
//!
//! The registry is derived state: it is rebuilt on start by replaying the genesis and the
//! command entries (the store keeps their indexes), never stored on its own. Ingest judges
//! observations against it, and admin commands are checked against it before they are
//! appended.

use std::collections::HashMap;

use crate::crypto::PublicKey;

use crate::domain::{
    AdminCommand, Command, Genesis, MaintenanceId, ProbeId, ServiceId, ServiceSpec,
};

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

/// Why a command cannot be applied in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandRefusal {
    #[error("signer {0:?} is not an admin key of this ledger's genesis")]
    UnknownSigner(String),
    #[error("seq {got} is not above signer {signer:?}'s last seq {last}; use a higher seq")]
    StaleSeq { signer: String, last: u64, got: u64 },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
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
    services: HashMap<ServiceId, ServiceSpec>,
    probes: HashMap<ProbeId, ProbeRecord>,
    maintenance: HashMap<MaintenanceId, MaintenanceRecord>,
    applied: HashMap<(String, u64), AppliedCommand>,
    last_admin_seq: HashMap<String, u64>,
}

impl Registry {
    pub fn new(genesis: Genesis) -> Registry {
        Registry {
            genesis,
            services: HashMap::new(),
            probes: HashMap::new(),
            maintenance: HashMap::new(),
            applied: HashMap::new(),
            last_admin_seq: HashMap::new(),
        }
    }

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    pub fn admin_key(&self, name: &str) -> Option<&PublicKey> {
        self.genesis
            .admin_keys
            .iter()
            .find(|k| k.name == name)
            .map(|k| &k.public_key)
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

    /// Checks a command (whose signature was already verified) against the current state.
    pub fn check(
        &self,
        signer: &str,
        body: &[u8],
        command: &AdminCommand,
    ) -> Result<CommandCheck, CommandRefusal> {
        if self.admin_key(signer).is_none() {
            return Err(CommandRefusal::UnknownSigner(signer.to_owned()));
        }
        if let Some(applied) = self.applied.get(&(signer.to_owned(), command.seq)) {
            if applied.body == body {
                return Ok(CommandCheck::AlreadyApplied {
                    index: applied.index,
                });
            }
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
        match &command.command {
            Command::DefineService(_) => {}
            Command::RegisterProbe { probe_id, .. } => match self.probes.get(probe_id) {
                Some(record) if record.revoked.is_some() => {
                    return Err(CommandRefusal::Conflict(format!(
                        "probe {probe_id} was revoked; revocation is permanent, register the new key under a new probe id"
                    )))
                }
                Some(_) => {
                    return Err(CommandRefusal::Conflict(format!(
                        "probe {probe_id} is already registered; to rotate its key, revoke it and register a new probe id"
                    )))
                }
                None => {}
            },
            Command::RevokeProbe { probe_id, .. } => match self.probes.get(probe_id) {
                None => return Err(CommandRefusal::NotFound(format!("probe {probe_id} is not registered"))),
                Some(record) if record.revoked.is_some() => {
                    return Err(CommandRefusal::Conflict(format!("probe {probe_id} is already revoked")))
                }
                Some(_) => {}
            },
            Command::ScheduleMaintenance {
                maintenance_id,
                service_id,
                ..
            } => {
                if !self.services.contains_key(service_id) {
                    return Err(CommandRefusal::NotFound(format!("service {service_id} is not defined")));
                }
                if self.maintenance.contains_key(maintenance_id) {
                    return Err(CommandRefusal::Conflict(format!(
                        "maintenance id {maintenance_id} is already used; choose a new id"
                    )));
                }
            }
            Command::CancelMaintenance { maintenance_id } => match self.maintenance.get(maintenance_id) {
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
            },
        }
        Ok(CommandCheck::Apply)
    }

    /// Applies a command that `check` accepted and that was appended at `index`.
    pub fn apply(&mut self, index: u64, signer: &str, body: &[u8], command: &AdminCommand) {
        self.last_admin_seq.insert(signer.to_owned(), command.seq);
        self.applied.insert(
            (signer.to_owned(), command.seq),
            AppliedCommand {
                index,
                body: body.to_vec(),
            },
        );
        match &command.command {
            Command::DefineService(spec) => {
                self.services.insert(spec.service_id.clone(), spec.clone());
            }
            Command::RegisterProbe {
                probe_id,
                public_key,
                location,
            } => {
                self.probes.insert(
                    probe_id.clone(),
                    ProbeRecord {
                        public_key: public_key.clone(),
                        location: location.clone(),
                        revoked: None,
                    },
                );
            }
            Command::RevokeProbe { probe_id, reason } => {
                if let Some(record) = self.probes.get_mut(probe_id) {
                    record.revoked = Some(reason.clone());
                }
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
        }
    }
}
