// The loader half of a job (docs/job-format.md "Jobs"): one cycle per call. It reads the job
// header (2 words) and the biases (one word per cycle) from A, then one weight step per
// cycle (or per ceil(words_per_step / STREAMS) cycles) from A and B, and every partition
// decodes its own nibble (dense) or byte (sparse) of the step into the weight cache buffer
// `nxt`, writing its entry count per channel at each channel's end. The compute half reads
// buffer `cur` meanwhile (kcnn_job.h).
#ifndef KCNN_LOADER_H_
#define KCNN_LOADER_H_

#include "kcnn_descriptor.h"

namespace kcnn {

enum loader_phase { LOADER_IDLE, LOADER_HEAD0, LOADER_HEAD1, LOADER_BIAS, LOADER_WEIGHTS, LOADER_DONE };

// What a job header says, kept for the compute half once the job is loaded.
struct job_header {
    unsigned ch0, channels, slot0;
    unsigned codes;  // buffered formats: the job's codes in the out memory (EMIT: codes / 16 words)
};

// The loader's scalar state; its per-partition registers are arrays of the caller.
//
// Status timing (hls/KERNEL_SPEC.md "LOAD"): whether the loader reads in a cycle depends only
// on `status` as it stood at the cycle's start and on its phase and counters. A problem seen
// by a read's TLAST check enters `status` at the end of that cycle (a short path); a problem
// found by the longer checks of a word's contents (the job header, the weight decoders) is
// kept in `late` and enters `status` one cycle later. So the loop-carried path from a read to
// the next read's enable never runs through those checks, and a refused job may have one more
// word read (never past a TLAST: `done` stops every read) before the loader stops; the drain
// reads the rest of the transfer anyway, and the earlier problem keeps its precedence.
struct loader_state {
    unsigned phase, status, late, job;
    unsigned next_ch0, group_end, group_size;
    // Buffered formats: the codes of the jobs before mod 16, the partial word's codes that
    // the next job's outputs follow in the out memory (FLAT, ACC: 0 or 8; BLOCKED: 0).
    unsigned lead;
    count_t left_a, left_b;  // job words of the descriptor not yet claimed by a header
    word_t head0;
    job_header header;
    bool sparse, half_steps;
    unsigned steps, span, bias_words, bias_index;
    unsigned step, step_cycle, cycles_per_step, reads_per_cycle, weight_word;
    word_t step_words[4];
};

// A decoder's position register: wide enough that no position a refused job may still
// decode wraps past the window check (loader_cycle's static_assert).
typedef ap_uint<14> position_t;

// The per-partition registers of the decoders.
template <class C>
struct loader_lanes {
    typename mem<C>::wcount_t write_ptr[C::P];      // next free entry of the partition
    typename mem<C>::wcount_t channel_start[C::P];  // write_ptr when the channel began
    ap_uint<16> channel[C::P];                      // channels closed so far
    position_t position[C::P];                      // next position (dense: position); see loader_cycle
};

inline void loader_start_step(loader_state &s, const descriptor &d, const step_geometry &g) {
    s.phase = LOADER_IDLE;
    s.status = KCNN_STATUS_OK;
    s.late = KCNN_STATUS_OK;
    s.job = 0;
    s.next_ch0 = 0;
    s.lead = 0;
    s.group_size = g.group_size;
    s.group_end = g.group_size;
    s.left_a = d.job_words_a;
    s.left_b = d.job_words_b;
}

// Starts loading job `job` (the caller knows it exists).
inline void loader_begin(loader_state &s, unsigned job) {
    s.phase = LOADER_HEAD0;
    s.job = job;
}

inline bool loader_busy(const loader_state &s) {
#pragma HLS INLINE
    return s.status == KCNN_STATUS_OK && s.phase != LOADER_IDLE && s.phase != LOADER_DONE;
}

// After the JOB loop: a problem still in `late` (found in the loop's last cycle) is the status.
inline void loader_settle(loader_state &s) {
    if (s.status == KCNN_STATUS_OK && s.late != KCNN_STATUS_OK) s.status = s.late;
    s.late = KCNN_STATUS_OK;
}

// How a weight step of WORDS words (0: half a word) is read with STREAMS streams.
template <unsigned WORDS, unsigned STREAMS>
struct step_shape {
    static const bool half = WORDS == 0;
    static const unsigned reads = WORDS == 0 ? 1 : WORDS < STREAMS ? WORDS : STREAMS;
    static const unsigned cycles = WORDS == 0 ? 1 : WORDS / reads;
};

// The job header's checks (docs/job-format.md "Jobs", "Status") and the job's state. Only
// header fields and per-step constants, in the widths the format gives them: one 9 x 15 and
// one 9 x 13 bit product (default build), no 64-bit arithmetic. The verdict goes to `late`;
// the state is written whatever the verdict (a refused job never runs), from the header's
// fields and short sums only, so that no loop-carried register waits for the checks (a
// write predicated on the verdict would put the whole check back into a one-cycle loop).
template <class C>
unsigned check_job_header(loader_state &s, const descriptor &d, const step_geometry &g,
                          word_t head1) {
#pragma HLS INLINE
    const ap_uint<16> tag = s.head0.range(15, 0), index = s.head0.range(31, 16);
    const ap_uint<16> ch0 = s.head0.range(47, 32), channels = s.head0.range(63, 48);
    const bool sparse = head1[0] == 1;
    const ap_uint<24> steps = head1.range(31, 8);
    const ap_uint<16> slot0 = head1.range(47, 32), span = head1.range(63, 48);
    const bool last_job = s.job + 1 == d.n_jobs;
    const bool fc = d.opcode == KCNN_OP_FC;

    // Tag, index, channel order (BAD_JOB).
    const bool bad_order = tag != KCNN_JOB_TAG || index != s.job || ch0 != s.next_ch0;
    const unsigned group_end = ch0 >= s.group_end ? s.group_end + s.group_size : s.group_end;
    // Buffered outputs of one job must fit the out memory (an int32 takes 8 code places)
    // behind the partial word the jobs before left in it (`lead` codes, below 16): the job's
    // writes must not wrap onto that word. codes_per_channel saturates at OUT_DEPTH + 1 and
    // more than 256 channels are refused anyway, so the 9-bit channel count gives the same
    // verdict as the full product.
    typedef ap_uint<width_of<C::out_depth + 1>::value> per_channel_t;
    const bool wide = channels > C::job_channels;
    const ap_uint<9> ch9 = wide ? ap_uint<9>(C::job_channels) : ap_uint<9>(channels);
    const ap_uint<32> job_codes = ap_uint<32>(ch9 * per_channel_t(g.codes_per_channel));
    const bool count = wide || (!sparse && span > (1u << C::pos_bits)) ||
                       (g.buffered && job_codes + s.lead > C::out_depth);
    // Words this job claims on A and B: header, biases, its share of the weight words
    // (a step is P nibbles or P bytes: ceil(steps * P * 4 or 8 / 64) words).
    const ap_uint<34> bits = ap_uint<34>(steps) * (C::P * (sparse ? 8u : 4u));
    const ap_uint<28> words = (bits + 63) >> 6;
    const ap_uint<28> share_b = C::streams == 2 ? ap_uint<28>(words >> 1) : ap_uint<28>(0);
    const ap_uint<32> words_a = KCNN_JOB_HEADER_WORDS + ((channels + 1) >> 1) + (words - share_b);
    const bool geometry = words_a > s.left_a || share_b > s.left_b ||
                          (last_job && (words_a != s.left_a || share_b != s.left_b));
    bool bad = channels == 0 || ch0 + channels > d.out_c || ch0 + channels > group_end;
    // Consulted only without a count problem: channels <= 256 and (dense) span <= 4096.
    const ap_uint<22> dense_steps = ch9 * ap_uint<13>(span);
    bad = bad || (sparse ? span != 0 : (span == 0 || steps != dense_steps));
    bad = bad || (fc && slot0 != 0) || (last_job && ch0 + channels != d.out_c);
    // Conv FLAT and ACC outputs pack on across the jobs, as an fc step's do (a job answers
    // the words its outputs complete, the last job the partial tail): no job need end on a
    // word boundary.
    const unsigned status = bad_order  ? (unsigned)KCNN_STATUS_BAD_JOB
                            : count    ? (unsigned)KCNN_STATUS_COUNT_ABOVE_MAX
                            : geometry ? (unsigned)KCNN_STATUS_BAD_GEOMETRY
                            : bad      ? (unsigned)KCNN_STATUS_BAD_JOB
                                       : (unsigned)KCNN_STATUS_OK;

    s.group_end = group_end;
    s.left_a -= (count_t)words_a;
    s.left_b -= (count_t)share_b;
    s.header.ch0 = ch0;
    s.header.channels = channels;
    s.header.slot0 = slot0;
    s.header.codes = job_codes;
    s.lead = (s.lead + (unsigned)job_codes.range(3, 0)) & 15u;
    s.next_ch0 = ch0 + channels;
    s.sparse = sparse;
    s.steps = steps;
    s.span = span;
    s.bias_index = 0;
    // P = 8 dense: a word carries two steps; else a step is P/16 (dense) or P/8 (sparse)
    // words, read min(words, STREAMS) per cycle (constants of the build: no divider).
    typedef step_shape<C::P / 8, C::streams> sparse_shape;
    typedef step_shape<C::P / 16, C::streams> dense_shape;
    s.half_steps = sparse ? sparse_shape::half : dense_shape::half;
    s.reads_per_cycle = sparse ? sparse_shape::reads : dense_shape::reads;
    s.cycles_per_step = sparse ? sparse_shape::cycles : dense_shape::cycles;
    s.step = 0;
    s.step_cycle = 0;
    s.weight_word = 0;
    return status;
}

// Is a weight entry at `position` of partition `p` inside the job's window? `any` covers
// every entry of a sparse sequence (fillers too): its slot (conv) or element (fc) exists;
// `kernel` adds, for a non-zero code, that the tap is inside the kernel.
template <class C>
void check_position(const descriptor &d, const step_geometry &g, unsigned slot0, unsigned p,
                    position_t position, const ap_uint<16> slots[C::P], bool &any, bool &kernel) {
#pragma HLS INLINE
    if (d.opcode == KCNN_OP_FC) {
        any = position < (1u << C::pos_bits) &&
              ap_uint<20>(ap_uint<20>(position) * C::P + p) < d.in_c;
        kernel = any;
    } else {
        const ap_uint<17> slot = ap_uint<16>(slot0) + (position >> g.pos_shift);
        const ap_uint<14> i = (position >> d.kwb) & ((1u << d.khb) - 1);
        const ap_uint<14> j = position & ((1u << d.kwb) - 1);
        any = position < (1u << C::pos_bits) && slot < slots[p];
        kernel = any && i < d.kh && j < d.kw;
    }
}

// One cycle of the loader. `nxt` is the buffer it fills. Each stream has one read site: the
// cycle's phase and counters (registers) say which words it reads, the data is routed after.
template <class C>
void loader_cycle(loader_state &s, loader_lanes<C> &lanes, axis_t &in_a, in_port &pa,
                  axis_t &in_b, in_port &pb, const descriptor &d, const step_geometry &g,
                  const ap_uint<16> slots[C::P], unsigned nxt,
                  typename mem<C>::wentry_t wcache[2][C::P][C::w_depth],
                  typename mem<C>::wcount_t counts[C::P][2 * C::job_channels],
                  acc_t bias[2][2][C::job_channels / 2]) {
#pragma HLS INLINE
    typedef typename mem<C>::wcount_t wcount_t;
    // The position register never wraps past the window check: a checked byte leaves it at
    // most 2^pos_bits, and a refused job decodes at most two more steps (its own and the one
    // `late` lets by), each adding at most 16 * 15 (a filler of skip 15).
    static_assert((1u << C::pos_bits) + 2 * (16 * 15) < (1u << (unsigned)position_t::width),
                  "the position register can wrap");
    const unsigned older = s.late;  // found by last cycle's checks; names an earlier word
    unsigned now = KCNN_STATUS_OK;    // this cycle's TLAST checks (short paths)
    unsigned found = KCNN_STATUS_OK;  // this cycle's header and decoder checks (long paths)

    // Which words this cycle reads: registered state only.
    const bool header = s.phase != LOADER_WEIGHTS;
    const bool odd_word_on_b = C::streams == 2 && (s.weight_word & 1u) != 0;
    bool want_a, want_b;
    if (header) {
        want_a = true;
        want_b = false;
    } else if (s.half_steps) {
        // P = 8 dense: a word carries two steps, read on the even one.
        const bool even = (s.step & 1u) == 0;
        want_a = even && !odd_word_on_b;
        want_b = even && odd_word_on_b;
    } else if (C::streams == 2 && s.reads_per_cycle == 2) {
        // Two words per cycle: an even word (A) and the odd one after it (B).
        want_a = want_b = true;
    } else {
        want_a = !odd_word_on_b;
        want_b = odd_word_on_b;
    }
    // A refused job's extra cycle never reads past a TLAST (there may be no word behind it).
    // An accepted header's words end exactly at the TLASTs, so a stream whose TLAST went by
    // is wanted only in the cycle after a refusal (which `older` then names); otherwise the
    // transfer ended early, and the loader stops rather than wait for ever.
    const bool go = loader_busy(s) && !(want_a && pa.done) && !(want_b && pb.done);
    if (loader_busy(s) && !go) now = KCNN_STATUS_EARLY_TLAST;

    word_t data_a = 0, data_b = 0;
    if (go && want_a) {
        data_a = read_checked<0>(in_a, pa, g.a_final, now);
    }
    if (go && want_b) {
        unsigned status_b = KCNN_STATUS_OK;
        data_b = read_checked<1>(in_b, pb, g.b_final, status_b);
        if (now == KCNN_STATUS_OK) now = status_b;  // A's word comes first in the section
    }

    if (go && now == KCNN_STATUS_OK) {
        if (header) {
            // Header and biases: one word of A per cycle.
            if (s.phase == LOADER_HEAD0) {
                s.head0 = data_a;
                s.phase = LOADER_HEAD1;
            } else if (s.phase == LOADER_HEAD1) {
                s.bias_words = ((unsigned)s.head0.range(63, 48) + 1) >> 1u;
                s.bias_index = 0;
                found = check_job_header<C>(s, d, g, data_a);
                for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                    lanes.write_ptr[p] = 0;
                    lanes.channel_start[p] = 0;
                    lanes.channel[p] = 0;
                    lanes.position[p] = 0;
                }
                s.phase = LOADER_BIAS;
            } else {
                const unsigned at = s.bias_index & (C::job_channels / 2 - 1);
                bias[nxt][0][at] = acc_t(half_word(data_a, 0));
                bias[nxt][1][at] = acc_t(half_word(data_a, 1));
                if (++s.bias_index == s.bias_words) {
                    // A job always has a channel; an empty weight section (sparse with no step)
                    // cannot close it.
                    s.phase = s.steps == 0 ? LOADER_DONE : LOADER_WEIGHTS;
                    if (s.steps == 0) now = KCNN_STATUS_BAD_SPARSE;
                }
            }
        } else {
            // Weight steps: words 2k on A and 2k + 1 on B with two streams.
            bool decode = true;
            if (s.half_steps) {
                if ((s.step & 1u) == 0) {
                    s.step_words[0] = odd_word_on_b ? data_b : data_a;
                    s.weight_word++;
                }
            } else if (C::streams == 2 && s.reads_per_cycle == 2) {
                const unsigned slot = (s.step_cycle * 2) & 3u;
                s.step_words[slot] = data_a;
                s.step_words[slot + 1] = data_b;
                s.weight_word += 2;
            } else {
                s.step_words[s.step_cycle & 3u] = odd_word_on_b ? data_b : data_a;
                s.weight_word++;
            }
            if (!s.half_steps) {
                decode = s.step_cycle + 1 == s.cycles_per_step;
                s.step_cycle = decode ? 0 : s.step_cycle + 1;
            }
            if (decode) {
                // Every partition decodes its own nibble (dense) or byte (sparse) of the step.
                bool over_depth = false, outside = false, unclosed = false;
                ap_uint<256> bits = (s.step_words[3], s.step_words[2], s.step_words[1], s.step_words[0]);
                if (s.half_steps && (s.step & 1u)) bits = bits >> 32u;
                for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                    const ap_uint<8> byte = s.sparse ? ap_uint<8>(bits.range(8 * p + 7, 8 * p))
                                                     : ap_uint<8>(bits.range(4 * p + 3, 4 * p));
                    const code_t code = byte.range(3, 0);
                    const bool open = lanes.channel[p] < s.header.channels;
                    // Sparse: byte 0x00 closes the channel (it never is an entry: a filler has
                    // skip 1..15); after the last channel only 0x00 padding may follow.
                    const bool closes_sparse = s.sparse && byte == 0;
                    // An entry's position is `skip` past the register; a filler's (code 0,
                    // skip s != 0: 16 s positions) is the last one it covers, 16 s - 1 past it:
                    // {s - 1, 1111}. Both sums are formed from the byte's bits and the filler
                    // test only selects after the adders, so the select is one 2:1 level on
                    // the status recurrence (read -> checks -> late -> status -> read), not
                    // the detect and a mux in front of the carry chain.
                    const ap_uint<4> skip = byte.range(7, 4);
                    const bool filler = code == 0 && skip != 0;
                    const position_t at_entry = lanes.position[p] + skip;
                    const position_t at_filler =
                        lanes.position[p] + ap_uint<8>((ap_uint<4>(skip - 1), ap_uint<4>(15)));
                    const position_t position =
                        !s.sparse ? lanes.position[p] : filler ? at_filler : at_entry;
                    bool any, kernel;
                    check_position<C>(d, g, s.header.slot0, p, position, slots, any, kernel);
                    bool entry = false;
                    if (s.sparse && !open) {
                        if (byte != 0) outside = true;
                    } else if (!closes_sparse) {
                        if (code != 0) {
                            if (!kernel) outside = true;
                            entry = kernel;
                        } else if (s.sparse && !any) {
                            outside = true;
                        }
                    }
                    wcount_t ptr = lanes.write_ptr[p];
                    if (entry) {
                        if (ptr == C::w_depth) {
                            over_depth = true;
                        } else {
                            wcache[nxt][p][ptr] = (ap_uint<16>(position) << 4) | ap_uint<16>(code);
                            ptr++;
                        }
                    }
                    const bool closes = open && (s.sparse ? closes_sparse : position + 1 == s.span);
                    if (closes) {
                        counts[p][nxt * C::job_channels + (lanes.channel[p] & (C::job_channels - 1))] =
                            ptr - lanes.channel_start[p];
                        lanes.channel_start[p] = ptr;
                        lanes.channel[p] = lanes.channel[p] + 1;
                        lanes.position[p] = 0;
                    } else if (open) {
                        lanes.position[p] = position + 1;
                    }
                    lanes.write_ptr[p] = ptr;
                    // Every partition must have closed exactly the job's channels (dense always does).
                    if (s.step + 1 == s.steps && s.sparse && lanes.channel[p] != s.header.channels) unclosed = true;
                }
                if (++s.step == s.steps) s.phase = LOADER_DONE;
                if (over_depth) {
                    found = KCNN_STATUS_COUNT_ABOVE_MAX;
                } else if (outside || unclosed) {
                    found = KCNN_STATUS_BAD_SPARSE;
                }
            }
        }
    }

    // Commit: the older problem first, then this cycle's TLAST; this cycle's content checks
    // wait one cycle in `late`.
    if (s.status == KCNN_STATUS_OK) {
        if (older != KCNN_STATUS_OK) {
            s.status = older;
        } else if (now != KCNN_STATUS_OK) {
            s.status = now;
        }
    }
    s.late = s.status == KCNN_STATUS_OK ? found : (unsigned)KCNN_STATUS_OK;
}

}  // namespace kcnn

#endif  // KCNN_LOADER_H_
