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
template <class C>
void build_tables(prod_t table[C::P][KCNN_J_MAX][KCNN_K_MAX], const step_registers &regs,
                  unsigned k1, unsigned j1) {
TABLE:
    for (unsigned i = 0; i < KCNN_K_MAX * KCNN_J_MAX; i++) {
#pragma HLS PIPELINE II = 1
        const unsigned a = i / KCNN_K_MAX, k = i % KCNN_K_MAX;
        prod_t product = 0;
        if (k >= 1 && k <= k1 && a >= 1 && a <= j1) product = regs.wq[k] * regs.aq[a];
        for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            table[p][a][k] = product;
        }
    }
    KCNN_CSIM(csim_log_loop(KCNN_LOOP_TABLE, KCNN_K_MAX * KCNN_J_MAX);)
}

}  // namespace kcnn

#endif  // KCNN_TABLE_H_
