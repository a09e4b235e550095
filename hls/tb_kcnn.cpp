// Self-checking testbench: runs the job vectors (hls/vectors/*.txt) through kcnn_top and
// compares every output word, its TLAST, keep/strb and the status register. Exit code 0
// when all jobs match. No Python needed: this is what csim_design / cosim_design run first
// on a Vitis machine. Usage: tb_kcnn [vector files...] (default vectors/golden.txt).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "kcnn_top.h"

namespace {

struct job_vector {
    std::string name;
    std::vector<unsigned long long> in, out;
    std::vector<int> in_last, out_last;
    unsigned status = 0;
};

bool read_vectors(const char *path, std::vector<job_vector> &jobs) {
    std::ifstream file(path);
    if (!file) {
        std::printf("cannot open %s\n", path);
        return false;
    }
    std::string line;
    job_vector job;
    while (std::getline(file, line)) {
        std::istringstream fields(line);
        std::string tag;
        fields >> tag;
        if (tag.empty() || tag[0] == '#') continue;
        if (tag == "job") {
            job = job_vector();
            fields >> job.name;
        } else if (tag == "in" || tag == "out") {
            std::string hex;
            int last = 0;
            fields >> hex >> last;
            const unsigned long long word = std::stoull(hex, nullptr, 16);
            (tag == "in" ? job.in : job.out).push_back(word);
            (tag == "in" ? job.in_last : job.out_last).push_back(last);
        } else if (tag == "status") {
            fields >> job.status;
        } else if (tag == "end") {
            jobs.push_back(job);
        }
    }
    return true;
}

bool run(const job_vector &job) {
    hls::stream<kcnn::axis_word_t> in_stream("in_stream"), out_stream("out_stream");
    for (size_t i = 0; i < job.in.size(); i++) {
        kcnn::axis_word_t x;
        x.data = job.in[i];
        x.keep = -1;
        x.strb = -1;
        x.last = job.in_last[i];
        in_stream.write(x);
    }
    kcnn::word_t info0 = 0, info1 = 0, info2 = 0, info3 = 0;
    ap_uint<32> status = 0;
    kcnn_top(in_stream, out_stream, info0, info1, info2, info3, status);
    bool ok = true;
    if (!in_stream.empty()) {
        std::printf("%s: %zu input words left unread\n", job.name.c_str(), (size_t)in_stream.size());
        while (!in_stream.empty()) in_stream.read();
        ok = false;
    }
    if ((unsigned)status != job.status) {
        std::printf("%s: status %u, expected %u\n", job.name.c_str(), (unsigned)status, job.status);
        ok = false;
    }
    size_t n = 0;
    while (!out_stream.empty()) {
        const kcnn::axis_word_t y = out_stream.read();
        if (n >= job.out.size() || (unsigned long long)y.data != job.out[n] ||
            (int)y.last != job.out_last[n] || y.keep != 0xFF || y.strb != 0xFF) {
            std::printf("%s: output word %zu = %016llx last %d differs\n", job.name.c_str(), n,
                        (unsigned long long)y.data, (int)y.last);
            ok = false;
        }
        n++;
    }
    if (n != job.out.size()) {
        std::printf("%s: %zu output words, expected %zu\n", job.name.c_str(), n, job.out.size());
        ok = false;
    }
    return ok;
}

}  // namespace

int main(int argc, char **argv) {
    std::vector<const char *> paths;
    for (int i = 1; i < argc; i++) paths.push_back(argv[i]);
    if (paths.empty()) paths.push_back("vectors/golden.txt");
    std::vector<job_vector> jobs;
    for (size_t i = 0; i < paths.size(); i++) {
        if (!read_vectors(paths[i], jobs)) return 2;
    }
    int failed = 0;
    for (size_t i = 0; i < jobs.size(); i++) failed += run(jobs[i]) ? 0 : 1;
    std::printf("%zu jobs, %d failed\n", jobs.size(), failed);
    return (failed || jobs.empty()) ? 1 : 0;
}
