use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::*;
use crate::domain::{AdminCommand, ProbeId};
use crate::entry;

const DAY: Millis = 86_400_000;

fn key(name: &str) -> PublicKey {
    PublicKey::from(&SigningKey::from_bytes(&digest(name.as_bytes())))
}

fn genesis(threshold: u32, admins: &[&str]) -> Genesis {
    Genesis {
        origin: "test.example/log".into(),
        ledger_public_key: key("ledger"),
        admin_keys: admins
            .iter()
            .map(|name| AdminKey {
                name: (*name).into(),
                public_key: key(name),
            })
            .collect(),
        max_lateness: Duration::from_secs(3600),
        max_skew: Duration::from_secs(30),
        admin_threshold: threshold,
        previous_log: None,
    }
}

/// A governance and the next entry index, stepping commands through check then apply the
/// way the registry does.
struct Log {
    governance: Governance,
    next: u64,
}

impl Log {
    fn new(threshold: u32, admins: &[&str]) -> Log {
        Log {
            governance: Governance::new(&genesis(threshold, admins)),
            next: 1,
        }
    }

    fn at(&mut self, received_at: Millis) -> Position {
        self.next += 1;
        Position {
            index: self.next - 1,
            received_at,
        }
    }

    /// `signer` proposes `change`; answers its digest and the effect.
    fn propose(
        &mut self,
        received_at: Millis,
        signer: &str,
        change: Change,
    ) -> Result<(Digest, Effect), CommandRefusal> {
        let command = match change.clone() {
            Change::AddAdminKey(key) => Command::AddAdminKey(key),
            Change::RevokeAdminKey { name, reason } => Command::RevokeAdminKey { name, reason },
            Change::RegisterProbe {
                probe_id,
                public_key,
                location,
            } => Command::RegisterProbe {
                probe_id,
                public_key,
                location,
            },
            Change::RevokeProbe { probe_id, reason } => Command::RevokeProbe { probe_id, reason },
        };
        let body = entry::encode_command(&AdminCommand {
            seq: self.next,
            issued_at: received_at,
            command,
        });
        self.governance
            .check_proposal(signer, &digest(&body), &change)?;
        let at = self.at(received_at);
        let step = Step::Propose {
            signer: signer.into(),
            body: body.clone(),
            signature: vec![0; 64],
            change,
        };
        let effect = self.governance.apply(at, step).expect("a new proposal");
        Ok((digest(&body), effect))
    }

    fn approve(
        &mut self,
        received_at: Millis,
        signer: &str,
        digest: Digest,
    ) -> Result<Effect, CommandRefusal> {
        self.governance
            .check_approval(signer, &digest, received_at)?;
        let at = self.at(received_at);
        Ok(self
            .governance
            .apply(
                at,
                Step::Approve {
                    signer: signer.into(),
                    digest,
                },
            )
            .expect("an approval check accepted"))
    }
}

fn add(name: &str) -> Change {
    Change::AddAdminKey(AdminKey {
        name: name.into(),
        public_key: key(name),
    })
}

fn revoke(name: &str) -> Change {
    Change::RevokeAdminKey {
        name: name.into(),
        reason: "laptop stolen".into(),
    }
}

fn register(probe: &str) -> Change {
    Change::RegisterProbe {
        probe_id: ProbeId::parse(probe).unwrap(),
        public_key: key(probe),
        location: "Nairobi".into(),
    }
}

fn in_force(effect: &Effect) -> bool {
    matches!(effect, Effect::InForce { .. })
}

#[test]
fn with_threshold_one_a_change_is_in_force_at_its_own_entry() {
    let mut log = Log::new(0, &["alice"]);
    assert_eq!(log.governance.threshold(), 1, "0 reads as 1");
    let (_, effect) = log.propose(0, "alice", add("bob")).unwrap();
    assert!(in_force(&effect));
    let bob = log.governance.admin("bob").unwrap();
    assert_eq!(bob.added.map(|at| at.index), Some(1));
    assert_eq!(bob.added_by, ["alice"]);
    assert_eq!(log.governance.signer_key("bob").unwrap(), &key("bob"));
}

#[test]
fn a_revoked_key_signs_nothing_from_its_revocation_on() {
    let mut log = Log::new(1, &["alice", "bob"]);
    log.propose(0, "bob", register("p1")).unwrap();
    log.propose(0, "alice", revoke("bob")).unwrap();
    assert_eq!(
        log.governance.signer_key("bob"),
        Err(CommandRefusal::RevokedSigner {
            signer: "bob".into(),
            index: 2
        })
    );
    assert_eq!(
        log.propose(0, "bob", register("p2")),
        Err(CommandRefusal::RevokedSigner {
            signer: "bob".into(),
            index: 2
        })
    );
    // What bob signed before stays: his proposal is still in force, and counted.
    let first = &log.governance.proposals()[0];
    assert!(first.in_force.is_some());
    assert!(log.governance.counts(first, "bob"));
    assert_eq!(
        log.governance.signer_key("carol"),
        Err(CommandRefusal::UnknownSigner("carol".into()))
    );
}

#[test]
fn names_are_never_reused_and_a_key_counts_once() {
    let mut log = Log::new(1, &["alice", "bob"]);
    log.propose(0, "alice", revoke("bob")).unwrap();
    let refusal = log.propose(0, "alice", add("bob")).unwrap_err();
    assert!(
        matches!(&refusal, CommandRefusal::Conflict(m) if m.contains("never reused")),
        "{refusal}"
    );
    let same_key = Change::AddAdminKey(AdminKey {
        name: "alice2".into(),
        public_key: key("alice"),
    });
    let refusal = log.propose(0, "alice", same_key).unwrap_err();
    assert!(
        matches!(&refusal, CommandRefusal::Conflict(m) if m.contains("already admin key alice")),
        "{refusal}"
    );
    assert!(matches!(
        log.propose(0, "alice", revoke("nobody")),
        Err(CommandRefusal::NotFound(_))
    ));
    assert!(matches!(
        log.propose(0, "alice", revoke("bob")),
        Err(CommandRefusal::Conflict(_))
    ));
    assert_eq!(log.governance.admins().len(), 2, "nothing took effect");
}

#[test]
fn revoking_below_the_threshold_is_refused() {
    let mut log = Log::new(2, &["alice", "bob"]);
    let refusal = log.propose(0, "alice", revoke("bob")).unwrap_err();
    assert!(
        matches!(&refusal, CommandRefusal::Conflict(m) if m.contains("fewer than the approval threshold of 2")),
        "{refusal}"
    );
    assert!(log.governance.proposals().is_empty());
}

#[test]
fn with_threshold_two_the_second_distinct_admin_puts_it_in_force() {
    let mut log = Log::new(2, &["alice", "bob", "carol"]);
    let (digest, effect) = log.propose(0, "alice", register("p1")).unwrap();
    assert_eq!(
        effect,
        Effect::Pending(Progress {
            digest,
            approvals: 1,
            threshold: 2,
            in_force: false
        })
    );
    // The same admin approving twice counts once: refused, nothing changes.
    let refusal = log.approve(DAY, "alice", digest).unwrap_err();
    assert!(
        matches!(&refusal, CommandRefusal::Conflict(m) if m.contains("each admin counts once")),
        "{refusal}"
    );
    assert_eq!(log.governance.proposals()[0].approvals.len(), 0);
    assert!(matches!(
        log.approve(DAY, "mallory", digest),
        Err(CommandRefusal::UnknownSigner(_))
    ));
    let effect = log.approve(DAY, "bob", digest).unwrap();
    let Effect::InForce {
        change,
        proposer,
        approved_by,
        progress,
    } = effect
    else {
        panic!("not in force: {effect:?}")
    };
    assert_eq!(
        (change, proposer.as_str(), approved_by.as_slice()),
        (
            register("p1"),
            "alice",
            ["alice".to_string(), "bob".to_string()].as_slice()
        )
    );
    assert_eq!(progress.approvals, 2);
    assert_eq!(
        log.governance.proposals()[0].in_force.map(|at| at.index),
        Some(2)
    );
    // A third approval comes too late.
    let refusal = log.approve(DAY, "carol", digest).unwrap_err();
    assert!(
        matches!(&refusal, CommandRefusal::Conflict(m) if m.contains("already in force")),
        "{refusal}"
    );
    assert!(matches!(
        log.approve(DAY, "carol", [7; 32]),
        Err(CommandRefusal::NotFound(_))
    ));
}

#[test]
fn an_approval_after_seven_days_lapses() {
    let mut log = Log::new(2, &["alice", "bob"]);
    let (digest, _) = log.propose(1_000, "alice", register("p1")).unwrap();
    let proposal = log.governance.proposal(&digest).unwrap().clone();
    assert_eq!(proposal.expires_at(), 1_000 + 7 * DAY);
    assert_eq!(proposal.state(1_000 + 7 * DAY - 1), ProposalState::Pending);
    assert_eq!(proposal.state(1_000 + 7 * DAY), ProposalState::Lapsed);
    let refusal = log.approve(1_000 + 7 * DAY, "bob", digest).unwrap_err();
    assert!(
        matches!(&refusal, CommandRefusal::Conflict(m) if m.contains("lapsed")),
        "{refusal}"
    );
    // An approval the log holds anyway (a log that broke the rule) changes nothing.
    let at = log.at(1_000 + 8 * DAY);
    assert_eq!(
        log.governance.apply(
            at,
            Step::Approve {
                signer: "bob".into(),
                digest
            }
        ),
        None
    );
    // One millisecond inside the window counts.
    let (digest, _) = log.propose(0, "alice", register("p2")).unwrap();
    assert!(in_force(&log.approve(7 * DAY - 1, "bob", digest).unwrap()));
}

#[test]
fn an_approval_from_a_key_revoked_before_the_deciding_entry_does_not_count() {
    let mut log = Log::new(3, &["alice", "bob", "carol", "dave"]);
    let (digest, _) = log.propose(0, "alice", register("p1")).unwrap();
    let effect = log.approve(0, "bob", digest).unwrap();
    assert_eq!(effect.progress().approvals, 2);
    // bob is revoked (alice proposes, carol and dave approve).
    let (revocation, _) = log.propose(0, "alice", revoke("bob")).unwrap();
    log.approve(0, "carol", revocation).unwrap();
    assert!(in_force(&log.approve(0, "dave", revocation).unwrap()));
    // carol's approval makes three signatures, but bob's no longer counts.
    let effect = log.approve(0, "carol", digest).unwrap();
    assert_eq!(
        effect,
        Effect::Pending(Progress {
            digest,
            approvals: 2,
            threshold: 3,
            in_force: false
        })
    );
    let status = &log.governance.proposal_statuses(0)[0];
    assert_eq!(
        status
            .signers
            .iter()
            .map(|s| (s.admin.as_str(), s.counts))
            .collect::<Vec<_>>(),
        [("alice", true), ("bob", false), ("carol", true)]
    );
    assert_eq!(status.approvals_needed, 1);
    assert!(in_force(&log.approve(0, "dave", digest).unwrap()));
    let status = &log.governance.proposal_statuses(0)[0];
    assert_eq!(status.state, ProposalState::InForce);
    assert_eq!(status.approvals_needed, 0);
}

#[test]
fn a_change_that_can_no_longer_take_effect_refuses_its_deciding_approval() {
    let mut log = Log::new(2, &["alice", "bob", "carol"]);
    let (first, _) = log.propose(0, "alice", add("dave")).unwrap();
    let (second, _) = log.propose(0, "bob", add("dave")).unwrap();
    assert!(in_force(&log.approve(0, "carol", first).unwrap()));
    let refusal = log.approve(0, "alice", second).unwrap_err();
    assert!(
        matches!(&refusal, CommandRefusal::Conflict(m) if m.contains("can no longer take effect")),
        "{refusal}"
    );
}

#[test]
fn the_same_bytes_proposed_again_are_refused_and_a_revoked_key_never_returns() {
    let mut log = Log::new(2, &["alice", "bob"]);
    let (digest, _) = log.propose(0, "alice", register("p1")).unwrap();
    let refusal = log
        .governance
        .check_proposal("bob", &digest, &register("p1"))
        .unwrap_err();
    assert!(
        matches!(&refusal, CommandRefusal::Conflict(m) if m.contains("already proposed by alice")),
        "{refusal}"
    );
    let mut log = Log::new(1, &["alice", "bob"]);
    log.propose(0, "alice", revoke("bob")).unwrap();
    let same_key = Change::AddAdminKey(AdminKey {
        name: "bob2".into(),
        public_key: key("bob"),
    });
    let refusal = log.propose(0, "alice", same_key).unwrap_err();
    assert!(
        matches!(&refusal, CommandRefusal::Conflict(m) if m.contains("never returns")),
        "{refusal}"
    );
}

#[test]
fn a_genesis_whose_threshold_nobody_can_meet_is_refused() {
    assert!(check_genesis(&genesis(2, &["alice", "bob"])).is_ok());
    let mut repeated = genesis(1, &["alice", "bob"]);
    repeated.admin_keys[1].public_key = key("alice");
    let error = check_genesis(&repeated).unwrap_err();
    assert!(
        error.contains("repeats another admin's public key"),
        "{error}"
    );
    let error = check_genesis(&genesis(3, &["alice", "bob"])).unwrap_err();
    assert!(error.contains("threshold is 3"), "{error}");
    let error = check_genesis(&genesis(1, &["alice", "alice"])).unwrap_err();
    assert!(error.contains("twice"), "{error}");
}

#[test]
fn parts_round_trip_and_a_wrong_digest_is_refused() {
    let mut log = Log::new(2, &["alice", "bob"]);
    log.propose(0, "alice", register("p1")).unwrap();
    let governance = &log.governance;
    let rebuilt = Governance::from_parts(
        governance.threshold(),
        governance.admins().to_vec(),
        governance.proposals().to_vec(),
    )
    .unwrap();
    assert_eq!(&rebuilt, governance);
    let mut proposals = governance.proposals().to_vec();
    proposals[0].digest = [0; 32];
    assert!(Governance::from_parts(2, governance.admins().to_vec(), proposals).is_err());
}
