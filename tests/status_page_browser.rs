//! The demo's status page in a real headless browser (Debian's `chromium`): the real
//! `uptime-ledger demo` runs with its backfilled history and live probes (times in
//! Africa/Nairobi), the rendered DOM shows every service, availability percentages and the
//! zone; axe-core (npm, installed in `tests/browser/` by `npm ci --prefix tests/browser`)
//! finds no serious or critical accessibility violation on the status page and a service's
//! page; at 360 px wide neither scrolls sideways; and screenshots (the status page on a
//! desktop and a phone, one service's page) are saved as test artifacts under
//! `<target dir>/test-artifacts/`.
//!
//! Without chromium the test says it was skipped and passes, except under CI (`CI` set),
//! where `.ci/run` installs chromium and a missing browser is a failure. With
//! `UPTIME_LEDGER_UPDATE_DOCS=1` the desktop screenshot is also copied to
//! `docs/status-page.png`, the picture in the README.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::demo;

const SERVICE_NAMES: [&str; 6] = [
    "National e-services portal",
    "Passport applications",
    "Business registration",
    "Driving licences",
    "Tax filing",
    "Certificate of good conduct",
];

/// Longest a single chromium run may take before it is killed.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_in_a_headless_browser() {
    let Some(chromium) = find_chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing under CI: .ci/run installs it with apt-get install -y chromium"
        );
        common::say_skipped(
            "the_status_page_renders_in_a_headless_browser",
            "no chromium on PATH (install it with `apt-get install -y chromium`, \
             or set CHROMIUM=/path/to/chromium)",
        );
        return;
    };
    let data_dir = tempfile::tempdir().unwrap();
    // The default history, so the screenshot shows what `demo` shows a newcomer.
    let demo = demo(data_dir.path(), &["--time-zone", "Africa/Nairobi"]);
    let url = format!("{}/", demo.http);
    let service_url = format!("{}/services/immigration.passport", demo.http);
    let artifacts = artifacts_dir();

    // Accessibility and the phone layout, on both pages.
    let axe = axe_source();
    for page in [&url, &service_url] {
        let checked = check_page(&chromium, page, axe.clone()).await;
        eprintln!(
            "{page}: axe-core: {} serious or critical violations; at {} px the document is {} px wide",
            checked.violations.as_ref().map_or("not run".into(), |v| v.len().to_string()),
            checked.viewport_width,
            checked.scroll_width
        );
        if let Some(violations) = &checked.violations {
            assert!(
                violations.is_empty(),
                "axe-core finds serious or critical violations on {page}:\n{}",
                serde_json::to_string_pretty(violations).unwrap()
            );
        }
        assert!(
            checked.scroll_width <= checked.viewport_width,
            "{page} scrolls sideways at {} px: the document is {} px wide; widest elements: {}",
            checked.viewport_width,
            checked.scroll_width,
            checked.overflowing
        );
        assert!(
            checked.scrollers.is_empty(),
            "on {page} at 360 px these scroll sideways instead of reflowing: {}",
            checked.scrollers
        );
    }

    // What a reader sees: the page's rendered text (`innerText` leaves out whatever CSS
    // hides), read from a live page over the DevTools protocol once it has loaded.
    let text = visible_text(&chromium, &url).await;
    std::fs::write(artifacts.join("status-page.txt"), &text).unwrap();
    for name in SERVICE_NAMES {
        assert!(
            text.contains(name),
            "{name} is not visible on the page:\n{text}"
        );
    }
    // An availability figure as a percentage (the portal's 47-minute outage two days ago
    // puts it below 100%).
    assert!(
        has_percentage_figure(&text),
        "no availability percentage is visible:\n{text}"
    );
    // The tax office's window, declared in advance, is listed as planned.
    assert!(text.contains("tax-upgrade-1"), "{text}");
    // Times are local, and the page says in which zone.
    assert!(
        text.contains("Times are in Africa/Nairobi (EAT, UTC+03)"),
        "{text}"
    );
    assert!(text.contains(" EAT"), "{text}");
    let dom = run_chromium(&chromium, &["--dump-dom", &url]).await;
    std::fs::write(artifacts.join("status-page.html"), &dom).unwrap();

    for (name, size, url) in [
        ("status-page.png", "1280,1900", &url),
        ("status-page-phone.png", "412,2400", &url),
        ("service-page.png", "1280,2400", &service_url),
    ] {
        let path = artifacts.join(name);
        let _ = std::fs::remove_file(&path);
        let screenshot = format!("--screenshot={}", path.display());
        let window = format!("--window-size={size}");
        run_chromium(&chromium, &[&screenshot, &window, "--hide-scrollbars", url]).await;
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("no screenshot {name}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG"), "{name} is not a PNG");
        eprintln!("screenshot: {}", path.display());
    }
    if std::env::var_os("UPTIME_LEDGER_UPDATE_DOCS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(
            artifacts.join("status-page.png"),
            docs.join("status-page.png"),
        )
        .unwrap();
    }
}

/// Whether the text has a figure like `99.53%` (two decimals, as the page prints them).
fn has_percentage_figure(text: &str) -> bool {
    text.split_whitespace().any(|word| {
        word.strip_suffix('%')
            .and_then(|number| number.split_once('.'))
            .is_some_and(|(whole, fraction)| {
                !whole.is_empty()
                    && fraction.len() == 2
                    && (whole.to_owned() + fraction)
                        .bytes()
                        .all(|b| b.is_ascii_digit())
            })
    })
}

/// The flags every chromium run gets, with a fresh `--user-data-dir` each time.
const CHROMIUM_FLAGS: [&str; 7] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The rendered text (`document.body.innerText`) of `url` once it has loaded, from a
/// headless chromium driven over the DevTools protocol on a pipe.
async fn visible_text(chromium: &Path, url: &str) -> String {
    let url = url.to_owned();
    with_devtools(chromium, move |devtools| {
        let session = devtools.open(&url);
        devtools
            .evaluate(&session, "document.body.innerText", false)
            .expect("the loaded page evaluates")
            .as_str()
            .expect("the page has a body")
            .to_owned()
    })
    .await
}

/// `axe.min.js` from `tests/browser/node_modules` (`npm ci --prefix tests/browser`), or
/// `None` outside CI when it is not installed.
fn axe_source() -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(error) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "axe-core is missing under CI ({}: {error}): .ci/run installs it with npm ci --prefix tests/browser",
                path.display()
            );
            common::say_skipped(
                "the accessibility check",
                "no axe-core (run `npm ci --prefix tests/browser`)",
            );
            None
        }
    }
}

/// What [`check_page`] finds.
struct PageCheck {
    /// axe-core's serious and critical violations (`None`: axe-core is not installed).
    violations: Option<Vec<serde_json::Value>>,
    /// The document's width and the viewport's, at 360 px.
    scroll_width: u64,
    viewport_width: u64,
    /// The elements wider than the viewport, for the failure message.
    overflowing: String,
    /// The elements that scroll sideways inside the page (a table in a scroll box).
    scrollers: String,
}

/// axe-core's serious and critical violations, a few offending nodes each.
const RUN_AXE: &str = r#"
axe.run(document).then(result => result.violations
  .filter(v => v.impact === 'serious' || v.impact === 'critical')
  .map(v => ({ id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.slice(0, 5).map(n => n.html) })))
"#;

/// The layout once laid out again (two animation frames): the document's and the
/// viewport's widths, what sticks out of the viewport, and what scrolls sideways inside it.
const MEASURE_LAYOUT: &str = r#"
new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => {
  const all = [...document.querySelectorAll('body *')];
  const describe = list => list.slice(0, 5).map(e => e.outerHTML.slice(0, 120)).join(' | ');
  done({
    scroll: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
    overflowing: describe(all.filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)),
    scrollers: describe(all.filter(e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX)
                                        && e.scrollWidth > e.clientWidth + 1)),
  });
})))
"#;

/// Runs axe-core (when given) on `url` as a desktop loads it, then lays the page out on a
/// 360 px wide phone screen and measures whether it scrolls sideways.
async fn check_page(chromium: &Path, url: &str, axe: Option<String>) -> PageCheck {
    let url = url.to_owned();
    with_devtools(chromium, move |devtools| {
        let session = devtools.open(&url);
        let violations = axe.map(|source| {
            // `0` after it: the script's own value is not needed (nor serializable).
            devtools
                .evaluate(&session, &format!("{source}\n;0"), false)
                .expect("axe-core loads");
            let found = devtools
                .evaluate(&session, RUN_AXE, true)
                .expect("axe-core runs");
            found.as_array().cloned().unwrap_or_default()
        });
        devtools
            .call(
                Some(&session),
                "Emulation.setDeviceMetricsOverride",
                serde_json::json!({ "width": 360, "height": 740, "deviceScaleFactor": 2, "mobile": true }),
            )
            .expect("Emulation.setDeviceMetricsOverride");
        let measured = devtools
            .evaluate(&session, MEASURE_LAYOUT, true)
            .expect("the layout is measured");
        PageCheck {
            violations,
            scroll_width: measured["scroll"].as_u64().unwrap_or(u64::MAX),
            viewport_width: measured["viewport"].as_u64().unwrap_or(0),
            overflowing: measured["overflowing"].as_str().unwrap_or("").to_owned(),
            scrollers: measured["scrollers"].as_str().unwrap_or("").to_owned(),
        }
    })
    .await
}

/// Runs `session` against a fresh headless chromium (off the async workers), then closes
/// it; kills it after [`BROWSER_TIMEOUT`].
async fn with_devtools<T: Send + 'static>(
    chromium: &Path,
    session: impl FnOnce(&mut DevTools) -> T + Send + 'static,
) -> T {
    let (mut devtools, pid) = DevTools::start(chromium);
    let session = tokio::task::spawn_blocking(move || {
        let result = session(&mut devtools);
        devtools.close();
        result
    });
    match tokio::time::timeout(BROWSER_TIMEOUT, session).await {
        Ok(result) => result.unwrap(),
        Err(_) => {
            // Its pipes close with it, which ends the blocked session thread.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("chromium took longer than {BROWSER_TIMEOUT:?}");
        }
    }
}

/// Chromium with `--remote-debugging-pipe`: it reads DevTools commands on fd 3 and writes
/// answers and events on fd 4, each a JSON text ended by a NUL byte.
struct DevTools {
    child: std::process::Child,
    commands: std::io::PipeWriter,
    answers: std::io::BufReader<std::io::PipeReader>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl DevTools {
    fn start(chromium: &Path) -> (DevTools, u32) {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;

        let profile = tempfile::tempdir().unwrap();
        let (child_reads, commands) = std::io::pipe().unwrap();
        let (answers, child_writes) = std::io::pipe().unwrap();
        let (read_fd, write_fd) = (child_reads.as_raw_fd(), child_writes.as_raw_fd());
        let mut command = Command::new(chromium);
        command
            .args(CHROMIUM_FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--remote-debugging-pipe")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) run between fork and exec.
        // The pipes were made close-on-exec; the child's ends are first moved above fd 10
        // (so neither is clobbered when the other lands on 3 or 4), then duplicated onto 3
        // and 4, which dup2 leaves open across exec.
        unsafe {
            command.pre_exec(move || {
                let read_high = libc::fcntl(read_fd, libc::F_DUPFD_CLOEXEC, 10);
                let write_high = libc::fcntl(write_fd, libc::F_DUPFD_CLOEXEC, 10);
                if read_high < 0
                    || write_high < 0
                    || libc::dup2(read_high, 3) < 0
                    || libc::dup2(write_high, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("chromium starts");
        // The parent keeps only its own ends, so a chromium that exits is an EOF here.
        drop((child_reads, child_writes));
        let pid = child.id();
        let devtools = DevTools {
            child,
            commands,
            answers: std::io::BufReader::new(answers),
            next_id: 0,
            _profile: profile,
        };
        (devtools, pid)
    }

    /// Sends a command (to `session`'s page, or to the browser) and returns its result, or
    /// the error chromium answered with, skipping the events that arrive before it.
    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, serde_json::Value> {
        use std::io::{BufRead, Write};
        self.next_id += 1;
        let id = self.next_id;
        let mut message = serde_json::json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("{method}: chromium is gone: {e}"));
        loop {
            let mut answer = Vec::new();
            let read = self.answers.read_until(0, &mut answer).unwrap();
            assert!(read > 0, "{method}: chromium closed its DevTools pipe");
            answer.pop_if(|byte| *byte == 0);
            let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
            if answer["id"] == id {
                return match answer.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(answer["result"].clone()),
                };
            }
        }
    }

    /// Opens `url` in a new tab and waits until it has loaded; returns the tab's session.
    fn open(&mut self, url: &str) -> String {
        let target = self
            .call(
                None,
                "Target.createTarget",
                serde_json::json!({ "url": url }),
            )
            .expect("Target.createTarget");
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                serde_json::json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .expect("Target.attachToTarget");
        let session = attached["sessionId"].as_str().unwrap().to_owned();
        // Until the page itself (not the blank document a new tab starts with) has loaded;
        // an evaluation that meets a navigation in progress fails and is tried again.
        let loaded = format!(
            "location.href === {} && document.readyState === 'complete'",
            serde_json::Value::from(url)
        );
        while self.evaluate(&session, &loaded, false) != Ok(serde_json::Value::Bool(true)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        session
    }

    /// The value of `expression` in the tab (awaited when it is a promise and
    /// `await_promise`), or chromium's error or the exception it threw.
    fn evaluate(
        &mut self,
        session: &str,
        expression: &str,
        await_promise: bool,
    ) -> Result<serde_json::Value, serde_json::Value> {
        let result = self.call(
            Some(session),
            "Runtime.evaluate",
            serde_json::json!({
                "expression": expression,
                "returnByValue": true,
                "awaitPromise": await_promise,
            }),
        )?;
        match result.get("exceptionDetails") {
            Some(exception) => Err(exception.clone()),
            None => Ok(result["result"]["value"].clone()),
        }
    }

    fn close(mut self) {
        use std::io::Write;
        let _ = self
            .commands
            .write_all(b"{\"id\":0,\"method\":\"Browser.close\",\"params\":{}}\0");
        drop(self.commands);
        drop(self.answers);
        let status = self.child.wait().unwrap();
        assert!(
            status.success() || status.code().is_none(),
            "chromium: {status}"
        );
    }
}

/// `$CHROMIUM`, or `chromium` / `chromium-browser` on PATH.
fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// `<target dir>/test-artifacts`.
fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target tmp dir has a parent")
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless chromium with a fresh profile (off the async workers, so the server keeps
/// answering) and returns its stdout.
async fn run_chromium(chromium: &Path, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut command = Command::new(chromium);
    command
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("chromium starts");
        // Read both pipes while it runs: a DOM larger than a pipe buffer would block it.
        let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > BROWSER_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium took longer than {BROWSER_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
        drop(profile);
        assert!(status.success(), "chromium failed ({status}): {stderr}");
        stdout
    })
    .await
    .unwrap()
}
