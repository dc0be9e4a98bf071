//! Storage faults made for real, against the real binary:
//!
//! - `fdatasync` failing with EIO, injected into the running server by
//!   `strace -e inject=fdatasync:error=EIO` → the batch is not acknowledged (UNAVAILABLE),
//!   every later write is refused with the reason, reads keep working, `/readyz` is 503;
//!   after a restart everything verifies and nothing acknowledged is lost.
//! - A full disk: a small ext4 image on a loop device (as root), and a file-size limit
//!   (`RLIMIT_FSIZE`, EFBIG) which needs no privileges → RESOURCE_EXHAUSTED, no panic,
//!   reads keep working, and writes resume once space is freed (no restart).
//! - A damaged stopped data directory (a flipped byte inside a stored entry in sled's own
//!   file; a truncated file) → `serve` exits non-zero naming what failed verification.
//!
//! Under CI (`CI` set) a missing tool (strace, mkfs.ext4) fails the test instead of skipping.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use common::durability::{
    check_restarted, provision, serve_args, serve_command, submit_recorded, temp_data,
    wait_for_checkpoint, Probe, Record, Refused, Running, SharedRecord,
};
use common::process::{Process, BINARY};
use uptime_ledger::domain::Status;
use uptime_ledger::pb;
use uptime_ledger::pb::ingest_service_client::IngestServiceClient;

fn skip_or_fail(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{reason} (CI must have it: .ci/run installs it)");
    }
    common::say_skipped("a storage fault test", reason);
}

fn tool_exists(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// A provisioned data directory, stopped cleanly.
fn provisioned(data: &Path, probes: usize) -> Vec<Probe> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let running = Running::start(serve_command(data));
    let probes = runtime.block_on(provision(&running, data, probes));
    let (exit, stderr) = running.process.terminate();
    assert!(exit.success(), "{stderr}");
    probes
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// GetCheckpoint, GetEntries (verified against the checkpoint) and QueryService answer.
async fn check_reads_work(running: &Running, context: &str) {
    let channel = running.channel().await;
    uptime_ledger::client::verify_log(channel.clone(), &running.verifier)
        .await
        .unwrap_or_else(|e| panic!("{context}: reads while faulted: {e}"));
    pb::query_service_client::QueryServiceClient::new(channel)
        .list_services(pb::ListServicesRequest {})
        .await
        .unwrap_or_else(|e| panic!("{context}: queries while faulted: {e}"));
}

/// Restarts the ledger plainly and runs the full post-fault check, then one more write.
fn restart_and_check(data: &Path, record: &SharedRecord, probe: &mut Probe, context: &str) {
    let running = Running::start(serve_command(data));
    runtime().block_on(async {
        let mut rng = StdRng::seed_from_u64(11);
        check_restarted(&running, record, &mut rng, context).await;
        let mut ingest = IngestServiceClient::new(running.channel().await);
        submit_recorded(&mut ingest, record, &[probe.observe(Status::Up, "")])
            .await
            .unwrap_or_else(|e| panic!("{context}: a write after the restart: {e:?}"));
    });
    running.kill();
}

// ---------------------------------------------------------------------------------------
// fdatasync → EIO

#[test]
fn fdatasync_eio_stops_writes_keeps_reads_and_loses_nothing() {
    if !tool_exists("strace") {
        return skip_or_fail("strace is not installed");
    }
    let (_dir, data) = temp_data();
    let mut probes = provisioned(&data, 1);
    let record: SharedRecord = Arc::new(Mutex::new(Record::default()));

    // The server's own fdatasync calls (sled's flush uses sync_file_range and fsync): the
    // third and every later one fails with EIO.
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=fdatasync"])
        .args(["-e", "inject=fdatasync:error=EIO:when=3+"])
        .arg(BINARY)
        .args(serve_args(&data));
    let running = Running::start(command);
    let probe = &mut probes[0];
    let refused_with = runtime().block_on(async {
        let mut ingest = IngestServiceClient::new(running.channel().await);
        let mut refused = None;
        for _ in 0..50 {
            let batch = [probe.observe(Status::Up, "")];
            if let Err(Refused(status)) = submit_recorded(&mut ingest, &record, &batch).await {
                refused = Some(status);
                break;
            }
        }
        let status = refused.expect("an fdatasync failed within 50 batches");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains("Input/output error"),
            "the refusal says why: {status:?}"
        );
        // Writes stay refused, with the reason; reads keep working.
        let again = submit_recorded(&mut ingest, &record, &[probe.observe(Status::Up, "")])
            .await
            .expect_err("writes stay stopped");
        assert_eq!(again.0.code(), tonic::Code::Unavailable);
        assert_eq!(again.0.message(), status.message());
        check_reads_work(&running, "fdatasync EIO").await;
        let ready = common::http_get(&running.http_address, "/readyz").await;
        assert_eq!(ready.status, 503, "{}", ready.body);
        assert!(ready.body.contains("Input/output error"), "{}", ready.body);
        // Operators see it in /metrics: writes stopped, and both refused calls counted.
        let metrics = common::metrics_at(&running.http_address).await;
        assert_eq!(metrics.value("uptime_ledger_log_writes_stopped", &[]), 1.0);
        assert_eq!(metrics.refused_calls("unavailable"), 2.0);
        status.message().to_owned()
    });
    eprintln!("refused with: {refused_with}");
    let stderr = kill_traced(running);
    assert!(!stderr.contains("panicked"), "{stderr}");
    restart_and_check(&data, &record, probe, "after fdatasync EIO");
}

/// SIGKILLs the server under strace (its tracer would otherwise detach and leave it
/// running), then strace.
fn kill_traced(running: Running) -> String {
    let tracer = running.process.pid();
    let children = std::fs::read_to_string(format!("/proc/{tracer}/task/{tracer}/children"))
        .unwrap_or_default();
    for child in children.split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", child]).status();
    }
    running.kill()
}

// ---------------------------------------------------------------------------------------
// Disk full

/// A small ext4 file system on a loop device, unmounted on drop.
struct LoopMount {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl LoopMount {
    fn new(megabytes: u64) -> Result<LoopMount, String> {
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root".into());
        }
        if !Path::new("/sbin/mkfs.ext4").exists() && !tool_exists("mkfs.ext4") {
            return Err("mkfs.ext4 is not installed".into());
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fs.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(megabytes << 20)
            .unwrap();
        let run = |command: &mut Command| -> Result<(), String> {
            let output = command.output().map_err(|e| e.to_string())?;
            if output.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&output.stderr).into_owned())
            }
        };
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))?;
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount))?;
        Ok(LoopMount { _dir: dir, mount })
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.mount)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        }
    }
}

/// Fills the file system holding `dir` with one file, until ENOSPC.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    let _ = file.sync_all();
    path
}

#[test]
fn disk_full_on_an_ext4_image_refuses_then_resumes_once_space_is_freed() {
    let mount = match LoopMount::new(24) {
        Ok(mount) => mount,
        Err(reason) => {
            // The file-size limit test below covers the same path without privileges.
            return skip_or_fail(&format!(
                "cannot mount an ext4 image on a loop device ({reason}); see file_size_limit_…"
            ));
        }
    };
    let data = mount.mount.join("data");
    let mut probes = provisioned(&data, 1);
    let record: SharedRecord = Arc::new(Mutex::new(Record::default()));
    let running = Running::start(serve_command(&data));
    let filler = mount.mount.join("filler");
    disk_full_flow(
        &running,
        &mut probes[0],
        &record,
        "ext4 full",
        |phase| match phase {
            Phase::Fill => {
                fill(&mount.mount);
            }
            Phase::Free => std::fs::remove_file(&filler).unwrap(),
        },
    );
    let stderr = running.kill();
    assert!(!stderr.contains("panicked"), "{stderr}");
    restart_and_check(&data, &record, &mut probes[0], "after a full disk");
}

#[test]
fn file_size_limit_refuses_then_resumes_once_lifted() {
    let (_dir, data) = temp_data();
    let mut probes = provisioned(&data, 1);
    let record: SharedRecord = Arc::new(Mutex::new(Record::default()));
    // Every file the server writes may grow to the largest one's size plus 64 KiB; then
    // writes fail with EFBIG (SIGXFSZ is ignored, as a server would).
    let largest = largest_file(&data);
    let limit = largest + (64 << 10);
    let mut command = serve_command(&data);
    unsafe {
        command.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let running = Running::start(command);
    let pid = running.process.pid() as libc::pid_t;
    disk_full_flow(
        &running,
        &mut probes[0],
        &record,
        "file size limit",
        |phase| {
            if phase == Phase::Free {
                let unlimited = libc::rlimit {
                    rlim_cur: libc::RLIM_INFINITY,
                    rlim_max: libc::RLIM_INFINITY,
                };
                let lifted = unsafe {
                    libc::prlimit(pid, libc::RLIMIT_FSIZE, &unlimited, std::ptr::null_mut())
                };
                assert_eq!(lifted, 0, "prlimit: {}", std::io::Error::last_os_error());
            }
        },
    );
    let stderr = running.kill();
    assert!(!stderr.contains("panicked"), "{stderr}");
    restart_and_check(&data, &record, &mut probes[0], "after a file size limit");
}

fn largest_file(dir: &Path) -> u64 {
    let mut largest = 0;
    for item in std::fs::read_dir(dir).unwrap() {
        let item = item.unwrap();
        let metadata = item.metadata().unwrap();
        largest = largest.max(if metadata.is_dir() {
            largest_file(&item.path())
        } else {
            metadata.len()
        });
    }
    largest
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Fill,
    Free,
}

/// Writes until RESOURCE_EXHAUSTED, checks the ledger while full, frees space and waits
/// for writes to resume. Refused batches are in doubt and sent again first.
fn disk_full_flow(
    running: &Running,
    probe: &mut Probe,
    record: &SharedRecord,
    context: &str,
    mut space: impl FnMut(Phase),
) {
    runtime().block_on(async {
        let mut ingest = IngestServiceClient::new(running.channel().await);
        for _ in 0..3 {
            let batch: Vec<_> = (0..4).map(|_| probe.observe(Status::Up, "")).collect();
            submit_recorded(&mut ingest, record, &batch)
                .await
                .unwrap_or_else(|e| panic!("{context}: before the disk filled: {e:?}"));
        }
        space(Phase::Fill);
        let mut in_doubt = Vec::new();
        let mut refusal = None;
        for _ in 0..5000 {
            let detail = "x".repeat(200);
            let batch: Vec<_> = (0..8).map(|_| probe.observe(Status::Up, &detail)).collect();
            if let Err(Refused(status)) = submit_recorded(&mut ingest, record, &batch).await {
                in_doubt = batch;
                refusal = Some(status);
                break;
            }
        }
        let status = refusal.unwrap_or_else(|| panic!("{context}: no write was refused"));
        assert_eq!(
            status.code(),
            tonic::Code::ResourceExhausted,
            "{context}: {status:?}"
        );
        assert!(
            status.message().contains("disk is full"),
            "{context}: {status:?}"
        );
        eprintln!("{context}: refused with {:?}", status.message());
        // Still full: refused again, and reads keep working.
        let again = submit_recorded(&mut ingest, record, &in_doubt)
            .await
            .expect_err("still full");
        assert_eq!(again.0.code(), tonic::Code::ResourceExhausted, "{again:?}");
        check_reads_work(running, context).await;
        let metrics = common::metrics_at(&running.http_address).await;
        assert_eq!(metrics.refused_calls("disk_full"), 2.0, "{context}");
        assert_eq!(metrics.value("uptime_ledger_log_writes_stopped", &[]), 0.0);

        // Space comes back: the same batch goes through (ACCEPTED or, if it had reached
        // the disk after all, DUPLICATE), without a restart.
        space(Phase::Free);
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            match submit_recorded(&mut ingest, record, &in_doubt).await {
                Ok(_) => break,
                Err(Refused(status)) => {
                    assert_eq!(
                        status.code(),
                        tonic::Code::ResourceExhausted,
                        "{context}: after freeing space: {status:?}"
                    );
                    assert!(
                        Instant::now() < deadline,
                        "{context}: writes did not resume within 40 s of freeing space"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let batch: Vec<_> = (0..4).map(|_| probe.observe(Status::Down, "")).collect();
        submit_recorded(&mut ingest, record, &batch)
            .await
            .unwrap_or_else(|e| panic!("{context}: after resuming: {e:?}"));
        let size = record.lock().unwrap().acked.keys().next_back().unwrap() + 1;
        let mut log = pb::log_service_client::LogServiceClient::new(running.channel().await);
        wait_for_checkpoint(&mut log, size).await;
        check_reads_work(running, context).await;
    });
}

// ---------------------------------------------------------------------------------------
// A damaged, stopped data directory

/// A stopped data directory whose observations carry `MARKER-nnnn` details, with a
/// checkpoint covering them all.
fn marked_directory() -> (tempfile::TempDir, PathBuf) {
    let (dir, data) = temp_data();
    let running = Running::start(serve_command(&data));
    runtime().block_on(async {
        let mut probes = provision(&running, &data, 1).await;
        let record: SharedRecord = Arc::new(Mutex::new(Record::default()));
        let mut ingest = IngestServiceClient::new(running.channel().await);
        for n in 0..40 {
            let batch = [probes[0].observe(Status::Up, &format!("MARKER-{n:04}"))];
            submit_recorded(&mut ingest, &record, &batch).await.unwrap();
        }
        let size = record.lock().unwrap().acked.keys().next_back().unwrap() + 1;
        let mut log = pb::log_service_client::LogServiceClient::new(running.channel().await);
        wait_for_checkpoint(&mut log, size).await;
    });
    let (exit, stderr) = running.process.terminate();
    assert!(exit.success(), "{stderr}");
    (dir, data)
}

/// Runs `serve` on a damaged directory: it must exit non-zero (within a minute).
fn refused_start(data: &Path) -> String {
    let mut process = Process::spawn(serve_command(data));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = process.try_wait() {
            let (_, stderr) = process.wait();
            assert!(
                !status.success(),
                "serve started on a damaged directory:\n{stderr}"
            );
            assert!(!stderr.contains("gRPC:"), "it served:\n{stderr}");
            assert!(!stderr.contains("panicked"), "it panicked:\n{stderr}");
            return stderr;
        }
        if Instant::now() > deadline || process.stderr().contains("gRPC:") {
            let (_, stderr) = process.kill();
            panic!("serve started on a damaged directory:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The positions of every copy of `needle` in `haystack`.
fn positions(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle)
        .map(|(at, _)| at)
        .collect()
}

#[test]
fn a_flipped_byte_in_a_stored_entry_refuses_to_start() {
    let (_dir, data) = marked_directory();
    let db = data.join("log/db");
    let mut bytes = std::fs::read(&db).unwrap();
    // Every copy sled keeps of one entry's detail (its log may hold the page more than once).
    let found = positions(&bytes, b"MARKER-0017");
    assert!(!found.is_empty(), "the entry's bytes are in sled's file");
    for at in &found {
        bytes[at + 7] ^= 0x01;
    }
    std::fs::write(&db, &bytes).unwrap();
    let stderr = refused_start(&data);
    eprintln!("{stderr}");
    assert!(stderr.contains("failed verification"), "{stderr}");
}

#[test]
fn a_flipped_byte_anywhere_in_the_log_file_never_serves_a_changed_log() {
    // Random single-byte flips: either the start is refused, or (a byte sled never reads
    // again, e.g. in a superseded page) the log served verifies against the checkpoint
    // and still holds every entry.
    let (_dir, data) = marked_directory();
    let pristine = std::fs::read(data.join("log/db")).unwrap();
    let seed = common::durability::seed("FLIP_SEED");
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..6 {
        use rand::Rng;
        let (_copy_dir, copy) = temp_data();
        common::durability::copy_dir(&data, &copy);
        let mut bytes = pristine.clone();
        let at = rng.gen_range(0..bytes.len());
        bytes[at] ^= 1 << rng.gen_range(0..8);
        std::fs::write(copy.join("log/db"), &bytes).unwrap();
        let mut process = Process::spawn(serve_command(&copy));
        let deadline = Instant::now() + Duration::from_secs(60);
        let served = loop {
            if let Some(status) = process.try_wait() {
                assert!(!status.success());
                break false;
            }
            if process.stderr().contains("verifier key:") {
                break true;
            }
            assert!(Instant::now() < deadline, "neither served nor refused");
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = if served {
            let running = Running::start_attached(process);
            runtime().block_on(async {
                let verified =
                    uptime_ledger::client::verify_log(running.channel().await, &running.verifier)
                        .await
                        .unwrap_or_else(|e| panic!("flip at {at}: a served log must verify: {e}"));
                let markers = verified
                    .entries
                    .iter()
                    .filter(|entry| positions(entry, b"MARKER-").len() == 1)
                    .count();
                assert_eq!(markers, 40, "flip at {at}: entries are missing");
            });
            running.kill()
        } else {
            process.wait().1
        };
        if !served {
            // Refused with a message naming the damage (sled's own recovery may have
            // panicked first; that is caught and reported as a damaged directory).
            assert!(
                stderr.contains("failed verification"),
                "flip at {at}:\n{stderr}"
            );
        }
        eprintln!(
            "flip at {at}: {}",
            if served { "served intact" } else { "refused" }
        );
    }
}

#[test]
fn a_truncated_log_file_refuses_to_start() {
    let (_dir, data) = marked_directory();
    // Cut sled's file inside the stored entries (its tail is mostly unused segment space,
    // whose loss changes nothing): at the first copy of a late entry's bytes.
    let db = data.join("log/db");
    let bytes = std::fs::read(&db).unwrap();
    let cut = positions(&bytes, b"MARKER-0030")[0];
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(cut as u64).unwrap();
    drop(file);
    let stderr = refused_start(&data);
    eprintln!("{stderr}");
    assert!(
        stderr.contains("failed verification") || stderr.contains("cannot open the ledger"),
        "{stderr}"
    );
}
