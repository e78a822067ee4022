//! What a scope body returns: success or failure, and room for a flush error.

use crate::error::Error;

/// What a scope body may return: tells success from failure, and can carry a
/// flush error. Implemented for `Result<T, E>` whose `E: From<airlock::Error>`
/// (`anyhow::Error`, `Box<dyn Error + Send + Sync>`, `airlock::Error`, or your
/// own error with a `#[from] airlock::Error` variant).
#[diagnostic::on_unimplemented(
    message = "a scope body must return `Result<T, E>` where `E: From<airlock::Error>`; `{Self}` does not qualify",
    label = "a flush can fail (the executor may be down), and this type has no way to report that",
    note = "return `Result<T, E>` and give `E` a `From<airlock::Error>` impl (with thiserror: a `#[error(transparent)] Airlock(#[from] airlock::Error)` variant), or use `anyhow::Result<T>`"
)]
pub trait ScopeOutput {
    /// Whether the body succeeded (the scope flushes) or failed (it discards).
    fn is_success(&self) -> bool;
    /// Replaces a successful value with the error the flush returned.
    fn absorb_flush_error(self, error: Error) -> Self;
}

impl<T, E: From<Error>> ScopeOutput for Result<T, E> {
    fn is_success(&self) -> bool {
        self.is_ok()
    }
    fn absorb_flush_error(self, error: Error) -> Self {
        match self {
            Ok(_) => Err(E::from(error)),
            Err(e) => Err(e),
        }
    }
}
