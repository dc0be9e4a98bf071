//! Compiles `proto/` into Rust with tonic-prost-build, using the protoc binary shipped in
//! the `protoc-bin-vendored` crate so that a fresh machine needs no protoc install.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // tonic-prost-build finds protoc through this variable.
    std::env::set_var("PROTOC", protoc);

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/uptime/ledger/v1/ledger.proto",
        "proto/uptime/ledger/v1/ingest_service.proto",
        "proto/uptime/ledger/v1/admin_service.proto",
        "proto/uptime/ledger/v1/log_service.proto",
        "proto/uptime/ledger/v1/query_service.proto",
    ];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("uptime_ledger_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
