//! `#[airlock::task]`: registers a free function as a task and generates its
//! handle, a type of the same name with `enqueue`, `intent` and `TASK`.
//!
//! [`parse`] reads the options and the function, [`check`] validates them,
//! [`expand`] generates the registration and the handle. When the check
//! fails, [`stub`] stands in for [`expand`]: the same handle with bodies that
//! never run, so code using the handle reports nothing beyond the check's
//! errors.

mod check;
mod expand;
mod handle;
mod parse;
mod stub;

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;

pub(crate) fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
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
        Ok(task) => expand::expand(&task),
        Err(error) => {
            let error = error.to_compile_error();
            let stub = stub::stub(&input);
            quote!(#error #stub)
        }
    }
}
