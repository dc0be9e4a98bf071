//! The demo's backfilled history: what each probe would have observed, every `every`
//! milliseconds over `[from, to)`, had it been running. Pure; the caller signs and submits.

use crate::domain::{Millis, Observation, ProbeId, ServiceId, Status};

use super::script::{Health, Script, PROBES, SERVICES};

/// Each probe's observations in seq order (index `p` is `PROBES[p]`), seqs starting at
/// `first_seq`. Probes are offset from each other by a few seconds, as real ones are.
pub fn observations(
    script: &Script,
    from: Millis,
    to: Millis,
    every: Millis,
    first_seq: u64,
) -> Vec<Vec<Observation>> {
    assert!(every > 0, "the backfill interval is positive");
    PROBES
        .iter()
        .enumerate()
        .map(|(p, probe)| {
            let probe_id = ProbeId::parse(probe.probe_id).expect("demo probe ids are valid");
            let offset = (p as Millis * 7_919) % every;
            let mut seq = first_seq;
            let mut out = Vec::new();
            let mut t = from + offset;
            while t < to {
                for (s, service) in SERVICES.iter().enumerate() {
                    let health = script.health(s, p, t);
                    let (status, latency_ms, detail) = result_of(health, t, p, s);
                    out.push(Observation {
                        probe_id: probe_id.clone(),
                        service_id: ServiceId::parse(service.service_id)
                            .expect("demo service ids are valid"),
                        seq,
                        observed_at: t,
                        status,
                        latency_ms,
                        detail,
                    });
                    seq += 1;
                }
                t += every;
            }
            out
        })
        .collect()
}

/// What a probe's check reports for `health`, with a plausible, deterministic latency.
fn result_of(health: Health, t: Millis, probe: usize, service: usize) -> (Status, u32, String) {
    let jitter = ((t / 1000) as u64)
        .wrapping_mul(2_654_435_761)
        .wrapping_add((probe * 31 + service) as u64)
        % 120;
    let latency = 60 + probe as u32 * 25 + jitter as u32;
    match health {
        Health::Up => (Status::Up, latency, "HTTP 200".into()),
        Health::Unavailable => (Status::Down, latency, "HTTP 503".into()),
        Health::Maintenance => (Status::Down, latency, "HTTP 503".into()),
        Health::Timeout => (Status::Down, 2_000, "timeout after 2s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::script::{HOUR, MINUTE};

    #[test]
    fn every_probe_checks_every_service_in_seq_order() {
        let anchor = 1_790_000_000_000;
        let script = Script::new(anchor);
        let history = observations(&script, anchor - HOUR, anchor, MINUTE, 500);
        assert_eq!(history.len(), PROBES.len());
        for per_probe in &history {
            assert_eq!(per_probe.len(), 60 * SERVICES.len());
            assert!(per_probe
                .windows(2)
                .all(|w| w[0].seq + 1 == w[1].seq && w[0].observed_at <= w[1].observed_at));
            assert_eq!(per_probe[0].seq, 500);
            assert!(per_probe
                .iter()
                .all(|o| (anchor - HOUR..anchor).contains(&o.observed_at)));
        }
        // The same script drives the past: the portal was up all that hour.
        assert!(history[0]
            .iter()
            .filter(|o| o.service_id.as_str() == "ecitizen.portal")
            .all(|o| o.status == Status::Up));
    }
}
