// cortex-bench-download: download_file() (SHA-256 on, resume bookkeeping, lock) against
// `curl -o` of the same file from the same loopback server, in one run; and the end-to-end
// time of `cortex-model list`.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cortex/models.h"
#include "http_test_server.h"

extern char ** environ;

using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int run_quiet(std::vector<std::string> argv) {
    std::vector<char *> a;
    for (auto & s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    if (posix_spawnp(&pid, a[0], &fa, nullptr, a.data(), environ) != 0) return -1;
    posix_spawn_file_actions_destroy(&fa);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: cortex-bench-download FILE CORTEX_MODEL_BIN [ROUNDS]\n");
        return 2;
    }
    const std::string file = argv[1], cortex_model = argv[2];
    const int rounds = argc > 3 ? std::atoi(argv[3]) : 3;
    struct stat st {};
    if (stat(file.c_str(), &st) != 0) {
        fprintf(stderr, "error: %s does not exist\n", file.c_str());
        return 1;
    }
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    const std::string sha = cortex::models::sha256_file(file);

    cortex::test::HttpTestServer server;
    server.set_file("/model.gguf", {.disk_path = file});
    const std::string url = server.base_url() + "/model.gguf";
    char tmpl[] = "/tmp/cortex-bench-XXXXXX";
    const std::string dir = mkdtemp(tmpl);

    std::vector<double> ours, curl;
    for (int r = 0; r < rounds; ++r) {
        unlink((dir + "/curl.gguf").c_str());
        auto t0 = Clock::now();
        if (run_quiet({"curl", "-s", "-f", "-o", dir + "/curl.gguf", url}) != 0) {
            fprintf(stderr, "error: curl failed\n");
            return 1;
        }
        curl.push_back(seconds_since(t0));
        unlink((dir + "/curl.gguf").c_str());

        unlink((dir + "/cortex.gguf").c_str());
        cortex::models::DownloadOptions o;
        o.expected_size = size;
        o.expected_sha256 = sha;
        t0 = Clock::now();
        cortex::models::download_file(url, dir + "/cortex.gguf", o);
        ours.push_back(seconds_since(t0));
        unlink((dir + "/cortex.gguf").c_str());
        fprintf(stderr, "round %d: curl %.2f s, cortex %.2f s\n", r + 1, curl.back(), ours.back());
    }
    unlink((dir + "/cortex.gguf.lock").c_str());

    std::vector<double> list_ms;
    for (int i = 0; i < 21; ++i) {
        auto t0 = Clock::now();
        run_quiet({cortex_model, "list"});
        list_ms.push_back(seconds_since(t0) * 1000);
    }
    rmdir(dir.c_str());

    const double mb = size / 1e6;
    printf("file: %s (%.0f MB)\n", file.c_str(), mb);
    printf("curl -o:              %7.1f MB/s (median of %d)\n", mb / median(curl), rounds);
    printf("cortex download_file: %7.1f MB/s, SHA-256 verified\n", mb / median(ours));
    printf("ratio (cortex / curl): %.3f\n", median(curl) / median(ours));
    printf("cortex-model list: %.1f ms (median of 21 runs, process start to exit)\n", median(list_ms));
    return 0;
}
