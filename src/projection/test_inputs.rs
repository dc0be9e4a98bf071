//! Projection inputs for tests: the genesis and the governance steps that register and
//! revoke probes, with real command bodies (a snapshot decodes them).

use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::model::{Genesis, ProjectionInput, Step};
use crate::crypto::PublicKey;
use crate::domain::{AdminCommand, AdminKey, Command, Digest, ProbeId};
use crate::entry;
use crate::governance::{self, Change};

/// A deterministic key per admin name.
pub(crate) fn admin_key(name: &str) -> PublicKey {
    PublicKey::from(&SigningKey::from_bytes(&governance::digest(
        name.as_bytes(),
    )))
}

/// The genesis naming `admins` with approval threshold `threshold`.
pub(crate) fn genesis(index: u64, threshold: u32, admins: &[&str]) -> ProjectionInput {
    ProjectionInput::Genesis {
        index,
        received_at: 0,
        genesis: Box::new(Genesis {
            origin: "test.example/log".into(),
            ledger_public_key: admin_key("ledger"),
            admin_keys: admins
                .iter()
                .map(|name| AdminKey {
                    name: (*name).into(),
                    public_key: admin_key(name),
                })
                .collect(),
            max_lateness: Duration::from_secs(3600),
            max_skew: Duration::from_secs(30),
            admin_threshold: threshold,
            previous_log: None,
        }),
    }
}

/// `signer` proposes `command` at `index` (its seq is the index, so every body differs);
/// answers the input and the proposal's digest.
fn propose(
    index: u64,
    received_at: i64,
    signer: &str,
    command: Command,
) -> (ProjectionInput, Digest) {
    let body = entry::encode_command(&AdminCommand {
        seq: index,
        issued_at: received_at,
        command: command.clone(),
    });
    let digest = governance::digest(&body);
    let step = Step::Propose {
        signer: signer.into(),
        body,
        signature: vec![0; 64],
        change: Change::of(&command).expect("a gated command"),
    };
    (
        ProjectionInput::Governance {
            index,
            received_at,
            step,
        },
        digest,
    )
}

pub(crate) fn register(
    index: u64,
    received_at: i64,
    signer: &str,
    probe_id: &str,
    location: &str,
) -> (ProjectionInput, Digest) {
    propose(
        index,
        received_at,
        signer,
        Command::RegisterProbe {
            probe_id: ProbeId::parse(probe_id).unwrap(),
            public_key: admin_key(probe_id),
            location: location.into(),
        },
    )
}

pub(crate) fn revoke(
    index: u64,
    received_at: i64,
    signer: &str,
    probe_id: &str,
) -> (ProjectionInput, Digest) {
    propose(
        index,
        received_at,
        signer,
        Command::RevokeProbe {
            probe_id: ProbeId::parse(probe_id).unwrap(),
            reason: "test".into(),
        },
    )
}

pub(crate) fn revoke_admin(
    index: u64,
    received_at: i64,
    signer: &str,
    name: &str,
) -> (ProjectionInput, Digest) {
    propose(
        index,
        received_at,
        signer,
        Command::RevokeAdminKey {
            name: name.into(),
            reason: "test".into(),
        },
    )
}

pub(crate) fn approve(
    index: u64,
    received_at: i64,
    signer: &str,
    digest: Digest,
) -> ProjectionInput {
    ProjectionInput::Governance {
        index,
        received_at,
        step: Step::Approve {
            signer: signer.into(),
            digest,
        },
    }
}
