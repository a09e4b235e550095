// Code pooling: max-pool on codes. Aq is ascending and code 0 is zero, so the largest code
// is the code of the largest value; the host pads the tile with code 0.
#ifndef KCNN_POOL_H_
#define KCNN_POOL_H_

#include "kcnn_cache.h"

namespace kcnn {

template <class CONFIG_T>
void pool_codes(const job_cache<CONFIG_T> &cache, const descriptor &d,
                acc_t outbuf[CONFIG_T::out_depth]) {
    const unsigned plane = d.in_rows * d.in_width;
    unsigned out = 0;
POOL_CH:
    for (unsigned c = 0; c < d.channels; c++) {
        for (unsigned r = 0; r < d.out_rows; r++) {
            for (unsigned x = 0; x < d.out_width; x++) {
                code_t best = 0;
                const unsigned corner = c * plane + r * d.sh * d.in_width + x * d.sw;
                for (unsigned i = 0; i < d.kh; i++) {
                    for (unsigned j = 0; j < d.kw; j++) {
#pragma HLS PIPELINE II = 1
                        KCNN_TRIP(POOL);
                        const code_t a = cache.in[corner + i * d.in_width + j];
                        if (a > best) best = a;
                    }
                }
                outbuf[out++] = best;
            }
        }
    }
}

}  // namespace kcnn

#endif  // KCNN_POOL_H_
