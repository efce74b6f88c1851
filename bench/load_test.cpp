// cortex-load-test: a bounded load and soak test of the preload daemon (issue #8, section 4).
// It starts a real cortex-preload (Unix socket + HTTP on 127.0.0.1), computes greedy answers
// in-process for a fixed set of prompts (load_cases.h), then runs socket and HTTP clients at
// once with some requests cut off on purpose, and fails unless every finished answer is
// byte-identical to the in-process one, nothing unexpected went wrong, the daemon serves on and
// exits cleanly, and its resident memory held still (docs/RELIABILITY.md).
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cortex/llm.h"
#include "cortex/preload.h"
#include "http_test_server.h"
#include "load_cases.h"

extern char ** environ;

using namespace cortex;
using cortex::load::Case;
using cortex::load::greedy;
using cortex::load::messages_json;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

struct Options {
    std::string model, preload_bin = CORTEX_PRELOAD_BIN, json_path, trace_path;
    int requests = 500;     // per client
    int requests_full = 0;  // per client when CORTEX_TEST_FULL=1 (CTest's full mode)
    int socket_clients = 8, http_clients = 4;
    // One thread: the generated test models are small, and on a machine shared with other work
    // ggml's worker threads spin at their barriers (tg 50 t/s with 2 threads vs 1,000 with 1).
    int parallel = 4, threads = 1, n_ctx = 1024, max_tokens = 32;
    double disconnect_rate = 0.05, cancel_rate = 0.02;
    double reconnect_rate = 0.1;  // socket requests that open a new connection first
    double rss_growth_max = 0.05;
    int rss_from = 100;  // the request after which the first memory sample is taken
    int stall_s = 120;   // no request finishing for this long is a hang
    unsigned seed = 1;
    bool keep = false;
};

// Resident memory of a process from /proc/PID/status, in kB: VmRSS (all of it, the mapped model
// file included) and RssAnon (heap, KV cache, compute buffers: where a leak would show).
struct Rss {
    long vm_rss_kb = 0, rss_anon_kb = 0;
    int after_requests = 0;
};

Rss read_rss(pid_t pid) {
    Rss r;
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) r.vm_rss_kb = std::atol(line.c_str() + 6);
        if (line.rfind("RssAnon:", 0) == 0) r.rss_anon_kb = std::atol(line.c_str() + 8);
    }
    return r;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// What the clients report; shared by every client thread.
class Tally {
  public:
    explicit Tally(int sample_every) : sample_every_(sample_every) {}

    // A request that got its whole answer, checked against the in-process one.
    void completed(const std::string & path, const std::string & endpoint, const Case & c, Clock::time_point t0,
                   double ms, int tokens) {
        std::lock_guard<std::mutex> lock(mutex_);
        latency_[path].push_back(ms);
        latency_[endpoint].push_back(ms);
        ++completed_;
        tokens_ += tokens;
        if (trace_) {
            const double start_s = std::chrono::duration<double>(t0 - started_).count();
            fprintf(trace_, "%s\n",
                    json{{"endpoint", endpoint}, {"case", c.name}, {"start_s", start_s}, {"ms", ms}, {"tokens", tokens}}
                        .dump()
                        .c_str());
        }
    }
    // Writes a JSON line per completed request to `f` from now on (start_s counts from here).
    void trace_to(FILE * f) {
        trace_ = f;
        started_ = Clock::now();
    }
    // `kind`: which side hung up, and when (e.g. "http/stream").
    void disconnected(const std::string & kind) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++disconnects_;
        ++disconnect_kinds_[kind];
    }
    void cancelled() {
        std::lock_guard<std::mutex> lock(mutex_);
        ++cancels_;
    }
    // Ended early on purpose, but the answer came whole first: it is checked and counted as
    // completed by the caller.
    void raced() {
        std::lock_guard<std::mutex> lock(mutex_);
        ++raced_;
    }
    void error(const std::string & what) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (errors_.size() < 50) errors_.push_back(what);
        ++n_errors_;
    }
    void mismatch(const std::string & what) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (errors_.size() < 50) errors_.push_back("mismatch: " + what);
        ++n_mismatches_;
    }

    // Counts a finished request (of any kind); returns its number, from 1.
    int finish() { return ++finished_; }
    int finished() const { return finished_; }

    void sample(const Rss & r) {
        std::lock_guard<std::mutex> lock(mutex_);
        rss_.push_back(r);
    }
    bool sample_due(int n) const { return sample_every_ > 0 && n % sample_every_ == 0; }

    json report() const {
        std::lock_guard<std::mutex> lock(mutex_);
        json lat = json::object();
        for (const auto & [name, v] : latency_) {
            lat[name] = {{"count", v.size()}, {"p50_ms", percentile(v, 0.50)}, {"p99_ms", percentile(v, 0.99)}};
        }
        json samples = json::array();
        for (const Rss & r : rss_) {
            samples.push_back(
                {{"after_requests", r.after_requests}, {"vm_rss_kb", r.vm_rss_kb}, {"rss_anon_kb", r.rss_anon_kb}});
        }
        return {{"completed", completed_},
                {"disconnect_kinds", disconnect_kinds_},
                {"disconnects", disconnects_},
                {"cancels", cancels_},
                {"ended_before_cut", raced_},
                {"errors", n_errors_},
                {"mismatches", n_mismatches_},
                {"completion_tokens", tokens_},
                {"latency", lat},
                {"rss_samples", samples},
                {"error_samples", errors_}};
    }

  private:
    mutable std::mutex mutex_;
    std::map<std::string, std::vector<double>> latency_;
    std::map<std::string, int> disconnect_kinds_;
    int completed_ = 0, disconnects_ = 0, cancels_ = 0, raced_ = 0, n_errors_ = 0, n_mismatches_ = 0;
    long tokens_ = 0;
    std::vector<std::string> errors_;
    std::vector<Rss> rss_;
    std::atomic<int> finished_{0};
    int sample_every_;
    FILE * trace_ = nullptr;
    Clock::time_point started_ = Clock::now();
};

std::string shorten(const std::string & s) {
    json j = s.size() > 120 ? s.substr(0, 120) + "..." : s;
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Checks a whole answer: content byte for byte, and the token count and finish reason where
// the path reports them (-1 / empty: not reported).
void check(Tally & tally, const std::string & where, const Case & c, const std::string & content, int tokens,
           const std::string & finish) {
    if (content != c.expected) {
        tally.mismatch(where + " " + c.name + ": got " + shorten(content) + ", in-process " + shorten(c.expected));
    } else if (tokens >= 0 && tokens != c.expected_tokens) {
        tally.mismatch(where + " " + c.name + ": " + std::to_string(tokens) + " tokens, in-process " +
                       std::to_string(c.expected_tokens));
    } else if (!finish.empty() && finish != c.expected_finish) {
        tally.mismatch(where + " " + c.name + ": finish " + finish + ", in-process " + c.expected_finish);
    }
}

// The text streamed before a request was cut off must be where the in-process answer starts.
void check_prefix(Tally & tally, const std::string & where, const Case & c, const std::string & got) {
    if (c.expected.compare(0, got.size(), got) != 0 || got.size() > c.expected.size()) {
        tally.mismatch(where + " " + c.name + " (cut off): streamed " + shorten(got) + ", in-process " +
                       shorten(c.expected));
    }
}

// Thrown from a token callback to leave a request mid-stream: the Client unwinds and is dropped
// with its connection, as a client that dies would.
struct Leave {};

// A request on a raw connection that closes after `delay_ms` without reading the answer: the
// non-streamed disconnect, which the daemon sees only as a hang-up on the socket.
bool send_and_leave(const std::string & socket_path, const json & request, int delay_ms) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
    bool ok = connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0;
    const std::string line = request.dump() + "\n";
    ok = ok && send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size());
    if (ok) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    close(fd);
    return ok;
}

struct Shared {
    const Options & opt;
    const std::vector<Case> & cases;
    std::string socket_path, http_base, model_name;
    pid_t daemon = -1;
    Tally & tally;
};

// Counts a finished request and takes the memory samples that fall due.
void finished(Shared & s) {
    const int n = s.tally.finish();
    if (n == s.opt.rss_from || s.tally.sample_due(n)) {
        Rss r = read_rss(s.daemon);
        r.after_requests = n;
        s.tally.sample(r);
    }
}

// One socket client: R requests over preload::Client, a new connection now and then.
void socket_client(Shared & s, int index) {
    std::mt19937 rng(s.opt.seed * 7919u + static_cast<unsigned>(index));
    std::uniform_real_distribution<double> unit(0, 1);
    std::unique_ptr<preload::Client> client;
    const std::string where = "socket#" + std::to_string(index);
    for (int r = 0; r < s.opt.requests; ++r) {
        // Every draw happens whatever the outcome, so a seed always gives the same plan.
        const Case & c = s.cases[rng() % s.cases.size()];
        const bool stream = rng() % 2 == 0;
        const double u = unit(rng);
        const int cut_after = 1 + static_cast<int>(rng() % 3);  // pieces, or ms for a non-streamed leave
        const bool reconnect = unit(rng) < s.opt.reconnect_rate;
        const bool leave = u < s.opt.disconnect_rate;
        const bool cancel = !leave && stream && u < s.opt.disconnect_rate + s.opt.cancel_rate;
        const auto t0 = Clock::now();
        std::string streamed;
        try {
            if (leave && !stream) {
                json req = {{"v", 1},           {"op", c.chat ? "chat" : "complete"},
                            {"stream", false},  {"max_tokens", c.max_tokens},
                            {"temperature", 0}, {"repeat_penalty", c.repeat_penalty}};
                if (c.chat)
                    req["messages"] = messages_json(c.messages);
                else
                    req["prompt"] = c.prompt;
                if (send_and_leave(s.socket_path, req, cut_after * 3))
                    s.tally.disconnected("socket/whole");
                else
                    s.tally.error(where + ": could not connect to " + s.socket_path);
                finished(s);
                continue;
            }
            if (!client || reconnect) client = preload::Client::connect(s.socket_path);
            if (!client) {
                s.tally.error(where + ": could not connect to " + s.socket_path);
                finished(s);
                continue;
            }
            int pieces = 0;
            llm::TokenCallback on_token;
            if (stream) {
                on_token = [&](std::string_view piece) {
                    streamed += piece;
                    ++pieces;
                    if (leave && pieces >= cut_after) throw Leave{};
                    return !(cancel && pieces >= cut_after);
                };
            }
            llm::Result result = c.chat ? client->chat(c.messages, greedy(c), on_token)
                                        : client->complete(c.prompt, greedy(c), on_token);
            const double ms = ms_since(t0);
            if (cancel && pieces >= cut_after) {
                // Cancelled: what came is the start of the answer, and the connection goes on.
                check_prefix(s.tally, where, c, result.content);
                check_prefix(s.tally, where, c, streamed);
                s.tally.cancelled();
            } else {
                if (leave || cancel) s.tally.raced();
                check(s.tally, where, c, result.content, result.completion_tokens,
                      llm::finish_reason_name(result.finish_reason));
                if (stream && streamed != result.content) {
                    s.tally.mismatch(where + " " + c.name + ": streamed " + shorten(streamed) +
                                     " but the result says " + shorten(result.content));
                }
                s.tally.completed("socket", stream ? "socket/stream" : "socket/whole", c, t0, ms,
                                  result.completion_tokens);
            }
        } catch (const Leave &) {
            client.reset();  // the connection closes mid-stream
            check_prefix(s.tally, where, c, streamed);
            s.tally.disconnected("socket/stream");
        } catch (const Error & e) {
            client.reset();
            s.tally.error(where + " " + c.name + ": " + e.message());
        } catch (const std::exception & e) {
            client.reset();
            s.tally.error(where + " " + c.name + ": " + e.what());
        }
        finished(s);
    }
}

// One HTTP response being read: the body, and for a stream its pieces as they come.
struct HttpRead {
    bool stream = false, openai = false;
    int leave_after = 0;  // streamed pieces after which to hang up; 0 = never
    bool left = false;
    std::string buffer, body, content, finish, error;
    int tokens = -1, pieces = 0;

    // One NDJSON line (Ollama) or one SSE event's data (OpenAI). Runs inside curl's callback,
    // so a line of the wrong shape is noted, never thrown.
    void line(const std::string & text) {
        try {
            parse_line(text);
        } catch (const json::exception & e) {
            error = std::string("unexpected stream line ") + shorten(text) + ": " + e.what();
        }
    }

    void parse_line(const std::string & text) {
        if (text.empty() || text == "[DONE]") return;
        json j = json::parse(text, nullptr, false);
        if (!j.is_object()) {
            error = "malformed stream line " + shorten(text);
            return;
        }
        if (j.contains("error")) {
            error = j["error"].dump();
            return;
        }
        std::string piece;
        if (openai) {
            if (j.contains("usage") && j["usage"].is_object()) tokens = j["usage"].value("completion_tokens", -1);
            if (!j.contains("choices") || j["choices"].empty()) return;
            const json & ch = j["choices"][0];
            if (ch.contains("delta") && ch["delta"].contains("content")) piece = ch["delta"]["content"];
            if (ch.contains("text")) piece = ch["text"];
            if (ch.contains("finish_reason") && ch["finish_reason"].is_string()) finish = ch["finish_reason"];
        } else {
            if (j.contains("message")) piece = j["message"].value("content", "");
            if (j.contains("response")) piece = j["response"];
            if (j.value("done", false)) {
                tokens = j.value("eval_count", -1);
                finish = j.value("done_reason", "");
            }
        }
        if (!piece.empty()) {
            content += piece;
            ++pieces;
        }
    }

    static size_t on_data(char * p, size_t size, size_t n, void * self) {
        HttpRead & r = *static_cast<HttpRead *>(self);
        r.body.append(p, size * n);
        if (!r.stream) return size * n;
        r.buffer.append(p, size * n);
        const std::string sep = r.openai ? "\n\n" : "\n";
        for (size_t at; (at = r.buffer.find(sep)) != std::string::npos;) {
            std::string event = r.buffer.substr(0, at);
            r.buffer.erase(0, at + sep.size());
            if (r.openai) {
                if (event.rfind("data: ", 0) != 0) continue;
                event.erase(0, 6);
            }
            r.line(event);
        }
        if (r.leave_after > 0 && r.pieces >= r.leave_after) {
            r.left = true;
            return 0;  // curl aborts the transfer and closes the connection
        }
        return size * n;
    }
};

// One HTTP client: R requests over one keep-alive libcurl handle, on the four generation
// endpoints, streamed and not.
void http_client(Shared & s, int index) {
    std::mt19937 rng(s.opt.seed * 104729u + static_cast<unsigned>(index));
    std::uniform_real_distribution<double> unit(0, 1);
    CURL * curl = curl_easy_init();
    curl_slist * headers = curl_slist_append(nullptr, "Content-Type: application/json");
    const std::string where = "http#" + std::to_string(index);
    for (int r = 0; r < s.opt.requests; ++r) {
        const Case & c = s.cases[rng() % s.cases.size()];
        const bool stream = rng() % 2 == 0;
        const bool openai = rng() % 2 == 0;
        const double u = unit(rng);
        const int cut_after = 1 + static_cast<int>(rng() % 3);
        const bool leave = u < s.opt.disconnect_rate;

        std::string path, endpoint;
        json body = {{"model", s.model_name}, {"stream", stream}};
        if (openai) {
            path = c.chat ? "/v1/chat/completions" : "/v1/completions";
            endpoint = c.chat ? "openai/chat" : "openai/completions";
            body["temperature"] = 0;
            body["max_tokens"] = c.max_tokens;
            body["repeat_penalty"] = c.repeat_penalty;  // llama.cpp's extension, as llama-server's
            if (stream) body["stream_options"] = {{"include_usage", true}};
        } else {
            path = c.chat ? "/api/chat" : "/api/generate";
            endpoint = c.chat ? "ollama/chat" : "ollama/generate";
            body["options"] = {{"temperature", 0}, {"num_predict", c.max_tokens}, {"repeat_penalty", c.repeat_penalty}};
            if (!c.chat) body["raw"] = true;  // the prompt as it is, as Model::complete takes it
        }
        if (c.chat)
            body["messages"] = messages_json(c.messages);
        else
            body["prompt"] = c.prompt;
        const std::string text = body.dump();

        HttpRead read;
        read.stream = stream;
        read.openai = openai;
        read.leave_after = leave && stream ? cut_after : 0;
        const std::string url = s.http_base + path;
        curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text.c_str());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(text.size()));
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &HttpRead::on_data);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &read);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        // A non-streamed request to leave is cut by a timeout of a few ms: curl closes the
        // connection while the daemon generates. Otherwise the stall watchdog judges hangs.
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, leave && !stream ? static_cast<long>(cut_after * 3) : 600000L);
        const auto t0 = Clock::now();
        const CURLcode rc = curl_easy_perform(curl);
        const double ms = ms_since(t0);
        long status = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);

        if (rc == CURLE_WRITE_ERROR && read.left) {
            check_prefix(s.tally, where + " " + endpoint, c, read.content);
            s.tally.disconnected("http/stream");
        } else if (rc == CURLE_OPERATION_TIMEDOUT && leave && !stream) {
            s.tally.disconnected("http/whole");
        } else if (rc != CURLE_OK) {
            s.tally.error(where + " " + endpoint + " " + c.name + ": " + curl_easy_strerror(rc));
        } else if (status != 200) {
            s.tally.error(where + " " + endpoint + " " + c.name + ": HTTP " + std::to_string(status) + " " +
                          shorten(read.body));
        } else {
            if (!stream) {
                try {
                    const json j = json::parse(read.body);
                    if (openai) {
                        const json & ch = j.at("choices").at(0);
                        read.content = c.chat ? ch.at("message").at("content") : ch.at("text");
                        read.finish = ch.at("finish_reason");
                        read.tokens = j.at("usage").at("completion_tokens");
                    } else {
                        read.content = c.chat ? j.at("message").at("content") : j.at("response");
                        read.finish = j.at("done_reason");
                        read.tokens = j.at("eval_count");
                    }
                } catch (const json::exception & e) {
                    read.error = "unexpected body " + shorten(read.body) + ": " + e.what();
                }
            } else if (read.finish.empty()) {
                read.error = "the stream ended without its final chunk";
            }
            if (!read.error.empty()) {
                s.tally.error(where + " " + endpoint + " " + c.name + ": " + read.error);
            } else {
                if (leave) s.tally.raced();
                check(s.tally, where + " " + endpoint, c, read.content, read.tokens, read.finish);
                s.tally.completed("http", endpoint + (stream ? "/stream" : "/whole"), c, t0, ms,
                                  std::max(read.tokens, 0));
            }
        }
        finished(s);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
}

pid_t spawn_daemon(const std::vector<std::string> & args, const std::string & log) {
    std::vector<std::string> copy = args;
    std::vector<char *> argv;
    for (auto & a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

// Waits up to `ms` for `pid` to exit; returns its wait status, or -1 if it did not.
int wait_exit(pid_t pid, int ms) {
    for (int waited = 0; waited <= ms; waited += 20) {
        int st = 0;
        if (waitpid(pid, &st, WNOHANG) == pid) return st;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
}

bool http_ready(const std::string & base) {
    CURL * curl = curl_easy_init();
    const std::string url = base + "/health";
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(
        curl, CURLOPT_WRITEFUNCTION, +[](char *, size_t s, size_t n, void *) { return s * n; });
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 2000L);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    return status == 200;
}

void usage() {
    fprintf(stderr,
            "usage: cortex-load-test --model PATH [--preload-bin PATH] [--requests 500] [--requests-full N]\n"
            "         [--socket-clients 8] [--http-clients 4] [--parallel 4] [--threads 1] [--n-ctx 1024]\n"
            "         [--max-tokens 32] [--disconnect-rate 0.05] [--cancel-rate 0.02] [--reconnect-rate 0.1]\n"
            "         [--seed 1] [--rss-growth-max 0.05] [--rss-from 100] [--stall-s 120] [--json PATH]\n"
            "         [--trace PATH] [--keep]\n"
            "  --requests is per client; --requests-full replaces it when CORTEX_TEST_FULL=1.\n"
            "  --trace writes a JSON line per completed request (endpoint, case, start, latency).\n"
            "  --threads is the daemon's and the reference model's (0 = all cores); 1 suits the small\n"
            "  test models: more threads on a busy machine spin in ggml's barriers.\n"
            "  Exit status: 0 every criterion met, 1 one failed, 2 bad usage or no daemon.\n");
}

bool parse_args(int argc, char ** argv, Options & o) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--keep") {
            o.keep = true;
            continue;
        }
        if (i + 1 >= argc) return false;
        const std::string v = argv[++i];
        try {
            if (a == "--model")
                o.model = v;
            else if (a == "--preload-bin")
                o.preload_bin = v;
            else if (a == "--json")
                o.json_path = v;
            else if (a == "--trace")
                o.trace_path = v;
            else if (a == "--requests")
                o.requests = std::stoi(v);
            else if (a == "--requests-full")
                o.requests_full = std::stoi(v);
            else if (a == "--socket-clients")
                o.socket_clients = std::stoi(v);
            else if (a == "--http-clients")
                o.http_clients = std::stoi(v);
            else if (a == "--parallel")
                o.parallel = std::stoi(v);
            else if (a == "--threads")
                o.threads = std::stoi(v);
            else if (a == "--n-ctx")
                o.n_ctx = std::stoi(v);
            else if (a == "--max-tokens")
                o.max_tokens = std::stoi(v);
            else if (a == "--disconnect-rate")
                o.disconnect_rate = std::stod(v);
            else if (a == "--cancel-rate")
                o.cancel_rate = std::stod(v);
            else if (a == "--reconnect-rate")
                o.reconnect_rate = std::stod(v);
            else if (a == "--seed")
                o.seed = static_cast<unsigned>(std::stoul(v));
            else if (a == "--rss-growth-max")
                o.rss_growth_max = std::stod(v);
            else if (a == "--rss-from")
                o.rss_from = std::stoi(v);
            else if (a == "--stall-s")
                o.stall_s = std::stoi(v);
            else
                return false;
        } catch (const std::exception &) {
            fprintf(stderr, "error: %s needs a number, got '%s'\n", a.c_str(), v.c_str());
            return false;
        }
    }
    const char * full = std::getenv("CORTEX_TEST_FULL");
    if (o.requests_full > 0 && full && std::string(full) == "1") o.requests = o.requests_full;
    if (o.model.empty()) {
        fprintf(stderr, "error: --model PATH is required\n");
        return false;
    }
    if (o.requests < 1 || o.socket_clients < 0 || o.http_clients < 0 || o.socket_clients + o.http_clients == 0 ||
        o.max_tokens < 1 || o.disconnect_rate < 0 || o.cancel_rate < 0 || o.disconnect_rate + o.cancel_rate > 1) {
        fprintf(stderr, "error: requests and max-tokens must be >= 1, some clients are needed, rates in 0..1\n");
        return false;
    }
    return true;
}

}  // namespace

int main(int argc, char ** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    Options opt;
    if (!parse_args(argc, argv, opt)) {
        usage();
        return 2;
    }
    opt.model = std::filesystem::absolute(opt.model);
    if (!std::filesystem::exists(opt.model)) {
        fprintf(stderr, "error: no model at %s\n", opt.model.c_str());
        return 2;
    }
    if (opt.threads <= 0) opt.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    curl_global_init(CURL_GLOBAL_DEFAULT);

    char dir_template[] = "/tmp/cortex-load-test-XXXXXX";
    if (!mkdtemp(dir_template)) {
        perror("mkdtemp");
        return 2;
    }
    const std::string dir = dir_template;
    setenv("CORTEX_HOME", (dir + "/home").c_str(), 1);
    setenv("LLAMACPP_N_CTX", std::to_string(opt.n_ctx).c_str(), 1);
    setenv("LLAMACPP_N_THREADS", std::to_string(opt.threads).c_str(), 1);

    // 1. The reference: every case's greedy answer from the model loaded in this process.
    std::vector<Case> cases = load::make_cases(opt.max_tokens);
    const auto t_ref = Clock::now();
    std::vector<std::string> fragile;
    try {
        fragile = load::compute_references(opt.model, opt.n_ctx, opt.threads, cases);
    } catch (const Error & e) {
        fprintf(stderr, "error: the reference answers: %s\nhint: %s\n", e.message().c_str(), e.hint().c_str());
        std::filesystem::remove_all(dir);
        return 2;
    }
    if (cases.empty()) {
        fprintf(stderr, "error: every case's answer depends on the batch shape; nothing left to check\n");
        std::filesystem::remove_all(dir);
        return 2;
    }
    const double ref_ms = ms_since(t_ref);

    // 2. The daemon: Unix socket and HTTP on loopback.
    const std::string socket_path = dir + "/preload.sock", log = dir + "/daemon.log";
    const int port = test::unused_loopback_port();
    const std::string base = "http://127.0.0.1:" + std::to_string(port);
    const pid_t daemon =
        spawn_daemon({opt.preload_bin, "run", "--model", opt.model, "--socket", socket_path, "--parallel",
                      std::to_string(opt.parallel), "--http", "127.0.0.1:" + std::to_string(port)},
                     log);
    bool up = false;
    for (int waited = 0; daemon > 0 && waited < 120000 && !up; waited += 50) {
        up = preload::Client::connect(socket_path) && http_ready(base);
        if (!up) {
            if (waitpid(daemon, nullptr, WNOHANG) == daemon) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    if (!up) {
        fprintf(stderr, "error: the daemon did not start (log: %s)\n", log.c_str());
        if (daemon > 0) kill(daemon, SIGKILL), waitpid(daemon, nullptr, 0);
        return 2;
    }
    const preload::DaemonStatus status0 = preload::Client::connect(socket_path)->status();

    const int total = opt.requests * (opt.socket_clients + opt.http_clients);
    Tally tally(std::max(1, total / 20));
    Shared shared{opt, cases, socket_path, base, opt.model, daemon, tally};
    printf("cortex-load-test: %s\n", opt.model.c_str());
    printf("  %zu cases (reference in-process: %.0f ms), daemon pid %d, %d slots, n_ctx %d, %d threads\n", cases.size(),
           ref_ms, daemon, status0.slots, opt.n_ctx, opt.threads);
    if (!fragile.empty()) {
        std::string names;
        for (const std::string & n : fragile) names += (names.empty() ? "" : ", ") + n;
        printf("  %zu cases left out: their in-process answer changes with the batch shape (%s)\n", fragile.size(),
               names.c_str());
    }
    printf("  %d socket clients + %d HTTP clients x %d requests = %d; disconnects %.0f%%, cancels %.0f%% (seed %u)\n",
           opt.socket_clients, opt.http_clients, opt.requests, total, opt.disconnect_rate * 100, opt.cancel_rate * 100,
           opt.seed);

    // 3. The load, with a watchdog: no request finishing for stall_s seconds is a hang.
    std::atomic<bool> done{false}, stalled{false};
    std::thread watchdog([&] {
        int last = -1;
        auto since = Clock::now();
        while (!done) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            const int now = tally.finished();
            if (now != last) {
                last = now;
                since = Clock::now();
            } else if (ms_since(since) > opt.stall_s * 1000.0) {
                stalled = true;
                fprintf(stderr, "error: no request finished for %d s after %d of %d: a hang; daemon log: %s\n",
                        opt.stall_s, now, total, log.c_str());
                // The clients may wait forever: end the daemon so that they fail and return.
                kill(daemon, SIGKILL);
                return;
            }
        }
    });
    FILE * trace = opt.trace_path.empty() ? nullptr : fopen(opt.trace_path.c_str(), "w");
    if (!opt.trace_path.empty() && !trace) fprintf(stderr, "warning: cannot write %s\n", opt.trace_path.c_str());
    if (trace) tally.trace_to(trace);
    const auto t_load = Clock::now();
    std::vector<std::thread> clients;
    for (int i = 0; i < opt.socket_clients; ++i) clients.emplace_back([&, i] { socket_client(shared, i); });
    for (int i = 0; i < opt.http_clients; ++i) clients.emplace_back([&, i] { http_client(shared, i); });
    for (auto & t : clients) t.join();
    const double load_s = ms_since(t_load) / 1000.0;
    done = true;
    watchdog.join();
    if (trace) fclose(trace);

    Rss last = read_rss(daemon);
    last.after_requests = tally.finished();
    tally.sample(last);

    // 4. Afterwards: the daemon is alive, every slot is free again (the cut-off requests let
    // theirs go) and it exits cleanly when asked.
    bool alive = false, slots_free = false;
    json status_after;
    for (int waited = 0; waited < 5000 && !slots_free; waited += 50) {
        auto c = preload::Client::connect(socket_path);
        if (!c) break;
        alive = true;
        try {
            status_after = json::parse(c->status().json);
            const json & m = status_after["models"][0];
            slots_free = m.value("active", -1) == 0 && m.value("queued", -1) == 0;
        } catch (const std::exception &) {
            alive = false;
            break;
        }
        if (!slots_free) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    int exit_status = -1;
    if (alive) {
        try {
            preload::Client::connect(socket_path)->shutdown();
        } catch (const std::exception &) {
        }
        exit_status = wait_exit(daemon, 20000);
    }
    if (exit_status == -1) {
        kill(daemon, SIGKILL);
        waitpid(daemon, nullptr, 0);
    }
    const bool clean_exit = exit_status != -1 && WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0;

    // 5. The verdict.
    json rep = tally.report();
    const Rss * first = nullptr;
    std::vector<Rss> samples;
    for (const json & j : rep["rss_samples"]) {
        samples.push_back({j["vm_rss_kb"], j["rss_anon_kb"], j["after_requests"]});
    }
    std::sort(samples.begin(), samples.end(),
              [](const Rss & a, const Rss & b) { return a.after_requests < b.after_requests; });
    for (const Rss & r : samples) {
        if (r.after_requests >= opt.rss_from) {
            first = &r;
            break;
        }
    }
    const Rss & final_rss = samples.back();
    // Growth is judged on both figures: VmRSS as the issue states it, RssAnon because the mapped
    // model file in VmRSS would hide a leak of the same size.
    const bool rss_judged = first && final_rss.after_requests > first->after_requests;
    const double growth_vm = rss_judged ? double(final_rss.vm_rss_kb) / first->vm_rss_kb - 1 : 0;
    const double growth_anon = rss_judged ? double(final_rss.rss_anon_kb) / first->rss_anon_kb - 1 : 0;
    // Least-squares slope of RssAnon over the requests after the first judged sample: the bytes
    // a request would leave behind, had it leaked.
    double slope = 0;
    {
        double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (const Rss & r : samples) {
            if (!first || r.after_requests < first->after_requests) continue;
            const double x = r.after_requests, y = r.rss_anon_kb * 1024.0;
            n += 1, sx += x, sy += y, sxx += x * x, sxy += x * y;
        }
        if (n >= 3 && n * sxx - sx * sx > 0) slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    }
    const int errors = rep["errors"], mismatches = rep["mismatches"];
    const bool rss_ok = !rss_judged || (growth_vm <= opt.rss_growth_max && growth_anon <= opt.rss_growth_max);
    const bool pass = errors == 0 && mismatches == 0 && !stalled && alive && slots_free && clean_exit && rss_ok &&
                      rep["completed"].get<int>() > 0;

    const long tokens = rep["completion_tokens"];
    rep["model"] = opt.model;
    rep["model_bytes"] = std::filesystem::file_size(opt.model);
    rep["description"] = status0.info.description;
    json case_list = json::array();
    for (const Case & c : cases) {
        case_list.push_back({{"name", c.name},
                             {"expected", json(c.expected).dump(-1, ' ', false, json::error_handler_t::replace)},
                             {"tokens", c.expected_tokens},
                             {"finish", c.expected_finish}});
    }
    rep["cases"] = case_list;
    rep["fragile_cases"] = fragile;
    rep["socket_clients"] = opt.socket_clients;
    rep["http_clients"] = opt.http_clients;
    rep["requests_per_client"] = opt.requests;
    rep["requests"] = total;
    rep["slots"] = status0.slots;
    rep["n_ctx"] = opt.n_ctx;
    rep["threads"] = opt.threads;
    rep["max_tokens"] = opt.max_tokens;
    rep["seed"] = opt.seed;
    rep["total_s"] = load_s;
    rep["tokens_per_second"] = tokens / load_s;
    rep["rss"] = {{"judged", rss_judged},
                  {"first", first ? json{{"after_requests", first->after_requests},
                                         {"vm_rss_kb", first->vm_rss_kb},
                                         {"rss_anon_kb", first->rss_anon_kb}}
                                  : json()},
                  {"last",
                   {{"after_requests", final_rss.after_requests},
                    {"vm_rss_kb", final_rss.vm_rss_kb},
                    {"rss_anon_kb", final_rss.rss_anon_kb}}},
                  {"growth_vm_rss", growth_vm},
                  {"growth_rss_anon", growth_anon},
                  {"rss_anon_slope_bytes_per_request", slope},
                  {"max_growth", opt.rss_growth_max}};
    rep["stalled"] = bool(stalled);
    rep["daemon_alive_after"] = alive;
    rep["slots_free_after"] = slots_free;
    rep["daemon_clean_exit"] = clean_exit;
    rep["pass"] = pass;

    printf(
        "  %.1f s, %d completed (%d cut off too late to matter), %d disconnects, %d cancels, %ld tokens, "
        "%.1f tokens/s\n",
        load_s, rep["completed"].get<int>(), rep["ended_before_cut"].get<int>(), rep["disconnects"].get<int>(),
        rep["cancels"].get<int>(), tokens, tokens / load_s);
    std::string kinds;
    for (const auto & [kind, n] : rep["disconnect_kinds"].items()) {
        kinds += (kinds.empty() ? "" : ", ") + kind + " " + std::to_string(n.get<int>());
    }
    if (!kinds.empty()) printf("  disconnects: %s\n", kinds.c_str());
    printf("  latency (ms, whole request)        count      p50      p99\n");
    for (const auto & [name, v] : rep["latency"].items()) {
        printf("    %-30s %7d %8.2f %8.2f\n", name.c_str(), v["count"].get<int>(), v["p50_ms"].get<double>(),
               v["p99_ms"].get<double>());
    }
    if (first) {
        printf("  daemon memory after request %d: VmRSS %.1f MiB, RssAnon %.1f MiB\n", first->after_requests,
               first->vm_rss_kb / 1024.0, first->rss_anon_kb / 1024.0);
    }
    printf("  daemon memory after request %d: VmRSS %.1f MiB, RssAnon %.1f MiB\n", final_rss.after_requests,
           final_rss.vm_rss_kb / 1024.0, final_rss.rss_anon_kb / 1024.0);
    if (rss_judged) {
        printf("  growth: VmRSS %+.2f%%, RssAnon %+.2f%% (limit %.0f%%); RssAnon slope %+.0f bytes/request\n",
               growth_vm * 100, growth_anon * 100, opt.rss_growth_max * 100, slope);
    } else {
        printf("  growth: not judged (fewer than %d requests)\n", opt.rss_from + 1);
    }
    printf("  errors %d, mismatches %d, hang %s, daemon alive after %s, slots free after %s, clean exit %s\n", errors,
           mismatches, stalled ? "YES" : "no", alive ? "yes" : "NO", slots_free ? "yes" : "NO",
           clean_exit ? "yes" : "NO");
    for (const json & e : rep["error_samples"]) fprintf(stderr, "  %s\n", e.get<std::string>().c_str());
    printf("verdict: %s\n", pass ? "PASS" : "FAIL");

    if (!opt.json_path.empty()) {
        std::ofstream out(opt.json_path);
        out << rep.dump(2) << "\n";
        if (!out) fprintf(stderr, "error: cannot write %s\n", opt.json_path.c_str());
    }
    if (pass && !opt.keep) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    } else {
        fprintf(stderr, "daemon log and files kept in %s\n", dir.c_str());
    }
    curl_global_cleanup();
    return pass ? 0 : 1;
}
