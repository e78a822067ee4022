//! A throwaway Redis server for the tests (see the parent module).
//!
//! One `redis-server` per test process, on a free loopback port, with nothing
//! persisted (`--save "" --appendonly no`). Tests are isolated by **database
//! index**, not by queue name: [`RedisServer::fresh_database`] hands each test
//! its own `redis://127.0.0.1:<port>/<n>`, so every test can use airlock's
//! default queue exactly as an application would, count every key it sees, and
//! never meet another test's workers or jobs.

use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// How many databases the server has: more than the tests of one binary use.
const DATABASES: u32 = 1024;

/// A running Redis server, stopped when the test process exits.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    next_database: AtomicU32,
    /// The watchdog shell that runs the server; it ends with this process.
    _watchdog: Child,
}

impl RedisServer {
    /// The server's URL (database 0, which no test is handed).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a database no other caller in this process gets: one per
    /// test keeps tests apart while they share the server.
    ///
    /// # Panics
    /// When all the server's databases are taken.
    pub fn fresh_database(&self) -> String {
        let n = self.next_database.fetch_add(1, Ordering::Relaxed);
        assert!(
            n < DATABASES,
            "the test Redis server has only {DATABASES} databases; raise DATABASES in \
             airlock-tests/src/servers/redis.rs"
        );
        format!("redis://127.0.0.1:{}/{n}", self.port)
    }
}

/// The Redis server for this test process, started on first use; `None` (after
/// a loud skip notice, or a panic under `AIRLOCK_REQUIRE_SERVERS`) when
/// `redis-server` is not installed.
///
/// # Panics
/// If `redis-server` is installed but does not start.
pub fn redis() -> Option<&'static RedisServer> {
    static SERVER: OnceLock<Option<RedisServer>> = OnceLock::new();
    let server = SERVER.get_or_init(start).as_ref();
    if server.is_none() {
        super::skip_or_fail(
            "queue_redis",
            "redis-server not found",
            "apt-get install redis-server",
        );
    }
    server
}

fn start() -> Option<RedisServer> {
    let binary = find()?;
    let port = super::free_port();
    let watchdog = spawn(&binary, port, DATABASES);
    Some(RedisServer {
        port,
        // Database 0 is the one `url()` names; tests start at 1.
        next_database: AtomicU32::new(1),
        _watchdog: watchdog,
    })
}

fn find() -> Option<String> {
    super::find_binary(["/usr/bin/redis-server", "/usr/local/bin/redis-server"])
}

/// Starts `binary` on `port` under a watchdog and waits until it accepts
/// connections.
fn spawn(binary: &str, port: u16, databases: u32) -> Child {
    let port_arg = port.to_string();
    let databases = databases.to_string();
    let dir = std::env::temp_dir();
    let dir = dir.to_str().expect("a UTF-8 temporary directory");
    let watchdog = super::spawn_watched(&[
        binary,
        "--port",
        &port_arg,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--databases",
        &databases,
        "--dir",
        dir,
        "--loglevel",
        "warning",
    ])
    .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
    assert!(
        super::wait_for_port(port, Duration::from_secs(20)),
        "{binary} did not accept connections on 127.0.0.1:{port} within 20 s"
    );
    watchdog
}

/// A Redis server of one test's own, which the test may kill, pause and
/// start again (on the same port, empty: nothing is persisted) without
/// disturbing any other test. Killed when dropped, and by its watchdog when
/// the test process exits.
#[derive(Debug)]
pub struct OwnRedis {
    binary: String,
    port: u16,
    running: std::sync::Mutex<Option<(Child, u32)>>,
}

impl OwnRedis {
    /// Starts one; `None` (after the same skip notice, or panic, as
    /// [`redis()`]) when `redis-server` is not installed.
    pub fn start() -> Option<OwnRedis> {
        let Some(binary) = find() else {
            super::skip_or_fail(
                "executor_faults (Redis)",
                "redis-server not found",
                "apt-get install redis-server",
            );
            return None;
        };
        let server = OwnRedis {
            binary,
            port: super::free_port(),
            running: std::sync::Mutex::new(None),
        };
        server.restart();
        Some(server)
    }

    /// The URL of database 0.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `redis-server` process id (while it runs).
    ///
    /// # Panics
    /// If the server is not running.
    pub fn pid(&self) -> u32 {
        self.running
            .lock()
            .expect("the server state")
            .as_ref()
            .map(|(_, pid)| *pid)
            .expect("the server is running")
    }

    /// Kills the server (`SIGKILL`: no goodbye to its clients) and waits
    /// until it is gone. Its data is lost.
    pub fn kill(&self) {
        if let Some((mut watchdog, pid)) = self.running.lock().expect("the server state").take() {
            crate::faults::signal(pid, "KILL");
            // The watchdog notices within half a second and exits.
            let _ = watchdog.wait();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while crate::faults::is_alive(pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Starts the server again (empty) on the same port; kills it first if it
    /// runs.
    pub fn restart(&self) {
        self.kill();
        let mut watchdog = spawn(&self.binary, self.port, 16);
        let pid = server_pid(watchdog.id()).unwrap_or_else(|| {
            let _ = watchdog.kill();
            panic!("no redis-server process under watchdog {}", watchdog.id())
        });
        *self.running.lock().expect("the server state") = Some((watchdog, pid));
    }

    /// Freezes the server (`SIGSTOP`): it keeps its connections and accepts
    /// new ones (the kernel does) but answers nothing until [`resume`](Self::resume).
    pub fn pause(&self) {
        assert!(crate::faults::signal(self.pid(), "STOP"), "SIGSTOP");
    }

    /// Lets a paused server run again (`SIGCONT`).
    pub fn resume(&self) {
        assert!(crate::faults::signal(self.pid(), "CONT"), "SIGCONT");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Ok(Some((_, pid))) = self.running.get_mut().map(|r| r.as_ref()) {
            crate::faults::signal(*pid, "CONT");
        }
        self.kill();
    }
}

/// The server process the watchdog shell `watchdog` started.
fn server_pid(watchdog: u32) -> Option<u32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = crate::faults::children(watchdog).into_iter().find(|&c| {
            std::fs::read_to_string(format!("/proc/{c}/comm"))
                .is_ok_and(|comm| comm.starts_with("redis-server"))
        }) {
            return Some(pid);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
