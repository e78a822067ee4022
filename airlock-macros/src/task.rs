//! `#[airlock::task]`: parse → check → expand.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, Ident, ItemFn, Pat, ReturnType, Type};

use crate::args::{self, Errors};

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = args::parse(attr, "task", &["name"], &mut errors);

    let mut func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = syn::Error::new_spanned(
                &item,
                "#[airlock::task] goes on a free function at module level: `fn name(arg: Type, ...)`",
            );
            let error = error.to_compile_error();
            return quote!(#error #item);
        }
    };

    let name = match &options[0] {
        Some(arg) => args::string_value(arg, &mut errors).map(|(name, span)| {
            check_name(&name, span, &mut errors);
            name
        }),
        None => Some(func.sig.ident.to_string()),
    }
    .unwrap_or_default();

    check_signature(&func, &mut errors);
    let params = collect_params(&mut func, &mut errors);

    if let Some(error) = errors.into_compile_error() {
        // Still emit the function so the rest of the crate keeps type-checking
        // and the user sees only the errors above.
        return quote!(#error #func);
    }
    generate(&func, &name, &params)
}

/// One task parameter: its name, type, and the `#[serde]` attributes it carries.
struct Param {
    ident: Ident,
    ty: Type,
    serde_attrs: Vec<syn::Attribute>,
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

fn check_signature(func: &ItemFn, errors: &mut Errors) {
    let sig = &func.sig;
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
        .all(|p| matches!(p, syn::GenericParam::Lifetime(_)));
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

fn collect_params(func: &mut ItemFn, errors: &mut Errors) -> Vec<Param> {
    let mut params = Vec::new();
    for input in &mut func.sig.inputs {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                errors.push(syn::Error::new_spanned(
                    receiver.self_token,
                    "a task cannot take `self`: it is a free function called by name, possibly in another process; \
                     pass what it needs (e.g. an id) as an owned argument and load the rest inside the task",
                ));
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        let (serde_attrs, other): (Vec<_>, Vec<_>) = typed
            .attrs
            .drain(..)
            .partition(|a| a.path().is_ident("serde"));
        typed.attrs = other;
        for attr in &serde_attrs {
            check_serde_attr(attr, errors);
        }

        check_owned(&typed.ty, errors);
        match &*typed.pat {
            Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => params.push(Param {
                ident: pat.ident.clone(),
                ty: (*typed.ty).clone(),
                serde_attrs,
            }),
            other => errors.push(syn::Error::new_spanned(
                other,
                "task parameters must be plain names (`order_id: u64`): each becomes a named field of the serialized arguments",
            )),
        }
    }
    params
}

/// The arguments struct is generic over its field types (see `generate`), so
/// only the serde field attributes that do not name a concrete type work.
fn check_serde_attr(attr: &syn::Attribute, errors: &mut Errors) {
    const SUPPORTED: &str = "`rename = \"..\"`, `alias = \"..\"` and `default`";
    let result = attr.parse_nested_meta(|meta| {
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
    });
    if let Err(error) = result {
        errors.push(error);
    }
}

/// Rejects borrowed and `impl Trait` parameter types, spanned on the offending part.
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

fn generate(func: &ItemFn, name: &str, params: &[Param]) -> TokenStream {
    let ident = &func.sig.ident;
    let ident_str = ident.to_string();
    let vis = &func.vis;
    let fields: Vec<&Ident> = params.iter().map(|p| &p.ident).collect();
    let types: Vec<&Type> = params.iter().map(|p| &p.ty).collect();
    // The arguments struct is generic over its field types, so its serde
    // derive never fails by itself: a non-serializable argument is reported
    // once, by the check spanned on that argument.
    let generics: Vec<Ident> = (0..params.len())
        .map(|i| format_ident!("__AirlockT{}", i))
        .collect();
    let field_attrs = params.iter().map(|p| {
        let attrs = &p.serde_attrs;
        quote!(#(#attrs)*)
    });

    let arg_checks = types.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            const _: () = ::airlock::__private::assert_task_arg::<#ty>();
        }
    });
    let (ret_ty, ret_span) = match &func.sig.output {
        ReturnType::Default => (quote!(()), func.sig.ident.span()),
        ReturnType::Type(_, ty) => (quote!(#ty), ty.span()),
    };
    // Spanned on the return type (or its error type, when written as
    // `Result<T, E>`): the one place a bad return type is reported.
    let output_check = match &func.sig.output {
        ReturnType::Type(_, ty) if args::result_error_type(ty).is_some() => {
            let error = args::result_error_type(ty).expect("checked above");
            quote_spanned! {error.span()=>
                const _: () = ::airlock::__private::assert_task_error::<#error>();
            }
        }
        _ => quote_spanned! {ret_span=>
            const _: () = ::airlock::__private::assert_task_output::<#ret_ty>();
        },
    };
    let into_result = quote!((&::airlock::__private::Probe::<#ret_ty>::new()).task_result);

    let runner = if func.sig.asyncness.is_some() {
        quote! {
            fn __airlock_run(
                __airlock_args: ::airlock::__private::ErasedArgs,
            ) -> ::airlock::__private::BoxFuture<'static, ::core::result::Result<(), ::airlock::__private::BoxError>> {
                let __AirlockArgs { #(#fields),* } =
                    ::airlock::__private::downcast::<__AirlockArgsOf>(__airlock_args, #name);
                ::airlock::__private::boxed(async move { #into_result(#ident(#(#fields),*).await) })
            }
            ::airlock::__private::Runner::Async(__airlock_run)
        }
    } else {
        quote! {
            fn __airlock_run(
                __airlock_args: ::airlock::__private::ErasedArgs,
            ) -> ::core::result::Result<(), ::airlock::__private::BoxError> {
                let __AirlockArgs { #(#fields),* } =
                    ::airlock::__private::downcast::<__AirlockArgsOf>(__airlock_args, #name);
                #into_result(#ident(#(#fields),*))
            }
            ::airlock::__private::Runner::Sync(__airlock_run)
        }
    };

    let firsts = (0..fields.len()).map(|i| i == 0);
    let handle_doc = format!(
        "Task handle of [`{ident_str}()`], registered as `\"{name}\"`: \
         `{ident_str}::enqueue(..)`, `{ident_str}::intent(..)` and `{ident_str}::TASK`. \
         Generated by `#[airlock::task]`."
    );
    let enqueue_doc = format!(
        "Enqueues a call of `{ident_str}` into the current scope; it runs when the scope flushes.\n\n\
         # Errors\n`NoScope` outside a scope, `ScopeClosed` after it ended, or a policy's rejection."
    );
    let intent_doc = format!(
        "Starts an intent for `{ident_str}` with dispatch options; finish with `.enqueue()`."
    );
    let task_doc = format!("The registry entry of `{ident_str}`.");
    let line = quote_spanned!(ident.span()=> ::core::line!());

    quote! {
        // Clippy's pedantic `needless_pass_by_value` would ask for borrowed
        // parameters, which a task cannot take (they are buffered and may
        // cross a process boundary).
        #[allow(clippy::needless_pass_by_value)]
        #func

        #[doc = #handle_doc]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #ident {
            _private: (),
        }

        const _: () = {
            use ::airlock::__private::{
                IntoTaskResult as _, SerdeCodec as _, SerdeFmt as _, StubCodec as _, StubFmt as _,
                StubIntoTaskResult as _,
            };

            #(#arg_checks)*
            #output_check

            #[derive(::airlock::__private::serde::Serialize, ::airlock::__private::serde::Deserialize)]
            #[serde(crate = "::airlock::__private::serde")]
            #[doc(hidden)]
            #vis struct __AirlockArgs<#(#generics),*> {
                #( #field_attrs #vis #fields: #generics, )*
            }

            type __AirlockArgsOf = __AirlockArgs<#(#types),*>;

            fn __airlock_fmt(
                __airlock_args: &(dyn ::core::any::Any + ::core::marker::Send + ::core::marker::Sync),
                __airlock_f: &mut ::core::fmt::Formatter<'_>,
            ) -> ::core::fmt::Result {
                if let ::core::option::Option::Some(__airlock_args) =
                    ::airlock::__private::args_ref::<__AirlockArgsOf>(__airlock_args)
                {
                    #(
                        (&::airlock::__private::Probe::<#types>::new())
                            .fmt_arg(__airlock_f, #firsts, &__airlock_args.#fields)?;
                    )*
                }
                ::core::result::Result::Ok(())
            }

            fn __airlock_vtable() -> ::airlock::__private::ArgsVTable {
                let (encode, decode) = (&::airlock::__private::Probe::<__AirlockArgsOf>::new()).codec();
                ::airlock::__private::ArgsVTable { encode, decode, fmt: __airlock_fmt }
            }

            static __AIRLOCK_TASK: ::airlock::TaskDef = ::airlock::TaskDef::__new(
                #name,
                ::core::concat!(::core::module_path!(), "::", #ident_str),
                ::core::file!(),
                #line,
                { #runner },
                __airlock_vtable,
            );

            ::airlock::__private::inventory::submit! {
                ::airlock::__private::Registration(&__AIRLOCK_TASK)
            }

            impl ::airlock::Task for #ident {
                type Args = __AirlockArgsOf;
                fn def() -> &'static ::airlock::TaskDef {
                    &__AIRLOCK_TASK
                }
            }

            #[allow(dead_code)]
            impl #ident {
                #[doc = #task_doc]
                #vis const TASK: &'static ::airlock::TaskDef = &__AIRLOCK_TASK;

                #[doc = #enqueue_doc]
                #[track_caller]
                #vis fn enqueue(#(#fields: #types),*) -> ::airlock::Result<::airlock::IntentId> {
                    ::airlock::__private::enqueue::<#ident>(__AirlockArgs { #(#fields),* })
                }

                #[doc = #intent_doc]
                #[track_caller]
                #vis fn intent(#(#fields: #types),*) -> ::airlock::IntentBuilder<#ident> {
                    ::airlock::IntentBuilder::new(__AirlockArgs { #(#fields),* })
                }
            }
        };
    }
}
