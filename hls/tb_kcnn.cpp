// Self-checking testbench of the protocol-5 kernel. Every step is built here word by word
// from docs/job-format.md (its own packers, nothing shared with the kernel), the expected
// answer comes from plain loops over the outputs, and the expected loop log from the trip
// formulas of hls/KERNEL_SPEC.md. One line per case; exit code 0 only if all cases pass.
// Runs under any build (-DKCNN_P=8 -DKCNN_STREAMS=1 ...): the cases adapt to the build.
//
// Usage: tb_kcnn [vector files...]. A vector file (e.g. golden steps from the Python
// packer) holds steps in this text form, checked after the built-in cases:
//   # comment
//   step <name>
//   a <16 hex digits> <tlast 0|1>      one word of stream A (in order)
//   b <16 hex digits> <tlast 0|1>      one word of stream B
//   out <16 hex digits> <tlast 0|1>    the expected answer (trailer included; TLAST on it)
//   status <n>                         the expected status register
//   log <LOOP> <trips>                 optional: the expected loop log, in order
//   end
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "kcnn_top.h"

namespace {

typedef uint64_t u64;
typedef std::vector<u64> words_t;
typedef std::vector<long long> log_t;

typedef kcnn::build_config build;
const unsigned P = build::P;
const unsigned STREAMS = build::streams;
const unsigned LANES = build::lrn_lanes;

// Positions of an fc input a partition holds: the position limit, or the tile's 16 codes a
// word row of its banks (kcnn_descriptor.h) on a build with a smaller tile.
unsigned fc_window() { return std::min(4096u, 16u * build::tile_depth); }
const unsigned CONV_FLOOR = 16, FC_FLOOR = 3;

enum { BLOCKED = 0, FLAT = 1, ACC = 2, F32 = 3, U8 = 4 };
enum { OP_PROBE = 0, OP_CONV = 1, OP_FC = 2, OP_POOL = 3, OP_LRN = 4, OP_ADD = 5 };
const unsigned FLAG_ACT_SIGNED = 1, FLAG_OUT_TABLE = 2, FLAG_RESIDUAL = 4;
enum { L_DESCRIPTOR, L_CONST, L_TABLE, L_MAP, L_LOAD, L_JOB, L_EMIT, L_PLANE, L_POOL, L_LRN, L_SHORTCUT, L_ADD, L_QUOTIENTS };
const char *LOOP_NAMES[] = {"DESCRIPTOR", "CONST", "TABLE", "MAP", "LOAD",     "JOB",
                            "EMIT",       "PLANE", "POOL",  "LRN", "SHORTCUT", "ADD", "QUOTIENTS"};
const int LOOP_IDS = (int)(sizeof LOOP_NAMES / sizeof LOOP_NAMES[0]);
static_assert(sizeof LOOP_NAMES / sizeof LOOP_NAMES[0] == KCNN_LOOP_COUNT, "one name per loop id");

long long cdiv(long long a, long long b) { return (a + b - 1) / b; }
int gcd(int a, int b) { return b == 0 ? a : gcd(b, a % b); }
int log2_ceil(int n) {
    int b = 0;
    while ((1u << (unsigned)b) < (unsigned)n) b++;
    return b;
}

// xorshift64*: deterministic cases on every machine.
struct random_source {
    u64 s;
    explicit random_source(u64 seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    u64 next() {
        s ^= s >> 12u;
        s ^= s << 25u;
        s ^= s >> 27u;
        return s * 0x2545F4914F6CDD1Dull;
    }
    int range(int lo, int hi) { return lo + (int)(next() % (u64)(hi - lo + 1)); }  // inclusive
    bool chance(double p) { return (next() >> 11u) * (1.0 / 9007199254740992.0) < p; }
};

// ---- words -----------------------------------------------------------------------------

void put(u64 &w, unsigned low, unsigned width, u64 value) {
    const u64 mask = width == 64 ? ~0ull : ((1ull << width) - 1);
    w |= (value & mask) << low;
}

struct fields {
    unsigned magic = KCNN_MAGIC, version = KCNN_PROTOCOL, opcode = 0, flags = 0;
    unsigned step_index = 0, n_jobs = 0, k1 = 0, j1 = 0, jo1 = 0;
    unsigned in_c = 0, in_h = 1, in_w = 1, out_c = 0, out_h = 1, out_w = 1;
    unsigned kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, pad_t = 0, pad_l = 0, khb = 0, kwb = 0;
    unsigned in_format = 0, out_format = 0, s2d = 1, sub = 1;
    u64 const_words = 0, map_words = 0, job_words_a = 0, job_words_b = 0, out_words = 0;
    unsigned groups = 1, reserved = 0;
};

words_t descriptor_words(const fields &f) {
    words_t w(8, 0);
    put(w[0], 0, 32, f.magic);
    put(w[0], 32, 16, f.version);
    put(w[0], 48, 8, f.opcode);
    put(w[0], 56, 8, f.flags);
    put(w[1], 0, 16, f.step_index);
    put(w[1], 16, 16, f.n_jobs);
    put(w[1], 32, 8, f.k1);
    put(w[1], 40, 8, f.j1);
    put(w[1], 48, 8, f.jo1);
    put(w[2], 0, 16, f.in_c);
    put(w[2], 16, 16, f.in_h);
    put(w[2], 32, 16, f.in_w);
    put(w[2], 48, 16, f.out_c);
    put(w[3], 0, 16, f.out_h);
    put(w[3], 16, 16, f.out_w);
    put(w[3], 32, 8, f.kh);
    put(w[3], 40, 8, f.kw);
    put(w[3], 48, 8, f.sh);
    put(w[3], 56, 8, f.sw);
    put(w[4], 0, 8, f.dh);
    put(w[4], 8, 8, f.dw);
    put(w[4], 16, 8, f.pad_t);
    put(w[4], 24, 8, f.pad_l);
    put(w[4], 32, 4, f.khb);
    put(w[4], 36, 4, f.kwb);
    put(w[4], 40, 4, f.in_format);
    put(w[4], 44, 4, f.out_format);
    put(w[4], 48, 8, f.s2d);
    put(w[4], 56, 8, f.sub);
    put(w[5], 0, 32, f.const_words);
    put(w[5], 32, 32, f.map_words);
    put(w[6], 0, 32, f.job_words_a);
    put(w[6], 32, 32, f.job_words_b);
    put(w[7], 0, 32, f.out_words);
    put(w[7], 32, 16, f.groups);
    put(w[7], 48, 16, f.reserved);
    return w;
}

words_t bytes_to_words(const std::vector<uint8_t> &bytes) {
    words_t w((bytes.size() + 7) / 8, 0);
    for (size_t i = 0; i < bytes.size(); i++) w[i / 8] |= (u64)bytes[i] << (8 * (i % 8));
    return w;
}

words_t int32_words(const std::vector<long long> &values) {
    words_t w((values.size() + 1) / 2, 0);
    for (size_t i = 0; i < values.size(); i++) w[i / 2] |= ((u64)(uint32_t)(int32_t)values[i]) << (32 * (i % 2));
    return w;
}

words_t code_words(const std::vector<int> &codes) {
    words_t w((codes.size() + 15) / 16, 0);
    for (size_t i = 0; i < codes.size(); i++) w[i / 16] |= ((u64)(unsigned)codes[i] & 15u) << (4 * (i % 16));
    return w;
}

void append(words_t &to, const words_t &from) { to.insert(to.end(), from.begin(), from.end()); }

// A (C, H, W) map of codes (or accumulators).
struct map3 {
    int c = 0, h = 0, w = 0;
    std::vector<long long> v;
    map3() {}
    map3(int c_, int h_, int w_) : c(c_), h(h_), w(w_), v((size_t)c_ * h_ * w_, 0) {}
    long long &at(int ch, int y, int x) { return v[((size_t)ch * h + y) * w + x]; }
    long long get(int ch, int y, int x) const {
        if (y < 0 || y >= h || x < 0 || x >= w) return 0;
        return v[((size_t)ch * h + y) * w + x];
    }
};

words_t blocked_words(const map3 &m) {
    words_t out;
    for (int ch = 0; ch < m.c; ch++) {
        for (int by = 0; by < (m.h + 3) / 4; by++) {
            for (int bx = 0; bx < (m.w + 3) / 4; bx++) {
                u64 word = 0;
                for (int n = 0; n < 16; n++) word |= ((u64)m.get(ch, 4 * by + n / 4, 4 * bx + n % 4) & 15u) << (4u * (unsigned)n);
                out.push_back(word);
            }
        }
    }
    return out;
}

words_t map_answer(const map3 &m, int format) {
    if (format == BLOCKED) return blocked_words(m);
    if (format == ACC) return int32_words(m.v);
    std::vector<int> codes(m.v.begin(), m.v.end());
    return code_words(codes);
}

u64 format_words(int format, u64 c, u64 h, u64 w) {
    if (format == BLOCKED) return c * cdiv(h, 4) * cdiv(w, 4);
    if (format == FLAT) return cdiv(c * h * w, 16);
    return cdiv(c * h * w, 2);
}

u64 trailer(unsigned status, unsigned job) {
    return 0x444E454Bull | ((u64)status << 32u) | ((u64)job << 48u);
}

// ---- one step and its expected answer ----------------------------------------------------

struct step_io {
    words_t a, b;
    std::vector<uint8_t> a_last, b_last;
    words_t expect;  // the answer, trailer included
    unsigned status = 0;
    log_t log;       // expected loop log (pairs); checked when check_log
    bool check_log = true;
    long long consumed_a = -1, consumed_b = -1;  // -1: every word present
    std::string note;
};

void close_transfers(step_io &s) {
    s.a_last.assign(s.a.size(), 0);
    s.b_last.assign(s.b.size(), 0);
    if (!s.a.empty()) s.a_last.back() = 1;
    if (!s.b.empty()) s.b_last.back() = 1;
}

void expect_loop(step_io &s, int id, long long trips) {
    if (trips <= 0) return;  // a loop with no iteration is not entered
    s.log.push_back(id);
    s.log.push_back(trips);
}

struct run_result {
    words_t out;
    long long r[14];
    log_t log;
};

run_result run(const step_io &s) {
    run_result res;
    const long long cap = 1u << 18u;
    res.out.assign(cap, 0);
    std::vector<long long> log(2 * 65536, 0);
    const u64 *b = s.b.empty() ? nullptr : s.b.data();
    const uint8_t *bl = s.b_last.empty() ? nullptr : s.b_last.data();
    static const u64 none = 0;
    static const uint8_t none_last = 0;
    kcnn_csim_step(s.a.data(), s.a_last.data(), (int64_t)s.a.size(), b ? b : &none, bl ? bl : &none_last,
                   (int64_t)s.b.size(), (uint64_t *)res.out.data(), cap, (int64_t *)res.r,
                   (int64_t *)log.data(), 65536);
    res.out.resize(res.r[4] < cap ? res.r[4] : cap);
    res.log.assign(log.begin(), log.begin() + 2 * (res.r[13] < 65536 ? res.r[13] : 65536));
    return res;
}

std::string log_text(const log_t &log, size_t from, size_t count) {
    std::string t;
    for (size_t i = from; i < log.size() / 2 && i < from + count; i++) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%s%s=%lld", t.empty() ? "" : " ",
                      log[2 * i] >= 0 && log[2 * i] < LOOP_IDS ? LOOP_NAMES[log[2 * i]] : "?", log[2 * i + 1]);
        t += buf;
    }
    return t;
}

int failures = 0, cases = 0;

bool check(const std::string &name, const step_io &s) {
    cases++;
    const run_result r = run(s);
    std::string why;
    char buf[256];
    const long long want_a = s.consumed_a < 0 ? (long long)s.a.size() : s.consumed_a;
    const long long want_b = s.consumed_b < 0 ? (long long)s.b.size() : s.consumed_b;
    if (r.r[7] != (long long)s.status) {
        std::snprintf(buf, sizeof buf, " status %lld (want %u)", r.r[7], s.status);
        why += buf;
    }
    if (r.r[0] != want_a || r.r[2] != want_a || r.r[1] != want_b || r.r[3] != want_b) {
        std::snprintf(buf, sizeof buf, " A consumed/read %lld/%lld of %zu (want %lld), B %lld/%lld of %zu (want %lld)",
                      r.r[0], r.r[2], s.a.size(), want_a, r.r[1], r.r[3], s.b.size(), want_b);
        why += buf;
    }
    if (r.out.size() != s.expect.size()) {
        std::snprintf(buf, sizeof buf, " %zu output words (want %zu)", r.out.size(), s.expect.size());
        why += buf;
    }
    for (size_t i = 0; i < r.out.size() && i < s.expect.size(); i++) {
        if (r.out[i] != s.expect[i]) {
            std::snprintf(buf, sizeof buf, " word %zu = %016llx (want %016llx)", i,
                          (unsigned long long)r.out[i], (unsigned long long)s.expect[i]);
            why += buf;
            break;
        }
    }
    if (r.r[5] != r.r[4] - 1 || r.r[6] != 1 || r.r[8] != 1) {
        std::snprintf(buf, sizeof buf, " TLAST at %lld (%lld TLASTs), keep/strb ones %lld", r.r[5], r.r[6], r.r[8]);
        why += buf;
    }
    if (s.check_log && r.log != s.log) {
        size_t k = 0;
        while (2 * k + 1 < r.log.size() && 2 * k + 1 < s.log.size() && r.log[2 * k] == s.log[2 * k] &&
               r.log[2 * k + 1] == s.log[2 * k + 1]) {
            k++;
        }
        why += " loop log differs at entry " + std::to_string(k) + ": got [" + log_text(r.log, k, 4) +
               "] want [" + log_text(s.log, k, 4) + "] (" + std::to_string(r.log.size() / 2) + " vs " +
               std::to_string(s.log.size() / 2) + " entries)";
    }
    const bool ok = why.empty();
    if (!ok) failures++;
    std::printf("%s %-34s %s%s\n", ok ? "PASS" : "FAIL", name.c_str(),
                ok ? (s.note + (s.note.empty() ? "" : ", ") + std::to_string(r.out.size()) + " words, " +
                      std::to_string(r.log.size() / 2) + " loops")
                           .c_str()
                   : "",
                why.c_str());
    return ok;
}

// ---- codebooks and the threshold bank ------------------------------------------------------

struct books {
    std::vector<int> wq, aq;          // Wq[1..k1], Aq[1..j1] at index 0..
    std::vector<long long> thresholds;  // T[1..jo1]
    bool act_signed = false;
    std::vector<int> table;           // OUT_TABLE: the code of each interval index (empty: none)
    std::vector<long long> resid;     // RESIDUAL: R[0..15] (empty: none)
    long long product(int w, int a) const {
        if (w == 0 || a == 0 || w > (int)wq.size() || a > (int)aq.size()) return 0;
        return (long long)wq[w - 1] * aq[a - 1];
    }
    int code(long long acc) const {
        int c = 0;
        for (long long t : thresholds) c += acc >= t;
        return table.empty() ? c : table[(size_t)c];
    }
    unsigned flags() const {
        return (act_signed ? FLAG_ACT_SIGNED : 0u) | (table.empty() ? 0u : FLAG_OUT_TABLE) |
               (resid.empty() ? 0u : FLAG_RESIDUAL);
    }
};

// A signed map's code table: `negatives` negative centroids (codes 1..negatives), code 0 for
// the interval holding 0, then the positive ones: [1, .., negatives, 0, negatives + 1, .., m].
std::vector<int> signed_table(int m, int negatives) {
    std::vector<int> t;
    for (int i = 1; i <= negatives; i++) t.push_back(i);
    t.push_back(0);
    for (int i = negatives + 1; i <= m; i++) t.push_back(i);
    while (t.size() < 16) t.push_back(0);
    return t;
}

std::vector<long long> random_resid(random_source &rng, int width) {
    std::vector<long long> r(16, 0);
    for (int a = 1; a < 16; a++) r[a] = rng.range(-width, width);
    return r;
}

u64 table_word(const std::vector<int> &table) {
    u64 w = 0;
    for (size_t i = 0; i < table.size() && i < 16; i++) w |= ((u64)(unsigned)table[i] & 15u) << (4 * i);
    return w;
}

books random_books(random_source &rng, int k1, int j1, int jo1, bool act_signed) {
    books b;
    b.act_signed = act_signed;
    for (int i = 0; i < k1; i++) b.wq.push_back(rng.range(-128, 127));
    for (int i = 0; i < j1; i++) b.aq.push_back(act_signed ? rng.range(-128, 127) : rng.range(1, 255));
    long long t = rng.range(-3000, 2000);
    for (int i = 0; i < jo1; i++) {
        b.thresholds.push_back(t);
        t += rng.range(0, 9000);
    }
    return b;
}

words_t constant_books(const books &b) {
    std::vector<uint8_t> bytes;
    for (int v : b.wq) bytes.push_back((uint8_t)((unsigned)v & 0xFFu));
    for (int v : b.aq) bytes.push_back((uint8_t)((unsigned)v & 0xFFu));
    words_t w = bytes_to_words(bytes);
    append(w, int32_words(b.thresholds));
    if (!b.table.empty()) w.push_back(table_word(b.table));
    if (!b.resid.empty()) append(w, int32_words(b.resid));
    return w;
}

// ---- weights as per-partition sequences ------------------------------------------------------

struct entry {
    int position, code;
};
typedef std::vector<std::vector<entry>> partition_rows;  // [channel][...] of one partition

std::vector<uint8_t> sparse_sequence(const std::vector<std::vector<entry>> &channels) {
    std::vector<uint8_t> seq;
    for (const auto &row : channels) {
        int next = 0;
        for (const entry &e : row) {
            const int gap = e.position - next;
            // Fillers (code 0, skip s in 1..15) cover 16 s positions each: 15, 15, .., the rest.
            for (int sixteens = gap / 16; sixteens > 0; sixteens -= 15) {
                seq.push_back((uint8_t)((unsigned)std::min(sixteens, 15) << 4u));
            }
            seq.push_back((uint8_t)(((unsigned)(gap % 16) << 4u) | (unsigned)e.code));
            next = e.position + 1;
        }
        seq.push_back(0x00);
    }
    return seq;
}

struct packed_job {
    words_t a, b;
    long long steps = 0;
    long long loader_trips = 0;
    std::vector<long long> longest;  // per channel: max over partitions of its entries
};

typedef std::function<void(int, std::vector<std::vector<uint8_t>> &)> tamper_t;

// Splits the planned jobs further where a partition's entries would pass W_DEPTH (counts:
// [channel][partition]); a job keeps a multiple of `align` channels unless it ends a
// planned job.
std::vector<int> fit_weight_cache(const std::vector<int> &planned, const std::vector<std::vector<int>> &counts,
                                  int align) {
    std::vector<int> jobs;
    int ch0 = 0;
    for (int n : planned) {
        int start = ch0;
        const int end = ch0 + n;
        while (start < end) {
            std::vector<long long> used(P, 0);
            int k = start;
            for (; k < end; k++) {
                bool fits = true;
                for (unsigned p = 0; p < P; p++) fits = fits && used[p] + counts[k][p] <= (long long)build::w_depth;
                if (!fits) break;
                for (unsigned p = 0; p < P; p++) used[p] += counts[k][p];
            }
            int take = k - start;
            if (k < end) take = take / align * align;
            if (take == 0) take = std::min(end - start, align);  // cannot fit: the kernel refuses it
            jobs.push_back(take);
            start += take;
        }
        ch0 = end;
    }
    return jobs;
}

// One job: `rows[p][c]` are partition p's entries of the job's channel c (sorted).
packed_job pack_job(int index, int ch0, int channels, bool sparse, int slot0, int span,
                    const std::vector<long long> &bias, const std::vector<partition_rows> &rows,
                    const tamper_t &tamper) {
    packed_job job;
    std::vector<std::vector<uint8_t>> seq(P);
    for (unsigned p = 0; p < P; p++) {
        if (sparse) {
            seq[p] = sparse_sequence(rows[p]);
        } else {
            for (int c = 0; c < channels; c++) {
                std::vector<uint8_t> dense(span, 0);
                for (const entry &e : rows[p][c]) dense[e.position] = (uint8_t)e.code;
                seq[p].insert(seq[p].end(), dense.begin(), dense.end());
            }
        }
    }
    if (tamper) tamper(index, seq);
    size_t steps = 0;
    for (const auto &s : seq) steps = s.size() > steps ? s.size() : steps;
    job.steps = (long long)steps;
    std::vector<uint8_t> bytes;
    if (sparse) {
        for (size_t k = 0; k < steps; k++) {
            for (unsigned p = 0; p < P; p++) bytes.push_back(k < seq[p].size() ? seq[p][k] : 0);
        }
    } else {
        std::vector<int> nibbles;
        for (size_t k = 0; k < steps; k++) {
            for (unsigned p = 0; p < P; p++) nibbles.push_back(k < seq[p].size() ? seq[p][k] : 0);
        }
        for (size_t i = 0; i < nibbles.size(); i += 2) {
            bytes.push_back((uint8_t)((unsigned)nibbles[i] | ((unsigned)(i + 1 < nibbles.size() ? nibbles[i + 1] : 0) << 4u)));
        }
    }
    const words_t weights = bytes_to_words(bytes);
    u64 h0 = 0, h1 = 0;
    put(h0, 0, 16, KCNN_JOB_TAG);
    put(h0, 16, 16, (u64)index);
    put(h0, 32, 16, (u64)ch0);
    put(h0, 48, 16, (u64)channels);
    put(h1, 0, 1, sparse ? 1 : 0);
    put(h1, 8, 24, steps);
    put(h1, 32, 16, (u64)slot0);
    put(h1, 48, 16, sparse ? 0 : (u64)span);
    job.a = {h0, h1};
    append(job.a, int32_words(bias));
    for (size_t w = 0; w < weights.size(); w++) {
        if (STREAMS == 2 && (w & 1u)) {
            job.b.push_back(weights[w]);
        } else {
            job.a.push_back(weights[w]);
        }
    }
    // Loader trips: header, biases, weight steps (ceil(words per step / STREAMS) cycles).
    const double words_per_step = P * (sparse ? 8.0 : 4.0) / 64.0;
    const long long per_step = words_per_step <= STREAMS ? 1 : (long long)(words_per_step / STREAMS);
    job.loader_trips = 2 + cdiv(channels, 2) + (long long)steps * per_step;
    for (int c = 0; c < channels; c++) {
        long long m = 0;
        for (unsigned p = 0; p < P; p++) m = (long long)rows[p][c].size() > m ? (long long)rows[p][c].size() : m;
        job.longest.push_back(m);
    }
    return job;
}

// ---- the F32 input encoder (reference: float64 boundaries, not the kernel's keys) ---------------

int32_t float_key(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    return (bits & 0x80000000u) ? (int32_t)~(bits & 0x7FFFFFFFu) : (int32_t)bits;
}

int32_t boundary_key(double b) {
    float c = (float)b;
    if ((double)c <= b) c = std::nextafterf(c, INFINITY);
    return float_key(c);
}

int encode_reference(float x, const std::vector<double> &bounds) {
    if (x == 0.0f) return 0;
    int code = 1;
    for (double b : bounds) code += (double)x > b;
    return code;
}

// ---- conv -----------------------------------------------------------------------------------

struct conv_case {
    std::string name;
    int in_c = 1, in_h = 1, in_w = 1, out_c = 1, kh = 1, kw = 1, dh = 1, dw = 1;
    int pad_t = 0, pad_l = 0, pad_b = 0, pad_r = 0, groups = 1, sub = 1;
    bool sparse = false;
    int out_format = BLOCKED;
    books cb;
    std::vector<int> weights;  // (out_c, in_c / groups, kh, kw)
    std::vector<long long> bias;
    map3 input;                // the stored map (after space-to-depth)
    std::vector<uint32_t> mask;
    std::vector<int> slot, slot0;  // per input channel, per group
    std::vector<int> jobs;     // channels per job
    // F32 input: raw floats (in_c / s^2, in_h * s, in_w * s), rows padded to 16 here
    bool f32 = false;
    int s2d = 1;
    std::vector<float> floats;
    std::vector<float> row_padding_value;  // written into the rows' padding (ignored)
    std::vector<double> bounds;
    // U8 input: raw pixels (in_c / s^2, in_h * s, in_w * s), rows padded to 16 here with
    // row_padding_pixel; per raw channel its cut points (J - 2 of them, 0..256) and zero pixel
    // (0..255, or 256 / 0xFFFF: none); the data window row0, row1, col0, col1; what the
    // section says for the entries past J - 2 (0xFFFF, or anything: the kernel ignores them).
    bool u8 = false;
    std::vector<uint8_t> pixels;
    int row_padding_pixel = 0;
    std::vector<std::vector<int>> cuts;
    std::vector<int> zero_pixel;
    int window[4] = {0, 0, 0, 0};
    int unused_cut = 0xFFFF;
    tamper_t tamper;
    bool tie_thresholds = false;  // thresholds equal to accumulators the map reaches
    bool fit = true;              // split jobs further to fit the weight cache
    map3 shortcut;                // RESIDUAL (cb.resid): codes of the output's shape
    int weight(int o, int ci, int i, int j) const {
        const int cg = in_c / groups;
        return weights[(((size_t)o * cg + ci) * kh + i) * kw + j];
    }
};

int out_size(int in, int pad0, int pad1, int k, int d, int stride) {
    return (in + pad0 + pad1 - d * (k - 1) - 1) / stride + 1;
}

// The stored map of an F32 input (reference encoder, then space-to-depth).
map3 stored_from_floats(const conv_case &cc) {
    const int s = cc.s2d, c0 = cc.in_c / (s * s), h0 = cc.in_h * s, w0 = cc.in_w * s;
    map3 m(cc.in_c, cc.in_h, cc.in_w);
    for (int c = 0; c < c0; c++) {
        for (int y = 0; y < h0; y++) {
            for (int x = 0; x < w0; x++) {
                const float v = cc.floats[((size_t)c * h0 + y) * w0 + x];
                m.at(c * s * s + (y % s) * s + (x % s), y / s, x / s) = encode_reference(v, cc.bounds);
            }
        }
    }
    return m;
}

// The pixel encoder's code of pixel p at raw (c, y, x): docs/job-format.md, plain loops.
int pixel_reference(const conv_case &cc, int c, int y, int x, int p) {
    if (y < cc.window[0] || y >= cc.window[1] || x < cc.window[2] || x >= cc.window[3]) return 0;
    if (p == cc.zero_pixel[(size_t)c]) return 0;
    int code = 1;
    for (int t : cc.cuts[(size_t)c]) code += p >= t;
    return code;
}

// The stored map of a U8 input (reference pixel encoder, then space-to-depth).
map3 stored_from_pixels(const conv_case &cc) {
    const int s = cc.s2d, c0 = cc.in_c / (s * s), h0 = cc.in_h * s, w0 = cc.in_w * s;
    map3 m(cc.in_c, cc.in_h, cc.in_w);
    for (int c = 0; c < c0; c++) {
        for (int y = 0; y < h0; y++) {
            for (int x = 0; x < w0; x++) {
                const int p = cc.pixels[((size_t)c * h0 + y) * w0 + x];
                m.at(c * s * s + (y % s) * s + (x % s), y / s, x / s) = pixel_reference(cc, c, y, x, p);
            }
        }
    }
    return m;
}

// U8: rows padded to 16 pixels, byte i of word w the padded rows' pixel 8 w + i.
words_t u8_map_words(const conv_case &cc) {
    const int s = cc.s2d, c0 = cc.in_c / (s * s), h0 = cc.in_h * s, w0 = cc.in_w * s;
    const int row = (int)cdiv(w0, 16) * 16;
    std::vector<uint8_t> bytes;
    for (int c = 0; c < c0; c++) {
        for (int y = 0; y < h0; y++) {
            for (int x = 0; x < row; x++) {
                bytes.push_back(x < w0 ? cc.pixels[((size_t)c * h0 + y) * w0 + x] : (uint8_t)cc.row_padding_pixel);
            }
        }
    }
    return bytes_to_words(bytes);
}

// The pixel encoder section (18 words): T[c][m] in word 4c + m/4 at bit 16 (m mod 4), the
// zero pixels in word 16, the window in word 17; 0xFFFF for the channels past the image's.
words_t pixel_encoder_section(const conv_case &cc) {
    words_t w(18, 0);
    const int raw = cc.in_c / (cc.s2d * cc.s2d);
    for (int c = 0; c < 4; c++) {
        for (int m = 0; m < 16; m++) {
            int v = 0xFFFF;
            if (c < raw) v = m < (int)cc.cuts[(size_t)c].size() ? cc.cuts[(size_t)c][(size_t)m] : cc.unused_cut;
            put(w[4 * (size_t)c + (size_t)m / 4], 16u * (unsigned)(m % 4), 16, (u64)v);
        }
        put(w[16], 16u * (unsigned)c, 16, c < raw ? (u64)cc.zero_pixel[(size_t)c] : 0xFFFFull);
    }
    for (int i = 0; i < 4; i++) put(w[17], 16u * (unsigned)i, 16, (u64)cc.window[i]);
    return w;
}

words_t f32_map_words(const conv_case &cc) {
    const int s = cc.s2d, c0 = cc.in_c / (s * s), h0 = cc.in_h * s, w0 = cc.in_w * s;
    const int row = (int)cdiv(w0, 16) * 16;
    std::vector<uint32_t> values;
    for (int c = 0; c < c0; c++) {
        for (int y = 0; y < h0; y++) {
            for (int x = 0; x < row; x++) {
                float v = 0.0f;
                if (x < w0) {
                    v = cc.floats[((size_t)c * h0 + y) * w0 + x];
                } else if (!cc.row_padding_value.empty()) {
                    v = cc.row_padding_value[0];
                }
                uint32_t bits;
                std::memcpy(&bits, &v, 4);
                values.push_back(bits);
            }
        }
    }
    words_t w((values.size() + 1) / 2, 0);
    for (size_t i = 0; i < values.size(); i++) w[i / 2] |= (u64)values[i] << (32 * (i % 2));
    return w;
}

// Non-decreasing thresholds picked from accumulators that occur: every tie is exercised.
std::vector<long long> thresholds_on(std::vector<long long> accs, size_t count) {
    std::sort(accs.begin(), accs.end());
    std::vector<long long> t;
    for (size_t m = 0; m < count && !accs.empty(); m++) t.push_back(accs[(m * 7919 + 3) % accs.size()]);
    std::sort(t.begin(), t.end());
    return t;
}

// A conv channel's code places in the out memory (0: the output is not buffered): FLAT one
// per output, ACC 8 per int32, subsampled BLOCKED 16 per output block.
long long out_places(const conv_case &cc, int out_h, int out_w) {
    if (cc.out_format == FLAT) return (long long)out_h * out_w;
    if (cc.out_format == ACC) return 8ll * out_h * out_w;
    if (cc.sub > 1) return 16 * cdiv(out_h, 4) * cdiv(out_w, 4);
    return 0;
}

step_io build_conv(const conv_case &given) {
    step_io s;
    conv_case cc = given;
    const int khb = log2_ceil(cc.kh), kwb = log2_ceil(cc.kw);
    const int out_h = out_size(cc.in_h, cc.pad_t, cc.pad_b, cc.kh, cc.dh, cc.sub);
    const int out_w = out_size(cc.in_w, cc.pad_l, cc.pad_r, cc.kw, cc.dw, cc.sub);
    const int cg = cc.in_c / cc.groups, og = cc.out_c / cc.groups;
    const map3 in = cc.f32 ? stored_from_floats(cc) : cc.u8 ? stored_from_pixels(cc) : cc.input;
    const bool buffered = cc.out_format != BLOCKED || cc.sub > 1;

    // The reference: plain loops over the outputs.
    map3 out(cc.out_c, out_h, out_w);
    for (int o = 0; o < cc.out_c; o++) {
        const int g = o / og;
        for (int y = 0; y < out_h; y++) {
            for (int x = 0; x < out_w; x++) {
                long long acc = cc.bias[o];
                for (int ci = 0; ci < cg; ci++) {
                    for (int i = 0; i < cc.kh; i++) {
                        for (int j = 0; j < cc.kw; j++) {
                            const int a = (int)in.get(g * cg + ci, y * cc.sub + i * cc.dh - cc.pad_t,
                                                      x * cc.sub + j * cc.dw - cc.pad_l);
                            acc += cc.cb.product(cc.weight(o, ci, i, j), a);
                        }
                    }
                }
                if (!cc.cb.resid.empty()) acc += cc.cb.resid[(size_t)cc.shortcut.get(o, y, x)];
                out.at(o, y, x) = acc;
            }
        }
    }
    if (cc.tie_thresholds) cc.cb.thresholds = thresholds_on(out.v, cc.cb.thresholds.size());
    if (cc.out_format != ACC) {
        for (long long &v : out.v) v = cc.cb.code(v);
    }

    // Constants: codebooks, thresholds, [code table], [R], placement, encoder keys (F32) or
    // the pixel encoder (U8).
    words_t consts = constant_books(cc.cb);
    for (int ci = 0; ci < cc.in_c; ci++) consts.push_back((u64)cc.mask[ci] | ((u64)cc.slot[ci] << 32u));
    if (cc.f32) {
        std::vector<long long> keys(16, 0x7FFFFFFF);
        for (size_t m = 0; m < cc.bounds.size(); m++) keys[m] = boundary_key(cc.bounds[m]);
        append(consts, int32_words(keys));
    }
    if (cc.u8) append(consts, pixel_encoder_section(cc));
    const words_t map = cc.f32 ? f32_map_words(cc) : cc.u8 ? u8_map_words(cc) : blocked_words(in);

    // Every non-zero tap of (o, ci) goes to one partition of ci's mask, in turn.
    std::vector<partition_rows> all(P, partition_rows(cc.out_c));
    std::vector<std::vector<int>> counts(cc.out_c, std::vector<int>(P, 0));
    for (int o = 0; o < cc.out_c; o++) {
        const int g = o / og, slot0 = cc.slot0[g];
        for (int ci = 0; ci < cg; ci++) {
            std::vector<int> parts;
            for (unsigned p = 0; p < P; p++) {
                if (cc.mask[g * cg + ci] >> p & 1u) parts.push_back((int)p);
            }
            int taps = 0;
            for (int i = 0; i < cc.kh; i++) {
                for (int j = 0; j < cc.kw; j++) {
                    const int w = cc.weight(o, ci, i, j);
                    if (w == 0) continue;
                    const int p = parts[taps++ % parts.size()];
                    const int position = (int)(((unsigned)(cc.slot[g * cg + ci] - slot0) << (unsigned)(khb + kwb)) |
                                               ((unsigned)i << (unsigned)kwb) | (unsigned)j);
                    all[p][o].push_back({position, w});
                }
            }
        }
        for (unsigned p = 0; p < P; p++) {
            std::sort(all[p][o].begin(), all[p][o].end(),
                      [](const entry &x, const entry &y) { return x.position < y.position; });
            counts[o][p] = (int)all[p][o].size();
        }
    }
    // Conv FLAT / ACC outputs pack on across the jobs: no job need end on a word boundary.
    const std::vector<int> sizes = cc.fit ? fit_weight_cache(cc.jobs, counts, 1) : cc.jobs;
    std::vector<packed_job> jobs;
    int ch0 = 0;
    for (size_t k = 0; k < sizes.size(); k++) {
        const int n = sizes[k], g = ch0 / og, slot0 = cc.slot0[g];
        int slots = 1;
        for (int ci = 0; ci < cg; ci++) slots = std::max(slots, cc.slot[g * cg + ci] - slot0 + 1);
        const int span = (int)((unsigned)slots << (unsigned)(khb + kwb));
        std::vector<partition_rows> rows(P);
        for (unsigned p = 0; p < P; p++) rows[p].assign(all[p].begin() + ch0, all[p].begin() + ch0 + n);
        std::vector<long long> bias(cc.bias.begin() + ch0, cc.bias.begin() + ch0 + n);
        jobs.push_back(pack_job((int)k, ch0, n, cc.sparse, slot0, span, bias, rows, cc.tamper));
        ch0 += n;
    }

    fields f;
    f.opcode = OP_CONV;
    f.flags = cc.cb.flags();
    f.n_jobs = (unsigned)jobs.size();
    f.k1 = (unsigned)cc.cb.wq.size();
    f.j1 = (unsigned)cc.cb.aq.size();
    f.jo1 = (unsigned)cc.cb.thresholds.size();
    f.in_c = cc.in_c;
    f.in_h = cc.in_h;
    f.in_w = cc.in_w;
    f.out_c = cc.out_c;
    f.out_h = out_h;
    f.out_w = out_w;
    f.kh = cc.kh;
    f.kw = cc.kw;
    f.dh = cc.dh;
    f.dw = cc.dw;
    f.pad_t = cc.pad_t;
    f.pad_l = cc.pad_l;
    f.khb = khb;
    f.kwb = kwb;
    f.in_format = cc.f32 ? F32 : cc.u8 ? U8 : BLOCKED;
    f.out_format = cc.out_format;
    f.s2d = cc.s2d;
    f.sub = cc.sub;
    f.groups = cc.groups;
    f.const_words = consts.size();
    f.map_words = map.size();
    for (const auto &j : jobs) {
        f.job_words_a += j.a.size();
        f.job_words_b += j.b.size();
    }
    f.out_words = format_words(cc.out_format, cc.out_c, out_h, out_w);
    s.a = descriptor_words(f);
    append(s.a, consts);
    // An F32 map with two streams: word w on stream w mod 2, B's share ahead of the jobs'
    // (a U8 map is on A only).
    const bool split = cc.f32 && STREAMS == 2;
    for (size_t w = 0; w < map.size(); w++) (split && (w & 1u) ? s.b : s.a).push_back(map[w]);
    s.a.push_back(0x0000000A444E454Bull);  // the reserved word: here an old trailer
    const words_t shortcut = cc.cb.resid.empty() ? words_t() : map_answer(cc.shortcut, cc.out_format);
    append(s.a, shortcut);
    for (const auto &j : jobs) {
        append(s.a, j.a);
        append(s.b, j.b);
    }
    close_transfers(s);
    s.expect = map_answer(out, cc.out_format);
    s.expect.push_back(trailer(0, 0));

    // The loop log the spec's formulas give.
    const int h1 = (out_h - 1) * cc.sub + 1, w1 = (out_w - 1) * cc.sub + 1;
    const long long blocks = cdiv(h1, 4) * cdiv(w1, 4);
    expect_loop(s, L_DESCRIPTOR, 8);
    expect_loop(s, L_QUOTIENTS, KCNN_QUOTIENT_BITS);
    expect_loop(s, L_CONST, (long long)consts.size());
    expect_loop(s, L_TABLE, 256);
    // F32: ceil(map_words / STREAMS) cycles, the reserved word, the bank-write queue's drain
    // (4); U8: map_words cycles, the reserved word, the drain (2).
    const long long map_cycles = split ? cdiv((long long)map.size(), 2) : (long long)map.size();
    expect_loop(s, L_MAP, map_cycles + 1 + (cc.f32 ? 4 : cc.u8 ? 2 : 0));
    expect_loop(s, L_SHORTCUT, (long long)shortcut.size());
    expect_loop(s, L_LOAD, jobs[0].loader_trips);
    long long before = 0;  // buffered: the code places of the jobs before (an int32 takes 8)
    for (size_t k = 0; k < jobs.size(); k++) {
        long long compute = 0;
        for (long long m : jobs[k].longest) compute += std::max<long long>(CONV_FLOOR, m) * blocks;
        const long long next = k + 1 < jobs.size() ? jobs[k + 1].loader_trips : 0;
        expect_loop(s, L_JOB, std::max(compute + CONV_FLOOR, next));
        if (buffered) {
            // The words the job's outputs complete after the jobs before; the last job's tail.
            const long long codes = (long long)sizes[k] * out_places(cc, out_h, out_w);
            const long long end = before + codes;
            const long long done = k + 1 < jobs.size() ? end / 16 : cdiv(end, 16);
            expect_loop(s, L_EMIT, done - before / 16);
            before = end;
        }
    }
    char note[128];
    std::snprintf(note, sizeof note, "%dx%dx%d -> %dx%dx%d, %zu jobs", cc.in_c, cc.in_h, cc.in_w, cc.out_c,
                  out_h, out_w, jobs.size());
    s.note = note;
    return s;
}

// Placement: group g's channels are dealt to sets of `share` partitions (a copy in each);
// a set's channels take consecutive slots after the group's first.
void place(conv_case &cc, int share, random_source &rng, bool shuffle) {
    const int cg = cc.in_c / cc.groups, sets = (int)P / share;
    cc.mask.assign(cc.in_c, 0);
    cc.slot.assign(cc.in_c, 0);
    cc.slot0.assign(cc.groups, 0);
    int next = 0;
    for (int g = 0; g < cc.groups; g++) {
        cc.slot0[g] = next;
        std::vector<int> used(sets, 0);
        const int offset = shuffle ? rng.range(0, sets - 1) : 0;
        for (int ci = 0; ci < cg; ci++) {
            const int q = (ci + offset) % sets;
            uint32_t m = 0;
            for (int r = 0; r < share; r++) m |= 1u << (unsigned)(q + sets * r);
            cc.mask[g * cg + ci] = m;
            cc.slot[g * cg + ci] = next + used[q]++;
        }
        int most = 0;
        for (int u : used) most = std::max(most, u);
        next += most;
    }
}

void random_weights(conv_case &cc, random_source &rng, double density) {
    const int cg = cc.in_c / cc.groups;
    cc.weights.assign((size_t)cc.out_c * cg * cc.kh * cc.kw, 0);
    for (int &w : cc.weights) w = rng.chance(density) ? rng.range(1, (int)cc.cb.wq.size()) : 0;
    cc.bias.assign(cc.out_c, 0);
    for (long long &b : cc.bias) b = rng.range(-20000, 20000);
}

void random_input(conv_case &cc, random_source &rng, double zeros) {
    cc.input = map3(cc.in_c, cc.in_h, cc.in_w);
    for (long long &v : cc.input.v) v = rng.chance(zeros) ? 0 : rng.range(1, (int)cc.cb.aq.size());
}

// Jobs of at most `most` channels inside the groups (FLAT / ACC outputs need not fill whole
// words: they pack on across the jobs), their buffered outputs inside the out memory behind
// the partial word the jobs before left there.
void split_jobs(conv_case &cc, int most, int out_h, int out_w) {
    const int og = cc.out_c / cc.groups;
    const int places = (int)out_places(cc, out_h, out_w);
    cc.jobs.clear();
    long long before = 0;
    for (int g = 0; g < cc.groups; g++) {
        int left = og;
        while (left > 0) {
            int n = std::min(left, most);
            if (places) n = std::min(n, std::max(1, (int)(((long long)build::out_depth - before % 16) / places)));
            cc.jobs.push_back(n);
            before += (long long)n * places;
            left -= n;
        }
    }
}

// ---- fc -------------------------------------------------------------------------------------

struct fc_case {
    std::string name;
    int in_c = 1, out_c = 1;
    bool sparse = false;
    int out_format = FLAT;
    books cb;
    std::vector<int> weights;  // (out_c, in_c)
    std::vector<long long> bias;
    std::vector<int> input;
    std::vector<int> jobs;
    tamper_t tamper;
    bool tie_thresholds = false;
    bool fit = true;
    std::vector<int> shortcut;  // RESIDUAL (cb.resid): one code per output
};

step_io build_fc(const fc_case &given) {
    step_io s;
    fc_case fc = given;
    map3 out(fc.out_c, 1, 1);
    for (int o = 0; o < fc.out_c; o++) {
        long long acc = fc.bias[o];
        for (int t = 0; t < fc.in_c; t++) acc += fc.cb.product(fc.weights[(size_t)o * fc.in_c + t], fc.input[t]);
        if (!fc.cb.resid.empty()) acc += fc.cb.resid[(size_t)fc.shortcut[(size_t)o]];
        out.at(o, 0, 0) = acc;
    }
    if (fc.tie_thresholds) fc.cb.thresholds = thresholds_on(out.v, fc.cb.thresholds.size());
    if (fc.out_format != ACC) {
        for (long long &v : out.v) v = fc.cb.code(v);
    }
    const words_t consts = constant_books(fc.cb);
    const words_t map = code_words(fc.input);
    const int span = (int)cdiv(fc.in_c, P);
    std::vector<std::vector<int>> counts(fc.out_c, std::vector<int>(P, 0));
    for (int o = 0; o < fc.out_c; o++) {
        for (int t = 0; t < fc.in_c; t++) counts[o][t % P] += fc.weights[(size_t)o * fc.in_c + t] != 0;
    }
    const std::vector<int> sizes =
        fc.fit ? fit_weight_cache(fc.jobs, counts, fc.out_format == FLAT ? 16 : 2) : fc.jobs;
    std::vector<packed_job> jobs;
    int ch0 = 0;
    for (size_t k = 0; k < sizes.size(); k++) {
        const int n = sizes[k];
        std::vector<partition_rows> rows(P, partition_rows(n));
        for (int c = 0; c < n; c++) {
            for (int t = 0; t < fc.in_c; t++) {
                const int w = fc.weights[(size_t)(ch0 + c) * fc.in_c + t];
                if (w != 0) rows[t % P][c].push_back({t / (int)P, w});
            }
        }
        std::vector<long long> bias(fc.bias.begin() + ch0, fc.bias.begin() + ch0 + n);
        jobs.push_back(pack_job((int)k, ch0, n, fc.sparse, 0, span, bias, rows, fc.tamper));
        ch0 += n;
    }
    fields f;
    f.opcode = OP_FC;
    f.flags = fc.cb.flags();
    f.n_jobs = (unsigned)jobs.size();
    f.k1 = (unsigned)fc.cb.wq.size();
    f.j1 = (unsigned)fc.cb.aq.size();
    f.jo1 = (unsigned)fc.cb.thresholds.size();
    f.in_c = fc.in_c;
    f.out_c = fc.out_c;
    f.in_format = FLAT;
    f.out_format = fc.out_format;
    f.const_words = consts.size();
    f.map_words = map.size();
    for (const auto &j : jobs) {
        f.job_words_a += j.a.size();
        f.job_words_b += j.b.size();
    }
    f.out_words = format_words(fc.out_format, fc.out_c, 1, 1);
    s.a = descriptor_words(f);
    append(s.a, consts);
    append(s.a, map);
    s.a.push_back(0);
    const words_t shortcut = fc.cb.resid.empty() ? words_t() : code_words(fc.shortcut);
    append(s.a, shortcut);
    for (const auto &j : jobs) {
        append(s.a, j.a);
        append(s.b, j.b);
    }
    close_transfers(s);
    s.expect = map_answer(out, fc.out_format);
    s.expect.push_back(trailer(0, 0));
    expect_loop(s, L_DESCRIPTOR, 8);
    expect_loop(s, L_QUOTIENTS, KCNN_QUOTIENT_BITS);
    expect_loop(s, L_CONST, (long long)consts.size());
    expect_loop(s, L_TABLE, 256);
    expect_loop(s, L_MAP, (long long)map.size() + 1);
    expect_loop(s, L_SHORTCUT, (long long)shortcut.size());
    expect_loop(s, L_LOAD, jobs[0].loader_trips);
    for (size_t k = 0; k < jobs.size(); k++) {
        long long compute = 0;
        for (long long m : jobs[k].longest) compute += std::max<long long>(FC_FLOOR, m);
        const long long next = k + 1 < jobs.size() ? jobs[k + 1].loader_trips : 0;
        expect_loop(s, L_JOB, std::max(compute + FC_FLOOR, next));
    }
    char note[96];
    std::snprintf(note, sizeof note, "%d -> %d, %zu jobs", fc.in_c, fc.out_c, jobs.size());
    s.note = note;
    return s;
}

fc_case random_fc(random_source &rng, int in_c, int out_c, bool sparse, int out_format, double density,
                  int most) {
    fc_case fc;
    // 16 channels (a FLAT job's alignment) must fit the weight cache, else the planner would
    // refuse the layer; such a layer here emits ACC (2-channel jobs) instead.
    if (out_format == FLAT && 16.0 * cdiv(in_c, P) * density > 0.7 * build::w_depth) out_format = ACC;
    fc.in_c = in_c;
    fc.out_c = out_c;
    fc.sparse = sparse;
    fc.out_format = out_format;
    fc.cb = random_books(rng, rng.range(1, 15), rng.range(1, 15), out_format == ACC ? 0 : rng.range(1, 15),
                         rng.chance(0.3));
    fc.weights.assign((size_t)in_c * out_c, 0);
    for (int &w : fc.weights) w = rng.chance(density) ? rng.range(1, (int)fc.cb.wq.size()) : 0;
    fc.bias.assign(out_c, 0);
    for (long long &b : fc.bias) b = rng.range(-50000, 50000);
    fc.input.assign(in_c, 0);
    for (int &a : fc.input) a = rng.chance(0.3) ? 0 : rng.range(1, (int)fc.cb.aq.size());
    const int align = out_format == FLAT ? 16 : 2;
    int left = out_c;
    while (left > 0) {
        int n = std::min(left, most);
        if (n < left) n = std::min(left, std::max(align, n / align * align));
        fc.jobs.push_back(n);
        left -= n;
    }
    return fc;
}

// ---- pool -----------------------------------------------------------------------------------

struct pool_case {
    int kh = 2, kw = 2, sh = 2, sw = 2, pad_t = 0, pad_l = 0, pad_b = 0, pad_r = 0;
    int out_format = BLOCKED;
    map3 input;
};

step_io build_pool(const pool_case &pc) {
    step_io s;
    const map3 &in = pc.input;
    const int out_h = out_size(in.h, pc.pad_t, pc.pad_b, pc.kh, 1, pc.sh);
    const int out_w = out_size(in.w, pc.pad_l, pc.pad_r, pc.kw, 1, pc.sw);
    map3 out(in.c, out_h, out_w);
    for (int c = 0; c < in.c; c++) {
        for (int y = 0; y < out_h; y++) {
            for (int x = 0; x < out_w; x++) {
                long long best = 0;  // padding (code 0) never wins over a real code
                for (int i = 0; i < pc.kh; i++) {
                    for (int j = 0; j < pc.kw; j++) {
                        best = std::max(best, in.get(c, y * pc.sh + i - pc.pad_t, x * pc.sw + j - pc.pad_l));
                    }
                }
                out.at(c, y, x) = best;
            }
        }
    }
    const words_t map = blocked_words(in);
    fields f;
    f.opcode = OP_POOL;
    f.in_c = in.c;
    f.in_h = in.h;
    f.in_w = in.w;
    f.out_c = in.c;
    f.out_h = out_h;
    f.out_w = out_w;
    f.kh = pc.kh;
    f.kw = pc.kw;
    f.sh = pc.sh;
    f.sw = pc.sw;
    f.pad_t = pc.pad_t;
    f.pad_l = pc.pad_l;
    f.in_format = BLOCKED;
    f.out_format = pc.out_format;
    f.map_words = map.size();
    f.out_words = format_words(pc.out_format, in.c, out_h, out_w);
    s.a = descriptor_words(f);
    append(s.a, map);
    s.a.push_back(0);
    close_transfers(s);
    s.expect = map_answer(out, pc.out_format);
    s.expect.push_back(trailer(0, 0));
    // Per output block Q = ceil(ceil(R/4) NW / 2) cycles (FLAT: at least 4, one output row
    // per cycle into the out memory, and 4 more after the last channel's last block).
    const long long rows = 3 * pc.sh + pc.kh, cols = 3 * pc.sw + pc.kw;
    const long long q = cdiv(cdiv(rows, 4) * cdiv(cols + 3, 4), 2);
    const long long per_block = pc.out_format == FLAT ? std::max(q, 4LL) : q;
    const long long plane = cdiv(in.h, 4) * cdiv(in.w, 4);
    const long long work = cdiv(out_h, 4) * cdiv(out_w, 4) * per_block;
    expect_loop(s, L_DESCRIPTOR, 8);
    expect_loop(s, L_QUOTIENTS, KCNN_QUOTIENT_BITS);
    expect_loop(s, L_PLANE, plane);
    for (int c = 0; c < in.c; c++) {
        const bool last = c + 1 == in.c;
        expect_loop(s, L_POOL, std::max(work + (last && pc.out_format == FLAT ? 4 : 0), last ? 0 : plane));
    }
    if (pc.out_format == FLAT) expect_loop(s, L_EMIT, (long long)f.out_words);
    char note[96];
    std::snprintf(note, sizeof note, "%dx%dx%d %dx%d/%dx%d -> %dx%d", in.c, in.h, in.w, pc.kh, pc.kw, pc.sh, pc.sw,
                  out_h, out_w);
    s.note = note;
    return s;
}

// ---- LRN ------------------------------------------------------------------------------------

struct lrn_case {
    int size = 5;
    std::vector<long long> squares;           // [16], j = 0..15
    std::vector<std::vector<long long>> cuts;  // [15][jo1], non-increasing rows
    map3 input;
};

step_io build_lrn(const lrn_case &lc) {
    step_io s;
    const map3 &in = lc.input;
    const int before = (lc.size - 1) / 2, after = lc.size - 1 - before;
    const int jo1 = (int)lc.cuts[0].size();
    map3 out(in.c, in.h, in.w);
    for (int c = 0; c < in.c; c++) {
        for (int y = 0; y < in.h; y++) {
            for (int x = 0; x < in.w; x++) {
                long long sum = 0;
                for (int cc = c - before; cc <= c + after; cc++) {
                    if (cc >= 0 && cc < in.c) sum += lc.squares[in.get(cc, y, x)];
                }
                const int j = (int)in.get(c, y, x);
                int code = 0;
                if (j != 0) {
                    for (int m = 0; m < jo1; m++) code += sum <= lc.cuts[j - 1][m];
                }
                out.at(c, y, x) = code;
            }
        }
    }
    words_t consts = int32_words(lc.squares);
    for (const auto &row : lc.cuts) append(consts, int32_words(row));
    const words_t map = blocked_words(in);
    fields f;
    f.opcode = OP_LRN;
    f.j1 = 15;
    f.jo1 = jo1;
    f.in_c = f.out_c = in.c;
    f.in_h = f.out_h = in.h;
    f.in_w = f.out_w = in.w;
    f.kh = lc.size;
    f.const_words = consts.size();
    f.map_words = map.size();
    f.out_words = format_words(BLOCKED, in.c, in.h, in.w);
    s.a = descriptor_words(f);
    append(s.a, consts);
    append(s.a, map);
    s.a.push_back(0);
    close_transfers(s);
    s.expect = map_answer(out, BLOCKED);
    s.expect.push_back(trailer(0, 0));
    const long long plane = cdiv(in.h, 4) * cdiv(in.w, 4);
    expect_loop(s, L_DESCRIPTOR, 8);
    expect_loop(s, L_QUOTIENTS, KCNN_QUOTIENT_BITS);
    expect_loop(s, L_CONST, (long long)consts.size());
    expect_loop(s, L_PLANE, plane * std::min(in.c, after + 1));
    for (int c = 0; c < in.c; c++) {
        expect_loop(s, L_LRN, std::max(plane * 16 / (long long)LANES, c + after + 1 < in.c ? plane : 0));
    }
    char note[64];
    std::snprintf(note, sizeof note, "%dx%dx%d size %d", in.c, in.h, in.w, lc.size);
    s.note = note;
    return s;
}

lrn_case random_lrn(random_source &rng, int c, int h, int w, int size, int jo1) {
    lrn_case lc;
    lc.size = size;
    lc.squares.assign(16, 0);
    for (int j = 1; j < 16; j++) {
        const int aq = rng.range(1, 255);
        lc.squares[j] = (long long)aq * aq;
    }
    lc.cuts.assign(15, std::vector<long long>(jo1));
    for (auto &row : lc.cuts) {
        long long v = rng.range(0, 400000);
        for (int m = 0; m < jo1; m++) {
            row[m] = rng.chance(0.05) ? (m == 0 ? 2000000 : row[m - 1]) : v;  // ties and huge cuts
            v -= rng.range(0, 60000);
            if (rng.chance(0.05)) v = -rng.range(1, 100000);  // unreachable codes
            if (m > 0 && row[m] > row[m - 1]) row[m] = row[m - 1];
        }
    }
    lc.input = map3(c, h, w);
    for (long long &v : lc.input.v) v = rng.chance(0.2) ? 0 : rng.range(1, 15);
    // Some cut points equal to window sums that occur, so S == cut is exercised.
    const int before = (size - 1) / 2, after = size - 1 - before;
    std::vector<long long> sums;
    for (int ch = 0; ch < c; ch++) {
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                long long sum = 0;
                for (int k = ch - before; k <= ch + after; k++) {
                    if (k >= 0 && k < c) sum += lc.squares[lc.input.get(k, y, x)];
                }
                sums.push_back(sum);
            }
        }
    }
    for (auto &row : lc.cuts) {
        for (int m = 0; m < jo1; m++) {
            if (rng.chance(0.4)) row[m] = sums[rng.range(0, (int)sums.size() - 1)];
        }
        std::sort(row.begin(), row.end(), [](long long x, long long y) { return x > y; });
    }
    return lc;
}

// ---- the cases --------------------------------------------------------------------------------

conv_case base_conv(random_source &rng, int in_c, int hw_h, int hw_w, int out_c, int kh, int kw) {
    conv_case cc;
    cc.in_c = in_c;
    cc.in_h = hw_h;
    cc.in_w = hw_w;
    cc.out_c = out_c;
    cc.kh = kh;
    cc.kw = kw;
    cc.cb = random_books(rng, rng.range(2, 15), rng.range(2, 15), rng.range(1, 15), false);
    return cc;
}

void finish_conv(conv_case &cc, random_source &rng, int share, double density, int most_channels) {
    if (cc.mask.empty()) place(cc, share, rng, true);
    if (cc.weights.empty()) random_weights(cc, rng, density);
    if (!cc.f32 && !cc.u8 && cc.input.v.empty()) random_input(cc, rng, 0.3);
    const int out_h = out_size(cc.in_h, cc.pad_t, cc.pad_b, cc.kh, cc.dh, cc.sub);
    const int out_w = out_size(cc.in_w, cc.pad_l, cc.pad_r, cc.kw, cc.dw, cc.sub);
    if (cc.jobs.empty()) split_jobs(cc, most_channels, out_h, out_w);
}

// A U8 first conv: `raw` channels of (in_h s, in_w s) pixels at s2d s, j1 input codes (J - 2
// = j1 - 1 cut points a channel: non-decreasing, with ties, 0 and 256 among them), pixels
// that often equal a cut point, one below it or the zero pixel; the whole image as window.
// The data window (rows row0..row1, columns col0..col1 of the map section).
void set_window(conv_case &cc, int row0, int row1, int col0, int col1) {
    cc.window[0] = row0;
    cc.window[1] = row1;
    cc.window[2] = col0;
    cc.window[3] = col1;
}

conv_case u8_conv(random_source &rng, int raw, int s, int in_h, int in_w, int out_c, int k, int j1, bool act_signed) {
    conv_case cc;
    cc.in_c = raw * s * s;
    cc.in_h = in_h;
    cc.in_w = in_w;
    cc.out_c = out_c;
    cc.kh = cc.kw = k;
    cc.u8 = true;
    cc.s2d = s;
    cc.cb = random_books(rng, rng.range(2, 15), j1, rng.range(1, 15), act_signed);
    const int h0 = in_h * s, w0 = in_w * s;
    for (int c = 0; c < raw; c++) {
        std::vector<int> t;
        for (int m = 0; m < j1 - 1; m++) {
            const int pick = rng.range(0, 9);
            t.push_back(pick == 0 ? 0 : pick == 1 ? 256 : rng.range(1, 255));
        }
        std::sort(t.begin(), t.end());
        if (t.size() > 3) t[2] = t[1];  // a tie
        cc.cuts.push_back(t);
        const int z = rng.range(0, 4);
        cc.zero_pixel.push_back(z == 0 ? 0xFFFF : z == 1 ? 256 : rng.range(0, 255));
    }
    cc.pixels.resize((size_t)raw * h0 * w0);
    for (size_t i = 0; i < cc.pixels.size(); i++) {
        const std::vector<int> &t = cc.cuts[i / ((size_t)h0 * w0)];
        const int z = cc.zero_pixel[i / ((size_t)h0 * w0)];
        const int pick = rng.range(0, 9);
        int p = rng.range(0, 255);
        if (pick == 0 && z < 256) p = z;
        if (pick >= 1 && pick <= 3 && !t.empty()) p = t[(size_t)rng.range(0, (int)t.size() - 1)] - (pick == 3 ? 1 : 0);
        cc.pixels[i] = (uint8_t)std::min(255, std::max(0, p));
    }
    set_window(cc, 0, h0, 0, w0);
    cc.row_padding_pixel = rng.range(0, 255);
    return cc;
}

void probe_case() {
    step_io s;
    fields f;
    f.opcode = OP_PROBE;
    f.in_h = f.in_w = f.out_h = f.out_w = 0;
    f.kh = f.kw = f.sh = f.sw = f.dh = f.dw = 0;
    f.s2d = f.sub = f.groups = 0;
    s.a = descriptor_words(f);
    close_transfers(s);
    int64_t values[12];
    kcnn_csim_config(values);
    const u64 info2 = (u64)P | (16ull << 16u) | (16ull << 24u) | (32ull << 32u) | (8ull << 40u) | (8ull << 48u) |
                      ((u64)STREAMS << 56u) | ((u64)log2_ceil(LANES) << 60u);
    s.expect = {0x4E4E434Bull, (u64)KCNN_PROTOCOL | ((u64)build::ch_max << 16u), info2,
                (u64)build::in_depth | ((u64)build::w_depth << 21u) | ((u64)build::out_depth << 42u),
                trailer(0, 0xFFFF)};
    expect_loop(s, L_DESCRIPTOR, 8);
    check("probe", s);
    // A probe with a count: refused.
    f.map_words = 1;
    s.a = descriptor_words(f);
    close_transfers(s);
    s.expect = {trailer(KCNN_STATUS_BAD_GEOMETRY, 0xFFFF)};
    s.status = KCNN_STATUS_BAD_GEOMETRY;
    check("probe_with_a_count", s);
}

// Every conv / fc the cases below run, with a name.
void good_cases(std::vector<std::pair<std::string, step_io>> &steps, std::vector<conv_case> &convs,
                std::vector<fc_case> &fcs) {
    random_source rng(2026);
    {   // 3 input channels, 3x3 pad 1; channel 0 copied into 2 partitions; 2 jobs; dense
        conv_case cc = base_conv(rng, 3, 7, 9, 5, 3, 3);
        cc.pad_t = cc.pad_l = cc.pad_b = cc.pad_r = 1;
        place(cc, 1, rng, false);
        cc.mask[0] |= 1u << (P - 1);  // a second copy of channel 0, at its slot
        finish_conv(cc, rng, 1, 0.7, 3);
        cc.name = "conv_3ch_pad1_copy2_dense";
        convs.push_back(cc);
    }
    {   // groups 2, sparse, 2x3 kernel, asymmetric pads, input channels in 2-partition sets
        conv_case cc = base_conv(rng, 4, 9, 7, 6, 2, 3);
        cc.groups = 2;
        cc.pad_t = 1;
        cc.pad_l = 2;
        cc.pad_b = 0;
        cc.pad_r = 1;
        cc.sparse = true;
        finish_conv(cc, rng, 2, 0.6, 2);
        cc.name = "conv_groups2_sparse_share2";
        convs.push_back(cc);
    }
    {   // dilation 2, 5x5, sparse with long zero runs (fillers), a channel with no weights
        conv_case cc = base_conv(rng, 2, 12, 11, 3, 5, 5);
        cc.dh = cc.dw = 2;
        cc.pad_t = cc.pad_l = cc.pad_b = cc.pad_r = 4;
        cc.sparse = true;
        place(cc, 1, rng, false);
        cc.cb = random_books(rng, 15, 15, 15, true);
        random_weights(cc, rng, 0.08);
        for (int i = 0; i < 2 * 25; i++) cc.weights[i] = 0;  // output channel 0: all zero
        finish_conv(cc, rng, 1, 0.08, 256);
        cc.name = "conv_dil2_5x5_sparse_empty_ch";
        convs.push_back(cc);
    }
    {   // FLAT output (buffered), two jobs
        conv_case cc = base_conv(rng, 3, 6, 6, 20, 3, 3);
        cc.pad_t = cc.pad_l = cc.pad_b = cc.pad_r = 1;
        cc.out_format = FLAT;
        finish_conv(cc, rng, 2, 0.5, 12);
        cc.name = "conv_flat_out";
        convs.push_back(cc);
    }
    {   // stride 2 computed at stride 1 and subsampled (buffered BLOCKED)
        conv_case cc = base_conv(rng, 3, 11, 10, 4, 3, 3);
        cc.sub = 2;
        cc.pad_t = cc.pad_l = 1;
        cc.pad_b = cc.pad_r = 1;
        finish_conv(cc, rng, 1, 0.6, 3);
        cc.name = "conv_sub2_blocked";
        convs.push_back(cc);
    }
    {   // stride 3, FLAT out
        conv_case cc = base_conv(rng, 2, 13, 14, 16, 3, 2);
        cc.sub = 3;
        cc.out_format = FLAT;
        finish_conv(cc, rng, 1, 0.6, 16);
        cc.name = "conv_sub3_flat";
        convs.push_back(cc);
    }
    {   // the last layer: int32 accumulators (buffered ACC)
        conv_case cc = base_conv(rng, 3, 5, 6, 7, 3, 3);
        cc.cb = random_books(rng, 9, 9, 0, false);
        cc.pad_t = cc.pad_l = cc.pad_b = cc.pad_r = 1;
        cc.out_format = ACC;
        finish_conv(cc, rng, 1, 0.6, 4);
        cc.name = "conv_acc_out";
        convs.push_back(cc);
    }
    {   // FLAT outputs packed on across jobs: groups 2 of 9 channels of 3x3 outputs, jobs of at
        // most 4 channels (36 outputs): most jobs end mid-word, the group ends too
        conv_case cc = base_conv(rng, 4, 5, 5, 18, 3, 3);
        cc.groups = 2;
        cc.out_format = FLAT;
        finish_conv(cc, rng, 1, 0.7, 4);
        cc.name = "conv_groups2_flat_mid_word";
        convs.push_back(cc);
    }
    {   // a global average pool as a depthwise conv (kernel = the whole map, one output a
        // channel, a job a channel): ACC logits, then FLAT codes into an fc
        for (int f = 0; f < 2; f++) {
            conv_case cc = base_conv(rng, f ? 7 : 5, 6, 6, f ? 7 : 5, 6, 6);
            cc.groups = cc.in_c;
            cc.out_format = f ? FLAT : ACC;
            cc.cb = random_books(rng, rng.range(2, 15), rng.range(2, 15), f ? rng.range(1, 15) : 0, false);
            finish_conv(cc, rng, 1, 0.8, 256);
            cc.name = f ? "conv_gap_flat" : "conv_gap_acc";
            convs.push_back(cc);
        }
    }
    {   // the jobs' outputs run past the out memory's end and wrap (13x13 = 169 outputs a
        // channel: every job ends mid-word), FLAT and ACC
        for (int f = 0; f < 2; f++) {
            const int places = (f ? 8 : 1) * 169;
            const int channels = (int)build::out_depth / places + 3;
            conv_case cc = base_conv(rng, 1, 13, 13, channels, 1, 1);
            cc.out_format = f ? ACC : FLAT;
            cc.cb = random_books(rng, rng.range(2, 15), rng.range(2, 15), f ? 0 : rng.range(1, 15), false);
            finish_conv(cc, rng, 1, 0.9, std::max(1, channels / 3));
            cc.name = f ? "conv_acc_wraps_out_memory" : "conv_flat_wraps_out_memory";
            convs.push_back(cc);
        }
    }
    {   // F32 input, s2d 4 (an 8x8 stride-4 conv as 2x2 on 48 channels), signed input
        conv_case cc;
        cc.in_c = 3 * 16;
        cc.in_h = 5;
        cc.in_w = 6;
        cc.out_c = 6;
        cc.kh = cc.kw = 2;
        cc.f32 = true;
        cc.s2d = 4;
        cc.cb = random_books(rng, 12, 7, 9, true);
        cc.bounds = {-1.5, -0.25, 0.0, 0.125, 0.7, 3.0};
        const int h0 = cc.in_h * 4, w0 = cc.in_w * 4;
        cc.floats.assign((size_t)3 * h0 * w0, 0.0f);
        for (float &v : cc.floats) {
            const int k = rng.range(0, 9);
            const float picks[] = {0.0f, -0.0f, -2.0f, -1.5f, -0.2f, 0.125f, 0.12500001f, 0.5f, 2.9f, 1e30f};
            v = picks[k];
        }
        cc.row_padding_value = {123.0f};
        finish_conv(cc, rng, 1, 0.5, 4);
        cc.name = "conv_f32_s2d4";
        convs.push_back(cc);
    }
    {   // F32 input, s2d 1, 3x3 pad 1, width not a multiple of 16
        conv_case cc;
        cc.in_c = 2;
        cc.in_h = 6;
        cc.in_w = 21;
        cc.out_c = 4;
        cc.kh = cc.kw = 3;
        cc.pad_t = cc.pad_l = cc.pad_b = cc.pad_r = 1;
        cc.f32 = true;
        cc.s2d = 1;
        cc.cb = random_books(rng, 5, 4, 6, false);
        cc.bounds = {0.3, 0.9, 1.7};
        cc.floats.assign((size_t)2 * 6 * 21, 0.0f);
        for (float &v : cc.floats) v = rng.chance(0.3) ? 0.0f : (float)rng.range(1, 250) / 100.0f;
        finish_conv(cc, rng, 1, 0.7, 4);
        cc.name = "conv_f32_s2d1";
        convs.push_back(cc);
    }
    {   // F32 input, s2d 2
        conv_case cc;
        cc.in_c = 3 * 4;
        cc.in_h = 5;
        cc.in_w = 9;
        cc.out_c = 5;
        cc.kh = cc.kw = 2;
        cc.f32 = true;
        cc.s2d = 2;
        cc.cb = random_books(rng, 7, 3, 4, false);
        cc.bounds = {0.5, 1.0};
        cc.floats.assign((size_t)3 * 10 * 18, 0.0f);
        for (float &v : cc.floats) v = rng.chance(0.2) ? 0.0f : (float)rng.range(1, 200) / 100.0f;
        finish_conv(cc, rng, 2, 0.7, 5);
        cc.name = "conv_f32_s2d2";
        convs.push_back(cc);
    }
    {   // U8 input (their own random source: the cases after keep theirs), s2d 4 (an 8x8
        // stride-4 conv as 2x2 on 48 channels), the host's padding outside the window (a row
        // and 2 columns before the image, 3 rows and 2 columns after), signed input codebook
        random_source pr(58);
        conv_case cc = u8_conv(pr, 3, 4, 5, 6, 6, 2, 7, true);
        set_window(cc, 1, 17, 2, 22);
        finish_conv(cc, pr, 1, 0.5, 4);
        cc.name = "conv_u8_s2d4";
        convs.push_back(cc);
        // s2d 1, 4 channels (the pixel encoder's rows), 3x3 pad 1, J = 16 (14 cut points,
        // code 15), width 21 (2 segments a row), a window inside the image, and the
        // section's entries past J - 2 not 0xFFFF (the kernel ignores them)
        conv_case c1 = u8_conv(pr, 4, 1, 6, 21, 4, 3, 15, false);
        c1.pad_t = c1.pad_l = c1.pad_b = c1.pad_r = 1;
        set_window(c1, 1, 5, 3, 19);
        c1.unused_cut = 0;
        finish_conv(c1, pr, 1, 0.7, 4);
        c1.name = "conv_u8_s2d1_4ch_j16";
        convs.push_back(c1);
        // s2d 2, one channel 10x40 (3 segments a row, the last one part padding), J = 3,
        // input channels in 2-partition sets, a window that drops the last row and column,
        // the section's entries past J - 2 zero
        conv_case c2 = u8_conv(pr, 1, 2, 5, 20, 5, 2, 3, false);
        set_window(c2, 0, 9, 0, 39);
        c2.unused_cut = 0;
        finish_conv(c2, pr, 2, 0.7, 5);
        c2.name = "conv_u8_s2d2_gray";
        convs.push_back(c2);
        // the column window on multiples of 8 (a word's 8 lanes all in or all out: the
        // kernel tests the window on x's multiple of 8 and the lane) and ending inside the
        // second segment, 2 channels, width 30
        conv_case c3 = u8_conv(pr, 2, 1, 4, 30, 3, 1, 5, false);
        set_window(c3, 1, 3, 8, 24);
        finish_conv(c3, pr, 1, 0.8, 4);
        c3.name = "conv_u8_window_on_words";
        convs.push_back(c3);
    }
    {   // thresholds exactly on accumulators that occur (acc >= T ties)
        conv_case cc = base_conv(rng, 3, 8, 8, 6, 3, 3);
        cc.pad_t = cc.pad_l = cc.pad_b = cc.pad_r = 1;
        cc.cb = random_books(rng, 6, 5, 15, false);
        cc.tie_thresholds = true;
        finish_conv(cc, rng, 1, 0.6, 6);
        cc.name = "conv_threshold_ties";
        convs.push_back(cc);
    }
    {   // many input channels (several slots per partition), 1x1, sparse
        conv_case cc = base_conv(rng, 40, 5, 7, 37, 1, 1);
        cc.sparse = true;
        finish_conv(cc, rng, 1, 0.4, 16);
        cc.name = "conv_40ch_1x1_sparse";
        convs.push_back(cc);
    }
    // Random convs (sizes, kernels, dilations, pads, groups, sub, forms, formats, splits).
    for (int n = 0; n < 24; n++) {
        conv_case cc;
        cc.groups = rng.chance(0.3) ? rng.range(2, 3) : 1;
        cc.in_c = cc.groups * rng.range(1, 9);
        cc.out_c = cc.groups * rng.range(1, 12);
        cc.kh = rng.range(1, 5);
        cc.kw = rng.range(1, 5);
        cc.dh = rng.chance(0.3) ? 2 : 1;
        cc.dw = rng.chance(0.3) ? 2 : 1;
        cc.in_h = rng.range(std::max(1, (cc.kh - 1) * cc.dh + 1 - 2), 13);
        cc.in_w = rng.range(std::max(1, (cc.kw - 1) * cc.dw + 1 - 2), 13);
        cc.pad_t = rng.range(0, (cc.kh - 1) * cc.dh);
        cc.pad_l = rng.range(0, (cc.kw - 1) * cc.dw);
        cc.pad_b = rng.range(0, (cc.kh - 1) * cc.dh);
        cc.pad_r = rng.range(0, (cc.kw - 1) * cc.dw);
        if (cc.in_h + cc.pad_t + cc.pad_b < (cc.kh - 1) * cc.dh + 1) cc.pad_b = (cc.kh - 1) * cc.dh + 1 - cc.in_h - cc.pad_t;
        if (cc.in_w + cc.pad_l + cc.pad_r < (cc.kw - 1) * cc.dw + 1) cc.pad_r = (cc.kw - 1) * cc.dw + 1 - cc.in_w - cc.pad_l;
        if (cc.pad_b > (cc.kh - 1) * cc.dh || cc.pad_r > (cc.kw - 1) * cc.dw) continue;
        cc.sub = rng.chance(0.25) ? rng.range(2, 3) : 1;
        cc.sparse = rng.chance(0.5);
        const int formats[] = {BLOCKED, BLOCKED, FLAT, ACC};
        cc.out_format = formats[rng.range(0, 3)];
        cc.cb = random_books(rng, rng.range(1, 15), rng.range(1, 15), cc.out_format == ACC ? 0 : rng.range(1, 15),
                             rng.chance(0.3));
        const int shares[] = {1, 2, 4};
        finish_conv(cc, rng, shares[rng.range(0, 2)], rng.chance(0.5) ? 0.2 : 0.7, rng.range(1, 9));
        cc.name = "conv_random_" + std::to_string(n);
        convs.push_back(cc);
    }
    // Protocol 3: a signed output map through the code table, the residual add of a
    // shortcut map (R in acc units), both; several jobs, subsampled and FLAT outputs.
    for (int n = 0; n < 4; n++) {
        conv_case cc = base_conv(rng, 3, 7 + n, 9 - n, 5 + n, 3, 3);
        cc.pad_t = cc.pad_l = cc.pad_b = cc.pad_r = 1;
        cc.sub = n >= 2 ? 2 : 1;
        cc.out_format = n % 2 ? FLAT : BLOCKED;
        const bool table = n != 1, resid = n != 2;
        cc.cb = random_books(rng, rng.range(2, 15), rng.range(2, 15), 13, false);
        if (table) cc.cb.table = signed_table(13, 6);
        if (resid) cc.cb.resid = random_resid(rng, 40000);
        cc.tie_thresholds = true;
        finish_conv(cc, rng, 1, 0.7, cc.out_format == FLAT ? 16 : 3);
        const int out_h = out_size(cc.in_h, 1, 1, 3, 1, cc.sub), out_w = out_size(cc.in_w, 1, 1, 3, 1, cc.sub);
        cc.shortcut = map3(cc.out_c, out_h, out_w);
        for (long long &v : cc.shortcut.v) v = rng.range(0, 15);
        cc.name = std::string("conv_p3_") + (table ? "table" : "") + (resid ? "_resid" : "") +
                  (cc.sub > 1 ? "_sub2" : "") + (cc.out_format == FLAT ? "_flat" : "_blocked");
        convs.push_back(cc);
    }
    for (const conv_case &cc : convs) steps.push_back({cc.name, build_conv(cc)});

    {   // sparse fc with fillers (density 3%) and an empty channel, FLAT out, 2 jobs
        fc_case fc = random_fc(rng, 300, 21, true, FLAT, 0.03, 16);
        for (int t = 0; t < fc.in_c; t++) fc.weights[(size_t)5 * fc.in_c + t] = 0;
        fc.name = "fc_sparse_fillers_empty_ch";
        fcs.push_back(fc);
    }
    {   // sparse fc with long zero runs: in partition 0 (and 1, 5) of every channel, entries
        // after gaps of 16, 17, 240, 241, 255, 256 and 1000 positions (fillers of skip 1..15),
        // the last one at the window's last position (the widest fc input a partition holds:
        // 4096 positions, or the tile's 16 tile_depth codes on a small build)
        fc_case fc = random_fc(rng, std::min(65535, (int)(P * fc_window())), 5, true, ACC, 0.0, 2);
        for (int o = 0; o < fc.out_c; o++) {
            for (int p : {0, 1, 5}) {
                std::vector<int> at = {o};
                for (int gap : {16, 17, 240, 241, 255, 256, 1000}) at.push_back(at.back() + gap + 1);
                at.push_back((fc.in_c - 1 - p) / (int)P);  // the window's last position
                for (int pos : at) {
                    fc.weights[(size_t)o * fc.in_c + (size_t)pos * P + p] = rng.range(1, (int)fc.cb.wq.size());
                }
            }
        }
        fc.name = "fc_sparse_long_zero_runs";
        fcs.push_back(fc);
    }
    {   // the docs' worked step: 4 inputs, 2 outputs, ACC
        fc_case fc;
        fc.in_c = 4;
        fc.out_c = 2;
        fc.out_format = ACC;
        fc.cb.wq = {-2, 3};
        fc.cb.aq = {1, 2};
        fc.weights = {1, 2, 0, 2, 2, 0, 1, 1};
        fc.bias = {1, -1};
        fc.input = {1, 0, 2, 1};
        fc.jobs = {2};
        fc.name = "fc_worked_example";
        fcs.push_back(fc);
    }
    {   // dense, ACC at the accumulator bound
        fc_case fc = random_fc(rng, 200, 3, false, ACC, 1.0, 256);
        fc.cb.wq = {127};
        fc.cb.aq = {255};
        for (int &w : fc.weights) w = 1;
        for (int &a : fc.input) a = 1;
        const long long top = 200LL * 127 * 255;
        fc.bias = {2147483647LL - top, -(2147483647LL - top), 0};
        fc.name = "fc_acc_bound";
        fcs.push_back(fc);
    }
    {
        fc_case fc = random_fc(rng, 150, 40, false, FLAT, 0.5, 32);
        fc.cb = random_books(rng, 7, 9, 15, true);
        for (int &w : fc.weights) w = w ? rng.range(1, 7) : 0;
        for (int &a : fc.input) a = a ? rng.range(1, 9) : 0;
        fc.tie_thresholds = true;
        fc.name = "fc_threshold_ties";
        fcs.push_back(fc);
    }
    for (int n = 0; n < 14; n++) {
        const bool sparse = rng.chance(0.5);
        const int fmt = rng.chance(0.5) ? FLAT : ACC;
        fc_case fc = random_fc(rng, rng.range(1, 700), rng.range(1, 70), sparse, fmt, rng.chance(0.5) ? 0.05 : 0.6,
                               rng.range(1, 40));
        fc.name = "fc_random_" + std::to_string(n);
        fcs.push_back(fc);
    }
    for (int n = 0; n < 2; n++) {  // protocol 3: code table and residual, several jobs
        fc_case fc = random_fc(rng, 90, 40, n == 1, FLAT, 0.5, 16);
        fc.cb.thresholds.assign(11, 0);
        fc.cb.table = signed_table(11, 4);
        fc.cb.resid = random_resid(rng, 30000);
        fc.tie_thresholds = true;
        for (int o = 0; o < fc.out_c; o++) fc.shortcut.push_back(rng.range(0, 15));
        fc.name = std::string("fc_p3_table_resid") + (n ? "_sparse" : "");
        fcs.push_back(fc);
    }
    for (const fc_case &fc : fcs) steps.push_back({fc.name, build_fc(fc)});
}

void pool_and_lrn_cases(std::vector<std::pair<std::string, step_io>> &steps) {
    random_source rng(77);
    auto input = [&](int c, int h, int w) {
        map3 m(c, h, w);
        for (long long &v : m.v) v = rng.chance(0.3) ? 0 : rng.range(1, 15);
        return m;
    };
    {
        pool_case pc;
        pc.kh = pc.kw = 3;
        pc.sh = pc.sw = 2;
        pc.input = input(5, 13, 13);
        steps.push_back({"pool_3x3_s2", build_pool(pc)});
    }
    {
        pool_case pc;
        pc.kh = pc.kw = 2;
        pc.sh = pc.sw = 2;
        pc.input = input(4, 9, 10);
        pc.pad_b = 1;
        steps.push_back({"pool_2x2_s2", build_pool(pc)});
    }
    {
        pool_case pc;
        pc.kh = pc.kw = 3;
        pc.sh = pc.sw = 2;
        pc.pad_t = pc.pad_l = pc.pad_b = pc.pad_r = 1;
        pc.input = input(3, 7, 11);
        steps.push_back({"pool_3x3_s2_pad1", build_pool(pc)});
    }
    {
        pool_case pc;
        pc.kh = pc.kw = 3;
        pc.sh = pc.sw = 2;
        pc.out_format = FLAT;
        pc.input = input(7, 13, 13);
        steps.push_back({"pool_3x3_s2_flat", build_pool(pc)});
    }
    {
        pool_case pc;
        pc.kh = pc.kw = 2;
        pc.sh = pc.sw = 2;
        pc.out_format = FLAT;
        pc.input = input(3, 6, 6);
        steps.push_back({"pool_2x2_s2_flat", build_pool(pc)});
    }
    for (int n = 0; n < 10; n++) {
        pool_case pc;
        pc.kh = rng.range(1, 3);
        pc.kw = rng.range(1, 3);
        pc.sh = rng.range(1, 4);
        pc.sw = rng.range(1, 4);
        pc.pad_t = rng.range(0, pc.kh - 1);
        pc.pad_l = rng.range(0, pc.kw - 1);
        pc.pad_b = rng.range(0, pc.kh - 1);
        pc.pad_r = rng.range(0, pc.kw - 1);
        pc.out_format = rng.chance(0.3) ? FLAT : BLOCKED;
        pc.input = input(rng.range(1, 5), rng.range(pc.kh, 17), rng.range(pc.kw, 17));
        steps.push_back({"pool_random_" + std::to_string(n), build_pool(pc)});
    }
    if (P >= 6) {
        steps.push_back({"lrn_size5", build_lrn(random_lrn(rng, 9, 7, 10, 5, 11))});
        steps.push_back({"lrn_size5_few_channels", build_lrn(random_lrn(rng, 2, 4, 4, 5, 15))});
    }
    steps.push_back({"lrn_size3_jo1_1", build_lrn(random_lrn(rng, 6, 5, 3, 3, 1))});
    steps.push_back({"lrn_size1", build_lrn(random_lrn(rng, 3, 9, 9, 1, 8))});
    if (P >= 8) steps.push_back({"lrn_size7", build_lrn(random_lrn(rng, 11, 6, 6, 7, 14))});
}

// ---- add (protocol 3) ------------------------------------------------------------------------

struct add_case {
    int in_format = BLOCKED, out_format = BLOCKED;
    map3 a, b;                       // the two maps' codes, one shape
    std::vector<long long> r1, r2;   // R1[0..15], R2[0..15]
    std::vector<long long> thresholds;
    std::vector<int> table;          // OUT_TABLE (empty: none)
};

words_t map_words_of(const map3 &m, int format) {
    if (format == BLOCKED) return blocked_words(m);
    std::vector<int> codes(m.v.begin(), m.v.end());
    return code_words(codes);
}

step_io build_add(const add_case &ac) {
    step_io s;
    map3 out(ac.a.c, ac.a.h, ac.a.w);
    for (size_t i = 0; i < out.v.size(); i++) {
        const long long acc = ac.r1[(size_t)ac.a.v[i]] + ac.r2[(size_t)ac.b.v[i]];
        int c = 0;
        for (long long t : ac.thresholds) c += acc >= t;
        out.v[i] = ac.table.empty() ? c : ac.table[(size_t)c];
    }
    words_t consts = int32_words(ac.r1);
    append(consts, int32_words(ac.r2));
    append(consts, int32_words(ac.thresholds));
    if (!ac.table.empty()) consts.push_back(table_word(ac.table));
    const words_t ma = map_words_of(ac.a, ac.in_format), mb = map_words_of(ac.b, ac.in_format);
    fields f;
    f.opcode = OP_ADD;
    f.flags = ac.table.empty() ? 0u : FLAG_OUT_TABLE;
    f.jo1 = (unsigned)ac.thresholds.size();
    f.in_c = f.out_c = ac.a.c;
    f.in_h = f.out_h = ac.a.h;
    f.in_w = f.out_w = ac.a.w;
    f.in_format = ac.in_format;
    f.out_format = ac.out_format;
    f.const_words = consts.size();
    f.map_words = ma.size();
    f.out_words = format_words(ac.out_format, ac.a.c, ac.a.h, ac.a.w);
    s.a = descriptor_words(f);
    append(s.a, consts);
    append(s.a, ma);
    s.a.push_back(0x0000000A444E454Bull);  // the reserved word
    append(s.a, mb);                        // the shortcut section: map B
    close_transfers(s);
    s.expect = map_answer(out, ac.out_format);
    s.expect.push_back(trailer(0, 0));
    const bool reorder = ac.in_format == BLOCKED && ac.out_format == FLAT;
    expect_loop(s, L_DESCRIPTOR, 8);
    expect_loop(s, L_QUOTIENTS, KCNN_QUOTIENT_BITS);
    expect_loop(s, L_CONST, (long long)consts.size());
    expect_loop(s, L_TABLE, 256);
    expect_loop(s, L_MAP, (long long)ma.size() + 1);
    expect_loop(s, L_ADD, (long long)mb.size() * (reorder ? 4 : 1));
    if (reorder) expect_loop(s, L_EMIT, (long long)f.out_words);
    char note[96];
    std::snprintf(note, sizeof note, "%dx%dx%d", ac.a.c, ac.a.h, ac.a.w);
    s.note = note;
    return s;
}

add_case random_add(random_source &rng, int c, int h, int w, int in_format, int out_format, bool table) {
    add_case ac;
    ac.in_format = in_format;
    ac.out_format = out_format;
    ac.a = map3(c, h, w);
    ac.b = map3(c, h, w);
    for (long long &v : ac.a.v) v = rng.range(0, 15);
    for (long long &v : ac.b.v) v = rng.range(0, 15);
    ac.r1 = random_resid(rng, 5000);
    ac.r2 = random_resid(rng, 5000);
    std::vector<long long> sums;
    for (size_t i = 0; i < ac.a.v.size(); i++) sums.push_back(ac.r1[(size_t)ac.a.v[i]] + ac.r2[(size_t)ac.b.v[i]]);
    ac.thresholds = thresholds_on(sums, 9);
    if (table) ac.table = signed_table(9, 4);
    return ac;
}

void add_cases(std::vector<std::pair<std::string, step_io>> &steps) {
    random_source rng(303);
    const int shapes[][3] = {{3, 5, 7}, {2, 4, 4}, {17, 2, 6}, {1, 1, 1}, {4, 13, 17}};
    const int formats[][2] = {{BLOCKED, BLOCKED}, {FLAT, FLAT}, {BLOCKED, FLAT}};
    const char *format_names[] = {"blocked", "flat", "acc", "f32"};
    int n = 0;
    for (const auto &shape : shapes) {
        for (const auto &fmt : formats) {
            const bool table = n++ % 2 == 0;
            const add_case ac = random_add(rng, shape[0], shape[1], shape[2], fmt[0], fmt[1], table);
            const std::string name = std::string("add_") + format_names[fmt[0]] + "_" + format_names[fmt[1]] + "_" +
                                     std::to_string(shape[0]) + "x" + std::to_string(shape[1]) + "x" +
                                     std::to_string(shape[2]) + (table ? "_table" : "");
            steps.push_back({name, build_add(ac)});
        }
    }
}

// ---- refused steps --------------------------------------------------------------------------

step_io refused(step_io s, unsigned status, unsigned job, const words_t &outputs_before) {
    s.status = status;
    s.expect = outputs_before;
    s.expect.push_back(trailer(status, job));
    s.check_log = false;
    return s;
}

void bad_cases() {
    random_source rng(9);
    conv_case cc = base_conv(rng, 3, 6, 7, 12, 3, 3);
    cc.pad_t = cc.pad_l = cc.pad_b = cc.pad_r = 1;
    cc.sparse = true;
    finish_conv(cc, rng, 1, 0.5, 4);
    const step_io good = build_conv(cc);
    const size_t map_at = 8 + (size_t)(good.a[5] & 0xFFFFFFFF);
    const size_t jobs_at = map_at + (size_t)(good.a[5] >> 32u) + 1;
    const words_t none;
    const words_t job0(good.expect.begin(), good.expect.begin() + 4 * 2 * 2);  // 4 channels x 2x2 blocks

    {
        step_io s = good;
        s.a[0] ^= 1u;
        if (STREAMS == 2) s.consumed_b = 0;  // B is not the host's to drain: see kcnn_step.h
        check("bad_magic", refused(s, KCNN_STATUS_BAD_MAGIC, 0xFFFF, none));
    }
    {
        step_io s = good;
        s.a[0] ^= 1ull << 33u;
        if (STREAMS == 2) s.consumed_b = 0;  // B is not the host's to drain: see kcnn_step.h
        check("bad_version", refused(s, KCNN_STATUS_BAD_VERSION, 0xFFFF, none));
    }
    {
        step_io s = good;
        s.a[0] = (s.a[0] & ~(0xFFull << 48u)) | (9ull << 48u);
        check("bad_opcode", refused(s, KCNN_STATUS_BAD_OPCODE, 0xFFFF, none));
    }
    {
        step_io s = good;
        s.a[1] = (s.a[1] & ~(0xFFull << 32u)) | (16ull << 32u);  // k1 = 16
        check("count_above_max_k1", refused(s, KCNN_STATUS_COUNT_ABOVE_MAX, 0xFFFF, none));
    }
    {
        step_io s = good;
        s.a[5] += 1;  // const_words
        check("bad_geometry_const_words", refused(s, KCNN_STATUS_BAD_GEOMETRY, 0xFFFF, none));
    }
    {
        step_io s = good;
        s.a[3] |= 2ull << 48u;  // conv stride 2 (conv strides are 1; see sub)
        s.a[3] &= ~(1ull << 48u);
        check("bad_geometry_conv_stride", refused(s, KCNN_STATUS_BAD_GEOMETRY, 0xFFFF, none));
    }
    {   // the descriptor claims one more job word on A than the jobs sum to
        step_io s = good;
        s.a[6] += 1;
        s.a.push_back(0);
        close_transfers(s);
        words_t before(good.expect.begin(), good.expect.end() - 1 - 4 * 2 * 2);
        check("bad_geometry_job_words", refused(s, KCNN_STATUS_BAD_GEOMETRY, 2, before));
    }
    {   // TLAST in the middle of the map
        step_io s = good;
        s.a_last[map_at + 2] = 1;
        s.consumed_a = (long long)map_at + 3;
        step_io r = refused(s, KCNN_STATUS_EARLY_TLAST, 0xFFFF, none);
        r.consumed_a = s.consumed_a;
        check("early_tlast_map", r);
    }
    {   // TLAST on the descriptor's last word of a conv
        step_io s = good;
        s.a_last[7] = 1;
        step_io r = refused(s, KCNN_STATUS_EARLY_TLAST, 0xFFFF, none);
        r.consumed_a = 8;
        check("early_tlast_descriptor", r);
    }
    {   // no TLAST on A's last word: the kernel reads on to the next TLAST
        step_io s = good;
        s.a_last.back() = 0;
        s.a.push_back(1);
        s.a.push_back(2);
        s.a_last.push_back(0);
        s.a_last.push_back(1);
        words_t before(good.expect.begin(), good.expect.end() - 1 - 4 * 2 * 2);
        check("missing_tlast_a", refused(s, KCNN_STATUS_MISSING_TLAST, 2, before));
    }
    if (STREAMS == 2) {
        step_io s = good;
        s.b_last.back() = 0;
        s.b.push_back(7);
        s.b_last.push_back(1);
        words_t before(good.expect.begin(), good.expect.end() - 1 - 4 * 2 * 2);
        check("missing_tlast_b", refused(s, KCNN_STATUS_MISSING_TLAST, 2, before));
    }
    {   // job 1's index is wrong: job 0's outputs, then the trailer
        step_io s = good;
        // job 1's header: the first word after job 0's with the "BJ" tag and index 1
        size_t at = jobs_at + 1;
        while (at < s.a.size() && !((s.a[at] & 0xFFFFu) == KCNN_JOB_TAG && ((s.a[at] >> 16u) & 0xFFFFu) == 1)) at++;
        s.a[at] ^= 1ull << 17u;  // index 1 -> 3
        check("bad_job_index", refused(s, KCNN_STATUS_BAD_JOB, 1, job0));
    }
    {   // sparse: job 1, partition 0 has an entry past its channel's end (i = 3 >= kh)
        conv_case bad = cc;
        bad.tamper = [](int job, std::vector<std::vector<uint8_t>> &seq) {
            if (job != 1) return;
            seq[0].insert(seq[0].begin(), (uint8_t)((12u << 4u) | 1u));  // position 12: i = 3, j = 0
        };
        const step_io s = build_conv(bad);
        check("bad_sparse_position", refused(s, KCNN_STATUS_BAD_SPARSE, 1, job0));
    }
    {   // sparse: an extra end-of-channel byte, so partition 0 closes too many channels
        conv_case bad = cc;
        bad.tamper = [](int job, std::vector<std::vector<uint8_t>> &seq) {
            if (job != 0) return;
            seq[0].push_back(0x21);  // an entry after the last channel
        };
        const step_io s = build_conv(bad);
        check("bad_sparse_after_last_channel", refused(s, KCNN_STATUS_BAD_SPARSE, 0, none));
    }
    {   // sparse: partition 0 (the longest sequence) misses its last end-of-channel byte
        fc_case fc = random_fc(rng, 4 * (int)P, 3, true, ACC, 0.0, 256);
        for (int o = 0; o < 3; o++) {
            for (int t = 0; t < fc.in_c; t += (int)P) fc.weights[(size_t)o * fc.in_c + t] = 1 + (o + t) % 3;
        }
        fc.cb = random_books(rng, 3, 3, 0, false);
        fc.tamper = [](int, std::vector<std::vector<uint8_t>> &seq) { seq[0].pop_back(); };
        const step_io s = build_fc(fc);
        check("bad_sparse_unclosed_channel", refused(s, KCNN_STATUS_BAD_SPARSE, 0, none));
    }
    {   // sparse fc, partition 0's window is 96 positions (in_c = 96 P), jobs of 2 channels; job
        // 1's first channel has no weight in partition 0, and a filler goes before its end byte.
        // Skip 6 covers positions 0..95, exactly the window: accepted, the outputs unchanged.
        // Skip 7 (0..111) points past it: BAD_SPARSE naming job 1 (a filler of 16 positions,
        // protocol 3's, would be inside).
        fc_case fc = random_fc(rng, 96 * (int)P, 4, true, ACC, 0.05, 2);
        for (int t = 0; t < fc.in_c; t += (int)P) fc.weights[(size_t)2 * fc.in_c + t] = 0;
        for (unsigned skip : {6u, 7u}) {
            fc.tamper = [skip](int job, std::vector<std::vector<uint8_t>> &seq) {
                if (job == 1) seq[0].insert(seq[0].begin(), (uint8_t)(skip << 4u));
            };
            const step_io s = build_fc(fc);
            if (skip == 6) {
                check("long_filler_to_the_window_end", s);
            } else {
                const words_t before(s.expect.begin(), s.expect.begin() + 1);  // job 0: 2 ACC
                check("bad_sparse_long_filler", refused(s, KCNN_STATUS_BAD_SPARSE, 1, before));
            }
        }
    }
    if (fc_window() == 4096) {  // a build whose fc window reaches the position limit
        // a filler of skip 15 after an entry at position 4095, the last one a position can
        // name: 4096 + 239 must not wrap into the window (a 12-bit register would give 239)
        fc_case fc = random_fc(rng, std::min(65535, 4096 * (int)P), 4, true, ACC, 0.0, 2);
        fc.weights[(size_t)2 * fc.in_c + 4095 * P] = 1;  // job 1, partition 0, position 4095
        fc.tamper = [](int job, std::vector<std::vector<uint8_t>> &seq) {
            if (job == 1) seq[0].insert(std::find(seq[0].begin(), seq[0].end(), 0), 0xF0);
        };
        const step_io s = build_fc(fc);
        const words_t before(s.expect.begin(), s.expect.begin() + 1);
        check("bad_sparse_filler_past_4095", refused(s, KCNN_STATUS_BAD_SPARSE, 1, before));
    }
    if (P * (build::w_depth / 2 + 8) < 65536) {  // a job's entries above W_DEPTH in a partition
        fc_case fc = random_fc(rng, (int)P * (build::w_depth / 2 + 8), 2, false, ACC, 1.0, 256);
        fc.fit = false;
        const step_io s = build_fc(fc);
        check("count_above_max_w_depth", refused(s, KCNN_STATUS_COUNT_ABOVE_MAX, 0, none));
    }
    {   // a job of 257 channels (after an aligned first job)
        fc_case fc = random_fc(rng, 20, 16 + 257, true, FLAT, 0.1, 256);
        fc.jobs = {16, 257};
        fc.fit = false;
        const step_io s = build_fc(fc);
        words_t before(s.expect.begin(), s.expect.begin() + 1);
        check("count_above_max_job_channels", refused(s, KCNN_STATUS_COUNT_ABOVE_MAX, 1, before));
    }
    {   // FLAT: job 1's codes fit OUT_DEPTH but not behind the partial word job 0 left (a plane
        // of 4^k - 1 = (2^k - 1)(2^k + 1) outputs: lead 15, then 4 channels = OUT_DEPTH - 4)
        unsigned side = 1;  // 2^k
        while (4 * side * side < build::out_depth) side *= 2;
        if (4 * side * side == build::out_depth) {
            conv_case f = base_conv(rng, 1, (int)side - 1, (int)side + 1, 5, 1, 1);
            f.out_format = FLAT;
            f.jobs = {1, 4};
            finish_conv(f, rng, 1, 0.9, 256);
            const step_io s = build_conv(f);
            const long long plane = ((long long)side - 1) * ((long long)side + 1);
            words_t before(s.expect.begin(), s.expect.begin() + plane / 16);
            check("count_above_max_behind_a_partial_word", refused(s, KCNN_STATUS_COUNT_ABOVE_MAX, 1, before));
        }
    }
    {   // a NaN and an infinity in the F32 input
        conv_case f;
        f.in_c = 1;
        f.in_h = 4;
        f.in_w = 4;
        f.out_c = 2;
        f.kh = f.kw = 1;
        f.f32 = true;
        f.cb = random_books(rng, 3, 3, 2, false);
        f.bounds = {0.5, 1.5};
        f.floats.assign(16, 1.0f);
        finish_conv(f, rng, 1, 1.0, 4);
        f.floats[5] = NAN;
        const step_io s = build_conv(f);
        check("bad_input_nan", refused(s, KCNN_STATUS_BAD_INPUT, 0xFFFF, none));
        f.floats[5] = 1.0f;
        f.floats[9] = -INFINITY;
        check("bad_input_inf", refused(build_conv(f), KCNN_STATUS_BAD_INPUT, 0xFFFF, none));
    }
    {   // U8: a map one segment (2 words) long or short, F32's constant count, 5 raw channels;
        // the good step has a cut point and a zero pixel above 256 (none, as 256 and 0xFFFF:
        // not their low 9 bits) and pixels 0
        random_source pr(77);
        conv_case u = u8_conv(pr, 2, 1, 4, 5, 2, 1, 4, false);
        u.cuts[0].back() = 0x0200;
        u.zero_pixel[1] = 0x0300;
        for (size_t i = 0; i < u.pixels.size(); i += 3) u.pixels[i] = 0;
        finish_conv(u, pr, 1, 1.0, 4);
        const step_io good_u8 = build_conv(u);
        check("u8_small", good_u8);
        for (int more = -1; more <= 1; more += 2) {
            step_io s = good_u8;
            s.a[5] += (u64)(long long)(2 * more) << 32u;  // map_words
            check(more > 0 ? "bad_geometry_u8_map_words_long" : "bad_geometry_u8_map_words_short",
                  refused(s, KCNN_STATUS_BAD_GEOMETRY, 0xFFFF, none));
        }
        step_io s = good_u8;
        s.a[5] -= KCNN_PIXEL_ENCODER_WORDS - 8;  // const_words as with F32's 8 key words
        check("bad_geometry_u8_const_words", refused(s, KCNN_STATUS_BAD_GEOMETRY, 0xFFFF, none));
        conv_case v = u8_conv(pr, 5, 1, 4, 5, 2, 1, 4, false);
        finish_conv(v, pr, 1, 1.0, 4);
        check("bad_geometry_u8_5_channels", refused(build_conv(v), KCNN_STATUS_BAD_GEOMETRY, 0xFFFF, none));
        conv_case w = u8_conv(pr, 5, 2, 2, 3, 2, 1, 4, false);
        finish_conv(w, pr, 1, 1.0, 4);
        check("bad_geometry_u8_5_channels_s2d2", refused(build_conv(w), KCNN_STATUS_BAD_GEOMETRY, 0xFFFF, none));
    }
    {   // protocol 3: R[0] != 0 (code 0 is exactly zero); RESIDUAL with an ACC answer
        random_source r3(31);
        conv_case rc = base_conv(r3, 2, 5, 6, 3, 3, 3);
        rc.pad_t = rc.pad_l = rc.pad_b = rc.pad_r = 1;
        rc.cb.resid = random_resid(r3, 100);
        rc.shortcut = map3(3, 5, 6);
        finish_conv(rc, r3, 1, 0.7, 3);
        rc.cb.resid[0] = 1;
        check("bad_constants_r0", refused(build_conv(rc), KCNN_STATUS_BAD_CONSTANTS, 0xFFFF, none));
        rc.cb.resid[0] = 0;
        rc.cb.thresholds.clear();
        rc.out_format = ACC;
        rc.jobs.clear();
        finish_conv(rc, r3, 1, 0.7, 2);
        check("bad_geometry_residual_acc", refused(build_conv(rc), KCNN_STATUS_BAD_GEOMETRY, 0xFFFF, none));
        add_case ac = random_add(r3, 2, 5, 5, BLOCKED, BLOCKED, true);
        ac.r2[0] = -7;
        check("bad_constants_add_r2", refused(build_add(ac), KCNN_STATUS_BAD_CONSTANTS, 0xFFFF, none));
        ac.r2[0] = 0;
        ac.in_format = FLAT;
        check("bad_geometry_add_flat_to_blocked", refused(build_add(ac), KCNN_STATUS_BAD_GEOMETRY, 0xFFFF, none));
    }
    {   // a refused step does not disturb the next one
        check("good_after_refusals", good);
    }
}

// Steps from vector files; returns false if a file cannot be read or parsed.
bool vector_cases(const char *path) {
    std::ifstream file(path);
    if (!file) {
        std::printf("FAIL cannot open %s\n", path);
        failures++;
        return false;
    }
    std::string line, name;
    step_io s;
    bool any_log = false;
    int line_no = 0;
    while (std::getline(file, line)) {
        line_no++;
        std::istringstream in(line);
        std::string tag;
        in >> tag;
        if (tag.empty() || tag[0] == '#') continue;
        if (tag == "step") {
            s = step_io();
            any_log = false;
            in >> name;
        } else if (tag == "a" || tag == "b" || tag == "out") {
            std::string hex;
            int last = 0;
            in >> hex >> last;
            const u64 word = std::stoull(hex, nullptr, 16);
            if (tag == "a") {
                s.a.push_back(word);
                s.a_last.push_back((uint8_t)last);
            } else if (tag == "b") {
                s.b.push_back(word);
                s.b_last.push_back((uint8_t)last);
            } else {
                s.expect.push_back(word);
            }
        } else if (tag == "status") {
            in >> s.status;
        } else if (tag == "log") {
            std::string loop;
            long long trips = 0;
            in >> loop >> trips;
            int id = -1;
            for (int k = 0; k < LOOP_IDS; k++) id = loop == LOOP_NAMES[k] ? k : id;
            if (id < 0) {
                std::printf("FAIL %s:%d: unknown loop %s\n", path, line_no, loop.c_str());
                failures++;
                return false;
            }
            any_log = true;
            s.log.push_back(id);
            s.log.push_back(trips);
        } else if (tag == "end") {
            s.check_log = any_log;
            s.note = std::string("from ") + path;
            check(name, s);
        } else {
            std::printf("FAIL %s:%d: unknown line '%s'\n", path, line_no, line.c_str());
            failures++;
            return false;
        }
    }
    return true;
}

}  // namespace

int main(int argc, char **argv) {
    std::printf("KCNN kernel C-sim: P=%u STREAMS=%u LRN_LANES=%u IN_DEPTH=%u W_DEPTH=%u OUT_DEPTH=%u CH_MAX=%u\n", P,
                STREAMS, LANES, build::in_depth, build::w_depth, build::out_depth, build::ch_max);
    probe_case();
    std::vector<std::pair<std::string, step_io>> steps;
    std::vector<conv_case> convs;
    std::vector<fc_case> fcs;
    good_cases(steps, convs, fcs);
    pool_and_lrn_cases(steps);
    add_cases(steps);
    for (const auto &named : steps) check(named.first, named.second);
    bad_cases();
    // A fresh kernel answers exactly like a used one.
    kcnn_csim_reset();
    check("after_reset_" + steps.front().first, steps.front().second);
    for (int i = 1; i < argc; i++) vector_cases(argv[i]);
    std::printf("%d cases, %d failed\n", cases, failures);
    return failures == 0 && cases > 0 ? 0 : 1;
}
