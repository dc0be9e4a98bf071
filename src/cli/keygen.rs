//! `uptime-ledger keygen --out PATH`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use uptime_ledger::crypto;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key; the public key goes to PATH.pub.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    crypto::generate_key_files(&args.out).context("keygen failed")?;
    println!("private key: {}", args.out.display());
    println!(
        "public key:  {}",
        crypto::public_key_path(&args.out).display()
    );
    Ok(())
}
