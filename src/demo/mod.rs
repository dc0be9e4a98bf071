//! The pieces of `uptime-ledger demo` that are not plumbing: the script of simulated
//! outages ([`script`]), the simulated government endpoints the in-process probes check
//! ([`simulator`]), the backfilled history ([`history`]), and the webhook receiver that
//! shows the alerts the ledger sends ([`alert_receiver`]). The command itself
//! (`src/cli/demo.rs`) starts a ledger, defines the services, registers the probes, sends
//! the history through the real ingest path and runs the real probe agent.

pub mod alert_receiver;
pub mod history;
pub mod script;
pub mod simulator;

pub use script::{DemoProbe, DemoService, Health, PlannedMaintenance, Script, PROBES, SERVICES};
