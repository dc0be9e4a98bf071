//! `report --evidence FILE` and `verify-evidence FILE`: an evidence bundle of one
//! service's report and incidents, written from an audited prefix and checked with no
//! ledger ([`uptime_ledger::evidence`] does the work; this is the I/O).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::Args;

use uptime_ledger::audit::audit_prefix;
use uptime_ledger::checkpoint::NoteVerifier;
use uptime_ledger::client;
use uptime_ledger::domain::format_millis;
use uptime_ledger::evidence::{self, BundleInputs};
use uptime_ledger::window::{self, WindowSpec};

/// What `report --evidence` was asked for.
pub struct EvidenceRequest<'a> {
    pub path: &'a Path,
    pub verifier_key: &'a str,
    pub service_id: &'a str,
    pub window: &'a WindowSpec,
}

/// Downloads and audits the prefix of the latest checkpoint, recomputes the service's
/// report and incidents from it, and writes the bundle to the request's path.
pub async fn write(
    channel: client::LedgerChannel,
    request: EvidenceRequest<'_>,
) -> anyhow::Result<()> {
    let verifier: NoteVerifier = request
        .verifier_key
        .parse()
        .context("--verifier-key is not a verifier key")?;
    let log = client::verify_log(channel, &verifier)
        .await
        .context("the log does not verify; no evidence written")?;
    let audit_verifier = verifier.clone();
    let (entries, checkpoint) = (log.entries, log.checkpoint);
    let (entries, checkpoint, audited) = tokio::task::spawn_blocking(move || {
        let audited = audit_prefix(&entries, &checkpoint, &audit_verifier);
        (entries, checkpoint, audited)
    })
    .await?;
    let audited = audited.context("the log does not pass the audit; no evidence written")?;
    let service_id = request.service_id;
    let (start, end) =
        window::resolve(request.window, audited.as_of).map_err(|e| anyhow!("--window: {e}"))?;
    let projection = &audited.projection;
    let report = projection.report(service_id, start, end).ok_or_else(|| {
        let defined: Vec<_> = projection
            .services()
            .map(|spec| spec.service_id.to_string())
            .collect();
        anyhow!(
            "service {service_id:?} is not defined; the log defines: {}",
            defined.join(", ")
        )
    })?;
    let incidents = projection
        .incidents(service_id, start, end)
        .unwrap_or_default();
    let bundle = evidence::build_bundle(&BundleInputs {
        verifier: &verifier,
        note: &log.note,
        checkpoint: &checkpoint,
        entries: &entries,
        service_id,
        window: (start, end),
        report: &report,
        incidents: &incidents,
    })?;
    let text = serde_json::to_string_pretty(&bundle)? + "\n";
    write_atomically(request.path, &text)?;
    println!(
        "wrote {}: service {service_id} over [{}, {}), {} incident(s), {} entries with inclusion proofs, checkpoint of {} at tree size {}",
        request.path.display(),
        format_millis(start),
        format_millis(end),
        incidents.len(),
        bundle.entries.len(),
        checkpoint.origin,
        checkpoint.tree_size
    );
    println!(
        "verify it anywhere, without the ledger: uptime-ledger verify-evidence {} --verifier-key '{verifier}'",
        request.path.display()
    );
    Ok(())
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[derive(Debug, Args)]
pub struct VerifyEvidenceArgs {
    /// The evidence file written by `report --evidence`.
    file: PathBuf,
    /// The checkpoint key to trust, obtained from the ledger's operator out of band. Without
    /// it the key in the file is used, which proves only that whoever holds that key signed.
    #[arg(long)]
    verifier_key: Option<String>,
}

pub fn verify(args: VerifyEvidenceArgs) -> anyhow::Result<()> {
    let pinned = match &args.verifier_key {
        Some(key) => Some(
            key.parse::<NoteVerifier>()
                .context("--verifier-key is not a verifier key")?,
        ),
        None => None,
    };
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let findings = evidence::verify_bundle(&text, pinned.as_ref())
        .with_context(|| format!("{} is refused", args.file.display()))?;
    print!("{}", findings.statement());
    if pinned.is_none() {
        println!(
            "Warning: no --verifier-key given; the key in the file was used. Pin the key obtained from the ledger's operator."
        );
    }
    Ok(())
}
