//! Fault injection for the executor fault tests (`tests/executor_faults_*.rs`).
//!
//! * [`FaultProxy`]: a small TCP proxy on loopback, placed between a queue's
//!   connection and the real server. It forwards bytes both ways and, when
//!   told, delays what the client sends or cuts a connection at an exact
//!   point of the conversation: before a request reaches the server, or after
//!   the server executed it but before its reply reaches the client (the
//!   "lost reply" every network queue has to reckon with).
//! * [`signal`]: sends a signal (`STOP`, `CONT`, `KILL`, ...) to a server
//!   process with the `kill` command (the workspace forbids `unsafe`).
//!
//! This is test tooling: one tokio task per proxied connection, no TLS, no
//! protocol parsing. A cut is triggered by a byte pattern in what the client
//! sends (a queue name, `COMMIT`), matched within each chunk read from the
//! client plus the tail of the previous one, so a pattern split across two
//! reads is still seen; a chunk counts as one match however often the
//! pattern occurs in it. Requests the tests cut on are separate round trips,
//! so each is its own chunk.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Where a [`FaultProxy`] cuts the connection that sends a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Drop the request: the server never sees it, the client sees its
    /// connection close.
    BeforeRequest,
    /// Forward the request, wait until the server starts replying (so it has
    /// executed it), then close the connection without passing the reply on.
    AfterReply,
}

#[derive(Debug)]
struct Rule {
    pattern: Vec<u8>,
    /// The 1-based match on which to cut.
    nth: usize,
    seen: usize,
    cut: Cut,
}

#[derive(Debug)]
struct Shared {
    target: u16,
    rules: Mutex<Vec<Rule>>,
    delay_ms: AtomicU64,
    fired: AtomicUsize,
    connections: AtomicUsize,
    /// Bumped by [`FaultProxy::cut_all`]; every connection watches it.
    generation: tokio::sync::watch::Sender<u64>,
}

/// A TCP proxy from a free loopback port to `127.0.0.1:target` that injects
/// faults on demand. It stops (and drops every connection) when dropped.
///
/// ```no_run
/// # async fn run() {
/// use airlock_tests::faults::{Cut, FaultProxy};
///
/// let proxy = FaultProxy::start(6379).await;
/// // Connect the queue to 127.0.0.1:{proxy.port()} instead of 6379, then:
/// proxy.cut_on("q2:data", 1, Cut::AfterReply);
/// # }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `127.0.0.1:target` on the current tokio runtime.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(target: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fault proxy on loopback");
        let port = listener.local_addr().expect("its address").port();
        let shared = Arc::new(Shared {
            target,
            rules: Mutex::new(Vec::new()),
            delay_ms: AtomicU64::new(0),
            fired: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            generation: tokio::sync::watch::channel(0).0,
        });
        let accepting = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                accepting.connections.fetch_add(1, Ordering::SeqCst);
                connections.spawn(relay(client, Arc::clone(&accepting)));
            }
        });
        FaultProxy {
            port,
            shared,
            accept,
        }
    }

    /// The proxy's port on 127.0.0.1: connect here instead of the server.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cuts the connection on which the client's `nth` (1-based) request
    /// containing `pattern` (at most 256 bytes) is seen, counted over all connections from now
    /// on; fires once.
    pub fn cut_on(&self, pattern: impl AsRef<[u8]>, nth: usize, cut: Cut) {
        assert!(nth >= 1, "matches are counted from 1");
        assert!(
            (1..=MAX_PATTERN).contains(&pattern.as_ref().len()),
            "a pattern is 1 to {MAX_PATTERN} bytes"
        );
        self.shared.rules.lock().expect("rules").push(Rule {
            pattern: pattern.as_ref().to_vec(),
            nth,
            seen: 0,
            cut,
        });
    }

    /// Delays every chunk the client sends by `delay` before forwarding it
    /// (zero: no delay): a slow network or a slow broker.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Closes every connection open now (new ones are accepted as usual).
    pub fn cut_all(&self) {
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// How many cuts [`cut_on`](Self::cut_on) rules have made so far.
    pub fn fired(&self) -> usize {
        self.shared.fired.load(Ordering::SeqCst)
    }

    /// How many client connections the proxy has accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every relay.
        self.accept.abort();
    }
}

/// The longest pattern a rule may have: what a connection keeps of the
/// previous chunk to see a pattern split across two reads.
const MAX_PATTERN: usize = 256;

/// The rule (if any) that fires on `window` (the previous chunk's last
/// `fresh_from` bytes, then the new chunk), updating the match counts. Only
/// matches that end in the new chunk count, so none is counted twice.
fn check_rules(shared: &Shared, window: &[u8], fresh_from: usize) -> Option<Cut> {
    let mut rules = shared.rules.lock().expect("rules");
    let mut fire = None;
    rules.retain_mut(|rule| {
        let len = rule.pattern.len();
        let found = window
            .windows(len)
            .enumerate()
            .any(|(at, w)| at + len > fresh_from && w == rule.pattern.as_slice());
        if !found {
            return true;
        }
        rule.seen += 1;
        if rule.seen < rule.nth || fire.is_some() {
            return true;
        }
        fire = Some(rule.cut);
        false
    });
    fire
}

/// Relays one client connection until either side closes, a rule cuts it,
/// or [`FaultProxy::cut_all`] is called.
async fn relay(mut client: TcpStream, shared: Arc<Shared>) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", shared.target)).await else {
        return; // the server is down: the client sees its connection close
    };
    let mut cut_all = shared.generation.subscribe();
    let mut tail: Vec<u8> = Vec::new();
    let mut from_client = vec![0u8; 64 * 1024];
    let mut from_server = vec![0u8; 64 * 1024];
    let mut swallow_reply = false;
    loop {
        tokio::select! {
            read = client.read(&mut from_client) => {
                let Ok(n @ 1..) = read else { return };
                let chunk = &from_client[..n];
                let mut window = std::mem::take(&mut tail);
                let fresh_from = window.len();
                window.extend_from_slice(chunk);
                let cut = check_rules(&shared, &window, fresh_from);
                tail = window.split_off(window.len().saturating_sub(MAX_PATTERN));
                if cut == Some(Cut::BeforeRequest) {
                    shared.fired.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                let delay = shared.delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if server.write_all(chunk).await.is_err() {
                    return;
                }
                swallow_reply |= cut == Some(Cut::AfterReply);
            }
            read = server.read(&mut from_server) => {
                let Ok(n @ 1..) = read else { return };
                if swallow_reply {
                    shared.fired.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                if client.write_all(&from_server[..n]).await.is_err() {
                    return;
                }
            }
            _ = cut_all.changed() => return,
        }
    }
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`, `TERM`, `INT`, `QUIT`) to `pid`
/// with the `kill` command; whether it was delivered.
pub fn signal(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether process `pid` exists (and is not a zombie).
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Whether process `pid` is stopped (by `SIGSTOP`, say: state `T` in
/// `/proc`), so it runs no more code until `SIGCONT`.
pub fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
            Some(state == "T")
        })
        .unwrap_or(false)
}

/// The parent of process `pid` (from `/proc`).
pub fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The direct children of process `pid` (from `/proc`).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    out
}
