// Max-pool on codes, streamed by channel (hls/KERNEL_SPEC.md "Pool step"): channel c is
// pooled from partitions 2 (c % 2) and 2 (c % 2) + 1 (two copies: one read port of each bank
// of each copy) while channel c + 1 is written into both copies of the other pair, in one
// loop per channel (the first, PLANE, only loads channel 0). Every bank of partitions 0..3
// then sees one read and at most one write per cycle, whatever c is: no port is shared
// between exclusive branches. Codes of an unsigned map are ordered like its values and
// padding never wins, so the max of codes is the code of the max; a code's thermometer (bit
// n set for n < code) turns that max into an OR.
#ifndef KCNN_POOL_H_
#define KCNN_POOL_H_

#include "kcnn_descriptor.h"
#include "kcnn_partition.h"

namespace kcnn {

inline unsigned thermometer_code(ap_uint<15> t) {
#pragma HLS INLINE
    unsigned code = 0;
    for (unsigned n = 0; n < 15; n++) {
#pragma HLS UNROLL
        code += t[n];
    }
    return code;
}

// The pool step after its descriptor; reads the map and the reserved word. The answer's
// words are written here (BLOCKED: per block; FLAT: run_step's EMIT at the end).
template <class C>
unsigned run_pool(axis_t &in_a, in_port &pa, axis_t &out, const descriptor &d,
                  const step_geometry &g,
                  typename mem<C>::tile_word_t tile[C::P][4][C::tile_depth],
                  code_t out_memory[16][C::out_depth / 16]) {
    const bool flat = d.out_format == KCNN_FMT_FLAT;
    const unsigned rows = 3 * d.sh + d.kh;
    const unsigned nw = g.pool_nw, q_read = g.pool_q, q_block = g.pool_cycles;
    const unsigned blocks_work = g.pool_work;  // out_blocks * q_block
    // Region origin of output block (oby, obx): y0 = 4 oby sh - pad_t, x0 = 4 obx sw - pad_l;
    // y0 mod 4 and x0 mod 4 are the same for every block.
    const unsigned y_phase = (0u - d.pad_t) & 3u, x_phase = (0u - d.pad_l) & 3u;
    const int by_first = -(int)((d.pad_t + 3) / 4), bx_first = -(int)((d.pad_l + 3) / 4);
    // Block-row offsets 0..7 rows below a region's first block row (an item is at most
    // ceil(R / 4) + 1 rows down): the items' addresses then need no multiplier.
    int row_offset[8];
#pragma HLS ARRAY_PARTITION variable = row_offset type = complete
    for (unsigned k = 0; k < 8; k++) {
#pragma HLS UNROLL
        row_offset[k] = (int)(k * g.in_bx);
    }
    unsigned status = KCNN_STATUS_OK;
    ap_uint<15> thermo[16];
    code_t pending[16];
#pragma HLS ARRAY_PARTITION variable = thermo type = complete
#pragma HLS ARRAY_PARTITION variable = pending type = complete
    for (unsigned l = 0; l < 16; l++) {
#pragma HLS UNROLL
        thermo[l] = 0;
        pending[l] = 0;
    }
    // FLAT: the rows of the last finished block still to be written into the out memory
    // (one per cycle, carried into the next channel's loop; the last channel flushes them).
    // pending_base is the out-memory place of the next row's first code (channel c out_plane
    // + y out_w + 4 bx, kept as a running sum: no multiplier), pending_y that row.
    unsigned pending_rows = 0, pending_bx = 0, pending_base = 0, pending_y = 0;
    unsigned channel_base = 0;  // c * out_plane
    const unsigned out_w4 = d.out_w << 2u;

CHANNELS:
    for (int c = -1; c < (int)d.in_c; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 2 max = 1025 avg = 128
        const unsigned odd = (unsigned)c & 1u;  // c = -1 reads partitions 2, 3, loads 0, 1
        const bool last_channel = c + 1 == (int)d.in_c;
        const unsigned work = c < 0 ? 0 : blocks_work + (flat && last_channel ? KCNN_FLAT_WRITE_CYCLES : 0);
        const unsigned load = c + 1 < (int)d.in_c ? g.in_plane : 0;
        const unsigned trips = work > load ? work : load;
        unsigned q = 0, oby = 0, obx = 0;
        unsigned d0 = 0, w0 = 0;  // item 2q of a bank: region row d0 of the bank, word w0
        int by0 = by_first, bx0 = bx_first;
        int row_base = by_first * (int)g.in_bx;  // by0 * in_bx
        unsigned out_row_base = channel_base;     // c out_plane + 4 oby out_w
        word_t out_word = 0;
        KCNN_CSIM(unsigned long long trip_count = 0;)
    POOL:
        for (unsigned it = 0; it < trips; it++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 4 max = 16384 avg = 300
// The pair read (partitions 2 (c % 2), + 1) and the pair written (the other two) never meet
// inside one loop; a read of a written partition is discarded.
#pragma HLS DEPENDENCE variable = tile type = inter dependent = false
            KCNN_CSIM(trip_count++;)
            // FLAT: one output row of the previous block per cycle into the out memory.
            if (pending_rows != 0) {
                const unsigned oy = 4 - pending_rows;
                const unsigned base = pending_base;
                for (unsigned b = 0; b < 16; b++) {
#pragma HLS UNROLL
                    const unsigned ox = (b - base) & 15u;
                    if (ox < 4 && pending_y < d.out_h && 4 * pending_bx + ox < d.out_w) {
                        out_memory[b][((base + ox) >> 4u) & (C::out_depth / 16 - 1)] =
                            pending[4 * oy + ox];
                    }
                }
                pending_base += d.out_w;
                pending_y++;
                pending_rows--;
            }

            const bool loading = it < load && status == KCNN_STATUS_OK;
            word_t data = 0;
            if (loading) {
                data = read_checked<0>(in_a, pa, g.a_final, status);
            }
            const bool write = loading && status == KCNN_STATUS_OK;
            const bool pooling = it < work && it < blocks_work;
            unsigned address[4][2];
            bool valid[4][2];
            unsigned region_row[4][2], region_word[4][2];
            for (unsigned r = 0; r < 4; r++) {
#pragma HLS UNROLL
                const unsigned first_row = (r - y_phase) & 3u;
                const unsigned carry = r < y_phase ? 1 : 0;
                for (unsigned e = 0; e < 2; e++) {
#pragma HLS UNROLL
                    const bool wrap = e == 1 && w0 + 1 == nw;
                    const unsigned dd = wrap ? d0 + 1 : d0;
                    const unsigned ww = e == 0 ? w0 : wrap ? 0 : w0 + 1;
                    const int by = by0 + (int)(dd + carry);
                    const int bx = bx0 + (int)ww;
                    const int y = 4 * by + (int)r;
                    region_row[r][e] = first_row + 4 * dd;
                    region_word[r][e] = ww;
                    valid[r][e] = pooling && q < q_read && first_row + 4 * dd < rows && y >= 0 &&
                                  y < (int)d.in_h && bx >= 0 && bx < (int)g.in_bx;
                    address[r][e] = (unsigned)(row_base + row_offset[(dd + carry) & 7u] + bx);
                }
            }
            // Partitions 0..3 (compile-time banks): copy e of a pair serves item e; each bank
            // one read (its item's address) and, in the pair being loaded, one write.
            ap_uint<16> got[4][4];
            for (unsigned part = 0; part < 4; part++) {
#pragma HLS UNROLL
                const bool load_here = write && (part >> 1u) != odd;
                for (unsigned r = 0; r < 4; r++) {
#pragma HLS UNROLL
                    got[part][r] = tile[part][r][address[r][part & 1u] & (C::tile_depth - 1)];
                    if (load_here) tile[part][r][it & (C::tile_depth - 1)] = data.range(16 * r + 15, 16 * r);
                }
            }
            ap_uint<16> items[4][2];
            for (unsigned r = 0; r < 4; r++) {
#pragma HLS UNROLL
                for (unsigned e = 0; e < 2; e++) {
#pragma HLS UNROLL
                    items[r][e] = odd ? got[2 + e][r] : got[e][r];
                }
            }
            // Each lane ORs the thermometers of the codes inside its window.
            for (unsigned l = 0; l < 16; l++) {
#pragma HLS UNROLL
                const unsigned oy = l >> 2u, ox = l & 3u;
                // The OR of this cycle's codes first (a tree), then one OR into the lane's
                // register: the loop-carried path is a single OR.
                ap_uint<15> t = 0;
                for (unsigned r = 0; r < 4; r++) {
#pragma HLS UNROLL
                    for (unsigned e = 0; e < 2; e++) {
#pragma HLS UNROLL
                        const unsigned rho = region_row[r][e];
                        const bool row_in = rho >= oy * d.sh && rho < oy * d.sh + d.kh;
                        for (unsigned k = 0; k < 4; k++) {
#pragma HLS UNROLL
                            const int gamma = 4 * (int)region_word[r][e] + (int)k - (int)x_phase;
                            const bool col_in = gamma >= (int)(ox * d.sw) &&
                                                gamma < (int)(ox * d.sw + d.kw);
                            const unsigned code = nibble(items[r][e], k);
                            const ap_uint<15> thermometer = (ap_uint<16>(1) << code) - 1;
                            if (valid[r][e] && row_in && col_in) t |= thermometer;
                        }
                    }
                }
                thermo[l] = thermo[l] | t;
            }
            if (!pooling) continue;
            if (q + 1 == q_block) {
                // The block is complete: its 16 maxima.
                for (unsigned l = 0; l < 16; l++) {
#pragma HLS UNROLL
                    const unsigned oy = l >> 2u, ox = l & 3u;
                    const bool inside = 4 * oby + oy < d.out_h && 4 * obx + ox < d.out_w;
                    const code_t code = inside ? code_t(thermometer_code(thermo[l])) : code_t(0);
                    out_word.range(4 * l + 3, 4 * l) = code;
                    pending[l] = code;
                    thermo[l] = 0;
                }
                if (flat) {
                    pending_rows = 4;
                    pending_bx = obx;
                    pending_base = out_row_base + 4 * obx;
                    pending_y = 4 * oby;
                } else {
                    write_word(out, out_word, false);
                }
                q = 0;
                d0 = w0 = 0;
                if (++obx == g.out_bx) {
                    obx = 0;
                    bx0 = bx_first;
                    oby++;
                    by0 += (int)d.sh;
                    row_base += (int)g.pool_row_step;
                    out_row_base += out_w4;
                } else {
                    bx0 += (int)d.sw;
                }
            } else {
                q++;
                w0 += 2;
                if (w0 >= nw) {
                    w0 -= nw;
                    d0++;
                }
            }
        }
        KCNN_CSIM(csim_log_loop(c < 0 ? KCNN_LOOP_PLANE : KCNN_LOOP_POOL, trip_count);)
        if (status != KCNN_STATUS_OK) break;
        if (c >= 0) channel_base += g.out_plane;
    }
    if (status == KCNN_STATUS_OK) {
        // The reserved word ends stream A.
        read_checked<0>(in_a, pa, g.a_final, status);
    }
    return status;  // FLAT: run_step's EMIT streams the out memory
}

}  // namespace kcnn

#endif  // KCNN_POOL_H_
