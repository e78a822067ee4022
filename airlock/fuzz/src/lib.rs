//! Shared by the fuzz targets: the tasks a fuzzed worker knows, the checks
//! every decoded job must pass, and a guard that turns one huge allocation
//! into a crash libFuzzer records.
//!
//! The tasks cover the argument shapes a real task takes: integers of every
//! width, strings, `Option`, `Vec` of structs, a recursive struct, enums in
//! serde's external, internal, adjacent and untagged representations, maps
//! with string and integer keys, tuples, arrays, floats and `char`, and the
//! `rename` / `alias` / `default` attributes the task macro supports.

// `notify` takes many parameters on purpose, one per argument shape; the
// lint also fires on the `enqueue` and `intent` functions the macro generates.
#![allow(clippy::too_many_arguments)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Write as _;

use airlock::envelope::Envelope;
use airlock::Intent;
use arbitrary::Arbitrary;
use serde::{Deserialize, Serialize};

/// The largest single allocation a decode may make, in bytes.
///
/// libFuzzer's `-malloc_limit_mb` only works through a sanitizer's malloc
/// hooks, and stable Rust fuzzes without a sanitizer (`cargo fuzz run -s
/// none`), so the limit is enforced here instead. Inputs are at most a few
/// KiB: anything near this size is an allocation sized by a number in the
/// input, not by the input itself.
pub const MAX_ALLOCATION: usize = 64 << 20;

/// The system allocator, aborting on any single request above
/// [`MAX_ALLOCATION`]; libFuzzer reports the abort as a crash and saves the
/// input.
struct BoundedAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the guard only adds a size check before it.
unsafe impl GlobalAlloc for BoundedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check_size(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check_size(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check_size(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn check_size(size: usize) {
    if size > MAX_ALLOCATION {
        // Stderr is unbuffered and the message small: writing it allocates
        // nothing, so this cannot recurse into the guard.
        let _ = writeln!(
            std::io::stderr(),
            "==airlock-fuzz== allocation of {size} bytes exceeds the {MAX_ALLOCATION}-byte limit"
        );
        std::process::abort();
    }
}

#[global_allocator]
static ALLOCATOR: BoundedAllocator = BoundedAllocator;

/// One line of an order: a plain struct inside a `Vec`, recursive through
/// `bundle` so the decoder meets nesting it did not bound itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Arbitrary)]
pub struct Line {
    /// Stock keeping unit.
    pub sku: String,
    /// How many.
    pub qty: u32,
    /// Unit price in the smallest currency unit.
    pub unit_price: i64,
    /// Lines sold together with this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<Box<Line>>,
}

/// An externally tagged enum (serde's default) with unit, newtype, tuple and
/// struct variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Arbitrary)]
pub enum Priority {
    /// A unit variant: `"Low"`.
    Low,
    /// Another unit variant.
    High,
    /// A newtype variant: `{"Custom": 7}`.
    Custom(u8),
    /// A tuple variant: `{"Window": [9, 17]}`.
    Window(u8, u8),
    /// A struct variant.
    After {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
}

/// An internally tagged enum: serde buffers the object to find the tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Arbitrary)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recipient {
    /// By e-mail.
    Email {
        /// The address.
        address: String,
    },
    /// By text message.
    Sms {
        /// The phone number.
        number: String,
        /// The calling code, when not in the number.
        #[serde(default)]
        country: Option<u16>,
    },
    /// To a URL, with headers as pairs.
    Webhook {
        /// Where to post.
        url: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
}

/// An adjacently tagged enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Arbitrary)]
#[serde(tag = "t", content = "c")]
pub enum Channel {
    /// No content.
    Default,
    /// A named channel.
    Named(String),
    /// A numbered shard.
    Shard {
        /// Which one.
        index: u16,
    },
}

/// An untagged enum: serde buffers the value and tries each variant in turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Arbitrary)]
#[serde(untagged)]
pub enum Amount {
    /// An integer amount in cents.
    Cents(i64),
    /// A decimal written as a string.
    Decimal(String),
    /// A split payment.
    Split(Vec<Amount>),
}

/// Integers, a string and an untagged enum.
#[airlock::task(name = "fuzz.charge")]
pub fn charge(order_id: u64, customer: i32, currency: String, amount: Amount) {
    let _ = (order_id, customer, currency, amount);
}

/// A `Vec` of (recursive) structs, `Option`, an external enum, a renamed and
/// a defaulted parameter.
#[airlock::task(name = "fuzz.ship")]
pub fn ship(
    order_id: u64,
    lines: Vec<Line>,
    note: Option<String>,
    priority: Priority,
    #[serde(rename = "express")] express_shipping: bool,
    #[serde(default)] gift_wrap: bool,
) {
    let _ = (order_id, lines, note, priority, express_shipping, gift_wrap);
}

/// Internally and adjacently tagged enums, maps, `f64` and `f32`, small and wide
/// integers, a tuple, an array and a `char`, one parameter with an alias.
#[airlock::task(name = "fuzz.notify")]
pub fn notify(
    recipient: Recipient,
    channel: Channel,
    #[serde(alias = "tmpl")] template: String,
    vars: BTreeMap<String, Vec<Option<i16>>>,
    retries_by_hour: BTreeMap<u8, u32>,
    weights: Vec<f64>,
    ratio: f32,
    window: (u16, i8),
    checksum: [u8; 4],
    initial: char,
    sequence: i128,
) {
    let _ = (
        recipient,
        channel,
        template,
        vars,
        retries_by_hour,
        weights,
        ratio,
        window,
        checksum,
        initial,
        sequence,
    );
}

/// Enqueues itself with `hops - 1` until 0: a cascade that starts at
/// whatever depth the envelope claims, so running it checks the depth
/// arithmetic on wire values (overflow checks are on in fuzz builds).
#[airlock::task(name = "fuzz.relay")]
pub fn relay(hops: u8) -> airlock::Result<()> {
    if hops > 0 {
        relay::enqueue(hops - 1)?;
    }
    Ok(())
}

/// No parameters at all: `"args": {}`.
#[airlock::task(name = "fuzz.ping")]
pub fn ping() {}

/// An `async` task with a nested generic parameter.
#[airlock::task(name = "fuzz.reindex")]
pub async fn reindex(batches: Vec<Vec<u32>>, since: Option<u64>) {
    let _ = (batches, since);
}

/// The id the checks give envelopes they re-encode (a valid ULID).
pub const REENCODE_ID: &str = "01JD0000000000000000000000";

/// Feeds one job payload through the worker's decoding, exactly as a queue
/// worker would, and checks what a worker relies on:
///
/// * decoding never panics and never allocates more than [`MAX_ALLOCATION`]
///   at once (the allocator guard aborts);
/// * a rejection formats (the worker logs it and returns it to apalis);
/// * an accepted job formats (the worker logs it), and re-encoding it as a
///   producer would gives an envelope that decodes to the same arguments,
///   options and cascade depth: what a worker accepted survives another hop
///   (unless it holds a non-finite float, which JSON cannot carry).
///
/// Returns the decoded intent, for targets that check more.
///
/// With `AIRLOCK_FUZZ_VERBOSE` set, prints each outcome: running a target
/// binary on seed files then shows what the worker made of each.
pub fn check_payload(bytes: &[u8]) -> Option<Intent> {
    match airlock::worker::decode_job(bytes) {
        Ok(intent) => {
            if verbose() {
                eprintln!("accepted: {intent}");
            }
            check_reencodes(&intent);
            Some(intent)
        }
        Err(abort) => {
            let message = abort.to_string();
            if verbose() {
                eprintln!("aborted: {message}");
            }
            None
        }
    }
}

fn verbose() -> bool {
    static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("AIRLOCK_FUZZ_VERBOSE").is_some())
}

/// Whether `intent` carries a NaN or infinite float. JSON has no such
/// numbers: serde_json writes them as `null`, which no float decodes from,
/// and a worker does accept one, since serde reads a number beyond `f32::MAX`
/// as an infinite `f32` (`3.5e38` becomes `inf`). Such arguments cannot
/// survive a second hop, by JSON's design rather than a decoding bug.
fn has_non_finite_float(intent: &Intent) -> bool {
    intent
        .args::<notify>()
        .is_some_and(|args| !args.ratio.is_finite() || args.weights.iter().any(|w| !w.is_finite()))
}

/// The second half of [`check_payload`]'s checks on an accepted job.
fn check_reencodes(intent: &Intent) {
    let _ = intent.to_string();
    if has_non_finite_float(intent) {
        return;
    }
    let args = intent
        .args_json()
        .expect("arguments a worker decoded must encode again");
    let envelope =
        Envelope::from_intent(intent, REENCODE_ID).expect("a decoded intent must re-encode");
    let bytes = envelope.to_json().expect("an envelope must serialize");
    // The queues write the envelope straight from the intent: the same bytes.
    let pushed = Envelope::encode_intent(intent, REENCODE_ID)
        .expect("a decoded intent must encode for a queue");
    assert_eq!(
        String::from_utf8_lossy(&pushed),
        String::from_utf8_lossy(&bytes),
        "the queues' encoding differs from the envelope's"
    );
    let again = airlock::worker::decode_job(&bytes).unwrap_or_else(|abort| {
        panic!(
            "a re-encoded envelope must decode: {abort}\n{}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(again.name(), intent.name());
    assert_eq!(
        again.args_json().expect("re-decoded arguments encode"),
        args,
        "arguments changed across a second hop"
    );
    assert_eq!(again.options(), intent.options(), "options changed");
    assert_eq!(again.cascade_depth(), intent.cascade_depth());
}

/// The most text of one error a worker returns: about 1 KiB of clipped text
/// plus the fixed words around it.
pub const MAX_ERROR_TEXT: usize = 1_400;

/// Feeds one job payload through the worker's whole handler, decoding *and
/// running* it (`airlock::worker::handle_bytes`, the code `worker::handle`
/// runs) as attempt `attempt` of `max_attempts`, and checks what a worker
/// relies on:
///
/// * nothing the handler does panics (a task's own panic is its error, by
///   design; any other unwinds into the fuzzer as a crash);
/// * a job the decoder rejects never succeeds;
/// * every error's text stays short, whatever the payload held.
pub fn check_run(bytes: &[u8], attempt: usize, max_attempts: Option<usize>) {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime");
    }
    let decodes = airlock::worker::decode_job(bytes).is_ok();
    let result = RUNTIME.with(|runtime| {
        runtime.block_on(airlock::worker::handle_bytes(bytes, attempt, max_attempts))
    });
    if verbose() {
        match &result {
            Ok(()) => eprintln!("ran: ok"),
            Err(error) => eprintln!("ran: failed: {error}"),
        }
    }
    match result {
        Ok(()) => assert!(decodes, "a job the decoder rejects succeeded"),
        Err(error) => {
            let text = error.to_string();
            assert!(
                text.len() <= MAX_ERROR_TEXT,
                "a worker error of {} bytes: {}",
                text.len(),
                &text[..text.floor_char_boundary(200)]
            );
        }
    }
}
