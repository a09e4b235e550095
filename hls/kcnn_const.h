// The step constants (docs/job-format.md "Step constants"), one word per cycle: codebooks and
// thresholds into registers, the placement table into its BRAM, the F32 encoder's keys or the
// U8 pixel encoder's cut points, zero pixels and window, and the LRN squares and cut points
// into the LRN lanes' LUTRAMs.
#ifndef KCNN_CONST_H_
#define KCNN_CONST_H_

#include "kcnn_descriptor.h"

namespace kcnn {

// Sixteen acc_t values packed into one wide register: entry i in bits 32 i + 31 .. 32 i. The
// tables read at a run-time code (R, R1, R2) and the thresholds live in these, not in arrays:
// an array member of a struct passed to non-inlined functions becomes registers only if its
// ARRAY_PARTITION pragma takes effect, and as a RAM it would cost CONST its II (two writes an
// iteration) and put a RAM read on the reducer's path. A scalar cannot become a RAM.
typedef ap_uint<KCNN_ACC_BITS * KCNN_J_MAX> acc_table_t;

// Entry i (a run-time code, 0..15): a shift by 32 i and the low 32 bits (a 16:1 multiplexer).
inline acc_t acc_entry(const acc_table_t &t, unsigned i) {
#pragma HLS INLINE
    return acc_t(ap_uint<KCNN_ACC_BITS>(t >> ap_uint<9>((i & 15u) * KCNN_ACC_BITS)));
}

// Entry i (a run-time index, 0..15) set to v: 16 constant slices, each with its write enable.
inline void set_acc_entry(acc_table_t &t, unsigned i, acc_t v) {
#pragma HLS INLINE
    for (unsigned e = 0; e < KCNN_J_MAX; e++) {
#pragma HLS UNROLL
        if ((i & 15u) == e) t.range(KCNN_ACC_BITS * e + KCNN_ACC_BITS - 1, KCNN_ACC_BITS * e) = v;
    }
}

// The U8 pixel encoder's cut points a channel: J - 2 <= J_MAX - 2 = 14 (codes 1..J - 1 of a
// pixel that is data; the section's entries m = 14, 15 are never cut points).
const unsigned pixel_cuts = KCNN_J_MAX - 2;
// A pixel encoder constant (a cut point, a zero pixel): 0..255, or 256 for "none" (no pixel
// reaches or equals it). The section's uint16 saturates to it (pixel_constant).
typedef ap_uint<9> pixel_const_t;

// Registers a conv / fc / LRN / add step keeps from its constants.
struct step_registers {
    entry_t wq[KCNN_K_MAX];           // Wq[k] at [k]; [0] unused (code 0 is zero)
    entry_t aq[KCNN_J_MAX];           // Aq[a] at [a]
    acc_table_t thresholds;           // T[m + 1] at entry m (entries 0..14; 15 unused)
    ap_int<32> keys[KCNN_J_MAX - 1];  // F32 encoder: K[m + 1] at [m]
    // U8 pixel encoder (docs/job-format.md "The pixel encoder"): T[c][m] at [c][m] (256 for
    // m >= J - 2, whatever the section says: a code never passes J - 1), Z[c] at [c], and
    // the window row0, row1, col0, col1 in bits 15..0, 31..16, 47..32, 63..48 (a scalar).
    pixel_const_t cuts[KCNN_PIXEL_CHANNELS][pixel_cuts];
    pixel_const_t zero_pixel[KCNN_PIXEL_CHANNELS];
    ap_uint<64> window;
    // OUT_TABLE: the code of interval index i in bits 4i+3..4i (the identity without it).
    ap_uint<64> out_table;
    // RESIDUAL: R[code] of the shortcut map (an ADD step's R1, of map A); ADD: R2 of map B.
    // 0 without them. R[0] = 0: code 0 is exactly zero. R[code] is acc_entry(resid, code).
    acc_table_t resid;
    acc_table_t resid2;
};

// The identity code table: interval index i is code i (a step without OUT_TABLE).
const unsigned long long identity_code_table = 0xFEDCBA9876543210ull;

// The threshold bank: #{m < jo1 : acc >= T[m + 1]}, 15 comparators.
inline code_t threshold_bank(acc_t acc, const acc_table_t &thresholds, unsigned jo1) {
#pragma HLS INLINE
    unsigned code = 0;
    for (unsigned m = 0; m < KCNN_J_MAX - 1; m++) {
#pragma HLS UNROLL
        const acc_t t = acc_t(thresholds.range(KCNN_ACC_BITS * m + KCNN_ACC_BITS - 1, KCNN_ACC_BITS * m));
        if (m < jo1 && acc >= t) code++;
    }
    return code_t(code);
}

// The output code of an interval index: a 16:1 multiplexer of 4 bits (OUT_TABLE). A shift by
// 4 index (6 bits) and the low nibble, not a bit-select with run-time bounds (which HLS
// builds as a general part-select: masks and shifters of both bounds).
inline code_t table_code(ap_uint<64> table, code_t index) {
#pragma HLS INLINE
    return code_t(table >> ap_uint<6>((unsigned)index << 2u));
}

inline entry_t codebook_byte(word_t w, unsigned i, bool is_signed) {
#pragma HLS INLINE
    const ap_uint<8> b = w.range(8 * i + 7, 8 * i);
    return is_signed ? entry_t(ap_int<8>(b)) : entry_t(b);
}

// A uint16 of the pixel encoder section as 9 bits: 0..255 as they are, anything above
// (0xFFFF, 256: none) as 256, which no pixel reaches or equals.
inline pixel_const_t pixel_constant(ap_uint<16> v) {
#pragma HLS INLINE
    return v > 255 ? pixel_const_t(256) : pixel_const_t(v);
}

// A cut point only meets S in [0, 2^20): clamping to [-1, 2^20 - 1] keeps every S <= cut.
template <class C>
typename mem<C>::cut_t clamp_cut(ap_int<32> v) {
#pragma HLS INLINE
    if (v < 0) return -1;
    if (v >= (1u << 20u)) return (1u << 20u) - 1;
    return typename mem<C>::cut_t(v);
}

// Reads the const_words words after the descriptor. Returns the status (the loop stops at
// the first problem; the caller drains).
template <class C>
unsigned read_constants(axis_t &in_a, in_port &pa, const descriptor &d, const step_geometry &g,
                        step_registers &regs, typename mem<C>::place_t placement[C::ch_max],
                        ap_uint<16> slots[C::P],
                        typename mem<C>::square_t squares[C::lrn_lanes][C::lrn_size_max][2][8],
                        typename mem<C>::cut_t cut0[C::lrn_lanes][16],
                        typename mem<C>::cut_t cut1[C::lrn_lanes][32],
                        typename mem<C>::cut_t cut2[C::lrn_lanes][64],
                        typename mem<C>::cut_t cut3[C::lrn_lanes][128]) {
    typedef typename mem<C>::place_t place_t;
    const bool lrn = d.opcode == KCNN_OP_LRN, add = d.opcode == KCNN_OP_ADD;
    const bool layer = d.opcode == KCNN_OP_CONV || d.opcode == KCNN_OP_FC;
    const bool act_signed = (d.flags & KCNN_FLAG_ACT_SIGNED) != 0;
    const unsigned thresholds = (d.jo1 + 1) / 2;
    // Part boundaries in words (each part starts on a new word): ADD R1, R2, thresholds,
    // [table]; CONV / FC codebooks, thresholds, [table], [R], placement (conv), then keys
    // (F32, 8 words) or the pixel encoder (U8, 18 words); LRN squares, cut points.
    const unsigned end_r1 = add ? 8 : 0;
    const unsigned end_r2 = end_r1 + (add ? 8 : 0);
    const unsigned end_books = end_r2 + (layer ? (d.k1 + d.j1 + 7) / 8 : 0);
    const unsigned end_thresholds = end_books + (layer || add ? thresholds : 0);
    const unsigned end_table = end_thresholds + (g.out_table ? 1 : 0);
    const unsigned end_resid = end_table + (g.residual ? 8 : 0);
    const unsigned end_placement = end_resid + (d.opcode == KCNN_OP_CONV ? d.in_c : 0);
    const unsigned end_keys = end_placement + (g.f32 ? 8 : g.u8 ? KCNN_PIXEL_ENCODER_WORDS : 0);
    // U8: cut points of index m >= J - 2 (j1 - 1 of them are real) read as 256 (none).
    const unsigned n_cuts = d.j1 > 1 ? d.j1 - 1 : 0;
    const unsigned end_squares = lrn ? 8 : 0;
    const unsigned words = (unsigned)d.const_words;
    unsigned status = KCNN_STATUS_OK;
    unsigned cut_row = 0, cut_col = 0;  // LRN: centre code - 1 and word in that row

    for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
        slots[p] = 0;
    }
    regs.out_table = identity_code_table;
    regs.resid = 0;
    regs.resid2 = 0;
    KCNN_CSIM(unsigned long long trips = 0;)
CONST:
    for (unsigned w = 0; w < words; w++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1060 avg = 40
        KCNN_CSIM(trips++;)
        const word_t data = read_checked<0>(in_a, pa, g.a_final, status);
        if (status != KCNN_STATUS_OK) break;
        if (w < end_r2) {
            // ADD: R1 (map A's codes) then R2 (map B's), two int32 a word.
            const bool second = w >= end_r1;
            for (unsigned i = 0; i < 2; i++) {
#pragma HLS UNROLL
                const unsigned a = (2 * (second ? w - end_r1 : w) + i) & 15u;
                const acc_t value = acc_t(half_word(data, i));
                if (a == 0 && value != 0) status = KCNN_STATUS_BAD_CONSTANTS;
                if (second) {
                    set_acc_entry(regs.resid2, a, value);
                } else {
                    set_acc_entry(regs.resid, a, value);
                }
            }
            if (status != KCNN_STATUS_OK) break;
        } else if (w < end_books) {
            for (unsigned i = 0; i < 8; i++) {
#pragma HLS UNROLL
                const unsigned q = 8 * w + i;
                if (q < d.k1) {
                    regs.wq[(q + 1) & 15u] = codebook_byte(data, i, true);
                } else if (q < d.k1 + d.j1) {
                    regs.aq[(q - d.k1 + 1) & 15u] = codebook_byte(data, i, act_signed);
                }
            }
        } else if (w < end_thresholds) {
            for (unsigned i = 0; i < 2; i++) {
#pragma HLS UNROLL
                const unsigned m = 2 * (w - end_books) + i;
                if (m < d.jo1) set_acc_entry(regs.thresholds, m, acc_t(half_word(data, i)));
            }
        } else if (w < end_table) {
            regs.out_table = data;  // 16 nibbles: every entry is a code (0..15)
        } else if (w < end_resid) {
            // RESIDUAL: R[0..15] of the shortcut map's codes, two int32 a word; R[0] = 0.
            for (unsigned i = 0; i < 2; i++) {
#pragma HLS UNROLL
                const unsigned a = (2 * (w - end_table) + i) & 15u;
                const acc_t value = acc_t(half_word(data, i));
                if (a == 0 && value != 0) status = KCNN_STATUS_BAD_CONSTANTS;
                set_acc_entry(regs.resid, a, value);
            }
            if (status != KCNN_STATUS_OK) break;
        } else if (w < end_placement) {
            typedef typename mem<C>::tile_addr_t addr_t;
            const ap_uint<32> mask = data.range(31, 0);
            const unsigned slot = data.range(47, 32);
            // The slot's plane must end inside every partition's bank: (slot + 1) in_plane <=
            // tile_depth, i.e. slot < tile_depth div in_plane (a per-step constant, so the
            // loop's exit does not wait for a product).
            if (slot >= g.slot_limit) status = KCNN_STATUS_COUNT_ABOVE_MAX;
            if (C::P < 32 && (mask >> C::P) != 0) status = KCNN_STATUS_BAD_GEOMETRY;
            if (status != KCNN_STATUS_OK) break;
            place_t entry = 0;
            entry.range(C::P - 1, 0) = mask.range(C::P - 1, 0);
            // below tile_depth (checked above): the product needs the address bits only
            entry.range(C::P + mem<C>::tile_addr_bits - 1, C::P) = addr_t(addr_t(slot) * addr_t(g.in_plane));
            placement[w - end_resid] = entry;
            for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                if (mask[p] && slots[p] <= slot) slots[p] = slot + 1;
            }
        } else if (w < end_keys && g.f32) {
            for (unsigned i = 0; i < 2; i++) {
#pragma HLS UNROLL
                const unsigned m = 2 * (w - end_placement) + i;
                if (m < KCNN_J_MAX - 1) regs.keys[m] = half_word(data, i);
            }
        } else if (w < end_keys) {
            // U8: word 4c + m div 4 holds T[c][m] in bits 16 (m mod 4) + 15..; word 16 the
            // zero pixels, word 17 the window. Every register slot has one write site: its
            // word's enable, its constant bit field.
            const unsigned at = w - end_placement;
            for (unsigned c = 0; c < KCNN_PIXEL_CHANNELS; c++) {
#pragma HLS UNROLL
                for (unsigned m = 0; m < pixel_cuts; m++) {
#pragma HLS UNROLL
                    const pixel_const_t t = pixel_constant(data.range(16 * (m % 4) + 15, 16 * (m % 4)));
                    if (at == 4 * c + m / 4) regs.cuts[c][m] = m < n_cuts ? t : pixel_const_t(256);
                }
                if (at == 16) regs.zero_pixel[c] = pixel_constant(data.range(16 * c + 15, 16 * c));
            }
            if (at == 17) regs.window = data;
        } else if (w < end_squares) {
            // Squares of an 8-bit codebook are below 2^16; anything else is not a codebook.
            const ap_int<32> lo = half_word(data, 0), hi = half_word(data, 1);
            if (lo < 0 || lo > 65535 || hi < 0 || hi > 65535) {
                status = KCNN_STATUS_BAD_GEOMETRY;
                break;
            }
            for (unsigned l = 0; l < C::lrn_lanes; l++) {
#pragma HLS UNROLL
                for (unsigned s = 0; s < C::lrn_size_max; s++) {
#pragma HLS UNROLL
                    squares[l][s][0][w] = lo;
                    squares[l][s][1][w] = hi;
                }
            }
        } else if (lrn) {
            // Row cut_row (centre code j = cut_row + 1) carries cut[j][m] for m = 2 cut_col and
            // m + 1. Search stage s probes only the m with m mod 2^(4-s) = 2^(3-s) - 1
            // (kcnn_lrn.h): the even m go to stage 3, an odd m to the one stage its trailing
            // ones name (m = 15 to none: J' - 1 <= 15 cut points are probed at m <= 14). One
            // write per stage table a cycle.
            const unsigned j = (cut_row + 1) & 15u, c = cut_col & 7u, m = 2 * c + 1;
            const typename mem<C>::cut_t lo = clamp_cut<C>(half_word(data, 0));
            const typename mem<C>::cut_t hi = clamp_cut<C>(half_word(data, 1));
            for (unsigned l = 0; l < C::lrn_lanes; l++) {
#pragma HLS UNROLL
                cut3[l][(j << 3u) | c] = lo;
                if ((m & 3u) == 1u) cut2[l][(j << 2u) | (m >> 2u)] = hi;
                if ((m & 7u) == 3u) cut1[l][(j << 1u) | (m >> 3u)] = hi;
                if (m == 7u) cut0[l][j] = hi;
            }
            if (cut_col + 1 == thresholds) {
                cut_col = 0;
                cut_row++;
            } else {
                cut_col++;
            }
        }
    }
    KCNN_CSIM(csim_log_loop(KCNN_LOOP_CONST, trips);)
    return status;
}

}  // namespace kcnn

#endif  // KCNN_CONST_H_
