// LRN on codes, streamed by channel (hls/KERNEL_SPEC.md "LRN step"): channel c lives in
// partition c % P; LRN_c computes channel c from the window's partitions while channel
// c + after + 1 is loaded into its own partition (P >= size + 1 keeps the two apart). The
// first loop, PLANE, loads channels 0..after.
#ifndef KCNN_LRN_H_
#define KCNN_LRN_H_

#include "kcnn_descriptor.h"

namespace kcnn {

template <class C>
unsigned run_lrn(axis_t &in_a, in_port &pa, axis_t &out, const descriptor &d,
                 const step_geometry &g,
                 typename mem<C>::tile_word_t tile[C::P][4][C::tile_depth],
                 const typename mem<C>::square_t squares[C::lrn_lanes][C::lrn_size_max][2][8],
                 const typename mem<C>::cut_t cut0[C::lrn_lanes][16],
                 const typename mem<C>::cut_t cut1[C::lrn_lanes][32],
                 const typename mem<C>::cut_t cut2[C::lrn_lanes][64],
                 const typename mem<C>::cut_t cut3[C::lrn_lanes][128]) {
    typedef typename mem<C>::lrn_sum_t sum_t;
    const unsigned groups = 16 / C::lrn_lanes;  // cycles per output block
    const unsigned before = g.lrn_before, after = g.lrn_after;
    const unsigned plane = g.in_plane;
    unsigned status = KCNN_STATUS_OK;

CHANNELS:
    for (int c = -1; c < (int)d.in_c; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 2 max = 1025 avg = 128
        // Channels loaded by this loop: 0..after for PLANE, else c + after + 1 if it exists.
        const unsigned first = c < 0 ? 0 : (unsigned)c + after + 1;
        const unsigned load = c < 0 ? g.lrn_first_load : (first < d.in_c ? plane : 0);
        const unsigned work = c < 0 ? 0 : plane * groups;
        const unsigned trips = work > load ? work : load;
        unsigned load_channel = first, load_block = 0;
        unsigned block = 0, group = 0;
        word_t out_word = 0;
        KCNN_CSIM(unsigned long long trip_count = 0;)
    LRN:
        for (unsigned it = 0; it < trips; it++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 4 max = 16384 avg = 800
// The loaded channel's partition is outside the window (P >= size + 1): its read is discarded.
#pragma HLS DEPENDENCE variable = tile type = inter dependent = false
            KCNN_CSIM(trip_count++;)
            typedef ap_uint<4 * C::lrn_lanes> lanes_t;  // this cycle's LRN_LANES codes of a block
            // Every partition's block at once (one read per bank), narrowed at once to this
            // cycle's lanes; the window then picks partitions from these narrow words
            // (lrn_size_max P:1 multiplexers of 4 LRN_LANES bits, not of 64).
            lanes_t narrow[C::P];
#pragma HLS ARRAY_PARTITION variable = narrow type = complete
            for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                word_t b = 0;
                for (unsigned r = 0; r < 4; r++) {
#pragma HLS UNROLL
                    b.range(16 * r + 15, 16 * r) = tile[p][r][block & (C::tile_depth - 1)];
                }
                // group's slice: a (16 / LRN_LANES):1 multiplexer of compile-time slices
                lanes_t pick = 0;
                for (unsigned q = 0; q < 16 / C::lrn_lanes; q++) {
#pragma HLS UNROLL
                    if (q == group) pick = b.range(4 * C::lrn_lanes * (q + 1) - 1, 4 * C::lrn_lanes * q);
                }
                narrow[p] = pick;
            }
            if (it < load && status == KCNN_STATUS_OK) {
                const word_t data = read_checked<0>(in_a, pa, g.a_final, status);
                if (status == KCNN_STATUS_OK) {
                    const unsigned part = load_channel & (C::P - 1);
                    for (unsigned r = 0; r < 4; r++) {
#pragma HLS UNROLL
                        tile[part][r][load_block & (C::tile_depth - 1)] = data.range(16 * r + 15, 16 * r);
                    }
                }
                if (++load_block == plane) {
                    load_block = 0;
                    load_channel++;
                }
            }
            if (it >= work) continue;
            // The window's channels c - before .. c + after (those that exist).
            lanes_t window[C::lrn_size_max];
            bool present[C::lrn_size_max];
#pragma HLS ARRAY_PARTITION variable = window type = complete
#pragma HLS ARRAY_PARTITION variable = present type = complete
            for (unsigned w = 0; w < C::lrn_size_max; w++) {
#pragma HLS UNROLL
                const int channel = c - (int)before + (int)w;
                present[w] = w < d.kh && channel >= 0 && channel < (int)d.in_c;
                window[w] = narrow[(unsigned)channel & (C::P - 1)];
            }
            const lanes_t centre_lanes = window[before];
            lanes_t result = 0;  // lane l is 4 dy + dx = group * LRN_LANES + l of the block
            for (unsigned l = 0; l < C::lrn_lanes; l++) {
#pragma HLS UNROLL
                sum_t sum = 0;
                for (unsigned w = 0; w < C::lrn_size_max; w++) {
#pragma HLS UNROLL
                    const code_t a = code_t((window[w] >> (4 * l)) & 15);
                    if (present[w]) sum += squares[l][w][a & 1][a >> 1];
                }
                const code_t centre = code_t((centre_lanes >> (4 * l)) & 15);
                // #{m : S <= cut[j][m]} over a non-increasing row is the length of the prefix
                // that holds: a 4-stage binary search. Stage s probes m = k 2^(4-s) +
                // 2^(3-s) - 1 (k < 2^s), so it reads its own table of 16 x 2^s cut points at
                // (j, k): 16, 32, 64, 128 entries, not 4 copies of all 256.
                const unsigned j = (unsigned)centre;
                const unsigned probe0 = 7;
                const unsigned code0 = probe0 < d.jo1 && ap_int<21>(sum) <= cut0[l][j] ? 8u : 0u;
                const unsigned probe1 = code0 + 3;
                const bool up1 = probe1 < d.jo1 && ap_int<21>(sum) <= cut1[l][(j << 1u) | (code0 >> 3u)];
                const unsigned code1 = code0 + (up1 ? 4u : 0u);
                const unsigned probe2 = code1 + 1;
                const bool up2 = probe2 < d.jo1 && ap_int<21>(sum) <= cut2[l][(j << 2u) | (code1 >> 2u)];
                const unsigned code2 = code1 + (up2 ? 2u : 0u);
                const unsigned probe3 = code2;
                const bool up3 = probe3 < d.jo1 && ap_int<21>(sum) <= cut3[l][(j << 3u) | (code2 >> 1u)];
                const unsigned code = code2 + (up3 ? 1u : 0u);
                result.range(4 * l + 3, 4 * l) = centre == 0 ? 0 : code;
            }
            // into the group's slice of the output word (compile-time slices, one enabled)
            for (unsigned q = 0; q < 16 / C::lrn_lanes; q++) {
#pragma HLS UNROLL
                if (q == group) out_word.range(4 * C::lrn_lanes * (q + 1) - 1, 4 * C::lrn_lanes * q) = result;
            }
            if (++group == groups) {
                write_word(out, out_word, false);
                out_word = 0;
                group = 0;
                block++;
            }
        }
        KCNN_CSIM(csim_log_loop(c < 0 ? KCNN_LOOP_PLANE : KCNN_LOOP_LRN, trip_count);)
        if (status != KCNN_STATUS_OK) break;
    }
    if (status == KCNN_STATUS_OK) {
        read_checked<0>(in_a, pa, g.a_final, status);
    }
    return status;
}

}  // namespace kcnn

#endif  // KCNN_LRN_H_
