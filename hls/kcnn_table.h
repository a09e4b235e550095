// The product-table builder: P[k][a] = Wq[k] * Aq[a], the only multiplications of a layer.
// One product per cycle through one multiplier, written into every partition's copy.
#ifndef KCNN_TABLE_H_
#define KCNN_TABLE_H_

#include "kcnn_const.h"

namespace kcnn {

// table[p][a][k]: per partition 16 LUTRAMs (one per activation code a) of 16 words
// addressed by the weight code k, so that one read address (the entry's k) gives the whole
// row P[k][*] for the 16 lanes. Every entry is rewritten each step, so a code beyond K-1 or
// J-1 (or code 0) always reads 0 whatever an earlier step left.
//
// The same 256 iterations also write, in their first 16, every partition's dilated-offset
// LUTRAMs (kcnn_types.h tap_lo_t): lo[k] = k d (a running sum), hi[k] = 16 k d - pad, for the
// rows (d = dh, pad = pad_t) and the columns (dw, pad_l). The compute half then forms
// i dh - pad_t as lo[i mod 16] + hi[i div 16] instead of two multipliers per partition.
template <class C>
void build_tables(prod_t table[C::P][KCNN_J_MAX][KCNN_K_MAX], tap_lo_t tap_lo[C::P][2][16],
                  tap_hi_t tap_hi[C::P][2][16], const step_registers &regs, const descriptor &d) {
    const unsigned k1 = d.k1, j1 = d.j1;
    const ap_uint<8> dh = d.dh, dw = d.dw, pad_t = d.pad_t, pad_l = d.pad_l;
    tap_lo_t row_sum = 0, col_sum = 0;  // k dh, k dw
TABLE:
    for (unsigned i = 0; i < KCNN_K_MAX * KCNN_J_MAX; i++) {
#pragma HLS PIPELINE II = 1
        const unsigned a = i / KCNN_K_MAX, k = i % KCNN_K_MAX;
        prod_t product = 0;
        if (k >= 1 && k <= k1 && a >= 1 && a <= j1) product = regs.wq[k] * regs.aq[a];
        const tap_hi_t row_hi = tap_hi_t(ap_int<18>(row_sum) * 16 - pad_t);
        const tap_hi_t col_hi = tap_hi_t(ap_int<18>(col_sum) * 16 - pad_l);
        for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            table[p][a][k] = product;
            if (a == 0) {
                tap_lo[p][0][k] = row_sum;
                tap_lo[p][1][k] = col_sum;
                tap_hi[p][0][k] = row_hi;
                tap_hi[p][1][k] = col_hi;
            }
        }
        if (a == 0) {
            row_sum += dh;
            col_sum += dw;
        }
    }
    KCNN_CSIM(csim_log_loop(KCNN_LOOP_TABLE, KCNN_K_MAX * KCNN_J_MAX);)
}

}  // namespace kcnn

#endif  // KCNN_TABLE_H_
