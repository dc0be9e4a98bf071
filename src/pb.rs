//! Generated protobuf and gRPC types of `uptime.ledger.v1`: the wire and storage format.
//!
//! Only the RPC layer, the log's entry codec and the CLI clients use these types; the
//! domain works on plain Rust types (see `domain`).

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("uptime.ledger.v1");

/// The encoded file descriptor set, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("uptime_ledger_descriptor");
