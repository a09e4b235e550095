// One job from descriptor to last output word (docs/job-format.md): read the descriptor,
// answer a probe, check the counts, fill the caches from the constant part and the inputs
// with TLAST checked at both ends, build the product tables, run the PE array (or code
// pooling), stream the outputs out. A bad job is answered with one status word.
#ifndef KCNN_JOB_H_
#define KCNN_JOB_H_

#include "kcnn_cache.h"
#include "kcnn_pe.h"
#include "kcnn_pool.h"
#include "kcnn_stream.h"
#include "kcnn_table.h"

namespace kcnn {

template <class CONFIG_T>
void info_words(word_t info[KCNN_INFO_WORDS]) {
    info[0] = word_t(KCNN_MAGIC);
    info[1] = word_t(KCNN_PROTOCOL);
    info[2] = word_t(CONFIG_T::P) | (word_t(CONFIG_T::k_max) << 16) |
              (word_t(CONFIG_T::j_max) << 24) | (word_t(KCNN_ACC_BITS) << 32) |
              (word_t(KCNN_BW) << 40) | (word_t(KCNN_BA) << 48);
    info[3] = word_t(CONFIG_T::in_depth) | (word_t(CONFIG_T::w_depth) << 21) |
              (word_t(CONFIG_T::out_depth) << 42);
}

inline entry_t byte_entry(word_t data, unsigned i, bool is_signed) {
    const unsigned b = data.range(8 * i + 7, 8 * i);
    return is_signed && b >= 128 ? entry_t((int)b - 256) : entry_t(b);
}

inline acc_t half_word(word_t data, unsigned i) {
    ap_int<32> v = data.range(32 * i + 31, 32 * i);
    return acc_t(v);
}

// The constant part after the descriptor: codebooks, thresholds, biases, weights.
// Returns the status; stops at an early TLAST so that it never reads into the next transfer.
template <class CONFIG_T>
unsigned read_constant(hls::stream<axis_word_t> &in, job_cache<CONFIG_T> &cache,
                       sparse_state<CONFIG_T> &sparse, const descriptor &d, const sections &s,
                       bool &last, u64 &nread) {
    const unsigned body = (unsigned)(s.constant - KCNN_DESCRIPTOR_WORDS);
    const unsigned end_books = (unsigned)s.codebooks;
    const unsigned end_thresholds = end_books + (unsigned)s.thresholds;
    const unsigned end_biases = end_thresholds + (unsigned)s.biases;
    const bool is_sparse = d.flags & KCNN_FLAG_SPARSE;
    const bool act_signed = d.flags & KCNN_FLAG_ACT_SIGNED;
    const unsigned weight_codes = d.channels * (unsigned)s.window;
    weight_cursor cursor = {0, 0, 0};
    unsigned written = 0;
    if (body == 0) return last ? KCNN_STATUS_OK : KCNN_STATUS_MISSING_TLAST;
    if (last) return KCNN_STATUS_EARLY_TLAST;  // TLAST on the descriptor, payload announced
CONSTANT:
    for (unsigned w = 0; w < body; w++) {
#pragma HLS PIPELINE II = 1
        const word_t data = read_word(in, last, nread);
        if (last && w != body - 1) return KCNN_STATUS_EARLY_TLAST;
        if (!last && w == body - 1) return KCNN_STATUS_MISSING_TLAST;
        if (w < end_books) {
            for (unsigned i = 0; i < 8; i++) {
                const unsigned q = 8 * w + i;
                if (q < d.k1) {
                    cache.wq[q + 1] = byte_entry(data, i, true);
                } else if (q < d.k1 + d.j1) {
                    cache.aq[q - d.k1 + 1] = byte_entry(data, i, act_signed);
                }
            }
        } else if (w < end_thresholds) {
            for (unsigned i = 0; i < 2; i++) {
                const unsigned q = 2 * (w - end_books) + i;
                if (q < d.jo1) cache.thresholds[q] = half_word(data, i);
            }
        } else if (w < end_biases) {
            for (unsigned i = 0; i < 2; i++) {
                const unsigned q = 2 * (w - end_thresholds) + i;
                if (q < d.channels) cache.bias[q % CONFIG_T::P][q / CONFIG_T::P] = half_word(data, i);
            }
        } else if (is_sparse) {
            for (unsigned i = 0; i < 8; i++) {
                decode_sparse_byte<CONFIG_T>(cache, sparse, data.range(8 * i + 7, 8 * i),
                                             d.channels, d.entries, (unsigned)s.window);
            }
        } else {
            decode_dense_word<CONFIG_T>(cache, data, cursor, (unsigned)s.window, written,
                                        weight_codes);
        }
    }
    if (is_sparse && (sparse.bad || sparse.seen != d.entries || sparse.sum != d.entries)) {
        return KCNN_STATUS_BAD_SPARSE;
    }
    return KCNN_STATUS_OK;
}

template <class CONFIG_T>
unsigned read_inputs(hls::stream<axis_word_t> &in, job_cache<CONFIG_T> &cache, const sections &s,
                     bool &last, u64 &nread) {
    const unsigned words = (unsigned)s.inputs;
    const unsigned count = (unsigned)s.in_codes;
INPUTS:
    for (unsigned w = 0; w < words; w++) {
#pragma HLS PIPELINE II = 1
        const word_t data = read_word(in, last, nread);
        if (last && w != words - 1) return KCNN_STATUS_EARLY_TLAST;
        if (!last && w == words - 1) return KCNN_STATUS_MISSING_TLAST;
        decode_input_word<CONFIG_T>(cache, data, w, count);
    }
    return KCNN_STATUS_OK;
}

// The status of a job whose descriptor has been read (nread words, TLAST seen or not).
template <class CONFIG_T>
unsigned check_header(const descriptor &d, const sections &s, bool last, u64 nread) {
    if (d.magic != KCNN_MAGIC) return KCNN_STATUS_BAD_MAGIC;
    if (d.version != KCNN_PROTOCOL) return KCNN_STATUS_BAD_VERSION;
    if (nread < KCNN_DESCRIPTOR_WORDS) return KCNN_STATUS_EARLY_TLAST;
    if (d.opcode == KCNN_OP_PROBE) return last ? KCNN_STATUS_OK : KCNN_STATUS_MISSING_TLAST;
    if (d.opcode != KCNN_OP_LAYER && d.opcode != KCNN_OP_POOL) return KCNN_STATUS_BAD_OPCODE;
    return check_descriptor<CONFIG_T>(d, s);
}

// Runs one job; returns its status (0 = ran). Caches are static: they are the on-chip
// memories, and C-sim keeps them off the stack.
template <class CONFIG_T>
unsigned run_job(hls::stream<axis_word_t> &in, hls::stream<axis_word_t> &out) {
    static job_cache<CONFIG_T> cache;
    static product_tables<CONFIG_T> tables;
    static nonzero_list<CONFIG_T> list;
    static sparse_state<CONFIG_T> sparse;
    static acc_t outbuf[CONFIG_T::out_depth];
#pragma HLS ARRAY_PARTITION variable = cache.w complete dim = 1
#pragma HLS ARRAY_PARTITION variable = cache.bias complete dim = 1
#pragma HLS ARRAY_PARTITION variable = cache.in cyclic factor = 16
#pragma HLS ARRAY_PARTITION variable = cache.thresholds complete
#pragma HLS ARRAY_PARTITION variable = tables.t complete dim = 1
#pragma HLS BIND_STORAGE variable = tables.t type = ram_1p impl = lutram
#pragma HLS ARRAY_PARTITION variable = outbuf cyclic factor = 16

    word_t head[KCNN_DESCRIPTOR_WORDS];
    bool last = false;
    u64 nread = 0;
DESCRIPTOR:
    for (unsigned i = 0; i < KCNN_DESCRIPTOR_WORDS; i++) {
#pragma HLS PIPELINE II = 1
        head[i] = last ? word_t(0) : read_word(in, last, nread);
    }
    descriptor d;
    decode_descriptor(head, d);
    sections s;
    section_words(d, s);
    unsigned status = check_header<CONFIG_T>(d, s, last, nread);
    if (status == KCNN_STATUS_OK && d.opcode == KCNN_OP_PROBE) {
        word_t info[KCNN_INFO_WORDS];
        info_words<CONFIG_T>(info);
        for (unsigned i = 0; i < KCNN_INFO_WORDS; i++) write_word(out, info[i], i == KCNN_INFO_WORDS - 1);
        return status;
    }
    if (status == KCNN_STATUS_OK) {
        if (d.flags & KCNN_FLAG_SPARSE) {
            const unsigned passes = (d.channels + CONFIG_T::P - 1) / CONFIG_T::P;
            clear_weights<CONFIG_T>(cache, passes * (unsigned)s.window);
            sparse_reset<CONFIG_T>(sparse);
        }
        status = read_constant<CONFIG_T>(in, cache, sparse, d, s, last, nread);
    }
    if (status == KCNN_STATUS_OK) status = read_inputs<CONFIG_T>(in, cache, s, last, nread);
    if (status != KCNN_STATUS_OK) {
        drain<CONFIG_T>(in, last, nread);
        write_word(out, status_word(status), true);
        return status;
    }
    if (d.opcode == KCNN_OP_LAYER) {
        build_tables<CONFIG_T>(tables, cache.wq, cache.aq, d.k1, d.j1);
        compute_layer<CONFIG_T>(cache, tables, list, d, outbuf);
    } else {
        pool_codes<CONFIG_T>(cache, d, outbuf);
    }
    pack_outputs<CONFIG_T>(out, outbuf, (unsigned)s.out_codes, (unsigned)s.outputs,
                           d.flags & KCNN_FLAG_ACC_OUT);
    return status;
}

}  // namespace kcnn

#endif  // KCNN_JOB_H_
