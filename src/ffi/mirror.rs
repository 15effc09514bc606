//! How values cross between the C mirrors (`rateclust_*_params`, the C enums) and the engine's types.
//!
//! The conversions themselves are generated from the C declarations by `#[derive(CMirror)]` and
//! `#[derive(CEnum)]` (the `macros/` crate); this module holds the per-value rules they apply.

use super::CBool;
use crate::error::Result;

/// A C field's type and the engine field's type `E` it mirrors.
pub trait CValue<E>: Copy {
    fn from_engine(e: &E) -> Self;
    /// The engine's value, or an invalid-argument error naming the field (`name`) when C sent one that
    /// has no engine meaning (an unknown enum value).
    fn to_engine(self, name: &str) -> Result<E>;
}

/// Same type on both sides (sizes as `size_t`, `double`, `uint64_t`, …).
impl<T: Copy> CValue<T> for T {
    fn from_engine(e: &T) -> Self {
        *e
    }
    fn to_engine(self, _: &str) -> Result<T> {
        Ok(self)
    }
}

impl CValue<bool> for CBool {
    fn from_engine(e: &bool) -> Self {
        (*e).into()
    }
    fn to_engine(self, _: &str) -> Result<bool> {
        Ok(self.get())
    }
}

/// Counts C declares as `uint32_t` (saturating: engine defaults are small).
impl CValue<usize> for u32 {
    fn from_engine(e: &usize) -> Self {
        u32::try_from(*e).unwrap_or(u32::MAX)
    }
    fn to_engine(self, _: &str) -> Result<usize> {
        Ok(self as usize)
    }
}

/// An engine enum with a C mirror (`#[derive(CEnum)]` on the C enum): C passes its values as `uint32_t`,
/// and an unknown value is an error, never an invalid Rust enum.
pub trait CEnum: Sized + Copy {
    /// The C enum's name, for error messages.
    const C_NAME: &'static str;
    fn to_c(self) -> u32;
    fn from_c(raw: u32) -> Option<Self>;
}

impl<E: CEnum> CValue<E> for u32 {
    fn from_engine(e: &E) -> Self {
        e.to_c()
    }
    fn to_engine(self, name: &str) -> Result<E> {
        E::from_c(self).ok_or_else(|| crate::invalid_arg!("{name} = {self} is not a {}", E::C_NAME))
    }
}
