"""CUDA C source of the tensor-core NF4 GEMV (compiled at run time by NVRTC; nf4_mma.py).

Why tensor cores for a GEMV: the shared-memory pair-table kernel (nf4_cuda_source.py) spends
~4 instructions per weight -- address arithmetic, a lookup, packed FMAs, widening and fp32
sums -- and on an H200 that, not memory, caps it near 56% of copy bandwidth. Here a looked-up
bf16 pair is already half of an `mma.sync.m16n8k16` A-fragment register, so the products and
their fp32 sums cost one mma per 16 lookups per lane, and a lookup's address is one `prmt`
(the byte of codes lands in bits 8..15, the lane's 4-byte slot in bits 0..7). Per weight:
~1.5 instructions.

Reads bitsandbytes' layout as it is (no repack): codes row-major, two per byte, high nibble
first; one fp32 absmax per 64 weights. The mma's 16-wide k-steps may take the 64 k-values of
an absmax block in any order, as long as A (weights) and B (x) agree: lane (g = lane / 4,
c = lane % 4) loads 8 contiguous code bytes -- elements 16c .. 16c+15 of the block -- from
rows g and g+8 of a 16-row tile, and the same 16 elements of x. Its byte 2s feeds k-step s as
the fragment's k-pair 2c, its byte 2s+1 as k-pair 2c+8; x's words 2s and 2s+1 the same
positions of B. Four k-steps make one absmax block; their fp32 sums are scaled per row.

B's 8 columns are rows of x (1 to 4, copied to shared memory once per block); C's columns
the matching output rows; lanes whose column is past the last row of x compute unused columns.

Work: a block's warps split K (warp w takes blocks w, w + WARPS, ...) of one 16-row tile,
then sum their partials through shared memory; blocks are persistent and walk tiles with a
grid stride. Each warp streams "items" (one tile x one absmax block: 16 code bytes and two
scales per lane) through a ring of DEPTH register buffers, across tile boundaries, so its
loads stay in flight during the reduction.

Table: 256 entries (one per byte) of bf16 pairs, stored at `byte * 256 + lane * 4` -- 32 lane
copies, so a warp's 32 lookups always hit 32 banks; 64 KB of shared memory.

Compile-time constants: WARPS, DEPTH, MIN_BLOCKS (per SM, for the register budget), MX (rows of x, 1..8), KB (= K / 64), HAS_BIAS, RAGGED
(N is not a multiple of 16: the last tile's missing rows read the last row, unstored).
"""

SOURCE = r"""
typedef unsigned int u32;
typedef unsigned short u16;

#define THREADS (WARPS * 32)
#define KPW ((KB + WARPS - 1) / WARPS)
// Items per tile rounded up to whole rings, so an item's slot is the same in every tile.
#define KPW_PAD ((KPW + DEPTH - 1) / DEPTH * DEPTH)
#define TABLE_WORDS (256 * 64)
// Whether every warp has a k-block in every item slot (true for all the models' shapes).
#define WARP_FULL (KB % WARPS == 0)
#define HAS_BLOCK(item) ((item) < KPW && (WARP_FULL || warp + (item) * WARPS < KB))

extern __shared__ u32 smem[];

struct Item { u32 g0, g1, h0, h1; float sg, sh; };

__device__ __forceinline__ void load_codes(const void* p, u32& a, u32& b) {
    asm("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];" : "=r"(a), "=r"(b) : "l"(p));
}

__device__ __forceinline__ float load_scale(const float* p) {
    float v;
    asm("ld.global.nc.L1::no_allocate.f32 %0, [%1];" : "=f"(v) : "l"(p));
    return v;
}


// The pair for byte k of `word`: prmt puts that byte in bits 8..15 of the offset and the
// lane's slot (lane * 4, < 256) in bits 0..7.
#define LOOKUP(word, k) lookup(word, lane4, 0x5504u | ((k) << 4))
__device__ __forceinline__ u32 lookup(u32 word, u32 lane4, u32 selector) {
    u32 offset;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(offset) : "r"(word), "r"(lane4), "r"(selector));
    return *reinterpret_cast<const u32*>(reinterpret_cast<const char*>(smem) + offset);
}

__device__ __forceinline__ void mma(float (&d)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ u16 to_bf16(float f) {
    u32 u = __float_as_uint(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u16)((u >> 16) | 0x40u);  // NaN stays NaN
    return (u16)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

struct Cursor { const unsigned char* cg; const unsigned char* ch; const float* sg; const float* sh; };

// Where lane (g, c) of warp `warp` reads tile `tile`: rows g and g+8 (clamped to the last
// row, whose results are not stored), k-block `warp`; item j adds j * WARPS blocks.
__device__ __forceinline__ Cursor cursor_at(
    int tile, int n, int g, int c, int warp, const unsigned char* codes, const float* absmax)
{
    const int rg = min(tile * 16 + g, n - 1);
    const int rh = min(tile * 16 + g + 8, n - 1);
    Cursor at;
    at.cg = codes + (long)rg * (KB * 32) + warp * 32 + c * 8;
    at.ch = codes + (long)rh * (KB * 32) + warp * 32 + c * 8;
    at.sg = absmax + (long)rg * KB + warp;
    at.sh = absmax + (long)rh * KB + warp;
    return at;
}

template <int J>
__device__ __forceinline__ void load_item(Item& it, const Cursor& at) {
    load_codes(at.cg + J * WARPS * 32, it.g0, it.g1);
    load_codes(at.ch + J * WARPS * 32, it.h0, it.h1);
    it.sg = load_scale(at.sg + J * WARPS);
    it.sh = load_scale(at.sh + J * WARPS);
}

// xs: this lane's x words in shared memory (row g % MX, elements 16c.. of the warp's first
// k-block); item J's are J * WARPS blocks further.
template <int J>
__device__ __forceinline__ void compute_item(const Item& it, const u32* xs, u32 lane4, float (&acc)[4]) {
    const uint4 xa = *reinterpret_cast<const uint4*>(xs + J * WARPS * 32);
    const uint4 xb = *reinterpret_cast<const uint4*>(xs + J * WARPS * 32 + 4);
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    mma(t, LOOKUP(it.g0, 0), LOOKUP(it.h0, 0), LOOKUP(it.g0, 1), LOOKUP(it.h0, 1), xa.x, xa.y);
    mma(t, LOOKUP(it.g0, 2), LOOKUP(it.h0, 2), LOOKUP(it.g0, 3), LOOKUP(it.h0, 3), xa.z, xa.w);
    mma(t, LOOKUP(it.g1, 0), LOOKUP(it.h1, 0), LOOKUP(it.g1, 1), LOOKUP(it.h1, 1), xb.x, xb.y);
    mma(t, LOOKUP(it.g1, 2), LOOKUP(it.h1, 2), LOOKUP(it.g1, 3), LOOKUP(it.h1, 3), xb.z, xb.w);
    acc[0] = t[0] * it.sg + acc[0];
    acc[1] = t[1] * it.sg + acc[1];
    acc[2] = t[2] * it.sh + acc[2];
    acc[3] = t[3] * it.sh + acc[3];
}

// Item J of the current tile: compute it from its ring slot, then refill the slot with the
// item DEPTH ahead (of this tile, or of the next one).
template <int J>
__device__ __forceinline__ void step(
    Item (&ring)[DEPTH], const Cursor& cur, const Cursor& nxt, bool has_next, const u32* xs,
    int warp, u32 lane4, float (&acc)[4])
{
    if (HAS_BLOCK(J)) compute_item<J>(ring[J % DEPTH], xs, lane4, acc);
    constexpr int I = (J + DEPTH) % KPW_PAD;  // the item DEPTH ahead: this tile's or the next's
    if (J + DEPTH < KPW_PAD) {
        if (HAS_BLOCK(I)) load_item<I>(ring[J % DEPTH], cur);
    } else if (has_next && HAS_BLOCK(I)) {
        load_item<I>(ring[J % DEPTH], nxt);
    }
}

template <int J>
struct Steps {
    static __device__ __forceinline__ void run(
        Item (&ring)[DEPTH], const Cursor& cur, const Cursor& nxt, bool has_next, const u32* xs,
        int warp, u32 lane4, float (&acc)[4])
    {
        Steps<J - 1>::run(ring, cur, nxt, has_next, xs, warp, lane4, acc);
        step<J - 1>(ring, cur, nxt, has_next, xs, warp, lane4, acc);
    }
};
template <>
struct Steps<0> {
    static __device__ __forceinline__ void run(
        Item (&)[DEPTH], const Cursor&, const Cursor&, bool, const u32*, int, u32, float (&)[4]) {}
};

template <int J>
__device__ __forceinline__ void prologue(Item (&ring)[DEPTH], const Cursor& cur, int warp) {
    if (J > 0) prologue<(J > 0 ? J - 1 : 0)>(ring, cur, warp);
    if (J > 0 && HAS_BLOCK(J - 1)) load_item<(J > 0 ? J - 1 : 0)>(ring[(J > 0 ? J - 1 : 0) % DEPTH], cur);
}

extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) nf4_gemv_mma(
    const unsigned char* __restrict__ codes, const float* __restrict__ absmax,
    const u32* __restrict__ pair_table, const u32* __restrict__ x, int x_stride,
    u16* __restrict__ out, int out_stride, const float* __restrict__ bias, int n)
{
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int g = lane >> 2;
    const int c = lane & 3;
    const u32 lane4 = lane * 4;
    const int tiles = (n + 15) / 16;
    u32* x_shared = smem + TABLE_WORDS;  // [MX][K / 2]
    // Lanes past the last row of x read some row of x: their columns are not stored.
    const u32* xs = x_shared + (g % MX) * (KB * 32) + warp * 32 + c * 8;

    Item ring[DEPTH];
    int tile = blockIdx.x;
    Cursor cur = cursor_at(min(tile, tiles - 1), n, g, c, warp, codes, absmax);
    if (tile < tiles) prologue<DEPTH>(ring, cur, warp);
    // The table and x are put in shared memory while the first items' codes are on their way.
    for (int i = tid; i < 256 * 32; i += THREADS) smem[(i >> 5) * 64 + (i & 31)] = pair_table[i >> 5];
    for (int i = tid; i < MX * KB * 8; i += THREADS) {
        const int m = i / (KB * 8), q = i % (KB * 8);
        reinterpret_cast<uint4*>(x_shared)[i] = reinterpret_cast<const uint4*>(x + (long)m * x_stride)[q];
    }
    __syncthreads();

    float* reduce = reinterpret_cast<float*>(x_shared + MX * KB * 32);  // [2][WARPS][16][MX]
    int parity = 0;
    for (; tile < tiles; tile += gridDim.x) {
        const int next = tile + gridDim.x;
        const bool has_next = next < tiles;
#if RAGGED
        const Cursor nxt = cursor_at(min(next, tiles - 1), n, g, c, warp, codes, absmax);
#else
        const long stride = (long)gridDim.x * 16;  // rows between this tile and the next
        const Cursor nxt = {cur.cg + stride * (KB * 32), cur.ch + stride * (KB * 32),
                            cur.sg + stride * KB, cur.sh + stride * KB};
#endif
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        Steps<KPW_PAD>::run(ring, cur, nxt, has_next, xs, warp, lane4, acc);
        cur = nxt;

        // Tile done: partials of all warps summed through shared memory.
        float* slot = reduce + parity * (WARPS * 16 * MX);
        #pragma unroll
        for (int i = 0; i < 2; ++i) {
            const int col = 2 * c + i;
            if (col < MX) {
                slot[(warp * 16 + g) * MX + col] = acc[i];
                slot[(warp * 16 + g + 8) * MX + col] = acc[2 + i];
            }
        }
        __syncthreads();
        if (tid < 16 * MX) {
            float v = 0.0f;
            #pragma unroll
            for (int w = 0; w < WARPS; ++w) v += slot[w * 16 * MX + tid];
            const int row = tile * 16 + tid / MX;
            const int m = tid % MX;
            if (row < n) {
#if HAS_BIAS
                v += bias[row];
#endif
                out[(long)m * out_stride + row] = to_bf16(v);
            }
        }
        parity ^= 1;
    }
}
"""
