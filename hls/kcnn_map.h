// The map section of a conv or fc step into the tile (docs/job-format.md "The tile"), one
// word per cycle (F32 with two streams: one word of each stream), then the reserved word.
// Three forms: BLOCKED (conv), F32 (the first conv, encoded here), FLAT (fc).
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

// F32: 2 floats per word. With STREAMS = 2 word w of the map travels on stream w mod 2, so
// cycle t reads word 2t from A and word 2t + 1 from B (each stream one read site, the data
// routed after the reads) and encodes 4 floats; with one stream, word t from A, 2 floats.
// Codes collect into 16-code row segments (rows are padded to 16 values, so a segment never
// crosses a row); a finished segment splits by the s2d rule into 4 bank words, queued and
// written one per cycle. A segment arrives every 16 / (2 STREAMS) cycles (4 or 8) and
// leaves in 4, so the queue is empty again when the next one arrives (see the static_assert;
// hls/KERNEL_SPEC.md "MAP (conv, F32 input)"). Trips: ceil(map_words / STREAMS) + 1 + 4.
template <class C>
unsigned read_map_f32(axis_t &in_a, in_port &pa, axis_t &in_b, in_port &pb, const descriptor &d,
                      const step_geometry &g, const step_registers &regs,
                      const typename mem<C>::place_t placement[C::ch_max],
                      typename mem<C>::tile_word_t tile[C::P][4][C::tile_depth]) {
    typedef typename mem<C>::tile_word_t tile_word_t;
    // Floats encoded a cycle (one comparator bank each) and cycles a 16-code segment takes.
    enum { lanes = 2 * C::streams, segment_cycles = 16 / lanes };
    static_assert(segment_cycles >= 4, "a segment's 4 bank writes drain before the next segment");
    const unsigned words = (unsigned)d.map_words;
    // Map cycles; with two streams A carries the extra word of an odd count (word w on w mod
    // 2). An accepted F32 map is whole segments (a multiple of 8 words): both carry words / 2.
    const unsigned cycles = C::streams == 2 ? (words + 1) >> 1u : words;
    const unsigned s_log = g.s2d_log;
    const unsigned width = d.in_w << s_log;    // the network input's (padded) width
    const unsigned height = d.in_h << s_log;
    const unsigned segments = (width + 15) / 16;
    const unsigned n_keys = d.j1 > 1 ? d.j1 - 1 : 0;
    // y crosses a block row of the stored map every 4 s rows.
    const unsigned block_rows_mask = (4u << s_log) - 1;
    unsigned status = KCNN_STATUS_OK;
    bool bad_input = false;
    unsigned in_segment = 0, segment = 0, y = 0, channel0 = 0, row_base = 0;
    code_t codes[16];
#pragma HLS ARRAY_PARTITION variable = codes type = complete
    // The queue of a segment's 4 bank words: all go to the same bank row of their
    // partitions (one register), each with its channel, address and data.
    tile_word_t queue_data[4];
    unsigned queue_channel[4], queue_address[4];
    bool queue_ok[4];
#pragma HLS ARRAY_PARTITION variable = queue_data type = complete
#pragma HLS ARRAY_PARTITION variable = queue_channel type = complete
#pragma HLS ARRAY_PARTITION variable = queue_address type = complete
#pragma HLS ARRAY_PARTITION variable = queue_ok type = complete
    ap_uint<2> queue_bank = 0;
    ap_uint<3> queue_head = 0, queue_count = 0;
    // Cycles that also read a word of B (word 2 it + 1 exists): one compare of the counter
    // with this bound, which implies it < cycles.
    const unsigned b_cycles = C::streams == 2 ? words >> 1u : 0;
    KCNN_CSIM(unsigned long long trips = 0;)
MAP:
    for (unsigned it = 0; it < cycles + 5; it++) {
#pragma HLS PIPELINE II = 1
// Literal bounds per stream count (a pragma takes integers): 8 words to IN_DEPTH / 2 floats.
#if KCNN_STREAMS == 2
#pragma HLS LOOP_TRIPCOUNT min = 9 max = 65541 avg = 10000
#else
#pragma HLS LOOP_TRIPCOUNT min = 13 max = 131077 avg = 10000
#endif
        KCNN_CSIM(trips++;)
        if (queue_count != 0) {
            const unsigned e = queue_head;  // a 4:1 choice of the queued words
            const typename mem<C>::place_t entry = placement[queue_channel[e]];
            const unsigned address =
                (unsigned)entry.range(C::P + mem<C>::tile_addr_bits - 1, C::P) + queue_address[e];
            for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                if (queue_ok[e] && entry[p]) tile[p][queue_bank][address] = queue_data[e];
            }
            queue_head++;
            queue_count--;
        }
        if (it > cycles) continue;  // the final drain
        // Which words this cycle reads depends on the counter only: A every cycle (the
        // reserved word at it == cycles), B while its share lasts (word 2 it + 1 exists).
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
        for (unsigned i = 0; i < lanes; i++) {
#pragma HLS UNROLL
            const word_t data = i < 2 ? data_a : data_b;
            const unsigned x = 16 * segment + lanes * in_segment + i;
            bool not_finite;
            code_t code = encode_float(data.range(32 * (i & 1u) + 31, 32 * (i & 1u)), regs.keys, n_keys,
                                       not_finite);
            // Row padding past the input's width is not data: its value is ignored.
            if (x >= width) code = 0;
            else if (not_finite) bad_input = true;
            // One write site per code register: slot s of the segment takes codes
            // lanes s .. lanes s + lanes - 1.
            for (unsigned slot = 0; slot < segment_cycles; slot++) {
#pragma HLS UNROLL
                if (in_segment == slot) codes[lanes * slot + i] = code;
            }
        }
        if (in_segment == segment_cycles - 1) {
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
            // The previous segment's last write left the queue this cycle (above): with 4
            // cycles a segment (two streams) it is exactly empty here, never overwritten.
            queue_bank = by_row & 3u;
            queue_head = 0;
            queue_count = 4;
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
    KCNN_CSIM(csim_log_loop(KCNN_LOOP_MAP, trips);)
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
