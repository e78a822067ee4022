//! `#[airlock::scoped]`: parse → check → expand.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{AttrStyle, ItemFn, ReturnType, Type};

use crate::args::{self, Errors};

const OPTIONS: &[&str] = &["policy", "executor", "behavior", "name"];

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = args::parse(attr, "scoped", OPTIONS, &mut errors);

    let mut func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = syn::Error::new_spanned(
                &item,
                "#[airlock::scoped] goes on a function or method returning `Result<T, E>`",
            )
            .to_compile_error();
            return quote!(#error #item);
        }
    };

    if let Some(token) = &func.sig.constness {
        errors.push(syn::Error::new(
            token.span(),
            "#[airlock::scoped] cannot wrap a `const fn`: a scope dispatches side effects at run time; remove `const`",
        ));
    }
    let ret: Option<Type> = match &func.sig.output {
        ReturnType::Default => {
            errors.push(syn::Error::new(
                func.sig.ident.span(),
                "#[airlock::scoped] needs the function to return `Result<T, E>` with `E: From<airlock::Error>`: \
                 the scope flushes on `Ok`, discards on `Err`, and a failed flush is reported as `Err`. \
                 Add `-> airlock::Result<()>` (or `anyhow::Result<()>`)",
            ));
            None
        }
        ReturnType::Type(_, ty) => {
            if let Type::ImplTrait(it) = &**ty {
                errors.push(syn::Error::new_spanned(
                    it,
                    "#[airlock::scoped] needs a concrete `Result<T, E>` return type, not `impl Trait`; \
                     for a future, write an `async fn` returning `Result<T, E>`",
                ));
            }
            Some((**ty).clone())
        }
    };

    let mut builder = quote!(::airlock::Scope::new());
    let name = match &options[3] {
        Some(arg) => args::string_value(arg, &mut errors).map(|(name, _)| name),
        None => Some(func.sig.ident.to_string()),
    };
    if let Some(name) = name {
        builder = quote!(#builder.name(#name));
    }
    for (slot, method) in options[..3].iter().zip(["policy", "executor", "behavior"]) {
        if let Some(arg) = slot {
            let method = syn::Ident::new(method, arg.key.span());
            let value = &arg.value;
            builder = quote!(#builder.#method(#value));
        }
    }

    let ret = match (ret, errors.into_compile_error()) {
        (Some(ret), None) => ret,
        (_, error) => {
            // Re-emit the function untouched so only the errors above are reported.
            return quote!(#error #func);
        }
    };

    // Inner attributes (`#![allow(..)]`) belong to the function, not the new body.
    for attr in &mut func.attrs {
        attr.style = AttrStyle::Outer;
    }
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;

    // Spanned on the return type: the one place a return type that cannot
    // absorb a flush error is reported.
    let check = match args::result_error_type(&ret) {
        Some(error) => quote_spanned! {error.span()=>
            let _ = ::airlock::__private::assert_scope_error::<#error>;
        },
        None => quote_spanned! {ret.span()=>
            let _ = ::airlock::__private::assert_scope_output::<#ret>;
        },
    };
    let probe = quote! {
        #[allow(unused_imports)]
        use ::airlock::__private::{RunScoped as _, StubRunScoped as _};
        (&::airlock::__private::Probe::<#ret>::new())
    };

    let body = if sig.asyncness.is_some() {
        // The fake early return pins the async block's output type to the
        // declared one, so `?` and type errors behave as in the original fn.
        quote! {
            #check
            #probe.run_scoped_async(#builder, async move {
                    #[allow(
                        unknown_lints,
                        unreachable_code,
                        clippy::diverging_sub_expression,
                        clippy::empty_loop,
                        clippy::needless_return
                    )]
                    if false {
                        let __airlock_return: #ret = loop {};
                        return __airlock_return;
                    }
                    #block
                })
                .await
        }
    } else {
        quote! {
            #check
            #probe.run_scoped(#builder, move || -> #ret #block)
        }
    };

    // The new body keeps the original braces' span: generated from the
    // user's tokens, the function still gets `dead_code` and other lints.
    let mut wrapped = TokenStream::new();
    block
        .brace_token
        .surround(&mut wrapped, |tokens| tokens.extend(body));
    quote! {
        #(#attrs)*
        #vis #sig #wrapped
    }
}
