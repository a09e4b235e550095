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

// Sizes every unit of a step needs, derived once from the descriptor.
struct step_geometry {
    unsigned in_by, in_bx, in_plane;  // the input map's 4x4 blocks (BLOCKED layout in the tile)
    unsigned out_by, out_bx;          // the output map's blocks
    unsigned out_plane;               // out_h * out_w
    unsigned h1, w1, o_by, o_bx;      // conv: the stride-1 output map and its blocks
    unsigned pos_shift;               // khb + kwb: a position's slot bits start here
    unsigned s2d_log;                 // F32 input: log2(s2d)
    bool f32;                         // the map section is F32 (encoded on the fabric)
    bool buffered;                    // outputs go through the out memory and EMIT
    count_t map_first;                // position of the first map word on A
    count_t a_final;                  // position of A's last word (TLAST)
    count_t b_final;                  // position of B's last word (when B carries words)
    bool uses_b;                      // the step has a transfer on B
    // POOL: region read per output block
    unsigned pool_nw, pool_q, pool_cycles;  // words per region row, cycles to read, per block
    // LRN: window channels before / after the centre
    unsigned lrn_before, lrn_after;
};

typedef unsigned long long u64;

inline u64 format_words(unsigned fmt, u64 c, u64 h, u64 w) {
    if (fmt == KCNN_FMT_BLOCKED) return c * ((h + 3) / 4) * ((w + 3) / 4);
    if (fmt == KCNN_FMT_FLAT) return (c * h * w + 15) / 16;
    if (fmt == KCNN_FMT_ACC) return (c * h * w + 1) / 2;
    return 0;
}

// The F32 map: (in_c / s^2, in_h * s, in_w * s) float32 values, each row padded to 16 values
// (the host pads the network input with zeros to whole multiples of s).
inline u64 f32_words(u64 c, u64 h, u64 w, unsigned s) {
    const u64 row = ((w * s + 15) / 16) * 16;
    return (c / (s * s)) * (h * s) * row / 2;
}

// The status of a descriptor whose magic, version and opcode were accepted (not PROBE),
// TLAST not considered; fills `g` for an accepted one. Lower status numbers win.
template <class C>
unsigned check_descriptor(const descriptor &d, step_geometry &g) {
    bool count = false, geom = false;
    const bool conv = d.opcode == KCNN_OP_CONV, fc = d.opcode == KCNN_OP_FC;
    const bool pool = d.opcode == KCNN_OP_POOL, lrn = d.opcode == KCNN_OP_LRN;
    const bool layer = conv || fc;

    g.in_by = (d.in_h + 3) / 4;
    g.in_bx = (d.in_w + 3) / 4;
    g.in_plane = g.in_by * g.in_bx;
    g.out_by = (d.out_h + 3) / 4;
    g.out_bx = (d.out_w + 3) / 4;
    g.out_plane = d.out_h * d.out_w;
    g.pos_shift = d.khb + d.kwb;
    g.f32 = d.in_format == KCNN_FMT_F32;
    g.s2d_log = d.s2d == 4 ? 2 : d.s2d == 2 ? 1 : 0;
    const unsigned sub = d.sub == 0 ? 1 : d.sub;
    g.h1 = d.out_h == 0 ? 0 : (d.out_h - 1) * sub + 1;
    g.w1 = d.out_w == 0 ? 0 : (d.out_w - 1) * sub + 1;
    g.o_by = (g.h1 + 3) / 4;
    g.o_bx = (g.w1 + 3) / 4;
    g.buffered = (conv && (d.out_format != KCNN_FMT_BLOCKED || d.sub > 1)) ||
                 (pool && d.out_format == KCNN_FMT_FLAT);
    g.lrn_before = d.kh == 0 ? 0 : (d.kh - 1) / 2;
    g.lrn_after = d.kh == 0 ? 0 : d.kh - 1 - g.lrn_before;

    if ((d.flags & ~KCNN_FLAG_ACT_SIGNED) != 0 || d.reserved != 0) geom = true;
    if (d.in_c == 0 || d.in_h == 0 || d.in_w == 0 || d.out_c == 0 || d.out_h == 0 ||
        d.out_w == 0 || d.kh == 0 || d.kw == 0 || d.sh == 0 || d.sw == 0 || d.dh == 0 ||
        d.dw == 0 || d.sub == 0 || d.s2d == 0 || d.groups == 0) {
        geom = true;
    }
    if (layer && (d.k1 > KCNN_K_MAX - 1 || d.j1 > KCNN_J_MAX - 1 || d.jo1 > KCNN_J_MAX - 1)) {
        count = true;
    }
    if (lrn && d.jo1 > KCNN_J_MAX - 1) count = true;
    if (!layer && (d.n_jobs != 0 || d.job_words_a != 0 || d.job_words_b != 0)) geom = true;
    if (layer && (d.n_jobs == 0 || d.n_jobs > d.out_c)) geom = true;
    if (layer && C::streams == 1 && d.job_words_b != 0) geom = true;
    if (!conv && (d.sub != 1 || d.s2d != 1 || d.groups != 1)) geom = true;
    if (!conv && (d.dh != 1 || d.dw != 1)) geom = true;
    if ((pool || lrn) && (d.khb != 0 || d.kwb != 0)) geom = true;

    u64 const_words = 0, map_words = 0;
    const u64 codebooks = (d.k1 + d.j1 + 7) / 8, thresholds = (d.jo1 + 1) / 2;
    if (conv) {
        if (d.in_c > C::ch_max || g.in_plane > C::tile_depth) count = true;
        if (d.in_format != KCNN_FMT_BLOCKED && d.in_format != KCNN_FMT_F32) geom = true;
        if (d.out_format != KCNN_FMT_BLOCKED && d.out_format != KCNN_FMT_FLAT &&
            d.out_format != KCNN_FMT_ACC) {
            geom = true;
        }
        if (d.out_format == KCNN_FMT_ACC && d.jo1 != 0) geom = true;
        if (d.sh != 1 || d.sw != 1) geom = true;
        if (d.kh > (1u << d.khb) || d.kw > (1u << d.kwb) || g.pos_shift > C::pos_bits) geom = true;
        if (d.groups != 0 && (d.in_c % d.groups != 0 || d.out_c % d.groups != 0)) geom = true;
        if (d.pad_t > (d.kh - 1) * d.dh || d.pad_l > (d.kw - 1) * d.dw) geom = true;
        // The last output's window starts inside the map (bottom / right padding is less
        // than the kernel's extent).
        if ((u64)g.h1 > (u64)d.in_h + d.pad_t || (u64)g.w1 > (u64)d.in_w + d.pad_l) geom = true;
        if (g.f32) {
            if ((d.s2d != 1 && d.s2d != 2 && d.s2d != 4) || d.in_c % (d.s2d * d.s2d) != 0) geom = true;
        } else if (d.s2d != 1) {
            geom = true;
        }
        const_words = codebooks + thresholds + d.in_c + (g.f32 ? 8 : 0);
        map_words = g.f32 ? f32_words(d.in_c, d.in_h, d.in_w, d.s2d == 0 ? 1 : d.s2d)
                          : (u64)d.in_c * g.in_plane;
    } else if (fc) {
        const u64 per_partition = (d.in_c + C::P - 1) / C::P;
        if (per_partition > 4 * (u64)C::tile_depth || per_partition > (1u << C::pos_bits)) count = true;
        if (d.in_format != KCNN_FMT_FLAT) geom = true;
        if (d.out_format != KCNN_FMT_FLAT && d.out_format != KCNN_FMT_ACC) geom = true;
        if (d.out_format == KCNN_FMT_ACC && d.jo1 != 0) geom = true;
        if (d.in_h != 1 || d.in_w != 1 || d.out_h != 1 || d.out_w != 1 || d.kh != 1 ||
            d.kw != 1 || d.sh != 1 || d.sw != 1 || d.pad_t != 0 || d.pad_l != 0 || d.khb != 0 ||
            d.kwb != 0) {
            geom = true;
        }
        const_words = codebooks + thresholds;
        map_words = ((u64)d.in_c + 15) / 16;
    } else if (pool) {
        if (g.in_plane > C::tile_depth) count = true;
        if (d.out_format == KCNN_FMT_FLAT && (u64)d.out_c * g.out_plane > C::out_depth) count = true;
        if (d.flags != 0 || d.in_format != KCNN_FMT_BLOCKED) geom = true;
        if (d.out_format != KCNN_FMT_BLOCKED && d.out_format != KCNN_FMT_FLAT) geom = true;
        if (d.in_c != d.out_c || d.kh > C::pool_window_max || d.kw > C::pool_window_max ||
            d.sh > C::pool_stride_max || d.sw > C::pool_stride_max) {
            geom = true;
        }
        if (d.pad_t >= d.kh || d.pad_l >= d.kw) geom = true;
        if ((u64)(d.out_h - 1) * d.sh + 1 > (u64)d.in_h + d.pad_t) geom = true;
        if ((u64)(d.out_w - 1) * d.sw + 1 > (u64)d.in_w + d.pad_l) geom = true;
        map_words = (u64)d.in_c * g.in_plane;
    } else {  // LRN
        if (g.in_plane > C::tile_depth) count = true;
        if (d.in_format != KCNN_FMT_BLOCKED || d.out_format != KCNN_FMT_BLOCKED) geom = true;
        if (d.in_c != d.out_c || d.in_h != d.out_h || d.in_w != d.out_w) geom = true;
        if (d.kh > C::lrn_size_max || d.kw != 1 || d.sh != 1 || d.sw != 1 || d.pad_t != 0 ||
            d.pad_l != 0) {
            geom = true;
        }
        const_words = 8 + 15 * thresholds;
        map_words = (u64)d.in_c * g.in_plane;
    }
    const u64 out_words = format_words(d.out_format, d.out_c, d.out_h, d.out_w);
    if (d.const_words != const_words || d.map_words != map_words || d.out_words != out_words) {
        geom = true;
    }
    const u64 a_words = KCNN_DESCRIPTOR_WORDS + (u64)d.const_words + d.map_words + 1 + d.job_words_a;
    if (a_words > C::max_transfer_words || (u64)d.job_words_b > C::max_transfer_words) count = true;

    g.map_first = KCNN_DESCRIPTOR_WORDS + d.const_words;
    g.a_final = (count_t)(a_words - 1);
    g.b_final = d.job_words_b == 0 ? count_t(0) : count_t(d.job_words_b - 1);

    // POOL: an output block reads rows [y0, y0 + R) and columns [x0, x0 + Cw) of the input,
    // R = 3 sh + kh, Cw = 3 sw + kw; a region row is at most ceil((Cw + 3) / 4) words and a
    // bank holds at most ceil(R / 4) of its rows; two items per bank and cycle (TDP).
    const unsigned rows = 3 * d.sh + d.kh, cols = 3 * d.sw + d.kw;
    g.pool_nw = (cols + 3 + 3) / 4;
    g.pool_q = ((rows + 3) / 4 * g.pool_nw + 1) / 2;
    // FLAT output writes one output row per cycle into the out memory, during the next
    // block's cycles (the last channel's loop has 4 more for its last block).
    g.pool_cycles = d.out_format == KCNN_FMT_FLAT && g.pool_q < KCNN_FLAT_WRITE_CYCLES ? KCNN_FLAT_WRITE_CYCLES : g.pool_q;

    if (count) return KCNN_STATUS_COUNT_ABOVE_MAX;
    if (geom) return KCNN_STATUS_BAD_GEOMETRY;
    return KCNN_STATUS_OK;
}

}  // namespace kcnn

#endif  // KCNN_DESCRIPTOR_H_
