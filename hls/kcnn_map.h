// The map section of a conv or fc step into the tile (docs/job-format.md "The tile"), one
// word per cycle (F32 with two streams: one word of each stream), then the reserved word.
// Three forms: BLOCKED (conv), F32 or U8 (the first conv's raw image, encoded here), FLAT (fc).
#ifndef KCNN_MAP_H_
#define KCNN_MAP_H_

#include "kcnn_const.h"

namespace kcnn {

// BLOCKED: word = one 4x4 block of channel c; row dy of the block goes to bank dy of every
// partition in the channel's placement mask, at the channel's slot base + block index.
template <class C>
unsigned read_map_blocked(axis_t &in_a, in_port &pa, const descriptor &d, const step_geometry &g,
                          const typename mem<C>::place_t placement[C::ch_max],
                          typename mem<C>::tile_word_t tile[C::P][4][C::tile_depth]) {
    const unsigned words = (unsigned)d.map_words;
    unsigned status = KCNN_STATUS_OK;
    unsigned channel = 0, block = 0;
    KCNN_CSIM(unsigned long long trips = 0;)
MAP:
    for (unsigned it = 0; it <= words; it++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 2 max = 16385 avg = 2000
        KCNN_CSIM(trips++;)
        const word_t data = read_checked<0>(in_a, pa, g.a_final, status);
        if (status != KCNN_STATUS_OK) break;
        if (it == words) continue;  // the reserved word (the previous step's trailer)
        const typename mem<C>::place_t entry = placement[channel];
        const unsigned address = (unsigned)entry.range(C::P + mem<C>::tile_addr_bits - 1, C::P) + block;
        for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            if (entry[p]) {
                for (unsigned r = 0; r < 4; r++) {
#pragma HLS UNROLL
                    tile[p][r][address] = data.range(16 * r + 15, 16 * r);
                }
            }
        }
        if (++block == g.in_plane) {
            block = 0;
            channel++;
        }
    }
    KCNN_CSIM(csim_log_loop(KCNN_LOOP_MAP, trips);)
    return status;
}

// The input encoder of docs/job-format.md: code 0 for +-0, else 1 + #{m : key(x) >= K[m]}.
inline code_t encode_float(ap_uint<32> bits, const ap_int<32> keys[KCNN_J_MAX - 1], unsigned n_keys,
                           bool &not_finite) {
#pragma HLS INLINE
    const ap_uint<31> magnitude = bits.range(30, 0);
    not_finite = bits.range(30, 23) == 0xFF;
    if (magnitude == 0 || not_finite) return 0;
    // Negative floats order reversed by their magnitude: ~magnitude is negative as an int32.
    const ap_int<32> key = bits[31] ? ap_int<32>(~ap_uint<32>(magnitude)) : ap_int<32>(bits);
    unsigned code = 1;
    for (unsigned m = 0; m < KCNN_J_MAX - 1; m++) {
#pragma HLS UNROLL
        if (m < n_keys && key >= keys[m]) code++;
    }
    return code_t(code);
}

// The pixel encoder of docs/job-format.md (U8): code 0 outside the data window or for the
// channel's zero pixel, else 1 + #{m : p >= T[c][m]} over the channel's row of cut points
// (entries m >= J - 2 hold 256, which no pixel reaches: at most J - 1). 14 comparators of
// 9 bits (a cut point is 0..256) and one 9-bit equality.
inline code_t encode_pixel(ap_uint<8> p, const pixel_const_t cuts[pixel_cuts], pixel_const_t zero,
                           bool in_window) {
#pragma HLS INLINE
    const pixel_const_t v = p;
    if (!in_window || v == zero) return 0;
    unsigned code = 1;
    for (unsigned m = 0; m < pixel_cuts; m++) {
#pragma HLS UNROLL
        if (v >= cuts[m]) code++;
    }
    return code_t(code);
}

// The first step's raw image (F32 or U8), encoded here: one loader for both formats, one
// module (one segment register, one queue, one pair of write sites on every tile bank and
// of reads of the placement BRAM, whose port multiplexers a second module would double).
// F32: 2 floats per word. With STREAMS = 2 word w of the map travels on stream w mod 2, so
// cycle t reads word 2t from A and word 2t + 1 from B (each stream one read site, the data
// routed after the reads) and encodes 4 floats; with one stream, word t from A, 2 floats.
// U8: 8 pixels per word, always on A: cycle t reads word t and encodes 8 pixels.
// Codes collect into 16-code row segments (rows are padded to 16 values, so a segment never
// crosses a row); a finished segment splits by the s2d rule into 4 bank words, queued and
// written two per cycle (both ports of the TDP tile banks, two reads of the placement BRAM's
// two ports). A segment arrives every 16 / codes-a-cycle cycles (F32 4 or 8, U8 2) and
// leaves in 2, so the queue is empty again when the next one arrives (see the
// static_assert; hls/KERNEL_SPEC.md "MAP (conv, F32 input)", "MAP (conv, U8 input)").
// Trips: F32 ceil(map_words / STREAMS) + 1 + 4 (the reserved word, the drain's 2 cycles
// and 2 spare: the protocol's trip formula), U8 map_words + 1 + 2.
template <class C>
unsigned read_map_raw(axis_t &in_a, in_port &pa, axis_t &in_b, in_port &pb, const descriptor &d,
                      const step_geometry &g, const step_registers &regs,
                      const typename mem<C>::place_t placement[C::ch_max],
                      typename mem<C>::tile_word_t tile[C::P][4][C::tile_depth]) {
    typedef typename mem<C>::tile_word_t tile_word_t;
    typedef typename mem<C>::place_t place_t;
    enum {
        // Codes a cycle (one encoder each) and the cycles a 16-code segment takes, per format.
        f32_lanes = 2 * C::streams,
        u8_lanes = 8,
        f32_segment_cycles = 16 / f32_lanes,
        u8_segment_cycles = 16 / u8_lanes,
        u8_lane_bits = 3,
        f32_lane_bits = log2_of<f32_lanes>::value,
        // Bank words the queue writes a cycle (a TDP bank's 2 ports), cycles a segment's 4 take.
        drain = 2,
        drain_cycles = 4 / drain,
    };
    static_assert(drain_cycles <= u8_segment_cycles && drain_cycles <= f32_segment_cycles,
                  "a segment's 4 bank writes drain before the next segment completes");
    static_assert((1u << u8_lane_bits) == u8_lanes && (KCNN_PIXEL_CHANNELS & (KCNN_PIXEL_CHANNELS - 1)) == 0,
                  "lane and cut-point row indices are bit fields");
    static_assert(f32_segment_cycles <= 8 && u8_segment_cycles <= 8, "in_segment fits its 3 bits");
    const bool u8 = g.u8;
    const unsigned words = (unsigned)d.map_words;
    // Map cycles; with two streams an F32 map's A carries the extra word of an odd count (word
    // w on w mod 2). An accepted F32 map is whole segments (a multiple of 8 words): both carry
    // words / 2. A U8 map is on A only: a word a cycle.
    const unsigned cycles = !u8 && C::streams == 2 ? (words + 1) >> 1u : words;
    const unsigned trips = cycles + 1 + (u8 ? 2 : 4);
    const unsigned last_slot = u8 ? u8_segment_cycles - 1 : f32_segment_cycles - 1;
    const unsigned s_log = g.s2d_log;
    const unsigned width = d.in_w << s_log;    // the network input's (padded) width
    const unsigned height = d.in_h << s_log;
    const unsigned segments = (width + 15) / 16;
    const unsigned n_keys = d.j1 > 1 ? d.j1 - 1 : 0;
    // U8: the data window, rows of the section (per channel) and columns of the padded row.
    const unsigned row0 = (unsigned)regs.window.range(15, 0), row1 = (unsigned)regs.window.range(31, 16);
    const unsigned col0 = (unsigned)regs.window.range(47, 32), col1 = (unsigned)regs.window.range(63, 48);
    // A cycle's 8 pixels are x = base | i, base = 16 segment + 8 in_segment a multiple of 8:
    // x >= col0 iff base > col0 & ~7, or base == col0 & ~7 and i >= col0 & 7 (x < col1
    // likewise). So the column window is 4 compares of base a cycle, and per lane a 5-input
    // function of their results and 3 bits, not 2 compares of a 32-bit x per lane.
    const unsigned col0_hi = col0 & ~7u, col1_hi = col1 & ~7u;
    const unsigned col0_lo = col0 & 7u, col1_lo = col1 & 7u;
    // y crosses a block row of the stored map every 4 s rows.
    const unsigned block_rows_mask = (4u << s_log) - 1;
    unsigned status = KCNN_STATUS_OK;
    bool bad_input = false;
    unsigned segment = 0, y = 0, channel0 = 0, row_base = 0;
    // The segment's cycle, 0 .. 16 / lanes - 1 <= 7: 3 bits (as `unsigned`, 32: the slot
    // compares of the 16 code registers and the last-slot test ran on 32-bit equalities).
    ap_uint<3> in_segment = 0;
    code_t codes[16];
#pragma HLS ARRAY_PARTITION variable = codes type = complete
    // The queue of a segment's 4 bank words: all go to the same bank row of their
    // partitions (one register), each with its channel, address and data.
    // Channel and address at their widths (a channel < in_c <= CH_MAX, an address inside the
    // channel's plane < in_plane <= tile depth; an entry past the map's width, queue_ok
    // false, is never written): as `unsigned` they were 2 x 4 x 32 register bits and two
    // 2:1 multiplexers of 64 bits, which HLS cannot narrow through the loop-carried queue.
    tile_word_t queue_data[4];
    ap_uint<mem<C>::ch_bits> queue_channel[4];
    typename mem<C>::tile_addr_t queue_address[4];
    bool queue_ok[4];
#pragma HLS ARRAY_PARTITION variable = queue_data type = complete
#pragma HLS ARRAY_PARTITION variable = queue_channel type = complete
#pragma HLS ARRAY_PARTITION variable = queue_address type = complete
#pragma HLS ARRAY_PARTITION variable = queue_ok type = complete
    ap_uint<2> queue_bank = 0;
    // Drain cycles done and left: the cycle's words are entries drain * head + j, j < drain.
    ap_uint<1> queue_head = 0;
    ap_uint<2> queue_count = 0;
    // Cycles that also read a word of B (an F32 map with two streams, word 2 it + 1 exists):
    // one compare of the counter with this bound, which implies it < cycles.
    const unsigned b_cycles = C::streams == 2 && !u8 ? words >> 1u : 0;
    KCNN_CSIM(unsigned long long loop_trips = 0;)
MAP:
    for (unsigned it = 0; it < trips; it++) {
#pragma HLS PIPELINE II = 1
// The queue's two write sites a cycle are two addresses (two channels of one partition have
// two slots, one channel's two words two column blocks): never the same word.
#pragma HLS DEPENDENCE variable = tile type = intra dependent = false
// Literal bounds per stream count (a pragma takes integers): from a 2-word U8 map (5 trips)
// to an F32 map of IN_DEPTH floats (a U8 map of IN_DEPTH pixels is 32771 trips).
#if KCNN_STREAMS == 2
#pragma HLS LOOP_TRIPCOUNT min = 5 max = 65541 avg = 10000
#else
#pragma HLS LOOP_TRIPCOUNT min = 5 max = 131077 avg = 10000
#endif
        KCNN_CSIM(loop_trips++;)
        if (queue_count != 0) {
            // Two queued words a cycle, each one read of the placement BRAM (port j) and, in
            // every partition of its mask, one write into bank queue_bank (port j).
            for (unsigned j = 0; j < drain; j++) {
#pragma HLS UNROLL
                const unsigned e = drain * queue_head + j;  // a 2:1 choice of the queued words
                const place_t entry = placement[queue_channel[e]];
                const unsigned address =
                    (unsigned)entry.range(C::P + mem<C>::tile_addr_bits - 1, C::P) + queue_address[e];
                for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                    if (queue_ok[e] && entry[p]) tile[p][queue_bank][address] = queue_data[e];
                }
            }
            queue_head++;
            queue_count--;
        }
        if (it > cycles) continue;  // the final drain
        // Which words this cycle reads depends on the counter only: A every cycle (the
        // reserved word at it == cycles), B while an F32 map's share lasts (word 2 it + 1).
        const bool want_b = it < b_cycles;
        word_t data_b = 0;
        const word_t data_a = read_checked<0>(in_a, pa, g.a_final, status);
        if (want_b) {
            unsigned status_b = KCNN_STATUS_OK;
            data_b = read_checked<1>(in_b, pb, g.b_final, status_b);
            if (status == KCNN_STATUS_OK) status = status_b;  // A's word comes first in the map
        }
        if (status != KCNN_STATUS_OK) break;
        if (it == cycles) continue;  // the reserved word
        // F32: lanes i < 2 STREAMS, float i mod 2 of A (i < 2) or B; x = 16 segment +
        // lanes in_segment + i (bit fields: an OR, no adder).
        code_t f32_code[f32_lanes];
#pragma HLS ARRAY_PARTITION variable = f32_code type = complete
        for (unsigned i = 0; i < f32_lanes; i++) {
#pragma HLS UNROLL
            const word_t data = i < 2 ? data_a : data_b;
            const unsigned x = (segment << 4u) | ((unsigned)in_segment << f32_lane_bits) | i;
            bool not_finite;
            code_t code = encode_float(data.range(32 * (i & 1u) + 31, 32 * (i & 1u)), regs.keys, n_keys,
                                       not_finite);
            // Row padding past the input's width is not data: its value is ignored.
            if (x >= width) code = 0;
            else if (not_finite && !u8) bad_input = true;
            f32_code[i] = code;
        }
        // U8: lane i is byte i of A's word, x = 16 segment + 8 in_segment + i; the row's
        // window test once, the channel's cut points and zero pixel through a 4:1 choice.
        const bool row_in = y >= row0 && y < row1;
        const unsigned pc = channel0 & (KCNN_PIXEL_CHANNELS - 1);
        pixel_const_t cut_row[pixel_cuts];
#pragma HLS ARRAY_PARTITION variable = cut_row type = complete
        for (unsigned m = 0; m < pixel_cuts; m++) {
#pragma HLS UNROLL
            cut_row[m] = regs.cuts[pc][m];
        }
        const pixel_const_t zero = regs.zero_pixel[pc];
        const unsigned base = (segment << 4u) | ((unsigned)in_segment << u8_lane_bits);
        const bool past_col0 = base > col0_hi, at_col0 = base == col0_hi;
        const bool before_col1 = base < col1_hi, at_col1 = base == col1_hi;
        code_t u8_code[u8_lanes];
#pragma HLS ARRAY_PARTITION variable = u8_code type = complete
        for (unsigned i = 0; i < u8_lanes; i++) {
#pragma HLS UNROLL
            // col0 <= base | i < col1 (see col0_hi)
            const bool col_in = (past_col0 || (at_col0 && i >= col0_lo)) && (before_col1 || (at_col1 && i < col1_lo));
            u8_code[i] = encode_pixel(data_a.range(8 * i + 7, 8 * i), cut_row, zero, row_in && col_in);
        }
        // One write site per code register: code k is lane k mod lanes of slot k div lanes.
        for (unsigned k = 0; k < 16; k++) {
#pragma HLS UNROLL
            const bool slot = in_segment == (u8 ? k / u8_lanes : k / f32_lanes);
            if (slot) codes[k] = u8 ? u8_code[k % u8_lanes] : f32_code[k % f32_lanes];
        }
        if (in_segment == last_slot) {
            // Bank word k of the segment (x = 16 segment + i, stored column x >> s_log).
            const unsigned by_row = y >> s_log;  // stored row
            for (unsigned k = 0; k < 4; k++) {
#pragma HLS UNROLL
                tile_word_t w = 0;
                unsigned channel, column_block;
                if (s_log == 0) {
                    for (unsigned n = 0; n < 4; n++) w.range(4 * n + 3, 4 * n) = codes[4 * k + n];
                    channel = channel0;
                    column_block = 4 * segment + k;
                } else if (s_log == 1) {
                    const unsigned phase = k & 1u, half = k >> 1u;
                    for (unsigned n = 0; n < 4; n++) {
                        w.range(4 * n + 3, 4 * n) = codes[phase + 2 * (4 * half + n)];
                    }
                    channel = 4 * channel0 + 2 * (y & 1u) + phase;
                    column_block = 2 * segment + half;
                } else {
                    for (unsigned n = 0; n < 4; n++) w.range(4 * n + 3, 4 * n) = codes[k + 4 * n];
                    channel = 16 * channel0 + 4 * (y & 3u) + k;
                    column_block = segment;
                }
                queue_data[k] = w;
                queue_channel[k] = channel;
                queue_address[k] = row_base + column_block;
                queue_ok[k] = column_block < g.in_bx;
            }
            // The previous segment's last writes left the queue this cycle (above): with 2
            // cycles a segment (U8) it is exactly empty here, never overwritten.
            queue_bank = by_row & 3u;
            queue_head = 0;
            queue_count = drain_cycles;
            in_segment = 0;
            if (++segment == segments) {
                segment = 0;
                if ((y & block_rows_mask) == block_rows_mask) row_base += g.in_bx;
                if (++y == height) {
                    y = 0;
                    row_base = 0;
                    channel0++;
                }
            }
        } else {
            in_segment++;
        }
    }
    KCNN_CSIM(csim_log_loop(KCNN_LOOP_MAP, loop_trips);)
    if (status == KCNN_STATUS_OK && bad_input) status = KCNN_STATUS_BAD_INPUT;
    return status;
}

// FLAT (fc): element t = 16 w + i goes to partition t mod P, position q = t div P; each
// partition gathers 4 positions into a bank word (bank (q/4) mod 4, address q/16) and writes
// it when full, at most once per cycle; the reserved word's cycle writes the partial ones.
template <class C>
unsigned read_map_flat(axis_t &in_a, in_port &pa, const descriptor &d, const step_geometry &g,
                       typename mem<C>::tile_word_t tile[C::P][4][C::tile_depth]) {
    typedef typename mem<C>::tile_word_t tile_word_t;
    const unsigned words = (unsigned)d.map_words;
    unsigned status = KCNN_STATUS_OK;
    tile_word_t gather[C::P];
    ap_uint<16> position[C::P];  // next position of the partition
#pragma HLS ARRAY_PARTITION variable = gather type = complete
#pragma HLS ARRAY_PARTITION variable = position type = complete
    for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
        gather[p] = 0;
        position[p] = 0;
    }
    KCNN_CSIM(unsigned long long trips = 0;)
MAP:
    for (unsigned w = 0; w <= words; w++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 2 max = 4097 avg = 500
        KCNN_CSIM(trips++;)
        const word_t data = read_checked<0>(in_a, pa, g.a_final, status);
        if (status != KCNN_STATUS_OK) break;
        for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            const ap_uint<16> q0 = position[p];
            tile_word_t collected = gather[p];
            ap_uint<16> q = q0;
            if (w < words) {
                for (unsigned i = 0; i < 16; i++) {
#pragma HLS UNROLL
                    if (((16 * w + i) & (C::P - 1)) == p) {
                        collected.range(4 * (q & 3) + 3, 4 * (q & 3)) = nibble(data, i);
                        q++;
                    }
                }
            }
            // A group of 4 positions is complete, or the map ended inside one.
            const bool full = q != q0 && (q & 3) == 0;
            const bool partial = w == words && (q & 3) != 0;
            if (full || partial) {
                const ap_uint<16> group = (q - 1) >> 2;
                tile[p][group & 3][group >> 2] = collected;
                collected = 0;
            }
            gather[p] = collected;
            position[p] = q;
        }
    }
    KCNN_CSIM(csim_log_loop(KCNN_LOOP_MAP, trips);)
    return status;
}

// ADD: map A word by word into the whole tile, word w into the 4 banks of partition w mod P
// at w div P (its 4 rows of 16 bits, row r into bank r): one partition's 4 banks take one
// write each per cycle (the write enable is the partition). Then the reserved word.
template <class C>
unsigned read_map_words(axis_t &in_a, in_port &pa, const descriptor &d, const step_geometry &g,
                        typename mem<C>::tile_word_t tile[C::P][4][C::tile_depth]) {
    const unsigned words = (unsigned)d.map_words;
    unsigned status = KCNN_STATUS_OK;
    KCNN_CSIM(unsigned long long trips = 0;)
MAP:
    for (unsigned it = 0; it <= words; it++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 2 max = 16385 avg = 2000
        KCNN_CSIM(trips++;)
        const word_t data = read_checked<0>(in_a, pa, g.a_final, status);
        if (status != KCNN_STATUS_OK) break;
        if (it == words) continue;  // the reserved word
        const unsigned part = it & (C::P - 1);
        const unsigned address = (it >> log2_of<C::P>::value) & (C::tile_depth - 1);
        for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            if (p == part) {
                for (unsigned r = 0; r < 4; r++) {
#pragma HLS UNROLL
                    tile[p][r][address] = data.range(16 * r + 15, 16 * r);
                }
            }
        }
    }
    KCNN_CSIM(csim_log_loop(KCNN_LOOP_MAP, trips);)
    return status;
}

// RESIDUAL: the shortcut section (the step's output shape and format), one word per cycle
// into the shortcut memory: word w at w, its nibble i the code whose place in the section is
// 16 w + i (kcnn_partition.h reads it back by that place).
template <class C>
unsigned read_shortcut(axis_t &in_a, in_port &pa, const step_geometry &g,
                       ap_uint<64> shortcut[C::out_depth / 16]) {
    const unsigned words = (unsigned)g.sc_words;
    unsigned status = KCNN_STATUS_OK;
    KCNN_CSIM(unsigned long long trips = 0;)
SHORTCUT:
    for (unsigned w = 0; w < words; w++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 200
        KCNN_CSIM(trips++;)
        const word_t data = read_checked<0>(in_a, pa, g.a_final, status);
        if (status != KCNN_STATUS_OK) break;
        shortcut[w & (C::out_depth / 16 - 1)] = data;
    }
    KCNN_CSIM(csim_log_loop(KCNN_LOOP_SHORTCUT, trips);)
    return status;
}

}  // namespace kcnn

#endif  // KCNN_MAP_H_
