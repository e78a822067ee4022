//! Parse stage of `#[airlock::scoped]`: the options and the function, as
//! written; nothing is validated yet beyond syntax.

use proc_macro2::TokenStream;
use syn::{Expr, Ident, LitStr};

use crate::errors::Errors;
use crate::function::Function;
use crate::options::{self, AttrOptions, Rejection, SetOnce};

pub(crate) struct ScopedInput {
    pub(crate) options: ScopedOptions,
    pub(crate) function: Function,
}

#[derive(Default)]
pub(crate) struct ScopedOptions {
    pub(crate) policy: SetOnce<BuilderCall>,
    pub(crate) executor: SetOnce<BuilderCall>,
    pub(crate) behavior: SetOnce<BuilderCall>,
    pub(crate) name: SetOnce<LitStr>,
}

/// An option passed on as is to the `airlock::Scope` builder method of the
/// same name, e.g. `policy = DropAll` becomes `.policy(DropAll)`.
pub(crate) struct BuilderCall {
    /// The option's key, kept for its span: a value of the wrong type is
    /// reported at the option that gave it.
    pub(crate) method: Ident,
    pub(crate) value: Expr,
}

impl AttrOptions for ScopedOptions {
    const ATTR: &'static str = "scoped";
    const KEYS: &'static [&'static str] = &["policy", "executor", "behavior", "name"];

    fn accept(&mut self, key: &Ident, value: Expr) -> Result<(), Rejection> {
        let call = || BuilderCall {
            method: key.clone(),
            value: value.clone(),
        };
        match key.to_string().as_str() {
            "policy" => self.policy.set(call()),
            "executor" => self.executor.set(call()),
            "behavior" => self.behavior.set(call()),
            "name" => self.name.set(options::string_literal(key, value)?),
            _ => Err(Rejection::UnknownKey),
        }
    }
}

/// Option problems go to `errors`; `Err` only when `item` is not a function.
pub(crate) fn parse(
    attr: TokenStream,
    item: &TokenStream,
    errors: &mut Errors,
) -> syn::Result<ScopedInput> {
    let options = options::parse::<ScopedOptions>(attr, errors);
    let function = Function::parse(
        item,
        "#[airlock::scoped] goes on a function or method returning `Result<T, E>`",
    )?;
    Ok(ScopedInput { options, function })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_key_is_accepted() {
        for key in ScopedOptions::KEYS {
            let mut options = ScopedOptions::default();
            let key = Ident::new(key, proc_macro2::Span::call_site());
            let accepted = options.accept(&key, syn::parse_quote!("x"));
            assert!(accepted.is_ok(), "`{key}` is listed but not accepted");
        }
    }
}
