//! The envelope: an intent as it leaves the process, e.g. for a job queue.
//!
//! The only place task arguments are serialized. An envelope is versioned so a
//! worker that meets a format it does not understand refuses the job with a
//! clear error instead of misreading it.
//!
//! ```
//! use airlock::envelope::Envelope;
//! # #[airlock::task] fn send_email(user_id: u64) { let _ = user_id; }
//!
//! let captured = airlock::testing::capture(|| send_email::enqueue(7));
//! let envelope = Envelope::from_intent(&captured.intents[0], "01JD0000000000000000000000")?;
//! let bytes = envelope.to_json()?;
//! // The same bytes, written straight from the intent (what the queues push):
//! let direct = Envelope::encode_intent(&captured.intents[0], "01JD0000000000000000000000")?;
//! assert_eq!(direct, bytes);
//! // ... on a worker:
//! let intent = Envelope::from_json(&bytes)?.into_intent()?;
//! assert_eq!(intent.args::<send_email>().unwrap().user_id, 7);
//! # Ok::<(), airlock::Error>(())
//! ```

use std::borrow::Cow;
use std::panic::Location;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::executor::IntentParts;
use crate::intent::{DispatchOptions, Intent};
use crate::registry::registry;
use crate::task::ArgsError;

/// The queue name airlock uses unless told otherwise (apalis would default to
/// a Rust type name).
pub const DEFAULT_QUEUE: &str = "airlock";

/// Attempts a queue makes when the intent does not say (apalis defaults to 25).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The envelope format this build writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// An intent on the wire: `{"v":1,"id":..,"task":..,"args":{..},..}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Envelope {
    /// The format version ([`ENVELOPE_VERSION`]).
    #[serde(rename = "v")]
    pub version: u32,
    /// A unique id for this dispatch of the intent (queues use it to
    /// deduplicate; the apalis backends need a ULID).
    pub id: String,
    /// The registered task name.
    pub task: String,
    /// The arguments, a JSON object keyed by parameter name.
    pub args: serde_json::Value,
    /// How to dispatch it.
    #[serde(default, skip_serializing_if = "WireOptions::is_empty")]
    pub options: WireOptions,
    /// Where it was enqueued (`file:line:column`), for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// How many task executions led to it (0: enqueued by ordinary code).
    ///
    /// Left out of the JSON when 0, the common case: every reader, this
    /// build's and the ones before it, reads a missing `cascade_depth` as 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cascade_depth: u32,
}

fn is_zero(depth: &u32) -> bool {
    *depth == 0
}

/// [`DispatchOptions`] in wire form: durations and instants in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WireOptions {
    /// Delay before running, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Earliest run time, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at_ms: Option<u64>,
    /// The queue to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Higher runs earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Attempts allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

/// [`WireOptions`] borrowing the queue name from the intent, for
/// [`Envelope::encode_intent`]: the same fields, written the same way.
#[derive(Serialize)]
struct WireOptionsRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_attempts: Option<u32>,
}

impl<'a> WireOptionsRef<'a> {
    /// The one place dispatch options become wire fields.
    fn from_options(options: &'a DispatchOptions) -> Self {
        WireOptionsRef {
            delay_ms: options.delay.map(saturating_ms),
            run_at_ms: options
                .run_at
                .map(|at| saturating_ms(at.duration_since(UNIX_EPOCH).unwrap_or_default())),
            queue: options.queue.as_deref(),
            priority: options.priority,
            max_attempts: options.max_attempts,
        }
    }

    fn is_empty(&self) -> bool {
        self.delay_ms.is_none()
            && self.run_at_ms.is_none()
            && self.queue.is_none()
            && self.priority.is_none()
            && self.max_attempts.is_none()
    }
}

impl WireOptions {
    fn is_empty(&self) -> bool {
        self == &WireOptions::default()
    }

    fn from_options(options: &DispatchOptions) -> Self {
        let wire = WireOptionsRef::from_options(options);
        WireOptions {
            delay_ms: wire.delay_ms,
            run_at_ms: wire.run_at_ms,
            queue: wire.queue.map(str::to_owned),
            priority: wire.priority,
            max_attempts: wire.max_attempts,
        }
    }

    fn into_options(self) -> Result<DispatchOptions, Error> {
        // `UNIX_EPOCH + duration` panics past the platform's latest time:
        // never on Linux (i64 seconds), but on Windows any `run_at_ms` past
        // the year 30828 would crash the worker instead of aborting the job.
        let run_at = match self.run_at_ms {
            Some(ms) => Some(
                UNIX_EPOCH
                    .checked_add(Duration::from_millis(ms))
                    .ok_or_else(|| Error::Envelope {
                        reason: format!(
                            "malformed envelope: `run_at_ms` {ms} is later than this platform's \
                             clock can represent"
                        ),
                    })?,
            ),
            None => None,
        };
        Ok(DispatchOptions {
            delay: self.delay_ms.map(Duration::from_millis),
            run_at,
            queue: self.queue.map(Cow::Owned),
            priority: self.priority,
            max_attempts: self.max_attempts,
        })
    }
}

/// How deeply an envelope's arguments may nest, counting the arguments
/// object itself as 1: serde_json parses at most 127 levels (its recursion
/// limit, which keeps hostile input from overflowing a worker's stack), and
/// the envelope object takes one of them.
///
/// The serializer has no such limit, so without this check a producer could
/// queue a job (say, a recursive argument type 130 levels deep) that every
/// worker aborts as not JSON.
pub const MAX_ARGS_DEPTH: usize = 126;

/// How many levels of arrays and objects `value` nests: 0 for a scalar, 1 for
/// a flat object. Walks with an explicit stack, so no input can overflow the
/// call stack.
///
/// Runs for every intent a queue pushes, so it allocates nothing for the
/// usual flat arguments: only nested arrays and objects wait on the stack,
/// scalars are never pushed.
fn nesting_depth<'v>(value: &'v serde_json::Value) -> usize {
    use serde_json::Value;

    fn nests(value: &&Value) -> bool {
        matches!(value, Value::Array(_) | Value::Object(_))
    }
    if !nests(&value) {
        return 0;
    }
    let mut deepest = 0;
    // Containers still to visit, with how many containers enclose them.
    let mut pending: Vec<(&'v Value, usize)> = Vec::new();
    let mut next = Some((value, 0));
    while let Some((value, depth)) = next.take().or_else(|| pending.pop()) {
        deepest = deepest.max(depth + 1);
        let inner = |child: &'v Value| (child, depth + 1);
        match value {
            Value::Array(items) => pending.extend(items.iter().filter(nests).map(inner)),
            Value::Object(members) => {
                pending.extend(members.values().filter(nests).map(inner));
            }
            _ => {}
        }
    }
    deepest
}

/// [`ArgsError::Encode`] unless `args` nest at most [`MAX_ARGS_DEPTH`] levels.
fn check_depth(intent: &Intent, args: &serde_json::Value) -> Result<(), Error> {
    let depth = nesting_depth(args);
    if depth > MAX_ARGS_DEPTH {
        return Err(ArgsError::Encode {
            task: intent.task().name(),
            source: serde::ser::Error::custom(format_args!(
                "they nest {depth} levels deep, and a worker's JSON parser reads at most \
                 {MAX_ARGS_DEPTH} inside the envelope: the job could never run"
            )),
        }
        .into());
    }
    Ok(())
}

/// [`ArgsError::Encode`] unless an envelope of `len` bytes fits the configured
/// [`Config::max_payload_bytes`](crate::Config::max_payload_bytes): a worker
/// would abort a larger job unread, so it must not be queued.
fn check_size(intent: &Intent, len: usize) -> Result<(), Error> {
    let limit = crate::config::with_current(|config| config.max_payload_bytes);
    if len > limit {
        return Err(ArgsError::Encode {
            task: intent.task().name(),
            source: serde::ser::Error::custom(format_args!(
                "the job's envelope would be {len} bytes, over the {limit}-byte limit \
                 (Config::max_payload_bytes) that workers enforce: the job could never run. \
                 Pass a reference to the data (an id, a key) instead of the data, or raise \
                 the limit on producers and workers alike"
            )),
        }
        .into());
    }
    Ok(())
}

/// An envelope borrowing everything from its intent, for
/// [`Envelope::encode_intent`]: the fields of [`Envelope`], in its order and
/// with its rules for leaving one out, so both write the same bytes. The
/// owned envelope's `id`, `task` and `origin` Strings are never built: the
/// origin is written through `Display`.
#[derive(Serialize)]
struct WireEnvelope<'a> {
    #[serde(rename = "v")]
    version: u32,
    id: &'a str,
    task: &'a str,
    args: &'a serde_json::Value,
    #[serde(skip_serializing_if = "WireOptionsRef::is_empty")]
    options: WireOptionsRef<'a>,
    #[serde(serialize_with = "display")]
    origin: &'a Location<'static>,
    #[serde(skip_serializing_if = "is_zero")]
    cascade_depth: u32,
}

fn display<S: serde::Serializer>(
    origin: &&Location<'static>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(origin)
}

fn write_failed(error: serde_json::Error) -> Error {
    Error::Envelope {
        reason: format!("cannot write the envelope: {error}"),
    }
}

fn saturating_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Envelope {
    /// Serializes `intent`'s arguments and options into an envelope with `id`.
    ///
    /// # Errors
    /// [`ArgsError::Encode`] if an argument fails to serialize, or the arguments
    /// nest deeper than [`MAX_ARGS_DEPTH`] (a worker could not read them).
    pub fn from_intent(intent: &Intent, id: impl Into<String>) -> Result<Self, Error> {
        let args = intent.args_json()?;
        check_depth(intent, &args)?;
        Ok(Envelope {
            version: ENVELOPE_VERSION,
            id: id.into(),
            task: intent.name().to_owned(),
            args,
            options: WireOptions::from_options(intent.options()),
            origin: Some(intent.origin().to_string()),
            cascade_depth: intent.cascade_depth(),
        })
    }

    /// The envelope as JSON bytes.
    ///
    /// # Errors
    /// [`Error::Envelope`] in the unlikely case the JSON writer fails.
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(self).map_err(write_failed)
    }

    /// `intent`'s envelope with `id` as JSON bytes, written straight from the
    /// intent: the bytes `Envelope::from_intent(intent, id)?.to_json()` gives,
    /// without building the envelope in between. The queue executors push
    /// these.
    ///
    /// # Errors
    /// As [`from_intent`](Self::from_intent): [`ArgsError::Encode`] if an argument
    /// fails to serialize, the arguments nest deeper than [`MAX_ARGS_DEPTH`],
    /// or the bytes exceed
    /// [`Config::max_payload_bytes`](crate::Config::max_payload_bytes); [`Error::Envelope`] in the unlikely case the JSON
    /// writer fails.
    pub fn encode_intent(intent: &Intent, id: &str) -> Result<Vec<u8>, Error> {
        let args = intent.args_json()?;
        check_depth(intent, &args)?;
        let origin = intent.origin();
        let envelope = WireEnvelope {
            version: ENVELOPE_VERSION,
            id,
            task: intent.name(),
            args: &args,
            options: WireOptionsRef::from_options(intent.options()),
            origin,
            cascade_depth: intent.cascade_depth(),
        };
        // Room for the fixed keys, the strings and typical small arguments and
        // options, so the buffer rarely grows while being written.
        let mut bytes =
            Vec::with_capacity(192 + id.len() + envelope.task.len() + origin.file().len());
        serde_json::to_writer(&mut bytes, &envelope).map_err(write_failed)?;
        check_size(intent, bytes.len())?;
        Ok(bytes)
    }

    /// Reads an envelope, checking its version before anything else.
    ///
    /// # Errors
    /// [`Error::EnvelopeVersion`] for a version this build does not read;
    /// [`Error::Envelope`] for bytes that are not an airlock envelope.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Error::Envelope {
                reason: format!("the payload is not JSON: {e}"),
            })?;
        Self::from_value(value)
    }

    /// Like [`from_json`](Self::from_json), from an already parsed value.
    ///
    /// # Errors
    /// As [`from_json`](Self::from_json).
    pub fn from_value(value: serde_json::Value) -> Result<Self, Error> {
        let version = match value.get("v") {
            Some(v) => v.as_u64().ok_or_else(|| Error::Envelope {
                reason: format!("the envelope version `v` must be a number, found {v}"),
            })?,
            None => {
                return Err(Error::Envelope {
                    reason: "not an airlock envelope: it has no version field `v`".to_owned(),
                })
            }
        };
        if version != u64::from(ENVELOPE_VERSION) {
            return Err(Error::EnvelopeVersion {
                found: version,
                supported: ENVELOPE_VERSION,
            });
        }
        serde_json::from_value(value).map_err(|e| Error::Envelope {
            reason: format!("malformed envelope: {e}"),
        })
    }

    /// Looks the task up in the registry and decodes the arguments.
    ///
    /// # Errors
    /// [`Error::UnknownTask`] (listing the registered names) or
    /// [`ArgsError::Decode`] (naming the task) when the arguments do not fit;
    /// [`Error::Envelope`] for a `run_at_ms` past what the platform's clock
    /// represents.
    #[track_caller]
    pub fn into_intent(self) -> Result<Intent, Error> {
        let task = registry().get(&self.task)?;
        let args = task.decode_args(self.args)?;
        let options = self.options.into_options()?;
        let mut intent = <Intent as IntentParts>::from_decoded(task, args);
        intent.set_options(options);
        intent.cascade_depth = self.cascade_depth;
        Ok(intent)
    }
}
