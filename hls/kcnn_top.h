// The KCNN accelerator's top function (synthesised) and, for C-sim only, the C entry points
// the Python csim back-end and the testbench call.
#ifndef KCNN_TOP_H_
#define KCNN_TOP_H_

#include "kcnn_types.h"

void kcnn_top(hls::stream<kcnn::axis_word_t> &in_stream, hls::stream<kcnn::axis_word_t> &out_stream,
              kcnn::word_t &info0, kcnn::word_t &info1, kcnn::word_t &info2, kcnn::word_t &info3,
              ap_uint<32> &status);

#ifndef __SYNTHESIS__
#include <stdint.h>
extern "C" {
// Runs one job given as words with their TLAST flags. result[]: words consumed, words the
// kernel tried to read, output words, index of the first output TLAST (-1: none), output
// words with TLAST, status, keep/strb all ones (1/0), then info0..info3. trips[] receives
// the loop-trip counters (KCNN_TRIP_*). Output words beyond out_cap are counted, not stored.
int kcnn_csim_job(const uint64_t *words, const uint8_t *last, int64_t n, uint64_t *out,
                  int64_t out_cap, int64_t *result, uint64_t *trips);
// The descriptor fields the kernel decodes, in kcnn.jobs.DESCRIPTOR_FIELDS order.
int kcnn_csim_descriptor(const uint64_t *words, int64_t *fields);
// P, K_MAX, J_MAX, ACC_BITS, IN_DEPTH, W_DEPTH, OUT_DEPTH, longest job, counter count.
int kcnn_csim_config(int64_t *values);
}
#endif

#endif  // KCNN_TOP_H_
