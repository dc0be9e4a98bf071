//! The ledger's side of the peer comparison (`bench/peers/run.py`): the peer kit's history
//! (samples `service,probe,ts,status`, one service, ts in Unix seconds) fed through the
//! real ingest path into a ledger, then asked the comparison's questions over gRPC.
//!
//! The service is defined with quorum MAJORITY and staleness 90 s. Since an availability
//! report is per service, the per-probe questions are asked of one more service per probe,
//! `<service>.<probe>`, that only that probe watches: each check is submitted twice, once
//! for the service and once for the probe's own (so the ledger holds twice the samples).
//! The ledger is cached under `<dir>/peers-<digest of the samples and options>/`.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::clock::ManualClock;
use crate::domain::{Observation, ProbeId, Quorum, ServiceId, ServiceSpec, Status};
use crate::pb;
use crate::pb::query_service_client::QueryServiceClient;

use super::history::{self, Source};
use super::{BenchResult, Latency};

/// Every probe's checks, times in milliseconds, ascending.
#[derive(Debug)]
pub struct Samples {
    pub service: String,
    pub probes: Vec<String>,
    pub times: Vec<Vec<i64>>,
    pub up: Vec<Vec<bool>>,
    /// SHA-256 of the file, for the cache key.
    pub digest: [u8; 32],
}

impl Samples {
    /// Reads the kit's CSV (`service,probe,ts,status` with a header line, ts in seconds).
    pub fn read(path: &Path) -> BenchResult<Samples> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 22, file);
        let mut hasher = Sha256::new();
        let mut line = String::new();
        let mut service: Option<String> = None;
        let mut by_probe: BTreeMap<String, (Vec<i64>, Vec<bool>)> = BTreeMap::new();
        let mut number = 0usize;
        loop {
            line.clear();
            let read = reader
                .read_line(&mut line)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if read == 0 {
                break;
            }
            hasher.update(line.as_bytes());
            number += 1;
            if number == 1 {
                continue; // the header
            }
            let bad = || format!("{}:{number}: not service,probe,ts,status", path.display());
            let mut fields = line.trim_end().split(',');
            let (Some(s), Some(p), Some(ts), Some(status), None) = (
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
            ) else {
                return Err(bad());
            };
            match &service {
                None => service = Some(s.to_owned()),
                Some(known) if known == s => {}
                Some(known) => {
                    return Err(format!(
                    "{}:{number}: a second service {s:?} (after {known:?}); one service per file",
                    path.display()
                ))
                }
            }
            let ts: i64 = ts.parse().map_err(|_| bad())?;
            let up = match status {
                "1" => true,
                "0" => false,
                _ => return Err(bad()),
            };
            if !by_probe.contains_key(p) {
                by_probe.insert(p.to_owned(), Default::default());
            }
            let (times, ups) = by_probe.get_mut(p).expect("inserted");
            times.push(ts * 1000);
            ups.push(up);
        }
        let service = service.ok_or_else(|| format!("{} holds no samples", path.display()))?;
        let mut probes = Vec::new();
        let (mut times, mut up) = (Vec::new(), Vec::new());
        for (probe, (t, u)) in by_probe {
            if t.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "{}: probe {probe}'s checks are not in strictly increasing time order",
                    path.display()
                ));
            }
            probes.push(probe);
            times.push(t);
            up.push(u);
        }
        Ok(Samples {
            service,
            probes,
            times,
            up,
            digest: hasher.finalize().into(),
        })
    }

    pub fn count(&self) -> u64 {
        self.times.iter().map(|t| t.len() as u64).sum()
    }
}

/// The samples as a history source for [`history::ensure_from`].
struct PeerHistory {
    samples: Samples,
    span: (i64, i64),
    per_probe: bool,
}

impl PeerHistory {
    fn per_probe_service(&self, probe: usize) -> String {
        format!("{}.{}", self.samples.service, self.samples.probes[probe])
    }

    /// Observations submitted per check: one for the service, one for the probe's own.
    fn per_check(&self) -> u64 {
        if self.per_probe {
            2
        } else {
            1
        }
    }
}

fn spec(service_id: &str, name: String) -> BenchResult<ServiceSpec> {
    Ok(ServiceSpec {
        service_id: ServiceId::parse(service_id).map_err(|e| e.to_string())?,
        name,
        agency: "peer comparison".into(),
        slo_target: 0.999,
        quorum: Quorum::Majority,
        staleness: Duration::from_secs(90),
    })
}

impl Source for PeerHistory {
    fn span(&self) -> (i64, i64) {
        self.span
    }

    fn services(&self) -> Vec<ServiceSpec> {
        let mut specs = vec![
            spec(&self.samples.service, self.samples.service.clone()).expect("checked in run")
        ];
        if self.per_probe {
            for (k, probe) in self.samples.probes.iter().enumerate() {
                let name = format!("{} seen from {probe} alone", self.samples.service);
                specs.push(spec(&self.per_probe_service(k), name).expect("checked in run"));
            }
        }
        specs
    }

    fn probes(&self) -> Vec<ProbeId> {
        self.samples
            .probes
            .iter()
            .map(|p| ProbeId::parse(p).expect("checked in run"))
            .collect()
    }

    fn observations(&self, from: i64, to: i64) -> Vec<(usize, Observation)> {
        let per_check = self.per_check();
        let mut out = Vec::new();
        for (k, probe_id) in self.probes().into_iter().enumerate() {
            let times = &self.samples.times[k];
            let first = times.partition_point(|&t| t < from);
            let last = times.partition_point(|&t| t < to);
            let mut services = vec![ServiceId::parse(&self.samples.service).expect("checked")];
            if self.per_probe {
                services.push(ServiceId::parse(&self.per_probe_service(k)).expect("checked"));
            }
            let checks = times[first..last]
                .iter()
                .zip(&self.samples.up[k][first..last]);
            for (i, (&observed_at, &up)) in (first..).zip(checks) {
                for (j, service_id) in services.iter().enumerate() {
                    out.push((
                        k,
                        Observation {
                            probe_id: probe_id.clone(),
                            service_id: service_id.clone(),
                            seq: i as u64 * per_check + j as u64 + 1,
                            observed_at,
                            status: if up { Status::Up } else { Status::Down },
                            latency_ms: 40,
                            detail: String::new(),
                        },
                    ));
                }
            }
        }
        out.sort_by_key(|(k, o)| (o.observed_at, *k, o.seq));
        out
    }
}

/// One question asked of the ledger: a service's availability over the last `window_days`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Answer {
    pub service_id: String,
    /// The probe it is the per-probe question of; `None` for the service (MAJORITY).
    pub probe: Option<String>,
    pub window_days: u32,
    pub latency: Latency,
    pub up_ms: u64,
    pub down_ms: u64,
    pub unknown_ms: u64,
    pub availability: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PeersResult {
    pub ledger_dir: PathBuf,
    pub samples: u64,
    pub observations: u64,
    pub tree_size: u64,
    /// `None` when the ledger was found in the cache.
    pub build_seconds: Option<f64>,
    /// The build resumed an interrupted one (its time covers only the rest).
    pub build_resumed: bool,
    pub ledger_disk_bytes: u64,
    pub answers: Vec<Answer>,
}

/// Builds (or finds) the ledger for the samples in `samples_path`, covering `days` days
/// that end at `end_ms`, and asks it each question `calls` times (after `calls / 10`
/// warm-up calls).
pub async fn run(
    samples_path: &Path,
    root: &Path,
    end_ms: i64,
    days: u32,
    per_probe: bool,
    calls: usize,
) -> BenchResult<PeersResult> {
    let samples = Samples::read(samples_path)?;
    let count = samples.count();
    spec(&samples.service, String::new())?;
    for probe in &samples.probes {
        ProbeId::parse(probe).map_err(|e| e.to_string())?;
        spec(&format!("{}.{probe}", samples.service), String::new())?;
    }
    let start_ms = end_ms - i64::from(days) * 86_400_000;
    if let Some(outside) = samples
        .times
        .iter()
        .flat_map(|t| t.first().into_iter().chain(t.last()))
        .find(|&&t| t < start_ms || t >= end_ms)
    {
        return Err(format!(
            "a check at {outside} ms lies outside the history [{start_ms}, {end_ms})"
        ));
    }
    let mut key = Sha256::new();
    key.update(samples.digest);
    key.update(format!("{start_ms} {end_ms} per_probe={per_probe}"));
    let dir = root.join(format!("peers-{}", &hex::encode(key.finalize())[..16]));
    let (service, probes) = (samples.service.clone(), samples.probes.clone());
    let source = PeerHistory {
        samples,
        span: (start_ms, end_ms),
        per_probe,
    };
    let observations = count * source.per_check();
    let built = history::ensure_from(&dir, Arc::new(source)).await?;

    let served = history::serve(&built.dir, Arc::new(ManualClock::new(end_ms)), false).await?;
    let channel = crate::client::connect(&served.address)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = QueryServiceClient::new(channel);
    let mut questions: Vec<(String, Option<String>)> = vec![(service.clone(), None)];
    if per_probe {
        for probe in &probes {
            questions.push((format!("{service}.{probe}"), Some(probe.clone())));
        }
    }
    let mut answers = Vec::new();
    for window_days in [30u32, 365].into_iter().filter(|w| *w <= days) {
        for (service_id, probe) in &questions {
            let mut latencies = Vec::with_capacity(calls);
            let mut report = None;
            for call in 0..calls + calls / 10 {
                let request = pb::GetAvailabilityRequest {
                    service_id: service_id.clone(),
                    window: super::query::window(window_days, end_ms),
                    tree_size: 0,
                };
                let started = Instant::now();
                let response = client
                    .get_availability(request)
                    .await
                    .map_err(|e| e.to_string())?;
                if call >= calls / 10 {
                    latencies.push(started.elapsed());
                }
                report = response.into_inner().report;
            }
            let report = report.ok_or("GetAvailability answered no report")?;
            answers.push(Answer {
                service_id: service_id.clone(),
                probe: probe.clone(),
                window_days,
                latency: Latency::from_samples(&mut latencies),
                up_ms: report.up_ms,
                down_ms: report.down_ms,
                unknown_ms: report.unknown_ms,
                availability: report.availability,
            });
        }
    }
    served.stop().await;
    Ok(PeersResult {
        ledger_dir: built.dir.clone(),
        samples: count,
        observations,
        tree_size: built.tree_size,
        build_seconds: built.build_seconds,
        build_resumed: built.resumed,
        ledger_disk_bytes: super::query::disk_bytes(&built.dir),
        answers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn samples_are_read_per_probe_in_milliseconds() {
        let file =
            write("service,probe,ts,status\nsvc-01,p2,13,0\nsvc-01,p1,10,1\nsvc-01,p1,20,0\n");
        let samples = Samples::read(file.path()).unwrap();
        assert_eq!(samples.service, "svc-01");
        assert_eq!(samples.probes, ["p1", "p2"]);
        assert_eq!(samples.times, [vec![10_000, 20_000], vec![13_000]]);
        assert_eq!(samples.up, [vec![true, false], vec![false]]);
        assert_eq!(samples.count(), 3);

        for bad in [
            "service,probe,ts,status\nsvc-01,p1,10,2\n",
            "service,probe,ts,status\nsvc-01,p1,10\n",
            "service,probe,ts,status\nsvc-01,p1,10,1\nsvc-02,p1,20,1\n",
            "service,probe,ts,status\nsvc-01,p1,20,1\nsvc-01,p1,10,1\n",
            "service,probe,ts,status\n",
        ] {
            assert!(Samples::read(write(bad).path()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_check_becomes_one_observation_per_service_in_time_order() {
        let file =
            write("service,probe,ts,status\nsvc-01,p1,10,1\nsvc-01,p1,20,0\nsvc-01,p2,13,1\n");
        let history = PeerHistory {
            samples: Samples::read(file.path()).unwrap(),
            span: (0, 30_000),
            per_probe: true,
        };
        let services: Vec<String> = history
            .services()
            .iter()
            .map(|s| s.service_id.to_string())
            .collect();
        assert_eq!(services, ["svc-01", "svc-01.p1", "svc-01.p2"]);
        let seen: Vec<(usize, String, u64, i64, Status)> = history
            .observations(0, 30_000)
            .into_iter()
            .map(|(k, o)| (k, o.service_id.to_string(), o.seq, o.observed_at, o.status))
            .collect();
        assert_eq!(
            seen,
            [
                (0, "svc-01".into(), 1, 10_000, Status::Up),
                (0, "svc-01.p1".into(), 2, 10_000, Status::Up),
                (1, "svc-01".into(), 1, 13_000, Status::Up),
                (1, "svc-01.p2".into(), 2, 13_000, Status::Up),
                (0, "svc-01".into(), 3, 20_000, Status::Down),
                (0, "svc-01.p1".into(), 4, 20_000, Status::Down),
            ]
        );
        // A chunk holds only its own checks, with the same seqs.
        let later: Vec<u64> = history
            .observations(15_000, 30_000)
            .iter()
            .map(|(_, o)| o.seq)
            .collect();
        assert_eq!(later, [3, 4]);
        let single = PeerHistory {
            per_probe: false,
            ..history
        };
        assert_eq!(single.services().len(), 1);
        let seqs: Vec<u64> = single
            .observations(0, 30_000)
            .iter()
            .map(|(_, o)| o.seq)
            .collect();
        assert_eq!(seqs, [1, 1, 2]);
    }
}
