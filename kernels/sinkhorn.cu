// Log-domain Sinkhorn on K = |C C^T| and its backward pass (docs/design.md §1; mirrors LeslieTrue/CPP
// model/sink_distance.py, where the cost is -K, mu = nu = 1/n and M(u, v) = (K + u 1^T + 1 v^T) / eta).
//
// The host keeps only A = C C^T (signed, n×n, one cuBLAS GEMM); K_ij = |A_ij| is taken on the fly and
// the sign is what the backward pass of |.| needs. K is symmetric, so the column update
//     v_j <- eta*log(nu) - eta*LSE_i((K_ij + u_i)/eta)
// is the row update with the roles of u and v swapped: one kernel serves both half-steps, always
// reading rows (coalesced). The reference writes the row update as
//     u <- eta*(log mu - LSE_j((K_ij + u_i + v_j)/eta)) + u,
// which equals eta*log(mu) - eta*LSE_j((K_ij + v_j)/eta) exactly in real arithmetic (u_i leaves the LSE).
// Plain CUDA C for NVRTC, float32, row-major.

#define NEG_INF (-__int_as_float(0x7f800000))

// Combines two (max, sum) partial log-sum-exp states: value = max + log(sum).
__device__ __forceinline__ void lse_merge(float& m, float& s, float m2, float s2) {
    if (m2 == NEG_INF) return;
    if (m == NEG_INF) { m = m2; s = s2; return; }
    if (m2 > m) { s = s * expf(m - m2) + s2; m = m2; }
    else { s += s2 * expf(m2 - m); }
}

// Block-wide log-sum-exp state reduction (blockDim a multiple of 32, at most 1024). Returns the LSE.
__device__ float block_lse(float m, float s) {
    __shared__ float wm[32], ws[32];
    __shared__ float result;
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
        const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
        lse_merge(m, s, m2, s2);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { wm[warp] = m; ws[warp] = s; }
    __syncthreads();
    if (warp == 0) {
        float a = NEG_INF, b = 0.0f;
        if (lane < (int)(blockDim.x >> 5)) { a = wm[lane]; b = ws[lane]; }
        for (int o = 16; o > 0; o >>= 1) {
            const float m2 = __shfl_xor_sync(0xffffffffu, a, o);
            const float s2 = __shfl_xor_sync(0xffffffffu, b, o);
            lse_merge(a, b, m2, s2);
        }
        if (lane == 0) result = a + logf(b);
    }
    __syncthreads();
    const float r = result;
    __syncthreads();
    return r;
}

// Block-wide sum (blockDim a multiple of 32, at most 1024).
__device__ float block_sum_f(float v) {
    __shared__ float part[32];
    __shared__ float total;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < (int)(blockDim.x >> 5) ? part[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) w += __shfl_xor_sync(0xffffffffu, w, o);
        if (lane == 0) total = w;
    }
    __syncthreads();
    const float r = total;
    __syncthreads();
    return r;
}

// One Sinkhorn half-step, one block per row i:
//     out_i = eta*log_marginal - eta * LSE_j((|A_ij| + w_j) / eta)
// (w = v for the row step producing u; w = u for the column step producing v, by symmetry of K).
// Each thread keeps an online (max, sum) state over its strided elements: one pass over the row.
extern "C" __global__ void sinkhorn_half_step(const float* __restrict__ A, int n, const float* __restrict__ w,
                                              float eta, float log_marginal, float* __restrict__ out) {
    const int i = blockIdx.x;
    const float inv_eta = 1.0f / eta;
    const float* row = A + (long long)i * n;
    float m = NEG_INF, s = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float x = (fabsf(row[j]) + w[j]) * inv_eta;
        if (x > m) { s = s * expf(m - x) + 1.0f; m = x; }  // expf(-inf) = 0 on the first element
        else { s += expf(x - m); }
    }
    const float lse = block_lse(m, s);
    if (threadIdx.x == 0) out[i] = eta * log_marginal - eta * lse;
}

// The transport plan, scaled: Pi_ij = scale * exp((|A_ij| + u_i + v_j) / eta) (scale = n gives the
// reference's Pi * Pi.shape[-1], rows summing to 1). One block per row; also writes the row's sum of
// squares so that ||Pi||_F^2 is summed deterministically (on the host, in double).
extern "C" __global__ void sinkhorn_plan(const float* __restrict__ A, int n, const float* __restrict__ u,
                                         const float* __restrict__ v, float eta, float scale,
                                         float* __restrict__ Pi, float* __restrict__ row_sumsq) {
    const int i = blockIdx.x;
    const float inv_eta = 1.0f / eta;
    const float ui = u[i];
    const float* row = A + (long long)i * n;
    float* out = Pi + (long long)i * n;
    float sq = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float p = scale * expf((fabsf(row[j]) + ui + v[j]) * inv_eta);
        out[j] = p;
        sq += p * p;
    }
    sq = block_sum_f(sq);
    if (threadIdx.x == 0 && row_sumsq) row_sumsq[i] = sq;
}

// Backward of the MLC loss through Pi and the Sinkhorn iterations, with the reference's gradient
// semantics (v detached at each column step, so only the last row step and the final exp carry
// gradient; see src/rate/cuda.rs for the derivation). One block per row i.
//
//   dPi_ij = gamma * (colterm_j + qscale * Q_ij) + lambda * Pi_ij         (dLoss/dPi, Pi = n * plan)
//     colterm_j = (logdet_j - d + trinv_j) / (2m),  qscale = d / (2 m eps^2),  Q_ij = z_i^T A_j^{-1} z_i
//   H_ij   = dPi_ij * Pi_ij                                               (dLoss/d(exponent) * eta)
//   S_ij   = n * exp((|A_ij| + u_i + vprev_j) / eta)                      (softmax of the last row step)
//   Kbar_ij = (H_ij - (sum_l H_il) * S_ij) / eta
//   E_ij   = Kbar_ij * sign(A_ij)                                         (backward of |.|)
// E overwrites Q (each element is read, then written, by the same thread). dLoss/dC = (E + E^T) C.
extern "C" __global__ void sinkhorn_backward_ref(const float* __restrict__ A, const float* __restrict__ Pi,
                                                 float* __restrict__ QE, const float* __restrict__ colterm,
                                                 const float* __restrict__ u, const float* __restrict__ vprev,
                                                 int n, float eta, float gamma, float lambda, float qscale) {
    const int i = blockIdx.x;
    const float inv_eta = 1.0f / eta;
    const long long off = (long long)i * n;
    float r = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float p = Pi[off + j];
        const float g = gamma * (colterm[j] + qscale * QE[off + j]) + lambda * p;
        r += g * p;
    }
    r = block_sum_f(r);
    const float ui = u[i];
    const float fn = (float)n;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float p = Pi[off + j];
        const float g = gamma * (colterm[j] + qscale * QE[off + j]) + lambda * p;
        const float a = A[off + j];
        const float sm = fn * expf((fabsf(a) + ui + vprev[j]) * inv_eta);
        const float kbar = (g * p - r * sm) * inv_eta;
        const float sg = (a > 0.0f) ? 1.0f : ((a < 0.0f) ? -1.0f : 0.0f);
        QE[off + j] = kbar * sg;
    }
}

// colterm_j = (logdet_j - d + trinv_j) / (2m): the part of dR_c/dPi_ij that does not depend on i
// (from the trace t_j = sum_i Pi_ij in both the weight t_j/2m and the scale d/(t_j eps^2)).
extern "C" __global__ void rate_colterm(const float* __restrict__ logdet, const float* __restrict__ trinv, int m,
                                        int d, float* __restrict__ colterm) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j < m) colterm[j] = (logdet[j] - (float)d + trinv[j]) / (2.0f * (float)m);
}

// alpha_j = d / (t_j * eps^2) with t_j = colsum_j + 1e-8 (the reference's trPi), written back to tr.
extern "C" __global__ void rate_alpha(float* __restrict__ colsum, int m, int d, float eps_sq,
                                      float* __restrict__ alpha) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= m) return;
    const float t = colsum[j] + 1e-8f;
    colsum[j] = t;
    alpha[j] = (float)d / (t * eps_sq);
}

// ---------------------------------------------------------------------------------------------------
// Exact gradient (nothing detached): backpropagation through every half-step, last to first.
//
// Every half-step is "x = eta*log(1/n) - eta*LSE((K + y)/eta)" along rows (row step: x = u, y = v; column
// step: x = v, y = u, a row computation too because K is symmetric). Its softmax is
// S_rc = n * exp((K_rc + x_r + y_c) / eta), and with x_bar the adjoint of x:
//     K_bar_rc -= x_bar_r * S_rc,        y_bar_c -= sum_r x_bar_r * S_rc,
// while the old x drops out (its derivative is 1 - sum_c S_rc = 0). For a column step this accumulates the
// transpose of the true K_bar contribution, which is harmless: K_bar only enters dLoss/dC through
// E + E^T with E = K_bar * sign(A), and A is symmetric.

// Start of the exact backward pass: K_bar = H / eta (overwriting Q) and u_bar_i = sum_j H_ij / eta,
// H = dLoss/dPi * Pi as in sinkhorn_backward_ref. (v_bar = column sums of K_bar: a GEMM on the host side.)
extern "C" __global__ void sinkhorn_backward_final(const float* __restrict__ Pi, float* __restrict__ QK,
                                                   const float* __restrict__ colterm, int n, float eta, float gamma,
                                                   float lambda, float qscale, float* __restrict__ ubar) {
    const int i = blockIdx.x;
    const float inv_eta = 1.0f / eta;
    const long long off = (long long)i * n;
    float r = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float p = Pi[off + j];
        const float h = (gamma * (colterm[j] + qscale * QK[off + j]) + lambda * p) * p;
        QK[off + j] = h * inv_eta;
        r += h;
    }
    r = block_sum_f(r);
    if (threadIdx.x == 0) ubar[i] = r * inv_eta;
}

// One half-step backwards, one block per row r of K (see above). The column reduction for y_bar uses the
// symmetry of K: y_bar_r -= sum_c x_bar_c * n * exp((K_rc + x_c + y_r) / eta), a reduction along row r.
extern "C" __global__ void sinkhorn_step_backward(const float* __restrict__ A, int n, const float* __restrict__ x,
                                                  const float* __restrict__ xbar, const float* __restrict__ y,
                                                  float eta, float* __restrict__ Kbar, float* __restrict__ ybar) {
    const int r = blockIdx.x;
    const float inv_eta = 1.0f / eta;
    const float fn = (float)n;
    const long long off = (long long)r * n;
    const float xr = x[r], xbr = xbar[r], yr = y[r];
    float acc = 0.0f;
    for (int c = threadIdx.x; c < n; c += blockDim.x) {
        const float k = fabsf(A[off + c]);
        Kbar[off + c] -= xbr * fn * expf((k + xr + y[c]) * inv_eta);
        acc += xbar[c] * fn * expf((k + x[c] + yr) * inv_eta);
    }
    acc = block_sum_f(acc);
    if (threadIdx.x == 0) ybar[r] -= acc;
}

// E = K_bar * sign(A), in place (backward of K = |A|). grid: ceil(total / blockDim).
extern "C" __global__ void apply_abs_sign(const float* __restrict__ A, float* __restrict__ Kbar, long long total) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const float a = A[i];
    Kbar[i] *= (a > 0.0f) ? 1.0f : ((a < 0.0f) ? -1.0f : 0.0f);
}
