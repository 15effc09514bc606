// The CPP clustering head on CUDA: every non-GEMM step of src/cluster/head/mod.rs (forward in
// training and evaluation mode, the hand-written backward) and of src/cluster/head/sgd.rs (SGD with momentum).
// The matrix products are cuBLAS GEMMs between these kernels (src/cluster/head/cuda.rs).
//
// Conventions (mirroring head/mod.rs so the two can be compared number by number):
// * activations are row-major [rows, features]; parameters use PyTorch's layout;
// * column reductions over the batch (BatchNorm statistics, bias gradients) accumulate in double, as the
//   CPU code does, with a fixed per-block order (deterministic run to run);
// * row reductions (L2 norms) accumulate in float, as the CPU code does.
// Column-reduction kernels use blocks of 256 threads = 32 columns (threadIdx.x & 31, coalesced reads of a
// row's 32 consecutive entries) × 8 row lanes (threadIdx.x >> 5); grid.x = ceil(columns / 32).
// Plain CUDA C for NVRTC (no headers).

// BatchNorm1d ε and running-statistics momentum: head/mod.rs BN_EPS and BN_MOMENTUM (PyTorch's defaults).
#define HEAD_BN_EPS 1e-5
#define HEAD_BN_MOMENTUM 0.1f
// F.normalize's floor on the norm (head/mod.rs NORM_FLOOR).
#define HEAD_NORM_FLOOR 1e-12f
#define COL_LANES 8

// Sum of `v` over the 8 row lanes of a column block; every thread of the column gets the result.
// `sh` is COL_LANES x 32 doubles of shared memory. Contains barriers: call from all threads.
__device__ double col_lane_sum(double v, double (*sh)[32]) {
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    sh[ty][tx] = v;
    __syncthreads();
    double s = 0.0;
    for (int l = 0; l < COL_LANES; ++l) s += sh[l][tx];
    __syncthreads();
    return s;
}

__device__ __forceinline__ float warp_sum_f(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Block-wide float sum (blockDim a multiple of 32, at most 1024); every thread gets the result.
__device__ float head_block_sum(float v) {
    __shared__ float part[32];
    __shared__ float total;
    v = warp_sum_f(v);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < (int)(blockDim.x >> 5) ? part[lane] : 0.0f;
        w = warp_sum_f(w);
        if (lane == 0) total = w;
    }
    __syncthreads();
    const float r = total;
    __syncthreads();
    return r;
}

// y[r, c] += b[c] for the `total` = rows × cols entries of y, then ReLU when `relu` != 0 (Linear + bias,
// optionally followed by ReLU). Grid-stride loop: any grid covers it.
extern "C" __global__ void head_bias_act(float* __restrict__ y, const float* __restrict__ b, long long total, int cols, int relu) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        float v = y[i] + b[i % cols];
        if (relu && v < 0.0f) v = 0.0f;
        y[i] = v;
    }
}

// BatchNorm1d in training mode followed by ReLU, on a (m × h, the first Linear's output with its bias):
// batch mean and biased variance per column (two passes, double), invstd = 1/sqrt(var + ε); a is
// overwritten with x̂ = (a − mean)·invstd and r1 = max(γ x̂ + β, 0); the running statistics move by
// momentum 0.1 with the unbiased variance var·m/(m−1). Mirrors Head::forward_train. Needs m ≥ 2.
extern "C" __global__ void head_bn_train_fwd(float* __restrict__ a, float* __restrict__ r1, const float* __restrict__ gamma,
                                             const float* __restrict__ beta, float* __restrict__ invstd_out,
                                             float* __restrict__ running_mean, float* __restrict__ running_var, int m, int h) {
    __shared__ double sh[COL_LANES][32];
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    const int col = blockIdx.x * 32 + tx;
    const bool live = col < h;
    double s = 0.0;
    if (live)
        for (int r = ty; r < m; r += COL_LANES) s += (double)a[(long long)r * h + col];
    const double mean = col_lane_sum(s, sh) / (double)m;
    double q = 0.0;
    if (live)
        for (int r = ty; r < m; r += COL_LANES) {
            const double dl = (double)a[(long long)r * h + col] - mean;
            q += dl * dl;
        }
    const double var = col_lane_sum(q, sh) / (double)m;
    if (!live) return;
    const float invstd = (float)(1.0 / sqrt(var + HEAD_BN_EPS));
    const float meanf = (float)mean;
    if (ty == 0) {
        invstd_out[col] = invstd;
        const float mom = HEAD_BN_MOMENTUM;
        const double unbias = (double)m / ((double)m - 1.0);
        running_mean[col] = (1.0f - mom) * running_mean[col] + mom * meanf;
        running_var[col] = (1.0f - mom) * running_var[col] + mom * (float)(var * unbias);
    }
    const float g = gamma[col], be = beta[col];
    for (int r = ty; r < m; r += COL_LANES) {
        const long long i = (long long)r * h + col;
        const float xh = (a[i] - meanf) * invstd;
        a[i] = xh;
        const float y = g * xh + be;
        r1[i] = y > 0.0f ? y : 0.0f;
    }
}

// Evaluation mode of Linear-bias + BatchNorm1d + ReLU on a (rows × h, the first GEMM's output), in place:
// y = max((a + b1)·scale + shift, 0) with scale = γ/sqrt(running_var + ε), shift = β − running_mean·scale
// (Head::forward_eval). Grid-stride loop.
extern "C" __global__ void head_bn_eval_relu(float* __restrict__ a, const float* __restrict__ b1, const float* __restrict__ gamma,
                                             const float* __restrict__ beta, const float* __restrict__ running_mean,
                                             const float* __restrict__ running_var, long long total, int h) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        const int j = (int)(i % h);
        const float scale = gamma[j] / sqrtf(running_var[j] + (float)HEAD_BN_EPS);
        const float shift = beta[j] - running_mean[j] * scale;
        const float y = (a[i] + b1[j]) * scale + shift;
        a[i] = y > 0.0f ? y : 0.0f;
    }
}

// F.normalize(y, dim=1) in place: each row divided by max(‖row‖, 1e-12); the divisor goes to norms[row]
// (norms may be NULL). One block per row (grid.x = rows), any multiple of 32 threads.
extern "C" __global__ void head_l2norm_rows(float* __restrict__ y, float* __restrict__ norms, int rows, int d) {
    const int row = blockIdx.x;
    if (row >= rows) return;
    float* yr = y + (long long)row * d;
    float s = 0.0f;
    for (int k = threadIdx.x; k < d; k += blockDim.x) s += yr[k] * yr[k];
    const float n = fmaxf(sqrtf(head_block_sum(s)), HEAD_NORM_FLOOR);
    for (int k = threadIdx.x; k < d; k += blockDim.x) yr[k] /= n;
    if (norms && threadIdx.x == 0) norms[row] = n;
}

// Backward of head_l2norm_rows: with g = gy1 + gy2 (gy2 may be NULL: g = gy1),
// gx_row = (g − y (y·g)) / n_row. One block per row (grid.x = rows), any multiple of 32 threads.
// gx may alias neither y nor the gradients.
extern "C" __global__ void head_l2norm_rows_bwd(const float* __restrict__ y, const float* __restrict__ norms, const float* __restrict__ gy1,
                                                const float* __restrict__ gy2, float* __restrict__ gx, int rows, int d) {
    const int row = blockIdx.x;
    if (row >= rows) return;
    const long long o = (long long)row * d;
    float s = 0.0f;
    for (int k = threadIdx.x; k < d; k += blockDim.x) {
        const float g = gy2 ? gy1[o + k] + gy2[o + k] : gy1[o + k];
        s += y[o + k] * g;
    }
    const float dot = head_block_sum(s);
    const float n = norms[row];
    for (int k = threadIdx.x; k < d; k += blockDim.x) {
        const float g = gy2 ? gy1[o + k] + gy2[o + k] : gy1[o + k];
        gx[o + k] = (g - y[o + k] * dot) / n;
    }
}

// out[c] = Σ_r a[r, c] over the m rows of a (m × cols), accumulated in double: bias gradients.
// 256 threads per block, grid.x = ceil(cols / 32).
extern "C" __global__ void head_col_sums(const float* __restrict__ a, int m, int cols, float* __restrict__ out) {
    __shared__ double sh[COL_LANES][32];
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    const int col = blockIdx.x * 32 + tx;
    double s = 0.0;
    if (col < cols)
        for (int r = ty; r < m; r += COL_LANES) s += (double)a[(long long)r * cols + col];
    s = col_lane_sum(s, sh);
    if (col < cols && ty == 0) out[col] = (float)s;
}

// ReLU backward using the ReLU's own output as the mask: g[i] = 0 where out[i] <= 0. Grid-stride loop.
extern "C" __global__ void head_relu_mask(float* __restrict__ g, const float* __restrict__ out, long long total) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x)
        if (out[i] <= 0.0f) g[i] = 0.0f;
}

// Backward of head_bn_train_fwd (first ReLU, then BatchNorm in training mode), per column of m × h:
// gy = g where r1 > 0 else 0; ∂γ = Σ gy x̂ and ∂β = Σ gy (double sums, written as floats); then
// xhat is overwritten with ∂a = γ·invstd·(gy − Σgy/m − x̂ Σ(gy x̂)/m). Mirrors Head::backward.
// 256 threads per block, grid.x = ceil(h / 32).
extern "C" __global__ void head_bn_bwd(float* __restrict__ xhat, const float* __restrict__ g, const float* __restrict__ r1,
                                       const float* __restrict__ gamma, const float* __restrict__ invstd,
                                       float* __restrict__ ggamma, float* __restrict__ gbeta, int m, int h) {
    __shared__ double sh[COL_LANES][32];
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    const int col = blockIdx.x * 32 + tx;
    const bool live = col < h;
    double sg = 0.0, sgx = 0.0;
    if (live)
        for (int r = ty; r < m; r += COL_LANES) {
            const long long i = (long long)r * h + col;
            const float gy = r1[i] > 0.0f ? g[i] : 0.0f;
            sg += (double)gy;
            sgx += (double)(gy * xhat[i]);
        }
    sg = col_lane_sum(sg, sh);
    sgx = col_lane_sum(sgx, sh);
    if (!live) return;
    if (ty == 0) {
        ggamma[col] = (float)sgx;
        gbeta[col] = (float)sg;
    }
    const double inv_m = 1.0 / (double)m;
    const float coef = gamma[col] * invstd[col];
    const float mean_gy = (float)(sg * inv_m), mean_gyx = (float)(sgx * inv_m);
    for (int r = ty; r < m; r += COL_LANES) {
        const long long i = (long long)r * h + col;
        const float gy = r1[i] > 0.0f ? g[i] : 0.0f;
        xhat[i] = coef * (gy - mean_gy - xhat[i] * mean_gyx);
    }
}

// torch.optim.SGD (dampening 0, no Nesterov) on n entries: gk = ∇ + wd·p; buf = gk on the parameter's
// first update (`first` != 0, also used when μ = 0) else μ·buf + gk; p −= lr·buf. Mirrors head/sgd.rs.
// Grid-stride loop.
extern "C" __global__ void head_sgd(float* __restrict__ p, float* __restrict__ buf, const float* __restrict__ grad, long long n,
                                    float lr, float mu, float wd, int first) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float gk = grad[i] + wd * p[i];
        const float b = first ? gk : mu * buf[i] + gk;
        buf[i] = b;
        p[i] -= lr * b;
    }
}

// out[i, :] = x[idx[i], :] for i < rows (a training batch gathered from device-resident features).
// Grid-stride loop over rows × cols.
extern "C" __global__ void head_gather_rows(const float* __restrict__ x, const int* __restrict__ idx, int rows, int cols,
                                            float* __restrict__ out) {
    const long long total = (long long)rows * cols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / cols, c = i % cols;
        out[i] = x[(long long)idx[r] * cols + c];
    }
}
