// One step per invocation (docs/job-format.md): the descriptor, its checks, the probe answer,
// the opcode's units, the drain of a refused step and the trailer. The step's memories live
// here, static so that C-sim keeps them off the stack (no state is carried between steps:
// every read of a step lies inside what the same step wrote).
#ifndef KCNN_STEP_H_
#define KCNN_STEP_H_

#include "kcnn_add.h"
#include "kcnn_const.h"
#include "kcnn_job.h"
#include "kcnn_lrn.h"
#include "kcnn_map.h"
#include "kcnn_pool.h"
#include "kcnn_table.h"

namespace kcnn {

// The probe answer and the info0..3 registers (docs/job-format.md "Probe").
template <class C>
void info_words(word_t info[KCNN_INFO_WORDS]) {
    info[0] = word_t(KCNN_MAGIC);
    info[1] = word_t(KCNN_PROTOCOL) | (word_t(C::ch_max) << 16);
    info[2] = word_t(C::P) | (word_t(KCNN_K_MAX) << 16) | (word_t(KCNN_J_MAX) << 24) |
              (word_t(KCNN_ACC_BITS) << 32) | (word_t(KCNN_BW) << 40) | (word_t(KCNN_BA) << 48) |
              (word_t(C::streams) << 56) | (word_t(log2_of<C::lrn_lanes>::value) << 60);
    info[3] = word_t(C::in_depth) | (word_t(C::w_depth) << 21) | (word_t(C::out_depth) << 42);
}

inline word_t trailer_word(unsigned status, unsigned job) {
    return word_t(KCNN_TRAILER_TAG) | (word_t(status & 0xFFFFu) << 32u) | (word_t(job & 0xFFFFu) << 48u);
}

// A refused step reads its stream on to the TLAST, never past one transfer's length.
template <class C, int WHICH>
void drain(axis_t &s, in_port &port) {
DRAIN:
    while (!port.done && port.pos < C::max_transfer_words) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 8388608 avg = 1000
        bool last;
        read_word<WHICH>(s, port, last);
    }
}

template <class C>
unsigned run_step(axis_t &in_a, axis_t &in_b, axis_t &out) {
    typedef typename mem<C>::tile_word_t tile_word_t;
    typedef typename mem<C>::wentry_t wentry_t;
    typedef typename mem<C>::wcount_t wcount_t;
    typedef typename mem<C>::place_t place_t;
    typedef typename mem<C>::square_t square_t;
    typedef typename mem<C>::cut_t cut_t;
    typedef config_checks<C> checks;
    static_assert(checks::p_ok && checks::streams_ok && checks::lanes_ok && checks::tile_ok &&
                      checks::w_ok && checks::out_ok && checks::ch_ok,
                  "unsupported KCNN build parameters");

    // The tile: P partitions x 4 banks (block row dy), conv reads 2 words per bank per cycle.
    static tile_word_t tile[C::P][4][C::tile_depth];
#pragma HLS ARRAY_PARTITION variable = tile type = complete dim = 1
#pragma HLS ARRAY_PARTITION variable = tile type = complete dim = 2
#pragma HLS BIND_STORAGE variable = tile type = ram_t2p impl = bram
    // Weight cache, double buffered: compute reads buffer k % 2, the loader writes the other.
    static wentry_t wcache[2][C::P][C::w_depth];
#pragma HLS ARRAY_PARTITION variable = wcache type = complete dim = 1
#pragma HLS ARRAY_PARTITION variable = wcache type = complete dim = 2
#pragma HLS BIND_STORAGE variable = wcache type = ram_s2p impl = bram
    // Entries per channel: one BRAM18 per partition holds both buffers (the buffer is the
    // address's high bit); the loader writes one port, the compute half reads the other.
    static wcount_t counts[C::P][2 * C::job_channels];
#pragma HLS ARRAY_PARTITION variable = counts type = complete dim = 1
#pragma HLS BIND_STORAGE variable = counts type = ram_s2p impl = bram
    // Biases by buffer and channel parity: a bias word's two values go to two banks.
    static acc_t bias[2][2][C::job_channels / 2];
#pragma HLS ARRAY_PARTITION variable = bias type = complete dim = 1
#pragma HLS ARRAY_PARTITION variable = bias type = complete dim = 2
#pragma HLS BIND_STORAGE variable = bias type = ram_s2p impl = bram
    // The lanes' operands (kcnn_partition.h). Lanes 0..7 of a partition multiply in their
    // DSP48: Wq of the partition's weight code (one LUTRAM per partition) times Aq of the
    // lane's code (one LUTRAM per lane). Lanes 8 + 2b and 9 + 2b read P[k][a] at 16 k + a
    // from BRAM18 b of their partition, one port each.
    static entry_t wvalue[C::P][KCNN_K_MAX];
#pragma HLS ARRAY_PARTITION variable = wvalue type = complete dim = 1
#pragma HLS BIND_STORAGE variable = wvalue type = ram_1p impl = lutram
    static entry_t avalue[C::P][8][KCNN_J_MAX];
#pragma HLS ARRAY_PARTITION variable = avalue type = complete dim = 1
#pragma HLS ARRAY_PARTITION variable = avalue type = complete dim = 2
#pragma HLS BIND_STORAGE variable = avalue type = ram_1p impl = lutram
    static prod_t products[C::P][4][KCNN_K_MAX * KCNN_J_MAX];
#pragma HLS ARRAY_PARTITION variable = products type = complete dim = 1
#pragma HLS ARRAY_PARTITION variable = products type = complete dim = 2
#pragma HLS BIND_STORAGE variable = products type = ram_t2p impl = bram
    // Dilated kernel offsets (kcnn_types.h): per partition 4 LUTRAMs of 16 words (row / column,
    // low / high nibble of the kernel index); TABLE writes them, JOB reads each once a cycle.
    static tap_lo_t tap_lo[C::P][2][16];
#pragma HLS ARRAY_PARTITION variable = tap_lo type = complete dim = 1
#pragma HLS ARRAY_PARTITION variable = tap_lo type = complete dim = 2
#pragma HLS BIND_STORAGE variable = tap_lo type = ram_1p impl = lutram
    static tap_hi_t tap_hi[C::P][2][16];
#pragma HLS ARRAY_PARTITION variable = tap_hi type = complete dim = 1
#pragma HLS ARRAY_PARTITION variable = tap_hi type = complete dim = 2
#pragma HLS BIND_STORAGE variable = tap_hi type = ram_1p impl = lutram
    // Placement: CONST writes one entry a cycle; MAP reads two (the raw image's queue drains
    // two bank words a cycle, each its channel's entry), one a port of a ram_2p. Still one
    // BRAM36 at the default (CH_MAX 1024 x 26 bits, 1K x 36 a port). Two read ports rule out
    // the simple-dual-port shapes (512 x 72, 512 x 36) a ram_1p may use, so at CH_MAX <= 512
    // and more than 18 bits a ram_2p takes a BRAM36 where a ram_1p could take a BRAM18.
    static place_t placement[C::ch_max];
#pragma HLS BIND_STORAGE variable = placement type = ram_2p impl = bram
    // Buffered outputs, one code per bank word: any code can be written alone.
    static code_t out_memory[16][C::out_depth / 16];
#pragma HLS ARRAY_PARTITION variable = out_memory type = complete dim = 1
#pragma HLS BIND_STORAGE variable = out_memory type = ram_1p impl = bram
    // RESIDUAL: the shortcut section, one word a line (OUT_DEPTH codes, as the out memory):
    // SHORTCUT writes it, the reducer reads one word a cycle (the output's shortcut code).
    static ap_uint<64> shortcut[C::out_depth / 16];
#pragma HLS BIND_STORAGE variable = shortcut type = ram_1p impl = bram
    // LRN: squares per lane and window channel (split by code parity: a constant word
    // carries two); per lane the cut points each binary-search stage can probe, in a
    // LUTRAM of its own (kcnn_lrn.h).
    static square_t squares[C::lrn_lanes][C::lrn_size_max][2][8];
#pragma HLS ARRAY_PARTITION variable = squares type = complete dim = 1
#pragma HLS ARRAY_PARTITION variable = squares type = complete dim = 2
#pragma HLS ARRAY_PARTITION variable = squares type = complete dim = 3
#pragma HLS BIND_STORAGE variable = squares type = ram_1p impl = lutram
    static cut_t cut0[C::lrn_lanes][16];
#pragma HLS ARRAY_PARTITION variable = cut0 type = complete dim = 1
#pragma HLS BIND_STORAGE variable = cut0 type = ram_1p impl = lutram
    static cut_t cut1[C::lrn_lanes][32];
#pragma HLS ARRAY_PARTITION variable = cut1 type = complete dim = 1
#pragma HLS BIND_STORAGE variable = cut1 type = ram_1p impl = lutram
    static cut_t cut2[C::lrn_lanes][64];
#pragma HLS ARRAY_PARTITION variable = cut2 type = complete dim = 1
#pragma HLS BIND_STORAGE variable = cut2 type = ram_1p impl = lutram
    static cut_t cut3[C::lrn_lanes][128];
#pragma HLS ARRAY_PARTITION variable = cut3 type = complete dim = 1
#pragma HLS BIND_STORAGE variable = cut3 type = ram_1p impl = lutram
    step_registers regs;
#pragma HLS ARRAY_PARTITION variable = regs.wq type = complete
#pragma HLS ARRAY_PARTITION variable = regs.aq type = complete
#pragma HLS ARRAY_PARTITION variable = regs.keys type = complete
#pragma HLS ARRAY_PARTITION variable = regs.cuts type = complete dim = 0
#pragma HLS ARRAY_PARTITION variable = regs.zero_pixel type = complete
    ap_uint<16> slots[C::P];
#pragma HLS ARRAY_PARTITION variable = slots type = complete

#ifndef __SYNTHESIS__
    if (csim().reset_pending) {
        // A fresh kernel for a test: what a reconfigured FPGA holds (BRAM contents zero).
        for (unsigned p = 0; p < C::P; p++) {
            for (unsigned r = 0; r < 4; r++) {
                for (unsigned i = 0; i < C::tile_depth; i++) tile[p][r][i] = 0;
            }
            for (unsigned b = 0; b < 2; b++) {
                for (unsigned i = 0; i < C::w_depth; i++) wcache[b][p][i] = 0;
            }
            for (unsigned i = 0; i < 2 * C::job_channels; i++) counts[p][i] = 0;
            for (unsigned k = 0; k < KCNN_K_MAX; k++) wvalue[p][k] = 0;
            for (unsigned l = 0; l < 8; l++) {
                for (unsigned a = 0; a < KCNN_J_MAX; a++) avalue[p][l][a] = 0;
            }
            for (unsigned b = 0; b < 4; b++) {
                for (unsigned i = 0; i < KCNN_K_MAX * KCNN_J_MAX; i++) products[p][b][i] = 0;
            }
            for (unsigned h = 0; h < 2; h++) {
                for (unsigned k = 0; k < 16; k++) tap_lo[p][h][k] = tap_hi[p][h][k] = 0;
            }
        }
        for (unsigned b = 0; b < 2; b++) {
            for (unsigned h = 0; h < 2; h++) {
                for (unsigned i = 0; i < C::job_channels / 2; i++) bias[b][h][i] = 0;
            }
        }
        for (unsigned i = 0; i < C::ch_max; i++) placement[i] = 0;
        for (unsigned b = 0; b < 16; b++) {
            for (unsigned i = 0; i < C::out_depth / 16; i++) out_memory[b][i] = 0;
        }
        for (unsigned i = 0; i < C::out_depth / 16; i++) shortcut[i] = 0;
        for (unsigned l = 0; l < C::lrn_lanes; l++) {
            for (unsigned s = 0; s < C::lrn_size_max; s++) {
                for (unsigned h = 0; h < 2; h++) {
                    for (unsigned i = 0; i < 8; i++) squares[l][s][h][i] = 0;
                }
            }
            for (unsigned i = 0; i < 16; i++) cut0[l][i] = 0;
            for (unsigned i = 0; i < 32; i++) cut1[l][i] = 0;
            for (unsigned i = 0; i < 64; i++) cut2[l][i] = 0;
            for (unsigned i = 0; i < 128; i++) cut3[l][i] = 0;
        }
        csim().reset_pending = false;
    }
#endif

    in_port pa = {0, false}, pb = {0, false};
    word_t head[KCNN_DESCRIPTOR_WORDS];
#pragma HLS ARRAY_PARTITION variable = head type = complete
    unsigned read = 0;
    KCNN_CSIM(unsigned long long trips = 0;)
DESCRIPTOR:
    for (unsigned i = 0; i < KCNN_DESCRIPTOR_WORDS; i++) {
#pragma HLS PIPELINE II = 1
        head[i] = 0;
        if (pa.done) continue;
        KCNN_CSIM(trips++;)
        bool last;
        head[i] = read_word<0>(in_a, pa, last);
        read++;
    }
    KCNN_CSIM(csim_log_loop(KCNN_LOOP_DESCRIPTOR, trips);)
    descriptor d;
    decode_descriptor(head, d);
    step_geometry g;
    // Stream B is drained on a refusal when the descriptor says it carries words (the jobs'
    // B share, or an F32 map's) and the descriptor is the host's (magic and version right): a
    // count read from anything else could wait for words the host never sent. After such a refusal the host resets the
    // DMAs, which drops whatever B still holds.
    g.uses_b = C::streams == 2 && (d.job_words_b != 0 || map_share_b<C>(d) != 0) &&
               d.magic == KCNN_MAGIC && d.version == KCNN_PROTOCOL;
    unsigned status = KCNN_STATUS_OK, job = KCNN_STEP_LEVEL;
    if (d.magic != KCNN_MAGIC) {
        status = KCNN_STATUS_BAD_MAGIC;
    } else if (d.version != KCNN_PROTOCOL) {
        status = KCNN_STATUS_BAD_VERSION;
    } else if (read < KCNN_DESCRIPTOR_WORDS) {
        status = KCNN_STATUS_EARLY_TLAST;
    } else if (d.opcode > KCNN_OP_ADD) {
        status = KCNN_STATUS_BAD_OPCODE;
    } else if (d.opcode == KCNN_OP_PROBE) {
        bool zero = d.flags == 0;
        for (unsigned i = 1; i < KCNN_DESCRIPTOR_WORDS; i++) zero = zero && head[i] == 0;
        status = !zero ? KCNN_STATUS_BAD_GEOMETRY : pa.done ? KCNN_STATUS_OK : KCNN_STATUS_MISSING_TLAST;
        if (status == KCNN_STATUS_OK) {
            word_t info[KCNN_INFO_WORDS];
            info_words<C>(info);
            for (unsigned i = 0; i < KCNN_INFO_WORDS; i++) write_word(out, info[i], false);
        }
    } else {
        status = check_descriptor<C>(d, g);
        // More words follow the descriptor in every step but the probe.
        if (status == KCNN_STATUS_OK && pa.done) status = KCNN_STATUS_EARLY_TLAST;
    }

    if (status == KCNN_STATUS_OK && d.opcode != KCNN_OP_PROBE) {
        if (d.opcode == KCNN_OP_POOL) {
            status = run_pool<C>(in_a, pa, out, d, g, tile, out_memory);
        } else {
            status = read_constants<C>(in_a, pa, d, g, regs, placement, slots, squares, cut0, cut1,
                                       cut2, cut3);
            // ADD, CONV and FC build the lanes' tables at this one call site: one instance of
            // TABLE (one multiplier, no multiplexer on the product BRAM18s' write ports).
            if (status == KCNN_STATUS_OK && d.opcode != KCNN_OP_LRN) {
                build_tables<C>(wvalue, avalue, products, tap_lo, tap_hi, regs, d);
            }
            if (status == KCNN_STATUS_OK && d.opcode == KCNN_OP_LRN) {
                status = run_lrn<C>(in_a, pa, out, d, g, tile, squares, cut0, cut1, cut2, cut3);
            } else if (status == KCNN_STATUS_OK && d.opcode == KCNN_OP_ADD) {
                status = read_map_words<C>(in_a, pa, d, g, tile);
                if (status == KCNN_STATUS_OK) status = run_add<C>(in_a, pa, out, d, g, tile, products, out_memory);
            } else if (status == KCNN_STATUS_OK) {
                if (d.opcode == KCNN_OP_FC) {
                    status = read_map_flat<C>(in_a, pa, d, g, tile);
                } else if (g.f32 || g.u8) {
                    status = read_map_raw<C>(in_a, pa, in_b, pb, d, g, regs, placement, tile);
                } else {
                    status = read_map_blocked<C>(in_a, pa, d, g, placement, tile);
                }
                if (status == KCNN_STATUS_OK && g.residual) {
                    status = read_shortcut<C>(in_a, pa, g, shortcut);
                }
                if (status == KCNN_STATUS_OK) {
                    status = run_jobs<C>(in_a, pa, in_b, pb, out, d, g, regs, slots, tile, wvalue,
                                         avalue, products, tap_lo, tap_hi, wcache, counts, bias,
                                         shortcut, out_memory, job);
                }
            }
        }
        // A buffered POOL or ADD (FLAT through the out memory) streams it here, at one call
        // site shared by both: the step's codes from row 0. (A conv step's jobs emit inside
        // run_jobs, the second and last EMIT instance.)
        if (status == KCNN_STATUS_OK && (d.opcode == KCNN_OP_POOL || d.opcode == KCNN_OP_ADD) && g.buffered) {
            const unsigned codes = g.out_codes;
            emit_buffered<C>(out, out_memory, 0, (codes + 15) / 16, KCNN_FMT_FLAT, codes, d.out_h, d.out_w,
                             g.out_by, g.out_bx);
        }
    }
    if (status != KCNN_STATUS_OK) {
        drain<C, 0>(in_a, pa);
        if (g.uses_b) drain<C, 1>(in_b, pb);
    } else if (d.opcode != KCNN_OP_PROBE) {
        job = 0;  // a step that ran names job 0 (the probe's answer is its descriptor's)
    }
    write_word(out, trailer_word(status, job), true);
    return status;
}

}  // namespace kcnn

#endif  // KCNN_STEP_H_
