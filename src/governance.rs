//! Who may write, over time (DESIGN.md "Admin keys over time"): the admin keys the log has
//! named and revoked, and the k-of-n approval of the commands that change who may write
//! (`AddAdminKey`, `RevokeAdminKey`, `RegisterProbe`, `RevokeProbe`).
//!
//! Pure: a function of the genesis and the commands in log order. The ledger's registry
//! judges each command with it before the command is appended, the projection keeps one
//! to answer "who proposed and who approved what" at any prefix, and `audit` recomputes
//! both from the log, so the three cannot disagree about when a change took effect.
//!
//! The rule: the first signer's gated command is a *proposal*; it takes effect at the entry
//! where the `threshold`-th distinct admin key signs it (the proposer counts), if that entry
//! was received within [`APPROVAL_WINDOW_MS`] of the proposal. A key counts only while it is
//! in force: one revoked before that entry does not. With a threshold of 1 every proposal
//! takes effect at once, at its own entry.

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

use crate::crypto::PublicKey;
use crate::domain::{
    format_millis, AdminKey, Command, CommandRefusal, Digest, Genesis, Millis, ProbeId,
};

/// How long a proposal waits for approvals: seven days of ledger time (`received_at`).
pub const APPROVAL_WINDOW_MS: Millis = 7 * 24 * 3_600_000;

/// Where an entry sits in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub index: u64,
    #[serde(serialize_with = "crate::domain::serialize_millis")]
    pub received_at: Millis,
}

/// A command that changes who may write.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    AddAdminKey(AdminKey),
    RevokeAdminKey {
        name: String,
        reason: String,
    },
    RegisterProbe {
        probe_id: ProbeId,
        public_key: PublicKey,
        location: String,
    },
    RevokeProbe {
        probe_id: ProbeId,
        reason: String,
    },
}

impl Change {
    /// The change a command makes, if it is one that needs the approval threshold.
    pub fn of(command: &Command) -> Option<Change> {
        Some(match command {
            Command::AddAdminKey(key) => Change::AddAdminKey(key.clone()),
            Command::RevokeAdminKey { name, reason } => Change::RevokeAdminKey {
                name: name.clone(),
                reason: reason.clone(),
            },
            Command::RegisterProbe {
                probe_id,
                public_key,
                location,
            } => Change::RegisterProbe {
                probe_id: probe_id.clone(),
                public_key: public_key.clone(),
                location: location.clone(),
            },
            Command::RevokeProbe { probe_id, reason } => Change::RevokeProbe {
                probe_id: probe_id.clone(),
                reason: reason.clone(),
            },
            _ => return None,
        })
    }

    /// What it does, for people: "register probe nbo-1".
    pub fn describe(&self) -> String {
        match self {
            Change::AddAdminKey(key) => format!("add admin key {}", key.name),
            Change::RevokeAdminKey { name, .. } => format!("revoke admin key {name}"),
            Change::RegisterProbe { probe_id, .. } => format!("register probe {probe_id}"),
            Change::RevokeProbe { probe_id, .. } => format!("revoke probe {probe_id}"),
        }
    }
}

/// One governance step: what an entry asks of [`Governance`].
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A gated command, signed by its proposer.
    Propose {
        signer: String,
        body: Vec<u8>,
        signature: Vec<u8>,
        change: Change,
    },
    /// `ApproveCommand`.
    Approve { signer: String, digest: Digest },
}

impl Step {
    /// The step a command's entry takes, if the command is gated or an approval.
    pub fn of(signer: &str, body: &[u8], signature: &[u8], command: &Command) -> Option<Step> {
        if let Command::ApproveCommand { proposal_digest } = command {
            return Some(Step::Approve {
                signer: signer.to_owned(),
                digest: *proposal_digest,
            });
        }
        Change::of(command).map(|change| Step::Propose {
            signer: signer.to_owned(),
            body: body.to_vec(),
            signature: signature.to_vec(),
            change,
        })
    }
}

/// The proposal digest of a command body: SHA-256 of the `SignedCommand.body`.
pub fn digest(body: &[u8]) -> Digest {
    Sha256::digest(body).into()
}

/// An admin key, from the entry that added it to the one that revoked it: the one type of
/// the "who may sign" answer (gRPC and JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AdminRecord {
    pub name: String,
    #[serde(serialize_with = "serialize_key")]
    pub public_key: PublicKey,
    /// `None` for the genesis keys.
    pub added: Option<Position>,
    /// Who signed the `AddAdminKey` that took effect, the proposer first.
    pub added_by: Vec<String>,
    pub revoked: Option<Revocation>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Revocation {
    pub at: Position,
    pub reason: String,
}

/// A gated command and its approvals.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub digest: Digest,
    pub proposer: String,
    /// The proposed command exactly as signed.
    pub body: Vec<u8>,
    pub signature: Vec<u8>,
    pub change: Change,
    pub proposed: Position,
    /// Approvals after the proposer's, in log order.
    pub approvals: Vec<(String, Position)>,
    pub in_force: Option<Position>,
}

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    Pending,
    InForce,
    Lapsed,
}

impl Proposal {
    /// Approvals received from this instant on are refused.
    pub fn expires_at(&self) -> Millis {
        self.proposed.received_at.saturating_add(APPROVAL_WINDOW_MS)
    }

    /// Everyone who signed it, the proposer first, with the entry of their signature.
    pub fn signers(&self) -> impl Iterator<Item = (&str, Position)> + '_ {
        std::iter::once((self.proposer.as_str(), self.proposed))
            .chain(self.approvals.iter().map(|(name, at)| (name.as_str(), *at)))
    }

    /// Its state as of ledger time `now` (a prefix's last `received_at`).
    pub fn state(&self, now: Millis) -> ProposalState {
        if self.in_force.is_some() {
            ProposalState::InForce
        } else if now >= self.expires_at() {
            ProposalState::Lapsed
        } else {
            ProposalState::Pending
        }
    }
}

/// A proposal as of a prefix, with whose signatures count: the one type of the "who
/// proposed and who approved what" answer (gRPC and JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProposalStatus {
    #[serde(serialize_with = "serialize_hex")]
    pub digest: Digest,
    /// What it does, for people.
    pub summary: String,
    pub proposer: String,
    pub proposed: Position,
    pub state: ProposalState,
    /// The proposer first, then approvals in log order.
    pub signers: Vec<SignerStatus>,
    pub in_force: Option<Position>,
    #[serde(serialize_with = "crate::domain::serialize_millis")]
    pub expires_at: Millis,
    /// Counting signatures still needed (0 unless pending).
    pub approvals_needed: u32,
    /// The proposed command exactly as signed, for anyone who wants to verify it.
    #[serde(serialize_with = "serialize_base64")]
    pub body: Vec<u8>,
    #[serde(serialize_with = "serialize_base64")]
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SignerStatus {
    pub admin: String,
    pub at: Position,
    /// Whether the signature counts: its key was in force when the proposal took effect
    /// (or is now, for a pending proposal).
    pub counts: bool,
}

fn serialize_key<S: serde::Serializer>(key: &PublicKey, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex::encode(key.as_bytes()))
}

fn serialize_hex<S: serde::Serializer>(bytes: &Digest, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex::encode(bytes))
}

fn serialize_base64<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// What a step did.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The proposal waits for more approvals.
    Pending(Progress),
    /// The change took effect at this entry. Admin-key changes are already applied to
    /// the [`Governance`]; probe changes are the caller's to apply.
    InForce {
        progress: Progress,
        change: Change,
        proposer: String,
        /// The signers that counted: the proposer first (unless revoked meanwhile), then
        /// the approvers in log order.
        approved_by: Vec<String>,
    },
}

impl Effect {
    pub fn progress(&self) -> &Progress {
        match self {
            Effect::Pending(progress) | Effect::InForce { progress, .. } => progress,
        }
    }
}

/// A proposal's count of approvals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub digest: Digest,
    pub approvals: u32,
    pub threshold: u32,
    pub in_force: bool,
}

/// The admin keys over time and every proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct Governance {
    threshold: u32,
    admins: Vec<AdminRecord>,
    admin_positions: HashMap<String, usize>,
    proposals: Vec<Proposal>,
    proposal_positions: HashMap<Digest, usize>,
}

/// Why a genesis cannot start a log.
pub fn check_genesis(genesis: &Genesis) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    for key in &genesis.admin_keys {
        if !names.insert(key.name.as_str()) {
            return Err(format!("the genesis names admin key {:?} twice", key.name));
        }
        if !keys.insert(key.public_key.to_bytes()) {
            return Err(format!(
                "admin key {:?} repeats another admin's public key: one key counts once toward the threshold",
                key.name
            ));
        }
    }
    let threshold = genesis.admin_threshold.max(1);
    if threshold as usize > genesis.admin_keys.len() {
        return Err(format!(
            "the admin threshold is {threshold} but the genesis names {} admin key(s): nobody could ever change who may write",
            genesis.admin_keys.len()
        ));
    }
    Ok(())
}

impl Governance {
    /// The governance a genesis starts: its admin keys, its threshold (0 reads as 1).
    pub fn new(genesis: &Genesis) -> Governance {
        let mut governance = Governance::empty(genesis.admin_threshold);
        for key in &genesis.admin_keys {
            governance.add_admin(key.clone(), None, Vec::new());
        }
        governance
    }

    /// No keys yet: the state before the genesis.
    pub fn empty(threshold: u32) -> Governance {
        Governance {
            threshold: threshold.max(1),
            admins: Vec::new(),
            admin_positions: HashMap::new(),
            proposals: Vec::new(),
            proposal_positions: HashMap::new(),
        }
    }

    /// Rebuilds a governance from its parts (a decoded snapshot), checking that they fit.
    pub fn from_parts(
        threshold: u32,
        admins: Vec<AdminRecord>,
        proposals: Vec<Proposal>,
    ) -> Result<Governance, String> {
        let mut governance = Governance::empty(threshold);
        for admin in admins {
            if governance.admin_positions.contains_key(&admin.name) {
                return Err(format!("admin key {:?} appears twice", admin.name));
            }
            governance
                .admin_positions
                .insert(admin.name.clone(), governance.admins.len());
            governance.admins.push(admin);
        }
        for proposal in proposals {
            if digest(&proposal.body) != proposal.digest {
                return Err("a proposal's digest does not match its body".into());
            }
            if governance.proposal_positions.contains_key(&proposal.digest) {
                return Err("a proposal appears twice".into());
            }
            governance
                .proposal_positions
                .insert(proposal.digest, governance.proposals.len());
            governance.proposals.push(proposal);
        }
        Ok(governance)
    }

    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// Every admin key the log has named, in the order they were added.
    pub fn admins(&self) -> &[AdminRecord] {
        &self.admins
    }

    /// Every proposal, in log order.
    pub fn proposals(&self) -> &[Proposal] {
        &self.proposals
    }

    pub fn proposal(&self, digest: &Digest) -> Option<&Proposal> {
        self.proposal_positions
            .get(digest)
            .map(|&position| &self.proposals[position])
    }

    pub fn admin(&self, name: &str) -> Option<&AdminRecord> {
        self.admin_positions
            .get(name)
            .map(|&position| &self.admins[position])
    }

    /// The key of an admin that may sign now: known and not revoked.
    pub fn signer_key(&self, name: &str) -> Result<&PublicKey, CommandRefusal> {
        match self.admin(name) {
            None => Err(CommandRefusal::UnknownSigner(name.to_owned())),
            Some(AdminRecord {
                revoked: Some(revocation),
                ..
            }) => Err(CommandRefusal::RevokedSigner {
                signer: name.to_owned(),
                index: revocation.at.index,
            }),
            Some(admin) => Ok(&admin.public_key),
        }
    }

    fn in_force(&self, name: &str) -> bool {
        self.admin(name)
            .is_some_and(|admin| admin.revoked.is_none())
    }

    /// Keys that may sign now.
    pub fn keys_in_force(&self) -> usize {
        self.admins
            .iter()
            .filter(|admin| admin.revoked.is_none())
            .count()
    }

    /// How many of a proposal's signers (plus `also`, if given) count now.
    fn counting(&self, proposal: &Proposal, also: Option<&str>) -> Vec<String> {
        let mut counted: Vec<String> = Vec::new();
        for (name, _) in proposal.signers() {
            if self.in_force(name) && !counted.iter().any(|c| c == name) {
                counted.push(name.to_owned());
            }
        }
        if let Some(name) = also {
            if self.in_force(name) && !counted.iter().any(|c| c == name) {
                counted.push(name.to_owned());
            }
        }
        counted
    }

    /// Whether a gated command signed by `signer` (whose key and signature the caller
    /// checked) may be appended now.
    pub fn check_proposal(
        &self,
        signer: &str,
        digest: &Digest,
        change: &Change,
    ) -> Result<(), CommandRefusal> {
        self.signer_key(signer)?;
        if let Some(existing) = self.proposal(digest) {
            return Err(CommandRefusal::Conflict(format!(
                "these exact command bytes were already proposed by {} at entry {}; approve proposal {} instead",
                existing.proposer,
                existing.proposed.index,
                hex::encode(digest)
            )));
        }
        self.check_change(change)
    }

    /// Whether `signer`'s approval of the proposal `digest` may be appended now, at ledger
    /// time `received_at`; answers the proposed change, whose probe parts the caller checks
    /// (an approval of a change that can no longer take effect is refused).
    pub fn check_approval(
        &self,
        signer: &str,
        digest: &Digest,
        received_at: Millis,
    ) -> Result<Change, CommandRefusal> {
        self.signer_key(signer)?;
        let proposal = self.proposal(digest).ok_or_else(|| {
            CommandRefusal::NotFound(format!(
                "no proposal has digest {}; `admin proposals` lists the pending ones",
                hex::encode(digest)
            ))
        })?;
        if let Some(at) = proposal.in_force {
            return Err(CommandRefusal::Conflict(format!(
                "proposal {} ({}) is already in force, since entry {}",
                hex::encode(digest),
                proposal.change.describe(),
                at.index
            )));
        }
        if received_at >= proposal.expires_at() {
            return Err(CommandRefusal::Conflict(format!(
                "proposal {} ({}) lapsed at {}: approvals count only within 7 days of the proposal; propose it again",
                hex::encode(digest),
                proposal.change.describe(),
                format_millis(proposal.expires_at())
            )));
        }
        if let Some((_, at)) = proposal.signers().find(|(name, _)| *name == signer) {
            return Err(CommandRefusal::Conflict(format!(
                "admin key {signer} already signed proposal {} at entry {}; each admin counts once",
                hex::encode(digest),
                at.index
            )));
        }
        self.check_change(&proposal.change).map_err(|refusal| {
            CommandRefusal::Conflict(format!(
                "proposal {} ({}) can no longer take effect: {refusal}",
                hex::encode(digest),
                proposal.change.describe()
            ))
        })?;
        Ok(proposal.change.clone())
    }

    /// The admin-key parts of a change's validity; probes are the caller's.
    fn check_change(&self, change: &Change) -> Result<(), CommandRefusal> {
        match change {
            Change::AddAdminKey(key) => {
                if let Some(existing) = self.admin(&key.name) {
                    let state = if existing.revoked.is_some() {
                        "was revoked"
                    } else {
                        "is in use"
                    };
                    return Err(CommandRefusal::Conflict(format!(
                        "admin key name {} {state}; names are never reused, choose another",
                        key.name
                    )));
                }
                if let Some(existing) = self
                    .admins
                    .iter()
                    .find(|admin| admin.public_key == key.public_key)
                {
                    return Err(CommandRefusal::Conflict(match existing.revoked {
                        None => format!(
                            "this public key is already admin key {}; one key counts once toward the threshold",
                            existing.name
                        ),
                        Some(_) => format!(
                            "this public key was admin key {}, which was revoked; a revoked key never returns, generate a new one",
                            existing.name
                        ),
                    }));
                }
                Ok(())
            }
            Change::RevokeAdminKey { name, .. } => match self.admin(name) {
                None => Err(CommandRefusal::NotFound(format!(
                    "admin key {name} does not exist"
                ))),
                Some(AdminRecord {
                    revoked: Some(revocation),
                    ..
                }) => Err(CommandRefusal::Conflict(format!(
                    "admin key {name} is already revoked, since entry {}",
                    revocation.at.index
                ))),
                Some(_) if self.keys_in_force() <= self.threshold as usize => {
                    Err(CommandRefusal::Conflict(format!(
                        "revoking admin key {name} would leave {} key(s), fewer than the approval threshold of {}; add a key first",
                        self.keys_in_force() - 1,
                        self.threshold
                    )))
                }
                Some(_) => Ok(()),
            },
            Change::RegisterProbe { .. } | Change::RevokeProbe { .. } => Ok(()),
        }
    }

    /// Applies a step that [`Governance::check_proposal`] or
    /// [`Governance::check_approval`] accepted (or that the log holds) at `at`.
    /// Steps the log cannot hold (an approval of an unknown proposal) change nothing.
    pub fn apply(&mut self, at: Position, step: Step) -> Option<Effect> {
        let position = match step {
            Step::Propose {
                signer,
                body,
                signature,
                change,
            } => {
                let digest = digest(&body);
                if self.proposal_positions.contains_key(&digest) {
                    return None;
                }
                self.proposal_positions.insert(digest, self.proposals.len());
                self.proposals.push(Proposal {
                    digest,
                    proposer: signer,
                    body,
                    signature,
                    change,
                    proposed: at,
                    approvals: Vec::new(),
                    in_force: None,
                });
                self.proposals.len() - 1
            }
            Step::Approve { signer, digest } => {
                let position = *self.proposal_positions.get(&digest)?;
                let proposal = &mut self.proposals[position];
                if proposal.in_force.is_some() || at.received_at >= proposal.expires_at() {
                    return None;
                }
                proposal.approvals.push((signer, at));
                position
            }
        };
        let counted = self.counting(&self.proposals[position], None);
        let proposal = &self.proposals[position];
        let progress = Progress {
            digest: proposal.digest,
            approvals: counted.len() as u32,
            threshold: self.threshold,
            in_force: counted.len() >= self.threshold as usize,
        };
        if !progress.in_force {
            return Some(Effect::Pending(progress));
        }
        let change = proposal.change.clone();
        let proposer = proposal.proposer.clone();
        self.proposals[position].in_force = Some(at);
        match &change {
            Change::AddAdminKey(key) => self.add_admin(key.clone(), Some(at), counted.clone()),
            Change::RevokeAdminKey { name, reason } => {
                if let Some(&admin) = self.admin_positions.get(name) {
                    self.admins[admin].revoked.get_or_insert(Revocation {
                        at,
                        reason: reason.clone(),
                    });
                }
            }
            Change::RegisterProbe { .. } | Change::RevokeProbe { .. } => {}
        }
        Some(Effect::InForce {
            progress,
            change,
            proposer,
            approved_by: counted,
        })
    }

    /// Where a proposal stands now, for an answer to a retried command.
    pub fn progress(&self, digest: &Digest) -> Option<Progress> {
        let proposal = self.proposal(digest)?;
        let counted = self.counting(proposal, None);
        Some(Progress {
            digest: *digest,
            approvals: counted.len() as u32,
            threshold: self.threshold,
            in_force: proposal.in_force.is_some(),
        })
    }

    /// Signers of a proposal whose approval counts now (for a pending one) or counted
    /// when it took effect.
    pub fn counts(&self, proposal: &Proposal, name: &str) -> bool {
        match proposal.in_force {
            Some(at) => self.admin(name).is_some_and(|admin| {
                admin
                    .revoked
                    .as_ref()
                    .is_none_or(|r| r.at.index >= at.index)
            }),
            None => self.in_force(name),
        }
    }

    /// Every proposal as of ledger time `now` (a prefix's last `received_at`), in log order.
    pub fn proposal_statuses(&self, now: Millis) -> Vec<ProposalStatus> {
        self.proposals
            .iter()
            .map(|proposal| {
                let state = proposal.state(now);
                ProposalStatus {
                    digest: proposal.digest,
                    summary: proposal.change.describe(),
                    proposer: proposal.proposer.clone(),
                    proposed: proposal.proposed,
                    state,
                    signers: proposal
                        .signers()
                        .map(|(admin, at)| SignerStatus {
                            admin: admin.to_owned(),
                            at,
                            counts: self.counts(proposal, admin),
                        })
                        .collect(),
                    in_force: proposal.in_force,
                    expires_at: proposal.expires_at(),
                    approvals_needed: if state == ProposalState::Pending {
                        self.approvals_needed(proposal)
                    } else {
                        0
                    },
                    body: proposal.body.clone(),
                    signature: proposal.signature.clone(),
                }
            })
            .collect()
    }

    /// Counting approvals a pending proposal still needs.
    pub fn approvals_needed(&self, proposal: &Proposal) -> u32 {
        if proposal.in_force.is_some() {
            return 0;
        }
        (self.threshold as usize).saturating_sub(self.counting(proposal, None).len()) as u32
    }

    fn add_admin(&mut self, key: AdminKey, added: Option<Position>, added_by: Vec<String>) {
        if self.admin_positions.contains_key(&key.name) {
            return;
        }
        self.admin_positions
            .insert(key.name.clone(), self.admins.len());
        self.admins.push(AdminRecord {
            name: key.name,
            public_key: key.public_key,
            added,
            added_by,
            revoked: None,
        });
    }
}

#[cfg(test)]
mod tests;
