//! The real binary as a child process, with its stderr collected: `serve` on a chosen
//! address, or any other subcommand (the probe agent). A child still running when its
//! handle is dropped (a failed test) is killed, so no process outlives its test.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BINARY: &str = env!("CARGO_BIN_EXE_uptime-ledger");

/// A command's stdout, after checking that it succeeded (else its output is shown).
pub fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "the command failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A command's stderr, after checking that it failed.
pub fn failure(output: &std::process::Output) -> String {
    assert!(
        !output.status.success(),
        "the command should have failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Runs the binary with `args` to completion without blocking the async runtime that serves
/// an in-process ledger (a blocking wait there would starve the ledger the command talks to).
pub async fn run(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || Command::new(BINARY).args(args).output().unwrap())
        .await
        .unwrap()
}

/// A running child of the binary.
pub struct Process {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Process {
    /// Starts `command` (built on [`BINARY`]) with stdout discarded and stderr collected.
    pub fn spawn(mut command: Command) -> Process {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let collected = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut collected = collected.lock().unwrap();
                collected.push_str(&line);
                collected.push('\n');
            }
        });
        Process {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    /// The child's process id (for signals and /proc/PID).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's resident set size now, in bytes, from /proc/PID/status (0 if unreadable).
    pub fn rss_bytes(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// The exit status, if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Polls stderr until `find` returns something, for at most `timeout`.
    pub fn wait_for_stderr<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = find(&self.stderr()) {
                return found;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                if let Some(found) = find(&self.stderr()) {
                    return found;
                }
                panic!("exited ({exit}) before {what}:\n{}", self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit; returns it with all of stderr.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        self.wait()
    }

    /// Sends SIGKILL: the process gets no chance to finish anything.
    pub fn kill(mut self) -> (ExitStatus, String) {
        self.child.kill().unwrap();
        self.wait()
    }

    /// Waits for the process to exit by itself.
    pub fn wait(&mut self) -> (ExitStatus, String) {
        let exit = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (exit, self.stderr())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Does nothing for a child that was already waited for.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `label` in the banner titled `title` on `stderr`: an `  label: value`
/// line after the title (`--log-format text`), or the snake-case field of the JSON line
/// whose message is the title (`--log-format json`).
pub fn banner_field(stderr: &str, title: &str, label: &str) -> Option<String> {
    let key: String = label
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    let mut in_banner = false;
    for line in stderr.lines() {
        if line.starts_with('{') {
            let Ok(object) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if object["fields"]["message"] == title {
                return object["fields"][&key].as_str().map(str::to_owned);
            }
        } else if line.trim() == title {
            in_banner = true;
        } else if in_banner {
            if let Some(value) = line.trim().strip_prefix(&format!("{label}:")) {
                return Some(value.trim().to_owned());
            }
        }
    }
    None
}

/// A running `uptime-ledger serve`.
pub struct Served {
    pub process: Process,
    /// `http://127.0.0.1:PORT`, as printed by `serve`.
    pub address: String,
    /// `http://127.0.0.1:PORT` of the status page, JSON API and metrics.
    pub http_address: String,
}

/// `serve` on a free port with no other flags.
pub fn serve(data_dir: &Path) -> Served {
    serve_with(data_dir, "127.0.0.1:0", &[])
}

/// `serve --grpc-addr GRPC_ADDR --http-addr 127.0.0.1:0 --data-dir DATA_DIR EXTRA…`, once
/// it is serving (HTTP on a free port, so tests never collide on the default 8080).
pub fn serve_with(data_dir: &Path, grpc_addr: &str, extra: &[&str]) -> Served {
    let mut process = Process::spawn(serve_command_with(data_dir, grpc_addr, extra));
    let (address, http_address) =
        process.wait_for_stderr("the serving banner", Duration::from_secs(60), |stderr| {
            let field = |label| banner_field(stderr, SERVE_BANNER, label);
            Some((
                field("gRPC")?,
                field("status page")?.trim_end_matches('/').to_owned(),
            ))
        });
    Served {
        process,
        address,
        http_address,
    }
}

/// The command line of [`serve_with`], not yet started.
pub fn serve_command_with(data_dir: &Path, grpc_addr: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args([
            "serve",
            "--grpc-addr",
            grpc_addr,
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra);
    command
}

/// The title of `serve`'s banner, printed once it serves.
pub const SERVE_BANNER: &str = "uptime-ledger serving";

impl Served {
    pub fn terminate(self) -> (ExitStatus, String) {
        self.process.terminate()
    }

    pub fn port(&self) -> u16 {
        self.address.rsplit(':').next().unwrap().parse().unwrap()
    }
}

/// A running `uptime-ledger demo`.
pub struct Demo {
    pub process: Process,
    /// `http://127.0.0.1:PORT` of the status page and JSON API.
    pub http: String,
    /// `http://127.0.0.1:PORT` of the gRPC services.
    pub grpc: String,
}

/// The `demo` command line on ports 0 in `data_dir`, not yet started.
pub fn demo_command(data_dir: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args([
            "demo",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra);
    command
}

/// The title of `demo`'s banner, printed once it runs.
pub const DEMO_BANNER: &str = "uptime-ledger demo is running (Ctrl-C to stop)";

/// `demo --data-dir DATA_DIR --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 EXTRA…`, once
/// its banner says it is running (after setup and backfill).
pub fn demo(data_dir: &Path, extra: &[&str]) -> Demo {
    let mut process = Process::spawn(demo_command(data_dir, extra));
    let (http, grpc) = process.wait_for_stderr("demo banner", Duration::from_secs(120), |stderr| {
        let field = |label| {
            banner_field(stderr, DEMO_BANNER, label)
                .map(|value| value.trim_end_matches('/').to_owned())
        };
        Some((field("status page")?, field("gRPC")?))
    });
    Demo {
        process,
        http,
        grpc,
    }
}
