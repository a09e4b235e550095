// Types, the build configuration, the stream word reader/writer and the C-sim-only loop log
// shared by every KCNN kernel header (protocol 3, docs/job-format.md, hls/KERNEL_SPEC.md).
#ifndef KCNN_TYPES_H_
#define KCNN_TYPES_H_

#include "ap_axi_sdata.h"
#include "ap_int.h"
#include "hls_stream.h"
#include "kcnn_config.h"

#ifndef __SYNTHESIS__
#include <vector>
#endif

namespace kcnn {

typedef ap_uint<64> word_t;
typedef ap_axiu<64, 0, 0, 0> axis_word_t;
typedef hls::stream<axis_word_t> axis_t;
typedef ap_uint<4> code_t;
typedef ap_int<KCNN_ACC_BITS> acc_t;
// A codebook entry: signed int8 (weights, signed maps) or 1..255 (unsigned maps).
typedef ap_int<KCNN_BA + 1> entry_t;
// |Wq * Aq| <= 128 * 255 < 2^15: one product table entry.
typedef ap_int<KCNN_BW + KCNN_BA> prod_t;
// A partition's partial sum of one vector; the packer keeps it below 2^23 (KERNEL_SPEC.md).
typedef ap_int<24> lane_acc_t;
// Word positions and word counts inside one transfer (a transfer is at most 2^23 words).
typedef ap_uint<32> count_t;
// Dilated kernel offsets by nibble of the kernel row (column) index t < 256 (the loader keeps
// t < kh <= 255): t * d - pad = lo[t mod 16] + hi[t div 16], lo[k] = k d <= 15 * 255 and
// hi[k] = 16 k d - pad in [-255, 61200] (kcnn_table.h builds them, kcnn_partition.h reads them).
typedef ap_uint<12> tap_lo_t;
typedef ap_int<17> tap_hi_t;

template <unsigned N>
struct log2_of {
    enum { value = 1 + log2_of<N / 2>::value };
};
template <>
struct log2_of<1> {
    enum { value = 0 };
};

// Bits that hold every value 0..N.
template <unsigned long long N>
struct width_of {
    enum { value = 1 + width_of<N / 2>::value };
};
template <>
struct width_of<1> {
    enum { value = 1 };
};
template <>
struct width_of<0> {
    enum { value = 1 };
};

// Sizes of one overlay build. Kernels take it as a template parameter (hls4ml style) so a
// testbench can instantiate other sizes without touching the headers.
struct build_config {
    static const unsigned P = KCNN_P;
    static const unsigned in_depth = KCNN_IN_DEPTH;
    static const unsigned w_depth = KCNN_W_DEPTH;
    static const unsigned out_depth = KCNN_OUT_DEPTH;
    static const unsigned streams = KCNN_STREAMS;
    static const unsigned lrn_lanes = KCNN_LRN_LANES;
    static const unsigned ch_max = KCNN_CH_MAX;
    // 4-code words per tile bank (a partition has 4 banks, one per block row dy).
    static const unsigned tile_depth = KCNN_IN_DEPTH / (16 * KCNN_P);
    // A weight-cache entry is (position << 4) | code in 16 bits.
    static const unsigned pos_bits = KCNN_POSITION_BITS;
    // Output channels of one job (format constant: the per-partition channel tables).
    static const unsigned job_channels = KCNN_JOB_CHANNELS;
    // A vector's shortest length: conv, the reducer's 16 lanes; fc, the channel table read
    // a vector ahead and the max over partitions (KERNEL_SPEC.md).
    static const unsigned conv_floor = KCNN_CONV_FLOOR;
    static const unsigned fc_floor = KCNN_FC_FLOOR;
    // Max-pool windows up to 3 x 3 (the lanes' max trees), strides up to 4 (the region).
    static const unsigned pool_window_max = KCNN_POOL_WINDOW_MAX;
    static const unsigned pool_stride_max = KCNN_POOL_STRIDE_MAX;
    // LRN window channels the square tables are replicated for (P >= size + 1 as well).
    static const unsigned lrn_size_max = KCNN_P - 1 < KCNN_LRN_SIZE_MAX ? KCNN_P - 1 : KCNN_LRN_SIZE_MAX;
    // One DMA transfer (c_sg_length_width = 26 bytes) is the longest legal stream A or B.
    static const unsigned max_transfer_words = KCNN_MAX_TRANSFER_WORDS;
};

// The build parameters the kernel's arithmetic relies on; a wrong -D fails at compile time.
template <class C>
struct config_checks {
    static const bool p_ok = C::P == 8 || C::P == 16 || C::P == 32;
    static const bool streams_ok = C::streams == 1 || C::streams == 2;
    static const bool lanes_ok = C::lrn_lanes == 1 || C::lrn_lanes == 2 || C::lrn_lanes == 4 ||
                                 C::lrn_lanes == 8 || C::lrn_lanes == 16;
    static const bool tile_ok = C::in_depth % (16 * C::P) == 0 &&
                                (C::tile_depth & (C::tile_depth - 1)) == 0;
    static const bool w_ok = C::w_depth >= 16 && C::w_depth <= (1u << C::pos_bits) &&
                             (C::w_depth & (C::w_depth - 1)) == 0;
    static const bool out_ok = C::out_depth >= 256 && (C::out_depth & (C::out_depth - 1)) == 0;
    static const bool ch_ok = C::ch_max >= 2 && (C::ch_max & (C::ch_max - 1)) == 0;
};

// Element types of the step's memories, sized from the build (KERNEL_SPEC.md "On-chip memories").
template <class C>
struct mem {
    enum {
        tile_addr_bits = log2_of<C::tile_depth>::value,
        w_addr_bits = log2_of<C::w_depth>::value,
        out_addr_bits = log2_of<C::out_depth / 16>::value,
        ch_bits = log2_of<C::ch_max>::value,
    };
    typedef ap_uint<16> tile_word_t;                  // the 4 codes of one block row
    typedef ap_uint<tile_addr_bits> tile_addr_t;      // a word inside one tile bank
    typedef ap_uint<C::P> mask_t;                     // one bit per partition
    typedef ap_uint<C::P + tile_addr_bits> place_t;   // placement: mask | slot base << P
    typedef ap_uint<16> wentry_t;                     // weight entry: position << 4 | code
    typedef ap_uint<w_addr_bits + 1> wcount_t;        // entries of a channel, 0..W_DEPTH
    typedef ap_uint<16> square_t;                     // LRN: Aq^2 <= 255^2
    typedef ap_uint<20> lrn_sum_t;                    // LRN: at most 9 squares < 2^20
    typedef ap_int<21> cut_t;                         // LRN cut, clamped to [-1, 2^20 - 1]
};

#ifndef __SYNTHESIS__
// What the C entry points report besides the streams: the loop log (pairs of loop id and
// trips, in the order the loops ran) and the words each port moved.
struct csim_record {
    std::vector<long long> log;
    unsigned long long reads[2];
    unsigned long long writes;
    bool reset_pending;
};
inline csim_record &csim() {
    static csim_record record;
    return record;
}
// A loop with no iteration was never entered: it leaves no entry (as kcnn.plan.loop_log).
inline void csim_log_loop(unsigned id, unsigned long long trips) {
    if (trips == 0) return;
    csim().log.push_back((long long)id);
    csim().log.push_back((long long)trips);
}
#define KCNN_CSIM(...) __VA_ARGS__
#else
#define KCNN_CSIM(...)
#endif

// Where an input stream stands in its transfer: words read and whether its TLAST went by.
struct in_port {
    count_t pos;
    bool done;
};

// Reads one word of stream `WHICH` (0 = A, 1 = B). In C-sim a read from an empty stream is
// where the hardware would wait for ever: it is counted (the entry point reports more
// reads than words present) and answered as a TLAST word so that no loop spins on it.
template <int WHICH>
word_t read_word(axis_t &s, in_port &port, bool &last) {
#pragma HLS INLINE
    KCNN_CSIM(csim().reads[WHICH]++;)
#ifndef __SYNTHESIS__
    if (s.empty()) {
        last = true;
        port.pos++;
        port.done = true;
        return word_t(0);
    }
#endif
    const axis_word_t x = s.read();
    last = x.last == 1;
    port.pos++;
    if (last) port.done = true;
    return x.data;
}

// TLAST must be on the word at position `final_pos` of the transfer and nowhere else.
inline unsigned tlast_status(bool last, count_t pos, count_t final_pos) {
#pragma HLS INLINE
    if (last && pos != final_pos) return KCNN_STATUS_EARLY_TLAST;
    if (!last && pos == final_pos) return KCNN_STATUS_MISSING_TLAST;
    return KCNN_STATUS_OK;
}

// read_word with the TLAST check every section read needs: `status` is tlast_status of the
// word read.
template <int WHICH>
word_t read_checked(axis_t &s, in_port &port, count_t final_pos, unsigned &status) {
#pragma HLS INLINE
    bool last;
    const count_t at = port.pos;
    const word_t data = read_word<WHICH>(s, port, last);
    status = tlast_status(last, at, final_pos);
    return data;
}

inline void write_word(axis_t &out, word_t data, bool last) {
#pragma HLS INLINE
    axis_word_t x;
    x.data = data;
    x.keep = -1;
    x.strb = -1;
    x.last = last ? 1 : 0;
    out.write(x);
    KCNN_CSIM(csim().writes++;)
}

inline unsigned field(word_t w, unsigned low, unsigned width) {
#pragma HLS INLINE
    return (unsigned)((w >> low) & ((ap_uint<64>(1) << width) - 1));
}

inline ap_int<32> half_word(word_t w, unsigned i) {
#pragma HLS INLINE
    return ap_int<32>(w.range(32 * i + 31, 32 * i));
}

// Code 4*dy + dx of a block word, or of a 4-code row word for dy = 0.
inline code_t nibble(ap_uint<64> w, unsigned i) {
#pragma HLS INLINE
    return code_t((w >> (4 * i)) & 15);
}

// A word with nibble i (a run-time index, 0..15) replaced by c: mask and OR at a 6-bit shift,
// not a bit-select with run-time bounds.
inline word_t put_nibble(word_t w, unsigned i, code_t c) {
#pragma HLS INLINE
    const ap_uint<6> at = ap_uint<6>((i & 15u) << 2u);
    return (w & ~(word_t(15) << at)) | (word_t(c) << at);
}

// A word with int32 half `high` (a run-time choice) replaced by v: a 2:1 choice of two
// masked words.
inline word_t put_half(word_t w, bool high, ap_uint<32> v) {
#pragma HLS INLINE
    const word_t low_mask = word_t(0xFFFFFFFFull);
    return high ? word_t((w & low_mask) | (word_t(v) << 32u)) : word_t((w & ~low_mask) | word_t(v));
}

}  // namespace kcnn

#endif  // KCNN_TYPES_H_
