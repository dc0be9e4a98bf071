//! The pieces of `uptime-ledger demo` that are not plumbing: the script of simulated
//! outages ([`script`]), the simulated government endpoints the in-process probes check
//! ([`simulator`]), and the backfilled history ([`history`]). The command itself
//! (`src/cli/demo.rs`) starts a ledger, defines the services, registers the probes, sends
//! the history through the real ingest path and runs the real probe agent.

pub mod history;
pub mod script;
pub mod simulator;

pub use script::{DemoProbe, DemoService, Health, PlannedMaintenance, Script, PROBES, SERVICES};
