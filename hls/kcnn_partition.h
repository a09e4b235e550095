// The compute half of a job: P partitions of 16 pixel lanes walk their weight entries in
// lock step (SYNC), one entry per partition per cycle; a vector (channel c, output block b)
// lasts L = max(FLOOR, max_p n_p) cycles. At a vector's last cycle the 16 x P lane
// accumulators move to the shadow registers, and the reducer then emits one lane per cycle
// (bias + a P-input adder tree, threshold bank or raw acc, output packer) while the next
// vector accumulates. hls/KERNEL_SPEC.md "The compute half of JOB".
#ifndef KCNN_PARTITION_H_
#define KCNN_PARTITION_H_

#include "kcnn_const.h"
#include "kcnn_loader.h"

namespace kcnn {

// The compute half's per-partition registers.
template <class C>
struct compute_lanes {
    typename mem<C>::wcount_t start[C::P];       // first entry of the current channel
    typename mem<C>::wcount_t count[C::P];       // entries of the current channel
    typename mem<C>::wcount_t next_count[C::P];  // entries of the next channel
    // Channel c + 2's entries: the counts BRAM read of the previous cycle (its output
    // register); the next cycle registers their max as ahead_max.
    typename mem<C>::wcount_t ahead[C::P];
    lane_acc_t acc[C::P][16];
    lane_acc_t shadow[C::P][16];
};

// The output position of a vector's block: (4 by, 4 bx) = (sub qy + ry, sub qx + rx), and
// the products the reducer's output places need, kept as running sums (no multiplier):
// yw = qy * out_w, yb = (qy div 4) * out_bx.
struct block_position {
    unsigned by, bx, qy, ry, qx, rx;
    unsigned yw, yb;
};

inline void block_start(block_position &b) {
#pragma HLS INLINE
    b.by = b.bx = b.qy = b.ry = b.qx = b.rx = 0;
    b.yw = b.yb = 0;
}

struct compute_state {
    bool running, reducing, fc, buffered;
    unsigned cur;  // the weight-cache buffer of this job
    job_header header;
    unsigned channel, t, length, floor_length;
    unsigned next_max, ahead_max;  // max over partitions of next_count, of ahead
    block_position block;
    unsigned row_base;  // block.by * in_bx (mod tile depth): the vector's tile row
    unsigned cw, cb;    // channel * out_plane, channel * out_blocks (running sums)
    // the vector in the shadow registers
    unsigned shadow_channel, lane;
    block_position shadow_block;
    unsigned shadow_cw, shadow_cb;
    word_t out_word;  // BLOCKED / FLAT / ACC word being packed
    // Conv: the place of the job's first output in the step's output, in the format's units
    // (codes; ACC: int32), the outputs of the jobs before. A buffered output's out-memory
    // place is this plus its place in the job (modulo the memory): the jobs' outputs follow
    // one another in the out memory, so a job whose outputs end mid-word leaves the partial
    // word there for the next job to complete. RESIDUAL: the shortcut has the output's
    // format, so the same sum is the output's code place in the shortcut section.
    unsigned out_base;
};

// k small: k * x for k in 0..4 from x and 3x (shifts and a multiplexer, no multiplier).
inline unsigned times_small(unsigned k, unsigned x, unsigned x3) {
#pragma HLS INLINE
    return k == 0 ? 0u : k == 1 ? x : k == 2 ? x << 1u : k == 3 ? x3 : x << 2u;
}

// 4 k = q sub + r with r < sub, advanced by 4: r + 4 = m sub + r' with m = #{n in 1..4 :
// r + 4 >= n sub} (r < sub, so m <= 4). The four compares are parallel (the multiples of sub
// are per-step constants): a block counter's loop-carried path is one compare level, not four
// chained compare-and-subtract stages. Returns m (q's increment).
inline unsigned advance_by_four(unsigned &q, unsigned &r, unsigned sub, unsigned sub3) {
#pragma HLS INLINE
    const unsigned r4 = r + 4;
    const unsigned m = (r4 >= sub ? 1u : 0u) + (r4 >= (sub << 1u) ? 1u : 0u) + (r4 >= sub3 ? 1u : 0u) +
                       (r4 >= (sub << 2u) ? 1u : 0u);
    r = r4 - times_small(m, sub, sub3);
    q += m;
    return m;
}

// Lane offset o (0..3) of a block starting at q sub + r: kept when r + o is a multiple of
// sub, at output index q + k with k = (r + o) / sub (at most 3).
inline bool kept_offset(unsigned r, unsigned o, unsigned sub, unsigned sub3, unsigned &k) {
#pragma HLS INLINE
    const unsigned ro = r + o;
    k = ro == 0 ? 0u : ro == sub ? 1u : ro == (sub << 1u) ? 2u : 3u;
    return ro == 0 || ro == sub || ro == (sub << 1u) || ro == sub3;
}

// Where an entry reads the tile of partition p: two words per bank (the two ports).
// conv: lane (dy, dx) reads input row y_top + dy, column x_left + dx, with
// y_top = 4 by + i dh - pad_t and x_left = 4 bx + j dw - pad_l. The 4 rows are 4
// consecutive rows, one in each bank; each bank reads block columns floor(x_left / 4) and
// + 1, and the 8 codes shift by x_left mod 4. fc: position q is nibble q mod 4 of bank
// (q / 4) mod 4 at q / 16: every bank reads q / 16 and the bank is chosen after the read.
struct tap {
    unsigned address[4][2];
    bool row_ok[4];
    int x0;             // conv: x_left
    unsigned x_phase;   // conv: x_left mod 4
    unsigned y_phase;   // conv: y_top mod 4 (bank r holds lane row (r - y_phase) mod 4)
    unsigned fc_bank, fc_nibble;
};

template <class C>
void locate(ap_uint<16> entry, const descriptor &d, const step_geometry &g, unsigned slot0,
            const compute_state &s, const tap_lo_t tap_lo[C::P][2][16],
            const tap_hi_t tap_hi[C::P][2][16], unsigned p, tap &t) {
#pragma HLS INLINE
    typedef typename mem<C>::tile_addr_t addr_t;
    typedef ap_int<mem<C>::tile_addr_bits + 1> offset_t;
    const unsigned position = (unsigned)(entry >> 4);
    if (s.fc) {
        for (unsigned r = 0; r < 4; r++) {
#pragma HLS UNROLL
            t.address[r][0] = t.address[r][1] = (position >> 4u) & (C::tile_depth - 1);
            t.row_ok[r] = true;
        }
        t.fc_bank = (position >> 2u) & 3u;
        t.fc_nibble = position & 3u;
        t.x0 = 0;
        t.x_phase = t.y_phase = 0;
        return;
    }
    const unsigned slot = slot0 + (position >> g.pos_shift);
    // Kernel row i and column j: a stored entry has i < kh <= 255 and j < kw <= 255 (the
    // loader checks it); an entry past the partition's count has code 0 and its tap is masked,
    // so 8 bits of each are exact. u = i dh - pad_t and v = j dw - pad_l come from the
    // partition's own 16-entry LUTRAMs (two reads and an adder each, no multiplier).
    const ap_uint<8> i = (position >> d.kwb) & ((1u << d.khb) - 1);
    const ap_uint<8> j = position & ((1u << d.kwb) - 1);
    const ap_int<18> u = ap_int<18>(tap_lo[p][0][i & 15]) + ap_int<18>(tap_hi[p][0][i >> 4]);
    const ap_int<18> v = ap_int<18>(tap_lo[p][1][j & 15]) + ap_int<18>(tap_hi[p][1][j >> 4]);
    // floor(u / 4) and floor(v / 4): arithmetic shifts.
    const int ub = (int)(u >> 2), vb = (int)(v >> 2);
    // Addresses wrap inside a bank: valid taps never wrap (the slot's plane fits the bank),
    // invalid ones are masked after the read.
    const addr_t base = addr_t(addr_t(slot) * addr_t(g.in_plane)) + addr_t(s.row_base) +
                        addr_t(offset_t(ub) * addr_t(g.in_bx)) + addr_t((int)s.block.bx + vb);
    t.y_phase = (unsigned)u.range(1, 0);
    t.x_phase = (unsigned)v.range(1, 0);
    for (unsigned r = 0; r < 4; r++) {
#pragma HLS UNROLL
        const int carry = r < t.y_phase ? 1 : 0;
        const int y = 4 * ((int)s.block.by + ub + carry) + (int)r;
        t.row_ok[r] = y >= 0 && y < (int)d.in_h;
        const addr_t address = base + addr_t(carry ? g.in_bx : 0u);
        t.address[r][0] = address;
        t.address[r][1] = addr_t(address + 1);
    }
    t.x0 = 4 * (int)s.block.bx + (int)v;
    t.fc_bank = t.fc_nibble = 0;
}

// The 16 lane codes of a conv entry (fc: lane 0 only) from the 8 words read.
template <class C>
void lane_codes(const tap &t, const ap_uint<16> words[4][2], const descriptor &d, bool fc,
                code_t codes[16]) {
#pragma HLS INLINE
    if (fc) {
        const ap_uint<16> w = words[t.fc_bank][0];
        codes[0] = code_t((w >> (4 * t.fc_nibble)) & 15);
        for (unsigned l = 1; l < 16; l++) codes[l] = 0;
        return;
    }
    for (unsigned dy = 0; dy < 4; dy++) {
#pragma HLS UNROLL
        const unsigned r = (t.y_phase + dy) & 3u;
        const ap_uint<32> row = (ap_uint<32>(words[r][1]) << 16) | ap_uint<32>(words[r][0]);
        for (unsigned dx = 0; dx < 4; dx++) {
#pragma HLS UNROLL
            const int x = t.x0 + (int)dx;
            const bool ok = t.row_ok[r] && x >= 0 && x < (int)d.in_w;
            codes[4 * dy + dx] = ok ? code_t((row >> (4 * (t.x_phase + dx))) & 15) : code_t(0);
        }
    }
}

// max(floor_length, max_p n[p]) as a balanced tree (log2 P compare levels), not as a chain
// of P compare-and-select stages (HLS balances adder chains, not compare chains).
template <class C>
unsigned longest(const typename mem<C>::wcount_t n[C::P], unsigned floor_length) {
#pragma HLS INLINE
    typename mem<C>::wcount_t level[C::P];
#pragma HLS ARRAY_PARTITION variable = level type = complete
    for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
        level[p] = n[p];
    }
    for (unsigned k = 0; k < log2_of<C::P>::value; k++) {
#pragma HLS UNROLL
        for (unsigned p = 0; p < C::P / 2; p++) {
#pragma HLS UNROLL
            if (p < (C::P >> (k + 1))) {
                level[p] = level[2 * p] > level[2 * p + 1] ? level[2 * p] : level[2 * p + 1];
            }
        }
    }
    return (unsigned)level[0] > floor_length ? (unsigned)level[0] : floor_length;
}

// Job start: the first two channels' counts come from two reads before the JOB loop; from
// then on the loop reads channel c + 2 every cycle (registered, then its max registered:
// two cycles, which a vector of FLOOR >= 3 cycles always leaves before the next advance).
template <class C>
void compute_begin(compute_state &s, compute_lanes<C> &lanes, unsigned cur, const job_header &h,
                   const descriptor &d, const step_geometry &g,
                   const typename mem<C>::wcount_t counts[C::P][2 * C::job_channels],
                   unsigned codes_before) {
    s.fc = d.opcode == KCNN_OP_FC;
    s.out_base = d.out_format == KCNN_FMT_ACC ? codes_before >> 3u : codes_before;
    s.buffered = g.buffered;
    s.cur = cur;
    s.header = h;
    s.channel = 0;
    s.t = 0;
    s.floor_length = s.fc ? C::fc_floor : C::conv_floor;
    block_start(s.block);
    s.row_base = 0;
    s.cw = s.cb = 0;
    s.reducing = false;
    s.lane = 0;
    // An fc step's outputs pack on across its jobs (a job need not fill whole words): the
    // word in progress survives until the step's first job starts the next step's.
    if (!s.fc || h.ch0 == 0) s.out_word = 0;
    for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
        lanes.start[p] = 0;
        lanes.count[p] = counts[p][cur * C::job_channels];
        lanes.next_count[p] =
            h.channels > 1 ? counts[p][cur * C::job_channels + 1] : typename mem<C>::wcount_t(0);
        for (unsigned l = 0; l < 16; l++) {
#pragma HLS UNROLL
            lanes.acc[p][l] = 0;
        }
    }
    s.length = longest<C>(lanes.count, s.floor_length);
    s.next_max = longest<C>(lanes.next_count, 0);
    s.running = true;
}

inline bool compute_busy(const compute_state &s) {
#pragma HLS INLINE
    return s.running || s.reducing;
}

// The reducer: window cycle s.lane (0 .. FLOOR - 1) of the vector in the shadow registers.
// A conv vector emits lane s.lane; an fc vector emits its one output in cycle 0. One write
// site for the output stream and one per out-memory bank: the formats only choose the data,
// address and enables (no two accesses of one port in exclusive branches). One read of the
// shortcut memory (RESIDUAL: the output's shortcut code), whose address comes from the same
// running sums as the output's place.
template <class C>
void reduce_cycle(compute_state &s, compute_lanes<C> &lanes, const descriptor &d,
                  const step_geometry &g, const step_registers &regs,
                  const acc_t bias[2][2][C::job_channels / 2],
                  const ap_uint<64> shortcut[C::out_depth / 16],
                  code_t out_memory[16][C::out_depth / 16], axis_t &out) {
#pragma HLS INLINE
    if (!s.reducing) return;
    const unsigned lane = s.lane, c = s.shadow_channel;
    s.lane = lane + 1;
    if (lane + 1 == s.floor_length) s.reducing = false;
    if (s.fc && lane != 0) return;
    // The output's position (conv): lane (dy, dx) of the vector's stride-1 block, kept when
    // it falls on the subsampled grid inside the map, at output (y, x).
    const unsigned dy = lane >> 2u, dx = lane & 3u;
    const block_position &b = s.shadow_block;
    unsigned ky, kx;
    const bool kept_y = kept_offset(b.ry, dy, d.sub, g.sub3, ky);
    const bool kept_x = kept_offset(b.rx, dx, d.sub, g.sub3, kx);
    const unsigned y = b.qy + ky, x = b.qx + kx;
    const bool kept = kept_y && kept_x && y < d.out_h && x < d.out_w;
    // The output's place in the job's part of the out memory, from running sums:
    // FLAT / ACC: c out_plane + y out_w + x; BLOCKED: 16 (c out_by out_bx + (y div 4) out_bx
    // + x div 4) + 4 (y mod 4) + x mod 4 (the code's place in the BLOCKED words).
    const unsigned flat = s.shadow_cw + b.yw + times_small(ky, d.out_w, g.out_w3) + x;
    const unsigned block_row = b.yb + (((b.qy & 3u) + ky) >= 4 ? g.out_bx : 0u);
    const unsigned blocked = ((s.shadow_cb + block_row + (x >> 2u)) << 4u) + ((y & 3u) << 2u) + (x & 3u);
    const unsigned place = d.out_format == KCNN_FMT_BLOCKED ? blocked : flat;
    // The output's place in the step (one adder: a per-job register plus the running sums):
    // its out-memory place (modulo the memory) and, with RESIDUAL (never ACC), its code's
    // place in the shortcut section.
    const unsigned step_place = s.out_base + place;
    // Packed by the output's index in the step, not in the job (fc).
    const unsigned n = s.header.ch0 + c;
    // RESIDUAL: the shortcut map has the output's shape and format, so the output's code
    // place in the step (fc: n; conv: step_place) is its shortcut code's nibble in the
    // shortcut memory.
    const unsigned sc_place = s.fc ? n : step_place;
    const ap_uint<64> sc_word = shortcut[(sc_place >> 4u) & (C::out_depth / 16 - 1)];
    const code_t sc_code = nibble(sc_word, sc_place & 15u);
    // A P-input adder tree over the partitions' partial sums of this lane, plus the bias
    // and R[shortcut code] (0 without RESIDUAL).
    acc_t sum = bias[s.cur][c & 1u][(c >> 1u) & (C::job_channels / 2 - 1)];
    sum += g.residual ? acc_entry(regs.resid, sc_code) : acc_t(0);
    for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
        sum += lanes.shadow[p][lane & 15u];
    }
    // The interval index, then its code (OUT_TABLE; the identity table without it).
    const code_t code = table_code(regs.out_table, threshold_bank(sum, regs.thresholds, d.jo1));
    const bool acc_format = d.out_format == KCNN_FMT_ACC;
    bool emit = false;
    word_t packed = s.out_word;
    if (s.fc) {
        const bool last_output = n + 1 == d.out_c;
        if (acc_format) {
            packed = put_half(packed, (n & 1u) != 0, ap_uint<32>(sum.range(31, 0)));
            emit = (n & 1u) == 1 || last_output;
        } else {
            packed = put_nibble(packed, n & 15u, code);
            emit = (n & 15u) == 15 || last_output;
        }
    } else {
        if (!s.buffered) {
            // BLOCKED, stride 1: the vector's 16 lanes are one output word.
            packed = put_nibble(packed, lane, kept ? code : code_t(0));
            emit = lane == 15;
        } else {
            // ACC: int32 n of the step fills banks 8 (n mod 2) .. + 7 of row n / 2; a code:
            // bank n mod 16 of row n / 16 (rows modulo the memory: output word w of the step
            // is row w mod OUT_DEPTH / 16, so a partial word is completed in its own row).
            const unsigned row = (acc_format ? step_place >> 1u : step_place >> 4u) & (C::out_depth / 16 - 1);
            const ap_uint<32> bits = sum.range(31, 0);
            for (unsigned bank = 0; bank < 16; bank++) {
#pragma HLS UNROLL
                const bool here = acc_format ? (bank >> 3u) == (step_place & 1u) : (step_place & 15u) == bank;
                const code_t value = acc_format ? code_t(bits.range(4 * (bank & 7u) + 3, 4 * (bank & 7u))) : code;
                if (kept && here) out_memory[bank][row] = value;
            }
        }
    }
    s.out_word = emit ? word_t(0) : packed;
    if (emit) write_word(out, packed, false);
}

// One cycle of the partition array.
template <class C>
void compute_cycle(compute_state &s, compute_lanes<C> &lanes, const descriptor &d,
                   const step_geometry &g, const step_registers &regs,
                   const typename mem<C>::tile_word_t tile[C::P][4][C::tile_depth],
                   const entry_t wvalue[C::P][KCNN_K_MAX],
                   const entry_t avalue[C::P][8][KCNN_J_MAX],
                   const prod_t products[C::P][4][KCNN_K_MAX * KCNN_J_MAX],
                   const tap_lo_t tap_lo[C::P][2][16], const tap_hi_t tap_hi[C::P][2][16],
                   const typename mem<C>::wentry_t wcache[2][C::P][C::w_depth],
                   const typename mem<C>::wcount_t counts[C::P][2 * C::job_channels],
                   const acc_t bias[2][2][C::job_channels / 2],
                   const ap_uint<64> shortcut[C::out_depth / 16],
                   code_t out_memory[16][C::out_depth / 16], axis_t &out) {
#pragma HLS INLINE
    typedef typename mem<C>::wcount_t wcount_t;
    // The reducer reads the shadow registers before this cycle's vector end may refill them.
    reduce_cycle<C>(s, lanes, d, g, regs, bias, shortcut, out_memory, out);
    if (!s.running) return;

    const bool vector_end = s.t + 1 == s.length;
    // The block counters compare for equality with per-step last values (no add before the
    // compare); the advance below only selects among values formed from the registers.
    const bool bx_end = s.block.bx == g.o_bx_last, by_end = s.block.by == g.o_by_last;
    const bool channel_end = vector_end && (s.fc || (bx_end && by_end));
    const unsigned ahead_address = s.cur * C::job_channels + ((s.channel + 2) & (C::job_channels - 1));
    // What the registers hold at this cycle's start: the previous cycle's read and the max of
    // the one before (they name channel c + 2 whenever the last advance is 3 or more cycles
    // back, which FLOOR guarantees at every advance).
    const unsigned ahead_max = s.ahead_max;
    wcount_t ahead[C::P];
#pragma HLS ARRAY_PARTITION variable = ahead type = complete
    s.ahead_max = longest<C>(lanes.ahead, 0);
    for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
        ahead[p] = lanes.ahead[p];
        // The read address comes from the channel counter only: no chain through the data.
        lanes.ahead[p] = counts[p][ahead_address];
        const bool active = s.t < (unsigned)lanes.count[p];
        const ap_uint<16> entry =
            wcache[s.cur][p][((unsigned)lanes.start[p] + s.t) & (C::w_depth - 1)];
        const code_t weight = active ? code_t(entry.range(3, 0)) : code_t(0);
        const entry_t weight_value = wvalue[p][weight];
        // The tile: two reads per bank, the same for conv and fc.
        tap where;
        locate<C>(entry, d, g, s.header.slot0, s, tap_lo, tap_hi, p, where);
        ap_uint<16> words[4][2];
        for (unsigned r = 0; r < 4; r++) {
#pragma HLS UNROLL
            for (unsigned e = 0; e < 2; e++) {
#pragma HLS UNROLL
                words[r][e] = tile[p][r][where.address[r][e] & (C::tile_depth - 1)];
            }
        }
        code_t codes[16];
        lane_codes<C>(where, words, d, s.fc, codes);
        // Lanes 0..7 multiply and accumulate in a DSP48 each (no product table); lanes 8..15
        // read their product from a BRAM18 port and add in fabric. Neither kind takes a 16:1
        // multiplexer of 16-bit products (64 LUT a lane): the LUT budget.
        for (unsigned l = 0; l < 8; l++) {
#pragma HLS UNROLL
            // One fanout-free multiply-add at the product's own 18 bits and no BIND_OP: Vitis
            // packs a mul -> add within DSP widths into one DSP48 (A * B + C, the accumulator on
            // C), but a truncation between the two, or a BIND_OP on either, can keep them apart
            // (UG1399 "DSP Multi-Operation Matching"): a multiplier DSP and an adder DSP a lane,
            // 128 more at P = 16 than the device's 220 have room for. No truncation is needed:
            // |Wq * Aq| <= 128 * 255 < 2^15, the product-table entries' range.
            const lane_acc_t sum_dsp = lanes.acc[p][l] + weight_value * avalue[p][l][codes[l]];
            lanes.shadow[p][l] = vector_end ? sum_dsp : lanes.shadow[p][l];
            lanes.acc[p][l] = vector_end ? lane_acc_t(0) : sum_dsp;
        }
        for (unsigned l = 8; l < 16; l++) {
#pragma HLS UNROLL
            const unsigned address = ((unsigned)weight << 4u) | (unsigned)codes[l];
            const lane_acc_t sum_fabric = lanes.acc[p][l] + products[p][(l - 8) >> 1u][address];
#pragma HLS BIND_OP variable = sum_fabric op = add impl = fabric
            lanes.shadow[p][l] = vector_end ? sum_fabric : lanes.shadow[p][l];
            lanes.acc[p][l] = vector_end ? lane_acc_t(0) : sum_fabric;
        }
    }
    if (vector_end) {
        s.shadow_channel = s.channel;
        s.shadow_block = s.block;
        s.shadow_cw = s.cw;
        s.shadow_cb = s.cb;
        s.lane = 0;
        s.reducing = true;
    }

    if (!vector_end) {
        s.t++;
    } else if (!channel_end) {
        s.t = 0;
        if (!bx_end) {
            s.block.bx++;
            advance_by_four(s.block.qx, s.block.rx, d.sub, g.sub3);
        } else {
            s.block.bx = 0;
            s.block.qx = s.block.rx = 0;
            s.block.by++;
            const unsigned qy_low = s.block.qy & 3u;
            const unsigned m = advance_by_four(s.block.qy, s.block.ry, d.sub, g.sub3);
            s.block.yw += times_small(m, d.out_w, g.out_w3);
            if (qy_low + m >= 4) s.block.yb += g.out_bx;  // qy div 4 grew by one (m <= 4)
            s.row_base += g.in_bx;
        }
    } else if (s.channel + 1 == s.header.channels) {
        s.running = false;
    } else {
        s.t = 0;
        s.channel++;
        block_start(s.block);
        s.row_base = 0;
        s.cw += g.out_plane;
        s.cb += g.out_blocks;
        for (unsigned p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            lanes.start[p] = lanes.start[p] + lanes.count[p];
            lanes.count[p] = lanes.next_count[p];
            lanes.next_count[p] = ahead[p];
        }
        s.length = s.next_max > s.floor_length ? s.next_max : s.floor_length;
        s.next_max = ahead_max;
    }
}

// A buffered job's output words from the out memory, one word per cycle, rows `first`,
// `first + 1`, ... (modulo the memory): FLAT its codes in C order, ACC its int32 values in C
// order, 2 per word (both after the `lead` codes of the partial word the jobs before left in
// row `first`; `end` = lead + the job's codes, in code places), BLOCKED with sub > 1 its
// output blocks. Places past `end` (the last job's tail) and outside the output map are 0
// (the memory still holds whatever an earlier job or step left there).
template <class C>
void emit_buffered(axis_t &out, const code_t out_memory[16][C::out_depth / 16], unsigned first,
                   unsigned words, unsigned format, unsigned end, unsigned out_h, unsigned out_w,
                   unsigned out_by, unsigned out_bx) {
    unsigned by = 0, bx = 0;
    KCNN_CSIM(unsigned long long trips = 0;)
EMIT:
    for (unsigned w = 0; w < words; w++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 1024 avg = 100
        KCNN_CSIM(trips++;)
        word_t data = 0;
        const unsigned row = (first + w) & (C::out_depth / 16 - 1);
        for (unsigned b = 0; b < 16; b++) {
#pragma HLS UNROLL
            const code_t code = out_memory[b][row];
            const bool inside = format == KCNN_FMT_BLOCKED
                                    ? 4 * by + (b >> 2u) < out_h && 4u * bx + (b & 3u) < out_w
                                    : 16 * w + b < end;
            data.range(4 * b + 3, 4 * b) = inside ? code : code_t(0);
        }
        write_word(out, data, false);
        if (++bx == out_bx) {
            bx = 0;
            if (++by == out_by) by = 0;
        }
    }
    KCNN_CSIM(csim_log_loop(KCNN_LOOP_EMIT, trips);)
}

}  // namespace kcnn

#endif  // KCNN_PARTITION_H_
