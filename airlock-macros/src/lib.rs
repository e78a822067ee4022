//! Procedural macros for [airlock](https://docs.rs/airlock). Use them through
//! the `airlock` crate (`#[airlock::task]`, `#[airlock::scoped]`); this crate's
//! generated code names only `::airlock::…` paths.
//!
//! Each macro runs in three stages, one module each: `parse` turns tokens into
//! a model (the function's body stays unparsed tokens), `check` validates the
//! model and reports every problem at once, `expand` turns a checked model
//! into code. Shared by both: `function` (the decorated function), `options`
//! (`key = value` attribute arguments), `errors` and `return_type`.

mod errors;
mod function;
mod options;
mod return_type;
mod scoped;
mod task;

use proc_macro::TokenStream;

/// Turns a free function into an airlock task. See `airlock::task`.
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    task::task(args.into(), item.into()).into()
}

/// Runs a function inside its own airlock scope. See `airlock::scoped`.
#[proc_macro_attribute]
pub fn scoped(args: TokenStream, item: TokenStream) -> TokenStream {
    scoped::scoped(args.into(), item.into()).into()
}
