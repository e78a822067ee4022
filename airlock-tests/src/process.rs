//! Child processes for the cross-process tests, and polling until a
//! condition holds.
//!
//! A [`Node`] is a child process (usually the `airlock-test-node` binary)
//! whose stdout lines the test reads, and which is killed with SIGKILL when
//! the test ends, pass or fail. The binary's path is only known to the test
//! itself (`env!("CARGO_BIN_EXE_airlock-test-node")`), so tests build the
//! [`Command`] and hand it over.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long [`Node::start`] waits for the ready line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How often [`eventually`] and [`eventually_async`] check.
const POLL: Duration = Duration::from_millis(20);

/// A child process, killed (SIGKILL) and reaped when dropped; its stdout is
/// read line by line on a thread of its own, so a chatty child never blocks
/// on a full pipe.
#[derive(Debug)]
pub struct Node {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Node {
    /// Spawns `command` with stdin closed, stdout piped to the test and
    /// stderr inherited (so its errors show in the test's output).
    ///
    /// # Panics
    /// If the process cannot be started.
    pub fn spawn(mut command: Command) -> Node {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {:?}: {e}", command.get_program()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Node {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Spawns `command` and waits (up to [`START_TIMEOUT`]) until it prints
    /// the line `ready`.
    ///
    /// # Panics
    /// If it exits or stays silent instead.
    pub fn start(command: Command, ready: &str) -> Node {
        let mut node = Node::spawn(command);
        if node.wait_for(|line| line == ready, START_TIMEOUT).is_none() {
            panic!(
                "the node never printed {ready:?} (exit status {:?}); it printed {:?}",
                node.child.try_wait(),
                node.seen
            );
        }
        node
    }

    /// Waits up to `timeout` for a line that satisfies `wanted` and returns
    /// it; `None` if the process closed its stdout (exited) or the time ran
    /// out first. Every line read is kept (see [`lines`](Self::lines)).
    pub fn wait_for(
        &mut self,
        mut wanted: impl FnMut(&str) -> bool,
        timeout: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// The lines read so far.
    pub fn lines(&self) -> &[String] {
        &self.seen
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process with SIGKILL, reaps it, and returns every line it
    /// printed (including those still in the pipe when it died).
    ///
    /// # Panics
    /// If the process cannot be killed or reaped.
    pub fn kill(mut self) -> Vec<String> {
        self.child.kill().expect("SIGKILL the node");
        self.child.wait().expect("reap the node");
        // Its stdout is closed now: the reader thread ends after the last line.
        while let Ok(line) = self.lines.recv_timeout(START_TIMEOUT) {
            self.seen.push(line);
        }
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks `done` every 20 ms until it holds or `limit` has passed; returns
/// whether it held (the caller asserts, with its own message).
pub fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// [`eventually`] for an asynchronous check (a database query, say).
pub async fn eventually_async<F, Fut>(limit: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if done().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
