//! Expand stage of `#[airlock::scoped]`: the same function, whose body now
//! builds a scope from the options and runs the original statements in it.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{AttrStyle, Type};

use super::check::ScopedFn;
use crate::function::Function;
use crate::return_type::result_error_type;

pub(crate) fn expand(scoped: &ScopedFn<'_>) -> TokenStream {
    let Function {
        attrs, vis, sig, ..
    } = scoped.function;
    let (inner_attrs, statements) = scoped.function.split_body();
    // The body moves into a closure or async block; its inner attributes
    // stay with the function.
    let inner_attrs = inner_attrs.into_iter().map(|mut attr| {
        attr.style = AttrStyle::Outer;
        attr
    });
    let braces = scoped.function.body_braces();
    let mut user_body = TokenStream::new();
    braces.surround(&mut user_body, |tokens| tokens.extend(statements));

    let output = scoped.output;
    let output_check = output_check(output);
    let scope = scope_builder(scoped);
    let run = if sig.asyncness.is_some() {
        run_async(output, &scope, &user_body)
    } else {
        run_sync(output, &scope, &user_body)
    };

    // The new body keeps the original braces' span: generated from the
    // user's tokens, the function still gets `dead_code` and other lints.
    let mut body = TokenStream::new();
    braces.surround(&mut body, |tokens| {
        tokens.extend(quote! {
            #output_check
            // Both, for `Probe` to pick the real run or, when the output type
            // does not qualify (already reported), the stub. Imported
            // anonymously, they add no name the user's statements could see.
            use ::airlock::__private::{RunScoped as _, StubRunScoped as _};
            #run
        });
    });
    quote! {
        #(#attrs)*
        #(#inner_attrs)*
        #vis #sig #body
    }
}

/// `airlock::Scope::new().name(..)`, then one builder call per option given.
fn scope_builder(scoped: &ScopedFn<'_>) -> TokenStream {
    let name = &scoped.name;
    let options = &scoped.options;
    let calls = [&options.policy, &options.executor, &options.behavior]
        .into_iter()
        .filter_map(|option| option.get())
        .map(|call| {
            let (method, value) = (&call.method, &call.value);
            quote!(.#method(#value))
        });
    quote!(::airlock::__private::Scope::new().name(#name) #(#calls)*)
}

/// Spanned on the return type (or its `E`, when written as `Result<T, E>`):
/// the one place a return type that cannot absorb a flush error is reported.
/// The run itself goes through `Probe`, which picks a stub in that case, so
/// the problem is not reported again there.
fn output_check(output: &Type) -> TokenStream {
    match result_error_type(output) {
        Some(error) => quote_spanned! {error.span()=>
            let _ = ::airlock::__private::assert_scope_error::<#error>;
        },
        None => quote_spanned! {output.span()=>
            let _ = ::airlock::__private::assert_scope_output::<#output>;
        },
    }
}

fn run_sync(output: &Type, scope: &TokenStream, user_body: &TokenStream) -> TokenStream {
    quote! {
        (&::airlock::__private::Probe::<#output>::new())
            .run_scoped(#scope, move || -> #output #user_body)
    }
}

fn run_async(output: &Type, scope: &TokenStream, user_body: &TokenStream) -> TokenStream {
    // An async block's output type is inferred from its body, not from the
    // bound it is passed to. The early `return` of a declared-type value,
    // checked before the user's statements, fixes it to the declared type, so
    // `?`, `return` and coercions in the body behave as in the original
    // `async fn`. It is never taken, yet not dead code to the compiler, so no
    // lint needs silencing.
    quote! {
        (&::airlock::__private::Probe::<#output>::new())
            .run_scoped_async(#scope, async move {
                if let ::core::option::Option::Some(__airlock_output) =
                    ::core::option::Option::<#output>::None
                {
                    return __airlock_output;
                }
                #user_body
            })
            .await
    }
}
