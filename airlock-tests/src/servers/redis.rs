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
    let binary = super::find_binary(["/usr/bin/redis-server", "/usr/local/bin/redis-server"])?;
    let port = super::free_port();
    let port_arg = port.to_string();
    let databases = DATABASES.to_string();
    let dir = std::env::temp_dir();
    let dir = dir.to_str().expect("a UTF-8 temporary directory");
    let watchdog = super::spawn_watched(&[
        &binary,
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
    Some(RedisServer {
        port,
        // Database 0 is the one `url()` names; tests start at 1.
        next_database: AtomicU32::new(1),
        _watchdog: watchdog,
    })
}
