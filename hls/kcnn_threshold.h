// The non-zero clustering module: fused ReLU + requantisation. The next map's code of an
// output is the number of thresholds its accumulator reaches; T[1] >= 1, so acc <= 0 (ReLU)
// and every small value below T[1] become code 0, the zero the next layer skips.
#ifndef KCNN_THRESHOLD_H_
#define KCNN_THRESHOLD_H_

#include "kcnn_types.h"

namespace kcnn {

// J_MAX-1 comparators side by side and an adder tree: one output per cycle.
template <class CONFIG_T>
code_t threshold_bank(acc_t acc, const acc_t thresholds[CONFIG_T::j_max], unsigned jo1) {
#pragma HLS INLINE
    unsigned code = 0;
    for (unsigned j = 0; j < CONFIG_T::j_max - 1; j++) {
#pragma HLS UNROLL
        if (j < jo1 && acc >= thresholds[j]) code++;
    }
    return code;
}

}  // namespace kcnn

#endif  // KCNN_THRESHOLD_H_
