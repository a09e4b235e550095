// Types, the build configuration struct and the C-sim loop-trip counters shared by every
// KCNN kernel header.
#ifndef KCNN_TYPES_H_
#define KCNN_TYPES_H_

#include "ap_axi_sdata.h"
#include "ap_int.h"
#include "hls_stream.h"
#include "kcnn_config.h"

namespace kcnn {

typedef ap_uint<64> word_t;
typedef ap_axiu<64, 0, 0, 0> axis_word_t;
typedef ap_uint<4> code_t;
typedef ap_int<KCNN_ACC_BITS> acc_t;
// A codebook entry: signed int8 for weights and signed maps, 1..255 for post-ReLU maps.
typedef ap_int<KCNN_BA + 1> entry_t;
// |Wq * Aq| <= 127 * 255 < 2^15: one product fits 16 bits signed.
typedef ap_int<KCNN_BW + KCNN_BA> prod_t;
typedef ap_uint<32> count_t;

// Sizes of one overlay build. Kernels take it as a template parameter (hls4ml style) so a
// testbench can instantiate other sizes without touching the headers.
struct build_config {
    static const unsigned P = KCNN_P;
    static const unsigned k_max = KCNN_K_MAX;
    static const unsigned j_max = KCNN_J_MAX;
    static const unsigned in_depth = KCNN_IN_DEPTH;
    static const unsigned w_depth = KCNN_W_DEPTH;
    static const unsigned out_depth = KCNN_OUT_DEPTH;
    // Each PE owns one weight bank and one bias bank (channel c lives in bank c % P).
    static const unsigned w_bank = KCNN_W_DEPTH / KCNN_P;
    static const unsigned bias_bank = (KCNN_OUT_DEPTH + KCNN_P - 1) / KCNN_P;
    // The longest legal job bounds how far a bad job is drained.
    static const unsigned max_const_words =
        KCNN_DESCRIPTOR_WORDS + (KCNN_K_MAX - 1 + KCNN_J_MAX - 1 + 7) / 8 + (KCNN_J_MAX - 1 + 1) / 2 +
        (KCNN_OUT_DEPTH + 1) / 2 + (KCNN_W_DEPTH + 4 * KCNN_OUT_DEPTH + 7) / 8;
    static const unsigned max_input_words = (KCNN_IN_DEPTH + 15) / 16;
    static const unsigned max_job_words = max_const_words + max_input_words;
};

// The fields of a descriptor (docs/job-format.md, same names as kcnn.jobs).
struct descriptor {
    unsigned magic, version, opcode, flags;
    unsigned k1, j1, jo1, images, channels, in_channels;
    unsigned in_rows, in_width, out_rows, out_width;
    unsigned kh, kw, sh, sw, dh, dw;
    unsigned const_words, input_words, entries, output_words, layer_index, job_index;
};

#ifndef __SYNTHESIS__
// Loop trips of the current job, read by the C-sim entry points and the cycle-model test.
struct trip_counters {
    unsigned long long n[KCNN_TRIP_COUNT];
};
inline trip_counters &trips() {
    static trip_counters t;
    return t;
}
#define KCNN_TRIP(name) (::kcnn::trips().n[KCNN_TRIP_##name]++)
#else
#define KCNN_TRIP(name) ((void)0)
#endif

}  // namespace kcnn

#endif  // KCNN_TYPES_H_
