//! What goes wrong building or applying configuration.

use crate::registry::{DuplicateTask, UnknownTask};

/// Configuration could not be built or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A policy names a task that is not registered.
    #[error("{setting}: {lookup}")]
    UnknownTask {
        /// Where the name came from, e.g. `AIRLOCK_BLOCK_TASKS`.
        setting: String,
        /// The failed lookup, with suggestions and the registered names.
        lookup: UnknownTask,
    },
    /// A setting has a value airlock does not understand.
    #[error("invalid value {value:?} for {setting}: {expected}")]
    InvalidValue {
        /// The setting, e.g. an environment variable name.
        setting: String,
        /// The value found.
        value: String,
        /// What would be accepted instead.
        expected: String,
    },
    /// The task registry is inconsistent (duplicate names).
    #[error(transparent)]
    Registry(#[from] DuplicateTask),
}
