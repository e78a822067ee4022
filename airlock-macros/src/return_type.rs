//! Reading a declared return type, so checks can point at the part that matters.

use syn::{GenericArgument, PathArguments, Type};

/// The `E` of a return type written as `Result<T, E>` (any path ending in
/// `Result` with two type arguments). `None` for aliases like
/// `anyhow::Result<T>`, whose error type is not written out.
pub(crate) fn result_error_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    match (types.next(), types.next(), types.next()) {
        (Some(_), Some(error), None) => Some(error),
        _ => None,
    }
}
