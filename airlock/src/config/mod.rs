//! Process-wide defaults: the policy, executor and behaviour a scope uses when
//! it is not given one. Anything passed to a [`Scope`](crate::Scope) explicitly wins.
//!
//! ```
//! use airlock::{BlockTasks, Config};
//! # #[airlock::task] fn send_email(user_id: u64) { let _ = user_id; }
//!
//! airlock::configure(Config::new().policy(BlockTasks::of(&[send_email::TASK])))?;
//! assert_eq!(airlock::configuration().policies().count(), 1);
//! airlock::reset_configuration();
//! # Ok::<(), airlock::ConfigError>(())
//! ```
//!
//! Settings can also come from the environment or a config file:
//! [`Settings::from_env`] reads `AIRLOCK_POLICY`, `AIRLOCK_BLOCK_TASKS`,
//! `AIRLOCK_BLOCK_TASKS_AT_ENQUEUE`, `AIRLOCK_LOG_ON_FLUSH`,
//! `AIRLOCK_MAX_CASCADE_DEPTH`, `AIRLOCK_MAX_PAYLOAD_BYTES` and
//! `AIRLOCK_FORBID_IN_PROCESS`; [`Settings`]
//! also deserializes with serde.
//! Every task name is checked against the registry, and an unknown one is an
//! error that suggests the closest registered names.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Deserialize;

pub(crate) mod error;

use crate::config::error::ConfigError;
use crate::executor::{Executor, InProcess};
use crate::policy::chain::HeldPolicy;
use crate::policy::{AssertNoEffects, BlockTasks, DropAll, LogOnFlush, Policy};
use crate::registry::registry;
use crate::scope::behavior::{Behavior, DefaultBehavior, ScopeBehavior};

/// The defaults scopes fall back on; install them with [`configure`].
///
/// ```
/// use airlock::{Config, DropAll, LogOnFlush};
///
/// let config = Config::new().policy(DropAll).policy(LogOnFlush).max_cascade_depth(8);
/// assert_eq!(config.policies().count(), 2);
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) policies: Vec<HeldPolicy>,
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) behavior: Behavior,
    pub(crate) max_cascade_depth: u32,
    pub(crate) max_payload_bytes: usize,
    pub(crate) max_intents_per_scope: usize,
    pub(crate) forbid_in_process: bool,
}

/// The largest [`Config::max_cascade_depth`]: deeper in-process cascades
/// could overflow a 2 MiB thread stack, which aborts the process (async
/// cascades in a debug build overflowed between 96 and 128 levels).
pub const MAX_CASCADE_DEPTH: u32 = 64;

/// The default of [`Config::max_intents_per_scope`]: one million.
pub const DEFAULT_MAX_INTENTS_PER_SCOPE: usize = 1_000_000;

/// The default of [`Config::max_payload_bytes`]: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1 << 20;

impl Default for Config {
    fn default() -> Self {
        Config {
            policies: Vec::new(),
            executor: Arc::new(InProcess),
            behavior: Behavior::new(DefaultBehavior),
            max_cascade_depth: 32,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_intents_per_scope: DEFAULT_MAX_INTENTS_PER_SCOPE,
            forbid_in_process: false,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("policies", &self.policies)
            .field("executor", &self.executor)
            .field("behavior", &self.behavior)
            .field("max_cascade_depth", &self.max_cascade_depth)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("max_intents_per_scope", &self.max_intents_per_scope)
            .field("forbid_in_process", &self.forbid_in_process)
            .finish()
    }
}

impl Config {
    /// The built-in defaults: no policy (allow all), [`InProcess`] executor,
    /// flush on success, a cascade depth limit of 32.
    pub fn new() -> Self {
        Config::default()
    }

    /// Adds a default policy for outermost scopes that set none.
    pub fn policy(mut self, policy: impl Policy) -> Self {
        self.policies.push(HeldPolicy::new(policy));
        self
    }

    /// Sets the default executor.
    pub fn executor(mut self, executor: impl Executor) -> Self {
        self.executor = Arc::new(executor);
        self
    }

    /// Sets the default lifecycle behaviour.
    pub fn behavior(mut self, behavior: impl ScopeBehavior) -> Self {
        self.behavior = Behavior::new(behavior);
        self
    }

    /// How deep a cascade of tasks enqueueing tasks may go in process; at
    /// most [`MAX_CASCADE_DEPTH`] (larger values are clamped to it).
    ///
    /// Every level of an in-process cascade runs nested inside the one that
    /// enqueued it, on the same thread's stack: on a 2 MiB thread (tokio's
    /// default) a runaway cascade overflowed the stack, which aborts the
    /// process, at about 500 levels of sync tasks in a debug build (1,000 in
    /// release) and 100 to 130 levels of async tasks in a debug build.
    pub fn max_cascade_depth(mut self, depth: u32) -> Self {
        self.max_cascade_depth = depth.min(MAX_CASCADE_DEPTH);
        self
    }

    /// The largest job payload (an [`Envelope`](crate::envelope::Envelope) as
    /// JSON bytes) a queue executor pushes and a worker reads; default
    /// [`DEFAULT_MAX_PAYLOAD_BYTES`] (1 MiB).
    ///
    /// A producer refuses a larger intent at flush with [`ArgsError::Encode`](crate::ArgsError::Encode)
    /// (nothing of that flush is queued), so the oversized job never reaches
    /// a queue; a worker aborts one it meets anyway (pushed by another
    /// producer, or by one configured with a larger limit) before parsing
    /// it, so a hostile or drifted payload cannot make a worker parse, copy
    /// and log megabytes. Give producers and workers the same value.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// The most intents one scope may hold, its own and those captured from
    /// nested scopes, counting what the scopes it hands its intents to hold
    /// already (at least 1); default [`DEFAULT_MAX_INTENTS_PER_SCOPE`] (one
    /// million, about 100 MB of buffered intents). An enqueue beyond it fails
    /// with [`Error::ScopeFull`](crate::Error::ScopeFull) and buffers nothing,
    /// so a runaway loop (even one opening a nested scope per iteration)
    /// ends in an error instead of exhausting memory. Intents captured from
    /// a nested scope are never refused (each was accepted already).
    pub fn max_intents_per_scope(mut self, intents: usize) -> Self {
        self.max_intents_per_scope = intents.max(1);
        self
    }

    /// Turns dispatch by [`InProcess`] into an error: for servers, whose
    /// intents belong on a queue. An intent that reaches an in-process flush
    /// anyway (a scope left on the default executor, an enqueue that missed
    /// its transaction scope) is then not run inside the request: the flush
    /// fails with [`Error::Dispatch`](crate::Error::Dispatch), every intent
    /// handed back, its source an [`InProcessForbidden`](crate::executor::InProcessForbidden).
    /// Tasks a queue worker runs are not affected; what they enqueue goes to
    /// the configured executor, which a server sets to its queue.
    ///
    /// ```
    /// # #[airlock::task] fn send_email(user_id: u64) { let _ = user_id; }
    /// airlock::configure(airlock::Config::new().forbid_in_process())?;
    /// let result: airlock::Result<()> = airlock::scope(|| send_email::enqueue(7).map(drop));
    /// let Err(airlock::Error::Dispatch(failure)) = result else { panic!("refused") };
    /// assert!(failure.source.is::<airlock::executor::InProcessForbidden>());
    /// assert_eq!(failure.not_attempted.len(), 1); // handed back, not lost
    /// airlock::reset_configuration();
    /// # Ok::<(), airlock::Error>(())
    /// ```
    pub fn forbid_in_process(mut self) -> Self {
        self.forbid_in_process = true;
        self
    }

    /// Applies `settings` on top of this configuration.
    ///
    /// # Errors
    /// [`ConfigError::UnknownTask`] if a setting names an unregistered task.
    pub fn with_settings(mut self, settings: &Settings) -> Result<Self, ConfigError> {
        match settings.policy {
            None | Some(PolicyName::AllowAll) => {}
            Some(PolicyName::DropAll) => self = self.policy(DropAll),
            Some(PolicyName::AssertNoEffects) => self = self.policy(AssertNoEffects),
        }
        if !settings.block_tasks.is_empty() {
            let block = BlockTasks::names_in(
                &settings.block_tasks,
                settings.block_tasks_origin.unwrap_or("block_tasks"),
            )?;
            self = self.policy(if settings.block_tasks_at_enqueue {
                block.reject_at_enqueue()
            } else {
                block
            });
        }
        if settings.log_on_flush {
            self = self.policy(LogOnFlush);
        }
        if let Some(depth) = settings.max_cascade_depth {
            if depth > MAX_CASCADE_DEPTH {
                return Err(invalid(
                    "max_cascade_depth",
                    &depth.to_string(),
                    &format!(
                        "at most {MAX_CASCADE_DEPTH}: deeper in-process cascades could overflow \
                         the thread's stack"
                    ),
                ));
            }
            self.max_cascade_depth = depth;
        }
        if let Some(bytes) = settings.max_payload_bytes {
            self.max_payload_bytes = bytes;
        }
        if settings.forbid_in_process {
            self.forbid_in_process = true;
        }
        Ok(self)
    }

    /// The built-in defaults with [`Settings::from_env`] applied.
    ///
    /// # Errors
    /// As [`Settings::from_env`] and [`with_settings`](Self::with_settings).
    pub fn from_env() -> Result<Self, ConfigError> {
        Config::new().with_settings(&Settings::from_env()?)
    }

    /// The default policies, in order.
    pub fn policies(&self) -> impl Iterator<Item = &Arc<dyn Policy>> {
        self.policies.iter().map(|held| &held.policy)
    }

    /// The default executor.
    pub fn executor_ref(&self) -> &Arc<dyn Executor> {
        &self.executor
    }
}

/// A named built-in policy, for settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyName {
    /// [`AllowAll`](crate::AllowAll).
    AllowAll,
    /// [`DropAll`]: a dry run.
    DropAll,
    /// [`AssertNoEffects`]: any enqueue is an error.
    AssertNoEffects,
}

/// Declarative settings, from the environment or any serde format.
///
/// ```
/// let settings: airlock::Settings = serde_json::from_str(
///     r#"{ "policy": "drop_all", "log_on_flush": true }"#,
/// ).unwrap();
/// let config = airlock::Config::new().with_settings(&settings).unwrap();
/// assert_eq!(config.policies().count(), 2);
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// A built-in policy for every outermost scope.
    pub policy: Option<PolicyName>,
    /// Task names to block (dropped at flush).
    pub block_tasks: Vec<String>,
    /// Reject blocked tasks at enqueue instead of dropping them at flush.
    pub block_tasks_at_enqueue: bool,
    /// Log every intent that reaches flush, through `tracing`.
    pub log_on_flush: bool,
    /// The in-process cascade depth limit.
    pub max_cascade_depth: Option<u32>,
    /// The largest job payload in bytes ([`Config::max_payload_bytes`]).
    pub max_payload_bytes: Option<usize>,
    /// Refuse in-process dispatch ([`Config::forbid_in_process`]).
    pub forbid_in_process: bool,
    /// Where `block_tasks` came from, for error messages.
    #[serde(skip)]
    block_tasks_origin: Option<&'static str>,
}

impl Settings {
    /// Reads `AIRLOCK_POLICY` (`allow_all`, `drop_all`, `assert_no_effects`),
    /// `AIRLOCK_BLOCK_TASKS` (comma-separated task names),
    /// `AIRLOCK_BLOCK_TASKS_AT_ENQUEUE`, `AIRLOCK_LOG_ON_FLUSH` (`1`/`true`/`0`/`false`)
    /// `AIRLOCK_MAX_CASCADE_DEPTH`, `AIRLOCK_MAX_PAYLOAD_BYTES` and
    /// `AIRLOCK_FORBID_IN_PROCESS` (`1`/`true`/`0`/`false`). Unset variables
    /// keep the defaults.
    ///
    /// # Errors
    /// [`ConfigError::InvalidValue`] naming the variable and what it accepts.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut settings = Settings::default();
        if let Some(value) = lookup("AIRLOCK_POLICY") {
            settings.policy = Some(match value.trim() {
                "allow_all" | "" => PolicyName::AllowAll,
                "drop_all" => PolicyName::DropAll,
                "assert_no_effects" => PolicyName::AssertNoEffects,
                _ => {
                    return Err(invalid(
                        "AIRLOCK_POLICY",
                        &value,
                        "one of allow_all, drop_all, assert_no_effects",
                    ))
                }
            });
        }
        if let Some(value) = lookup("AIRLOCK_BLOCK_TASKS") {
            settings.block_tasks_origin = Some("AIRLOCK_BLOCK_TASKS");
            settings.block_tasks = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(value) = lookup("AIRLOCK_BLOCK_TASKS_AT_ENQUEUE") {
            settings.block_tasks_at_enqueue = parse_bool("AIRLOCK_BLOCK_TASKS_AT_ENQUEUE", &value)?;
        }
        if let Some(value) = lookup("AIRLOCK_LOG_ON_FLUSH") {
            settings.log_on_flush = parse_bool("AIRLOCK_LOG_ON_FLUSH", &value)?;
        }
        if let Some(value) = lookup("AIRLOCK_FORBID_IN_PROCESS") {
            settings.forbid_in_process = parse_bool("AIRLOCK_FORBID_IN_PROCESS", &value)?;
        }
        if let Some(value) = lookup("AIRLOCK_MAX_CASCADE_DEPTH") {
            let depth = value
                .trim()
                .parse()
                .ok()
                .filter(|depth| *depth <= MAX_CASCADE_DEPTH);
            settings.max_cascade_depth = Some(depth.ok_or_else(|| {
                invalid(
                    "AIRLOCK_MAX_CASCADE_DEPTH",
                    &value,
                    &format!("a whole number from 0 to {MAX_CASCADE_DEPTH}, such as 32"),
                )
            })?);
        }
        if let Some(value) = lookup("AIRLOCK_MAX_PAYLOAD_BYTES") {
            settings.max_payload_bytes = Some(value.trim().parse().map_err(|_| {
                invalid(
                    "AIRLOCK_MAX_PAYLOAD_BYTES",
                    &value,
                    "a whole number of bytes such as 1048576",
                )
            })?);
        }
        Ok(settings)
    }
}

fn parse_bool(setting: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(invalid(setting, value, "1, true, 0 or false")),
    }
}

fn invalid(setting: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::InvalidValue {
        setting: setting.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

static GLOBAL: RwLock<Option<Arc<Config>>> = RwLock::new(None);
static GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Scopes start far more often than configuration changes: each thread keeps
    // the config it last saw and rereads only when the generation moves.
    static CACHED: RefCell<Option<(u64, Arc<Config>)>> = const { RefCell::new(None) };
}

/// Replaces the process-wide defaults. Checks the task registry first.
///
/// Scopes started afterwards use them unless given their own settings.
///
/// ```
/// use airlock::{Config, DropAll};
/// # #[airlock::task] fn send_email(user_id: u64) { let _ = user_id; }
///
/// airlock::configure(Config::new().policy(DropAll))?; // every scope a dry run
/// assert_eq!(airlock::configuration().policies().count(), 1);
///
/// let scope = airlock::Scope::new().start();
/// scope.in_scope(|| send_email::enqueue(1))?;
/// assert_eq!(scope.flush()?.dropped(), ["send_email"]);
///
/// airlock::reset_configuration(); // back to the built-in defaults
/// assert_eq!(airlock::configuration().policies().count(), 0);
/// # Ok::<(), airlock::BoxError>(())
/// ```
/// # Errors
/// [`ConfigError::Registry`] if two tasks share a name.
pub fn configure(config: Config) -> Result<(), ConfigError> {
    registry().validate().map_err(ConfigError::Registry)?;
    install(Some(Arc::new(config)));
    Ok(())
}

/// The process-wide defaults currently in force.
pub fn configuration() -> Arc<Config> {
    current()
}

/// Restores the built-in defaults.
pub fn reset_configuration() {
    install(None);
}

fn install(config: Option<Arc<Config>>) {
    let mut global = GLOBAL.write().unwrap_or_else(|p| p.into_inner());
    *global = config;
    GENERATION.fetch_add(1, Ordering::Release);
}

pub(crate) fn current() -> Arc<Config> {
    with_current(Arc::clone)
}

/// Calls `f` with the configuration in force, without taking a reference
/// count (scope setup reads it on every scope). `f` runs while this thread's
/// cached copy is borrowed: it must not read the configuration again, nor run
/// user code.
pub(crate) fn with_current<R>(f: impl FnOnce(&Arc<Config>) -> R) -> R {
    let generation = GENERATION.load(Ordering::Acquire);
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        match &*cached {
            Some((seen, config)) if *seen == generation => f(config),
            _ => {
                let config = GLOBAL
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_else(|| Arc::new(Config::default()));
                let (_, config) = cached.insert((generation, config));
                f(config)
            }
        }
    })
}
