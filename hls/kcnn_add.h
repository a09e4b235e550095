// The fabric add layer (docs/job-format.md "Add steps", hls/KERNEL_SPEC.md "Add step"): the
// output code of map A's code a and map B's code b at the same place is
// table[#{m : R1[a] + R2[b] >= T[m]}]. TABLE wrote that code for all 256 pairs (a, b) into
// the product BRAM18s (kcnn_table.h), MAP held map A in the whole tile (kcnn_map.h
// read_map_words); here map B streams in word by word against it: the 16 codes of a word
// are 16 lookups, one per lane, two lanes per BRAM18 (partitions 0 and 1, one port each).
#ifndef KCNN_ADD_H_
#define KCNN_ADD_H_

#include "kcnn_descriptor.h"
#include "kcnn_partition.h"

namespace kcnn {

// The add step after its map (the reserved word read): reads map B and answers the output
// map (same format: a word per cycle; BLOCKED -> FLAT: a block's 4 output rows into the out
// memory one per cycle, then run_step's EMIT). Returns the status; a refused step has answered the
// words before the bad one (none for BLOCKED -> FLAT).
template <class C>
unsigned run_add(axis_t &in_a, in_port &pa, axis_t &out, const descriptor &d,
                 const step_geometry &g,
                 const typename mem<C>::tile_word_t tile[C::P][4][C::tile_depth],
                 const prod_t products[C::P][4][KCNN_K_MAX * KCNN_J_MAX],
                 code_t out_memory[16][C::out_depth / 16]) {
    const bool blocked = d.in_format == KCNN_FMT_BLOCKED;
    const bool reorder = g.buffered;  // BLOCKED -> FLAT
    const unsigned words = (unsigned)d.map_words;
    const unsigned trips = reorder ? words * KCNN_FLAT_WRITE_CYCLES : words;
    static_assert(KCNN_FLAT_WRITE_CYCLES == 4, "a block's 4 output rows: a 2-bit row counter");
    // Out-memory places: only their low log2(OUT_DEPTH) bits address it (bank: bits 3..0,
    // row: the bits above, modulo the memory), so running sums of this width are exact.
    typedef ap_uint<mem<C>::out_addr_bits + 5> place_t;
    unsigned status = KCNN_STATUS_OK;
    unsigned w = 0;             // map B's word
    ap_uint<2> row = 0;         // reorder: the output row of the word's block (0..3)
    unsigned by = 0, bx = 0;    // BLOCKED: the word's block
    // The block counters' last values, per step (a running step has in_h, in_w >= 1): the
    // loop compares for equality, no add before the compare.
    const unsigned bx_last = g.in_bx - 1, by_last = g.in_by - 1;
    unsigned flat_first = 0;    // FLAT: 16 w, the word's first code in the map
    // reorder: running sums, no multiplier: c out_plane (channel_base), the block row's first
    // place (block_base = channel_base + 4 by out_w), the block's (col_place = block_base +
    // 4 bx) and this row's (row_place = col_place + row out_w). Every next value is one of
    // four sums of a register and a per-step constant, formed in parallel; the counters only
    // select among them (one adder and one select on each loop-carried path).
    const place_t out_w = d.out_w, out_w4 = place_t(d.out_w) << 2u, out_plane = g.out_plane;
    place_t channel_base = 0, block_base = 0, col_place = 0, row_place = 0;
    code_t pending[16];
#pragma HLS ARRAY_PARTITION variable = pending type = complete
    for (unsigned l = 0; l < 16; l++) {
#pragma HLS UNROLL
        pending[l] = 0;
    }
    KCNN_CSIM(unsigned long long trip_count = 0;)
ADD:
    for (unsigned it = 0; it < trips; it++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65536 avg = 2000
        KCNN_CSIM(trip_count++;)
        const bool fresh = row == 0;
        word_t data_b = 0;
        if (fresh) data_b = read_checked<0>(in_a, pa, g.a_final, status);
        if (status != KCNN_STATUS_OK) break;
        // Map A's word w: every partition's 4 banks at w div P (one read each) into registers,
        // then the word of partition w mod P: per bank row one balanced P:1 multiplexer
        // indexed by w mod P (not a chain of P conditional assignments).
        const unsigned address = (w >> log2_of<C::P>::value) & (C::tile_depth - 1);
        const unsigned part = w & (C::P - 1);
        typename mem<C>::tile_word_t rows[C::P][4];
#pragma HLS ARRAY_PARTITION variable = rows type = complete dim = 0
        for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            for (unsigned r = 0; r < 4; r++) {
#pragma HLS UNROLL
                rows[p][r] = tile[p][r][address];
            }
        }
        word_t data_a = 0;
        for (unsigned r = 0; r < 4; r++) {
#pragma HLS UNROLL
            data_a.range(16 * r + 15, 16 * r) = rows[part][r];
        }
        // Lane l: code 16 a + b of its BRAM18 (partition l div 8, BRAM18 (l mod 8) div 2, one
        // port per lane); places outside the map answer 0.
        code_t codes[16];
#pragma HLS ARRAY_PARTITION variable = codes type = complete
        word_t answer = 0;
        for (unsigned l = 0; l < 16; l++) {
#pragma HLS UNROLL
            const code_t a = nibble(data_a, l), b = nibble(data_b, l);
            const code_t f = code_t(products[l >> 3u][(l & 7u) >> 1u][((unsigned)a << 4u) | (unsigned)b]);
            const bool inside = blocked ? 4 * by + (l >> 2u) < d.in_h && 4 * bx + (l & 3u) < d.in_w
                                        : flat_first + l < g.out_codes;
            codes[l] = fresh ? (inside ? f : code_t(0)) : pending[l];
            answer.range(4 * l + 3, 4 * l) = codes[l];
        }
        if (!reorder) {
            write_word(out, answer, false);
        } else {
            // Output row `row` of the block: 4 consecutive places, 4 distinct banks.
            const unsigned y = 4 * by + (unsigned)row;
            for (unsigned bank = 0; bank < 16; bank++) {
#pragma HLS UNROLL
                const unsigned ox = (bank - (unsigned)row_place) & 15u;
                if (ox < 4 && y < d.out_h && 4 * bx + ox < d.out_w) {
                    const place_t at = row_place + place_t(ox);
                    out_memory[bank][(unsigned)(at >> 4u) & (C::out_depth / 16 - 1)] = codes[4 * (unsigned)row + ox];
                }
            }
            for (unsigned l = 0; l < 16; l++) {
#pragma HLS UNROLL
                pending[l] = codes[l];
            }
        }
        // The running places' candidates, in parallel from the current registers.
        const place_t next_row = row_place + out_w, next_col = col_place + 4;
        const place_t next_block = block_base + out_w4, next_channel = channel_base + out_plane;
        const bool word_done = !reorder || row == 3;
        const bool bx_end = bx == bx_last, by_end = by == by_last;
        row = word_done ? ap_uint<2>(0) : ap_uint<2>(row + 1);
        if (!word_done) {
            row_place = next_row;
        } else {
            w++;
            flat_first += 16;
            if (!bx_end) {
                bx++;
                col_place = row_place = next_col;
            } else if (!by_end) {
                bx = 0;
                by++;
                block_base = col_place = row_place = next_block;
            } else {
                bx = by = 0;
                channel_base = block_base = col_place = row_place = next_channel;
            }
        }
    }
    KCNN_CSIM(csim_log_loop(KCNN_LOOP_ADD, trip_count);)
    return status;  // BLOCKED -> FLAT: run_step's EMIT streams the out memory
}

}  // namespace kcnn

#endif  // KCNN_ADD_H_
