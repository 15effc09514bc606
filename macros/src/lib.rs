//! Derives for rateclust's C ABI (`src/ffi/mirror.rs` has the traits they implement).
//!
//! Why a derive: cbindgen writes the C header from the Rust declarations of the C structs and enums, so
//! those must stay written out in `src/ffi/`; the conversions to and from the engine's types are then
//! generated from that one declaration instead of being restated field by field (and drifting).
//!
//! - `#[derive(CMirror)] #[mirror(EngineType)]` on a C struct: `From<&EngineType>` for the C struct and
//!   `TryFrom<&CStruct>` for the engine type, field by field through `ffi::mirror::CValue` (identity,
//!   `CBool` ↔ `bool`, `u32` ↔ `usize`, `u32` ↔ an enum with a C mirror). Field attributes:
//!   `#[mirror(engine = "name")]` when the engine field is named differently, `#[mirror(c_only = "expr")]`
//!   for a C-only field (its value in `From`; it is not read back). Engine fields without a C field keep
//!   the engine type's `Default`.
//! - `#[derive(CEnum)] #[mirror(EngineEnum)]` on a C enum whose variants have the engine enum's variant
//!   names: `ffi::mirror::CEnum` for the engine enum (an exhaustive match both ways, so a variant added on
//!   one side only does not compile).

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{parse_macro_input, Data, DeriveInput, Expr, Fields, LitStr, Path};

/// The `#[mirror(Path)]` of the item.
fn engine_type(input: &DeriveInput) -> syn::Result<Path> {
    for attr in &input.attrs {
        if attr.path().is_ident("mirror") {
            return attr.parse_args::<Path>();
        }
    }
    Err(syn::Error::new_spanned(&input.ident, "missing #[mirror(EngineType)]"))
}

#[proc_macro_derive(CMirror, attributes(mirror))]
pub fn derive_c_mirror(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand_c_mirror(&input).unwrap_or_else(|e| e.to_compile_error()).into()
}

fn expand_c_mirror(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let c = &input.ident;
    let engine = engine_type(input)?;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(c, "CMirror is for C structs"));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(c, "CMirror needs named fields"));
    };
    let (mut to_c, mut to_engine) = (Vec::new(), Vec::new());
    for field in &fields.named {
        let name = field.ident.as_ref().expect("named field");
        let (mut engine_name, mut c_only) = (name.clone(), None::<Expr>);
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("mirror")) {
            attr.parse_nested_meta(|meta| {
                let value: LitStr = meta.value()?.parse()?;
                if meta.path.is_ident("engine") {
                    engine_name = format_ident!("{}", value.value());
                } else if meta.path.is_ident("c_only") {
                    c_only = Some(value.parse()?);
                } else {
                    return Err(meta.error("expected `engine = \"...\"` or `c_only = \"...\"`"));
                }
                Ok(())
            })?;
        }
        match c_only {
            Some(expr) => to_c.push(quote! { #name: #expr }),
            None => {
                let label = format!("params.{name}");
                to_c.push(quote! { #name: crate::ffi::mirror::CValue::from_engine(&e.#engine_name) });
                to_engine.push(quote! { out.#engine_name = crate::ffi::mirror::CValue::to_engine(c.#name, #label)?; });
            }
        }
    }
    Ok(quote! {
        impl ::core::convert::From<&#engine> for #c {
            fn from(e: &#engine) -> Self {
                #c { #(#to_c),* }
            }
        }
        impl ::core::convert::TryFrom<&#c> for #engine {
            type Error = crate::Error;
            fn try_from(c: &#c) -> crate::Result<Self> {
                let mut out = <#engine as ::core::default::Default>::default();
                #(#to_engine)*
                Ok(out)
            }
        }
    })
}

#[proc_macro_derive(CEnum, attributes(mirror))]
pub fn derive_c_enum(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand_c_enum(&input).unwrap_or_else(|e| e.to_compile_error()).into()
}

fn expand_c_enum(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let c = &input.ident;
    let engine = engine_type(input)?;
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new_spanned(c, "CEnum is for C enums"));
    };
    let variants: Vec<_> = data.variants.iter().map(|v| &v.ident).collect();
    let c_name = c.to_string();
    Ok(quote! {
        impl crate::ffi::mirror::CEnum for #engine {
            const C_NAME: &'static str = #c_name;
            fn to_c(self) -> u32 {
                match self { #(#engine::#variants => #c::#variants as u32),* }
            }
            fn from_c(raw: u32) -> ::core::option::Option<Self> {
                #( if raw == #c::#variants as u32 { return Some(#engine::#variants); } )*
                None
            }
        }
        impl ::core::convert::From<#engine> for #c {
            fn from(e: #engine) -> Self {
                match e { #(#engine::#variants => #c::#variants),* }
            }
        }
    })
}
