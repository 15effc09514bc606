//! Rate reduction (MCR² / MLC, DESIGN §1): coding rates R(Z) and R_c(Z, Π), the Sinkhorn membership Π,
//! the MLC loss and its gradients with respect to Z and C, on the CPU and on CUDA.
//!
//! Shapes: Z and C are m×d row-major (m samples, d features, rows L2-normalised by the caller); Π is m×m.

pub mod cuda;

/// Which gradient flows through the Sinkhorn iterations.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinkhornGradient {
    /// As the reference code: through u and the final exp, v detached at each column step (DESIGN §1).
    #[default]
    Reference = 0,
    /// The exact derivative of the unrolled iterations (nothing detached).
    Exact = 1,
}

/// Constants of the MLC objective; defaults are the reference's (ε² 0.1, γ 1, λ 0.05, η 0.175, 5 half-steps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateParams {
    /// ε², the allowed distortion.
    pub eps_sq: f64,
    /// γ, the weight of R_c.
    pub gamma: f64,
    /// λ, the weight of (λ/2)‖Π‖²_F.
    pub lambda: f64,
    /// η, the Sinkhorn entropic temperature (`pieta` in the reference).
    pub eta: f64,
    /// Sinkhorn half-iterations (row, col, row, …); the reference runs 5.
    pub sinkhorn_half_iters: usize,
    pub gradient: SinkhornGradient,
}

impl Default for RateParams {
    fn default() -> Self {
        RateParams { eps_sq: 0.1, gamma: 1.0, lambda: 0.05, eta: 0.175, sinkhorn_half_iters: 5, gradient: SinkhornGradient::Reference }
    }
}

/// Which loss to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// Warm-up: −R(Z) only (total coding rate). C is not used and gets no gradient.
    Tcr,
    /// −R(Z) + γ R_c(Z, Π(C)) + (λ/2)‖Π‖²_F.
    Mlc,
}

/// Loss value, its parts, and gradients (same shapes as Z and C).
#[derive(Debug, Clone)]
pub struct MlcOutput<T> {
    pub loss: T,
    /// R(Z).
    pub rate: T,
    /// R_c(Z, Π) (0 for `Objective::Tcr`).
    pub rate_c: T,
    /// (λ/2)‖Π‖²_F (0 for `Objective::Tcr`).
    pub pi_penalty: T,
    /// ∂loss/∂Z, m×d.
    pub grad_z: Vec<T>,
    /// ∂loss/∂C, m×d (empty for `Objective::Tcr`).
    pub grad_c: Vec<T>,
}
