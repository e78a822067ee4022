//! A throwaway PostgreSQL server for the tests (see the parent module).
//!
//! One server per test process: `initdb` into a fresh directory under the temp
//! dir, then `postgres` on a free loopback port with durability switched off
//! (`fsync`, `synchronous_commit`, `full_page_writes`) and trust auth for the
//! `postgres` role. PostgreSQL refuses to run as root, so as root both run as
//! the `postgres` system user (`runuser`) in a directory chowned to it. Each
//! test takes its own database from [`PostgresServer::fresh_database`].
//!
//! The server runs under [`spawn_watched`]: when the test process exits it is
//! shut down and its directory removed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{free_port, skip_or_fail, spawn_watched};

const SUITE: &str = "queue_postgres";

/// The system user PostgreSQL runs as when the tests run as root.
const SYSTEM_USER: &str = "postgres";

/// Runs the server in the foreground with its log in the state directory;
/// when the watchdog stops it (TERM), waits for the shutdown and removes the
/// directory. A server that dies on its own prints its log first. A `keep`
/// file in the directory (an [`OwnPostgres`] being stopped on purpose) keeps
/// both the directory and the silence.
const WRAPPER: &str = r#"
    dir="$1"; shift
    cd "$dir" || exit 1
    "$@" >>"$dir/server.log" 2>&1 &
    server=$!
    stopping=""
    trap 'stopping=1; kill -TERM "$server" 2>/dev/null' TERM INT
    wait "$server"
    wait "$server" 2>/dev/null
    [ -n "$stopping" ] || [ -e "$dir/keep" ] || cat "$dir/server.log" >&2
    [ -e "$dir/keep" ] || rm -rf "$dir"
"#;

/// A running throwaway PostgreSQL server.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    // The watchdog; never waited on (it ends with the test process).
    _watchdog: Mutex<Child>,
}

/// The server for this test process, started on first use; `None` (after a
/// loud skip) when the PostgreSQL binaries are not installed.
///
/// # Panics
/// When servers are required but the binaries are missing, or when the server
/// is installed but fails to start (that is a broken machine, not a skip).
pub fn postgres() -> Option<&'static PostgresServer> {
    static SERVER: OnceLock<Option<PostgresServer>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let Some(bin) = find_bin_dir() else {
                skip_or_fail(
                    SUITE,
                    "PostgreSQL server binaries (initdb, postgres) not found",
                    "apt-get install postgresql",
                );
                return None;
            };
            Some(start(&bin).unwrap_or_else(|e| panic!("{SUITE}: starting PostgreSQL failed: {e}")))
        })
        .as_ref()
}

impl PostgresServer {
    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's throwaway state directory (data, socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of database `db` as the `postgres` superuser (trust auth).
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a new, empty database with a unique name and returns its URL:
    /// every test gets its own.
    ///
    /// # Panics
    /// If the server cannot be reached or refuses to create it.
    pub async fn fresh_database(&self) -> String {
        use sqlx::{Connection as _, Executor as _};

        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "airlock_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(&self.url_for("postgres"))
            .await
            .unwrap_or_else(|e| panic!("{SUITE}: connecting to the test server: {e}"));
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .unwrap_or_else(|e| panic!("{SUITE}: creating database {name}: {e}"));
        let _ = admin.close().await;
        self.url_for(&name)
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding both `initdb` and
/// `postgres` (Debian's layout), else a `PATH` directory holding both.
fn find_bin_dir() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_both(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).find(|dir| has_both(dir))
}

/// Whether this process runs as root (PostgreSQL refuses to).
fn running_as_root() -> bool {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            Some(line.split_whitespace().nth(2)? == "0") // the effective uid
        });
    from_proc.unwrap_or_else(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
    })
}

/// `program` as a command line, run as [`SYSTEM_USER`] when we are root.
fn as_server_user(root: bool, program: &Path) -> Vec<String> {
    let program = program.display().to_string();
    if root {
        ["runuser", "-u", SYSTEM_USER, "--", &program]
            .map(str::to_owned)
            .to_vec()
    } else {
        vec![program]
    }
}

fn start(bin: &Path) -> Result<PostgresServer, String> {
    let (server, _) = start_with_command(bin, false)?;
    Ok(server)
}

/// Starts a server; also returns the watchdog command line, to start it
/// again on the same directory and port. A `crash_safe` server waits for its
/// WAL at each commit (`synchronous_commit=on`), so a crash loses no
/// committed transaction; the others may lose the last few (faster).
fn start_with_command(
    bin: &Path,
    crash_safe: bool,
) -> Result<(PostgresServer, Vec<String>), String> {
    let root = running_as_root();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "airlock-postgres-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    if root {
        run(
            Command::new("chown").arg(SYSTEM_USER).arg(&dir),
            "chown of the state directory",
        )?;
    }
    let data = dir.join("data");

    let mut initdb = as_server_user(root, &bin.join("initdb"));
    initdb.extend(
        [
            "-D",
            &data.display().to_string(),
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        .map(str::to_owned),
    );
    run(
        Command::new(&initdb[0])
            .args(&initdb[1..])
            .current_dir(&dir),
        "initdb",
    )?;

    let port = free_port();
    let mut command = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        WRAPPER.to_owned(),
        "airlock-postgres".to_owned(),
        dir.display().to_string(),
    ];
    command.extend(as_server_user(root, &bin.join("postgres")));
    command.extend(
        [
            "-D",
            &data.display().to_string(),
            "-p",
            &port.to_string(),
            "-k",
            &dir.display().to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            if crash_safe {
                "synchronous_commit=on"
            } else {
                "synchronous_commit=off"
            },
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
        ]
        .map(str::to_owned),
    );
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    let mut watchdog = spawn_watched(&args).map_err(|e| format!("spawning the server: {e}"))?;

    wait_until_ready(bin, port, &mut watchdog, &dir)?;
    Ok((
        PostgresServer {
            port,
            dir,
            _watchdog: Mutex::new(watchdog),
        },
        command,
    ))
}

/// A PostgreSQL server of one test's own (a fresh `initdb`, about two
/// seconds), which the test may stop, freeze and start again on the same data
/// without disturbing any other test. Unlike the shared server it commits
/// with `synchronous_commit=on`, so a crash keeps every committed
/// transaction, as a production server would. Stopped and removed when dropped, and
/// by its watchdog when the test process exits.
#[derive(Debug)]
pub struct OwnPostgres {
    server: PostgresServer,
    bin: PathBuf,
    command: Vec<String>,
    running: bool,
}

impl OwnPostgres {
    /// Starts one; `None` (after the same skip notice, or panic, as
    /// [`postgres()`]) when the PostgreSQL binaries are not installed.
    ///
    /// # Panics
    /// If they are installed but the server does not start.
    pub fn start() -> Option<OwnPostgres> {
        let Some(bin) = find_bin_dir() else {
            skip_or_fail(
                SUITE,
                "PostgreSQL server binaries (initdb, postgres) not found",
                "apt-get install postgresql",
            );
            return None;
        };
        let (server, command) = start_with_command(&bin, true)
            .unwrap_or_else(|e| panic!("{SUITE}: starting PostgreSQL failed: {e}"));
        Some(OwnPostgres {
            server,
            bin,
            command,
            running: true,
        })
    }

    /// The server (port, URLs, fresh databases).
    pub fn server(&self) -> &PostgresServer {
        &self.server
    }

    /// The postmaster's process id, from its pid file.
    ///
    /// # Panics
    /// If the server is not running.
    pub fn pid(&self) -> u32 {
        std::fs::read_to_string(self.server.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|f| f.lines().next()?.trim().parse().ok())
            .expect("a running server's postmaster.pid")
    }

    /// Stops the server the way a crash would (`SIGQUIT`, immediate
    /// shutdown: every session is cut, nothing is checkpointed) and waits
    /// until it is gone. The data stays for [`restart`](Self::restart).
    pub fn crash(&mut self) {
        if !self.running {
            return;
        }
        let pid = self.pid();
        std::fs::write(self.server.dir.join("keep"), b"").expect("marking the directory kept");
        crate::faults::signal(pid, "QUIT");
        let watchdog = self.server._watchdog.get_mut().expect("the watchdog");
        let _ = watchdog.wait();
        self.running = false;
    }

    /// Starts the stopped server again on the same data and port (after
    /// crash recovery), and waits until it accepts connections.
    ///
    /// # Panics
    /// If it does not come back.
    pub fn restart(&mut self) {
        self.crash();
        let _ = std::fs::remove_file(self.server.dir.join("data/postmaster.pid"));
        let args: Vec<&str> = self.command.iter().map(String::as_str).collect();
        let mut watchdog = spawn_watched(&args).expect("spawning the server again");
        let _ = std::fs::remove_file(self.server.dir.join("keep"));
        wait_until_ready(&self.bin, self.server.port, &mut watchdog, &self.server.dir)
            .unwrap_or_else(|e| panic!("{SUITE}: restarting PostgreSQL failed: {e}"));
        *self.server._watchdog.get_mut().expect("the watchdog") = watchdog;
        self.running = true;
    }

    /// Freezes the whole server (`SIGSTOP` to the postmaster and every
    /// backend): connections stay open, nothing answers until
    /// [`resume`](Self::resume).
    pub fn pause(&self) {
        for pid in self.processes() {
            crate::faults::signal(pid, "STOP");
        }
    }

    /// Lets a frozen server run again (`SIGCONT`).
    pub fn resume(&self) {
        let postmaster = self.pid();
        for pid in self.processes() {
            crate::faults::signal(pid, "CONT");
        }
        // `runuser` (as root) stops itself when its child stops; wake it too,
        // or it never reaps the server.
        if let Some(parent) = crate::faults::parent(postmaster) {
            crate::faults::signal(parent, "CONT");
        }
    }

    fn processes(&self) -> Vec<u32> {
        let postmaster = self.pid();
        let mut all = vec![postmaster];
        all.extend(crate::faults::children(postmaster));
        all
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.running {
            self.resume();
            // Fast shutdown (sessions still open do not hold it up), quietly:
            // `keep` stops the wrapper printing the log or removing the
            // directory, which is removed below.
            let _ = std::fs::write(self.server.dir.join("keep"), b"");
            crate::faults::signal(self.pid(), "INT");
            let watchdog = self.server._watchdog.get_mut().expect("the watchdog");
            let _ = watchdog.wait();
        }
        let _ = std::fs::remove_dir_all(&self.server.dir);
    }
}

/// Polls `pg_isready` (or the port when it is missing) until the server
/// accepts connections, up to 30 s.
fn wait_until_ready(bin: &Path, port: u16, watchdog: &mut Child, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let pg_isready = bin.join("pg_isready");
    loop {
        if let Ok(Some(status)) = watchdog.try_wait() {
            return Err(format!(
                "the server exited ({status}) while starting; its log was printed above"
            ));
        }
        let ready = if pg_isready.is_file() {
            Command::new(&pg_isready)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .args(["-t", "1", "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        } else {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        };
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!(
                "not accepting connections on port {port} after 30 s; server log:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `command` to completion; its output becomes the error if it fails.
fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", command.get_program()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}
