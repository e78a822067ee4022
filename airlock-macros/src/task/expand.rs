//! Expand stage of `#[airlock::task]`: the function as written, its handle,
//! and its registration: a static `TaskDef` with a runner that decodes the
//! arguments and calls the function, submitted to the registry.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ReturnType, Type};

use super::check::TaskFn;
use super::handle::{self, Methods};
use crate::return_type::result_error_type;

pub(crate) fn expand(task: &TaskFn<'_>) -> TokenStream {
    let function = task.function;
    let ident = function.ident();
    let ident_str = ident.to_string();
    let vis = &function.vis;
    let name = &task.name;
    let fields: Vec<&Ident> = task.params.iter().map(|p| p.ident).collect();
    let types: Vec<&Type> = task.params.iter().map(|p| p.ty).collect();
    // The arguments struct is generic over its field types, so its serde
    // derive never fails by itself: a non-serializable argument is reported
    // once, by the check spanned on that argument.
    let generics: Vec<Ident> = (0..fields.len())
        .map(|i| format_ident!("__AirlockT{}", i))
        .collect();
    let field_attrs = task.params.iter().map(|p| {
        let attrs = p.serde_attrs;
        quote!(#(#attrs)*)
    });
    let arg_checks = types.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            const _: () = ::airlock::__private::assert_task_arg::<#ty>();
        }
    });
    let output_check = output_check(task);
    let runner = runner(task);
    let firsts = (0..fields.len()).map(|i| i == 0);
    let line = quote_spanned!(ident.span()=> ::core::line!());

    let handle = handle::declare(function, name);
    let methods = handle::inherent_impl(
        function,
        Methods {
            generics: syn::Generics::default(),
            params: quote!(#(#fields: #types),*),
            enqueue_body: quote! {
                ::airlock::__private::enqueue::<#ident>(__AirlockArgs { #(#fields),* })
            },
            intent_body: quote! {
                ::airlock::__private::IntentBuilder::new(__AirlockArgs { #(#fields),* })
            },
        },
    );

    quote! {
        #function

        #handle

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

            static __AIRLOCK_TASK: ::airlock::__private::TaskDef = ::airlock::__private::task_def(
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

            impl ::airlock::__private::Task for #ident {
                type Args = __AirlockArgsOf;
                fn def() -> &'static ::airlock::__private::TaskDef {
                    &__AIRLOCK_TASK
                }
            }

            #methods
        };
    }
}

/// Spanned on the return type (or its `E`, when written as `Result<T, E>`):
/// the one place a bad return type is reported. The runner converts the
/// result through `Probe`, which picks a stub in that case.
fn output_check(task: &TaskFn<'_>) -> TokenStream {
    match &task.function.sig.output {
        ReturnType::Default => quote! {
            const _: () = ::airlock::__private::assert_task_output::<()>();
        },
        ReturnType::Type(_, ty) => match result_error_type(ty) {
            Some(error) => quote_spanned! {error.span()=>
                const _: () = ::airlock::__private::assert_task_error::<#error>();
            },
            None => quote_spanned! {ty.span()=>
                const _: () = ::airlock::__private::assert_task_output::<#ty>();
            },
        },
    }
}

/// The `Runner` calling the function with decoded arguments.
fn runner(task: &TaskFn<'_>) -> TokenStream {
    let sig = &task.function.sig;
    let ident = &sig.ident;
    let name = &task.name;
    let fields: Vec<&Ident> = task.params.iter().map(|p| p.ident).collect();
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let into_result = quote!((&::airlock::__private::Probe::<#output>::new()).task_result);
    let unpack = quote! {
        let __AirlockArgs { #(#fields),* } =
            ::airlock::__private::downcast::<__AirlockArgsOf>(__airlock_args, #name);
    };
    if sig.asyncness.is_some() {
        quote! {
            fn __airlock_run(
                __airlock_args: ::airlock::__private::ErasedArgs,
            ) -> ::airlock::__private::BoxFuture<'static, ::core::result::Result<(), ::airlock::__private::BoxError>> {
                #unpack
                ::airlock::__private::boxed(async move { #into_result(#ident(#(#fields),*).await) })
            }
            ::airlock::__private::Runner::Async(__airlock_run)
        }
    } else {
        quote! {
            fn __airlock_run(
                __airlock_args: ::airlock::__private::ErasedArgs,
            ) -> ::core::result::Result<(), ::airlock::__private::BoxError> {
                #unpack
                #into_result(#ident(#(#fields),*))
            }
            ::airlock::__private::Runner::Sync(__airlock_run)
        }
    }
}
