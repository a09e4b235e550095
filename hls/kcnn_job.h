// The jobs of a conv / fc step: LOAD (job 0 into buffer 0), then for each job k one loop
// JOB_k that computes job k from buffer k % 2 while the loader fills buffer (k + 1) % 2 with
// job k + 1, then EMIT after each job whose output is buffered. LOAD and JOB are the same
// loop (one call site, so one piece of hardware): LOAD is the iteration with nothing to
// compute.
#ifndef KCNN_JOB_H_
#define KCNN_JOB_H_

#include "kcnn_loader.h"
#include "kcnn_partition.h"

namespace kcnn {

// Runs the jobs after the map; returns the status and, for a refused job, its index.
template <class C>
unsigned run_jobs(axis_t &in_a, in_port &pa, axis_t &in_b, in_port &pb, axis_t &out,
                  const descriptor &d, const step_geometry &g, const step_registers &regs,
                  const ap_uint<16> slots[C::P],
                  const typename mem<C>::tile_word_t tile[C::P][4][C::tile_depth],
                  const entry_t wvalue[C::P][KCNN_K_MAX],
                  const entry_t avalue[C::P][8][KCNN_J_MAX],
                  const prod_t products[C::P][4][KCNN_K_MAX * KCNN_J_MAX],
                  const tap_lo_t tap_lo[C::P][2][16], const tap_hi_t tap_hi[C::P][2][16],
                  typename mem<C>::wentry_t wcache[2][C::P][C::w_depth],
                  typename mem<C>::wcount_t counts[C::P][2 * C::job_channels],
                  acc_t bias[2][2][C::job_channels / 2],
                  const ap_uint<64> shortcut[C::out_depth / 16],
                  code_t out_memory[16][C::out_depth / 16], unsigned &bad_job) {
    loader_state ls;
    loader_lanes<C> ll;
#pragma HLS ARRAY_PARTITION variable = ll.write_ptr type = complete
#pragma HLS ARRAY_PARTITION variable = ll.channel_start type = complete
#pragma HLS ARRAY_PARTITION variable = ll.channel type = complete
#pragma HLS ARRAY_PARTITION variable = ll.position type = complete
#pragma HLS ARRAY_PARTITION variable = ls.step_words type = complete
    compute_state cs;
    compute_lanes<C> cl;
#pragma HLS ARRAY_PARTITION variable = cl.start type = complete
#pragma HLS ARRAY_PARTITION variable = cl.count type = complete
#pragma HLS ARRAY_PARTITION variable = cl.next_count type = complete
#pragma HLS ARRAY_PARTITION variable = cl.ahead type = complete
#pragma HLS ARRAY_PARTITION variable = cl.acc type = complete dim = 0
#pragma HLS ARRAY_PARTITION variable = cl.shadow type = complete dim = 0
    loader_start_step(ls, d, g);
    cs.running = cs.reducing = false;
    job_header loaded = {0, 0, 0, 0};
    unsigned status = KCNN_STATUS_OK;
    // The codes of the jobs before in the output's format: where a job's outputs start in
    // the step's output (its out-memory place, its shortcut codes with RESIDUAL).
    unsigned sc_base = 0;
    bad_job = KCNN_STEP_LEVEL;
JOBS:
    for (int k = -1; k < (int)d.n_jobs; k++) {
#pragma HLS LOOP_TRIPCOUNT min = 2 max = 1025 avg = 8
        if (k >= 0) compute_begin<C>(cs, cl, (unsigned)k & 1u, loaded, d, g, counts, sc_base);
        if (k + 1 < (int)d.n_jobs) loader_begin(ls, k + 1);
        const unsigned nxt = (unsigned)(k + 1) & 1u;
        KCNN_CSIM(unsigned long long trips = 0;)
    JOB:
        while (compute_busy(cs) || loader_busy(ls)) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 17 max = 100000 avg = 5000
// The compute half reads only buffer k % 2 of these memories and the loader writes only
// buffer (k + 1) % 2; they swap between JOB loops, never inside one.
#pragma HLS DEPENDENCE variable = wcache type = inter dependent = false
#pragma HLS DEPENDENCE variable = wcache type = intra dependent = false
#pragma HLS DEPENDENCE variable = counts type = inter dependent = false
#pragma HLS DEPENDENCE variable = counts type = intra dependent = false
#pragma HLS DEPENDENCE variable = bias type = inter dependent = false
#pragma HLS DEPENDENCE variable = bias type = intra dependent = false
            KCNN_CSIM(trips++;)
            compute_cycle<C>(cs, cl, d, g, regs, tile, wvalue, avalue, products, tap_lo, tap_hi,
                             wcache, counts, bias, shortcut, out_memory, out);
            loader_cycle<C>(ls, ll, in_a, pa, in_b, pb, d, g, slots, nxt, wcache, counts, bias);
        }
        KCNN_CSIM(csim_log_loop(k < 0 ? KCNN_LOOP_LOAD : KCNN_LOOP_JOB, trips);)
        loader_settle(ls);
        if (k >= 0 && g.buffered) {
            // The job's codes in the out memory (the header check formed them): FLAT one per
            // output, ACC 8 per int32, subsampled BLOCKED 16 per block; 16 codes a word. They
            // follow the `lead` codes of the partial word the jobs before left in row
            // sc_base / 16 (FLAT, ACC; BLOCKED jobs are whole words, lead 0): the job answers
            // the words its outputs complete, the last job the partial tail too.
            const unsigned lead = sc_base & 15u, end = lead + cs.header.codes;
            const bool last = k + 1 == (int)d.n_jobs;
            emit_buffered<C>(out, out_memory, sc_base >> 4u, last ? (end + 15) >> 4u : end >> 4u,
                             d.out_format, end, d.out_h, d.out_w, g.out_by, g.out_bx);
        }
        if (k >= 0) sc_base += cs.header.codes;
        if (ls.status != KCNN_STATUS_OK) {
            status = ls.status;
            bad_job = (unsigned)(k + 1);
            break;
        }
        loaded = ls.header;
    }
    return status;
}

}  // namespace kcnn

#endif  // KCNN_JOB_H_
