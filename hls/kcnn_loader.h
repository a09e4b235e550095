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
};

// The loader's scalar state; its per-partition registers are arrays of the caller.
struct loader_state {
    unsigned phase, status, job;
    unsigned next_ch0, group_end, group_size;
    count_t left_a, left_b;  // job words of the descriptor not yet claimed by a header
    word_t head0;
    job_header header;
    bool sparse, half_steps;
    unsigned steps, span, bias_words, bias_index;
    unsigned step, step_cycle, cycles_per_step, reads_per_cycle, weight_word;
    word_t step_words[4];
};

// The per-partition registers of the decoders.
template <class C>
struct loader_lanes {
    typename mem<C>::wcount_t write_ptr[C::P];      // next free entry of the partition
    typename mem<C>::wcount_t channel_start[C::P];  // write_ptr when the channel began
    ap_uint<16> channel[C::P];                      // channels closed so far
    ap_uint<14> position[C::P];                     // next position (dense: position)
};

inline void loader_start_step(loader_state &s, const descriptor &d) {
    s.phase = LOADER_IDLE;
    s.status = KCNN_STATUS_OK;
    s.job = 0;
    s.next_ch0 = 0;
    s.group_size = d.out_c / (d.groups == 0 ? 1 : d.groups);
    s.group_end = s.group_size;
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

// The job header's checks (docs/job-format.md "Jobs", "Status"); fills the job's state.
template <class C>
unsigned check_job_header(loader_state &s, const descriptor &d, const step_geometry &g,
                          word_t head1) {
#pragma HLS INLINE
    const unsigned tag = field(s.head0, 0, 16), index = field(s.head0, 16, 16);
    const unsigned ch0 = field(s.head0, 32, 16), channels = field(s.head0, 48, 16);
    const bool sparse = head1[0] == 1;
    const unsigned steps = field(head1, 8, 24), slot0 = field(head1, 32, 16);
    const unsigned span = field(head1, 48, 16);
    const bool last_job = s.job + 1 == d.n_jobs;
    const bool fc = d.opcode == KCNN_OP_FC;
    if (tag != KCNN_JOB_TAG || index != s.job || ch0 != s.next_ch0) return KCNN_STATUS_BAD_JOB;
    if (ch0 >= s.group_end) s.group_end += s.group_size;
    // Buffered outputs of one job must fit the out memory (an int32 takes 8 code places).
    const u64 job_outputs = (u64)channels * g.out_plane;
    const u64 job_codes = d.out_format == KCNN_FMT_FLAT  ? job_outputs
                          : d.out_format == KCNN_FMT_ACC ? 8 * job_outputs
                                                         : (u64)channels * g.out_by * g.out_bx * 16;
    if (channels > C::job_channels || (!sparse && span > (1u << C::pos_bits)) ||
        (g.buffered && job_codes > C::out_depth)) {
        return KCNN_STATUS_COUNT_ABOVE_MAX;
    }
    // Words this job claims on A and B: header, biases, its share of the weight words.
    const u64 words = ((u64)steps * C::P * (sparse ? 8 : 4) + 63) / 64;
    const u64 share_b = C::streams == 2 ? words / 2 : 0;
    const u64 words_a = KCNN_JOB_HEADER_WORDS + (channels + 1) / 2 + (words - share_b);
    if (words_a > s.left_a || share_b > s.left_b ||
        (last_job && (words_a != s.left_a || share_b != s.left_b))) {
        return KCNN_STATUS_BAD_GEOMETRY;
    }
    bool bad = channels == 0 || ch0 + channels > d.out_c || ch0 + channels > s.group_end;
    bad = bad || (sparse ? span != 0 : (span == 0 || steps != channels * span));
    bad = bad || (fc && slot0 != 0) || (last_job && ch0 + channels != d.out_c);
    // A conv job's buffered outputs leave in whole words, so its jobs must end on word
    // boundaries except the last; an fc step packs on across its jobs.
    if (!last_job) {
        if (!fc && d.out_format == KCNN_FMT_FLAT) bad = bad || job_outputs % 16 != 0;
        if (!fc && d.out_format == KCNN_FMT_ACC) bad = bad || job_outputs % 2 != 0;
    }
    if (bad) return KCNN_STATUS_BAD_JOB;
    s.left_a -= (count_t)words_a;
    s.left_b -= (count_t)share_b;
    s.header.ch0 = ch0;
    s.header.channels = channels;
    s.header.slot0 = slot0;
    s.next_ch0 = ch0 + channels;
    s.sparse = sparse;
    s.steps = steps;
    s.span = span;
    s.bias_words = (channels + 1) / 2;
    s.bias_index = 0;
    // P = 8 dense: a word carries two steps; else a step is P/16 (dense) or P/8 (sparse)
    // words, read min(words, STREAMS) per cycle.
    const unsigned step_words = sparse ? C::P / 8 : C::P / 16;
    s.half_steps = step_words == 0;
    s.reads_per_cycle = step_words == 0 ? 1 : step_words < C::streams ? step_words : C::streams;
    s.cycles_per_step = step_words == 0 ? 1 : step_words / s.reads_per_cycle;
    s.step = 0;
    s.step_cycle = 0;
    s.weight_word = 0;
    return KCNN_STATUS_OK;
}

// Is a weight entry at `position` of partition `p` inside the job's window? `any` covers
// every entry of a sparse sequence (fillers too): its slot (conv) or element (fc) exists;
// `kernel` adds, for a non-zero code, that the tap is inside the kernel.
template <class C>
void check_position(const descriptor &d, const step_geometry &g, unsigned slot0, unsigned p,
                    ap_uint<14> position, const ap_uint<16> slots[C::P], bool &any, bool &kernel) {
#pragma HLS INLINE
    if (d.opcode == KCNN_OP_FC) {
        any = position < (1u << C::pos_bits) &&
              ((u64)position * C::P + p) < d.in_c;
        kernel = any;
    } else {
        const unsigned slot = slot0 + (unsigned)(position >> g.pos_shift);
        const unsigned i = (unsigned)(position >> d.kwb) & ((1u << d.khb) - 1);
        const unsigned j = (unsigned)position & ((1u << d.kwb) - 1);
        any = position < (1u << C::pos_bits) && slot < slots[p];
        kernel = any && i < d.kh && j < d.kw;
    }
}

// One weight word of the job's section: word w travels on B when w is odd and there are two
// streams, else on A. The two reads sit in exclusive branches: one read per stream.
inline word_t read_weight_word(bool from_b, axis_t &in_a, in_port &pa, axis_t &in_b, in_port &pb,
                               const step_geometry &g, unsigned &status) {
#pragma HLS INLINE
    bool last;
    word_t data;
    if (from_b) {
        const count_t at = pb.pos;
        data = read_word<1>(in_b, pb, last);
        status = tlast_status(last, at, g.b_final);
    } else {
        const count_t at = pa.pos;
        data = read_word<0>(in_a, pa, last);
        status = tlast_status(last, at, g.a_final);
    }
    return data;
}

// One cycle of the loader. `nxt` is the buffer it fills. The phases are exclusive branches,
// so each stream sees at most one read per cycle.
template <class C>
void loader_cycle(loader_state &s, loader_lanes<C> &lanes, axis_t &in_a, in_port &pa,
                  axis_t &in_b, in_port &pb, const descriptor &d, const step_geometry &g,
                  const ap_uint<16> slots[C::P], unsigned nxt,
                  typename mem<C>::wentry_t wcache[2][C::P][C::w_depth],
                  typename mem<C>::wcount_t counts[C::P][2 * C::job_channels],
                  acc_t bias[2][2][C::job_channels / 2]) {
#pragma HLS INLINE
    typedef typename mem<C>::wcount_t wcount_t;
    if (!loader_busy(s)) return;
    if (s.phase != LOADER_WEIGHTS) {
        // Header and biases: one word of A per cycle.
        bool last;
        const count_t at = pa.pos;
        const word_t data = read_word<0>(in_a, pa, last);
        s.status = tlast_status(last, at, g.a_final);
        if (s.status != KCNN_STATUS_OK) return;
        if (s.phase == LOADER_HEAD0) {
            s.head0 = data;
            s.phase = LOADER_HEAD1;
        } else if (s.phase == LOADER_HEAD1) {
            s.status = check_job_header<C>(s, d, g, data);
            for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                lanes.write_ptr[p] = 0;
                lanes.channel_start[p] = 0;
                lanes.channel[p] = 0;
                lanes.position[p] = 0;
            }
            s.phase = LOADER_BIAS;
        } else {
            bias[nxt][0][s.bias_index] = acc_t(half_word(data, 0));
            bias[nxt][1][s.bias_index] = acc_t(half_word(data, 1));
            if (++s.bias_index == s.bias_words) {
                // A job always has a channel; an empty weight section (sparse with no step)
                // cannot close it.
                s.phase = s.steps == 0 ? LOADER_DONE : LOADER_WEIGHTS;
                if (s.steps == 0) s.status = KCNN_STATUS_BAD_SPARSE;
            }
        }
        return;
    }

    // Weight steps: words 2k on A and 2k + 1 on B with two streams.
    bool decode = true;
    if (s.half_steps) {
        // P = 8 dense: a word carries two steps, read on the even one.
        if ((s.step & 1u) == 0) {
            s.step_words[0] = read_weight_word(C::streams == 2 && (s.weight_word & 1u), in_a, pa,
                                               in_b, pb, g, s.status);
            s.weight_word++;
        }
    } else if (C::streams == 2 && s.reads_per_cycle == 2) {
        // Two words per cycle: an even word (A) and the odd one after it (B).
        unsigned status_b = KCNN_STATUS_OK;
        const unsigned slot = (s.step_cycle * 2) & 3u;
        s.step_words[slot] = read_weight_word(false, in_a, pa, in_b, pb, g, s.status);
        s.step_words[slot + 1] = read_weight_word(true, in_a, pa, in_b, pb, g, status_b);
        if (s.status == KCNN_STATUS_OK) s.status = status_b;
        s.weight_word += 2;
    } else {
        s.step_words[s.step_cycle & 3u] = read_weight_word(C::streams == 2 && (s.weight_word & 1u),
                                                          in_a, pa, in_b, pb, g, s.status);
        s.weight_word++;
    }
    if (!s.half_steps) {
        decode = s.step_cycle + 1 == s.cycles_per_step;
        s.step_cycle = decode ? 0 : s.step_cycle + 1;
    }
    if (s.status != KCNN_STATUS_OK || !decode) return;

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
        // Sparse: byte 0x00 closes the channel (it never is an entry: a filler has skip 15);
        // after the last channel only 0x00 padding may follow.
        const bool closes_sparse = s.sparse && byte == 0;
        const ap_uint<14> position =
            s.sparse ? ap_uint<14>(lanes.position[p] + byte.range(7, 4)) : lanes.position[p];
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
        s.status = KCNN_STATUS_COUNT_ABOVE_MAX;
    } else if (outside || unclosed) {
        s.status = KCNN_STATUS_BAD_SPARSE;
    }
}

}  // namespace kcnn

#endif  // KCNN_LOADER_H_
