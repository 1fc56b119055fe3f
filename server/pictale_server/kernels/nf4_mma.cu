// NF4 matrix-vector product on tensor cores, for 1-16 rows of x at nearly one cost:
// out[MX, N] = x[MX, K] @ W^T (+ bias), W in bitsandbytes' NF4 layout (packed codes, high
// nibble first; one fp32 absmax per 64 weights), read where bitsandbytes loaded it.
// docs/kernels.md ("Tensor cores for many rows") has the measurements.
//
// The weights are the mma's A operand (16 output rows by 16 k), x the B operand (16 k by 8
// rows of x): `mma.sync.m16n8k16` with fp32 accumulation takes 8 rows of x for the price of
// one, a second mma per step rows 9-16. Dequantizing is the cost that stays: a code byte's two
// values come from a 256-entry table of bf16 pairs in shared memory (one copy per lane, so a
// warp's 32 lookups hit 32 banks) and go in unscaled; the mma's sums over one 64-weight block
// are then scaled by the block's absmax in fp32.
//
// The k order inside a block is permuted so that every lane's operands are contiguous: lane
// (g = lane / 4, t = lane % 4) takes k = 16t .. 16t + 15 of the block for rows g and g + 8 of
// the tile (8 bytes of each row) and the same 16 k of x's row g (32 bytes); mma j (0..3) takes
// k = 16t + 4j .. 16t + 4j + 3 of each lane. A sum does not care about the order of its terms;
// only the fragment positions must agree for A and B, and they do: fragment columns (2t, 2t + 1)
// hold k 16t + 4j + (0, 1) and columns (2t + 8, 2t + 9) k 16t + 4j + (2, 3), in both.
//
// The walk: a block takes 16-row tiles with a grid stride (persistent blocks: the table is
// built once per block). Its W warps split K into contiguous ranges of UB-block steps, and each
// warp walks its (tile, step) sequence through a ring of STAGES steps in shared memory, filled
// by cp.async STAGES - 1 steps ahead: whole 16-byte chunks of 128-byte row segments, 4 cache
// lines per warp instruction, with no registers held for loads in flight. At a tile's end the
// warps' sums meet in shared memory and are added in warp order.
//
// Batch invariance: a row of x meets the same weights in the same order whatever MX is (an
// mma's output column depends on its own column of B only), and nothing of the launch (W, UB,
// STAGES, grid) depends on MX. A row's result is the same bits at any number of rows.

#ifndef BLOCKS
#define BLOCKS 80                  // K / 64: 64-weight blocks per row
#endif
#ifndef W
#define W 4                        // warps per block: the K split
#endif
#ifndef UB
#define UB 4                       // 64-weight blocks per step of a warp (a multiple of 4, divides BLOCKS)
#endif
#ifndef STAGES
#define STAGES 3                   // steps in a warp's ring: STAGES - 1 in flight while one is computed
#endif
#ifndef MX
#define MX 1                       // rows of x, 1-16
#endif
#ifndef HAS_BIAS
#define HAS_BIAS 0
#endif
#ifndef PARTS
#define PARTS 1                    // 1 or 3: weights whose rows lie in separately allocated parts
#endif
#ifndef MIN_BLOCKS
#define MIN_BLOCKS 4               // blocks per SM the registers must allow
#endif

// ---- Limits of the kernel, read by nf4_mma.py ----
#define NF4_MMA_MAX_ROWS 16        // rows of x (MX) one launch takes
#define NF4_MMA_TILE_ROWS 16       // output rows of a tile: every part's rows are a multiple

#define SETS ((MX + 7) / 8)        // mmas per k step: 8 rows of x each
#define ROWS NF4_MMA_TILE_ROWS
#define STEPS_PER_ROW (BLOCKS / UB)
#define THREADS (32 * W)

static_assert(MX >= 1 && MX <= NF4_MMA_MAX_ROWS, "MX: 1..16 rows of x");
static_assert(BLOCKS % UB == 0 && UB % 4 == 0, "UB: a multiple of 4 that divides the blocks of a row");
static_assert(STEPS_PER_ROW >= W, "every warp takes at least one step of K");
static_assert(STAGES >= 2, "a ring of at least two steps");

typedef unsigned int u32;
typedef unsigned short u16;

extern __shared__ u32 smem[];

__device__ __forceinline__ u32 float_to_bits(float f) {
    u32 u;
    asm("mov.b32 %0, %1;" : "=r"(u) : "f"(f));
    return u;
}

__device__ __forceinline__ u16 to_bf16(float f) {
    u32 u = float_to_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u16)((u >> 16) | 0x40u);  // NaN stays NaN
    return (u16)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// The pair of values of byte k (0-3) of word w, from this lane's copy of the table (rows of
// 128 bytes: bits 7..14 of the offset hold the byte, bits 2..6 the lane).
__device__ __forceinline__ u32 pair_of(u32 w, int k, u32 lane4) {
    const u32 offset = (k == 0 ? (w << 7) : k == 1 ? (w >> 1) : k == 2 ? (w >> 9) : (w >> 17)) & 0x7F80u;
    return *reinterpret_cast<const u32*>(reinterpret_cast<const char*>(smem) + (offset | lane4));
}

__device__ __forceinline__ void mma(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1, const float (&c)[4]) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1),
          "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

__device__ __forceinline__ void copy16(u32 to, const void* from) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(to), "l"(from));
}

// The weight's rows may sit in up to three separately allocated parts (q/k/v, gate/up as
// bitsandbytes loaded them): rows [0, end0) in part 0, [end0, end1) in part 1, the rest in
// part 2. Every part's rows are a multiple of ROWS (nf4_mma.launch_unsupported), so a tile lies
// in one part.
struct Parts {
    const unsigned char* w[3];
    const float* a[3];
    int end0, end1;
};

// A step in shared memory: ROWS rows of UB * 32 code bytes, each row padded by 32 bytes so the
// 4 rows a half warp reads (8 bytes a lane) start 8 banks apart, then ROWS rows of UB scales.
#define ROW_BYTES (UB * 32)
#define ROW_PITCH (ROW_BYTES + 32)
#define STAGE_CODES (ROWS * ROW_PITCH)
#define STAGE_BYTES (STAGE_CODES + ROWS * UB * 4)
#define TABLE_WORDS (256 * 32)
#define SUM_FLOATS (W * ROWS * 8 * SETS)  // one buffer of the warps' sums

__device__ __forceinline__ void copy_step(u32 stage, const Parts& parts, int first_row, int step, int lane) {
#if PARTS == 1
    const unsigned char* weight = parts.w[0];
    const float* absmax = parts.a[0];
    const int part_row = first_row;
#else
    const int part = first_row < parts.end0 ? 0 : first_row < parts.end1 ? 1 : 2;
    const unsigned char* weight = parts.w[part];
    const float* absmax = parts.a[part];
    const int part_row = first_row - (part == 0 ? 0 : part == 1 ? parts.end0 : parts.end1);
#endif
    constexpr int chunks = ROW_BYTES / 16;
    #pragma unroll
    for (int i = lane; i < ROWS * chunks; i += 32) {
        const int row = i / chunks, c = i % chunks;
        copy16(stage + row * ROW_PITCH + c * 16,
               weight + (long)(part_row + row) * (BLOCKS * 32) + (long)step * ROW_BYTES + c * 16);
    }
    constexpr int scale_chunks = UB / 4;
    #pragma unroll
    for (int i = lane; i < ROWS * scale_chunks; i += 32) {
        const int row = i / scale_chunks, c = i % scale_chunks;
        copy16(stage + STAGE_CODES + row * UB * 4 + c * 16,
               absmax + (long)(part_row + row) * BLOCKS + step * UB + c * 4);
    }
}

// One step's products: for each 64-weight block, four mmas per set of 8 rows of x summed
// unscaled, then scaled by each row's absmax into the running sums.
__device__ __forceinline__ void compute_step(
    float (&acc)[SETS][4], const unsigned char* stage, const u16* __restrict__ x, int x_stride,
    int step, int g, int t, u32 lane4)
{
    const float zero[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    float top_scales[UB], bottom_scales[UB];
    #pragma unroll
    for (int q = 0; q < UB / 4; ++q) {
        const float4 top = *reinterpret_cast<const float4*>(stage + STAGE_CODES + g * UB * 4 + q * 16);
        const float4 bottom = *reinterpret_cast<const float4*>(stage + STAGE_CODES + (g + 8) * UB * 4 + q * 16);
        top_scales[4 * q] = top.x; top_scales[4 * q + 1] = top.y; top_scales[4 * q + 2] = top.z; top_scales[4 * q + 3] = top.w;
        bottom_scales[4 * q] = bottom.x; bottom_scales[4 * q + 1] = bottom.y;
        bottom_scales[4 * q + 2] = bottom.z; bottom_scales[4 * q + 3] = bottom.w;
    }
    #pragma unroll
    for (int u = 0; u < UB; ++u) {
        const int k0 = (step * UB + u) * 64 + t * 16;
        u32 xb[SETS][8];  // x's row s * 8 + g, k0 .. k0 + 15 (zeros past MX)
        #pragma unroll
        for (int s = 0; s < SETS; ++s) {
            const int m = s * 8 + g;
            if (m < MX) {
                const uint4* p = reinterpret_cast<const uint4*>(x + (long)m * x_stride + k0);
                const uint4 lo = __ldg(p), hi = __ldg(p + 1);
                xb[s][0] = lo.x; xb[s][1] = lo.y; xb[s][2] = lo.z; xb[s][3] = lo.w;
                xb[s][4] = hi.x; xb[s][5] = hi.y; xb[s][6] = hi.z; xb[s][7] = hi.w;
            } else {
                #pragma unroll
                for (int i = 0; i < 8; ++i) xb[s][i] = 0u;
            }
        }
        const uint2 top = *reinterpret_cast<const uint2*>(stage + g * ROW_PITCH + u * 32 + t * 8);
        const uint2 bottom = *reinterpret_cast<const uint2*>(stage + (g + 8) * ROW_PITCH + u * 32 + t * 8);
        float block_sum[SETS][4];
        #pragma unroll
        for (int j = 0; j < 4; ++j) {
            // Bytes 2j and 2j + 1 of each row's 8: k 16t + 4j + (0, 1) and (2, 3).
            const u32 wt = j < 2 ? top.x : top.y, wb = j < 2 ? bottom.x : bottom.y;
            const int byte = (j & 1) * 2;
            const u32 a[4] = {pair_of(wt, byte, lane4), pair_of(wb, byte, lane4),
                              pair_of(wt, byte + 1, lane4), pair_of(wb, byte + 1, lane4)};
            #pragma unroll
            for (int s = 0; s < SETS; ++s) {
                if (j == 0) mma(block_sum[s], a, xb[s][0], xb[s][1], zero);
                else mma(block_sum[s], a, xb[s][2 * j], xb[s][2 * j + 1], block_sum[s]);
            }
        }
        #pragma unroll
        for (int s = 0; s < SETS; ++s) {
            acc[s][0] = block_sum[s][0] * top_scales[u] + acc[s][0];
            acc[s][1] = block_sum[s][1] * top_scales[u] + acc[s][1];
            acc[s][2] = block_sum[s][2] * bottom_scales[u] + acc[s][2];
            acc[s][3] = block_sum[s][3] * bottom_scales[u] + acc[s][3];
        }
    }
}

// Dynamic shared memory: the table (256 pairs x 32 lanes), two buffers (by tile parity) of the
// warps' sums, then each warp's ring of STAGES steps (nf4_mma.MmaVariant.shared_bytes).
extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) nf4_mma(
    const unsigned char* __restrict__ weight0, const float* __restrict__ absmax0, int end0,
    const unsigned char* __restrict__ weight1, const float* __restrict__ absmax1, int end1,
    const unsigned char* __restrict__ weight2, const float* __restrict__ absmax2,
    const u32* __restrict__ pair_table, const u16* __restrict__ x, int x_stride,
    u16* __restrict__ out, int out_stride, const float* __restrict__ bias, int n)
{
    const int tid = threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const u32 lane4 = lane * 4;
    const Parts parts = {{weight0, weight1, weight2}, {absmax0, absmax1, absmax2}, end0, end1};
    const int tiles = n / ROWS;

    // This warp's steps of every tile: [first_step, first_step + steps). Its sequence runs
    // through them tile after tile; position p is step first_step + p % steps of the block's
    // (p / steps)-th tile.
    const int first_step = warp * STEPS_PER_ROW / W;
    const int steps = (warp + 1) * STEPS_PER_ROW / W - first_step;
    const int my_tiles = (int)blockIdx.x < tiles ? (tiles - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
    const int total = my_tiles * steps;
    float* sums_base = reinterpret_cast<float*>(smem + TABLE_WORDS);
    const unsigned char* ring = reinterpret_cast<const unsigned char*>(sums_base + 2 * SUM_FLOATS) + warp * STAGES * STAGE_BYTES;
    const u32 ring_shared = (u32)__cvta_generic_to_shared(ring);

    #pragma unroll
    for (int p = 0; p < STAGES - 1; ++p) {
        if (p < total)
            copy_step(ring_shared + p * STAGE_BYTES, parts, (blockIdx.x + (p / steps) * gridDim.x) * ROWS,
                      first_step + p % steps, lane);
        asm volatile("cp.async.commit_group;");
    }

    // The table, while the first steps arrive: each pair stored once per lane (16-byte
    // stores of four lanes' copies).
    for (int i = tid; i < 256 * 8; i += THREADS) {
        const u32 pair = pair_table[i >> 3];
        *reinterpret_cast<uint4*>(smem + (i >> 3) * 32 + (i & 7) * 4) = make_uint4(pair, pair, pair, pair);
    }
    __syncthreads();

    float acc[SETS][4];
    #pragma unroll
    for (int s = 0; s < SETS; ++s)
        #pragma unroll
        for (int i = 0; i < 4; ++i) acc[s][i] = 0.0f;

    int parity = 0;
    for (int p = 0; p < total; ++p) {
        // Step p's copies are done once at most the STAGES - 2 newest groups are pending; the
        // warp barrier makes every lane's copies visible to all, and orders the reads of the
        // slot refilled below (step p - 1's) before its refill.
        asm volatile("cp.async.wait_group %0;" :: "n"(STAGES - 2));
        __syncwarp();
        const int ahead = p + STAGES - 1;
        if (ahead < total)
            copy_step(ring_shared + (ahead % STAGES) * STAGE_BYTES, parts,
                      (blockIdx.x + (ahead / steps) * gridDim.x) * ROWS, first_step + ahead % steps, lane);
        asm volatile("cp.async.commit_group;");  // empty past the end: the count stays uniform
        const int step = first_step + p % steps;
        compute_step(acc, ring + (p % STAGES) * STAGE_BYTES, x, x_stride, step, g, t, lane4);

        if (p % steps == steps - 1) {
            // The tile's end: the warps' sums meet in shared memory and are added in warp order.
            // One barrier per tile: a buffer is written again only after the next tile's.
            float* sums = sums_base + parity * SUM_FLOATS;
            float* mine = sums + warp * ROWS * (8 * SETS);
            #pragma unroll
            for (int s = 0; s < SETS; ++s) {
                const int col = s * 8 + 2 * t;
                mine[g * (8 * SETS) + col] = acc[s][0];
                mine[g * (8 * SETS) + col + 1] = acc[s][1];
                mine[(g + 8) * (8 * SETS) + col] = acc[s][2];
                mine[(g + 8) * (8 * SETS) + col + 1] = acc[s][3];
                #pragma unroll
                for (int i = 0; i < 4; ++i) acc[s][i] = 0.0f;
            }
            __syncthreads();
            const int first_row = (blockIdx.x + (p / steps) * gridDim.x) * ROWS;
            for (int i = tid; i < ROWS * MX; i += THREADS) {
                const int m = i / ROWS, row = i % ROWS;  // consecutive threads, consecutive rows of out
                float v = sums[row * (8 * SETS) + m];
                #pragma unroll
                for (int w = 1; w < W; ++w) v += sums[(w * ROWS + row) * (8 * SETS) + m];
#if HAS_BIAS
                v += bias[first_row + row];
#endif
                out[(long)m * out_stride + first_row + row] = to_bf16(v);
            }
            parity ^= 1;
        }
    }
}
