//! The built-in policies.

use crate::config::error::ConfigError;
use crate::intent::Intent;
use crate::policy::{violation, Policy, PolicyViolation};
use crate::registry::{registry, LookupError};
use crate::task::TaskDef;

/// Lets everything through (the default when no policy is set).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Policy for AllowAll {}

/// Buffers everything and dispatches nothing: a dry run. The scope still lists
/// what it would have dispatched.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropAll;

impl Policy for DropAll {
    fn allows(&self, _: &Intent) -> bool {
        false
    }
}

/// Rejects every enqueue with an error, and lets nothing through a flush: for
/// code that must have no side effects.
///
/// Its flush filter matters for an intent that reached the scope without
/// passing its enqueue check (built elsewhere and handed in): it is dropped,
/// never dispatched.
#[derive(Debug, Clone, Copy, Default)]
pub struct AssertNoEffects;

impl Policy for AssertNoEffects {
    fn on_enqueue(&self, intent: &Intent) -> Result<(), PolicyViolation> {
        Err(violation(
            self,
            intent,
            "this code must not have side effects",
        ))
    }

    fn allows(&self, _: &Intent) -> bool {
        false
    }
}

/// Blocks tasks by name: drops them at flush, or, with
/// [`reject_at_enqueue`](Self::reject_at_enqueue), refuses them at enqueue.
///
/// ```
/// use airlock::BlockTasks;
/// # #[airlock::task] fn send_email(user_id: u64) { let _ = user_id; }
///
/// let typed = BlockTasks::of(&[send_email::TASK]);        // checked by the compiler
/// let named = BlockTasks::names(["send_email"]).unwrap(); // checked against the registry
/// assert!(typed.blocks("send_email") && named.blocks("send_email"));
/// assert!(BlockTasks::names(["send_emial"]).unwrap_err().to_string().contains("send_email"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct BlockTasks {
    /// Sorted, without duplicates. A short list beats a tree here: the
    /// flush asks about every intent, and few tasks are blocked at once.
    names: Vec<&'static str>,
    at_enqueue: bool,
}

impl BlockTasks {
    /// Blocks these tasks.
    pub fn of(tasks: &[&'static TaskDef]) -> Self {
        BlockTasks {
            names: sorted(tasks.iter().map(|t| t.name()).collect()),
            at_enqueue: false,
        }
    }

    /// Blocks tasks by registered name.
    ///
    /// # Errors
    /// [`ConfigError::UnknownTask`] for a name no task is registered under,
    /// suggesting the closest registered names.
    pub fn names<I>(names: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self::names_in(names, "BlockTasks::names")
    }

    /// Reads `AIRLOCK_BLOCK_TASKS` (comma-separated names); `None` when unset or empty.
    ///
    /// # Errors
    /// [`ConfigError::UnknownTask`] for a name that is not registered.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        match std::env::var("AIRLOCK_BLOCK_TASKS") {
            Ok(value) if !value.trim().is_empty() => Self::names_in(
                value.split(',').map(str::trim).filter(|s| !s.is_empty()),
                "AIRLOCK_BLOCK_TASKS",
            )
            .map(Some),
            _ => Ok(None),
        }
    }

    pub(crate) fn names_in<I>(names: I, setting: &str) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let registry = registry();
        let mut set = Vec::new();
        for name in names {
            let name = name.as_ref();
            match registry.get(name) {
                Ok(def) => {
                    set.push(def.name());
                }
                Err(LookupError::Unknown(lookup)) => {
                    return Err(ConfigError::UnknownTask {
                        setting: setting.to_owned(),
                        lookup,
                    })
                }
                Err(LookupError::Duplicate(duplicate)) => {
                    return Err(ConfigError::Registry(duplicate))
                }
            }
        }
        Ok(BlockTasks {
            names: sorted(set),
            at_enqueue: false,
        })
    }

    /// Refuse blocked tasks when they are enqueued (the caller gets a
    /// [`PolicyViolation`]) instead of dropping them silently at flush.
    pub fn reject_at_enqueue(mut self) -> Self {
        self.at_enqueue = true;
        self
    }

    /// Whether this policy blocks the task registered as `name`.
    pub fn blocks(&self, name: &str) -> bool {
        if self.names.len() <= 8 {
            self.names.contains(&name)
        } else {
            self.names.binary_search(&name).is_ok()
        }
    }
}

fn sorted(mut names: Vec<&'static str>) -> Vec<&'static str> {
    names.sort_unstable();
    names.dedup();
    names
}

impl BlockTasks {
    /// Whether `on_enqueue` refuses blocked tasks (or only `allows` drops them).
    pub(crate) fn rejects_at_enqueue(&self) -> bool {
        self.at_enqueue
    }
}

impl Policy for BlockTasks {
    fn on_enqueue(&self, intent: &Intent) -> Result<(), PolicyViolation> {
        if self.at_enqueue && self.blocks(intent.name()) {
            return Err(violation(self, intent, "this task is blocked here"));
        }
        Ok(())
    }

    fn allows(&self, intent: &Intent) -> bool {
        !self.blocks(intent.name())
    }

    fn name(&self) -> String {
        format!("BlockTasks({})", self.names.join(", "))
    }
}

/// Logs every intent that reaches flush (at `INFO`, target `airlock::flush`)
/// and lets it through. Put it last to log only what will be dispatched.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOnFlush;

impl Policy for LogOnFlush {
    fn allows(&self, intent: &Intent) -> bool {
        tracing::info!(
            target: "airlock::flush",
            intent = %intent,
            id = intent.id().get(),
            origin = %intent.origin(),
            "flushing intent"
        );
        true
    }
}
