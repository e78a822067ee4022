//! Parse stage of `#[airlock::task]`: the options and the function, as
//! written; nothing is validated yet beyond syntax.

use proc_macro2::TokenStream;
use syn::{Attribute, Expr, FnArg, Ident, LitStr};

use crate::errors::Errors;
use crate::function::Function;
use crate::options::{self, AttrOptions, Rejection, SetOnce};

pub(crate) struct TaskInput {
    pub(crate) options: TaskOptions,
    /// The function as it is emitted: without the `#[serde(..)]` attributes
    /// of its parameters, which are not attributes the compiler knows.
    pub(crate) function: Function,
    /// The `#[serde(..)]` attributes taken off each parameter, in order.
    pub(crate) serde_attrs: Vec<Vec<Attribute>>,
}

#[derive(Default)]
pub(crate) struct TaskOptions {
    pub(crate) name: SetOnce<LitStr>,
}

impl AttrOptions for TaskOptions {
    const ATTR: &'static str = "task";
    const KEYS: &'static [&'static str] = &["name"];

    fn accept(&mut self, key: &Ident, value: Expr) -> Result<(), Rejection> {
        match key.to_string().as_str() {
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
) -> syn::Result<TaskInput> {
    let options = options::parse::<TaskOptions>(attr, errors);
    let mut function = Function::parse(
        item,
        "#[airlock::task] goes on a free function at module level: `fn name(arg: Type, ...)`",
    )?;
    let serde_attrs = function
        .sig
        .inputs
        .iter_mut()
        .map(|param| match param {
            FnArg::Typed(param) => {
                let (serde, other) = param
                    .attrs
                    .drain(..)
                    .partition(|attr| attr.path().is_ident("serde"));
                param.attrs = other;
                serde
            }
            FnArg::Receiver(_) => Vec::new(),
        })
        .collect();
    Ok(TaskInput {
        options,
        function,
        serde_attrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_key_is_accepted() {
        for key in TaskOptions::KEYS {
            let mut options = TaskOptions::default();
            let key = Ident::new(key, proc_macro2::Span::call_site());
            let accepted = options.accept(&key, syn::parse_quote!("x"));
            assert!(accepted.is_ok(), "`{key}` is listed but not accepted");
        }
    }
}
