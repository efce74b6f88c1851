// cortex-bench-http: the daemon's HTTP API against its Unix socket and against llama-server.
//  1. Per-request overhead: 1-token completions over the socket (preload::Client) and over HTTP
//     (POST /v1/completions, one keep-alive connection) on the same daemon: p50/p99.
//  2. Aggregate tokens/s of 4 concurrent HTTP clients, the daemon vs llama-server of the same
//     llama.cpp build with 4 slots, same model, same request.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cortex/preload.h"
#include "http_test_server.h"

extern char ** environ;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// A minimal HTTP/1.1 keep-alive client: what a benchmark needs and nothing that costs time.
class HttpConn {
  public:
    explicit HttpConn(int port) : port_(port) {
        fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok_ = connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
        int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    ~HttpConn() { close(fd_); }
    bool ok() const { return ok_; }
    // Returns the status and the body (Content-Length or chunked).
    int post(const std::string & path, const std::string & body, std::string & out) {
        std::string req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port_) +
                          "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\n\r\n" + body;
        if (send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return -1;
        size_t end;
        while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
            if (!fill()) return -1;
        }
        const std::string head = buf_.substr(0, end);
        buf_.erase(0, end + 4);
        const int status = std::atoi(head.c_str() + 9);
        std::string lower = head;
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        out.clear();
        if (size_t at = lower.find("content-length:"); at != std::string::npos) {
            const size_t n = std::strtoul(lower.c_str() + at + 15, nullptr, 10);
            while (buf_.size() < n) {
                if (!fill()) return -1;
            }
            out = buf_.substr(0, n);
            buf_.erase(0, n);
        } else {  // chunked
            for (;;) {
                size_t nl;
                while ((nl = buf_.find("\r\n")) == std::string::npos) {
                    if (!fill()) return -1;
                }
                const size_t n = std::strtoul(buf_.c_str(), nullptr, 16);
                while (buf_.size() < nl + 2 + n + 2) {
                    if (!fill()) return -1;
                }
                out += buf_.substr(nl + 2, n);
                buf_.erase(0, nl + 2 + n + 2);
                if (n == 0) break;
            }
        }
        return status;
    }

  private:
    bool fill() {
        char chunk[65536];
        ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0) return false;
        buf_.append(chunk, static_cast<size_t>(n));
        return true;
    }
    int fd_ = -1, port_ = 0;
    bool ok_ = false;
    std::string buf_;
};

pid_t spawn(const std::vector<std::string> & args, const std::string & log) {
    std::vector<char *> argv;
    std::vector<std::string> copy = args;
    for (auto & a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

bool wait_http(int port, const std::string & path_body_probe) {
    for (int i = 0; i < 1500; ++i) {
        HttpConn c(port);
        std::string out;
        if (c.ok() && c.post("/v1/completions", path_body_probe, out) == 200) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(40));
    }
    return false;
}

void stop(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 200; ++i) {
        if (waitpid(pid, nullptr, WNOHANG) == pid) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
}

struct Percentiles {
    double p50, p99;
};
Percentiles percentiles(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return {v[v.size() / 2], v[std::min(v.size() - 1, static_cast<size_t>(v.size() * 0.99))]};
}

// 4 clients, each one request of n_gen tokens at once; aggregate tokens/s (best of `rounds`).
double aggregate_tps(int port, const std::string & model, int n_gen, int rounds) {
    double best = 0;
    for (int round = 0; round < rounds; ++round) {
        std::vector<int> tokens(4, 0);
        std::vector<std::thread> threads;
        const auto t0 = Clock::now();
        for (int i = 0; i < 4; ++i) {
            threads.emplace_back([&, i] {
                HttpConn c(port);
                std::string out;
                const json body = {
                    {"prompt", "Client " + std::to_string(i) + " asks how to install a web server on Debian"},
                    {"max_tokens", n_gen},
                    {"temperature", 0},
                    {"ignore_eos", true},
                    {"model", model},
                    {"cache_prompt", false}};
                if (c.post("/v1/completions", body.dump(), out) == 200) {
                    tokens[i] = json::parse(out)["usage"]["completion_tokens"].get<int>();
                }
            });
        }
        for (auto & t : threads) t.join();
        const double s = ms_since(t0) / 1000;
        int total = 0;
        for (int n : tokens) total += n;
        best = std::max(best, total / s);
    }
    return best;
}

}  // namespace

int main(int argc, char ** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);  // each result as soon as it is known, also into a file
    std::string model, server_bin, preload_bin = CORTEX_PRELOAD_BIN;
    int n_requests = 300, n_gen = 128, threads = 0, n_ctx = 2048;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
        if (a == "--model")
            model = next();
        else if (a == "--llama-server")
            server_bin = next();
        else if (a == "--requests")
            n_requests = std::stoi(next());
        else if (a == "--n-gen")
            n_gen = std::stoi(next());
        else if (a == "--threads")
            threads = std::stoi(next());
        else if (a == "--n-ctx")
            n_ctx = std::stoi(next());
        else {
            fprintf(stderr,
                    "usage: cortex-bench-http --model PATH [--llama-server PATH] [--requests 300] [--n-gen 128] "
                    "[--threads N] [--n-ctx 2048]\n");
            return 2;
        }
    }
    if (model.empty()) {
        fprintf(stderr, "error: --model PATH is required\n");
        return 2;
    }
    if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    char dir_template[] = "/tmp/cortex-bench-http-XXXXXX";
    const std::string dir = mkdtemp(dir_template);
    setenv("CORTEX_HOME", (dir + "/home").c_str(), 1);
    setenv("LLAMACPP_N_CTX", std::to_string(n_ctx).c_str(), 1);
    setenv("LLAMACPP_N_THREADS", std::to_string(threads).c_str(), 1);
    const std::string sock = dir + "/d.sock";
    const int port = cortex::test::unused_loopback_port();
    // Requests name the model by its path: the daemon accepts that, llama-server ignores it.
    const std::string probe = json{{"prompt", "hi"}, {"max_tokens", 1}, {"model", model}}.dump();

    printf("model %s, %d threads, n_ctx %d per slot, 4 slots\n", model.c_str(), threads, n_ctx);
    pid_t daemon = spawn({preload_bin, "run", "--model", model, "--socket", sock, "--parallel", "4", "--http",
                          "127.0.0.1:" + std::to_string(port)},
                         dir + "/daemon.log");
    if (daemon <= 0 || !wait_http(port, probe)) {
        fprintf(stderr, "error: the daemon did not start (log: %s/daemon.log)\n", dir.c_str());
        stop(daemon);
        return 1;
    }
    // The model path the daemon reports is what HTTP requests name; any name of it works.
    const std::string served = json::parse([&] {
        std::string s;
        HttpConn c(port);
        c.post("/v1/completions", probe, s);
        return s;
    }())["model"];

    // 1. Per-request overhead: the same 1-token completion (greedy, prompt cached) both ways.
    const std::string prompt = "apt install";
    std::vector<double> sock_ms, http_ms;
    {
        auto client = cortex::preload::Client::connect(sock);
        cortex::llm::GenerationConfig g;
        g.max_tokens = 1;
        g.temperature = 0;
        HttpConn conn(port);
        const std::string body =
            json{{"model", served}, {"prompt", prompt}, {"max_tokens", 1}, {"temperature", 0}}.dump();
        std::string out;
        for (int i = 0; i < 20; ++i) {  // warm-up: the slots' prompt caches hold the prompt
            client->complete(prompt, g);
            conn.post("/v1/completions", body, out);
        }
        // Interleaved, so that both paths see the same machine state.
        for (int i = 0; i < n_requests; ++i) {
            auto t0 = Clock::now();
            client->complete(prompt, g);
            sock_ms.push_back(ms_since(t0));
            t0 = Clock::now();
            if (conn.post("/v1/completions", body, out) != 200) {
                fprintf(stderr, "error: HTTP answered: %s\n", out.c_str());
                stop(daemon);
                return 1;
            }
            http_ms.push_back(ms_since(t0));
        }
    }
    const Percentiles ps = percentiles(sock_ms), ph = percentiles(http_ms);
    printf("1-token completion, %d requests each, interleaved:\n", n_requests);
    printf("  Unix socket      p50 %.3f ms  p99 %.3f ms\n", ps.p50, ps.p99);
    printf("  HTTP /v1         p50 %.3f ms  p99 %.3f ms\n", ph.p50, ph.p99);
    printf("  HTTP overhead    p50 %+.3f ms  p99 %+.3f ms\n", ph.p50 - ps.p50, ph.p99 - ps.p99);

    // 2. Aggregate throughput of 4 HTTP clients.
    const double daemon_tps = aggregate_tps(port, model, n_gen, 3);
    stop(daemon);
    printf("4 HTTP clients x %d tokens: daemon %.1f tokens/s aggregate\n", n_gen, daemon_tps);

    if (server_bin.empty()) {
        printf(
            "llama-server: not measured (pass --llama-server PATH; build it with LLAMA_BUILD_SERVER=1 "
            "scripts/build_llamacpp.sh)\n");
        return 0;
    }
    const int sport = cortex::test::unused_loopback_port();
    pid_t server = spawn({server_bin, "-m", model, "--port", std::to_string(sport), "--host", "127.0.0.1", "-np", "4",
                          "-c", std::to_string(n_ctx * 4), "-t", std::to_string(threads), "--no-webui"},
                         dir + "/llama-server.log");
    if (server <= 0 || !wait_http(sport, probe)) {
        fprintf(stderr, "error: llama-server did not start (log: %s/llama-server.log)\n", dir.c_str());
        stop(server);
        return 1;
    }
    const double server_tps = aggregate_tps(sport, model, n_gen, 3);
    stop(server);
    printf("4 HTTP clients x %d tokens: llama-server %.1f tokens/s aggregate\n", n_gen, server_tps);
    printf("ratio (daemon / llama-server) %.3f\n", server_tps > 0 ? daemon_tps / server_tps : 0.0);
    return 0;
}
