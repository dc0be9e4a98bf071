//! A trust root that can be repaired, over real gRPC, real sled and the real binary: admin
//! keys added and revoked in the log, k-of-n approval of who may write, and a successor log
//! that `audit` chains to its predecessor. Every refusal checks its code and that nothing
//! was stored.

mod common;

use common::process::run as cli;

use std::path::Path;
use std::process::Command as Process;

use common::process::{self, BINARY};
use common::*;
use ed25519_dalek::SigningKey;
use tonic::Code;
use uptime_ledger::client;
use uptime_ledger::crypto::PublicKey;
use uptime_ledger::domain::{AdminCommand, AdminKey, Command, Digest, ProbeId, Status};
use uptime_ledger::governance;
use uptime_ledger::log::GenesisParams;
use uptime_ledger::pb;
use uptime_ledger::pb::query_service_client::QueryServiceClient;

const DAY: i64 = 86_400_000;

/// Signs and applies commands as named admins, each with its own seq.
struct Admins {
    keys: Vec<(&'static str, SigningKey)>,
    seq: u64,
}

impl Admins {
    fn new(names: &[&'static str]) -> Admins {
        Admins {
            keys: names
                .iter()
                .enumerate()
                .map(|(n, name)| (*name, key(100 + n as u8)))
                .collect(),
            seq: 0,
        }
    }

    /// The key of a test admin; a name the genesis never saw signs with a key of its own.
    fn key(&self, name: &str) -> SigningKey {
        self.keys
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| key(99), |(_, key)| key.clone())
    }

    fn genesis_keys(&self) -> Vec<AdminKey> {
        self.keys
            .iter()
            .map(|(name, key)| AdminKey {
                name: (*name).into(),
                public_key: PublicKey::from(key),
            })
            .collect()
    }

    /// `signer`'s signed command (with a fresh seq) and its proposal digest.
    fn sign(
        &mut self,
        ledger: &TestLedger,
        signer: &str,
        command: Command,
    ) -> (pb::SignedCommand, Digest) {
        self.seq += 1;
        let signed = client::sign_command(
            signer,
            &self.key(signer),
            &AdminCommand {
                seq: self.seq,
                issued_at: ledger.clock_now(),
                command,
            },
        );
        let digest = governance::digest(&signed.body);
        (signed, digest)
    }

    async fn apply(
        &mut self,
        ledger: &TestLedger,
        signer: &str,
        command: Command,
    ) -> Result<(pb::ApplyResponse, Digest), tonic::Status> {
        let (signed, digest) = self.sign(ledger, signer, command);
        let response = ledger
            .admin_client()
            .await
            .apply(pb::ApplyRequest {
                command: Some(signed),
            })
            .await?
            .into_inner();
        Ok((response, digest))
    }

    /// Applies a command that must be refused with `code` and a message containing
    /// `needle`, and checks that nothing was stored.
    async fn refused(
        &mut self,
        ledger: &TestLedger,
        signer: &str,
        command: Command,
        code: Code,
        needle: &str,
    ) {
        let before = ledger.tree_size();
        let status = self.apply(ledger, signer, command).await.unwrap_err();
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
}

fn spec(service_id: &str) -> uptime_ledger::domain::ServiceSpec {
    uptime_ledger::domain::ServiceSpec {
        service_id: uptime_ledger::domain::ServiceId::parse(service_id).unwrap(),
        name: "Passport applications".into(),
        agency: "Immigration".into(),
        slo_target: 0.995,
        quorum: uptime_ledger::domain::Quorum::Any,
        staleness: std::time::Duration::from_secs(60),
    }
}

fn add_key(name: &str, key: &SigningKey) -> Command {
    Command::AddAdminKey(AdminKey {
        name: name.into(),
        public_key: PublicKey::from(key),
    })
}

fn revoke_key(name: &str) -> Command {
    Command::RevokeAdminKey {
        name: name.into(),
        reason: "laptop stolen".into(),
    }
}

fn register(probe_id: &str, probe_key: &SigningKey) -> Command {
    Command::RegisterProbe {
        probe_id: ProbeId::parse(probe_id).unwrap(),
        public_key: PublicKey::from(probe_key),
        location: "Nairobi".into(),
    }
}

fn approve(digest: Digest) -> Command {
    Command::ApproveCommand {
        proposal_digest: digest,
    }
}

/// Submits one UP observation; answers its ack (and checks a rejection stored nothing).
async fn submit(ledger: &TestLedger, probe_key: &SigningKey, probe_id: &str, seq: u64) -> pb::Ack {
    let before = ledger.tree_size();
    let now = ledger.clock_now();
    let ack = ledger
        .submit(vec![observation(
            probe_key,
            probe_id,
            "svc",
            seq,
            now,
            Status::Up,
        )])
        .await
        .remove(0);
    if !accepted(&ack) {
        assert_eq!(
            ledger.tree_size(),
            before,
            "a rejected observation stores nothing"
        );
    }
    ack
}

async fn query(ledger: &TestLedger) -> QueryServiceClient<tonic::transport::Channel> {
    QueryServiceClient::new(ledger.channel().await)
}

async fn proposals(ledger: &TestLedger, pending_only: bool) -> pb::ListProposalsResponse {
    ledger.wait_for_projection().await;
    query(ledger)
        .await
        .list_proposals(pb::ListProposalsRequest {
            tree_size: 0,
            pending_only,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn admin_keys(ledger: &TestLedger) -> pb::ListAdminKeysResponse {
    ledger.wait_for_projection().await;
    query(ledger)
        .await
        .list_admin_keys(pb::ListAdminKeysRequest { tree_size: 0 })
        .await
        .unwrap()
        .into_inner()
}

async fn probe_report(ledger: &TestLedger, probe_id: &str) -> pb::ProbeReport {
    ledger.wait_for_projection().await;
    query(ledger)
        .await
        .get_service(pb::GetServiceRequest {
            service_id: "svc".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .probes
        .into_iter()
        .find(|probe| probe.probe_id == probe_id)
        .expect("the probe has reported")
}

async fn cli_ok(args: &[&str]) -> String {
    process::stdout(&cli(args).await)
}

/// `audit` of the ledger at `address` (pinning its own checkpoint key): its output.
async fn audit(address: &str, verifier_key: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "audit",
        "--ledger",
        address,
        "--verifier-key",
        verifier_key,
        "--window",
        "last-7d",
    ];
    args.extend_from_slice(extra);
    cli(&args).await
}

async fn verifier_key(ledger: &TestLedger) -> String {
    ledger.wait_for_checkpoint().await.verifier_key
}

#[tokio::test]
async fn an_added_key_signs_until_it_is_revoked_and_what_it_signed_stays() {
    let mut admins = Admins::new(&["admin"]);
    let mut ledger = TestLedger::start_with_genesis(GenesisParams {
        admin_keys: Some(admins.genesis_keys()),
        ..GenesisParams::default()
    })
    .await;
    admins
        .apply(&ledger, "admin", Command::DefineService(spec("svc")))
        .await
        .unwrap();

    // admin adds ops: with a threshold of 1 it is in force at its own entry.
    let ops = key(150);
    admins.keys.push(("ops", ops.clone()));
    let (added, _) = admins
        .apply(&ledger, "admin", add_key("ops", &ops))
        .await
        .unwrap();
    let progress = added
        .proposal
        .expect("a gated command answers its proposal");
    assert!(progress.in_force);
    assert_eq!((progress.approvals, progress.threshold), (1, 1));

    // ops registers a probe, which submits.
    let probe = key(160);
    let (registered, _) = admins
        .apply(&ledger, "ops", register("p1", &probe))
        .await
        .unwrap();
    assert!(accepted(&submit(&ledger, &probe, "p1", 1).await));

    // The rejection paths, each storing nothing.
    admins
        .refused(
            &ledger,
            "admin",
            add_key("ops", &key(151)),
            Code::FailedPrecondition,
            "never reused",
        )
        .await;
    admins
        .refused(
            &ledger,
            "admin",
            add_key("ops2", &ops),
            Code::FailedPrecondition,
            "already admin key ops",
        )
        .await;
    admins
        .refused(
            &ledger,
            "admin",
            revoke_key("nobody"),
            Code::NotFound,
            "does not exist",
        )
        .await;

    // admin revokes ops.
    let (revoked, _) = admins
        .apply(&ledger, "admin", revoke_key("ops"))
        .await
        .unwrap();
    let revoked_at = revoked.index;
    let probe2 = key(161);
    admins
        .refused(
            &ledger,
            "ops",
            register("p2", &probe2),
            Code::PermissionDenied,
            &format!("revoked at entry {revoked_at}"),
        )
        .await;
    admins
        .refused(
            &ledger,
            "admin",
            revoke_key("ops"),
            Code::FailedPrecondition,
            "already revoked",
        )
        .await;
    // The last key cannot go: nobody could write again.
    admins
        .refused(
            &ledger,
            "admin",
            revoke_key("admin"),
            Code::FailedPrecondition,
            "fewer than the approval threshold of 1",
        )
        .await;
    // What ops signed before stays in force.
    assert!(accepted(&submit(&ledger, &probe, "p1", 2).await));
    let report = probe_report(&ledger, "p1").await;
    assert_eq!(
        (report.registered_by.as_str(), report.registered_index),
        ("ops", registered.index)
    );

    // The same after a restart: the registry is rebuilt from the log.
    let keys_before = admin_keys(&ledger).await;
    ledger.restart().await;
    admins
        .refused(
            &ledger,
            "ops",
            register("p2", &probe2),
            Code::PermissionDenied,
            "revoked",
        )
        .await;
    assert!(accepted(&submit(&ledger, &probe, "p1", 3).await));
    let keys_after = admin_keys(&ledger).await;
    assert_eq!(keys_after.keys, keys_before.keys);
    let ops_record = keys_after.keys.iter().find(|k| k.name == "ops").unwrap();
    assert_eq!(ops_record.added_by, ["admin"]);
    assert_eq!(
        ops_record.revoked.as_ref().map(|at| at.index),
        Some(revoked_at)
    );
    assert_eq!(ops_record.revoke_reason, "laptop stolen");

    // An auditor recomputes the keys, proposals and reports, and they equal the server's.
    let output = audit(&ledger.address, &verifier_key(&ledger).await, &[]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("admin keys: 2, proposals: 3"), "{stdout}");
}

#[tokio::test]
async fn two_of_three_admins_register_a_probe_and_an_auditor_sees_who_approved() {
    let mut admins = Admins::new(&["alice", "bob", "carol"]);
    let mut ledger = TestLedger::start_with_genesis(GenesisParams {
        admin_keys: Some(admins.genesis_keys()),
        admin_threshold: Some(2),
        ..GenesisParams::default()
    })
    .await;
    // Defining a service is not gated: one signature.
    admins
        .apply(&ledger, "alice", Command::DefineService(spec("svc")))
        .await
        .unwrap();

    // alice alone proposes p1: logged, not in force; p1 cannot submit.
    let p1 = key(170);
    let (proposed, digest) = admins
        .apply(&ledger, "alice", register("p1", &p1))
        .await
        .unwrap();
    let progress = proposed.proposal.unwrap();
    assert_eq!(
        (
            progress.digest.as_slice(),
            progress.approvals,
            progress.threshold,
            progress.in_force
        ),
        (digest.as_slice(), 1, 2, false)
    );
    assert_eq!(
        rejected_for(&submit(&ledger, &p1, "p1", 1).await),
        pb::RejectReason::UnknownProbe
    );
    // The same admin approving counts once: refused.
    admins
        .refused(
            &ledger,
            "alice",
            approve(digest),
            Code::FailedPrecondition,
            "each admin counts once",
        )
        .await;
    admins
        .refused(
            &ledger,
            "alice",
            approve([9; 32]),
            Code::NotFound,
            "no proposal has digest",
        )
        .await;
    admins
        .refused(
            &ledger,
            "mallory",
            approve(digest),
            Code::PermissionDenied,
            "not an admin key",
        )
        .await;
    let pending = proposals(&ledger, true).await;
    assert_eq!(pending.threshold, 2);
    assert_eq!(pending.proposals.len(), 1);
    assert_eq!(pending.proposals[0].approvals_needed, 1);
    assert_eq!(pending.proposals[0].approvals.len(), 1);

    // bob's approval puts it in force from that entry on.
    let (approved, _) = admins.apply(&ledger, "bob", approve(digest)).await.unwrap();
    assert!(approved.proposal.unwrap().in_force);
    assert!(accepted(&submit(&ledger, &p1, "p1", 2).await));
    let report = probe_report(&ledger, "p1").await;
    assert_eq!(report.registered_index, approved.index);
    assert_eq!(report.registered_by, "alice");
    assert_eq!(report.approved_by, ["alice", "bob"]);
    admins
        .refused(
            &ledger,
            "carol",
            approve(digest),
            Code::FailedPrecondition,
            "already in force",
        )
        .await;

    // An approval after seven days lapses.
    let p2 = key(171);
    let (_, late) = admins
        .apply(&ledger, "alice", register("p2", &p2))
        .await
        .unwrap();
    ledger.clock.advance(7 * DAY);
    admins
        .refused(
            &ledger,
            "bob",
            approve(late),
            Code::FailedPrecondition,
            "lapsed",
        )
        .await;
    assert_eq!(
        rejected_for(&submit(&ledger, &p2, "p2", 1).await),
        pb::RejectReason::UnknownProbe
    );

    // carol proposes p3, then carol is revoked (alice and bob); alice's approval of p3 is
    // the second signature, but carol's no longer counts.
    let p3 = key(172);
    let (_, third) = admins
        .apply(&ledger, "carol", register("p3", &p3))
        .await
        .unwrap();
    let (_, revocation) = admins
        .apply(&ledger, "alice", revoke_key("carol"))
        .await
        .unwrap();
    let (revoked, _) = admins
        .apply(&ledger, "bob", approve(revocation))
        .await
        .unwrap();
    assert!(revoked.proposal.unwrap().in_force);
    let (approved, _) = admins
        .apply(&ledger, "alice", approve(third))
        .await
        .unwrap();
    let progress = approved.proposal.unwrap();
    assert_eq!((progress.approvals, progress.in_force), (1, false));
    assert_eq!(
        rejected_for(&submit(&ledger, &p3, "p3", 1).await),
        pb::RejectReason::UnknownProbe
    );
    // Revoking below the threshold is refused: alice and bob are all that is left.
    admins
        .refused(
            &ledger,
            "alice",
            revoke_key("bob"),
            Code::FailedPrecondition,
            "fewer than the approval threshold of 2",
        )
        .await;
    let (approved, _) = admins.apply(&ledger, "bob", approve(third)).await.unwrap();
    assert!(approved.proposal.unwrap().in_force);
    assert!(accepted(&submit(&ledger, &p3, "p3", 2).await));

    // Who approved what, as the server answers it: p3's signers, carol's not counting.
    let all = proposals(&ledger, false).await;
    let p3_proposal = all
        .proposals
        .iter()
        .find(|p| p.digest == third.to_vec())
        .unwrap();
    assert_eq!(p3_proposal.state, pb::ProposalState::InForce as i32);
    assert_eq!(
        p3_proposal
            .approvals
            .iter()
            .map(|a| (a.admin.as_str(), a.counts))
            .collect::<Vec<_>>(),
        [("carol", false), ("alice", true), ("bob", true)]
    );
    let lapsed = all
        .proposals
        .iter()
        .find(|p| p.digest == late.to_vec())
        .unwrap();
    assert_eq!(lapsed.state, pb::ProposalState::Lapsed as i32);
    // The JSON API says the same.
    let json = ledger.http_get("/api/v1/proposals").await.json();
    let states: Vec<&str> = json["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["in_force", "lapsed", "in_force", "in_force"]);
    let keys = ledger.http_get("/api/v1/admin-keys").await.json();
    let carol = &keys["keys"][2];
    assert_eq!(carol["name"], "carol");
    assert_eq!(carol["revoked"]["reason"], "laptop stolen");
    // The service page says when each probe was registered and by whom.
    let page = ledger.http_get("/services/svc").await;
    assert!(
        page.body.contains("by alice, approved by bob"),
        "{}",
        page.body
    );
    // p3 was proposed by carol, whose key was revoked before alice and bob approved it.
    assert!(
        page.body.contains("by carol, approved by alice, bob"),
        "{}",
        page.body
    );
    // And `admin proposals` lists them for people.
    let listed = cli_ok(&["admin", "proposals", "--all", "--ledger", &ledger.address]).await;
    assert!(listed.contains(&hex::encode(third)), "{listed}");
    assert!(
        listed.contains("does not count: the key was revoked"),
        "{listed}"
    );

    // A proposal pending across a restart is approved afterwards.
    let p5 = key(175);
    let (_, pending) = admins
        .apply(&ledger, "alice", register("p5", &p5))
        .await
        .unwrap();
    let all = proposals(&ledger, false).await;

    // After a restart: the same answers (the projection's snapshot and the rebuilt
    // registry), and the ledger still refuses what it refused.
    ledger.restart().await;
    assert_eq!(proposals(&ledger, false).await.proposals, all.proposals);
    let (approved, _) = admins
        .apply(&ledger, "bob", approve(pending))
        .await
        .unwrap();
    assert!(approved.proposal.unwrap().in_force);
    assert!(accepted(&submit(&ledger, &p5, "p5", 1).await));
    // A command signed before this log began is refused (a replay from another log).
    let (mut replayed, _) = admins.sign(&ledger, "alice", register("p6", &key(176)));
    let mut command = uptime_ledger::entry::decode_command(&replayed.body).unwrap();
    command.issued_at = T0 - 1;
    replayed = client::sign_command("alice", &admins.key("alice"), &command);
    let before = ledger.tree_size();
    let status = ledger
        .admin_client()
        .await
        .apply(pb::ApplyRequest {
            command: Some(replayed),
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("before this log began"),
        "{}",
        status.message()
    );
    assert_eq!(ledger.tree_size(), before);
    admins
        .refused(
            &ledger,
            "carol",
            register("p4", &key(173)),
            Code::PermissionDenied,
            "revoked",
        )
        .await;

    // The auditor recomputes the registry, proposals and reports from the log.
    let output = audit(&ledger.address, &verifier_key(&ledger).await, &[]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("admin keys: 3, proposals: 5 (approval threshold 2)"),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_cli_adds_revokes_proposes_and_approves() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let path = |name: &str| keys.join(name).display().to_string();
    for name in ["alice.pem", "bob.pem", "probe.pem"] {
        cli_ok(&["keygen", "--out", &path(name)]).await;
    }
    let data = dir.path().join("data");
    let served = process::serve_with(
        &data,
        "127.0.0.1:0",
        &[
            "--admin-key",
            &format!("alice={}", path("alice.pem.pub")),
            "--admin-key",
            &format!("bob={}", path("bob.pem.pub")),
            "--admin-threshold",
            "2",
        ],
    );
    let ledger = served.address.as_str();
    let as_admin = |name: &str, args: &[&str]| {
        let mut all = vec!["admin", "--ledger", ledger, "--signer", name];
        let key = path(&format!("{name}.pem"));
        all.extend_from_slice(&["--key", &key]);
        all.extend_from_slice(args);
        let all: Vec<String> = all.iter().map(|a| a.to_string()).collect();
        std::process::Command::new(BINARY)
            .args(all)
            .output()
            .unwrap()
    };
    let out = as_admin(
        "alice",
        &[
            "register-probe",
            "--probe-id",
            "nbo-1",
            "--public-key",
            &path("probe.pem.pub"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("pending, 1 of 2 approvals; needs 1 more"),
        "{stdout}"
    );
    let digest = stdout
        .split_whitespace()
        .skip_while(|word| *word != "proposal")
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    let listed = cli_ok(&["admin", "proposals", "--ledger", ledger]).await;
    assert!(
        listed.contains(&digest) && listed.contains("register probe nbo-1"),
        "{listed}"
    );
    let out = as_admin("bob", &["approve", "--proposal", &digest]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("in force (2 of 2 approvals)"), "{stdout}");
    // The list answers from the published prefix, which follows the checkpoints.
    let mut listed = String::new();
    for _ in 0..50 {
        listed = cli_ok(&["admin", "proposals", "--ledger", ledger]).await;
        if listed.contains("no pending proposals") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(listed.contains("no pending proposals"), "{listed}");
    // add-key and revoke-key go through the same approval.
    cli_ok(&["keygen", "--out", &path("carol.pem")]).await;
    let out = as_admin(
        "alice",
        &[
            "add-key",
            "--name",
            "carol",
            "--public-key",
            &path("carol.pem.pub"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("pending"), "{stdout}");
    let out = as_admin(
        "bob",
        &["revoke-key", "--name", "alice", "--reason", "rotation"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fewer than the approval threshold"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    served.terminate();
}

/// Writes what `log checkpoint` prints for the ledger at `address` into `path`.
async fn save_checkpoint(address: &str, path: &Path) {
    let printed = cli_ok(&["log", "checkpoint", "--ledger", address]).await;
    std::fs::write(path, printed).unwrap();
}

async fn printed_verifier_key(address: &str) -> String {
    let printed = cli_ok(&["log", "checkpoint", "--ledger", address]).await;
    printed
        .lines()
        .find_map(|line| line.strip_prefix("verifier key: "))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_successor_log_chains_to_its_predecessor_and_a_forged_one_is_caught() {
    // The previous log, with some history.
    let mut previous = TestLedger::start().await;
    previous.define_service("svc").await;
    let probe = key(180);
    previous.register_probe("p1", &probe).await;
    assert!(accepted(&submit(&previous, &probe, "p1", 1).await));
    previous.wait_for_checkpoint().await;
    let previous_key = printed_verifier_key(&previous.address).await;
    let early = tempfile::NamedTempFile::new().unwrap();
    save_checkpoint(&previous.address, early.path()).await;
    assert!(accepted(&submit(&previous, &probe, "p1", 2).await));
    previous.wait_for_checkpoint().await;
    let last = tempfile::NamedTempFile::new().unwrap();
    save_checkpoint(&previous.address, last.path()).await;

    // A successor names its admins: without --admin-key it refuses to start.
    let dir = tempfile::tempdir().unwrap();
    let admin_pem = dir.path().join("admin.pem");
    cli_ok(&["keygen", "--out", &admin_pem.display().to_string()]).await;
    let admin_key = format!("admin={}.pub", admin_pem.display());
    let output = Process::new(BINARY)
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(["--origin", "next.example/log", "--data-dir"])
        .arg(dir.path().join("no-admins"))
        .arg("--continue-from")
        .arg(last.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("a successor log starts empty"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A tampered checkpoint file is refused at start.
    let text = std::fs::read_to_string(last.path()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1] = "999".into();
    let tampered = dir.path().join("tampered");
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let output = Process::new(BINARY)
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--origin",
            "next.example/log",
            "--data-dir",
        ])
        .arg(dir.path().join("tampered-data"))
        .arg("--admin-key")
        .arg(&admin_key)
        .arg("--continue-from")
        .arg(&tampered)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("the checkpoint in"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The same origin as the previous log is refused.
    let output = Process::new(BINARY)
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--origin",
            ORIGIN,
            "--data-dir",
        ])
        .arg(dir.path().join("same-origin"))
        .arg("--admin-key")
        .arg(&admin_key)
        .arg("--continue-from")
        .arg(last.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs its own origin"));

    // The successor continues from the last checkpoint: audit follows the chain.
    let next = process::serve_with(
        &dir.path().join("next"),
        "127.0.0.1:0",
        &[
            "--origin",
            "next.example/log",
            "--admin-key",
            &admin_key,
            "--continue-from",
            &last.path().display().to_string(),
        ],
    );
    let next_key = printed_verifier_key(&next.address).await;
    let chained = &[
        "--previous-ledger",
        previous.address.as_str(),
        "--previous-verifier-key",
        previous_key.as_str(),
    ];
    let output = audit(&next.address, &next_key, chained).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("is the one this log's genesis continues"),
        "{stdout}"
    );
    // Pinning some other key as the previous one breaks the chain.
    let output = audit(
        &next.address,
        &next_key,
        &[
            "--previous-ledger",
            previous.address.as_str(),
            "--previous-verifier-key",
            next_key.as_str(),
        ],
    )
    .await;
    assert!(!output.status.success());

    // A successor that names an earlier checkpoint of the previous log is caught: the
    // previous log went on after the checkpoint it names (entries the successor hides, or
    // appended after the handover).
    let forked = process::serve_with(
        &dir.path().join("forked"),
        "127.0.0.1:0",
        &[
            "--origin",
            "forked.example/log",
            "--admin-key",
            &admin_key,
            "--continue-from",
            &early.path().display().to_string(),
        ],
    );
    let forked_key = printed_verifier_key(&forked.address).await;
    let output = audit(&forked.address, &forked_key, chained).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("it grew after the new log started"),
        "{stderr}"
    );

    // A genesis whose previous_log names a root the previous log never had.
    let forged_dir = tempfile::tempdir().unwrap();
    let checkpoint = previous.wait_for_checkpoint().await;
    let mut root = [0u8; 32];
    root[0] = 1;
    let forged_ledger = open_params(
        forged_dir.path(),
        previous.clock.clone(),
        &key(210),
        GenesisParams {
            origin: Some("forged.example/log".into()),
            admin_keys: Some(vec![AdminKey {
                name: "admin".into(),
                public_key: PublicKey::from(&key(211)),
            }]),
            previous_log: Some(uptime_ledger::domain::PreviousLog {
                origin: ORIGIN.into(),
                tree_size: checkpoint.tree_size,
                root_hash: root,
                ledger_public_key: previous_key
                    .parse::<uptime_ledger::checkpoint::NoteVerifier>()
                    .unwrap()
                    .public_key()
                    .clone(),
            }),
            ..GenesisParams::default()
        },
    )
    .unwrap();
    let genesis = forged_ledger.registry().genesis().clone();
    assert_eq!(genesis.previous_log.unwrap().root_hash, root);
    let last_checkpoint = uptime_ledger::checkpoint::open_checkpoint(
        &checkpoint.checkpoint,
        &previous_key.parse().unwrap(),
    )
    .unwrap();
    let broken = uptime_ledger::audit::check_succession(
        forged_ledger.registry().genesis().previous_log.as_ref(),
        &previous_key.parse().unwrap(),
        &last_checkpoint,
        &last_checkpoint,
    )
    .unwrap_err();
    assert!(
        broken.to_string().contains("the chain is broken or forged"),
        "{broken}"
    );
    forged_ledger.shutdown().await;
    next.terminate();
    forked.terminate();
}
