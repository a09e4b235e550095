// The lanes' tables: the products P[k][a] = Wq[k] * Aq[a] (one per cycle through one
// multiplier, written into every BRAM lane pair's copy) and the codebooks the DSP lanes
// multiply (kcnn_partition.h). An ADD step writes, in the same loop and into the same
// BRAM18s, its output code of every pair of input codes (kcnn_add.h).
#ifndef KCNN_TABLE_H_
#define KCNN_TABLE_H_

#include "kcnn_const.h"

namespace kcnn {

// The lanes' operands (kcnn_step.h): every partition's copy of Wq (wvalue, by weight
// code), every DSP lane's copy of Aq (avalue, by activation code) and every BRAM18's copy of
// the products P[k][a] at 16 k + a. Each is rewritten in full every step, so a code beyond
// K-1 or J-1 (or code 0) always reads 0 whatever an earlier step left. Iteration i = 16 a + k
// writes one product into every BRAM18 (one write port each), Wq[k] into every wvalue in
// the first 16 (a = 0) and Aq[a] into every avalue in every 16th (k = 0).
//
// ADD: entry 16 k + a is the output code of map A's code k and map B's code a,
// table[#{m : R1[k] + R2[a] >= T[m]}]: the step's 256 sums (one adder, the 15-comparator
// bank, the 16:1 code-table multiplexer) once, so that its outputs are one lookup each.
//
// The first 16 iterations also write every partition's dilated-offset LUTRAMs (kcnn_types.h
// tap_lo_t): lo[k] = k d (a running sum), hi[k] = 16 k d - pad, for the rows (d = dh,
// pad = pad_t) and the columns (dw, pad_l). The compute half then forms i dh - pad_t as
// lo[i mod 16] + hi[i div 16] instead of two multipliers per partition.
template <class C>
void build_tables(entry_t wvalue[C::P][KCNN_K_MAX], entry_t avalue[C::P][8][KCNN_J_MAX],
                  prod_t products[C::P][4][KCNN_K_MAX * KCNN_J_MAX], tap_lo_t tap_lo[C::P][2][16],
                  tap_hi_t tap_hi[C::P][2][16], const step_registers &regs, const descriptor &d) {
    const unsigned k1 = d.k1, j1 = d.j1;
    const bool add = d.opcode == KCNN_OP_ADD;
    const ap_uint<8> dh = d.dh, dw = d.dw, pad_t = d.pad_t, pad_l = d.pad_l;
    tap_lo_t row_sum = 0, col_sum = 0;  // k dh, k dw
TABLE:
    for (unsigned i = 0; i < KCNN_K_MAX * KCNN_J_MAX; i++) {
#pragma HLS PIPELINE II = 1
        const unsigned a = i / KCNN_K_MAX, k = i % KCNN_K_MAX;
        const bool k_used = k >= 1 && k <= k1, a_used = a >= 1 && a <= j1;
        const entry_t w = k_used ? regs.wq[k] : entry_t(0);
        const entry_t v = a_used ? regs.aq[a] : entry_t(0);
        // From the written codebook values (0 for an unused code): one pair of 16:1 operand
        // multiplexers, and the BRAM lanes' P[k][a] is the DSP lanes' wvalue[k] * avalue[a].
        // ADD: R1[k] + R2[a] through the threshold bank and the code table.
        const acc_t sum = acc_entry(regs.resid, k) + acc_entry(regs.resid2, a);
        const code_t code = table_code(regs.out_table, threshold_bank(sum, regs.thresholds, d.jo1));
        const prod_t product = add ? prod_t(code) : prod_t(w * v);
        const tap_hi_t row_hi = tap_hi_t(ap_int<18>(row_sum) * 16 - pad_t);
        const tap_hi_t col_hi = tap_hi_t(ap_int<18>(col_sum) * 16 - pad_l);
        for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            for (unsigned b = 0; b < 4; b++) {
#pragma HLS UNROLL
                products[p][b][(k << 4u) | a] = product;
            }
            if (a == 0) {
                wvalue[p][k] = w;
                tap_lo[p][0][k] = row_sum;
                tap_lo[p][1][k] = col_sum;
                tap_hi[p][0][k] = row_hi;
                tap_hi[p][1][k] = col_hi;
            }
            if (k == 0) {
                for (unsigned l = 0; l < 8; l++) {
#pragma HLS UNROLL
                    avalue[p][l][a] = v;
                }
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
