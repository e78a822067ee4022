//! Check stage of `#[airlock::task]`: what a function must be to be called
//! later, by name, with arguments that were buffered and possibly sent to
//! another process. Every problem is reported, not just the first.
//!
//! Whether argument and return types implement the right traits is left to
//! the compiler: the expansion asserts it, spanned on each type.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Attribute, FnArg, GenericParam, Ident, Pat, ReturnType, Signature, Type};

use super::parse::TaskInput;
use crate::errors::Errors;
use crate::function::Function;

/// A function that can be a task.
pub(crate) struct TaskFn<'a> {
    pub(crate) function: &'a Function,
    /// The name it is registered under: the `name` option, else the function's.
    pub(crate) name: String,
    pub(crate) params: Vec<Param<'a>>,
}

/// A parameter, which becomes a field of the serialized arguments.
pub(crate) struct Param<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    pub(crate) serde_attrs: &'a [Attribute],
}

/// `errors` holds what the parse stage found; the result reports it too.
pub(crate) fn check(input: &TaskInput, mut errors: Errors) -> syn::Result<TaskFn<'_>> {
    let sig = &input.function.sig;
    let name = match input.options.name.get() {
        Some(name) => {
            check_name(&name.value(), name.span(), &mut errors);
            name.value()
        }
        None => sig.ident.to_string(),
    };
    check_signature(sig, &mut errors);
    let params = sig
        .inputs
        .iter()
        .zip(&input.serde_attrs)
        .filter_map(|(param, serde_attrs)| errors.keep(check_param(param, serde_attrs)))
        .collect();
    errors.finish()?;
    Ok(TaskFn {
        function: &input.function,
        name,
        params,
    })
}

fn check_name(name: &str, span: Span, errors: &mut Errors) {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '/'));
    if !valid {
        errors.push(syn::Error::new(
            span,
            "a task name must be non-empty and use only ASCII letters, digits and `_ . : - /`, \
             e.g. `name = \"warehouse.notify\"`: it is how other processes find the task",
        ));
    }
}

fn check_signature(sig: &Signature, errors: &mut Errors) {
    if let Some(token) = &sig.constness {
        errors.push(syn::Error::new(
            token.span(),
            "a task cannot be a `const fn`: it runs later, when its scope flushes, possibly in another process; remove `const`",
        ));
    }
    if let Some(token) = &sig.unsafety {
        errors.push(syn::Error::new(
            token.span(),
            "a task cannot be `unsafe`: it is called by name from a queue, with no caller to uphold its safety contract; \
             make it safe and call the unsafe code inside it",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a task cannot have an `extern` ABI; remove it, or call the extern function from a plain task",
        ));
    }
    // Lifetime parameters are reported where they are used, as borrowed arguments.
    let only_lifetimes = sig
        .generics
        .params
        .iter()
        .all(|p| matches!(p, GenericParam::Lifetime(_)));
    if !only_lifetimes || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a task cannot be generic: it is registered and called by name, which needs one concrete function; \
             write one task per concrete type, each calling a generic helper",
        ));
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Type::ImplTrait(it) = &**ty {
            errors.push(syn::Error::new_spanned(
                it,
                "a task cannot return `impl Trait`: return `()` or `Result<(), E>`, \
                 or make it an `async fn` instead of returning a future",
            ));
        }
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a task cannot be variadic",
        ));
    }
}

/// Every problem of one parameter, combined.
fn check_param<'a>(param: &'a FnArg, serde_attrs: &'a [Attribute]) -> syn::Result<Param<'a>> {
    let param = match param {
        FnArg::Receiver(receiver) => {
            return Err(syn::Error::new_spanned(
                receiver.self_token,
                "a task cannot take `self`: it is a free function called by name, possibly in another process; \
                 pass what it needs (e.g. an id) as an owned argument and load the rest inside the task",
            ))
        }
        FnArg::Typed(param) => param,
    };
    let mut errors = Errors::default();
    for attr in serde_attrs {
        errors.keep(check_serde_attr(attr));
    }
    check_owned(&param.ty, &mut errors);
    let ident = match &*param.pat {
        Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => Some(&pat.ident),
        other => {
            errors.push(syn::Error::new_spanned(
                other,
                "task parameters must be plain names (`order_id: u64`): each becomes a named field of the serialized arguments",
            ));
            None
        }
    };
    errors.finish()?;
    Ok(Param {
        ident: ident.expect("no error, so the parameter is a plain name"),
        ty: &param.ty,
        serde_attrs,
    })
}

/// The arguments struct is generic over its field types (see the expansion),
/// so only the serde field attributes that do not name a concrete type work.
fn check_serde_attr(attr: &Attribute) -> syn::Result<()> {
    const SUPPORTED: &str = "`rename = \"..\"`, `alias = \"..\"` and `default`";
    attr.parse_nested_meta(|meta| {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match key.as_str() {
            "rename" | "alias" => {
                meta.value()?.parse::<syn::LitStr>()?;
                Ok(())
            }
            "default" if meta.input.is_empty() || meta.input.peek(syn::Token![,]) => Ok(()),
            _ => Err(meta.error(format!(
                "unsupported serde attribute on a task parameter; supported: {SUPPORTED}. \
                 For custom (de)serialization, give the parameter a newtype that implements it"
            ))),
        }
    })
}

/// Rejects borrowed, `impl Trait` and function parameter types, spanned on
/// the offending part, wherever it is nested.
fn check_owned(ty: &Type, errors: &mut Errors) {
    struct Finder<'a> {
        errors: &'a mut Errors,
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            let suggestion = match &*r.elem {
                Type::Path(p) if p.path.is_ident("str") => "use `String` instead of `&str`",
                Type::Slice(_) => "use `Vec<T>` instead of `&[T]`",
                _ => "take the value itself (`T` instead of `&T`)",
            };
            self.errors.push(syn::Error::new_spanned(
                r,
                format!(
                    "task arguments must be owned: they are buffered until the scope flushes and may be \
                     sent to another process; {suggestion}"
                ),
            ));
        }
        fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
            if lifetime.ident != "static" {
                self.errors.push(syn::Error::new_spanned(
                    lifetime,
                    "task arguments cannot borrow (no lifetimes other than `'static`): they are buffered until \
                     the scope flushes and may be sent to another process; use an owned type",
                ));
            }
        }
        fn visit_type_impl_trait(&mut self, it: &'ast syn::TypeImplTrait) {
            self.errors.push(syn::Error::new_spanned(
                it,
                "task arguments cannot be `impl Trait`: the registry needs one concrete argument type; name the type",
            ));
        }
        fn visit_type_bare_fn(&mut self, f: &'ast syn::TypeBareFn) {
            self.errors.push(syn::Error::new_spanned(
                f,
                "task arguments cannot be functions: they must be serializable data",
            ));
        }
    }
    Finder { errors }.visit_type(ty);
}
