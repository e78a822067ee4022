//! What `#[airlock::task]` emits when its check fails: the function as
//! written, next to the errors, and a stub of its handle.
//!
//! The stub keeps every use of the handle (`my_task::enqueue(..)`,
//! `my_task::intent(..)`, `my_task::TASK`, `my_task` as a `Task`) resolving and
//! type-checking, so the check's errors are the only ones reported, and IDEs
//! still complete the handle while the function is being fixed. Its methods
//! take the parameters as declared, whatever the check rejected in them; none
//! of it is registered, and none of it ever runs: the build fails.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{FnArg, Pat};

use super::handle::{self, Methods};
use super::parse::TaskInput;

pub(crate) fn stub(input: &TaskInput) -> TokenStream {
    let function = &input.function;
    let sig = &function.sig;
    // A method: the handle cannot be declared inside the `impl` it is in.
    if sig.receiver().is_some() {
        return quote!(#function);
    }
    let ident = function.ident();
    let ident_str = ident.to_string();
    let params = sig.inputs.iter().filter_map(|param| match param {
        FnArg::Typed(param) => {
            let ty = &param.ty;
            match &*param.pat {
                Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                    let name = &pat.ident;
                    Some(quote!(#name: #ty))
                }
                _ => Some(quote!(_: #ty)),
            }
        }
        FnArg::Receiver(_) => None,
    });
    let unreachable = quote! {
        ::core::unreachable!("#[airlock::task] reported an error, so this build fails")
    };
    let line = quote_spanned!(ident.span()=> ::core::line!());

    let handle = handle::declare(function, &ident_str);
    let methods = handle::inherent_impl(
        function,
        Methods {
            generics: sig.generics.clone(),
            params: quote!(#(#params),*),
            enqueue_body: unreachable.clone(),
            intent_body: unreachable.clone(),
        },
    );

    quote! {
        #function

        #handle

        #[allow(unused_variables)]
        const _: () = {
            fn __airlock_run(
                _: ::airlock::__private::ErasedArgs,
            ) -> ::core::result::Result<(), ::airlock::__private::BoxError> {
                #unreachable
            }

            fn __airlock_vtable() -> ::airlock::__private::ArgsVTable {
                #unreachable
            }

            static __AIRLOCK_TASK: ::airlock::__private::TaskDef = ::airlock::__private::task_def(
                #ident_str,
                ::core::concat!(::core::module_path!(), "::", #ident_str),
                ::core::file!(),
                #line,
                ::airlock::__private::Runner::Sync(__airlock_run),
                __airlock_vtable,
            );

            impl ::airlock::__private::Task for #ident {
                type Args = ();
                fn def() -> &'static ::airlock::__private::TaskDef {
                    &__AIRLOCK_TASK
                }
            }

            #methods
        };
    }
}
