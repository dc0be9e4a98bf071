//! The probe agent: watches government services from one vantage point and sends what it
//! sees to the ledger as signed observations, losing nothing while the ledger (or the
//! network to it) is down.
//!
//! # Layout (data flows down)
//!
//! - [`config`]: the TOML file, validated; errors name the line — pure;
//! - [`checks`]: one HTTP(S) or TCP check run → UP/DOWN, latency and why;
//! - [`spool`]: seq allocation + durable write in one step; settled in seq order;
//! - [`delivery`]: spool → ledger (`Submit` batches, oldest first, backoff), acks → spool;
//! - [`agent`]: schedules, signs, spools, delivers, summarizes, shuts down.
//!
//! Protobuf types appear only in `delivery`, where observations go on the wire.

pub mod agent;
pub mod checks;
pub mod config;
pub mod delivery;
pub mod spool;

use std::sync::atomic::{AtomicU64, Ordering};

/// What the agent has done since it started; the per-minute summary prints the increase.
/// These are the probe's local metrics (it serves no endpoint of its own).
#[derive(Debug, Default)]
pub struct Counters {
    pub checks_run: AtomicU64,
    pub checks_down: AtomicU64,
    /// Results signed and written to the spool.
    pub spooled: AtomicU64,
    /// Results not spooled because the spool was full (no seq was allocated for them).
    pub dropped: AtomicU64,
    /// Observations the ledger acknowledged (ACCEPTED or DUPLICATE).
    pub delivered: AtomicU64,
    /// Observations the ledger rejected (moved to the dead letters), TOO_LATE included.
    pub rejected: AtomicU64,
    /// Of `rejected`, those older than the ledger's `max_lateness` when they arrived.
    pub rejected_too_late: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub checks_run: u64,
    pub checks_down: u64,
    pub spooled: u64,
    pub dropped: u64,
    pub delivered: u64,
    pub rejected: u64,
    pub rejected_too_late: u64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CountersSnapshot {
            checks_run: read(&self.checks_run),
            checks_down: read(&self.checks_down),
            spooled: read(&self.spooled),
            dropped: read(&self.dropped),
            delivered: read(&self.delivered),
            rejected: read(&self.rejected),
            rejected_too_late: read(&self.rejected_too_late),
        }
    }
}

impl CountersSnapshot {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &CountersSnapshot) -> CountersSnapshot {
        CountersSnapshot {
            checks_run: self.checks_run - earlier.checks_run,
            checks_down: self.checks_down - earlier.checks_down,
            spooled: self.spooled - earlier.spooled,
            dropped: self.dropped - earlier.dropped,
            delivered: self.delivered - earlier.delivered,
            rejected: self.rejected - earlier.rejected,
            rejected_too_late: self.rejected_too_late - earlier.rejected_too_late,
        }
    }

    /// The one-line summary: these counts and the observations still waiting in the spool.
    pub fn summary(&self, pending: usize) -> String {
        format!(
            "checks run {} ({} down), spooled {}, delivered {}, rejected {} (too_late {}), dropped (spool full) {}, pending {pending}",
            self.checks_run,
            self.checks_down,
            self.spooled,
            self.delivered,
            self.rejected,
            self.rejected_too_late,
            self.dropped,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_every_count() {
        let counters = Counters::default();
        let start = counters.snapshot();
        Counters::add(&counters.checks_run, 12);
        Counters::add(&counters.checks_down, 3);
        Counters::add(&counters.spooled, 11);
        Counters::add(&counters.dropped, 1);
        Counters::add(&counters.delivered, 9);
        Counters::add(&counters.rejected, 2);
        Counters::add(&counters.rejected_too_late, 2);
        assert_eq!(
            counters.snapshot().since(&start).summary(4),
            "checks run 12 (3 down), spooled 11, delivered 9, rejected 2 (too_late 2), dropped (spool full) 1, pending 4"
        );
    }
}
