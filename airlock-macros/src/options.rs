//! Attribute options: `key = value` pairs, each key given at most once.
//!
//! A macro declares its options as a struct with one [`SetOnce`] field per key
//! and says how each key's value is stored ([`AttrOptions::accept`]); [`parse`]
//! owns the rest: the `key = value` syntax, unknown keys, keys given twice.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Token};

use crate::errors::Errors;

/// The options of one attribute macro.
pub(crate) trait AttrOptions: Default {
    /// The macro's name as users write it after `airlock::`, for messages.
    const ATTR: &'static str;
    /// Every key, in the order the "unknown option" message lists them.
    const KEYS: &'static [&'static str];

    /// Stores the value of `key`.
    fn accept(&mut self, key: &Ident, value: Expr) -> Result<(), Rejection>;
}

/// Why [`AttrOptions::accept`] did not store a value.
pub(crate) enum Rejection {
    UnknownKey,
    GivenTwice,
    BadValue(syn::Error),
}

/// One option's value, which may be given once. Keeping "was it given?" in
/// the slot itself is what lets [`parse`] report a repeated key on the
/// repetition, whatever the option.
pub(crate) struct SetOnce<T>(Option<T>);

impl<T> Default for SetOnce<T> {
    fn default() -> Self {
        SetOnce(None)
    }
}

impl<T> SetOnce<T> {
    pub(crate) fn set(&mut self, value: T) -> Result<(), Rejection> {
        if self.0.is_some() {
            return Err(Rejection::GivenTwice);
        }
        self.0 = Some(value);
        Ok(())
    }

    pub(crate) fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

/// Parses an attribute's arguments into `O`. Every problem goes to `errors`;
/// what could be read is still returned, so later stages check the rest.
pub(crate) fn parse<O: AttrOptions>(tokens: TokenStream, errors: &mut Errors) -> O {
    let mut options = O::default();
    let args = match Punctuated::<KeyValue, Token![,]>::parse_terminated.parse2(tokens) {
        Ok(args) => args,
        Err(error) => {
            errors.push(error);
            return options;
        }
    };
    for KeyValue { key, value } in args {
        let message = match options.accept(&key, value) {
            Ok(()) => continue,
            Err(Rejection::BadValue(error)) => {
                errors.push(error);
                continue;
            }
            Err(Rejection::GivenTwice) => format!(
                "`{key}` is set more than once in #[airlock::{}]; set it once",
                O::ATTR
            ),
            Err(Rejection::UnknownKey) => format!(
                "unknown option `{key}` for #[airlock::{}]; valid options are: {}",
                O::ATTR,
                O::KEYS
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        errors.push(syn::Error::new(key.span(), message));
    }
    options
}

/// The value of an option that takes a string literal, e.g. `name = "orders.ship"`.
pub(crate) fn string_literal(key: &Ident, value: Expr) -> Result<LitStr, Rejection> {
    match value {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(literal),
            ..
        }) => Ok(literal),
        other => Err(Rejection::BadValue(syn::Error::new_spanned(
            other,
            format!("`{key}` takes a string literal, e.g. `{key} = \"...\"`"),
        ))),
    }
}

struct KeyValue {
    key: Ident,
    value: Expr,
}

impl Parse for KeyValue {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key: Ident = input.parse()?;
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "expected `{key} = ...`: airlock attribute options are written as `key = value`"
                ),
            ));
        }
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        Ok(KeyValue { key, value })
    }
}
