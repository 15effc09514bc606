//! Dense linear algebra on the CPU: the one GEMM path every module uses (and its int8 variant for the CLIP
//! towers' linear layers, `qgemm`), and (added by the rate-reduction core) batched Cholesky / log-det /
//! solves and the symmetric eigensolver. Built on faer.
//!
//! Matrices cross module boundaries as row-major slices plus shapes; faer views are made locally.

pub mod cholesky;
pub mod eigh;
pub mod exp;
pub mod gemm;
pub mod qgemm;
pub mod rows;

pub use gemm::{gemm, Trans};

/// The floating-point types the numeric code is generic over: `f32` (speed) and `f64` (reference accuracy).
pub trait Real:
    faer::traits::RealField
    + Copy
    + Default
    + Send
    + Sync
    + std::fmt::Debug
    + std::fmt::Display
    + std::ops::Neg<Output = Self>
    + std::iter::Sum
    + PartialOrd
    + 'static
{
    const NAME: &'static str;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn from_usize(x: usize) -> Self {
        Self::from_f64(x as f64)
    }
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn max(self, o: Self) -> Self;
    fn min(self, o: Self) -> Self;
    fn is_finite(self) -> bool;
}

macro_rules! impl_real {
    ($t:ty, $name:literal) => {
        impl Real for $t {
            const NAME: &'static str = $name;
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn max(self, o: Self) -> Self {
                <$t>::max(self, o)
            }
            #[inline(always)]
            fn min(self, o: Self) -> Self {
                <$t>::min(self, o)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
        }
    };
}
impl_real!(f32, "f32");
impl_real!(f64, "f64");
