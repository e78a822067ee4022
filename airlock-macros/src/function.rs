//! The decorated function, read only as far as a macro needs it: attributes,
//! visibility and signature are parsed; the body stays the tokens the user
//! wrote.
//!
//! Why the body is never parsed: with a syntax error in it, parsing the whole
//! function would fail, and the macro could only emit a vague error of its own
//! next to the compiler's, and no expansion (so every use of a task's handle
//! failed as well). Passed through verbatim, the body's syntax error is
//! reported once, by the compiler, where it is.

use proc_macro2::{Group, TokenStream};
use quote::ToTokens;
use syn::parse::{ParseStream, Parser};
use syn::{token, Attribute, Ident, LitStr, Signature, Token, Visibility};

pub(crate) struct Function {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    /// The braces and everything in them, unparsed.
    pub(crate) body: Group,
}

impl Function {
    /// Reads `item`. Anything but a function with a body is an error spanned
    /// on the whole item, saying `misuse`; a function whose signature does not
    /// parse gets the parser's own error, on the token at fault.
    pub(crate) fn parse(item: &TokenStream, misuse: &str) -> syn::Result<Self> {
        match parse_function.parse2(item.clone())? {
            Some(function) => Ok(function),
            None => Err(syn::Error::new_spanned(item, misuse)),
        }
    }

    pub(crate) fn ident(&self) -> &Ident {
        &self.sig.ident
    }

    /// The body's inner attributes (`#![allow(..)]`, `//!` docs), which apply
    /// to the whole function, and the statements that follow them.
    pub(crate) fn split_body(&self) -> (Vec<Attribute>, TokenStream) {
        let split = |input: ParseStream<'_>| {
            let inner = input.call(Attribute::parse_inner)?;
            Ok((inner, input.parse::<TokenStream>()?))
        };
        // A malformed inner attribute is left in place, for the compiler to report.
        split
            .parse2(self.body.stream())
            .unwrap_or_else(|_: syn::Error| (Vec::new(), self.body.stream()))
    }

    /// Braces spanning exactly the original body's, so code put in them is
    /// attributed to the user's function (its lints and errors included).
    pub(crate) fn body_braces(&self) -> token::Brace {
        token::Brace {
            span: self.body.delim_span(),
        }
    }
}

/// Re-emits the function as written.
impl ToTokens for Function {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        for attr in &self.attrs {
            attr.to_tokens(tokens);
        }
        self.vis.to_tokens(tokens);
        self.sig.to_tokens(tokens);
        self.body.to_tokens(tokens);
    }
}

/// `Ok(None)`: not a function with a body.
fn parse_function(input: ParseStream<'_>) -> syn::Result<Option<Function>> {
    let attrs = input.call(Attribute::parse_outer)?;
    let vis: Visibility = input.parse()?;
    if !starts_signature(input) {
        input.parse::<TokenStream>()?;
        return Ok(None);
    }
    let sig: Signature = input.parse()?;
    if !input.peek(token::Brace) {
        // A declaration without a body, as in a trait.
        input.parse::<TokenStream>()?;
        return Ok(None);
    }
    let body: Group = input.parse()?;
    if !input.is_empty() {
        input.parse::<TokenStream>()?;
        return Ok(None);
    }
    Ok(Some(Function {
        attrs,
        vis,
        sig,
        body,
    }))
}

/// Whether a function signature starts here: `fn`, after any of
/// `const async unsafe extern "abi"`.
fn starts_signature(input: ParseStream<'_>) -> bool {
    let fork = input.fork();
    let qualifiers = (|| -> syn::Result<()> {
        fork.parse::<Option<Token![const]>>()?;
        fork.parse::<Option<Token![async]>>()?;
        fork.parse::<Option<Token![unsafe]>>()?;
        if fork.parse::<Option<Token![extern]>>()?.is_some() {
            fork.parse::<Option<LitStr>>()?;
        }
        Ok(())
    })();
    qualifiers.is_ok() && fork.peek(Token![fn])
}
