//! CUDA implementation of the rate-reduction core (docs/design.md §1), f32, kernels in `kernels/rate_linalg.cu`
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
//!
//! Symmetry halves the flops of each GEMM compared with forming the d×d products directly. Between them,
//! `A_j = I + α_j G_j` is factored in batches: one kernel per matrix in shared memory for d ≤ 128
//! (Cholesky, log-det, L⁻¹), and a blocked right-looking Cholesky for larger d whose diagonal tiles use the
//! same kernel and whose panel/trailing updates are cuBLAS GEMMs. `A⁻¹ = L⁻ᵀ L⁻¹` is a batched GEMM.
//! Columns j are processed in chunks sized to a memory budget, so d = 1024 and m = 4096 fit.
//!
//! # Gradients (all f32 on the device; formulas checked against the CPU reference by `cuda/tests.rs`)
//! With α_j = d/(t_j ε²), t_j = Σ_i Π_ij + 1e-8, c = d/(m ε²):
//! - `∂loss/∂z_i = c (γ Σ_j Π_ij A_j⁻¹ − A_0⁻¹) z_i`, A_0 = I + c ZᵀZ (the R(Z) term);
//! - `∂loss/∂Π_ij = γ [(logdet A_j − d + tr A_j⁻¹)/(2m) + d/(2mε²) Q_ij] + λ Π_ij`;
//! - Sinkhorn, reference semantics (v detached at every column step, so the old u cancels from each row
//!   update and only the last row step u* = η log μ − η LSE_j((K_ij + v'_j)/η) and the final exp carry
//!   gradient): with H = ∂loss/∂Π ⊙ Π and S the row softmax of (K + v')/η,
//!   `∂loss/∂K_ij = (H_ij − (Σ_l H_il) S_ij)/η`;
//! - K = |C Cᵀ|: `E = ∂loss/∂K ⊙ sign(C Cᵀ)`, `∂loss/∂C = (E + Eᵀ) C`.

use super::{MlcOutput, RateParams, SinkhornGradient};
use crate::device::cuda::{i32_of, KernelFile, u32_of, CudaDevice, Gpu, GpuBuf, KArg, RmGemm};
use crate::error::{check_finite, Error, Result};

pub static LINALG: KernelFile = KernelFile { name: "rate_linalg", source: include_str!("../../kernels/rate_linalg.cu") };
pub static SINKHORN: KernelFile = KernelFile { name: "sinkhorn", source: include_str!("../../kernels/sinkhorn.cu") };
/// Largest matrix the single-block shared-memory Cholesky kernel takes (CHOL_MAX_N in the kernel).
const SMALL_MAX: usize = 128;
/// Tile size of the blocked Cholesky for d > SMALL_MAX.
const TILE: usize = 64;
/// Device memory the per-chunk workspaces may take (the chunk size J follows from it).
pub(crate) const CHUNK_BUDGET_BYTES: usize = 1536 << 20;
const THREADS: u32 = 256;

/// Row-major GEMM on the device (see [`RmGemm`]).
#[allow(clippy::too_many_arguments)]
fn gemm(
    g: &dyn Gpu,
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: (u64, usize, usize),
    b: (u64, usize, usize),
    beta: f32,
    c: (u64, usize, usize),
    batch: usize,
) -> Result<()> {
    g.gemm(&RmGemm { ta, tb, m, n, k, alpha, a, b, beta, c, batch })
}

fn blocks(n: usize, what: &str) -> Result<u32> {
    u32_of(n.div_ceil(THREADS as usize), what)
}

fn packed_len(d: usize) -> usize {
    d * (d + 1) / 2
}

/// What the kernels' 32-bit indices need of the sizes (everything else about the inputs is checked by
/// `rate::mlc_loss` and `rate::membership`, the host entry points, before they come here).
fn check_sizes(m: usize, d: usize) -> Result<()> {
    if m == 0 || d == 0 {
        return Err(Error::InvalidArgument(format!("Z must be non-empty (got m = {m}, d = {d})")));
    }
    let cells = m.checked_mul(m.max(d)).ok_or_else(|| Error::InvalidArgument(format!("m·max(m, d) = {m}·{} overflows", m.max(d))))?;
    i32_of(cells, "m·max(m, d)").map(|_| ())
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

    fn new(g: &dyn Gpu, d: usize, cap: usize, want_inverse: bool) -> Result<Self> {
        let dd = d * d;
        let small = d <= SMALL_MAX;
        // Uninitialised where a kernel/GEMM writes every element first; zeroed where the blocked algorithm
        // relies on the blocks above the diagonal staying zero (L and X are never written there).
        let x = match (small, want_inverse) {
            (true, true) => g.alloc_f32(cap * dd, false, "triangular inverse L⁻¹")?,
            (true, false) => g.alloc_f32(1, false, "unused L⁻¹")?,
            (false, _) => g.alloc_f32(cap * dd, true, "triangular inverse L⁻¹")?,
        };
        Ok(SpdWork {
            d,
            cap,
            afull: if small { None } else { Some(g.alloc_f32(cap * dd, false, "Cholesky workspace A")?) },
            l: if small { None } else { Some(g.alloc_f32(cap * dd, true, "Cholesky factor L")?) },
            x,
            ainv: if small && want_inverse { Some(g.alloc_f32(cap * dd, false, "inverse A⁻¹")?) } else { None },
            strip: if small { None } else { Some(g.alloc_f32(cap * TILE * d, false, "blocked-inverse strip")?) },
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
    g: &dyn Gpu,
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
        g.launch(&LINALG, "chol_inv_small",
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
            gemm(g, true, false, d, d, d, 1.0, (work.x.ptr(), d, dd), (work.x.ptr(), d, dd), 0.0, (ainv.ptr(), d, dd), count)?;
        }
        return Ok(());
    }

    // Blocked right-looking Cholesky on full matrices.
    let (afull, l, strip) = match (&work.afull, &work.l, &work.strip) {
        (Some(a), Some(l), Some(s)) => (a, l, s),
        _ => return Err(Error::Internal("blocked Cholesky workspace missing".into())),
    };
    match *input {
        SpdInput::PackedGram { gpack, alpha } => g.launch(&LINALG, "sym_unpack",
            (blocks(dd, "d²")?, u32_of(count, "batch")?, 1),
            THREADS,
            0,
            &[KArg::Ptr(gpack), KArg::Ptr(alpha), KArg::I32(1), KArg::I32(di), afull.arg()],
        )?,
        SpdInput::Full(a) => g.copy_f32(afull.ptr(), a, count * dd, "matrices to factor")?,
    }
    let (a0, l0, x0) = (afull.ptr(), l.ptr(), work.x.ptr());
    let f = 4u64; // bytes per f32
    let at = |base: u64, r: usize, c: usize| base + f * (r * d + c) as u64;
    let tiles = d.div_ceil(TILE);
    for t in 0..tiles {
        let k0 = t * TILE;
        let nb = TILE.min(d - k0);
        // Diagonal tile: L_kk, L_kk⁻¹ (into X's diagonal tile), log-det contribution.
        g.launch(&LINALG, "chol_inv_small",
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
            gemm(g, false, true, rem, nb, nb, 1.0, (at(a0, k0 + nb, k0), d, dd), (at(x0, k0, k0), d, dd), 0.0, (at(l0, k0 + nb, k0), d, dd), count)?;
            // Trailing update of the whole (symmetric) square: A22 -= L21 L21ᵀ
            let l21 = (at(l0, k0 + nb, k0), d, dd);
            gemm(g, false, true, rem, rem, nb, -1.0, l21, l21, 1.0, (at(a0, k0 + nb, k0 + nb), d, dd), count)?;
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
        gemm(g, false, false, ni, i0, i0, 1.0, (at(l0, i0, 0), d, dd), (x0, d, dd), 0.0, (sp, d, TILE * d), count)?;
        gemm(g, false, false, ni, i0, ni, -1.0, (at(x0, i0, i0), d, dd), (sp, d, TILE * d), 0.0, (at(x0, i0, 0), d, dd), count)?;
    }
    // A⁻¹ = Xᵀ X, into the (consumed) matrix workspace.
    gemm(g, true, false, d, d, d, 1.0, (x0, d, dd), (x0, d, dd), 0.0, (a0, d, dd), count)
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
    fn new(g: &dyn Gpu, z: &GpuBuf<f32>, m: usize, d: usize, max_cols: usize, budget: usize) -> Result<Self> {
        let p = packed_len(d);
        let per = SpdWork::bytes_per_matrix(d) + 2 * 4 * p;
        let cap = (budget / per).clamp(1, max_cols);
        let zpack = g.alloc_f32(m * p, false, "packed outer products of Z")?;
        g.launch(&LINALG, "outer_pack", (u32_of(m, "m")?, 1, 1), THREADS, u32_of(4 * d, "d")?, &[z.arg(), KArg::I32(i32_of(d, "d")?), zpack.arg()])?;
        Ok(RateBufs {
            m,
            d,
            zpack,
            // The first chunk (the R(Z) term) writes Bpack with β = 0.
            bpack: g.alloc_f32(m * p, false, "packed gradient matrices")?,
            gpack: g.alloc_f32(cap * p, false, "packed Gram matrices")?,
            wpack: g.alloc_f32(cap * p, false, "packed inverses")?,
            work: SpdWork::new(g, d, cap, true)?,
        })
    }

    /// One chunk of J columns of a coefficient matrix `coef` (m × J, row-major with leading dimension
    /// `ld`, starting at the chunk's first column): for A_j = I + α_j Σ_i coef_ij z_i z_iᵀ writes
    /// logdet_j and tr A_j⁻¹, optionally Q[:, chunk] (at `q`, leading dimension `ldq`), and accumulates
    /// `bpack = out_alpha · coef · Wpack + out_beta · bpack`.
    #[allow(clippy::too_many_arguments)]
    fn chunk(
        &self,
        g: &dyn Gpu,
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
        gemm(g, true, false, cols, p, m, 1.0, (coef.0, coef.1, 0), (self.zpack.ptr(), p, 0), 0.0, (self.gpack.ptr(), p, 0), 1)?;
        spd_factor(g, &SpdInput::PackedGram { gpack: self.gpack.ptr(), alpha }, cols, &self.work, logdet, not_pd, true)?;
        let inv = self.work.inverse_ptr();
        let di = i32_of(d, "d")?;
        g.launch(&LINALG, "sym_pack_weighted", (blocks(p, "p")?, u32_of(cols, "chunk")?, 1), THREADS, 0, &[KArg::Ptr(inv), KArg::I32(di), self.wpack.arg()])?;
        g.launch(&LINALG, "batched_trace", (u32_of(cols, "chunk")?, 1, 1), THREADS, 0, &[KArg::Ptr(inv), KArg::I32(di), KArg::Ptr(trinv)])?;
        if let Some((qp, ldq)) = q {
            // Q[:, chunk] = Zpack Wpackᵀ   (m × cols)
            gemm(g, false, true, m, cols, p, 1.0, (self.zpack.ptr(), p, 0), (self.wpack.ptr(), p, 0), 0.0, (qp, ldq, 0), 1)?;
        }
        // Bpack = out_alpha · coef Wpack + out_beta · Bpack   (m × p)
        gemm(g, false, false, m, p, cols, out_alpha, (coef.0, coef.1, 0), (self.wpack.ptr(), p, 0), out_beta, (self.bpack.ptr(), p, 0), 1)
    }
}

fn check_pd(g: &dyn Gpu, not_pd: &GpuBuf<i32>, what: &str) -> Result<()> {
    let flags = g.download_i32(not_pd, "positive-definiteness flags")?;
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

/// One Sinkhorn half-step: the potential it produced from the other one (addresses of m floats).
#[derive(Clone, Copy)]
struct HalfStep {
    row: bool,
    /// The potential written (u for a row step, v for a column step).
    out: u64,
    /// The potential read (v for a row step, u for a column step).
    from: u64,
}

/// Π and what its backward pass needs, all on the device.
pub struct SinkhornPlan {
    /// A = C Cᵀ, signed (K = |A|), m × m.
    pub a: GpuBuf<f32>,
    /// Π = m · plan, m × m row-major; rows sum to 1 when the last half-step is a row step.
    pub pi: GpuBuf<f32>,
    /// Per-row Σ_j Π_ij².
    pub row_sumsq: GpuBuf<f32>,
    /// The zero initial potentials, and every half-step's output (T × m).
    _zero: GpuBuf<f32>,
    _history: GpuBuf<f32>,
    steps: Vec<HalfStep>,
}

impl SinkhornPlan {
    /// The last row step (its u and the v it used): all the reference gradient flows through.
    fn last_row_step(&self) -> Result<HalfStep> {
        self.steps.iter().rev().find(|s| s.row).copied().ok_or_else(|| Error::Internal("Sinkhorn ran no row step".into()))
    }
}

/// Π = m · Sinkhorn_η(|C Cᵀ|) for C (m × d, on the device), the reference's 5 (or `sinkhorn_half_iters`)
/// half-steps. Nothing is copied to the host.
pub fn sinkhorn_device(dev: &CudaDevice, c: &GpuBuf<f32>, m: usize, d: usize, params: &RateParams) -> Result<SinkhornPlan> {
    sinkhorn_with(dev, c, m, d, params)
}

fn sinkhorn_with(g: &dyn Gpu, c: &GpuBuf<f32>, m: usize, d: usize, params: &RateParams) -> Result<SinkhornPlan> {
    let mm = m * m;
    let half_steps = params.sinkhorn_half_iters;
    let a = g.alloc_f32(mm, false, "C Cᵀ")?;
    gemm(g, false, true, m, m, d, 1.0, (c.ptr(), d, 0), (c.ptr(), d, 0), 0.0, (a.ptr(), m, 0), 1)?;
    let zero = g.alloc_f32(m, true, "Sinkhorn initial potentials")?;
    // Each half-step writes its own row, so the backward pass can revisit every intermediate potential.
    let history = g.alloc_f32(half_steps * m, false, "Sinkhorn potentials")?;
    let (mut u, mut v) = (zero.ptr(), zero.ptr());
    let eta = params.eta as f32;
    let log_marginal = -(m as f32).ln();
    let mi = i32_of(m, "m")?;
    let grid = (u32_of(m, "m")?, 1, 1);
    let mut steps = Vec::with_capacity(half_steps);
    for t in 0..half_steps {
        let out = history.at(t * m);
        let row = t % 2 == 0;
        // Row step: u from v. Column step: v from u, as a row pass because K is symmetric.
        let from = if row { v } else { u };
        let args = [a.arg(), KArg::I32(mi), KArg::Ptr(from), KArg::F32(eta), KArg::F32(log_marginal), KArg::Ptr(out)];
        g.launch(&SINKHORN, "sinkhorn_half_step", grid, THREADS, 0, &args)?;
        if row {
            u = out;
        } else {
            v = out;
        }
        steps.push(HalfStep { row, out, from });
    }
    let pi = g.alloc_f32(mm, false, "Π")?;
    let row_sumsq = g.alloc_f32(m, true, "row sums of Π²")?;
    let args = [a.arg(), KArg::I32(mi), KArg::Ptr(u), KArg::Ptr(v), KArg::F32(eta), KArg::F32(m as f32), pi.arg(), row_sumsq.arg()];
    g.launch(&SINKHORN, "sinkhorn_plan", grid, THREADS, 0, &args)?;
    Ok(SinkhornPlan { a, pi, row_sumsq, _zero: zero, _history: history, steps })
}

/// Backward through Π (given ∂loss/∂Π's pieces: `qk` holds Q on entry), Sinkhorn and |A|: leaves
/// E = ∂loss/∂K ⊙ sign(A) in `qk`, so that ∂loss/∂C = (E + Eᵀ) C.
#[allow(clippy::too_many_arguments)]
fn sinkhorn_backward(g: &dyn Gpu, plan: &SinkhornPlan, qk: &GpuBuf<f32>, colterm: &GpuBuf<f32>, ones: &GpuBuf<f32>, m: usize, params: &RateParams, qscale: f32) -> Result<()> {
    let mi = i32_of(m, "m")?;
    let grid = (u32_of(m, "m")?, 1, 1);
    let eta = KArg::F32(params.eta as f32);
    let (gamma, lambda) = (KArg::F32(params.gamma as f32), KArg::F32(params.lambda as f32));
    match params.gradient {
        SinkhornGradient::Reference => {
            let last = plan.last_row_step()?;
            let args = [
                plan.a.arg(),
                plan.pi.arg(),
                qk.arg(),
                colterm.arg(),
                KArg::Ptr(last.out),
                KArg::Ptr(last.from),
                KArg::I32(mi),
                eta,
                gamma,
                lambda,
                KArg::F32(qscale),
            ];
            g.launch(&SINKHORN, "sinkhorn_backward_ref", grid, THREADS, 0, &args)
        }
        SinkhornGradient::Exact => {
            // Adjoints of the current u and v, then every half-step from the last to the first.
            let ubar = g.alloc_f32(m, true, "adjoint of u")?;
            let vbar = g.alloc_f32(m, true, "adjoint of v")?;
            let args = [plan.pi.arg(), qk.arg(), colterm.arg(), KArg::I32(mi), eta, gamma, lambda, KArg::F32(qscale), ubar.arg()];
            g.launch(&SINKHORN, "sinkhorn_backward_final", grid, THREADS, 0, &args)?;
            // v_bar = column sums of K_bar = H/η (Π = m·exp((K + u + v)/η) depends on v_j through column j).
            gemm(g, false, false, 1, m, m, 1.0, (ones.ptr(), m, 0), (qk.ptr(), m, 0), 0.0, (vbar.ptr(), m, 0), 1)?;
            for s in plan.steps.iter().rev() {
                let (xbar, ybar) = if s.row { (&ubar, &vbar) } else { (&vbar, &ubar) };
                let args = [plan.a.arg(), KArg::I32(mi), KArg::Ptr(s.out), xbar.arg(), KArg::Ptr(s.from), eta, qk.arg(), ybar.arg()];
                g.launch(&SINKHORN, "sinkhorn_step_backward", grid, THREADS, 0, &args)?;
                // The potential this step overwrote has no influence past it (it cancels out of the step).
                g.zero_f32(xbar.ptr(), m)?;
            }
            let total = m * m;
            g.launch(&SINKHORN, "apply_abs_sign", (blocks(total, "m²")?, 1, 1), THREADS, 0, &[plan.a.arg(), qk.arg(), KArg::I64(total as i64)])
        }
    }
}

/// Π = m · Sinkhorn_η(|C Cᵀ|) (m×m, row-major) of host C on `g`.
pub(crate) fn membership(g: &dyn Gpu, c: &[f32], m: usize, d: usize, params: &RateParams) -> Result<Vec<f32>> {
    check_sizes(m, d)?;
    let cb = g.upload_f32(c, "C")?;
    let plan = sinkhorn_with(g, &cb, m, d, params)?;
    let pi = g.download_f32(&plan.pi, "Π")?;
    check_finite("Π (CUDA Sinkhorn)", &pi).map_err(|e| Error::Numerical(format!("{e}; is η too small for f32?")))?;
    Ok(pi)
}

// ------------------------------------------------------------------------------------------------
// Batched log-det entry point (benchmarks, and callers with their own SPD matrices on the device)
// ------------------------------------------------------------------------------------------------

/// Batched log-determinants (and optionally inverses) of SPD matrices already on the device, with its
/// workspace allocated once: [`SpdSolver::factor`] only queues work, so it can be timed in a loop.
pub struct SpdSolver {
    work: SpdWork,
    batch: usize,
    inverse: bool,
    logdet: GpuBuf<f32>,
    not_pd: GpuBuf<i32>,
}

impl SpdSolver {
    /// For `batch` matrices of order `d`; `inverse` also forms A⁻¹.
    pub fn new(dev: &CudaDevice, batch: usize, d: usize, inverse: bool) -> Result<Self> {
        let g: &dyn Gpu = dev;
        if batch == 0 || d == 0 {
            return Err(Error::InvalidArgument(format!("SPD batch needs batch > 0 and d > 0 (got {batch}, {d})")));
        }
        Ok(SpdSolver {
            work: SpdWork::new(g, d, batch, inverse)?,
            batch,
            inverse,
            logdet: g.alloc_f32(batch, true, "log-determinants")?,
            not_pd: g.alloc_i32(batch, "positive-definiteness flags")?,
        })
    }

    /// Queues the factorisation of `a` (batch × d × d, full row-major, not modified).
    pub fn factor(&self, dev: &CudaDevice, a: &GpuBuf<f32>) -> Result<()> {
        let g: &dyn Gpu = dev;
        let d = self.work.d;
        if a.len() != self.batch * d * d {
            return Err(Error::InvalidArgument(format!("SPD batch: {} values for {} matrices of order {d}", a.len(), self.batch)));
        }
        spd_factor(g, &SpdInput::Full(a.ptr()), self.batch, &self.work, self.logdet.ptr(), self.not_pd.ptr(), self.inverse)
    }

    /// The log-determinants of the last [`SpdSolver::factor`]; an error if a matrix was not SPD.
    pub fn logdet(&self, dev: &CudaDevice) -> Result<Vec<f32>> {
        check_pd(dev, &self.not_pd, "batched log-det")?;
        dev.download(&self.logdet, "log-determinants")
    }

    /// The inverses (batch × d × d) of the last factorisation (requires `inverse`).
    pub fn inverses(&self, dev: &CudaDevice) -> Result<Vec<f32>> {
        let g: &dyn Gpu = dev;
        if !self.inverse {
            return Err(Error::InvalidArgument("this SpdSolver was created without inverses".into()));
        }
        let n = self.batch * self.work.d * self.work.d;
        let out = g.alloc_f32(n, false, "inverses")?;
        g.copy_f32(out.ptr(), self.work.inverse_ptr(), n, "inverses")?;
        dev.download(&out, "inverses")
    }
}

// ------------------------------------------------------------------------------------------------
// The MLC / TCR loss
// ------------------------------------------------------------------------------------------------

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
    pub(crate) fn into_host(self, g: &dyn Gpu) -> Result<MlcOutput<f32>> {
        let grad_z = g.download_f32(&self.grad_z, "∂loss/∂Z")?;
        let grad_c = match &self.grad_c {
            Some(b) => g.download_f32(b, "∂loss/∂C")?,
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
    mlc_loss(dev, z, c, m, d, params, CHUNK_BUDGET_BYTES)
}

/// [`mlc_loss_device`] on any [`Gpu`] (the tests run it on the kernel emulator).
/// `budget`: device bytes the per-chunk workspaces may take (sets how many columns of Π go per chunk).
pub(crate) fn mlc_loss(
    g: &dyn Gpu,
    z: &GpuBuf<f32>,
    c: Option<&GpuBuf<f32>>,
    m: usize,
    d: usize,
    params: &RateParams,
    budget: usize,
) -> Result<MlcDeviceOutput> {
    check_sizes(m, d)?;
    let di = i32_of(d, "d")?;
    let mi = i32_of(m, "m")?;
    let eps_sq = params.eps_sq;
    let scale_c = (d as f64 / (m as f64 * eps_sq)) as f32;

    // Sinkhorn first (its Π is the coefficient matrix of the R_c chunks).
    let plan = match c {
        Some(c) => Some(sinkhorn_with(g, c, m, d, params)?),
        None => None,
    };
    let bufs = RateBufs::new(g, z, m, d, if plan.is_some() { m } else { 1 }, budget)?;
    let ones = g.upload_f32(&vec![1.0f32; m], "ones")?;

    // R(Z): A_0 = I + c ZᵀZ, as a one-column chunk with coefficients 1; Bpack = −A_0⁻¹ for every sample.
    let alpha0 = g.upload_f32(&[scale_c], "α_0")?;
    let logdet0 = g.alloc_f32(1, true, "log det A_0")?;
    let trinv0 = g.alloc_f32(1, true, "tr A_0⁻¹")?;
    let notpd0 = g.alloc_i32(1, "positive-definiteness flag of A_0")?;
    bufs.chunk(g, (ones.ptr(), 1), 1, alpha0.ptr(), logdet0.ptr(), trinv0.ptr(), notpd0.ptr(), None, -1.0, 0.0)?;

    let grad_z = g.alloc_f32(m * d, true, "∂loss/∂Z")?;
    let Some(plan) = plan else {
        g.launch(&LINALG, "packed_symv", (u32_of(m, "m")?, 1, 1), THREADS, u32_of(8 * d, "d")?, &[bufs.bpack.arg(), z.arg(), KArg::I32(di), KArg::F32(scale_c), grad_z.arg()])?;
        check_pd(g, &notpd0, "R(Z): I + d/(mε²) ZᵀZ")?;
        let ld0 = g.download_f32(&logdet0, "log det A_0")?[0] as f64;
        let rate = 0.5 * ld0;
        if !rate.is_finite() {
            return Err(Error::Numerical(format!("R(Z) is not finite ({rate})")));
        }
        return Ok(MlcDeviceOutput { loss: -rate, rate, rate_c: 0.0, pi_penalty: 0.0, grad_z, grad_c: None });
    };
    let c = c.ok_or_else(|| Error::Internal("C missing".into()))?;

    // t_j = Σ_i Π_ij + 1e-8 and α_j = d/(t_j ε²).
    let t = g.alloc_f32(m, true, "column sums of Π")?;
    gemm(g, false, false, 1, m, m, 1.0, (ones.ptr(), m, 0), (plan.pi.ptr(), m, 0), 0.0, (t.ptr(), m, 0), 1)?;
    let alpha = g.alloc_f32(m, true, "α_j")?;
    g.launch(&SINKHORN, "rate_alpha", (blocks(m, "m")?, 1, 1), THREADS, 0, &[t.arg(), KArg::I32(mi), KArg::I32(di), KArg::F32(eps_sq as f32), alpha.arg()])?;

    // R_c: chunks of columns of Π; Bpack += γ Π[:, chunk] Wpack, Q[:, chunk] = z_iᵀ A_j⁻¹ z_i.
    let logdet = g.alloc_f32(m, true, "log det A_j")?;
    let trinv = g.alloc_f32(m, true, "tr A_j⁻¹")?;
    let not_pd = g.alloc_i32(m, "positive-definiteness flags")?;
    // Every column is written by the chunks' Q GEMMs before the backward kernel reads it.
    let qe = g.alloc_f32(m * m, false, "Q / ∂loss/∂K")?;
    let cap = bufs.work.cap;
    let gamma = params.gamma as f32;
    let mut j0 = 0;
    while j0 < m {
        let cols = cap.min(m - j0);
        bufs.chunk(
            g,
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
    g.launch(&LINALG, "packed_symv", (u32_of(m, "m")?, 1, 1), THREADS, u32_of(8 * d, "d")?, &[bufs.bpack.arg(), z.arg(), KArg::I32(di), KArg::F32(scale_c), grad_z.arg()])?;

    // Backward through Π, Sinkhorn and |C Cᵀ|.
    let colterm = g.alloc_f32(m, true, "column terms of ∂R_c/∂Π")?;
    g.launch(&SINKHORN, "rate_colterm", (blocks(m, "m")?, 1, 1), THREADS, 0, &[logdet.arg(), trinv.arg(), KArg::I32(mi), KArg::I32(di), colterm.arg()])?;
    let qscale = (d as f64 / (2.0 * m as f64 * eps_sq)) as f32;
    sinkhorn_backward(g, &plan, &qe, &colterm, &ones, m, params, qscale)?;
    let grad_c = g.alloc_f32(m * d, true, "∂loss/∂C")?;
    gemm(g, false, false, m, d, m, 1.0, (qe.ptr(), m, 0), (c.ptr(), d, 0), 0.0, (grad_c.ptr(), d, 0), 1)?;
    gemm(g, true, false, m, d, m, 1.0, (qe.ptr(), m, 0), (c.ptr(), d, 0), 1.0, (grad_c.ptr(), d, 0), 1)?;

    // Scalars (f64 sums on the host).
    check_pd(g, &notpd0, "R(Z): I + d/(mε²) ZᵀZ")?;
    check_pd(g, &not_pd, "R_c: I + d/(t_j ε²) Zᵀ diag(Π_j) Z")?;
    let ld0 = g.download_f32(&logdet0, "log det A_0")?[0] as f64;
    let lds = g.download_f32(&logdet, "log det A_j")?;
    let ts = g.download_f32(&t, "column sums of Π")?;
    let sq = g.download_f32(&plan.row_sumsq, "row sums of Π²")?;
    let rate = 0.5 * ld0;
    let rate_c: f64 = lds.iter().zip(&ts).map(|(&l, &t)| t as f64 * l as f64).sum::<f64>() / (2.0 * m as f64);
    let pi_penalty = 0.5 * params.lambda * sq.iter().map(|&x| x as f64).sum::<f64>();
    let loss = -rate + params.gamma * rate_c + pi_penalty;
    if !loss.is_finite() {
        return Err(Error::Numerical(format!("the MLC loss is not finite (R = {rate}, R_c = {rate_c}, penalty = {pi_penalty})")));
    }
    Ok(MlcDeviceOutput { loss, rate, rate_c, pi_penalty, grad_z, grad_c: Some(grad_c) })
}

#[cfg(test)]
pub(crate) mod emu;
#[cfg(test)]
mod tests;
