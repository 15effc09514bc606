// Transformer building blocks for the CLIP towers on CUDA:
// patch extraction (im2col), token assembly, LayerNorm, bias + activation, bias + residual, row softmax and
// a fused multi-head attention. The matrix products themselves are cuBLAS GEMMs (f16 inputs, f32
// accumulation) between these kernels.
//
// Conventions (mirroring the CPU engine in src/clip/layers.rs):
// * activations are row-major [tokens, features], the tokens of all items of a batch stacked;
// * the residual stream is f32; inputs of GEMMs are f16 (stored as raw 16-bit patterns, "half_t", since
//   NVRTC runs without the CUDA headers wheel: conversions are single PTX cvt instructions);
// * QKV come from ONE product: qkv[token, 0:d] = q, [d:2d] = k, [2d:3d] = v, head h at columns h*hd.
// Plain CUDA C for NVRTC; all reductions in f32.

typedef unsigned short half_t;

__device__ __forceinline__ float h2f(half_t h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ half_t f2h(float f) {
    half_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum (blockDim a multiple of 32, at most 1024); every thread gets the result.
__device__ float nn_block_sum(float v) {
    __shared__ float part[32];
    __shared__ float total;
    v = warp_sum(v);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < (int)(blockDim.x >> 5) ? part[lane] : 0.0f;
        w = warp_sum(w);
        if (lane == 0) total = w;
    }
    __syncthreads();
    const float r = total;
    __syncthreads();
    return r;
}

// ---------------------------------------------------------------------------------------------------
// Activations (transformers ACT2FN): 0 = quick_gelu x*sigmoid(1.702x), 1 = gelu (exact, erf).

__device__ __forceinline__ float activate(float x, int act) {
    if (act == 0) return x / (1.0f + expf(-1.702f * x));
    return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
}

// ---------------------------------------------------------------------------------------------------
// Patch extraction for the patch-embedding convolution (kernel = stride = P, no bias), as a GEMM:
//   patches[(img*np + py*gw + px), c*P*P + ky*P + kx] = pixels[img, c, py*P + ky, px*P + kx]
// (the column order of the conv weight [d, 3, P, P] flattened), f16 for the GEMM. gw = W / P, np = gh*gw.
// grid: ceil(b*np*3*P*P / blockDim); one thread per output element (coalesced writes).
extern "C" __global__ void patches_im2col(const float* __restrict__ pixels, int b, int h, int w, int p,
                                          half_t* __restrict__ patches) {
    const int gw = w / p, gh = h / p;
    const long long cols = 3LL * p * p;
    const long long total = (long long)b * gh * gw * cols;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const long long row = i / cols;
    const int col = (int)(i % cols);
    const int img = (int)(row / (gh * gw)), patch = (int)(row % (gh * gw));
    const int py = patch / gw, px = patch % gw;
    const int c = col / (p * p), ky = (col / p) % p, kx = col % p;
    const float v = pixels[(((long long)img * 3 + c) * h + py * p + ky) * w + px * p + kx];
    patches[i] = f2h(v);
}

// Vision token assembly (CLIPVisionEmbeddings.forward): for item n, token 0 is the class embedding and
// token 1+k is patch k's embedding, each plus its position embedding. patch_emb: [b*np, d] f32 (the
// GEMM output), cls: [d], pos: [(1+np), d], out: [b*(1+np), d] f32 (the residual stream).
// grid: ceil(b*(1+np)*d / blockDim).
extern "C" __global__ void vision_tokens(const float* __restrict__ patch_emb, const float* __restrict__ cls,
                                         const float* __restrict__ pos, int b, int np, int d,
                                         float* __restrict__ out) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long per_item = (long long)(1 + np) * d;
    if (i >= (long long)b * per_item) return;
    const long long item = i / per_item;
    const int t = (int)((i % per_item) / d), f = (int)(i % d);
    const float e = t == 0 ? cls[f] : patch_emb[(item * np + (t - 1)) * d + f];
    out[i] = e + pos[(long long)t * d + f];
}

// ---------------------------------------------------------------------------------------------------
// LayerNorm over the last dimension (nn.LayerNorm, biased variance, eps inside the square root), one
// block per row, two-pass (mean, then centred variance) for accuracy. Writes f32 (`out32`) and/or f16
// (`out16`, the next GEMM's input); either may be NULL.
extern "C" __global__ void layer_norm(const float* __restrict__ x, int d, const float* __restrict__ gamma,
                                      const float* __restrict__ beta, float eps, float* __restrict__ out32,
                                      half_t* __restrict__ out16) {
    const long long off = (long long)blockIdx.x * d;
    const float* row = x + off;
    float s = 0.0f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) s += row[j];
    const float mean = nn_block_sum(s) / (float)d;
    float v = 0.0f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        const float c = row[j] - mean;
        v += c * c;
    }
    const float rstd = rsqrtf(nn_block_sum(v) / (float)d + eps);
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        const float y = (row[j] - mean) * rstd * gamma[j] + beta[j];
        if (out32) out32[off + j] = y;
        if (out16) out16[off + j] = f2h(y);
    }
}

// y = act(x + bias) (act < 0: no activation) from a GEMM's f32 output [rows, n] to f16 for the next
// GEMM (fc1 → fc2, qkv projection → attention). grid: ceil(rows*n / blockDim).
extern "C" __global__ void bias_act_to_f16(const float* __restrict__ x, const float* __restrict__ bias, long long rows,
                                           int n, int act, half_t* __restrict__ out) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * n) return;
    float v = x[i] + (bias ? bias[i % n] : 0.0f);
    if (act >= 0) v = activate(v, act);
    out[i] = f2h(v);
}

// resid += x + bias (the residual connections after out_proj and fc2), f32. grid: ceil(rows*n / blockDim).
extern "C" __global__ void bias_residual(const float* __restrict__ x, const float* __restrict__ bias, long long rows,
                                         int n, float* __restrict__ resid) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * n) return;
    resid[i] += x[i] + (bias ? bias[i % n] : 0.0f);
}

// Row softmax from f32 scores to f16 probabilities (the GEMM-based attention of src/clip/cuda.rs: scores
// = scale * Q K^T from cuBLAS, then this, then P V from cuBLAS), one warp per row of width n. With
// `causal`, row r is a query at position r % n and keys after it get probability 0.
// grid: ceil(rows / (blockDim/32)); block: a multiple of 32 threads.
extern "C" __global__ void softmax_rows_to_f16(const float* __restrict__ x, long long rows, int n, int causal,
                                               half_t* __restrict__ out) {
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;  // uniform per warp: the shuffles below see full warps
    const int lane = threadIdx.x & 31;
    const float* r = x + row * n;
    half_t* o = out + row * n;
    const int limit = causal ? (int)(row % n) + 1 : n;
    float m = -3.402823466e38f;
    for (int j = lane; j < limit; j += 32) m = fmaxf(m, r[j]);
    m = warp_max(m);
    float s = 0.0f;
    for (int j = lane; j < limit; j += 32) s += expf(r[j] - m);
    const float inv = 1.0f / warp_sum(s);
    for (int j = lane; j < n; j += 32) o[j] = f2h(j < limit ? expf(r[j] - m) * inv : 0.0f);
}

// ---------------------------------------------------------------------------------------------------
// Fused multi-head attention (mirrors transformers CLIPAttention.forward: softmax(Q K^T * hd^-0.5 +
// causal mask) V per item and head), f16 in and out, f32 accumulation, never materialising the scores.
//
// qkv: [b*seq, 3d] f16 (bias already added), out: [b*seq, d] f16 with head h at columns h*hd.
// grid: (b*heads, ceil(seq / ATT_WARPS)); block: 32*ATT_WARPS threads; each warp owns one query row.
// Keys/values stream through shared memory in tiles of 32 (one key per lane for the scores); the softmax
// is the online one (running max and sum, rescaling the accumulator when the max grows). Each lane owns
// hd/32 output dimensions (hd <= 128, a multiple of 32... or any hd <= 128: lanes loop over dims).
#define ATT_WARPS 4
#define ATT_TILE 32
#define ATT_MAX_HD 128
extern "C" __global__ void __launch_bounds__(32 * ATT_WARPS)
attention_fused(const half_t* __restrict__ qkv, int seq, int heads, int hd, int causal, float scale,
                half_t* __restrict__ out) {
    __shared__ float ks[ATT_TILE][ATT_MAX_HD + 1];  // +1: lanes read different rows, same column
    __shared__ float vs[ATT_TILE][ATT_MAX_HD];
    __shared__ float qs[ATT_WARPS][ATT_MAX_HD];
    const int item = blockIdx.x / heads, h = blockIdx.x % heads;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int d = heads * hd;
    const long long row_stride = 3LL * d;
    const half_t* base = qkv + (long long)item * seq * row_stride + h * hd;
    const int q_idx = blockIdx.y * ATT_WARPS + warp;  // this warp's query position
    const bool active = q_idx < seq;

    if (active) {
        for (int k = lane; k < hd; k += 32) qs[warp][k] = h2f(base[(long long)q_idx * row_stride + k]) * scale;
    }
    float acc[ATT_MAX_HD / 32];
    for (int r = 0; r < ATT_MAX_HD / 32; ++r) acc[r] = 0.0f;
    float m = -3.402823466e38f, l = 0.0f;

    // Keys this block needs: all, or up to its last query for a causal mask.
    const int last_q = min(seq, (int)(blockIdx.y + 1) * ATT_WARPS) - 1;
    const int n_keys = causal ? last_q + 1 : seq;
    for (int t0 = 0; t0 < n_keys; t0 += ATT_TILE) {
        const int tile = min(ATT_TILE, n_keys - t0);
        __syncthreads();  // previous tile fully consumed (and qs written before the first use)
        for (int e = threadIdx.x; e < tile * hd; e += blockDim.x) {
            const int kk = e / hd, c = e % hd;
            const long long r = (long long)(t0 + kk) * row_stride;
            ks[kk][c] = h2f(base[r + d + c]);
            vs[kk][c] = h2f(base[r + 2 * d + c]);
        }
        __syncthreads();
        if (!active) continue;
        // Score of key (t0 + lane) for this warp's query.
        const int key = t0 + lane;
        const bool valid = lane < tile && (!causal || key <= q_idx);
        float s = -3.402823466e38f;
        if (valid) {
            s = 0.0f;
            for (int c = 0; c < hd; ++c) s += qs[warp][c] * ks[lane][c];
        }
        const float tile_max = warp_max(s);
        const float new_m = fmaxf(m, tile_max);
        const float pexp = valid ? expf(s - new_m) : 0.0f;
        const float corr = expf(m - new_m);  // 0 on the first tile (m = -FLT_MAX)
        l = l * corr + warp_sum(pexp);
        for (int r = 0; r < ATT_MAX_HD / 32; ++r) acc[r] *= corr;
        // acc[dim] += sum_key p_key * v[key][dim], p broadcast from the lane that owns the key.
        for (int kk = 0; kk < tile; ++kk) {
            const float p = __shfl_sync(0xffffffffu, pexp, kk);
            for (int r = 0; r < ATT_MAX_HD / 32; ++r) {
                const int c = lane + 32 * r;
                if (c < hd) acc[r] += p * vs[kk][c];
            }
        }
        m = new_m;
    }
    if (active) {
        const float inv = 1.0f / l;
        half_t* o = out + ((long long)item * seq + q_idx) * d + h * hd;
        for (int r = 0; r < ATT_MAX_HD / 32; ++r) {
            const int c = lane + 32 * r;
            if (c < hd) o[c] = f2h(acc[r] * inv);
        }
    }
}
