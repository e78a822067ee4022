//! A `tracing` writer that tests read back: give a clone to a subscriber's
//! `with_writer`, run the code, then read what it logged as text.

use std::sync::{Arc, Mutex};

/// Appends everything written to it to a shared buffer.
#[derive(Debug, Clone, Default)]
pub struct LogSink(Arc<Mutex<Vec<u8>>>);

impl LogSink {
    /// Everything written so far, as text.
    ///
    /// # Panics
    /// If what was written is not UTF-8 (a subscriber writes text).
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8(bytes).expect("the log is UTF-8")
    }
}

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
