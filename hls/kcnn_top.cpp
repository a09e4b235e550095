// The thin top: interfaces, the info and status registers, one step per invocation.
#include "kcnn_top.h"

#include "kcnn_step.h"

void kcnn_top(hls::stream<kcnn::axis_word_t> &in_a, hls::stream<kcnn::axis_word_t> &in_b,
              hls::stream<kcnn::axis_word_t> &out_stream, kcnn::word_t &info0, kcnn::word_t &info1,
              kcnn::word_t &info2, kcnn::word_t &info3, ap_uint<32> &status) {
#pragma HLS INTERFACE mode = axis port = in_a
#pragma HLS INTERFACE mode = axis port = in_b
#pragma HLS INTERFACE mode = axis port = out_stream
#pragma HLS INTERFACE mode = s_axilite port = info0 bundle = CTRL
#pragma HLS INTERFACE mode = s_axilite port = info1 bundle = CTRL
#pragma HLS INTERFACE mode = s_axilite port = info2 bundle = CTRL
#pragma HLS INTERFACE mode = s_axilite port = info3 bundle = CTRL
#pragma HLS INTERFACE mode = s_axilite port = status bundle = CTRL
#pragma HLS INTERFACE mode = s_axilite port = return bundle = CTRL
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    // Written first on every invocation so the driver can read the configuration (and a 0
    // status) as soon as the kernel has run once, whatever the step does.
    kcnn::word_t info[KCNN_INFO_WORDS];
    kcnn::info_words<kcnn::build_config>(info);
    info0 = info[0];
    info1 = info[1];
    info2 = info[2];
    info3 = info[3];
    status = KCNN_STATUS_OK;
    status = kcnn::run_step<kcnn::build_config>(in_a, in_b, out_stream);
}

#ifndef __SYNTHESIS__
namespace {

void fill(hls::stream<kcnn::axis_word_t> &s, const uint64_t *words, const uint8_t *last, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        kcnn::axis_word_t x;
        x.data = words[i];
        x.keep = -1;
        x.strb = -1;
        x.last = last[i] ? 1 : 0;
        s.write(x);
    }
}

int64_t discard(hls::stream<kcnn::axis_word_t> &s) {
    int64_t left = 0;
    while (!s.empty()) {
        s.read();
        left++;
    }
    return left;
}

}  // namespace

extern "C" {

// result[] (the Python side reads this order):
//   0 consumed_a   words of A the kernel took (present minus left over)
//   1 consumed_b   the same for B
//   2 reads_a      reads the kernel issued on A (more than present: it read past the end)
//   3 reads_b      the same for B
//   4 out_words    words written to the output stream
//   5 first_last   index of the first output word with TLAST (-1: none)
//   6 lasts        output words with TLAST
//   7 status       the status register
//   8 keep_strb_ones  1 if every output word had keep and strb all ones
//   9..12 info0..info3  the info registers
//   13 log_len     entries of the loop log (pairs); only the first log_cap are stored
// log[2 i], log[2 i + 1]: loop id (KCNN_LOOP_*) and trips of the i-th loop the kernel ran.
// Output words beyond out_cap are counted, not stored.
int kcnn_csim_step(const uint64_t *a, const uint8_t *a_last, int64_t na, const uint64_t *b,
                   const uint8_t *b_last, int64_t nb, uint64_t *out, int64_t out_cap,
                   int64_t *result, int64_t *log, int64_t log_cap) {
    hls::stream<kcnn::axis_word_t> in_a("in_a"), in_b("in_b"), out_stream("out_stream");
    fill(in_a, a, a_last, na);
    fill(in_b, b, b_last, nb);
    kcnn::csim_record &record = kcnn::csim();
    record.log.clear();
    record.reads[0] = record.reads[1] = 0;
    record.writes = 0;
    kcnn::word_t info0 = 0, info1 = 0, info2 = 0, info3 = 0;
    ap_uint<32> status = 0;
    kcnn_top(in_a, in_b, out_stream, info0, info1, info2, info3, status);
    const int64_t left_a = discard(in_a), left_b = discard(in_b);
    int64_t count = 0, first_last = -1, lasts = 0, ones = 1;
    while (!out_stream.empty()) {
        const kcnn::axis_word_t y = out_stream.read();
        if (count < out_cap) out[count] = (uint64_t)y.data;
        if (y.last) {
            if (first_last < 0) first_last = count;
            lasts++;
        }
        if (y.keep != 0xFF || y.strb != 0xFF) ones = 0;
        count++;
    }
    const int64_t entries = (int64_t)record.log.size() / 2;
    for (int64_t i = 0; i < entries && i < log_cap; i++) {
        log[2 * i] = record.log[2 * i];
        log[2 * i + 1] = record.log[2 * i + 1];
    }
    result[0] = na - left_a;
    result[1] = nb - left_b;
    result[2] = (int64_t)record.reads[0];
    result[3] = (int64_t)record.reads[1];
    result[4] = count;
    result[5] = first_last;
    result[6] = lasts;
    result[7] = (int64_t)(unsigned)status;
    result[8] = ones;
    result[9] = (int64_t)(uint64_t)info0;
    result[10] = (int64_t)(uint64_t)info1;
    result[11] = (int64_t)(uint64_t)info2;
    result[12] = (int64_t)(uint64_t)info3;
    result[13] = entries;
    return 0;
}

// values[]: P, K_MAX, J_MAX, ACC_BITS, IN_DEPTH, W_DEPTH, OUT_DEPTH, STREAMS, LRN_LANES,
// CH_MAX, KCNN_LOOP_COUNT, the longest legal stream A of a step in words (one DMA transfer).
int kcnn_csim_config(int64_t *values) {
    typedef kcnn::build_config C;
    values[0] = C::P;
    values[1] = KCNN_K_MAX;
    values[2] = KCNN_J_MAX;
    values[3] = KCNN_ACC_BITS;
    values[4] = C::in_depth;
    values[5] = C::w_depth;
    values[6] = C::out_depth;
    values[7] = C::streams;
    values[8] = C::lrn_lanes;
    values[9] = C::ch_max;
    values[10] = KCNN_LOOP_COUNT;
    values[11] = C::max_transfer_words;
    return 0;
}

void kcnn_csim_reset(void) { kcnn::csim().reset_pending = true; }
}
#endif
