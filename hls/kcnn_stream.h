// The stream decoder / packer: descriptor parsing and checks, TLAST handling, the word
// reader that tells a bad job from a good one, and the output word packer.
#ifndef KCNN_STREAM_H_
#define KCNN_STREAM_H_

#include "kcnn_types.h"

namespace kcnn {

inline unsigned bits(word_t w, unsigned low, unsigned width) {
    return (unsigned)((w >> low) & ((ap_uint<64>(1) << width) - 1));
}

// Fields by (word, low bit, width), exactly as kcnn.jobs.DESCRIPTOR_FIELDS.
inline void decode_descriptor(const word_t w[KCNN_DESCRIPTOR_WORDS], descriptor &d) {
    d.magic = bits(w[0], 0, 32);
    d.version = bits(w[0], 32, 16);
    d.opcode = bits(w[0], 48, 8);
    d.flags = bits(w[0], 56, 8);
    d.k1 = bits(w[1], 0, 8);
    d.j1 = bits(w[1], 8, 8);
    d.jo1 = bits(w[1], 16, 8);
    d.images = bits(w[1], 24, 8);
    d.channels = bits(w[1], 32, 16);
    d.in_channels = bits(w[1], 48, 16);
    d.in_rows = bits(w[2], 0, 16);
    d.in_width = bits(w[2], 16, 16);
    d.out_rows = bits(w[2], 32, 16);
    d.out_width = bits(w[2], 48, 16);
    d.kh = bits(w[3], 0, 8);
    d.kw = bits(w[3], 8, 8);
    d.sh = bits(w[3], 16, 8);
    d.sw = bits(w[3], 24, 8);
    d.dh = bits(w[3], 32, 8);
    d.dw = bits(w[3], 40, 8);
    d.const_words = bits(w[4], 0, 32);
    d.input_words = bits(w[4], 32, 32);
    d.entries = bits(w[5], 0, 32);
    d.output_words = bits(w[5], 32, 32);
    d.layer_index = bits(w[6], 0, 32);
    d.job_index = bits(w[6], 32, 32);
}

typedef unsigned long long u64;

// Word counts of each section, the same sums as kcnn.jobs.section_words. 64-bit so that a
// hostile descriptor cannot wrap them into plausible values.
struct sections {
    u64 codebooks, thresholds, biases, weights, constant, inputs, outputs, window, in_codes,
        out_codes;
};

inline void section_words(const descriptor &d, sections &s) {
    const bool layer = d.opcode == KCNN_OP_LAYER;
    s.window = (u64)d.in_channels * d.kh * d.kw;
    s.in_codes = (u64)d.in_channels * d.in_rows * d.in_width;
    s.out_codes = (u64)d.channels * d.out_rows * d.out_width;
    s.codebooks = ((u64)d.k1 + d.j1 + 7) / 8;
    s.thresholds = ((u64)d.jo1 + 1) / 2;
    s.biases = layer ? ((u64)d.channels + 1) / 2 : 0;
    if (d.flags & KCNN_FLAG_SPARSE) {
        s.weights = (4 * (u64)d.channels + d.entries + 7) / 8;
    } else {
        s.weights = layer ? ((u64)d.channels * s.window + 15) / 16 : 0;
    }
    s.constant = KCNN_DESCRIPTOR_WORDS + s.codebooks + s.thresholds + s.biases + s.weights;
    s.inputs = (s.in_codes + 15) / 16;
    s.outputs = (d.flags & KCNN_FLAG_ACC_OUT) ? (s.out_codes + 1) / 2 : (s.out_codes + 15) / 16;
}

// Status of a layer or pool descriptor whose magic, version and opcode are valid.
template <class CONFIG_T>
unsigned check_descriptor(const descriptor &d, const sections &s) {
    const u64 passes = ((u64)d.channels + CONFIG_T::P - 1) / CONFIG_T::P;
    if (d.k1 > CONFIG_T::k_max - 1 || d.j1 > CONFIG_T::j_max - 1 || d.jo1 > CONFIG_T::j_max - 1 ||
        d.images > KCNN_IMAGES_MAX || s.in_codes > CONFIG_T::in_depth ||
        s.out_codes > CONFIG_T::out_depth || passes * s.window > CONFIG_T::w_bank ||
        (u64)d.entries > (u64)d.channels * s.window) {
        return KCNN_STATUS_COUNT_ABOVE_MAX;
    }
    const unsigned known = KCNN_FLAG_SPARSE | KCNN_FLAG_ACC_OUT | KCNN_FLAG_ACT_SIGNED;
    bool bad = d.images != 1 || d.channels == 0 || d.in_channels == 0 || d.out_rows == 0 ||
               d.out_width == 0 || d.kh == 0 || d.kw == 0 || d.sh == 0 || d.sw == 0 ||
               d.dh == 0 || d.dw == 0 || (d.flags & ~known) != 0;
    // Every window must lie inside the tile: the kernel never reads past its cache.
    bad = bad || (u64)(d.out_rows - 1) * d.sh + (u64)(d.kh - 1) * d.dh + 1 > d.in_rows;
    bad = bad || (u64)(d.out_width - 1) * d.sw + (u64)(d.kw - 1) * d.dw + 1 > d.in_width;
    if (d.opcode == KCNN_OP_POOL) {
        bad = bad || d.flags != 0 || d.k1 || d.j1 || d.jo1 || d.channels != d.in_channels ||
              d.entries || d.dh != 1 || d.dw != 1;
    } else if (!(d.flags & KCNN_FLAG_SPARSE)) {
        bad = bad || d.entries != 0;
    }
    bad = bad || d.const_words != s.constant || d.input_words != s.inputs ||
          d.output_words != s.outputs || ((d.flags & KCNN_FLAG_ACC_OUT) != 0 && d.jo1 != 0);
    return bad ? (unsigned)KCNN_STATUS_BAD_GEOMETRY : (unsigned)KCNN_STATUS_OK;
}

// Reads one word, counting it. The caller owns the TLAST checks.
inline word_t read_word(hls::stream<axis_word_t> &in, bool &last, u64 &nread) {
    axis_word_t x = in.read();
    last = x.last;
    nread++;
    KCNN_TRIP(WORDS_IN);
    return x.data;
}

// A bad job is read on up to its first TLAST, never past the longest legal job.
template <class CONFIG_T>
void drain(hls::stream<axis_word_t> &in, bool last, u64 nread) {
DRAIN:
    for (u64 i = nread; i < CONFIG_T::max_job_words && !last; i++) {
#pragma HLS PIPELINE II = 1
        read_word(in, last, nread);
    }
}

inline void write_word(hls::stream<axis_word_t> &out, word_t data, bool last) {
    axis_word_t x;
    x.data = data;
    x.keep = -1;
    x.strb = -1;
    x.last = last ? 1 : 0;
    out.write(x);
    KCNN_TRIP(WORDS_OUT);
}

inline word_t status_word(unsigned status) {
    return (word_t(KCNN_STATUS_TAG) << 32) | word_t(status);
}

// Writes the job's outputs: 16 codes or two int32 accumulators per word, TLAST on the last.
template <class CONFIG_T>
void pack_outputs(hls::stream<axis_word_t> &out, const acc_t outbuf[CONFIG_T::out_depth],
                  unsigned count, unsigned words, bool acc_out) {
STREAM_OUT:
    for (unsigned w = 0; w < words; w++) {
#pragma HLS PIPELINE II = 1
        word_t data = 0;
        if (acc_out) {
            for (unsigned i = 0; i < 2; i++) {
                const unsigned k = 2 * w + i;
                if (k < count) data.range(32 * i + 31, 32 * i) = outbuf[k].range(31, 0);
            }
        } else {
            for (unsigned i = 0; i < 16; i++) {
                const unsigned k = 16 * w + i;
                if (k < count) data.range(4 * i + 3, 4 * i) = outbuf[k].range(3, 0);
            }
        }
        write_word(out, data, w == words - 1);
    }
}

}  // namespace kcnn

#endif  // KCNN_STREAM_H_
