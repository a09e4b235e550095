// The KCNN accelerator's top function (synthesised) and, for C-sim only, the C entry points
// the Python csim back-end and the testbench call (hls/KERNEL_SPEC.md "C entry points").
#ifndef KCNN_TOP_H_
#define KCNN_TOP_H_

#include "kcnn_types.h"

void kcnn_top(hls::stream<kcnn::axis_word_t> &in_a, hls::stream<kcnn::axis_word_t> &in_b,
              hls::stream<kcnn::axis_word_t> &out_stream, kcnn::word_t &info0, kcnn::word_t &info1,
              kcnn::word_t &info2, kcnn::word_t &info3, ap_uint<32> &status);

#ifndef __SYNTHESIS__
#include <stdint.h>
extern "C" {
// One step: stream A (and B) as words with their TLAST flags; see kcnn_top.cpp for result[].
int kcnn_csim_step(const uint64_t *a, const uint8_t *a_last, int64_t na, const uint64_t *b,
                   const uint8_t *b_last, int64_t nb, uint64_t *out, int64_t out_cap,
                   int64_t *result, int64_t *log, int64_t log_cap);
// The build: see kcnn_top.cpp for values[].
int kcnn_csim_config(int64_t *values);
// A fresh kernel: every static memory cleared before the next step.
void kcnn_csim_reset(void);
}
#endif

#endif  // KCNN_TOP_H_
