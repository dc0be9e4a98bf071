//! A seeded ledger that looks like a real deployment: seven government services of six
//! agencies, three probes in three cities, and 90 days of history with scripted outages
//! (a full outage, one that only one probe saw, a flapping service, a planned maintenance
//! window, a service down right now). The HTTP and browser tests read it.

use std::time::Duration;

use uptime_ledger::domain::{Command, MaintenanceId, Quorum, ServiceId, ServiceSpec, Status};

use super::{accepted, key, observation, TestLedger, T0};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The history runs over `[T0, END]`; the ledger's clock stands at `END` afterwards.
pub const END: i64 = T0 + 90 * DAY + 13 * HOUR + 30 * MINUTE;
/// Routine observations come this often; state changes get their own observations.
const EVERY: i64 = 6 * HOUR;
/// Longer than `EVERY`, so routine observations keep services known.
const STALENESS: Duration = Duration::from_secs(7 * 3600);

pub struct SeedService {
    pub service_id: &'static str,
    pub name: &'static str,
    pub agency: &'static str,
    pub slo_target: f64,
    pub quorum: Quorum,
}

pub const SERVICES: [SeedService; 7] = [
    SeedService {
        service_id: "ecitizen.portal",
        name: "National e-services portal",
        agency: "Ministry of Information & Digital Economy",
        slo_target: 0.999,
        quorum: Quorum::Majority,
    },
    SeedService {
        service_id: "immigration.passport",
        name: "Passport applications",
        agency: "Department of Immigration",
        slo_target: 0.995,
        quorum: Quorum::Majority,
    },
    SeedService {
        service_id: "immigration.evisa",
        name: "Electronic visa",
        agency: "Department of Immigration",
        slo_target: 0.995,
        quorum: Quorum::Majority,
    },
    SeedService {
        service_id: "brs.business-registration",
        name: "Business registration",
        agency: "Business Registration Service",
        slo_target: 0.99,
        quorum: Quorum::Majority,
    },
    SeedService {
        service_id: "ntsa.driving-licence",
        name: "Driving licence renewal",
        agency: "National Transport and Safety Authority",
        slo_target: 0.995,
        quorum: Quorum::Majority,
    },
    SeedService {
        service_id: "revenue.tax-filing",
        name: "Tax returns filing",
        agency: "Revenue Authority",
        slo_target: 0.99,
        quorum: Quorum::Any,
    },
    SeedService {
        service_id: "police.good-conduct",
        name: "Certificate of good conduct",
        agency: "National Police Service",
        slo_target: 0.98,
        quorum: Quorum::AtLeast(2),
    },
];

pub const PROBES: [(&str, &str); 3] = [
    ("nbo-1", "Nairobi"),
    ("msa-1", "Mombasa"),
    ("ksm-1", "Kisumu"),
];

/// Windows `[start, end)` during which `probe` sees `service` DOWN.
fn outages(service_id: &str, probe: &str) -> Vec<(i64, i64)> {
    let all = |start: i64, end: i64| vec![(start, end)];
    match (service_id, probe) {
        // A full outage 28 days ago: 3 h 20 min, seen everywhere.
        ("ecitizen.portal", _) => all(
            T0 + 62 * DAY + 9 * HOUR,
            T0 + 62 * DAY + 12 * HOUR + 20 * MINUTE,
        ),
        // Only the Mombasa network cannot reach it: the majority says UP.
        ("immigration.passport", "msa-1") => vec![
            (T0 + 80 * DAY + 2 * HOUR, T0 + 80 * DAY + 8 * HOUR),
            (T0 + 85 * DAY + 14 * HOUR, T0 + 85 * DAY + 16 * HOUR),
        ],
        // Flapping over the last day and a half: down 20 min every 3 h.
        ("brs.business-registration", _) => (0..12)
            .map(|i| {
                let start = END - 36 * HOUR + i * 3 * HOUR;
                (start, start + 20 * MINUTE)
            })
            .collect(),
        // Down during its planned maintenance (which therefore does not count) and for
        // 50 min once, unplanned.
        ("ntsa.driving-licence", _) => vec![
            (T0 + 45 * DAY + 4 * HOUR, T0 + 45 * DAY + 6 * HOUR),
            (
                T0 + 71 * DAY + 16 * HOUR,
                T0 + 71 * DAY + 16 * HOUR + 50 * MINUTE,
            ),
        ],
        // Down right now, for the last 2 hours (any probe seeing DOWN counts).
        ("revenue.tax-filing", "nbo-1") => all(END - 2 * HOUR, END + 1),
        // A 14-hour outage 70 days ago, seen by two of three probes (AT_LEAST 2).
        ("police.good-conduct", "nbo-1" | "ksm-1") => {
            all(T0 + 20 * DAY + 3 * HOUR, T0 + 20 * DAY + 17 * HOUR)
        }
        _ => Vec::new(),
    }
}

/// The maintenance windows, all scheduled at `T0` (declared in advance): one in the past of
/// `END`, one still to come.
pub fn maintenance() -> [(&'static str, &'static str, i64, i64); 2] {
    [
        (
            "ntsa-db-upgrade",
            "ntsa.driving-licence",
            T0 + 45 * DAY + 4 * HOUR,
            T0 + 45 * DAY + 6 * HOUR,
        ),
        (
            "ntsa-network-works",
            "ntsa.driving-licence",
            END + DAY,
            END + DAY + 4 * HOUR,
        ),
    ]
}

/// Starts a ledger and fills it with the seeded history; waits until the projection
/// reflects all of it.
pub async fn government_services() -> TestLedger {
    let mut ledger = TestLedger::start_with_max_lateness(Duration::from_secs(100 * 86_400)).await;
    for service in &SERVICES {
        ledger
            .apply(Command::DefineService(ServiceSpec {
                service_id: ServiceId::parse(service.service_id).unwrap(),
                name: service.name.into(),
                agency: service.agency.into(),
                slo_target: service.slo_target,
                quorum: service.quorum,
                staleness: STALENESS,
            }))
            .await
            .expect("define-service applies");
    }
    for (p, (probe_id, location)) in PROBES.iter().enumerate() {
        ledger
            .apply(Command::RegisterProbe {
                probe_id: uptime_ledger::domain::ProbeId::parse(probe_id).unwrap(),
                public_key: uptime_ledger::crypto::PublicKey::from(&key(p as u8 + 1)),
                location: (*location).into(),
            })
            .await
            .expect("register-probe applies");
    }
    for (maintenance_id, service_id, start, end) in maintenance() {
        ledger
            .apply(Command::ScheduleMaintenance {
                maintenance_id: MaintenanceId::parse(maintenance_id).unwrap(),
                service_id: ServiceId::parse(service_id).unwrap(),
                start,
                end,
                reason: "planned works".into(),
            })
            .await
            .expect("schedule-maintenance applies");
    }

    // Every observation of the history, in time order, then submitted in large batches
    // with the clock at END (the genesis accepts 100 days of lateness).
    let mut events = Vec::new();
    for service in &SERVICES {
        for (p, (probe_id, _)) in PROBES.iter().enumerate() {
            let down = outages(service.service_id, probe_id);
            let mut times: Vec<i64> = (T0..=END).step_by(EVERY as usize).collect();
            times.push(END);
            for (start, end) in &down {
                times.extend([*start, *end]);
            }
            times.retain(|t| (T0..=END).contains(t));
            times.sort_unstable();
            times.dedup();
            for at in times {
                let status = if down.iter().any(|(s, e)| (*s..*e).contains(&at)) {
                    Status::Down
                } else {
                    Status::Up
                };
                events.push((at, p, service.service_id, status));
            }
        }
    }
    events.sort_by_key(|(at, p, service_id, _)| (*at, *p, *service_id));
    let mut seqs = [0u64; PROBES.len()];
    let signed: Vec<_> = events
        .into_iter()
        .map(|(at, p, service_id, status)| {
            seqs[p] += 1;
            observation(
                &key(p as u8 + 1),
                PROBES[p].0,
                service_id,
                seqs[p],
                at,
                status,
            )
        })
        .collect();
    ledger.clock.set(END);
    for batch in signed.chunks(4096) {
        let acks = ledger.submit(batch.to_vec()).await;
        assert!(
            acks.iter().all(accepted),
            "{:?}",
            acks.iter().find(|a| !accepted(a))
        );
    }
    ledger.wait_for_projection().await;
    ledger
}
