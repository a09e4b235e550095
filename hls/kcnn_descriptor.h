// The step descriptor: its fields, the sizes derived from them and the step-level checks
// (docs/job-format.md "Step descriptor", "Status"). Everything here runs once per step,
// before any payload word is read.
#ifndef KCNN_DESCRIPTOR_H_
#define KCNN_DESCRIPTOR_H_

#include "kcnn_types.h"

namespace kcnn {

struct descriptor {
    unsigned magic, version, opcode, flags;
    unsigned step_index, n_jobs, k1, j1, jo1;
    unsigned in_c, in_h, in_w, out_c, out_h, out_w;
    unsigned kh, kw, sh, sw, dh, dw, pad_t, pad_l, khb, kwb;
    unsigned in_format, out_format, s2d, sub;
    count_t const_words, map_words, job_words_a, job_words_b, out_words;
    unsigned groups, reserved;
};

// Fields by (word, low bit, width), exactly as kcnn.protocol.DESCRIPTOR_FIELDS.
inline void decode_descriptor(const word_t w[KCNN_DESCRIPTOR_WORDS], descriptor &d) {
    d.magic = field(w[0], 0, 32);
    d.version = field(w[0], 32, 16);
    d.opcode = field(w[0], 48, 8);
    d.flags = field(w[0], 56, 8);
    d.step_index = field(w[1], 0, 16);
    d.n_jobs = field(w[1], 16, 16);
    d.k1 = field(w[1], 32, 8);
    d.j1 = field(w[1], 40, 8);
    d.jo1 = field(w[1], 48, 8);
    d.in_c = field(w[2], 0, 16);
    d.in_h = field(w[2], 16, 16);
    d.in_w = field(w[2], 32, 16);
    d.out_c = field(w[2], 48, 16);
    d.out_h = field(w[3], 0, 16);
    d.out_w = field(w[3], 16, 16);
    d.kh = field(w[3], 32, 8);
    d.kw = field(w[3], 40, 8);
    d.sh = field(w[3], 48, 8);
    d.sw = field(w[3], 56, 8);
    d.dh = field(w[4], 0, 8);
    d.dw = field(w[4], 8, 8);
    d.pad_t = field(w[4], 16, 8);
    d.pad_l = field(w[4], 24, 8);
    d.khb = field(w[4], 32, 4);
    d.kwb = field(w[4], 36, 4);
    d.in_format = field(w[4], 40, 4);
    d.out_format = field(w[4], 44, 4);
    d.s2d = field(w[4], 48, 8);
    d.sub = field(w[4], 56, 8);
    d.const_words = field(w[5], 0, 32);
    d.map_words = field(w[5], 32, 32);
    d.job_words_a = field(w[6], 0, 32);
    d.job_words_b = field(w[6], 32, 32);
    d.out_words = field(w[7], 0, 32);
    d.groups = field(w[7], 32, 16);
    d.reserved = field(w[7], 48, 16);
}

// Sizes every unit of a step needs, derived once from the descriptor. The products and
// quotients the pipelined loops would otherwise need are formed here, once per step, so that
// no loop carries a multiplier or divider for them (hls/README.md "Resources").
struct step_geometry {
    unsigned in_by, in_bx, in_plane;  // the input map's 4x4 blocks (BLOCKED layout in the tile)
    unsigned out_by, out_bx;          // the output map's blocks
    unsigned out_plane;               // out_h * out_w
    unsigned out_blocks;              // out_by * out_bx
    unsigned out_w3;                  // 3 * out_w (the reducer's row offsets 0..4 out_w)
    unsigned h1, w1, o_by, o_bx;      // conv: the stride-1 output map and its blocks
    unsigned o_by_last, o_bx_last;    // o_by - 1, o_bx - 1: the block counters' last values
    unsigned sub3;                    // conv: 3 * sub (the block counters' multiples of sub)
    unsigned pos_shift;               // khb + kwb: a position's slot bits start here
    unsigned s2d_log;                 // F32 / U8 input: log2(s2d)
    bool f32;                         // the map section is F32 (float32, encoded on the fabric)
    bool u8;                          // the map section is U8 (pixels, encoded on the fabric)
    bool buffered;                    // outputs go through the out memory and EMIT
    bool out_table;                   // OUT_TABLE: the interval index maps through a code table
    bool residual;                    // RESIDUAL: acc += R[shortcut code] before the thresholds
    count_t sc_words;                 // words of the shortcut section (RESIDUAL: the output
                                      // map's format; ADD: map B), after the reserved word
    unsigned group_size;              // conv: out_c / groups (else out_c)
    unsigned slot_limit;              // conv: slots of a plane in a tile bank, tile_depth / in_plane
    // A buffered job's codes in the out memory per output channel (FLAT: out_plane; ACC: 8
    // per int32; subsampled BLOCKED: 16 per output block), saturated at OUT_DEPTH + 1.
    unsigned codes_per_channel;
    count_t map_first;                // position of the first map word on A
    count_t a_final;                  // position of A's last word (TLAST)
    count_t b_final;                  // position of B's last word (when B carries words)
    bool uses_b;                      // the step has a transfer on B
    // POOL: region read per output block
    unsigned pool_nw, pool_q, pool_cycles;  // words per region row, cycles to read, per block
    unsigned pool_work;                     // out_blocks * pool_cycles
    unsigned pool_row_step;                 // sh * in_bx: the region's first word, next block row
    unsigned out_codes;                     // POOL FLAT: out_c * out_plane
    // LRN: window channels before / after the centre; the words the PLANE loop loads
    unsigned lrn_before, lrn_after, lrn_first_load;
};

typedef unsigned long long u64;

// The map section's share on stream B: with two streams an F32 map's word w travels on
// stream w mod 2 (A carries the extra word of an odd count), ahead of the jobs' B words. A
// U8 map is always on A (8 pixels a word already fill the encoder's 8 lanes a cycle).
// From the descriptor's fields alone (the drain of a refused step needs it too).
template <class C>
u64 map_share_b(const descriptor &d) {
#pragma HLS INLINE
    const bool split = C::streams == 2 && d.opcode == KCNN_OP_CONV && d.in_format == KCNN_FMT_F32;
    return split ? (u64)d.map_words >> 1u : 0;
}

// The three quotients of a step's checks by shift and subtract, 16 bits, all in one short
// loop: group_size = out_c / groups with its remainder, in_c mod groups, and the tile slots
// tile_depth / in_plane. (A `/` or `%` by a run-time value would be one pipelined divider
// core per operator, about 1k LUT and 2k FF each, for a few divisions per step.)
inline void step_quotients(ap_uint<16> out_c, ap_uint<16> in_c, ap_uint<16> groups,
                           ap_uint<16> depth, ap_uint<16> plane, ap_uint<16> &group_size,
                           ap_uint<16> &out_rem, ap_uint<16> &in_rem, ap_uint<16> &slots) {
#pragma HLS INLINE off
    static_assert(KCNN_QUOTIENT_BITS == 16, "the dividends are 16-bit descriptor fields");
    ap_uint<17> r0 = 0, r1 = 0, r2 = 0;
    ap_uint<16> q0 = 0, q2 = 0;
    // Dividends and quotients shift through registers, most significant bit first: a bit
    // picked or set by the loop index would cost a 16:1 mux or a decoder per operand.
QUOTIENTS:
    for (int b = 0; b < KCNN_QUOTIENT_BITS; b++) {
#pragma HLS PIPELINE II = 1
        r0 = (r0 << 1) | out_c[15];
        r1 = (r1 << 1) | in_c[15];
        r2 = (r2 << 1) | depth[15];
        out_c <<= 1;
        in_c <<= 1;
        depth <<= 1;
        const bool take0 = r0 >= groups, take2 = r2 >= plane;
        if (take0) r0 -= groups;
        if (r1 >= groups) r1 -= groups;
        if (take2) r2 -= plane;
        q0 = (q0 << 1) | take0;
        q2 = (q2 << 1) | take2;
    }
    KCNN_CSIM(csim_log_loop(KCNN_LOOP_QUOTIENTS, KCNN_QUOTIENT_BITS);)
    group_size = q0;
    out_rem = r0;
    in_rem = r1;
    slots = q2;
}

// The descriptor's sizes: 16-bit maps and 8-bit kernels, so every product below fits 48 bits
// and comes from one shared multiplier of at most 32 x 18 bits (ALLOCATION in check_descriptor).
typedef ap_uint<16> size_t16;
typedef ap_uint<48> prod_t48;

inline prod_t48 mul_32x16(ap_uint<32> a, ap_uint<16> b) {
#pragma HLS INLINE
    return prod_t48(a) * b;
}

// The status of a descriptor whose magic, version and opcode were accepted (not PROBE),
// TLAST not considered; fills `g` for an accepted one. Lower status numbers win. Runs once
// per step as its own module: its products share one multiplier and its quotients one
// shift-and-subtract loop (no DSP or divider core per operator).
template <class C>
unsigned check_descriptor(const descriptor &d, step_geometry &g) {
#pragma HLS INLINE off
#pragma HLS ALLOCATION operation instances = mul limit = 1
    static_assert(C::tile_depth < 65536, "the tile slots quotient is 16 bits");
    bool count = false, geom = false;
    const bool conv = d.opcode == KCNN_OP_CONV, fc = d.opcode == KCNN_OP_FC;
    const bool pool = d.opcode == KCNN_OP_POOL, lrn = d.opcode == KCNN_OP_LRN;
    const bool add = d.opcode == KCNN_OP_ADD;
    const bool layer = conv || fc;
    const bool act_signed = (d.flags & KCNN_FLAG_ACT_SIGNED) != 0;
    const bool out_table = (d.flags & KCNN_FLAG_OUT_TABLE) != 0;
    const bool residual = (d.flags & KCNN_FLAG_RESIDUAL) != 0;
    // The fields are 16 bits (sizes) and 8 bits (kernel, strides, pads), docs/job-format.md.
    const size_t16 in_c = d.in_c, in_h = d.in_h, in_w = d.in_w;
    const size_t16 out_c = d.out_c, out_h = d.out_h, out_w = d.out_w;

    g.in_by = (d.in_h + 3) / 4;
    g.in_bx = (d.in_w + 3) / 4;
    g.in_plane = (unsigned)mul_32x16(g.in_by, g.in_bx);
    g.out_by = (d.out_h + 3) / 4;
    g.out_bx = (d.out_w + 3) / 4;
    g.out_plane = (unsigned)mul_32x16(out_h, out_w);
    g.out_blocks = (unsigned)mul_32x16(g.out_by, g.out_bx);
    g.out_w3 = d.out_w + (d.out_w << 1u);
    g.pos_shift = d.khb + d.kwb;
    g.f32 = d.in_format == KCNN_FMT_F32;
    g.u8 = d.in_format == KCNN_FMT_U8;
    // The first step's raw image, encoded on the fabric: one geometry for both formats.
    const bool raw = g.f32 || g.u8;
    g.s2d_log = d.s2d == 4 ? 2 : d.s2d == 2 ? 1 : 0;
    const unsigned sub = d.sub == 0 ? 1 : d.sub;
    g.sub3 = sub + (sub << 1u);
    g.h1 = d.out_h == 0 ? 0 : (unsigned)mul_32x16(d.out_h - 1, sub) + 1;
    g.w1 = d.out_w == 0 ? 0 : (unsigned)mul_32x16(d.out_w - 1, sub) + 1;
    g.o_by = (g.h1 + 3) / 4;
    g.o_bx = (g.w1 + 3) / 4;
    // A step that runs has out_h, out_w >= 1, so o_by, o_bx >= 1 (no wrap where they are used).
    g.o_by_last = g.o_by - 1;
    g.o_bx_last = g.o_bx - 1;
    // ADD: a BLOCKED -> FLAT add reorders its codes through the out memory.
    g.buffered = (conv && (d.out_format != KCNN_FMT_BLOCKED || d.sub > 1)) ||
                 (pool && d.out_format == KCNN_FMT_FLAT) ||
                 (add && d.in_format == KCNN_FMT_BLOCKED && d.out_format == KCNN_FMT_FLAT);
    g.out_table = out_table;
    g.residual = layer && residual;
    g.lrn_before = d.kh == 0 ? 0 : (d.kh - 1) / 2;
    g.lrn_after = d.kh == 0 ? 0 : d.kh - 1 - g.lrn_before;

    ap_uint<16> group_size, out_rem, in_rem, slots;
    const bool plane_fits = g.in_plane != 0 && g.in_plane <= C::tile_depth;
    step_quotients(out_c, in_c, d.groups == 0 ? size_t16(1) : size_t16(d.groups), C::tile_depth,
                   plane_fits ? size_t16(g.in_plane) : size_t16(1), group_size, out_rem, in_rem, slots);
    g.group_size = group_size;
    g.slot_limit = slots;

    // out_c * out_plane codes (FLAT), out_c * out_blocks words (BLOCKED)
    const prod_t48 out_codes = mul_32x16(g.out_plane, out_c);
    const prod_t48 out_block_words = mul_32x16(g.out_blocks, out_c);
    g.out_codes = (unsigned)out_codes;
    {
        const u64 sat = (u64)C::out_depth + 1;
        const u64 per = d.out_format == KCNN_FMT_FLAT  ? (u64)g.out_plane
                        : d.out_format == KCNN_FMT_ACC ? (u64)g.out_plane << 3u
                                                       : (u64)g.out_blocks << 4u;
        g.codes_per_channel = (unsigned)(per > sat ? sat : per);
    }

    // Flags: ACT_SIGNED for a step with an input codebook (conv, fc; LRN ignores it),
    // OUT_TABLE for a step that emits codes through the threshold bank (conv, fc, add),
    // RESIDUAL for a conv or fc that emits codes; ACC outputs take neither.
    const unsigned known = KCNN_FLAG_ACT_SIGNED | KCNN_FLAG_OUT_TABLE | KCNN_FLAG_RESIDUAL;
    if ((d.flags & ~known) != 0 || d.reserved != 0) geom = true;
    if (lrn && (out_table || residual)) geom = true;
    if (add && (act_signed || residual)) geom = true;
    if (layer && d.out_format == KCNN_FMT_ACC && (out_table || residual)) geom = true;
    if (d.in_c == 0 || d.in_h == 0 || d.in_w == 0 || d.out_c == 0 || d.out_h == 0 ||
        d.out_w == 0 || d.kh == 0 || d.kw == 0 || d.sh == 0 || d.sw == 0 || d.dh == 0 ||
        d.dw == 0 || d.sub == 0 || d.s2d == 0 || d.groups == 0) {
        geom = true;
    }
    if (layer && (d.k1 > KCNN_K_MAX - 1 || d.j1 > KCNN_J_MAX - 1 || d.jo1 > KCNN_J_MAX - 1)) {
        count = true;
    }
    if ((lrn || add) && d.jo1 > KCNN_J_MAX - 1) count = true;
    if (!layer && (d.n_jobs != 0 || d.job_words_a != 0 || d.job_words_b != 0)) geom = true;
    if (layer && (d.n_jobs == 0 || d.n_jobs > d.out_c)) geom = true;
    if (layer && C::streams == 1 && d.job_words_b != 0) geom = true;
    if (!conv && (d.sub != 1 || d.s2d != 1 || d.groups != 1)) geom = true;
    if (!conv && (d.dh != 1 || d.dw != 1)) geom = true;
    if ((pool || lrn) && (d.khb != 0 || d.kwb != 0)) geom = true;

    u64 const_words = 0, map_words = 0;
    const u64 codebooks = (d.k1 + d.j1 + 7) / 8, thresholds = (d.jo1 + 1) / 2;
    // OUT_TABLE's code table (one word) and RESIDUAL's R[0..15] follow the thresholds.
    const u64 table_words = out_table ? 1 : 0, residual_words = residual ? 8 : 0;
    const u64 in_words = (u64)mul_32x16(g.in_plane, in_c);  // in_c * in_plane BLOCKED words
    if (conv) {
        if (d.in_c > C::ch_max || g.in_plane > C::tile_depth) count = true;
        if (d.in_format != KCNN_FMT_BLOCKED && !raw) geom = true;
        if (d.out_format != KCNN_FMT_BLOCKED && d.out_format != KCNN_FMT_FLAT &&
            d.out_format != KCNN_FMT_ACC) {
            geom = true;
        }
        if (d.out_format == KCNN_FMT_ACC && d.jo1 != 0) geom = true;
        if (d.sh != 1 || d.sw != 1) geom = true;
        if (d.kh > (1u << d.khb) || d.kw > (1u << d.kwb) || g.pos_shift > C::pos_bits) geom = true;
        if (d.groups != 0 && (in_rem != 0 || out_rem != 0)) geom = true;
        if (d.pad_t > (unsigned)mul_32x16((d.kh - 1) & 255u, d.dh) ||
            d.pad_l > (unsigned)mul_32x16((d.kw - 1) & 255u, d.dw)) {
            geom = true;
        }
        // The last output's window starts inside the map (bottom / right padding is less
        // than the kernel's extent).
        if ((u64)g.h1 > (u64)d.in_h + d.pad_t || (u64)g.w1 > (u64)d.in_w + d.pad_l) geom = true;
        const bool s_ok = d.s2d == 1 || d.s2d == 2 || d.s2d == 4;
        // The raw image's channels, in_c / s^2 (U8: at most the pixel encoder's 4 cut-point rows).
        const size_t16 raw_c = in_c >> (2 * g.s2d_log);
        if (raw) {
            if (!s_ok || (d.in_c & ((1u << (2 * g.s2d_log)) - 1)) != 0) geom = true;
            if (g.u8 && raw_c > KCNN_PIXEL_CHANNELS) geom = true;
        } else if (d.s2d != 1) {
            geom = true;
        }
        // After the placement: F32's 8 key words, U8's pixel encoder section.
        const u64 encoder_words = g.f32 ? 8 : g.u8 ? KCNN_PIXEL_ENCODER_WORDS : 0;
        const_words = codebooks + thresholds + table_words + residual_words + d.in_c + encoder_words;
        if (raw) {
            // raw_c * (in_h * s) rows of ceil(in_w * s / 16) segments of 16 values: 8 words
            // (F32, 2 a word) or 2 (U8, 8 a word); a product past 32 bits saturates (no
            // 32-bit map_words field can equal it).
            const prod_t48 rows = mul_32x16(ap_uint<32>(d.in_h) << g.s2d_log, raw_c);
            const ap_uint<32> rows_sat = rows > 0xFFFFFFFFull ? ap_uint<32>(0xFFFFFFFFu) : ap_uint<32>(rows);
            const size_t16 segments = size_t16((((u64)d.in_w << g.s2d_log) + 15) >> 4u);
            map_words = (u64)mul_32x16(rows_sat, segments) << (g.u8 ? 1u : 3u);
        } else {
            map_words = in_words;
        }
    } else if (fc) {
        const u64 per_partition = (d.in_c + C::P - 1) / C::P;
        // A FLAT map keeps 16 codes of a partition in each word row of its 4 banks
        // (docs/job-format.md): 16 tile_depth positions, as the planner counts them.
        if (per_partition > 16 * (u64)C::tile_depth || per_partition > (1u << C::pos_bits)) count = true;
        if (d.in_format != KCNN_FMT_FLAT) geom = true;
        if (d.out_format != KCNN_FMT_FLAT && d.out_format != KCNN_FMT_ACC) geom = true;
        if (d.out_format == KCNN_FMT_ACC && d.jo1 != 0) geom = true;
        if (d.in_h != 1 || d.in_w != 1 || d.out_h != 1 || d.out_w != 1 || d.kh != 1 ||
            d.kw != 1 || d.sh != 1 || d.sw != 1 || d.pad_t != 0 || d.pad_l != 0 || d.khb != 0 ||
            d.kwb != 0) {
            geom = true;
        }
        const_words = codebooks + thresholds + table_words + residual_words;
        map_words = ((u64)d.in_c + 15) / 16;
    } else if (pool) {
        if (g.in_plane > C::tile_depth) count = true;
        if (d.out_format == KCNN_FMT_FLAT && (u64)out_codes > C::out_depth) count = true;
        if (d.flags != 0 || d.in_format != KCNN_FMT_BLOCKED) geom = true;
        if (d.out_format != KCNN_FMT_BLOCKED && d.out_format != KCNN_FMT_FLAT) geom = true;
        if (d.in_c != d.out_c || d.kh > C::pool_window_max || d.kw > C::pool_window_max ||
            d.sh > C::pool_stride_max || d.sw > C::pool_stride_max) {
            geom = true;
        }
        if (d.pad_t >= d.kh || d.pad_l >= d.kw) geom = true;
        // out_h, out_w >= 1 here or geom is already set (their products are then unused)
        if ((u64)mul_32x16(d.out_h - 1, d.sh & 255u) + 1 > (u64)d.in_h + d.pad_t) geom = true;
        if ((u64)mul_32x16(d.out_w - 1, d.sw & 255u) + 1 > (u64)d.in_w + d.pad_l) geom = true;
        map_words = in_words;
    } else if (add) {
        // Map A is held whole in the tile, word w in partition w mod P (all partitions:
        // IN_DEPTH / 16 words); a BLOCKED -> FLAT add's outputs in the out memory.
        if (d.k1 != 0 || d.j1 != 0) geom = true;
        if (d.in_c != d.out_c || d.in_h != d.out_h || d.in_w != d.out_w) geom = true;
        if (d.kh != 1 || d.kw != 1 || d.sh != 1 || d.sw != 1 || d.pad_t != 0 || d.pad_l != 0 ||
            d.khb != 0 || d.kwb != 0) {
            geom = true;
        }
        if (d.in_format != KCNN_FMT_BLOCKED && d.in_format != KCNN_FMT_FLAT) geom = true;
        if (d.out_format != KCNN_FMT_BLOCKED && d.out_format != KCNN_FMT_FLAT) geom = true;
        if (d.in_format == KCNN_FMT_FLAT && d.out_format == KCNN_FMT_BLOCKED) geom = true;
        map_words = d.in_format == KCNN_FMT_FLAT ? ((u64)out_codes + 15) / 16 : in_words;
        if (map_words > (u64)C::P * C::tile_depth) count = true;
        if (g.buffered && (u64)out_codes > C::out_depth) count = true;
        const_words = 8 + 8 + thresholds + table_words;
    } else {  // LRN
        if (g.in_plane > C::tile_depth) count = true;
        if (d.in_format != KCNN_FMT_BLOCKED || d.out_format != KCNN_FMT_BLOCKED) geom = true;
        if (d.in_c != d.out_c || d.in_h != d.out_h || d.in_w != d.out_w) geom = true;
        if (d.kh > C::lrn_size_max || d.kw != 1 || d.sh != 1 || d.sw != 1 || d.pad_t != 0 ||
            d.pad_l != 0) {
            geom = true;
        }
        const_words = 8 + 15 * thresholds;
        map_words = in_words;
    }
    const u64 out_words = d.out_format == KCNN_FMT_BLOCKED ? (u64)out_block_words
                          : d.out_format == KCNN_FMT_FLAT  ? ((u64)out_codes + 15) / 16
                          : d.out_format == KCNN_FMT_ACC   ? ((u64)out_codes + 1) / 2
                                                           : 0;
    if (d.const_words != const_words || d.map_words != map_words || d.out_words != out_words) {
        geom = true;
    }
    // The shortcut section (derived, not a field): RESIDUAL, the output map in the output's
    // format, stored whole in the shortcut memory (OUT_DEPTH codes); ADD, map B.
    const u64 sc_words = g.residual ? out_words : add ? map_words : 0;
    if (g.residual && sc_words > C::out_depth / 16) count = true;
    g.sc_words = (count_t)sc_words;
    // Stream B: the map's B share (F32 with two streams), then the jobs' B words.
    const u64 map_b = map_share_b<C>(d);
    const u64 a_words = KCNN_DESCRIPTOR_WORDS + (u64)d.const_words + (d.map_words - map_b) + 1 +
                        sc_words + d.job_words_a;
    const u64 b_words = map_b + d.job_words_b;
    if (a_words > C::max_transfer_words || b_words > C::max_transfer_words) count = true;

    g.map_first = KCNN_DESCRIPTOR_WORDS + d.const_words;
    g.a_final = (count_t)(a_words - 1);
    g.b_final = b_words == 0 ? count_t(0) : count_t(b_words - 1);

    // POOL: an output block reads rows [y0, y0 + R) and columns [x0, x0 + Cw) of the input,
    // R = 3 sh + kh, Cw = 3 sw + kw; a region row is at most ceil((Cw + 3) / 4) words and a
    // bank holds at most ceil(R / 4) of its rows; two items per bank and cycle (TDP).
    const unsigned rows = 3 * d.sh + d.kh, cols = 3 * d.sw + d.kw;
    g.pool_nw = (cols + 3 + 3) / 4;
    g.pool_q = ((rows + 3) / 4 * g.pool_nw + 1) / 2;
    // FLAT output writes one output row per cycle into the out memory, during the next
    // block's cycles (the last channel's loop has 4 more for its last block).
    g.pool_cycles = d.out_format == KCNN_FMT_FLAT && g.pool_q < KCNN_FLAT_WRITE_CYCLES ? KCNN_FLAT_WRITE_CYCLES : g.pool_q;
    g.pool_work = (unsigned)mul_32x16(g.out_blocks, g.pool_cycles);
    g.pool_row_step = (unsigned)mul_32x16(g.in_bx, d.sh & 255u);
    // LRN: the PLANE loop loads channels 0 .. after (those that exist)
    const unsigned first_planes = g.lrn_after + 1 < d.in_c ? g.lrn_after + 1 : d.in_c;
    g.lrn_first_load = (unsigned)mul_32x16(g.in_plane, first_planes);

    if (count) return KCNN_STATUS_COUNT_ABOVE_MAX;
    if (geom) return KCNN_STATUS_BAD_GEOMETRY;
    return KCNN_STATUS_OK;
}

}  // namespace kcnn

#endif  // KCNN_DESCRIPTOR_H_
