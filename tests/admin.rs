//! Admin commands over real gRPC: each refusal has a clear status code and stores nothing.

mod common;

use std::time::Duration;

use common::*;
use tonic::Code;
use uptime_ledger::client;
use uptime_ledger::domain::{
    AdminCommand, Command, MaintenanceId, ProbeId, Quorum, ServiceId, ServiceSpec,
};
use uptime_ledger::pb;

fn spec(service_id: &str) -> ServiceSpec {
    ServiceSpec {
        service_id: ServiceId::parse(service_id).unwrap(),
        name: "Passport applications".into(),
        agency: "Immigration".into(),
        slo_target: 0.995,
        quorum: Quorum::AtLeast(2),
        staleness: Duration::from_secs(60),
    }
}

async fn apply_raw(
    ledger: &TestLedger,
    signed: pb::SignedCommand,
) -> Result<pb::ApplyResponse, tonic::Status> {
    ledger
        .admin_client()
        .await
        .apply(pb::ApplyRequest {
            command: Some(signed),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn assert_refused(ledger: &TestLedger, signed: pb::SignedCommand, code: Code, needle: &str) {
    let before = ledger.tree_size();
    let status = apply_raw(ledger, signed).await.unwrap_err();
    assert_eq!(status.code(), code, "{}", status.message());
    assert!(
        status.message().contains(needle),
        "{:?} should mention {needle:?}",
        status.message()
    );
    assert_eq!(
        ledger.tree_size(),
        before,
        "a refused command stores nothing"
    );
}

fn command(seq: u64, command: Command) -> AdminCommand {
    AdminCommand {
        seq,
        issued_at: T0,
        command,
    }
}

#[tokio::test]
async fn commands_apply_and_refusals_are_clear() {
    let mut ledger = TestLedger::start().await;
    let admin = ledger.admin.clone();
    let define = client::sign_command(
        "admin",
        &admin,
        &command(10, Command::DefineService(spec("passport"))),
    );
    let applied = apply_raw(&ledger, define.clone()).await.unwrap();
    assert!(!applied.duplicate);
    assert_eq!(applied.index, 1);

    // A retry of the same bytes is answered with the original index.
    let again = apply_raw(&ledger, define).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.index, 1);

    // Unknown signer, bad signature, stale seq.
    let stranger = client::sign_command(
        "mallory",
        &key(66),
        &command(11, Command::DefineService(spec("x"))),
    );
    assert_refused(&ledger, stranger, Code::PermissionDenied, "mallory").await;
    let forged = client::sign_command(
        "admin",
        &key(66),
        &command(11, Command::DefineService(spec("x"))),
    );
    assert_refused(&ledger, forged, Code::Unauthenticated, "does not verify").await;
    let stale = client::sign_command(
        "admin",
        &admin,
        &command(10, Command::DefineService(spec("other"))),
    );
    assert_refused(&ledger, stale, Code::FailedPrecondition, "seq").await;

    // Invalid in the current state.
    let revoke_unknown = client::sign_command(
        "admin",
        &admin,
        &command(
            12,
            Command::RevokeProbe {
                probe_id: ProbeId::parse("nobody").unwrap(),
                reason: String::new(),
            },
        ),
    );
    assert_refused(&ledger, revoke_unknown, Code::NotFound, "nobody").await;
    let cancel_unknown = client::sign_command(
        "admin",
        &admin,
        &command(
            13,
            Command::CancelMaintenance {
                maintenance_id: MaintenanceId::parse("m-unknown").unwrap(),
            },
        ),
    );
    assert_refused(&ledger, cancel_unknown, Code::NotFound, "m-unknown").await;
    let maintenance_unknown_service = client::sign_command(
        "admin",
        &admin,
        &command(
            14,
            Command::ScheduleMaintenance {
                maintenance_id: MaintenanceId::parse("m1").unwrap(),
                service_id: ServiceId::parse("tax").unwrap(),
                start: T0,
                end: T0 + 1000,
                reason: String::new(),
            },
        ),
    );
    assert_refused(&ledger, maintenance_unknown_service, Code::NotFound, "tax").await;

    // Invalid on their own: end before start, slo_target outside (0, 1), AT_LEAST(0).
    let backwards = client::sign_command(
        "admin",
        &admin,
        &command(
            15,
            Command::ScheduleMaintenance {
                maintenance_id: MaintenanceId::parse("m2").unwrap(),
                service_id: ServiceId::parse("passport").unwrap(),
                start: T0 + 1000,
                end: T0,
                reason: String::new(),
            },
        ),
    );
    assert_refused(
        &ledger,
        backwards,
        Code::InvalidArgument,
        "end must be after",
    )
    .await;
    for bad_target in [0.0, 1.0, 1.5] {
        let mut bad = spec("passport");
        bad.slo_target = bad_target;
        let signed =
            client::sign_command("admin", &admin, &command(16, Command::DefineService(bad)));
        assert_refused(&ledger, signed, Code::InvalidArgument, "slo_target").await;
    }
    let mut zero_quorum = spec("passport");
    zero_quorum.quorum = Quorum::AtLeast(0);
    let signed = client::sign_command(
        "admin",
        &admin,
        &command(17, Command::DefineService(zero_quorum)),
    );
    assert_refused(&ledger, signed, Code::InvalidArgument, "at_least").await;
    assert_refused(
        &ledger,
        pb::SignedCommand {
            signer: "admin".into(),
            body: vec![0xff, 0x01],
            signature: vec![0; 64],
        },
        Code::InvalidArgument,
        "decode",
    )
    .await;

    // Probe lifecycle: register, refuse a second registration, revoke, refuse a second revoke.
    ledger.admin_seq = 100;
    ledger.register_probe("p1", &key(1)).await;
    let again = ledger
        .apply(Command::RegisterProbe {
            probe_id: ProbeId::parse("p1").unwrap(),
            public_key: uptime_ledger::crypto::PublicKey::from(&key(5)),
            location: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let revoke = Command::RevokeProbe {
        probe_id: ProbeId::parse("p1").unwrap(),
        reason: "lost".into(),
    };
    ledger.apply(revoke.clone()).await.unwrap();
    assert_eq!(
        ledger.apply(revoke).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    // Maintenance lifecycle: schedule, refuse a reused id, cancel, refuse a second cancel.
    let schedule = Command::ScheduleMaintenance {
        maintenance_id: MaintenanceId::parse("m3").unwrap(),
        service_id: ServiceId::parse("passport").unwrap(),
        start: T0 + 60_000,
        end: T0 + 120_000,
        reason: "upgrade".into(),
    };
    ledger.apply(schedule.clone()).await.unwrap();
    assert_eq!(
        ledger.apply(schedule).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    let cancel = Command::CancelMaintenance {
        maintenance_id: MaintenanceId::parse("m3").unwrap(),
    };
    ledger.apply(cancel.clone()).await.unwrap();
    assert_eq!(
        ledger.apply(cancel).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
}

/// The key rule at `RegisterProbe`: the identity, points of small order, a prime-order
/// point plus a small-order one, and a non-canonical encoding are INVALID_ARGUMENT, and
/// nothing is stored.
#[tokio::test]
async fn register_probe_refuses_weak_keys() {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use prost::Message;
    let mut ledger = TestLedger::start().await;
    let mut weak: Vec<(Vec<u8>, &str)> = EIGHT_TORSION
        .iter()
        .map(|point| (point.compress().to_bytes().to_vec(), "small order"))
        .collect();
    let mixed = (ED25519_BASEPOINT_POINT + EIGHT_TORSION[1]).compress();
    weak.push((mixed.to_bytes().to_vec(), "small-order component"));
    // The identity encoded with the sign bit set ("x = -0").
    let mut minus_zero = vec![0u8; 32];
    minus_zero[0] = 1;
    minus_zero[31] = 0x80;
    weak.push((minus_zero, "not the canonical encoding"));
    weak.push((vec![9; 31], "32"));
    for (seq, (public_key, needle)) in weak.into_iter().enumerate() {
        let body = pb::AdminCommand {
            seq: seq as u64 + 1,
            issued_at: Some(prost_types::Timestamp {
                seconds: T0 / 1000,
                nanos: 0,
            }),
            command: Some(pb::admin_command::Command::RegisterProbe(
                pb::RegisterProbe {
                    probe_id: format!("weak{seq}"),
                    public_key,
                    location: String::new(),
                },
            )),
        }
        .encode_to_vec();
        let signature = uptime_ledger::crypto::sign(
            &ledger.admin,
            uptime_ledger::crypto::SigningContext::Command,
            &body,
        )
        .to_vec();
        let signed = pb::SignedCommand {
            signer: "admin".into(),
            body,
            signature,
        };
        assert_refused(&ledger, signed, Code::InvalidArgument, needle).await;
    }
    // An honest key is still registered after them.
    ledger.admin_seq = 100;
    ledger.register_probe("p1", &key(1)).await;
}
