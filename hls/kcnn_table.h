// The product-table builder: P[k][j] = Wq[k] * Aq[j], the only multiplications of a layer.
// One product per cycle through a single multiplier (one DSP48E1), copied into every PE's
// private table in the same cycle.
#ifndef KCNN_TABLE_H_
#define KCNN_TABLE_H_

#include "kcnn_types.h"

namespace kcnn {

template <class CONFIG_T>
struct product_tables {
    prod_t t[CONFIG_T::P][CONFIG_T::k_max][CONFIG_T::j_max];
};

// Every entry is written each job, so row 0, column 0 and codes beyond K-1 / J-1 read 0
// whatever the previous job left: a malformed code can only add nothing.
template <class CONFIG_T>
void build_tables(product_tables<CONFIG_T> &tables, const entry_t wq[CONFIG_T::k_max],
                  const entry_t aq[CONFIG_T::j_max], unsigned k1, unsigned j1) {
TABLE:
    for (unsigned k = 0; k < CONFIG_T::k_max; k++) {
        for (unsigned j = 0; j < CONFIG_T::j_max; j++) {
#pragma HLS PIPELINE II = 1
            KCNN_TRIP(TABLE);
            prod_t product = 0;
            if (k >= 1 && k <= k1 && j >= 1 && j <= j1) product = wq[k] * aq[j];
            for (unsigned p = 0; p < CONFIG_T::P; p++) {
#pragma HLS UNROLL
                tables.t[p][k][j] = product;
            }
        }
    }
}

}  // namespace kcnn

#endif  // KCNN_TABLE_H_
