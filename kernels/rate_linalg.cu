// Batched small-matrix kernels for the coding rates R(Z) and R_c(Z, Pi) (docs/design.md §1).
//
// Plain CUDA C compiled by NVRTC (no CUDA headers). Every matrix is float32, row-major.
//
// "Packed" symmetric storage: the lower triangle of a d×d symmetric matrix, row by row:
//     element (a, b) with a >= b lives at q(a, b) = a*(a+1)/2 + b,   p = d*(d+1)/2 entries.
// The host forms all Gram matrices Z^T diag(pi_j) Z at once as ONE cuBLAS GEMM
//     Gpack (J × p) = Pi[:, chunk]^T (J × m) · Zpack (m × p),   Zpack[i, q(a,b)] = z_ia z_ib,
// and the gradient terms from the inverses the same way; these kernels do everything around those
// GEMMs: the outer-product packing, the Cholesky factorisation + log-determinant + triangular inverse of
// many small SPD matrices, and the unpacking/packing between full and packed storage.

// Row index a of packed position q (a*(a+1)/2 <= q < (a+1)*(a+2)/2). The float estimate is exact
// to within one for the sizes used here (q < 2^24); the two loops correct it.
__device__ __forceinline__ int packed_row(int q) {
    int a = (int)((sqrtf(8.0f * (float)q + 1.0f) - 1.0f) * 0.5f);
    while ((a + 1) * (a + 2) / 2 <= q) a++;
    while (a * (a + 1) / 2 > q) a--;
    return a;
}

// Zpack[i, q(a,b)] = z_ia * z_ib for every sample i (one block per sample; z_i staged in shared memory).
// Z: m × d, Zpack: m × p.
extern "C" __global__ void outer_pack(const float* __restrict__ Z, int d, float* __restrict__ Zpack) {
    extern __shared__ float zs[];  // d floats
    const int i = blockIdx.x;
    const long long p = (long long)d * (d + 1) / 2;
    for (int a = threadIdx.x; a < d; a += blockDim.x) zs[a] = Z[(long long)i * d + a];
    __syncthreads();
    float* out = Zpack + (long long)i * p;
    for (int q = threadIdx.x; q < p; q += blockDim.x) {
        const int a = packed_row(q);
        const int b = q - a * (a + 1) / 2;
        out[q] = zs[a] * zs[b];
    }
}

// A_full[k] = add_identity * I + alpha[k] * G[k] for a batch of packed symmetric G (J × p) into full
// row-major d×d matrices (both triangles written). Used by the blocked (d > 128) Cholesky path.
// grid: (ceil(d*d / blockDim), J).
extern "C" __global__ void sym_unpack(const float* __restrict__ Gpack, const float* __restrict__ alpha,
                                      int add_identity, int d, float* __restrict__ A) {
    const int k = blockIdx.y;
    const long long p = (long long)d * (d + 1) / 2;
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= d * d) return;
    const int r = idx / d, c = idx % d;
    const int a = r > c ? r : c, b = r > c ? c : r;
    const float s = alpha ? alpha[k] : 1.0f;
    float v = s * Gpack[(long long)k * p + a * (a + 1) / 2 + b];
    if (add_identity && r == c) v += 1.0f;
    A[(long long)k * d * d + idx] = v;
}

// Wpack[k, q(a,b)] = w_ab * M[k][a][b] with w = 1 on the diagonal and 2 off it, reading the lower
// triangle of full symmetric matrices M (J × d × d). With this weighting a plain dot product of a
// packed outer product and Wpack is the full quadratic form:  sum_q Zpack[i,q] Wpack[k,q] = z_i^T M_k z_i.
// grid: (ceil(p / blockDim), J).
extern "C" __global__ void sym_pack_weighted(const float* __restrict__ M, int d, float* __restrict__ Wpack) {
    const int k = blockIdx.y;
    const long long p = (long long)d * (d + 1) / 2;
    const int q = blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= p) return;
    const int a = packed_row(q);
    const int b = q - a * (a + 1) / 2;
    const float v = M[(long long)k * d * d + (long long)a * d + b];
    Wpack[(long long)k * p + q] = (a == b) ? v : 2.0f * v;
}

// Block-wide sum of one float per thread (blockDim a multiple of 32, at most 1024). All threads get it.
__device__ float block_sum(float v) {
    __shared__ float warp_part[32];
    __shared__ float total;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < (int)(blockDim.x >> 5) ? warp_part[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) w += __shfl_xor_sync(0xffffffffu, w, o);
        if (lane == 0) total = w;
    }
    __syncthreads();
    const float r = total;
    __syncthreads();  // lets the caller reuse block_sum right away
    return r;
}

// trace[k] = sum_a M[k][a][a] (one block per matrix; a fixed reduction order, so deterministic).
extern "C" __global__ void batched_trace(const float* __restrict__ M, int d, float* __restrict__ trace) {
    const int k = blockIdx.x;
    float s = 0.0f;
    for (int a = threadIdx.x; a < d; a += blockDim.x) s += M[(long long)k * d * d + (long long)a * d + a];
    s = block_sum(s);
    if (threadIdx.x == 0) trace[k] = s;
}

// grad[i, :] = scale * B_i z_i, where B_i is symmetric and stored packed *weighted* (off-diagonal entries
// doubled, as produced by GEMMs against Wpack): B_i[a][b] = Bw[i, q(a,b)] / 2 for a != b.
// One block per sample; contributions go through shared-memory atomics, then one coalesced store.
extern "C" __global__ void packed_symv(const float* __restrict__ Bw, const float* __restrict__ Z, int d, float scale,
                                       float* __restrict__ grad) {
    extern __shared__ float sh[];  // 2*d floats: z_i, then the accumulator
    float* zs = sh;
    float* acc = sh + d;
    const int i = blockIdx.x;
    const long long p = (long long)d * (d + 1) / 2;
    for (int a = threadIdx.x; a < d; a += blockDim.x) {
        zs[a] = Z[(long long)i * d + a];
        acc[a] = 0.0f;
    }
    __syncthreads();
    const float* row = Bw + (long long)i * p;
    for (int q = threadIdx.x; q < p; q += blockDim.x) {
        const int a = packed_row(q);
        const int b = q - a * (a + 1) / 2;
        const float w = row[q];
        if (a == b) {
            atomicAdd(&acc[a], w * zs[a]);
        } else {
            const float h = 0.5f * w;
            atomicAdd(&acc[a], h * zs[b]);
            atomicAdd(&acc[b], h * zs[a]);
        }
    }
    __syncthreads();
    for (int a = threadIdx.x; a < d; a += blockDim.x) grad[(long long)i * d + a] = scale * acc[a];
}

// ---------------------------------------------------------------------------------------------------
// Cholesky + log-determinant + triangular inverse of a batch of small SPD matrices (n <= 128), one
// thread block per matrix, the matrix held in shared memory in packed-lower form (n=128: 33 KB, under
// the 48 KB static limit, so no opt-in attribute is needed and several blocks share an SM).
//
//   S   = add_identity * I + alpha[b] * A_b                     (lower triangle of A_b read)
//   S   = L L^T            (right-looking, column by column)
//   logdet[b] = (accumulate ? logdet[b] : 0) + 2 * sum_k log L_kk
//   X   = L^{-1}           (in place, LAPACK trti2 "lower" order: last column first; skipped when
//                           Xout is NULL, for a log-determinant alone)
//
// Writes L (if Lout != 0) and X as full n×n row-major tiles (zeros above the diagonal) at the given
// leading dimensions, so the same kernel serves two callers:
//   * d <= 128: the whole matrix, read straight from the packed Gram GEMM output (a_packed = 1);
//   * d > 128: the diagonal tile of a blocked Cholesky inside full d×d matrices (lda = ldl = ldx = d).
// not_pd[b] is set to 1 when a pivot is not positive (or NaN); the host turns that into an error.
// blockDim.x must be 256 (the trailing update uses a 16×16 thread layout).
#define CHOL_MAX_N 128
extern "C" __global__ void __launch_bounds__(256)
chol_inv_small(const float* __restrict__ A, long long a_stride, int lda, int a_packed,
               const float* __restrict__ alpha, int add_identity,
               float* __restrict__ Lout, long long l_stride, int ldl,
               float* __restrict__ Xout, long long x_stride, int ldx,
               float* __restrict__ logdet, int accumulate, int* __restrict__ not_pd, int n) {
    __shared__ float S[CHOL_MAX_N * (CHOL_MAX_N + 1) / 2];
    __shared__ float tmp[CHOL_MAX_N];
    __shared__ int bad;
    const int b = blockIdx.x;
    const int tid = threadIdx.x;
    const int nt = blockDim.x;
    const int P = n * (n + 1) / 2;
    const float s = alpha ? alpha[b] : 1.0f;
    if (tid == 0) bad = 0;

    // Load the lower triangle.
    const float* Ab = A + (long long)b * a_stride;
    for (int q = tid; q < P; q += nt) {
        const int i = packed_row(q);
        const int j = q - i * (i + 1) / 2;
        float v = a_packed ? Ab[q] : Ab[(long long)i * lda + j];
        v *= s;
        if (add_identity && i == j) v += 1.0f;
        S[q] = v;
    }
    __syncthreads();

    // Right-looking Cholesky. Step A: every thread reads the pivot and scales column k below it.
    // Step B: thread 0 stores the pivot's square root; all threads update the trailing lower triangle.
    // Step A only reads S[kk] and writes S[ik] (i > k); step B writes S[kk] and S[ij] (i >= j > k) and
    // reads S[ik], S[jk] (i, j > k): no element is written in a step where another thread reads it.
    const int ty = tid >> 4, tx = tid & 15;
    float ld = 0.0f;  // thread 0's running sum of log L_kk
    for (int k = 0; k < n; ++k) {
        const int kk = k * (k + 1) / 2 + k;
        const float piv = S[kk];
        const bool ok = piv > 0.0f;  // false for NaN too
        const float l = ok ? sqrtf(piv) : 1.0f;
        const float inv_l = 1.0f / l;
        for (int i = k + 1 + tid; i < n; i += nt) S[i * (i + 1) / 2 + k] *= inv_l;
        __syncthreads();
        if (tid == 0) {
            if (!ok) bad = 1;
            S[kk] = l;
            ld += logf(l);
        }
        for (int i = k + 1 + ty; i < n; i += 16) {
            const int ri = i * (i + 1) / 2;
            const float lik = S[ri + k];
            for (int j = k + 1 + tx; j <= i; j += 16) S[ri + j] -= lik * S[j * (j + 1) / 2 + k];
        }
        __syncthreads();
    }

    if (tid == 0) {
        logdet[b] = (accumulate ? logdet[b] : 0.0f) + 2.0f * ld;
        if (bad) not_pd[b] = 1;
    }
    if (Lout) {
        float* Lb = Lout + (long long)b * l_stride;
        for (int idx = tid; idx < n * n; idx += nt) {
            const int i = idx / n, j = idx % n;
            Lb[(long long)i * ldl + j] = j <= i ? S[i * (i + 1) / 2 + j] : 0.0f;
        }
    }

    if (!Xout) return;

    // In-place inverse of the lower-triangular L. With L = [[l_jj, 0], [l, L']] (j the first index of
    // the trailing part) L^{-1} = [[1/l_jj, 0], [-(L'^{-1} l)/l_jj, L'^{-1}]], and L'^{-1} is already in
    // place when columns are processed from the last to the first.
    for (int j = n - 1; j >= 0; --j) {
        const float djj = 1.0f / S[j * (j + 1) / 2 + j];
        // tmp[i] = (L'^{-1} l)_i = sum_{k=j+1..i} Xinv[i][k] * L[k][j]
        for (int i = j + 1 + tid; i < n; i += nt) {
            const int ri = i * (i + 1) / 2;
            float acc = 0.0f;
            for (int k = j + 1; k <= i; ++k) acc += S[ri + k] * S[k * (k + 1) / 2 + j];
            tmp[i] = acc;
        }
        __syncthreads();
        for (int i = j + 1 + tid; i < n; i += nt) S[i * (i + 1) / 2 + j] = -tmp[i] * djj;
        if (tid == 0) S[j * (j + 1) / 2 + j] = djj;
        __syncthreads();
    }

    float* Xb = Xout + (long long)b * x_stride;
    for (int idx = tid; idx < n * n; idx += nt) {
        const int i = idx / n, j = idx % n;
        Xb[(long long)i * ldx + j] = j <= i ? S[i * (i + 1) / 2 + j] : 0.0f;
    }
}
