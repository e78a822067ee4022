//! Procedural macros for [airlock](https://docs.rs/airlock). Use them through
//! the `airlock` crate (`#[airlock::task]`, `#[airlock::scoped]`); this crate's
//! generated code names only `::airlock::…` paths.

mod args;
mod scoped;
mod task;

use proc_macro::TokenStream;

/// Turns a free function into an airlock task. See `airlock::task`.
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    task::expand(args.into(), item.into()).into()
}

/// Runs a function inside its own airlock scope. See `airlock::scoped`.
#[proc_macro_attribute]
pub fn scoped(args: TokenStream, item: TokenStream) -> TokenStream {
    scoped::expand(args.into(), item.into()).into()
}
