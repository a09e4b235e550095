// The thin top: interfaces, the info and status registers, one job per invocation.
#include "kcnn_top.h"

#include "kcnn_job.h"

void kcnn_top(hls::stream<kcnn::axis_word_t> &in_stream, hls::stream<kcnn::axis_word_t> &out_stream,
              kcnn::word_t &info0, kcnn::word_t &info1, kcnn::word_t &info2, kcnn::word_t &info3,
              ap_uint<32> &status) {
#pragma HLS INTERFACE mode = axis port = in_stream
#pragma HLS INTERFACE mode = axis port = out_stream
#pragma HLS INTERFACE mode = s_axilite port = info0 bundle = CTRL
#pragma HLS INTERFACE mode = s_axilite port = info1 bundle = CTRL
#pragma HLS INTERFACE mode = s_axilite port = info2 bundle = CTRL
#pragma HLS INTERFACE mode = s_axilite port = info3 bundle = CTRL
#pragma HLS INTERFACE mode = s_axilite port = status bundle = CTRL
#pragma HLS INTERFACE mode = s_axilite port = return bundle = CTRL
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    // Written first on every invocation so the driver can read the configuration (and a 0
    // status) as soon as the kernel has run once, whatever the job does.
    kcnn::word_t info[KCNN_INFO_WORDS];
    kcnn::info_words<kcnn::build_config>(info);
    info0 = info[0];
    info1 = info[1];
    info2 = info[2];
    info3 = info[3];
    status = KCNN_STATUS_OK;
    status = kcnn::run_job<kcnn::build_config>(in_stream, out_stream);
}

#ifndef __SYNTHESIS__
extern "C" {

int kcnn_csim_job(const uint64_t *words, const uint8_t *last, int64_t n, uint64_t *out,
                  int64_t out_cap, int64_t *result, uint64_t *trips) {
    hls::stream<kcnn::axis_word_t> in_stream("in_stream"), out_stream("out_stream");
    for (int64_t i = 0; i < n; i++) {
        kcnn::axis_word_t x;
        x.data = words[i];
        x.keep = -1;
        x.strb = -1;
        x.last = last[i] ? 1 : 0;
        in_stream.write(x);
    }
    for (unsigned i = 0; i < KCNN_TRIP_COUNT; i++) kcnn::trips().n[i] = 0;
    kcnn::word_t info0 = 0, info1 = 0, info2 = 0, info3 = 0;
    ap_uint<32> status = 0;
    kcnn_top(in_stream, out_stream, info0, info1, info2, info3, status);
    const int64_t left = (int64_t)in_stream.size();
    while (!in_stream.empty()) in_stream.read();  // leftovers are the wrapper's error to report
    int64_t count = 0, first_last = -1, lasts = 0, ones = 1;
    while (!out_stream.empty()) {
        kcnn::axis_word_t y = out_stream.read();
        if (count < out_cap) out[count] = (uint64_t)y.data;
        if (y.last) {
            if (first_last < 0) first_last = count;
            lasts++;
        }
        if (y.keep != 0xFF || y.strb != 0xFF) ones = 0;
        count++;
    }
    result[0] = n - left;
    result[1] = (int64_t)kcnn::trips().n[KCNN_TRIP_WORDS_IN];
    result[2] = count;
    result[3] = first_last;
    result[4] = lasts;
    result[5] = (int64_t)status;
    result[6] = ones;
    result[7] = (int64_t)(uint64_t)info0;
    result[8] = (int64_t)(uint64_t)info1;
    result[9] = (int64_t)(uint64_t)info2;
    result[10] = (int64_t)(uint64_t)info3;
    for (unsigned i = 0; i < KCNN_TRIP_COUNT; i++) trips[i] = kcnn::trips().n[i];
    return 0;
}

int kcnn_csim_descriptor(const uint64_t *words, int64_t *fields) {
    kcnn::word_t head[KCNN_DESCRIPTOR_WORDS];
    for (unsigned i = 0; i < KCNN_DESCRIPTOR_WORDS; i++) head[i] = words[i];
    kcnn::descriptor d;
    kcnn::decode_descriptor(head, d);
    const unsigned values[] = {d.magic,      d.version,     d.opcode,      d.flags,
                               d.k1,         d.j1,          d.jo1,         d.images,
                               d.channels,   d.in_channels, d.in_rows,     d.in_width,
                               d.out_rows,   d.out_width,   d.kh,          d.kw,
                               d.sh,         d.sw,          d.dh,          d.dw,
                               d.const_words, d.input_words, d.entries,    d.output_words,
                               d.layer_index, d.job_index};
    for (unsigned i = 0; i < sizeof(values) / sizeof(values[0]); i++) fields[i] = values[i];
    return (int)(sizeof(values) / sizeof(values[0]));
}

int kcnn_csim_config(int64_t *values) {
    typedef kcnn::build_config C;
    values[0] = C::P;
    values[1] = C::k_max;
    values[2] = C::j_max;
    values[3] = KCNN_ACC_BITS;
    values[4] = C::in_depth;
    values[5] = C::w_depth;
    values[6] = C::out_depth;
    values[7] = C::max_job_words;
    values[8] = KCNN_TRIP_COUNT;
    return 0;
}
}
#endif
