// The caches of one job and the decoders that fill them from the stream: the input tile
// (reused by every output channel of the job), the weight block in P banks (reused over
// every output row), the biases, codebooks and thresholds.
#ifndef KCNN_CACHE_H_
#define KCNN_CACHE_H_

#include "kcnn_types.h"

namespace kcnn {

template <class CONFIG_T>
struct job_cache {
    code_t in[CONFIG_T::in_depth];                  // input tile, C order (ch, row, col)
    code_t w[CONFIG_T::P][CONFIG_T::w_bank];        // channel c: bank c % P, row c / P
    acc_t bias[CONFIG_T::P][CONFIG_T::bias_bank];   // same banking as the weights
    entry_t wq[CONFIG_T::k_max];                    // weight codebook, code k at [k]
    entry_t aq[CONFIG_T::j_max];                    // activation codebook, code j at [j]
    acc_t thresholds[CONFIG_T::j_max];              // T[1..J'-1] at [0..J'-2]
};

// Where the next dense weight code goes: (bank, row offset, tap), advanced code by code so
// that no division by the window length is needed.
struct weight_cursor {
    unsigned bank, base, tap;
};

inline void advance(weight_cursor &c, unsigned window, unsigned P) {
    if (++c.tap == window) {
        c.tap = 0;
        if (++c.bank == P) {
            c.bank = 0;
            c.base += window;
        }
    }
}

// 16 dense weight codes of one word, first code in the low nibble.
template <class CONFIG_T>
void decode_dense_word(job_cache<CONFIG_T> &cache, word_t data, weight_cursor &c, unsigned window,
                       unsigned &written, unsigned total) {
    for (unsigned i = 0; i < 16; i++) {
#pragma HLS UNROLL
        if (written < total) {
            cache.w[c.bank][c.base + c.tap] = data.range(4 * i + 3, 4 * i);
            advance(c, window, CONFIG_T::P);
            written++;
        }
    }
}

// State of the sparse decoder: per-row entry counts arrive first (4 bytes each), then the
// entries (code low nibble, zeros skipped before it high nibble). Non-empty rows are linked
// as their counts arrive, so an entry finds its row in one step even after empty rows.
template <class CONFIG_T>
struct sparse_state {
    unsigned byte;                                  // bytes of the section seen so far
    unsigned count;                                 // the row count being assembled
    unsigned left;                                  // entries left in the current row
    unsigned row, pos;                              // current row and next position in it
    unsigned head, tail;                            // first and last non-empty row
    unsigned long long sum;                         // entries announced by the row counts
    unsigned seen;                                  // entries consumed
    bool started, bad;
    unsigned next[CONFIG_T::out_depth];             // next non-empty row
    unsigned rows_count[CONFIG_T::out_depth];
};

template <class CONFIG_T>
void sparse_reset(sparse_state<CONFIG_T> &s) {
    s.byte = s.count = s.left = s.row = s.pos = s.head = s.tail = s.seen = 0;
    s.sum = 0;
    s.started = false;
    s.bad = false;
}

template <class CONFIG_T>
void decode_sparse_byte(job_cache<CONFIG_T> &cache, sparse_state<CONFIG_T> &s, unsigned b,
                        unsigned channels, unsigned entries, unsigned window) {
    const unsigned header = 4 * channels;
    if (s.byte < header) {
        s.count |= b << (8 * (s.byte % 4));
        if (s.byte % 4 == 3) {
            const unsigned r = s.byte / 4;
            s.rows_count[r] = s.count;
            s.sum += s.count;
            if (s.count != 0) {
                if (s.sum == s.count) {
                    s.head = r;
                } else {
                    s.next[s.tail] = r;
                }
                s.tail = r;
            }
            s.count = 0;
        }
    } else if (s.byte < header + entries && !s.bad) {
        if (s.left == 0) {  // the next non-empty row starts
            if (s.seen >= s.sum) {
                s.bad = true;  // more entries than the row counts announce
            } else {
                s.row = s.started ? s.next[s.row] : s.head;
                s.started = true;
                s.left = s.rows_count[s.row];
                s.pos = 0;
            }
        }
        if (!s.bad) {
            const unsigned position = s.pos + (b >> 4u);
            if (position >= window) {
                s.bad = true;  // an entry leaves its row: never write outside the bank
            } else {
                if ((b & 15u) != 0) {
                    const unsigned bank = s.row % CONFIG_T::P;
                    cache.w[bank][(s.row / CONFIG_T::P) * window + position] = b & 15u;
                }
                s.pos = position + 1;
                s.left--;
                s.seen++;
            }
        }
    }
    s.byte++;
}

// Sparse rows only write their non-zero codes: zero the job's part of every bank first.
template <class CONFIG_T>
void clear_weights(job_cache<CONFIG_T> &cache, unsigned length) {
WCLEAR:
    for (unsigned i = 0; i < length; i++) {
#pragma HLS PIPELINE II = 1
        KCNN_TRIP(WCLEAR);
        for (unsigned p = 0; p < CONFIG_T::P; p++) {
#pragma HLS UNROLL
            cache.w[p][i] = 0;
        }
    }
}

// 16 input codes of one word into the tile cache.
template <class CONFIG_T>
void decode_input_word(job_cache<CONFIG_T> &cache, word_t data, unsigned word, unsigned count) {
    for (unsigned i = 0; i < 16; i++) {
#pragma HLS UNROLL
        const unsigned k = 16 * word + i;
        if (k < count) cache.in[k] = data.range(4 * i + 3, 4 * i);
    }
}

}  // namespace kcnn

#endif  // KCNN_CACHE_H_
