//! Real servers for the queue tests, started from the machine's Debian
//! packages on loopback with throwaway state.
//!
//! A suite that needs a server calls `postgres::postgres()` or
//! `redis::redis()` (behind their features). When the server's
//! binaries are missing:
//! * by default each of the suite's tests writes one loud `SKIPPED` line
//!   (past libtest's output capture, with a running count) saying what to
//!   install, and returns early;
//! * with `AIRLOCK_REQUIRE_SERVERS=1` (set by `.ci/run`) the test fails instead,
//!   so CI always runs these suites.
//!
//! Each server is started once per test binary and stopped by a watchdog when
//! that process exits (the test harness never runs destructors of statics).

#[cfg(feature = "apalis-postgres")]
pub mod postgres;
#[cfg(feature = "apalis-redis")]
pub mod redis;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The variable that turns a missing server into a test failure.
pub const REQUIRE_VAR: &str = "AIRLOCK_REQUIRE_SERVERS";

/// Whether a missing server must fail the run (`AIRLOCK_REQUIRE_SERVERS` set
/// to anything but `0` or empty).
pub fn servers_required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// How many tests of this process skipped for want of a server so far.
static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// Reports that the calling test of `suite` cannot run because `what` is
/// missing: panics when servers are required, otherwise writes one loud line
/// per skipped test (naming it, with the process's running count) and returns.
///
/// The line is written to the process's stderr directly, not with
/// `eprintln!`: libtest captures the print macros of a passing test, so a
/// skipped test would otherwise look like an `ok` in 0.00 s.
pub fn skip_or_fail(suite: &str, what: &str, install: &str) {
    if servers_required() {
        panic!(
            "{suite}: {what}; {REQUIRE_VAR} is set, so this is a failure. \
             Install it with `{install}`."
        );
    }
    let skipped = SKIPPED.fetch_add(1, Ordering::Relaxed) + 1;
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    // Past libtest's capture: `std::io::stderr()` is not redirected.
    let _ = writeln!(
        std::io::stderr().lock(),
        "*** SKIPPED {test} ({suite}): {what}. Install it (`{install}`) to run it; \
         CI sets {REQUIRE_VAR}=1 and fails instead. [{skipped} skipped in this test binary] ***"
    );
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 for a free port")
}

/// The first of `candidates` that exists.
pub fn find_binary<'a>(candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .find(|c| Path::new(c).is_file())
        .map(str::to_owned)
}

/// Spawns `command` under a watchdog that kills it (and waits for it) when
/// the current process exits, however it exits.
pub fn spawn_watched(command: &[&str]) -> std::io::Result<Child> {
    // The watchdog is a shell loop: it starts the server, then polls this
    // process's pid; when the pid is gone it terminates the server.
    let script = r#"
        parent="$1"; shift
        "$@" &
        child=$!
        trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM INT
        while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
        kill -TERM "$child" 2>/dev/null
        wait "$child"
    "#;
    let mut args = vec![
        "-c".to_owned(),
        script.to_owned(),
        "airlock-watchdog".to_owned(),
        std::process::id().to_string(),
    ];
    args.extend(command.iter().map(|s| (*s).to_owned()));
    Command::new("sh")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
}

/// Waits until `127.0.0.1:port` accepts connections, up to `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
