// CLIP-specific glue kernels for the CUDA towers (src/clip/cuda.rs); the transformer
// building blocks themselves are in kernels/nn.cu. Plain CUDA C for NVRTC (no headers).

// Text embeddings (mirrors transformers CLIPTextEmbeddings.forward: token_embedding(ids) +
// position_embedding(positions)). ids: [b*len] int32 (already validated < vocab on the host, positions past
// a sequence's end filled with its end-of-text token as the CPU tower does), tok: [vocab, d] f32,
// pos: [max_pos, d] f32 (len <= max_pos), out: [b*len, d] f32 — the residual stream.
// grid: ceil(b*len*d / blockDim); one thread per output element.
extern "C" __global__ void text_tokens(const int* __restrict__ ids, const float* __restrict__ tok,
                                       const float* __restrict__ pos, long long b, int len, int d,
                                       float* __restrict__ out) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= b * len * d) return;
    const long long row = i / d;
    const int f = (int)(i % d);
    const int t = (int)(row % len);
    out[i] = tok[(long long)ids[row] * d + f] + pos[(long long)t * d + f];
}

// out[r, :] = src[rows[r], :] for r < n (the pooled tokens: class token per image, end-of-text token per
// text), f32 [n, d]. rows: [n] int32 row indices into src (validated on the host).
// grid: ceil(n*d / blockDim).
extern "C" __global__ void gather_rows(const float* __restrict__ src, const int* __restrict__ rows, long long n,
                                       int d, float* __restrict__ out) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * d) return;
    const long long r = i / d;
    out[i] = src[(long long)rows[r] * d + (i % d)];
}
