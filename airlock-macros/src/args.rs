//! Attribute arguments: `key = value` pairs, each allowed once.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Token};

/// One `key = value` argument.
pub(crate) struct Arg {
    pub(crate) key: Ident,
    pub(crate) value: Expr,
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key: Ident = input.parse()?;
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                key.span(),
                format!("expected `{key} = ...`: airlock attribute options are written as `key = value`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        Ok(Arg { key, value })
    }
}

/// Parses the attribute's arguments into `known.len()` slots, one per known key.
/// Unknown keys list the valid ones; a key given twice is an error on the second.
pub(crate) fn parse(
    tokens: TokenStream,
    macro_name: &str,
    known: &[&str],
    errors: &mut Errors,
) -> Vec<Option<Arg>> {
    let mut slots: Vec<Option<Arg>> = known.iter().map(|_| None).collect();
    let parsed = match Punctuated::<Arg, Token![,]>::parse_terminated.parse2(tokens) {
        Ok(parsed) => parsed,
        Err(error) => {
            errors.push(error);
            return slots;
        }
    };
    for arg in parsed {
        let key = arg.key.to_string();
        match known.iter().position(|k| *k == key) {
            Some(i) if slots[i].is_some() => errors.push(syn::Error::new(
                arg.key.span(),
                format!("`{key}` is set more than once in #[airlock::{macro_name}]; set it once"),
            )),
            Some(i) => slots[i] = Some(arg),
            None => {
                errors.push(syn::Error::new(
                    arg.key.span(),
                    format!(
                    "unknown option `{key}` for #[airlock::{macro_name}]; valid options are: {}",
                    known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                ),
                ))
            }
        }
    }
    slots
}

/// A string literal option, e.g. `name = "orders.ship"`.
pub(crate) fn string_value(arg: &Arg, errors: &mut Errors) -> Option<(String, Span)> {
    match &arg.value {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Some((s.value(), s.span())),
        other => {
            errors.push(syn::Error::new_spanned(
                other,
                format!(
                    "`{}` takes a string literal, e.g. `{} = \"...\"`",
                    arg.key, arg.key
                ),
            ));
            None
        }
    }
}

/// The `E` of a return type written as `Result<T, E>` (any path ending in
/// `Result` with two type arguments), so checks can point at the error type.
pub(crate) fn result_error_type(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let types: Vec<&syn::Type> = args
        .args
        .iter()
        .filter_map(|a| match a {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match types.as_slice() {
        [_, error] => Some(error),
        _ => None,
    }
}

/// Collects every problem so they are reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn into_compile_error(self) -> Option<TokenStream> {
        self.0.map(|e| e.to_compile_error())
    }
}
