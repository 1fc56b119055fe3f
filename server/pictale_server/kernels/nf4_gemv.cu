// NF4 GEMV with a shared-memory table of code pairs: out[MX, N] = x[MX, K] @ W^T (+ bias), W in
// bitsandbytes' NF4 layout (packed codes, high nibble first; one fp32 absmax per 64 weights),
// read where bitsandbytes loaded it. docs/kernels.md explains the design and its measurements.
//
// nf4_cuda.py compiles this file with NVRTC at load, one binary per launch configuration, with
// the #defines below prepended. Every one has a default, so it also builds as it is with nvcc
// (the writer's K = 5120, one row, one weight, the A10G launch):
//     nvcc -arch=sm_86 -cubin -o nf4_gemv.cubin server/pictale_server/kernels/nf4_gemv.cu
//
// The lookup: a byte holds two codes, so a 256-entry table of bf16 *pairs* dequantizes two
// weights with one shared-memory load, ready for a packed bf16x2 FMA against x's pairs as they
// are stored. The table is stored 32 times, one copy per lane, so the 32 lanes of a warp always
// read 32 different banks. Two layouts (WIDE): 32 KB at `byte * 128 + lane * 4`, whose offset
// costs a shift and a mask per byte, or 64 KB at `byte * 256 + lane * 4`, whose offset is one
// `prmt` (fewer instructions; only one such block fits an A10G's SM).
//
// The walk: a block owns NT rows at a time (a tile) and walks all of K. Thread t takes the
// 16-byte chunks (32 codes, half of a 64-weight block) t, t + threads, ... (CPT of them) of every
// row, so its slice of x is the same for every tile and sits in registers for the whole launch.
// Blocks are persistent (MIN_BLOCKS per SM) and take tiles with a grid stride, requesting the
// next tile's codes before computing this one. A tile ends with a warp-shuffle and
// shared-memory reduction per row.
//
// The weight's rows may come in up to NF4_MAX_PARTS separately allocated parts (q/k/v, gate/up
// as bitsandbytes loaded them): one launch computes all of them without copying them together.
//
// NORM: the launch makes its own x from a decoder layer's residual stream, row by row --
// h = residual + delta, x = norm_weight * rmsnorm(h) -- rounded to bf16 after each step as
// transformers' PyTorch ops round, and block 0 stores h (the new residual) to residual_out.
// Every block holds all of x in registers anyway, so this replaces a launch at the cost of a
// block-wide sum of squares per row.
//
// Rows of x (MX, a batch of decode streams) share each code's lookup; each row's sum is taken
// in the same order whatever MX, the tile height or blocks per SM: only CPT, THREADS and GROUPS
// decide it, and nf4_cuda.py keeps those of the one-row launch for every MX. A stream's logits
// are then the same bits alone and in a batch (batch invariance).

// ---- Limits of the kernel, read by nf4_cuda.py (the only place they are defined) ----
#define NF4_MAX_ROWS 8             // rows of x (MX) one launch takes
#define NF4_MAX_PARTS 3            // separately allocated row blocks one launch reads
#define NF4_PART_ROWS_MULTIPLE 8   // every part but the last: rows a multiple of every tile height

// ---- Compile-time configuration (nf4_cuda.py prepends all of these) ----
#ifndef CHUNKS
#define CHUNKS 160                 // K / 32: 16-byte chunks of codes per row
#endif
#ifndef NT
#define NT 4                       // rows per tile: 2, 4 or 8
#endif
#ifndef CPT
#define CPT 1                      // chunks per thread (of each row)
#endif
#ifndef GROUPS
#define GROUPS 1                   // row groups, 1 or 2 (see load_tile)
#endif
#ifndef THREADS                    // as Launch.threads(): whole warps, or whole half warps a set
#if GROUPS == 1
#define THREADS ((((CHUNKS + CPT - 1) / CPT + 31) / 32) * 32)
#else
#define THREADS (GROUPS * ((((CHUNKS + CPT - 1) / CPT + 15) / 16) * 16))
#endif
#endif
#ifndef MIN_BLOCKS
#define MIN_BLOCKS 3               // blocks per SM the registers must allow
#endif
#ifndef MX
#define MX 1                       // rows of x
#endif
#ifndef HAS_BIAS
#define HAS_BIAS 0
#endif
#ifndef WIDE
#define WIDE 0                     // 1: the 64 KB table
#endif
#ifndef PARTS
#define PARTS 1                    // 1: one weight, compiled without the per-tile choice of part
#endif                             //    (it costs 2-3 %); NF4_MAX_PARTS: up to that many parts
#ifndef NORM
#define NORM 0                     // 1: x made from residual + delta, row by row
#endif
#ifndef ROWS_EXACT
#define ROWS_EXACT 1               // 1: NT divides N, so no row is clamped and a tile's addresses
#endif                             //    are one base plus constant offsets

static_assert(MX >= 1 && MX <= NF4_MAX_ROWS, "MX: 1..NF4_MAX_ROWS rows of x");
static_assert(NF4_PART_ROWS_MULTIPLE % NT == 0, "a tile must never span two parts");
static_assert(PARTS == 1 || PARTS == NF4_MAX_PARTS, "PARTS: 1 or NF4_MAX_PARTS");
static_assert(GROUPS == 1 || GROUPS == 2, "GROUPS: 1 or 2");
static_assert(NT % GROUPS == 0, "each row group takes NT / GROUPS rows");
static_assert(THREADS % 32 == 0 && THREADS <= 1024, "whole warps, at most 1024 threads");
static_assert(CHUNKS % 2 == 0, "K is a multiple of 64");

typedef unsigned int u32;
typedef unsigned short u16;
struct __align__(16) Words { u32 a, b, c, d; };

#define WARPS (THREADS / 32)
#define BLOCKS (CHUNKS / 2)  // 64-weight blocks per row: one absmax each

extern __shared__ u32 smem[];

// Weights and scales are read once: through the read-only path, not kept in L1.
__device__ __forceinline__ Words load_stream(const Words* p) {
    Words v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.a), "=r"(v.b), "=r"(v.c), "=r"(v.d) : "l"(p));
    return v;
}

__device__ __forceinline__ float load_scale(const float* p) {
    float v;
    asm("ld.global.nc.L1::no_allocate.f32 %0, [%1];" : "=f"(v) : "l"(p));
    return v;
}

// Word q (16 bytes) of a row's 64-byte chunk, or zeros where this thread has no such chunk.
__device__ __forceinline__ Words x_word(const u32* row, int chunk, int q, bool valid) {
    return valid ? *(reinterpret_cast<const Words*>(row) + chunk * 4 + q) : Words{0u, 0u, 0u, 0u};
}

__device__ __forceinline__ float bits_to_float(u32 u) {
    float f;
    asm("mov.b32 %0, %1;" : "=f"(f) : "r"(u));
    return f;
}

__device__ __forceinline__ u32 float_to_bits(float f) {
    u32 u;
    asm("mov.b32 %0, %1;" : "=r"(u) : "f"(f));
    return u;
}

__device__ __forceinline__ u32 fma_bf16x2(u32 a, u32 b, u32 c) {
    u32 d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}

__device__ __forceinline__ float shuffle_xor(float v, int mask) {
    float r;
    asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(v), "r"(mask));
    return r;
}

// The pair of values for the byte whose table row `offset` points at (this lane's copy).
__device__ __forceinline__ u32 pair_at(u32 offset) {
    return *reinterpret_cast<const u32*>(reinterpret_cast<const char*>(smem) + offset);
}

#if WIDE
// Table rows of 256 bytes (64 KB): one prmt puts byte k of the word in bits 8..15 of the
// offset and the lane's slot (lane * 4) in bits 0..7.
__device__ __forceinline__ u32 byte_offset(u32 w, u32 lane4, u32 selector) {
    u32 offset;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(offset) : "r"(w), "r"(lane4), "r"(selector));
    return offset;
}
#define BYTE0(w) byte_offset(w, lane4, 0x5504u)
#define BYTE1(w) byte_offset(w, lane4, 0x5514u)
#define BYTE2(w) byte_offset(w, lane4, 0x5524u)
#define BYTE3(w) byte_offset(w, lane4, 0x5534u)
#define TABLE_WORDS (256 * 64)
#else
// Table rows of 128 bytes (32 KB): bits 7..14 of the offset hold byte 0, 1, 2 or 3 of the
// word; bits 2..6 the lane.
#define BYTE0(w) ((((w) << 7) & 0x7F80u) | lane4)
#define BYTE1(w) ((((w) >> 1) & 0x7F80u) | lane4)
#define BYTE2(w) ((((w) >> 9) & 0x7F80u) | lane4)
#define BYTE3(w) ((((w) >> 17) & 0x7F80u) | lane4)
#define TABLE_WORDS (256 * 32)
#endif

// The values of one word of codes (4 bytes, 8 weights) as 4 bf16 pairs: looked up once, used
// for every row of x.
__device__ __forceinline__ void word_pairs(u32 w, u32 lane4, u32 (&pairs)[4]) {
    pairs[0] = pair_at(BYTE0(w));
    pairs[1] = pair_at(BYTE1(w));
    pairs[2] = pair_at(BYTE2(w));
    pairs[3] = pair_at(BYTE3(w));
}

// The 8 products of one word's pairs against the matching 4 pairs of x, summed in one bf16x2
// chain (a chain of one word keeps bitsandbytes-level error; longer ones do not:
// docs/kernels.md), then widened and the two halves added in fp32.
__device__ __forceinline__ float pair_dot(const u32 (&pairs)[4], const u32* xv) {
    u32 p = 0x80008000u;  // -0 in both halves: adding it changes nothing
    p = fma_bf16x2(pairs[0], xv[0], p);
    p = fma_bf16x2(pairs[1], xv[1], p);
    p = fma_bf16x2(pairs[2], xv[2], p);
    p = fma_bf16x2(pairs[3], xv[3], p);
    return bits_to_float(p << 16) + bits_to_float(p & 0xFFFF0000u);
}

__device__ __forceinline__ u16 to_bf16(float f) {
    u32 u = float_to_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u16)((u >> 16) | 0x40u);  // NaN stays NaN
    return (u16)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// The two bf16 halves of a word, widened, and a pair of floats rounded back into one word
// (round to nearest even, as to_bf16, in one instruction).
__device__ __forceinline__ float low_half(u32 w) { return bits_to_float(w << 16); }
__device__ __forceinline__ float high_half(u32 w) { return bits_to_float(w & 0xFFFF0000u); }
__device__ __forceinline__ u32 bf16_pair(float low, float high) {
    u32 d;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(high), "f"(low));
    return d;
}

// The weight's rows may sit in up to three separately allocated parts: rows [0, end0) in part
// 0, [end0, end1) in part 1, the rest in part 2. The host keeps end0 and end1 multiples of
// NF4_PART_ROWS_MULTIPLE, so a tile lies in one part; each part's pointers are shifted back by
// its first row, so a row's address is computed as with one weight.
struct Parts {
    const Words* w0; const Words* w1; const Words* w2;
    const float* a0; const float* a1; const float* a2;
    int end0, end1;
};

// Row groups: with GROUPS = 2 a block is two sets of threads, each walking all of K for half
// of the tile's rows (RPT rows a thread). K = 3584 has 112 chunks, 3.5 warps: one set of 128
// threads leaves 16 lanes of every tile idle; two sets of 112 fill 7 warps. A set then ends on
// a half warp, so the sums are taken over 16 lanes (LANES) rather than 32.
#define GROUP_THREADS (THREADS / GROUPS)
#define RPT (NT / GROUPS)
#define LANES (GROUPS == 1 ? 32 : 16)
#define VALUES (RPT * MX)
#define UNITS (GROUP_THREADS / LANES)  // lane groups per set
#define TABLE_STEPS ((256 * 8 + THREADS - 1) / THREADS)  // 16-byte table stores per thread

__device__ __forceinline__ void load_tile(
    int tile, int n, int group, int gtid, const Parts& parts, const bool* valid,
    Words (&w)[RPT][CPT], float (&s)[RPT][CPT])
{
    const int first = tile * NT;
#if PARTS == 1
    const Words* weight = parts.w0;
    const float* absmax = parts.a0;
#else
    const Words* weight = first < parts.end0 ? parts.w0 : first < parts.end1 ? parts.w1 : parts.w2;
    const float* absmax = first < parts.end0 ? parts.a0 : first < parts.end1 ? parts.a1 : parts.a2;
#endif
    const int own = first + group * RPT;  // this thread's first row
#if ROWS_EXACT
    // Every tile is whole: one address per tile, each row and chunk a constant offset from it.
    const Words* tile_words = weight + (long)own * CHUNKS + gtid;
    const float* tile_scales = absmax + (long)own * BLOCKS + (gtid >> 1);  // GROUP_THREADS is even
#endif
    #pragma unroll
    for (int r = 0; r < RPT; ++r) {
#if !ROWS_EXACT
        const int row = min(own + r, n - 1);
#endif
        #pragma unroll
        for (int c = 0; c < CPT; ++c) {
            if (valid[c]) {
#if ROWS_EXACT
                w[r][c] = load_stream(tile_words + r * CHUNKS + c * GROUP_THREADS);
                s[r][c] = load_scale(tile_scales + r * BLOCKS + c * (GROUP_THREADS / 2));
#else
                const int chunk = gtid + c * GROUP_THREADS;
                w[r][c] = load_stream(weight + (long)row * CHUNKS + chunk);
                s[r][c] = load_scale(absmax + (long)row * BLOCKS + (chunk >> 1));
#endif
            } else {
                w[r][c] = Words{0u, 0u, 0u, 0u};
                s[r][c] = 0.0f;
            }
        }
    }
}

// Each thread holds VALUES partial sums (its rows of the tile times x rows); the totals over
// each LANES lanes, one per value, land in `slot`. With VALUES a power of two, each butterfly
// step trades half of the values with the partner lane instead of shuffling all of them:
// 5 V shuffles and adds become V - 1 + log2(32 / V) (for 8 values, 9 instead of 40).
__device__ __forceinline__ void lane_sums(float (&v)[VALUES], float* slot, int tid) {
#if (VALUES & (VALUES - 1)) == 0 && VALUES <= LANES
    int index = 0;
    #pragma unroll
    for (int step = 0; (1 << step) < VALUES; ++step) {
        const int half = VALUES >> (step + 1);
        const int mask = (LANES / 2) >> step;
        const bool upper = tid & mask;
        #pragma unroll
        for (int i = 0; i < half; ++i) {
            const float send = upper ? v[i] : v[i + half];
            const float keep = upper ? v[i + half] : v[i];
            v[i] = keep + shuffle_xor(send, mask);
        }
        if (upper) index += half;
    }
    float total = v[0];
    #pragma unroll
    for (int mask = LANES / 2 / VALUES; mask > 0; mask >>= 1) total += shuffle_xor(total, mask);
    if ((tid & (LANES / VALUES - 1)) == 0) slot[(tid / LANES) * VALUES + index] = total;
#else
    #pragma unroll
    for (int j = 0; j < VALUES; ++j) {
        float total = v[j];
        #pragma unroll
        for (int mask = LANES / 2; mask > 0; mask >>= 1) total += shuffle_xor(total, mask);
        if ((tid & (LANES - 1)) == 0) slot[(tid / LANES) * VALUES + j] = total;
    }
#endif
}

// The blocks of a launch must fit an SM together: with MIN_BLOCKS > 1, ptxas keeps the
// registers per thread low enough.
#if MIN_BLOCKS > 1
#define LAUNCH_BOUNDS __launch_bounds__(THREADS, MIN_BLOCKS)
#else
#define LAUNCH_BOUNDS __launch_bounds__(THREADS)
#endif

// Dynamic shared memory: the table (TABLE_WORDS words), then 2 * (THREADS / LANES) * VALUES
// floats of partial sums (nf4_cuda.shared_bytes).
extern "C" __global__ void LAUNCH_BOUNDS nf4_gemv_cuda(
    const Words* __restrict__ weight0, const float* __restrict__ absmax0, int end0,
    const Words* __restrict__ weight1, const float* __restrict__ absmax1, int end1,
    const Words* __restrict__ weight2, const float* __restrict__ absmax2,
    const u32* __restrict__ pair_table, const u32* __restrict__ x, int x_stride,
    u16* __restrict__ out, int out_stride, const float* __restrict__ bias, int n,
    const u32* __restrict__ delta, const u32* __restrict__ norm_weight, u32* __restrict__ residual_out,
    double eps)  // a double: how torch's module loader passes a Python float
{
    const Parts parts = {
        weight0, weight1 - (long)end0 * CHUNKS, weight2 - (long)end1 * CHUNKS,
        absmax0, absmax1 - (long)end0 * BLOCKS, absmax2 - (long)end1 * BLOCKS, end0, end1,
    };
    const int tid = threadIdx.x;
    const u32 lane4 = (tid & 31) * 4;
    const int group = GROUPS == 1 ? 0 : tid / GROUP_THREADS;
    const int gtid = tid - group * GROUP_THREADS;  // the thread's place in its set: its chunks
    const int tiles = (n + NT - 1) / NT;
    int tile = blockIdx.x;

    bool valid[CPT];
    #pragma unroll
    for (int c = 0; c < CPT; ++c) valid[c] = (c + 1) * GROUP_THREADS <= CHUNKS || gtid + c * GROUP_THREADS < CHUNKS;

    // Everything the prologue reads is requested before anything is stored, so one memory
    // latency (the first tile's) covers it all; short kernels spend a good part of their time
    // starting. First the table's words (256 pairs; each store below writes four lanes' copies).
    u32 table_pairs[TABLE_STEPS];
    #pragma unroll
    for (int j = 0; j < TABLE_STEPS; ++j) {
        const int i = tid + j * THREADS;
        table_pairs[j] = i < 256 * 8 ? pair_table[i >> 3] : 0u;
    }
    Words w[RPT][CPT];
    float s[RPT][CPT];
    if (tile < tiles) load_tile(tile, n, group, gtid, parts, valid, w, s);
#if NORM
    Words g[CPT][4];  // the norm weight
    #pragma unroll
    for (int c = 0; c < CPT; ++c) {
        const int chunk = gtid + c * GROUP_THREADS;
        #pragma unroll
        for (int q = 0; q < 4; ++q)
            g[c][q] = valid[c] ? *(reinterpret_cast<const Words*>(norm_weight) + chunk * 4 + q) : Words{0u, 0u, 0u, 0u};
    }
#else
    Words xw[MX][CPT][4];
    #pragma unroll
    for (int c = 0; c < CPT; ++c)
        #pragma unroll
        for (int m = 0; m < MX; ++m)
            #pragma unroll
            for (int q = 0; q < 4; ++q)
                xw[m][c][q] = x_word(x + (long)m * x_stride, gtid + c * GROUP_THREADS, q, valid[c]);
#endif
    // The table: the pair for byte b, once per lane, as 16-byte stores of four lanes' copies.
    #pragma unroll
    for (int j = 0; j < TABLE_STEPS; ++j) {
        const int i = tid + j * THREADS;
        const u32 pair = table_pairs[j];
        if (i < 256 * 8) *reinterpret_cast<Words*>(smem + (i >> 3) * (TABLE_WORDS / 256) + (i & 7) * 4) = Words{pair, pair, pair, pair};
    }

    u32 xv[MX][CPT][16];  // this thread's x values as bf16 pairs, in the order codes are packed
#if NORM
    // Row by row, x = norm_weight * rmsnorm(x + delta), x here being the residual. xv first
    // holds h = residual + delta (stored to residual_out by block 0), then the normed x. Every
    // row takes the same steps in the same order whatever MX is.
    float* partial = reinterpret_cast<float*>(smem + TABLE_WORDS);  // before the tiles use it
    #pragma unroll
    for (int m = 0; m < MX; ++m) {
        float squares = 0.0f;
        #pragma unroll
        for (int c = 0; c < CPT; ++c) {
            const int chunk = gtid + c * GROUP_THREADS;
            #pragma unroll
            for (int q = 0; q < 4; ++q) {
                const Words r4 = x_word(x + (long)m * x_stride, chunk, q, valid[c]);
                const Words d4 = x_word(delta + (long)m * x_stride, chunk, q, valid[c]);
                const u32 rw[4] = {r4.a, r4.b, r4.c, r4.d};
                const u32 dw[4] = {d4.a, d4.b, d4.c, d4.d};
                #pragma unroll
                for (int e = 0; e < 4; ++e) {
                    // r * 1 + d rounded once: the fp32 add PyTorch does, then its rounding to bf16
                    const u32 sum = fma_bf16x2(rw[e], 0x3F803F80u, dw[e]);
                    xv[m][c][q * 4 + e] = sum;
                    squares += low_half(sum) * low_half(sum) + high_half(sum) * high_half(sum);
                }
                if (blockIdx.x == 0 && group == 0 && valid[c]) {
                    const u32* hq = xv[m][c] + q * 4;
                    reinterpret_cast<Words*>(residual_out + (long)m * x_stride)[chunk * 4 + q] = Words{hq[0], hq[1], hq[2], hq[3]};
                }
            }
        }
        if (group != 0) squares = 0.0f;  // every set holds all of x: count it once
        #pragma unroll
        for (int mask = 16; mask > 0; mask >>= 1) squares += shuffle_xor(squares, mask);
        if ((tid & 31) == 0) partial[m * WARPS + (tid >> 5)] = squares;
    }
    __syncthreads();
    #pragma unroll
    for (int m = 0; m < MX; ++m) {
        float total = 0.0f;
        #pragma unroll
        for (int k = 0; k < WARPS; ++k) total += partial[m * WARPS + k];
        const float inverse_rms = 1.0f / sqrtf(total / (float)(CHUNKS * 32) + (float)eps);
        #pragma unroll
        for (int c = 0; c < CPT; ++c) {
            #pragma unroll
            for (int q = 0; q < 4; ++q) {
                const u32 gw[4] = {g[c][q].a, g[c][q].b, g[c][q].c, g[c][q].d};
                #pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const u32 hw = xv[m][c][q * 4 + e];
                    const u32 normed = bf16_pair(low_half(hw) * inverse_rms, high_half(hw) * inverse_rms);
                    xv[m][c][q * 4 + e] = fma_bf16x2(gw[e], normed, 0x80008000u);  // a bf16 product is exact in fp32
                }
            }
        }
    }
#else
    #pragma unroll
    for (int c = 0; c < CPT; ++c) {
        #pragma unroll
        for (int m = 0; m < MX; ++m) {
            #pragma unroll
            for (int q = 0; q < 4; ++q) {
                const u32 vw[4] = {xw[m][c][q].a, xw[m][c][q].b, xw[m][c][q].c, xw[m][c][q].d};
                #pragma unroll
                for (int e = 0; e < 4; ++e) xv[m][c][q * 4 + e] = vw[e];
            }
        }
    }
#endif
    __syncthreads();

    // [2][THREADS / LANES][VALUES]: each LANES lanes' totals, double-buffered by tile parity
    float* reduce = reinterpret_cast<float*>(smem + TABLE_WORDS);
    if (tile >= tiles) return;
    int parity = 0;
    for (; tile < tiles; tile += gridDim.x) {
        Words next_w[RPT][CPT];
        float next_s[RPT][CPT];
        const int next = tile + gridDim.x;
        if (next < tiles) load_tile(next, n, group, gtid, parts, valid, next_w, next_s);
        // Issue the next tile's loads before this tile's arithmetic. Left alone, ptxas moves
        // them below it (their values are not needed until the next tile), and a block has
        // nothing in flight while it computes: on the down projections every load came after
        // the last product. ptxas does not move memory accesses across a warp barrier.
        __syncwarp();

        float values[VALUES];  // row r, x row m at r * MX + m
        #pragma unroll
        for (int r = 0; r < RPT; ++r) {
            float a[MX];
            #pragma unroll
            for (int m = 0; m < MX; ++m) a[m] = 0.0f;
            #pragma unroll
            for (int c = 0; c < CPT; ++c) {
                const u32 words[4] = {w[r][c].a, w[r][c].b, w[r][c].c, w[r][c].d};
                float chunk_sum[MX];
                #pragma unroll
                for (int j = 0; j < 4; ++j) {
                    u32 pairs[4];
                    word_pairs(words[j], lane4, pairs);
                    #pragma unroll
                    for (int m = 0; m < MX; ++m) {
                        const float d = pair_dot(pairs, xv[m][c] + 4 * j);
                        chunk_sum[m] = j == 0 ? d : chunk_sum[m] + d;
                    }
                }
                #pragma unroll
                for (int m = 0; m < MX; ++m) a[m] = chunk_sum[m] * s[r][c] + a[m];
            }
            #pragma unroll
            for (int m = 0; m < MX; ++m) values[r * MX + m] = a[m];
        }

        float* slot = reduce + parity * ((THREADS / LANES) * VALUES);
        lane_sums(values, slot, tid);
        __syncthreads();
        if (tid < NT * MX) {
            // Output j = row * MX + m of the tile: its set's lane groups hold it at `index`.
            const int r = tid / MX, m = tid % MX;
            const int set = r / RPT, index = (r % RPT) * MX + m;
            float v = 0.0f;
            #pragma unroll
            for (int k = 0; k < UNITS; ++k) v += slot[(set * UNITS + k) * VALUES + index];
            const int row = tile * NT + r;
            if (row < n) {
#if HAS_BIAS
                v += bias[row];
#endif
                out[(long)m * out_stride + row] = to_bf16(v);
            }
        }
        parity ^= 1;

        // Unconditional: past the last tile the loop ends and these are never read (a
        // conditional copy costs a select per register).
        #pragma unroll
        for (int r = 0; r < RPT; ++r) {
            #pragma unroll
            for (int c = 0; c < CPT; ++c) {
                w[r][c] = next_w[r][c];
                s[r][c] = next_s[r][c];
            }
        }
    }
}
