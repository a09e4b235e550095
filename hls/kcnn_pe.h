// The cluster PE array. For each output pixel the gather unit lists the window's non-zero
// activation taps once; then, P output channels at a time, each PE walks that list, looks
// its weight code up in its own bank and adds P[w][a] from its own product table. Zero
// activations are skipped for all PEs at once; a zero weight reads the table's zero row.
#ifndef KCNN_PE_H_
#define KCNN_PE_H_

#include "kcnn_cache.h"
#include "kcnn_table.h"
#include "kcnn_threshold.h"

namespace kcnn {

template <class CONFIG_T>
struct nonzero_list {
    unsigned tap[CONFIG_T::w_bank];
    code_t code[CONFIG_T::w_bank];
};

// Walks the window in weight order (input channel, kernel row, kernel column) and keeps the
// taps whose activation code is not zero. Returns how many it kept.
template <class CONFIG_T>
unsigned gather(const job_cache<CONFIG_T> &cache, nonzero_list<CONFIG_T> &list,
                const descriptor &d, unsigned row, unsigned col) {
    unsigned kept = 0, tap = 0;
    const unsigned plane = d.in_rows * d.in_width;
    unsigned channel_base = row * d.sh * d.in_width + col * d.sw;
GATHER:
    for (unsigned ci = 0; ci < d.in_channels; ci++) {
        unsigned row_base = channel_base;
        for (unsigned i = 0; i < d.kh; i++) {
            unsigned address = row_base;
            for (unsigned j = 0; j < d.kw; j++) {
#pragma HLS PIPELINE II = 1
                KCNN_TRIP(GATHER);
                const code_t a = cache.in[address];
                if (a != 0) {
                    list.tap[kept] = tap;
                    list.code[kept] = a;
                    kept++;
                }
                tap++;
                address += d.dw;
            }
            row_base += d.dh * d.in_width;
        }
        channel_base += plane;
    }
    return kept;
}

// One output pixel of every channel of the job: P channels per pass, one non-zero pair per
// PE per cycle, then the results leave through the threshold bank one per cycle.
template <class CONFIG_T>
void pe_array(const job_cache<CONFIG_T> &cache, const product_tables<CONFIG_T> &tables,
              const nonzero_list<CONFIG_T> &list, unsigned kept, const descriptor &d,
              unsigned window, unsigned row, unsigned col, acc_t outbuf[CONFIG_T::out_depth]) {
    const bool acc_out = d.flags & KCNN_FLAG_ACC_OUT;
    const unsigned passes = (d.channels + CONFIG_T::P - 1) / CONFIG_T::P;
    const unsigned plane = d.out_rows * d.out_width;
    const unsigned pixel = row * d.out_width + col;
PASS:
    for (unsigned pass = 0; pass < passes; pass++) {
        acc_t acc[CONFIG_T::P];
#pragma HLS ARRAY_PARTITION variable = acc complete
        for (unsigned p = 0; p < CONFIG_T::P; p++) {
#pragma HLS UNROLL
            acc[p] = cache.bias[p][pass];
        }
        const unsigned base = pass * window;
    COMPUTE:
        for (unsigned k = 0; k < kept; k++) {
#pragma HLS PIPELINE II = 1
            KCNN_TRIP(COMPUTE);
            const unsigned tap = list.tap[k];
            const code_t a = list.code[k];
            for (unsigned p = 0; p < CONFIG_T::P; p++) {
#pragma HLS UNROLL
                acc[p] += tables.t[p][cache.w[p][base + tap]][a];
            }
        }
        const unsigned active =
            d.channels - pass * CONFIG_T::P < CONFIG_T::P ? d.channels - pass * CONFIG_T::P
                                                          : CONFIG_T::P;
    EMIT:
        for (unsigned p = 0; p < active; p++) {
#pragma HLS PIPELINE II = 1
            KCNN_TRIP(EMIT);
            const unsigned index = (pass * CONFIG_T::P + p) * plane + pixel;
            if (acc_out) {
                outbuf[index] = acc[p];
            } else {
                outbuf[index] = threshold_bank<CONFIG_T>(acc[p], cache.thresholds, d.jo1);
            }
        }
    }
}

// A conv / fc job on the filled caches: every output pixel, gather then the PE passes.
template <class CONFIG_T>
void compute_layer(const job_cache<CONFIG_T> &cache, const product_tables<CONFIG_T> &tables,
                   nonzero_list<CONFIG_T> &list, const descriptor &d,
                   acc_t outbuf[CONFIG_T::out_depth]) {
    const unsigned window = d.in_channels * d.kh * d.kw;
ROWS:
    for (unsigned r = 0; r < d.out_rows; r++) {
    COLS:
        for (unsigned x = 0; x < d.out_width; x++) {
            const unsigned kept = gather<CONFIG_T>(cache, list, d, r, x);
            pe_array<CONFIG_T>(cache, tables, list, kept, d, window, r, x, outbuf);
        }
    }
}

}  // namespace kcnn

#endif  // KCNN_PE_H_
