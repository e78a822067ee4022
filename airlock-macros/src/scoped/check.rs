//! Check stage of `#[airlock::scoped]`: what the function must be for its body
//! to run in a scope. Every problem is reported, not just the first.

use syn::spanned::Spanned;
use syn::{ReturnType, Signature, Type};

use super::parse::{ScopedInput, ScopedOptions};
use crate::errors::Errors;
use crate::function::Function;

/// A function that can be wrapped in a scope.
pub(crate) struct ScopedFn<'a> {
    pub(crate) function: &'a Function,
    pub(crate) options: &'a ScopedOptions,
    /// The declared return type, which the scope hands back.
    pub(crate) output: &'a Type,
    /// The scope's name: the `name` option, else the function's.
    pub(crate) name: String,
}

/// `errors` holds what the parse stage found; the result reports it too.
pub(crate) fn check(input: &ScopedInput, mut errors: Errors) -> syn::Result<ScopedFn<'_>> {
    let sig = &input.function.sig;
    if let Some(token) = &sig.constness {
        errors.push(syn::Error::new(
            token.span(),
            "#[airlock::scoped] cannot wrap a `const fn`: a scope dispatches side effects at run time; remove `const`",
        ));
    }
    let output = errors.keep(output_type(sig));
    errors.finish()?;
    Ok(ScopedFn {
        function: &input.function,
        options: &input.options,
        output: output.expect("no error, so the return type was read"),
        name: input
            .options
            .name
            .get()
            .map_or_else(|| sig.ident.to_string(), syn::LitStr::value),
    })
}

/// Whether the return type can be a scope's output (`Result<T, E>` with
/// `E: From<airlock::Error>`) is left to the compiler; this rejects what
/// cannot even be named as the output of the scope.
fn output_type(sig: &Signature) -> syn::Result<&Type> {
    match &sig.output {
        ReturnType::Default => Err(syn::Error::new(
            sig.ident.span(),
            "#[airlock::scoped] needs the function to return `Result<T, E>` with `E: From<airlock::Error>`: \
             the scope flushes on `Ok`, discards on `Err`, and a failed flush is reported as `Err`. \
             Add `-> airlock::Result<()>` (or `anyhow::Result<()>`)",
        )),
        ReturnType::Type(_, ty) => match &**ty {
            Type::ImplTrait(it) => Err(syn::Error::new_spanned(
                it,
                "#[airlock::scoped] needs a concrete `Result<T, E>` return type, not `impl Trait`; \
                 for a future, write an `async fn` returning `Result<T, E>`",
            )),
            ty => Ok(ty),
        },
    }
}
