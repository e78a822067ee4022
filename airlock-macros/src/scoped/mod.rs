//! `#[airlock::scoped]`: runs a function's body in a scope of its own, which
//! flushes when the body returns `Ok` and discards on `Err`.
//!
//! [`parse`] reads the options and the function, [`check`] validates them,
//! [`expand`] moves the body into the scope.

mod check;
mod expand;
mod parse;

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;

pub(crate) fn scoped(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let input = match parse::parse(attr, &item, &mut errors) {
        Ok(input) => input,
        Err(error) => {
            errors.push(error);
            let errors = errors.into_compile_errors();
            return quote!(#errors #item);
        }
    };
    match check::check(&input, errors) {
        Ok(scoped) => expand::expand(&scoped),
        Err(error) => {
            // Re-emitted as written, the function keeps type-checking, so the
            // errors above are the only ones.
            let error = error.to_compile_error();
            let function = &input.function;
            quote!(#error #function)
        }
    }
}
