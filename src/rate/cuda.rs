//! CUDA implementation of the rate-reduction core (DESIGN §1), f32, kernels in `kernels/rate_linalg.cu`
//! and `kernels/sinkhorn.cu`. Inputs go to the device once; only the loss parts and the gradients come back.
//!
//! # How the m log-dets of R_c are organised
//! With `Zpack[i, q(a,b)] = z_ia z_ib` (the lower triangle of every outer product, `p = d(d+1)/2` columns)
//! every quantity that costs m²d² is one plain cuBLAS GEMM over packed symmetric matrices:
//! - Gram matrices: `G_j = Σ_i Π_ij z_i z_iᵀ`, i.e. `Gpack = Πᵀ · Zpack` (J × p for a chunk of J columns);
//! - quadratic forms: `Q_ij = z_iᵀ A_j⁻¹ z_i = Σ_q Zpack[i,q] Wpack[j,q]`, i.e. `Q = Zpack · Wpackᵀ`, where
//!   `Wpack` holds `A_j⁻¹` packed with off-diagonal entries doubled;
//! - the Z-gradient: `∂R_c/∂z_i ∝ (Σ_j Π_ij A_j⁻¹) z_i`, i.e. `Bpack = Π · Wpack`, then one packed
//!   symmetric mat-vec per sample.
//! Symmetry halves the flops of each GEMM compared with forming the d×d products directly. Between them,
//! `A_j = I + α_j G_j` is factored in batches: one kernel per matrix in shared memory for d ≤ 128
//! (Cholesky, log-det, L⁻¹), and a blocked right-looking Cholesky for larger d whose diagonal tiles use the
//! same kernel and whose panel/trailing updates are cuBLAS GEMMs. `A⁻¹ = L⁻ᵀ L⁻¹` is a batched GEMM.
//! Columns j are processed in chunks sized to a memory budget, so d = 1024 and m = 4096 fit.
//!
//! # Gradients (all f32 on the device; formulas checked against the CPU reference by `tests/rate_cuda.rs`)
//! With α_j = d/(t_j ε²), t_j = Σ_i Π_ij + 1e-8, c = d/(m ε²):
//! - `∂loss/∂z_i = c (γ Σ_j Π_ij A_j⁻¹ − A_0⁻¹) z_i`, A_0 = I + c ZᵀZ (the R(Z) term);
//! - `∂loss/∂Π_ij = γ [(logdet A_j − d + tr A_j⁻¹)/(2m) + d/(2mε²) Q_ij] + λ Π_ij`;
//! - Sinkhorn, reference semantics (v detached at every column step, so the old u cancels from each row
//!   update and only the last row step u* = η log μ − η LSE_j((K_ij + v'_j)/η) and the final exp carry
//!   gradient): with H = ∂loss/∂Π ⊙ Π and S the row softmax of (K + v')/η,
//!   `∂loss/∂K_ij = (H_ij − (Σ_l H_il) S_ij)/η`;
//! - K = |C Cᵀ|: `E = ∂loss/∂K ⊙ sign(C Cᵀ)`, `∂loss/∂C = (E + Eᵀ) C`.

use super::{MlcOutput, Objective, RateParams, SinkhornGradient};
use crate::device::cuda::{CudaDevice, GpuBuf, KArg};
use crate::error::{check_finite, Error, Result};
use cudarc::driver::CudaFunction;

const LINALG: &str = "rate_linalg";
const SINKHORN: &str = "sinkhorn";
/// Largest matrix the single-block shared-memory Cholesky kernel takes (CHOL_MAX_N in the kernel).
const SMALL_MAX: usize = 128;
/// Tile size of the blocked Cholesky for d > SMALL_MAX.
const TILE: usize = 64;
/// Device memory the per-chunk workspaces may take (the chunk size J follows from it).
const CHUNK_BUDGET_BYTES: usize = 1536 << 20;
const THREADS: u32 = 256;

/// The kernels this module launches, loaded once per call (module compilation is cached per device).
struct Kernels {
    outer_pack: CudaFunction,
    sym_unpack: CudaFunction,
    sym_pack_weighted: CudaFunction,
    batched_trace: CudaFunction,
    packed_symv: CudaFunction,
    chol_inv_small: CudaFunction,
    half_step: CudaFunction,
    plan: CudaFunction,
    backward_ref: CudaFunction,
    colterm: CudaFunction,
    alpha: CudaFunction,
}

impl Kernels {
    fn load(dev: &CudaDevice) -> Result<Self> {
        Ok(Kernels {
            outer_pack: dev.function(LINALG, "outer_pack")?,
            sym_unpack: dev.function(LINALG, "sym_unpack")?,
            sym_pack_weighted: dev.function(LINALG, "sym_pack_weighted")?,
            batched_trace: dev.function(LINALG, "batched_trace")?,
            packed_symv: dev.function(LINALG, "packed_symv")?,
            chol_inv_small: dev.function(LINALG, "chol_inv_small")?,
            half_step: dev.function(SINKHORN, "sinkhorn_half_step")?,
            plan: dev.function(SINKHORN, "sinkhorn_plan")?,
            backward_ref: dev.function(SINKHORN, "sinkhorn_backward_ref")?,
            colterm: dev.function(SINKHORN, "rate_colterm")?,
            alpha: dev.function(SINKHORN, "rate_alpha")?,
        })
    }
}

fn i32_of(x: usize, what: &str) -> Result<i32> {
    i32::try_from(x).map_err(|_| Error::InvalidArgument(format!("{what} = {x} is too large for the CUDA kernels")))
}

fn u32_of(x: usize, what: &str) -> Result<u32> {
    u32::try_from(x).map_err(|_| Error::InvalidArgument(format!("{what} = {x} is too large for a CUDA grid")))
}

fn blocks(n: usize, what: &str) -> Result<u32> {
    u32_of(n.div_ceil(THREADS as usize), what)
}

fn packed_len(d: usize) -> usize {
    d * (d + 1) / 2
}

fn validate(z: &[f32], c: Option<&[f32]>, m: usize, d: usize, params: &RateParams) -> Result<()> {
    if m == 0 || d == 0 {
        return Err(Error::InvalidArgument(format!("Z must be non-empty (got m = {m}, d = {d})")));
    }
    let want = m.checked_mul(d).ok_or_else(|| Error::InvalidArgument(format!("m×d = {m}×{d} overflows")))?;
    if z.len() != want {
        return Err(Error::InvalidArgument(format!("Z has {} values, expected m×d = {m}×{d} = {want}", z.len())));
    }
    check_finite("Z", z)?;
    if let Some(c) = c {
        if c.len() != want {
            return Err(Error::InvalidArgument(format!("C has {} values, expected m×d = {m}×{d} = {want}", c.len())));
        }
        check_finite("C", c)?;
    }
    i32_of(m * m.max(d), "m·max(m, d)")?;
    let ok = |x: f64| x.is_finite() && x > 0.0;
    if !ok(params.eps_sq) {
        return Err(Error::InvalidArgument(format!("eps_sq must be finite and > 0 (got {})", params.eps_sq)));
    }
    if !ok(params.eta) {
        return Err(Error::InvalidArgument(format!("eta must be finite and > 0 (got {})", params.eta)));
    }
    if !params.gamma.is_finite() || !params.lambda.is_finite() {
        return Err(Error::InvalidArgument(format!("gamma ({}) and lambda ({}) must be finite", params.gamma, params.lambda)));
    }
    if params.sinkhorn_half_iters == 0 {
        return Err(Error::InvalidArgument("sinkhorn_half_iters must be at least 1 (one row step)".into()));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Batched log-det / inverse of SPD matrices
// ------------------------------------------------------------------------------------------------

/// Where the matrices to factor come from.
enum SpdInput {
    /// `A_j = I + alpha[j] · G_j`, G packed (J × p) at `gpack`, alpha at `alpha` (J values).
    PackedGram { gpack: u64, alpha: u64 },
    /// Full row-major d×d matrices (J × d × d) at the address, taken as they are (not modified).
    Full(u64),
}

/// Workspaces for factoring up to `cap` matrices of order d at a time.
struct SpdWork {
    d: usize,
    cap: usize,
    /// Full matrices being factored (blocked path; also receives A⁻¹ there).
    afull: Option<GpuBuf<f32>>,
    /// L (blocked path only).
    l: Option<GpuBuf<f32>>,
    /// L⁻¹, full with zeros above the diagonal.
    x: GpuBuf<f32>,
    /// A⁻¹ (small path; the blocked path uses `afull`).
    ainv: Option<GpuBuf<f32>>,
    /// Row-block products of the blocked inverse (TILE × d per matrix).
    strip: Option<GpuBuf<f32>>,
}

impl SpdWork {
    fn bytes_per_matrix(d: usize) -> usize {
        let dd = d * d;
        4 * if d <= SMALL_MAX { 2 * dd } else { 3 * dd + TILE * d }
    }

    fn new(dev: &CudaDevice, d: usize, cap: usize, want_inverse: bool) -> Result<Self> {
        let dd = d * d;
        let small = d <= SMALL_MAX;
        // Uninitialised where a kernel/GEMM writes every element first; zeroed where the blocked algorithm
        // relies on the blocks above the diagonal staying zero (L and X are never written there).
        let x = match (small, want_inverse) {
            (true, true) => dev.uninit(cap * dd, "triangular inverse L⁻¹")?,
            (true, false) => dev.uninit(1, "unused L⁻¹")?,
            (false, _) => dev.zeros(cap * dd, "triangular inverse L⁻¹")?,
        };
        Ok(SpdWork {
            d,
            cap,
            afull: if small { None } else { Some(dev.uninit(cap * dd, "Cholesky workspace A")?) },
            l: if small { None } else { Some(dev.zeros(cap * dd, "Cholesky factor L")?) },
            x,
            ainv: if small && want_inverse { Some(dev.uninit(cap * dd, "inverse A⁻¹")?) } else { None },
            strip: if small { None } else { Some(dev.uninit(cap * TILE * d, "blocked-inverse strip")?) },
        })
    }

    /// Address of the J inverses after [`spd_factor`] with `inverse = true`.
    fn inverse_ptr(&self) -> u64 {
        match (&self.ainv, &self.afull) {
            (Some(a), _) => a.ptr(),
            (None, Some(a)) => a.ptr(),
            (None, None) => self.x.ptr(),
        }
    }
}

/// Factors J = `count` SPD matrices: `logdet[0..J]` gets their log-determinants, `not_pd[j]` is set to 1
/// for a matrix whose Cholesky hit a non-positive pivot, and with `inverse` the full inverses are left at
/// `work.inverse_ptr()` (J × d × d).
fn spd_factor(
    dev: &CudaDevice,
    k: &Kernels,
    input: &SpdInput,
    count: usize,
    work: &SpdWork,
    logdet: u64,
    not_pd: u64,
    inverse: bool,
) -> Result<()> {
    let d = work.d;
    let dd = d * d;
    debug_assert!(count <= work.cap);
    let grid = (u32_of(count, "batch")?, 1, 1);
    let di = i32_of(d, "d")?;
    if d <= SMALL_MAX {
        let (a, a_stride, lda, packed, alpha, add_id) = match *input {
            SpdInput::PackedGram { gpack, alpha } => (gpack, packed_len(d) as i64, 0, 1, alpha, 1),
            SpdInput::Full(a) => (a, dd as i64, di, 0, 0, 0),
        };
        let xout = if inverse { work.x.ptr() } else { 0 };
        dev.launch(
            &k.chol_inv_small,
            "chol_inv_small",
            grid,
            THREADS,
            0,
            &[
                KArg::Ptr(a),
                KArg::I64(a_stride),
                KArg::I32(lda),
                KArg::I32(packed),
                KArg::Ptr(alpha),
                KArg::I32(add_id),
                KArg::Ptr(0),
                KArg::I64(0),
                KArg::I32(0),
                KArg::Ptr(xout),
                KArg::I64(dd as i64),
                KArg::I32(di),
                KArg::Ptr(logdet),
                KArg::I32(0),
                KArg::Ptr(not_pd),
                KArg::I32(di),
            ],
        )?;
        if inverse {
            let ainv = work.ainv.as_ref().ok_or_else(|| Error::Internal("inverse workspace missing".into()))?;
            // A⁻¹ = L⁻ᵀ L⁻¹ = Xᵀ X
            dev.sgemm_rm(true, false, d, d, d, 1.0, (work.x.ptr(), d, dd), (work.x.ptr(), d, dd), 0.0, (ainv.ptr(), d, dd), count)?;
        }
        return Ok(());
    }

    // Blocked right-looking Cholesky on full matrices.
    let (afull, l, strip) = match (&work.afull, &work.l, &work.strip) {
        (Some(a), Some(l), Some(s)) => (a, l, s),
        _ => return Err(Error::Internal("blocked Cholesky workspace missing".into())),
    };
    match *input {
        SpdInput::PackedGram { gpack, alpha } => dev.launch(
            &k.sym_unpack,
            "sym_unpack",
            (blocks(dd, "d²")?, u32_of(count, "batch")?, 1),
            THREADS,
            0,
            &[KArg::Ptr(gpack), KArg::Ptr(alpha), KArg::I32(1), KArg::I32(di), afull.arg()],
        )?,
        SpdInput::Full(a) => dev.copy_dtod::<f32>(afull.ptr(), a, count * dd, "matrices to factor")?,
    }
    let (a0, l0, x0) = (afull.ptr(), l.ptr(), work.x.ptr());
    let f = 4u64; // bytes per f32
    let at = |base: u64, r: usize, c: usize| base + f * (r * d + c) as u64;
    let tiles = d.div_ceil(TILE);
    for t in 0..tiles {
        let k0 = t * TILE;
        let nb = TILE.min(d - k0);
        // Diagonal tile: L_kk, L_kk⁻¹ (into X's diagonal tile), log-det contribution.
        dev.launch(
            &k.chol_inv_small,
            "chol_inv_small (tile)",
            grid,
            THREADS,
            0,
            &[
                KArg::Ptr(at(a0, k0, k0)),
                KArg::I64(dd as i64),
                KArg::I32(di),
                KArg::I32(0),
                KArg::Ptr(0),
                KArg::I32(0),
                KArg::Ptr(at(l0, k0, k0)),
                KArg::I64(dd as i64),
                KArg::I32(di),
                KArg::Ptr(at(x0, k0, k0)),
                KArg::I64(dd as i64),
                KArg::I32(di),
                KArg::Ptr(logdet),
                KArg::I32(i32::from(t > 0)),
                KArg::Ptr(not_pd),
                KArg::I32(i32_of(nb, "tile")?),
            ],
        )?;
        let rem = d - k0 - nb;
        if rem > 0 {
            // Panel: L21 = A21 L_kk⁻ᵀ  (rem × nb)
            dev.sgemm_rm(false, true, rem, nb, nb, 1.0, (at(a0, k0 + nb, k0), d, dd), (at(x0, k0, k0), d, dd), 0.0, (at(l0, k0 + nb, k0), d, dd), count)?;
            // Trailing update of the whole (symmetric) square: A22 -= L21 L21ᵀ
            let l21 = (at(l0, k0 + nb, k0), d, dd);
            dev.sgemm_rm(false, true, rem, rem, nb, -1.0, l21, l21, 1.0, (at(a0, k0 + nb, k0 + nb), d, dd), count)?;
        }
    }
    if !inverse {
        return Ok(());
    }
    // Off-diagonal blocks of X = L⁻¹, one row block at a time: X_I,<I = −X_II (L_I,<I X_<I,<I).
    // X is zero above its diagonal tiles, so the products over the full leading block are exact.
    let sp = strip.ptr();
    for t in 1..tiles {
        let i0 = t * TILE;
        let ni = TILE.min(d - i0);
        dev.sgemm_rm(false, false, ni, i0, i0, 1.0, (at(l0, i0, 0), d, dd), (x0, d, dd), 0.0, (sp, d, TILE * d), count)?;
        dev.sgemm_rm(false, false, ni, i0, ni, -1.0, (at(x0, i0, i0), d, dd), (sp, d, TILE * d), 0.0, (at(x0, i0, 0), d, dd), count)?;
    }
    // A⁻¹ = Xᵀ X, into the (consumed) matrix workspace.
    dev.sgemm_rm(true, false, d, d, d, 1.0, (x0, d, dd), (x0, d, dd), 0.0, (a0, d, dd), count)
}

// ------------------------------------------------------------------------------------------------
// The coding-rate terms
// ------------------------------------------------------------------------------------------------

/// Buffers shared by all chunks of one loss evaluation.
struct RateBufs {
    m: usize,
    d: usize,
    zpack: GpuBuf<f32>,
    /// Σ_j coef_ij A_j⁻¹ per sample, packed weighted (m × p).
    bpack: GpuBuf<f32>,
    gpack: GpuBuf<f32>,
    wpack: GpuBuf<f32>,
    work: SpdWork,
}

impl RateBufs {
    fn new(dev: &CudaDevice, k: &Kernels, z: &GpuBuf<f32>, m: usize, d: usize, max_cols: usize) -> Result<Self> {
        let p = packed_len(d);
        let per = SpdWork::bytes_per_matrix(d) + 2 * 4 * p;
        let cap = (CHUNK_BUDGET_BYTES / per).clamp(1, max_cols);
        let zpack = dev.uninit::<f32>(m * p, "packed outer products of Z")?;
        dev.launch(&k.outer_pack, "outer_pack", (u32_of(m, "m")?, 1, 1), THREADS, u32_of(4 * d, "d")?, &[z.arg(), KArg::I32(i32_of(d, "d")?), zpack.arg()])?;
        Ok(RateBufs {
            m,
            d,
            zpack,
            // The first chunk (the R(Z) term) writes Bpack with β = 0.
            bpack: dev.uninit(m * p, "packed gradient matrices")?,
            gpack: dev.uninit(cap * p, "packed Gram matrices")?,
            wpack: dev.uninit(cap * p, "packed inverses")?,
            work: SpdWork::new(dev, d, cap, true)?,
        })
    }

    /// One chunk of J columns of a coefficient matrix `coef` (m × J, row-major with leading dimension
    /// `ld`, starting at the chunk's first column): for A_j = I + α_j Σ_i coef_ij z_i z_iᵀ writes
    /// logdet_j and tr A_j⁻¹, optionally Q[:, chunk] (at `q`, leading dimension `ldq`), and accumulates
    /// `bpack = out_alpha · coef · Wpack + out_beta · bpack`.
    #[allow(clippy::too_many_arguments)]
    fn chunk(
        &self,
        dev: &CudaDevice,
        k: &Kernels,
        coef: (u64, usize),
        cols: usize,
        alpha: u64,
        logdet: u64,
        trinv: u64,
        not_pd: u64,
        q: Option<(u64, usize)>,
        out_alpha: f32,
        out_beta: f32,
    ) -> Result<()> {
        let (m, d, p) = (self.m, self.d, packed_len(self.d));
        // Gram matrices, packed: Gpack = coefᵀ Zpack   (cols × p)
        dev.sgemm_rm(true, false, cols, p, m, 1.0, (coef.0, coef.1, 0), (self.zpack.ptr(), p, 0), 0.0, (self.gpack.ptr(), p, 0), 1)?;
        spd_factor(dev, k, &SpdInput::PackedGram { gpack: self.gpack.ptr(), alpha }, cols, &self.work, logdet, not_pd, true)?;
        let inv = self.work.inverse_ptr();
        let di = i32_of(d, "d")?;
        dev.launch(&k.sym_pack_weighted, "sym_pack_weighted", (blocks(p, "p")?, u32_of(cols, "chunk")?, 1), THREADS, 0, &[KArg::Ptr(inv), KArg::I32(di), self.wpack.arg()])?;
        dev.launch(&k.batched_trace, "batched_trace", (u32_of(cols, "chunk")?, 1, 1), THREADS, 0, &[KArg::Ptr(inv), KArg::I32(di), KArg::Ptr(trinv)])?;
        if let Some((qp, ldq)) = q {
            // Q[:, chunk] = Zpack Wpackᵀ   (m × cols)
            dev.sgemm_rm(false, true, m, cols, p, 1.0, (self.zpack.ptr(), p, 0), (self.wpack.ptr(), p, 0), 0.0, (qp, ldq, 0), 1)?;
        }
        // Bpack = out_alpha · coef Wpack + out_beta · Bpack   (m × p)
        dev.sgemm_rm(false, false, m, p, cols, out_alpha, (coef.0, coef.1, 0), (self.wpack.ptr(), p, 0), out_beta, (self.bpack.ptr(), p, 0), 1)
    }
}

fn check_pd(dev: &CudaDevice, not_pd: &GpuBuf<i32>, what: &str) -> Result<()> {
    let flags = dev.download(not_pd, "positive-definiteness flags")?;
    if let Some(j) = flags.iter().position(|&f| f != 0) {
        let n = flags.iter().filter(|&&f| f != 0).count();
        return Err(Error::Numerical(format!(
            "{what}: {n} matrix(es) not positive definite in f32 Cholesky (first: index {j}); are Z's rows normalised and finite?"
        )));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Sinkhorn
// ------------------------------------------------------------------------------------------------

/// Π and what its backward pass needs, all on the device.
pub struct SinkhornPlan {
    /// A = C Cᵀ, signed (K = |A|), m × m.
    pub a: GpuBuf<f32>,
    /// Π = m · plan, m × m row-major, rows sum to 1.
    pub pi: GpuBuf<f32>,
    /// Per-row Σ_j Π_ij².
    pub row_sumsq: GpuBuf<f32>,
    /// The final u (from the last row step).
    pub u: GpuBuf<f32>,
    v: [GpuBuf<f32>; 2],
    /// Index into `v` of the v the last row step used (the final v may be the other one).
    v_prev: usize,
}

impl SinkhornPlan {
    fn v_prev(&self) -> &GpuBuf<f32> {
        &self.v[self.v_prev]
    }
}

/// Π = m · Sinkhorn_η(|C Cᵀ|) for C (m × d, on the device), the reference's 5 (or `sinkhorn_half_iters`)
/// half-steps. Nothing is copied to the host.
pub fn sinkhorn_device(dev: &CudaDevice, c: &GpuBuf<f32>, m: usize, d: usize, params: &RateParams) -> Result<SinkhornPlan> {
    let k = Kernels::load(dev)?;
    sinkhorn_with(dev, &k, c, m, d, params)
}

fn sinkhorn_with(dev: &CudaDevice, k: &Kernels, c: &GpuBuf<f32>, m: usize, d: usize, params: &RateParams) -> Result<SinkhornPlan> {
    let mm = m * m;
    let a = dev.uninit::<f32>(mm, "C Cᵀ")?;
    dev.sgemm_rm(false, true, m, m, d, 1.0, (c.ptr(), d, 0), (c.ptr(), d, 0), 0.0, (a.ptr(), m, 0), 1)?;
    let u = dev.zeros::<f32>(m, "Sinkhorn u")?;
    let v = [dev.zeros::<f32>(m, "Sinkhorn v")?, dev.zeros::<f32>(m, "Sinkhorn v")?];
    let (mut cur, mut v_prev) = (0usize, 0usize);
    let eta = params.eta as f32;
    let log_marginal = -(m as f32).ln();
    let mi = i32_of(m, "m")?;
    let grid = (u32_of(m, "m")?, 1, 1);
    for t in 0..params.sinkhorn_half_iters {
        if t % 2 == 0 {
            // Row step: u from the current v.
            v_prev = cur;
            let args = [a.arg(), KArg::I32(mi), v[cur].arg(), KArg::F32(eta), KArg::F32(log_marginal), u.arg()];
            dev.launch(&k.half_step, "sinkhorn_half_step (rows)", grid, THREADS, 0, &args)?;
        } else {
            // Column step (K symmetric: a row pass with u as the weights), into the other v buffer so that
            // the v used by the last row step stays available for the backward pass.
            let next = 1 - cur;
            let args = [a.arg(), KArg::I32(mi), u.arg(), KArg::F32(eta), KArg::F32(log_marginal), v[next].arg()];
            dev.launch(&k.half_step, "sinkhorn_half_step (columns)", grid, THREADS, 0, &args)?;
            cur = next;
        }
    }
    let pi = dev.uninit::<f32>(mm, "Π")?;
    let row_sumsq = dev.zeros::<f32>(m, "row sums of Π²")?;
    let args = [a.arg(), KArg::I32(mi), u.arg(), v[cur].arg(), KArg::F32(eta), KArg::F32(m as f32), pi.arg(), row_sumsq.arg()];
    dev.launch(&k.plan, "sinkhorn_plan", grid, THREADS, 0, &args)?;
    Ok(SinkhornPlan { a, pi, row_sumsq, u, v, v_prev })
}

/// Π = m · Sinkhorn_η(|C Cᵀ|) (m×m, row-major) on `dev`.
pub fn membership_cuda(dev: &CudaDevice, c: &[f32], m: usize, d: usize, params: &RateParams) -> Result<Vec<f32>> {
    validate(c, None, m, d, params)?;
    let cb = dev.upload(c, "C")?;
    let plan = sinkhorn_device(dev, &cb, m, d, params)?;
    let pi = dev.download(&plan.pi, "Π")?;
    check_finite("Π (CUDA Sinkhorn)", &pi).map_err(|e| Error::Numerical(format!("{e}; is η too small for f32?")))?;
    Ok(pi)
}

// ------------------------------------------------------------------------------------------------
// Batched log-det entry point (benchmarks, and callers with their own SPD matrices on the device)
// ------------------------------------------------------------------------------------------------

/// Batched log-determinants (and optionally inverses) of SPD matrices already on the device, with its
/// workspace allocated once: [`SpdSolver::factor`] only queues work, so it can be timed in a loop.
pub struct SpdSolver {
    kernels: Kernels,
    work: SpdWork,
    batch: usize,
    inverse: bool,
    logdet: GpuBuf<f32>,
    not_pd: GpuBuf<i32>,
}

impl SpdSolver {
    /// For `batch` matrices of order `d`; `inverse` also forms A⁻¹.
    pub fn new(dev: &CudaDevice, batch: usize, d: usize, inverse: bool) -> Result<Self> {
        if batch == 0 || d == 0 {
            return Err(Error::InvalidArgument(format!("SPD batch needs batch > 0 and d > 0 (got {batch}, {d})")));
        }
        Ok(SpdSolver {
            kernels: Kernels::load(dev)?,
            work: SpdWork::new(dev, d, batch, inverse)?,
            batch,
            inverse,
            logdet: dev.zeros(batch, "log-determinants")?,
            not_pd: dev.zeros(batch, "positive-definiteness flags")?,
        })
    }

    /// Queues the factorisation of `a` (batch × d × d, full row-major, not modified).
    pub fn factor(&self, dev: &CudaDevice, a: &GpuBuf<f32>) -> Result<()> {
        let d = self.work.d;
        if a.len() != self.batch * d * d {
            return Err(Error::InvalidArgument(format!("SPD batch: {} values for {} matrices of order {d}", a.len(), self.batch)));
        }
        spd_factor(dev, &self.kernels, &SpdInput::Full(a.ptr()), self.batch, &self.work, self.logdet.ptr(), self.not_pd.ptr(), self.inverse)
    }

    /// The log-determinants of the last [`SpdSolver::factor`]; an error if a matrix was not SPD.
    pub fn logdet(&self, dev: &CudaDevice) -> Result<Vec<f32>> {
        check_pd(dev, &self.not_pd, "batched log-det")?;
        dev.download(&self.logdet, "log-determinants")
    }

    /// The inverses (batch × d × d) of the last factorisation (requires `inverse`).
    pub fn inverses(&self, dev: &CudaDevice) -> Result<Vec<f32>> {
        if !self.inverse {
            return Err(Error::InvalidArgument("this SpdSolver was created without inverses".into()));
        }
        let n = self.batch * self.work.d * self.work.d;
        let out = dev.uninit::<f32>(n, "inverses")?;
        dev.copy_dtod::<f32>(out.ptr(), self.work.inverse_ptr(), n, "inverses")?;
        dev.download(&out, "inverses")
    }
}

// ------------------------------------------------------------------------------------------------
// The MLC / TCR loss
// ------------------------------------------------------------------------------------------------

/// MLC / TCR loss and gradients for f32 Z, C (m×d, row-major host buffers) on `dev`.
pub fn mlc_loss_cuda(
    dev: &CudaDevice,
    z: &[f32],
    c: &[f32],
    m: usize,
    d: usize,
    params: &RateParams,
    objective: Objective,
) -> Result<MlcOutput<f32>> {
    let mlc = objective == Objective::Mlc;
    validate(z, if mlc { Some(c) } else { None }, m, d, params)?;
    if mlc && params.gradient != SinkhornGradient::Reference {
        return Err(Error::InvalidArgument(
            "the CUDA path implements the reference Sinkhorn gradient only; use SinkhornGradient::Reference or the CPU device".into(),
        ));
    }
    let zb = dev.upload(z, "Z")?;
    let cb = if mlc { Some(dev.upload(c, "C")?) } else { None };
    let dev_out = mlc_loss_device(dev, &zb, cb.as_ref(), m, d, params)?;
    dev_out.into_host(dev)
}

/// Results of [`mlc_loss_device`], still on the device except the scalars.
pub struct MlcDeviceOutput {
    pub loss: f64,
    pub rate: f64,
    pub rate_c: f64,
    pub pi_penalty: f64,
    pub grad_z: GpuBuf<f32>,
    pub grad_c: Option<GpuBuf<f32>>,
}

impl MlcDeviceOutput {
    fn into_host(self, dev: &CudaDevice) -> Result<MlcOutput<f32>> {
        let grad_z = dev.download(&self.grad_z, "∂loss/∂Z")?;
        let grad_c = match &self.grad_c {
            Some(g) => dev.download(g, "∂loss/∂C")?,
            None => Vec::new(),
        };
        check_finite("∂loss/∂Z (CUDA)", &grad_z).map_err(|e| Error::Numerical(e.to_string()))?;
        check_finite("∂loss/∂C (CUDA)", &grad_c).map_err(|e| Error::Numerical(e.to_string()))?;
        Ok(MlcOutput {
            loss: self.loss as f32,
            rate: self.rate as f32,
            rate_c: self.rate_c as f32,
            pi_penalty: self.pi_penalty as f32,
            grad_z,
            grad_c,
        })
    }
}

/// The loss on device-resident Z and C (`c = None`: the TCR warm-up objective −R(Z)). Gradients stay on
/// the device; the scalar parts are synchronised back (they are needed to report the loss).
pub fn mlc_loss_device(dev: &CudaDevice, z: &GpuBuf<f32>, c: Option<&GpuBuf<f32>>, m: usize, d: usize, params: &RateParams) -> Result<MlcDeviceOutput> {
    let k = Kernels::load(dev)?;
    let di = i32_of(d, "d")?;
    let mi = i32_of(m, "m")?;
    let eps_sq = params.eps_sq;
    let scale_c = (d as f64 / (m as f64 * eps_sq)) as f32;

    // Sinkhorn first (its Π is the coefficient matrix of the R_c chunks).
    let plan = match c {
        Some(c) => Some(sinkhorn_with(dev, &k, c, m, d, params)?),
        None => None,
    };
    let bufs = RateBufs::new(dev, &k, z, m, d, if plan.is_some() { m } else { 1 })?;
    let ones = dev.upload(&vec![1.0f32; m], "ones")?;

    // R(Z): A_0 = I + c ZᵀZ, as a one-column chunk with coefficients 1; Bpack = −A_0⁻¹ for every sample.
    let alpha0 = dev.upload(&[scale_c], "α_0")?;
    let logdet0 = dev.zeros::<f32>(1, "log det A_0")?;
    let trinv0 = dev.zeros::<f32>(1, "tr A_0⁻¹")?;
    let notpd0 = dev.zeros::<i32>(1, "positive-definiteness flag of A_0")?;
    bufs.chunk(dev, &k, (ones.ptr(), 1), 1, alpha0.ptr(), logdet0.ptr(), trinv0.ptr(), notpd0.ptr(), None, -1.0, 0.0)?;

    let grad_z = dev.zeros::<f32>(m * d, "∂loss/∂Z")?;
    let Some(plan) = plan else {
        dev.launch(&k.packed_symv, "packed_symv", (u32_of(m, "m")?, 1, 1), THREADS, u32_of(8 * d, "d")?, &[bufs.bpack.arg(), z.arg(), KArg::I32(di), KArg::F32(scale_c), grad_z.arg()])?;
        check_pd(dev, &notpd0, "R(Z): I + d/(mε²) ZᵀZ")?;
        let ld0 = dev.download(&logdet0, "log det A_0")?[0] as f64;
        let rate = 0.5 * ld0;
        if !rate.is_finite() {
            return Err(Error::Numerical(format!("R(Z) is not finite ({rate})")));
        }
        return Ok(MlcDeviceOutput { loss: -rate, rate, rate_c: 0.0, pi_penalty: 0.0, grad_z, grad_c: None });
    };
    let c = c.ok_or_else(|| Error::Internal("C missing".into()))?;

    // t_j = Σ_i Π_ij + 1e-8 and α_j = d/(t_j ε²).
    let t = dev.zeros::<f32>(m, "column sums of Π")?;
    dev.sgemm_rm(false, false, 1, m, m, 1.0, (ones.ptr(), m, 0), (plan.pi.ptr(), m, 0), 0.0, (t.ptr(), m, 0), 1)?;
    let alpha = dev.zeros::<f32>(m, "α_j")?;
    dev.launch(&k.alpha, "rate_alpha", (blocks(m, "m")?, 1, 1), THREADS, 0, &[t.arg(), KArg::I32(mi), KArg::I32(di), KArg::F32(eps_sq as f32), alpha.arg()])?;

    // R_c: chunks of columns of Π; Bpack += γ Π[:, chunk] Wpack, Q[:, chunk] = z_iᵀ A_j⁻¹ z_i.
    let logdet = dev.zeros::<f32>(m, "log det A_j")?;
    let trinv = dev.zeros::<f32>(m, "tr A_j⁻¹")?;
    let not_pd = dev.zeros::<i32>(m, "positive-definiteness flags")?;
    // Every column is written by the chunks' Q GEMMs before the backward kernel reads it.
    let qe = dev.uninit::<f32>(m * m, "Q / ∂loss/∂K")?;
    let cap = bufs.work.cap;
    let gamma = params.gamma as f32;
    let mut j0 = 0;
    while j0 < m {
        let cols = cap.min(m - j0);
        bufs.chunk(
            dev,
            &k,
            (plan.pi.at(j0), m),
            cols,
            alpha.at(j0),
            logdet.at(j0),
            trinv.at(j0),
            not_pd.at(j0),
            Some((qe.at(j0), m)),
            gamma,
            1.0,
        )?;
        j0 += cols;
    }
    dev.launch(&k.packed_symv, "packed_symv", (u32_of(m, "m")?, 1, 1), THREADS, u32_of(8 * d, "d")?, &[bufs.bpack.arg(), z.arg(), KArg::I32(di), KArg::F32(scale_c), grad_z.arg()])?;

    // Backward through Π, Sinkhorn and |C Cᵀ|.
    let colterm = dev.zeros::<f32>(m, "column terms of ∂R_c/∂Π")?;
    dev.launch(&k.colterm, "rate_colterm", (blocks(m, "m")?, 1, 1), THREADS, 0, &[logdet.arg(), trinv.arg(), KArg::I32(mi), KArg::I32(di), colterm.arg()])?;
    let qscale = (d as f64 / (2.0 * m as f64 * eps_sq)) as f32;
    dev.launch(
        &k.backward_ref,
        "sinkhorn_backward_ref",
        (u32_of(m, "m")?, 1, 1),
        THREADS,
        0,
        &[
            plan.a.arg(),
            plan.pi.arg(),
            qe.arg(),
            colterm.arg(),
            plan.u.arg(),
            plan.v_prev().arg(),
            KArg::I32(mi),
            KArg::F32(params.eta as f32),
            KArg::F32(gamma),
            KArg::F32(params.lambda as f32),
            KArg::F32(qscale),
        ],
    )?;
    let grad_c = dev.zeros::<f32>(m * d, "∂loss/∂C")?;
    dev.sgemm_rm(false, false, m, d, m, 1.0, (qe.ptr(), m, 0), (c.ptr(), d, 0), 0.0, (grad_c.ptr(), d, 0), 1)?;
    dev.sgemm_rm(true, false, m, d, m, 1.0, (qe.ptr(), m, 0), (c.ptr(), d, 0), 1.0, (grad_c.ptr(), d, 0), 1)?;

    // Scalars (f64 sums on the host).
    check_pd(dev, &notpd0, "R(Z): I + d/(mε²) ZᵀZ")?;
    check_pd(dev, &not_pd, "R_c: I + d/(t_j ε²) Zᵀ diag(Π_j) Z")?;
    let ld0 = dev.download(&logdet0, "log det A_0")?[0] as f64;
    let lds = dev.download(&logdet, "log det A_j")?;
    let ts = dev.download(&t, "column sums of Π")?;
    let sq = dev.download(&plan.row_sumsq, "row sums of Π²")?;
    let rate = 0.5 * ld0;
    let rate_c: f64 = lds.iter().zip(&ts).map(|(&l, &t)| t as f64 * l as f64).sum::<f64>() / (2.0 * m as f64);
    let pi_penalty = 0.5 * params.lambda * sq.iter().map(|&x| x as f64).sum::<f64>();
    let loss = -rate + params.gamma * rate_c + pi_penalty;
    if !loss.is_finite() {
        return Err(Error::Numerical(format!("the MLC loss is not finite (R = {rate}, R_c = {rate_c}, penalty = {pi_penalty})")));
    }
    Ok(MlcDeviceOutput { loss, rate, rate_c, pi_penalty, grad_z, grad_c: Some(grad_c) })
}
