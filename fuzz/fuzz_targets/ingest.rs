//! Untrusted request bytes through the functions the server runs on them: the protobuf
//! decoding tonic does for `Submit`, `SubmitStream` and `Apply`, then ingest rules 1–3
//! (`log::verify_envelopes`, and `log::verify_batches` as the verification pool runs it on
//! several requests at once) and the command checks (`log::verify_command`,
//! `Registry::check`, `Registry::apply`) against a registry with one service and one
//! probe; and the stored-entry decoder that recovery and `audit` run on log bytes.
//!
//! The same bytes are also signed with the registered probe's and the admin's keys, so that
//! inputs get past signature verification and reach everything behind it.
//!
//! Checked: nothing panics; an observation that decodes for the registered probe and
//! service and carries a valid signature is verified; a valid signed command is verified
//! and checking and applying it never panic; every accepted body respects the size limits.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use prost::Message;

use uptime_ledger::crypto::{self, PublicKey, SigningContext};
use uptime_ledger::domain::{
    AdminCommand, AdminKey, Command, Genesis, ProbeId, Quorum, ServiceId, ServiceSpec,
};
use uptime_ledger::entry;
use uptime_ledger::governance::Position;
use uptime_ledger::log::registry::CommandCheck;
use uptime_ledger::log::{verify_batches, verify_command, verify_envelopes, Envelope, Registry};
use uptime_ledger::pb;

struct World {
    registry: Registry,
    probe: SigningKey,
    admin: SigningKey,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let admin = SigningKey::from_bytes(&[1; 32]);
        let probe = SigningKey::from_bytes(&[2; 32]);
        let mut registry = Registry::new(Genesis {
            origin: "fuzz.example/log".into(),
            ledger_public_key: PublicKey::from(&SigningKey::from_bytes(&[3; 32])),
            admin_keys: vec![AdminKey {
                name: "admin".into(),
                public_key: PublicKey::from(&admin),
            }],
            max_lateness: Duration::from_secs(3600),
            max_skew: Duration::from_secs(30),
            admin_threshold: 1,
            previous_log: None,
        });
        let commands = [
            Command::DefineService(ServiceSpec {
                service_id: ServiceId::parse("svc").unwrap(),
                name: "Service".into(),
                agency: "Agency".into(),
                slo_target: 0.99,
                quorum: Quorum::Majority,
                staleness: Duration::from_secs(90),
            }),
            Command::RegisterProbe {
                probe_id: ProbeId::parse("p1").unwrap(),
                public_key: PublicKey::from(&probe),
                location: "here".into(),
            },
        ];
        for (seq, command) in commands.into_iter().enumerate() {
            let command = AdminCommand {
                seq: seq as u64 + 1,
                issued_at: 0,
                command,
            };
            let body = entry::encode_command(&command);
            let at = Position {
                index: seq as u64 + 1,
                received_at: 0,
            };
            registry.apply(at, "admin", &body, &[], &command);
        }
        World {
            registry,
            probe,
            admin,
        }
    })
}

fn envelope(signed: pb::SignedObservation) -> Envelope {
    Envelope {
        body: signed.body,
        signature: signed.signature,
    }
}

/// What a batch's verdicts say: accepted, or the reason of the rejection.
fn verdicts(
    verdicts: Vec<Result<uptime_ledger::log::VerifiedObservation, uptime_ledger::domain::Rejection>>,
) -> Vec<Result<(), uptime_ledger::domain::RejectReason>> {
    verdicts
        .into_iter()
        .map(|verdict| verdict.map(|_| ()).map_err(|rejection| rejection.reason))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let world = world();

    // Submit and SubmitStream requests, as tonic decodes them, then ingest rules 1–3.
    if let Ok(request) = pb::SubmitRequest::decode(data) {
        let envelopes: Vec<Envelope> = request.observations.into_iter().map(envelope).collect();
        let count = envelopes.len();
        let alone = verdicts(verify_envelopes(&world.registry, envelopes.clone()));
        assert_eq!(alone.len(), count);
        // As the verification pool runs it: together with another request's batch. Each
        // observation's verdict is its verdict alone, whatever it is taken with.
        let mut together = verify_batches(vec![
            (&world.registry, envelopes.clone()),
            (&world.registry, envelopes.iter().rev().cloned().collect()),
        ])
        .into_iter()
        .map(verdicts);
        assert_eq!(together.next(), Some(alone.clone()));
        let mut reversed = together.next().expect("two batches");
        reversed.reverse();
        assert_eq!(reversed, alone);
    }
    if let Ok(request) = pb::SubmitStreamRequest::decode(data) {
        let signed = request.observation.unwrap_or_default();
        assert_eq!(
            verify_envelopes(&world.registry, vec![envelope(signed)]).len(),
            1
        );
    }

    // The bytes as an observation body, signed by the registered probe.
    let signature = crypto::sign(&world.probe, SigningContext::Observation, data).to_vec();
    let verdict = verify_envelopes(
        &world.registry,
        vec![Envelope {
            body: data.to_vec(),
            signature,
        }],
    )
    .pop()
    .expect("one verdict per envelope");
    match entry::decode_observation(data) {
        Ok(observation) => {
            assert!(data.len() <= entry::MAX_OBSERVATION_BODY_BYTES);
            let ours =
                observation.probe_id.as_str() == "p1" && observation.service_id.as_str() == "svc";
            assert_eq!(verdict.is_ok(), ours, "{verdict:?}");
            if let Ok(verified) = verdict {
                assert_eq!(verified.observation(), &observation);
            }
        }
        Err(_) => assert!(verdict.is_err()),
    }

    // Apply requests, as tonic decodes them, then the command checks.
    if let Ok(request) = pb::ApplyRequest::decode(data) {
        let signed = request.command.unwrap_or_default();
        if let Ok(verified) = verify_command(
            &world.registry,
            signed.signer,
            signed.body,
            signed.signature,
        ) {
            let _ = world
                .registry
                .check(verified.signer(), verified.body(), verified.command(), 0);
        }
    }

    // The bytes as a command body, signed by the admin: decode, check, and apply.
    let signature = crypto::sign(&world.admin, SigningContext::Command, data).to_vec();
    match verify_command(&world.registry, "admin".into(), data.to_vec(), signature) {
        Ok(verified) => {
            assert!(data.len() <= entry::MAX_COMMAND_BODY_BYTES);
            let check =
                world
                    .registry
                    .check(verified.signer(), verified.body(), verified.command(), 0);
            if let Ok(CommandCheck::Apply) = check {
                let mut registry = world.registry.clone();
                let at = Position {
                    index: 3,
                    received_at: 0,
                };
                registry.apply(at, verified.signer(), verified.body(), &[], verified.command());
            }
        }
        Err(_) => assert!(entry::decode_command(data).is_err()),
    }

    // The bytes as (key, signature, message): the signature rule agrees with
    // ed25519-dalek's `verify_strict` on every key the key rule admits.
    if data.len() >= 96 {
        let (key, rest) = data.split_at(32);
        let (signature, message) = rest.split_at(64);
        if let Ok(public) = PublicKey::from_bytes(key) {
            let strict = public
                .verifying_key()
                .verify_strict(
                    message,
                    &ed25519_dalek::Signature::from_slice(signature).expect("64 bytes"),
                )
                .is_ok();
            assert_eq!(public.verify_message(message, signature), strict);
        }
    }

    // A stored log entry (recovery, `log entries`, `audit`).
    if let Ok(decoded) = entry::decode_entry(data) {
        let _ = format!("{decoded:?}");
    }
});
