// cortex-bench-preload: what the preload daemon buys, each figure against its baseline in the
// same run: request overhead vs an in-process call, one-shot start-up vs loading in-process,
// time to first token with a cached system prompt vs uncached, and aggregate generation with 4
// clients vs llama-batched-bench at 4 sequences, and resident memory vs a bare libllama process.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>

#include "cortex/llm.h"
#include "cortex/preload.h"
#include "llama-cpp.h"
#include "llm/backend.h"

extern char ** environ;

using namespace cortex;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

pid_t spawn(const std::vector<std::string> & args, const std::string & out = "/dev/null", const std::string & err = "/dev/null") {
    std::vector<char *> argv;
    for (auto & a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

int wait_for(pid_t pid) {
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// POSTs `body` to `url`; returns the HTTP status (0 when nothing answered) and the body.
long http_post(const std::string & url, const std::string & body, std::string * response) {
    CURL * curl = curl_easy_init();
    curl_slist * headers = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    if (!body.empty()) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    }
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, +[](char * p, size_t s, size_t n, void * out) {
        static_cast<std::string *>(out)->append(p, s * n);
        return s * n;
    });
    std::string sink;
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, response ? response : &sink);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return status;
}

// Anonymous resident memory of `pid` (heap, repacked weights, compute buffers, CUDA's host
// allocations), in MB; the mapped model file's pages are RssFile and not counted.
double rss_anon_mb(pid_t pid) {
    FILE * f = fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "RssAnon: %lf kB", &kb) == 1) break;
    }
    if (f) fclose(f);
    return kb / 1024.0;
}

// CPU time `pid` has used so far (user + system), in seconds.
double cpu_seconds(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t close = stat.rfind(')');  // the command name may hold spaces
    if (close == std::string::npos) return 0;
    std::istringstream fields(stat.substr(close + 2));
    std::string skip;
    for (int i = 3; i < 14; ++i) fields >> skip;  // state .. cmajflt; utime and stime are fields 14 and 15
    double utime = 0, stime = 0;
    fields >> utime >> stime;
    return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The host-memory buffers that llama.cpp reports in its log ("CPU_REPACK model buffer size =
// 28.05 MiB"), in MiB, the last report of each: the weights it keeps in anonymous memory
// (repacked for the CPU; the mapped file's pages are not anonymous), the KV cache, compute and
// output buffers. Device buffers (CUDA0, ...) and the file mapping (CPU_Mapped) are left out.
struct HostBuffers {
    double model = 0, kv = 0, compute = 0, output = 0;
    double total() const { return model + kv + compute + output; }
};

HostBuffers host_buffers_in_log(const std::string & path) {
    std::map<std::pair<std::string, std::string>, double> last;  // (buffer, kind) -> MiB
    std::ifstream in(path);
    static const std::regex report(R"((\S+)\s+(model|KV|compute|output) buffer size =\s*([0-9.]+) MiB)");
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (!std::regex_search(line, m, report)) continue;
        const std::string name = m[1];
        const bool host = (name.rfind("CPU", 0) == 0 && name != "CPU_Mapped") || name.find("_Host") != std::string::npos;
        if (host) last[{name, m[2].str()}] = std::stod(m[3]);
    }
    HostBuffers b;
    for (const auto & [key, mib] : last) {
        const std::string & kind = key.second;
        (kind == "model" ? b.model : kind == "KV" ? b.kv : kind == "compute" ? b.compute : b.output) += mib;
    }
    return b;
}

// "X MB = llama.cpp's host buffers (model, KV, compute, output) + the rest"
void print_memory(const char * who, double anon_mb, const HostBuffers & b) {
    printf("  %s: %.1f MB = llama.cpp host buffers %.1f (model %.1f, KV %.1f, compute %.1f, output %.1f) + %.1f other | beyond model and KV "
           "%.1f MB\n",
           who, anon_mb, b.total(), b.model, b.kv, b.compute, b.output, anon_mb - b.total(), anon_mb - b.model - b.kv);
}

struct ServerRun {
    double ready_ms = 0;
    double tokens_per_second = 0;
    double rss_anon_mb = 0;  // after its 4 requests, like the daemon's figure
};

// llama-server of the same build with 4 slots and continuous batching, the same model and
// settings: time until /health answers 200, and the aggregate generation of 4 concurrent
// /completion requests of n_gen tokens (ignore_eos, greedy), as our 4 clients do; with
// `backend_sampling`, llama-server picks those tokens inside its graph (the daemon does not:
// docs/PERFORMANCE.md).
ServerRun run_llama_server(const std::string & server_bin, const std::string & model, int threads, int ngl, int n_gen,
                           bool backend_sampling) {
    ServerRun run;
    const std::string port = std::to_string(20000 + getpid() % 20000);
    const std::string base = "http://127.0.0.1:" + port;
    const auto t0 = Clock::now();
    pid_t pid = spawn({server_bin, "-m", model, "-np", "4", "-c", "8192", "-b", "2048", "-ub", "512", "-t", std::to_string(threads),
                       "-ngl", std::to_string(ngl), "--host", "127.0.0.1", "--port", port});
    while (http_post(base + "/health", "", nullptr) != 200) {
        if (ms_since(t0) > 180000) {
            kill(pid, SIGKILL);
            wait_for(pid);
            return run;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    run.ready_ms = ms_since(t0);
    std::vector<int> predicted(4, 0);
    std::vector<std::thread> workers;
    const auto t_gen = Clock::now();
    for (int i = 0; i < 4; ++i) {
        workers.emplace_back([&, i] {
            nlohmann::json req = {{"prompt", "Story " + std::to_string(i) + ":"}, {"n_predict", n_gen}, {"ignore_eos", true},
                                  {"temperature", 0}, {"cache_prompt", false}, {"backend_sampling", backend_sampling}};
            std::string out;
            if (http_post(base + "/completion", req.dump(), &out) == 200) {
                auto j = nlohmann::json::parse(out, nullptr, false);
                if (j.is_object()) predicted[i] = j["timings"].value("predicted_n", 0);
            }
        });
    }
    for (auto & w : workers) w.join();
    const double s = ms_since(t_gen) / 1000.0;
    int total = 0;
    for (int n : predicted) total += n;
    run.tokens_per_second = total / s;
    run.rss_anon_mb = rss_anon_mb(pid);
    kill(pid, SIGTERM);
    wait_for(pid);
    return run;
}

llm::GenerationConfig greedy(int n) {
    llm::GenerationConfig g;
    g.temperature = 0;
    g.max_tokens = n;
    return g;
}

// The one-shot modes this binary re-runs itself in, as a user's command would.
int oneshot(const std::string & mode, const std::string & target) {
    if (mode == "--oneshot-daemon") {
        auto c = preload::Client::connect(target);
        if (!c) return 2;
        return c->complete("Hi", greedy(1)).completion_tokens == 1 ? 0 : 1;
    }
    llm::ModelConfig mc;
    mc.n_ctx = 2048;
    return llm::Model::load(target, mc)->complete("Hi", greedy(1)).completion_tokens == 1 ? 0 : 1;
}

// The floor: a bare libllama program, no Cortex code beyond the backend loading and log bridge
// (llm::ensure_backend), with the daemon's model and context settings (4 sequences of 2,048 tokens, one output per sequence), that decodes what the bench's
// requests decode: a 1,000-token prompt, then 4 sequences of n_gen tokens. What it holds is what
// any program needs to serve this model this way; the daemon's memory beyond it is Cortex's own.
// Prints its anonymous resident memory in MiB; llama.cpp's buffer report goes to stderr
// (CORTEX_LOG_LEVEL=info).
int bare_libllama(const std::string & model_path, int threads, int ngl, int n_gen) {
    llm::ensure_backend();
    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = ngl;
    llama_model_ptr model(llama_model_load_from_file(model_path.c_str(), mparams));
    if (!model) return 1;
    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 4 * 2048;
    cparams.n_batch = 512;
    cparams.n_ubatch = 512;
    cparams.n_seq_max = 4;
    cparams.n_outputs_max = 4;
    cparams.n_threads = cparams.n_threads_batch = threads;
    cparams.no_perf = true;
    llama_context_ptr ctx(llama_init_from_model(model.get(), cparams));
    if (!ctx) return 1;
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model.get()));
    llama_batch batch = llama_batch_init(512, 0, 1);
    auto add = [&](llama_token t, llama_pos pos, llama_seq_id seq, bool logits) {
        const int i = batch.n_tokens++;
        batch.token[i] = t;
        batch.pos[i] = pos;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = seq;
        batch.logits[i] = logits;
    };
    int rc = 0;
    for (int pos = 0; pos < 1000 && rc == 0; pos += 500) {  // the system prompt, in two batches
        batch.n_tokens = 0;
        for (int i = 0; i < 500; ++i) add((pos + i) % n_vocab, pos + i, 0, pos + i == 999);
        rc = llama_decode(ctx.get(), batch);
    }
    for (int step = 0; step < n_gen && rc == 0; ++step) {  // 4 sequences, one token each per batch
        batch.n_tokens = 0;
        for (int seq = 0; seq < 4; ++seq) add((step * 4 + seq) % n_vocab, (seq == 0 ? 1000 : 0) + step, seq, true);
        rc = llama_decode(ctx.get(), batch);
        for (int seq = 0; seq < 4 && rc == 0; ++seq) llama_get_logits_ith(ctx.get(), seq);
    }
    llama_synchronize(ctx.get());
    printf("%.3f\n", rss_anon_mb(getpid()));
    llama_batch_free(batch);
    return rc == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc >= 3 && std::string(argv[1]).rfind("--oneshot", 0) == 0) return oneshot(argv[1], argv[2]);
    if (argc == 6 && std::string(argv[1]) == "--bare-libllama") {
        return bare_libllama(argv[2], std::atoi(argv[3]), std::atoi(argv[4]), std::atoi(argv[5]));
    }
    if (argc < 4) {
        fprintf(stderr, "usage: cortex-bench-preload MODEL CORTEX_PRELOAD_BIN LLAMA_BATCHED_BENCH [THREADS] [N_GPU_LAYERS] [LLAMA_SERVER]\n");
        return 2;
    }
    const std::string model = std::filesystem::absolute(argv[1]), daemon_bin = argv[2], batched_bench = argv[3];
    const int threads = argc > 4 ? std::atoi(argv[4]) : static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    const int ngl = argc > 5 ? std::atoi(argv[5]) : -1;
    const std::string server_bin = argc > 6 ? argv[6] : "";
    char tmpl[] = "/tmp/cortex-bench-preload-XXXXXX";
    const std::string home = mkdtemp(tmpl);
    const std::string socket = home + "/preload.sock";
    setenv("CORTEX_HOME", home.c_str(), 1);
    setenv("LLAMACPP_N_CTX", "2048", 1);
    setenv("LLAMACPP_N_THREADS", std::to_string(threads).c_str(), 1);
    setenv("LLAMACPP_N_GPU_LAYERS", std::to_string(ngl).c_str(), 1);
    setenv("CORTEX_PRELOAD_SOCKET", socket.c_str(), 1);  // where ModelManager looks for the daemon
    unsetenv("CORTEX_PRELOAD");

    const auto t_start = Clock::now();
    // llama.cpp's report of its buffers goes to the daemon's log (memory, below).
    const std::string daemon_log = home + "/daemon.log";
    setenv("CORTEX_LOG_LEVEL", "info", 1);
    pid_t daemon = spawn({daemon_bin, "run", "--model", model, "--parallel", "4", "--socket", socket}, "/dev/null", daemon_log);
    unsetenv("CORTEX_LOG_LEVEL");
    std::unique_ptr<preload::Client> client;
    while (!(client = preload::Client::connect(socket))) {
        if (ms_since(t_start) > 120000) {
            fprintf(stderr, "error: the daemon did not start\n");
            return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const double daemon_ready_ms = ms_since(t_start);

    llm::ModelConfig mc;
    mc.n_ctx = 2048;
    mc.n_threads = threads;
    mc.n_gpu_layers = ngl;
    auto local = llm::Model::load(model, mc);

    // 1. Overhead of a 1-token completion of a cached 1-token prompt: over one Client, through
    // the Model that ModelManager attaches to the daemon (its connections are kept), and with a
    // new connection per call (what quick_* does).
    llm::ModelManager manager(home);
    const auto t_attach = Clock::now();
    auto attached = manager.load_model(model, mc);
    const double attach_ms = ms_since(t_attach);
    std::vector<double> in_process, via_daemon, via_manager, via_new_connection;
    for (int i = 0; i < 5; ++i) local->complete("Hi", greedy(1)), client->complete("Hi", greedy(1)), attached->complete("Hi", greedy(1));
    for (int i = 0; i < 200; ++i) {
        auto t0 = Clock::now();
        local->complete("Hi", greedy(1));
        in_process.push_back(ms_since(t0));
        t0 = Clock::now();
        client->complete("Hi", greedy(1));
        via_daemon.push_back(ms_since(t0));
        t0 = Clock::now();
        attached->complete("Hi", greedy(1));
        via_manager.push_back(ms_since(t0));
        t0 = Clock::now();
        preload::Client::connect(socket)->complete("Hi", greedy(1));
        via_new_connection.push_back(ms_since(t0));
    }
    const double p50_local = percentile(in_process, 0.5), p99_local = percentile(in_process, 0.99);
    const double p50_daemon = percentile(via_daemon, 0.5), p99_daemon = percentile(via_daemon, 0.99);
    const double p50_manager = percentile(via_manager, 0.5), p99_manager = percentile(via_manager, 0.99);
    const double p50_new = percentile(via_new_connection, 0.5), p99_new = percentile(via_new_connection, 0.99);
    attached.reset();
    manager.unload_all();

    // 2. A one-shot command: through the warm daemon vs loading the model itself.
    std::vector<double> shot_daemon, shot_local;
    for (int i = 0; i < 5; ++i) {
        auto t0 = Clock::now();
        if (wait_for(spawn({"/proc/self/exe", "--oneshot-daemon", socket})) != 0) fprintf(stderr, "warning: one-shot via daemon failed\n");
        shot_daemon.push_back(ms_since(t0));
        t0 = Clock::now();
        if (wait_for(spawn({"/proc/self/exe", "--oneshot-local", model})) != 0) fprintf(stderr, "warning: one-shot in-process failed\n");
        shot_local.push_back(ms_since(t0));
    }

    // 3. Time to first token with a 1,000-token system prompt: first (uncached) vs later requests.
    std::string system;
    while (local->tokenize(system).size() < 1000) system += "Cortex plans apt actions carefully and explains each step. ";
    std::vector<double> ttft_cold, ttft_warm;
    for (int i = 0; i < 3; ++i) {
        // A new first line makes the whole prompt new to every slot's cache.
        const std::string tag = "Session " + std::to_string(i) + "-" + std::to_string(rand()) + ".\n";
        llm::Result cold = client->chat({{"system", tag + system}, {"user", "install nginx"}}, greedy(1));
        llm::Result warm = client->chat({{"system", tag + system}, {"user", "install docker"}}, greedy(1));
        ttft_cold.push_back(cold.time_to_first_token_ms);
        ttft_warm.push_back(warm.time_to_first_token_ms);
    }

    // 4. Aggregate generation of 4 concurrent clients vs llama-batched-bench at 4 sequences.
    const int n_gen = 128;
    std::vector<std::unique_ptr<preload::Client>> clients;
    for (int i = 0; i < 4; ++i) clients.push_back(preload::Client::connect(socket));
    std::vector<llm::Result> results(4);
    std::vector<std::thread> workers;
    llm::GenerationConfig gen = greedy(n_gen);
    // BENCH_IGNORE_EOS=0: plain greedy requests (they may end early at an end-of-generation token;
    // the count is of the tokens generated either way).
    const char * ignore_eos = getenv("BENCH_IGNORE_EOS");
    gen.ignore_eos = !(ignore_eos && std::string(ignore_eos) == "0");
    // Two counts: end to end (wall time from the four calls to the last answer: connection,
    // prompts, ramp-up included) and the generation phase as llama-batched-bench counts its S_TG
    // (tokens after the first of each stream, over the time from the first stream's first token
    // to the last stream's last, seen by the clients).
    std::vector<Clock::time_point> first_piece(4), last_piece(4);
    auto t_gen = Clock::now();
    const double daemon_cpu_before = cpu_seconds(daemon);
    for (int i = 0; i < 4; ++i) {
        workers.emplace_back([&, i] {
            bool seen = false;
            results[i] = clients[i]->complete("Story " + std::to_string(i) + ":", gen, [&](std::string_view) {
                last_piece[i] = Clock::now();
                if (!seen) first_piece[i] = last_piece[i];
                seen = true;
                return true;
            });
        });
    }
    for (auto & w : workers) w.join();
    const double gen_s = ms_since(t_gen) / 1000.0;
    const double daemon_cores = (cpu_seconds(daemon) - daemon_cpu_before) / gen_s;
    double ours_tg = 0, ours_tg_phase = 0;
    for (auto & r : results) ours_tg += r.completion_tokens;
    ours_tg /= gen_s;
    {
        const Clock::time_point from = *std::min_element(first_piece.begin(), first_piece.end());
        const Clock::time_point to = *std::max_element(last_piece.begin(), last_piece.end());
        double after_first = 0;
        for (auto & r : results) after_first += r.completion_tokens - 1;
        ours_tg_phase = after_first / std::chrono::duration<double>(to - from).count();
    }
    const std::string bb_out = home + "/batched.jsonl";
    wait_for(spawn({batched_bench, "-m", model, "-c", "8192", "-b", "2048", "-ub", "512", "-npp", "4", "-ntg", std::to_string(n_gen), "-npl", "1,4",
                    "-t", std::to_string(threads), "-ngl", std::to_string(ngl), "--output-format", "jsonl"},
                   bb_out));
    double bb_tg4 = 0, bb_tg1 = 0;
    {
        FILE * f = fopen(bb_out.c_str(), "r");
        char line[4096];
        while (f && fgets(line, sizeof line, f)) {
            auto j = nlohmann::json::parse(line, nullptr, false);
            if (!j.is_object() || !j.contains("pl")) continue;
            if (j["pl"] == 4) bb_tg4 = j.value("speed_tg", 0.0);
            if (j["pl"] == 1) bb_tg1 = j.value("speed_tg", 0.0);
        }
        if (f) fclose(f);
    }

    const double daemon_anon_mb = rss_anon_mb(daemon);
    const HostBuffers daemon_buffers = host_buffers_in_log(daemon_log);
    const std::string bare_out = home + "/bare.txt", bare_log = home + "/bare.log";
    double bare_anon_mb = 0;
    setenv("CORTEX_LOG_LEVEL", "info", 1);
    const pid_t bare = spawn({"/proc/self/exe", "--bare-libllama", model, std::to_string(threads), std::to_string(ngl), std::to_string(n_gen)},
                             bare_out, bare_log);
    unsetenv("CORTEX_LOG_LEVEL");
    if (wait_for(bare) == 0) {
        std::ifstream(bare_out) >> bare_anon_mb;
    } else {
        fprintf(stderr, "warning: the bare libllama process failed (%s)\n", bare_log.c_str());
    }
    const HostBuffers bare_buffers = host_buffers_in_log(bare_log);
    // 5. The same 4-client generation against llama-server (after our daemon's numbers are in).
    ServerRun server, server_bs;
    if (!server_bin.empty()) {
        client->shutdown();
        wait_for(daemon);
        daemon = -1;
        server = run_llama_server(server_bin, model, threads, ngl, n_gen, false);
        server_bs = run_llama_server(server_bin, model, threads, ngl, n_gen, true);
    }
    if (daemon > 0) {
        client->shutdown();
        wait_for(daemon);
    }
    std::filesystem::remove_all(home);

    printf("model: %s, %d threads, gpu layers %d\n", model.c_str(), threads, ngl);
    printf("daemon ready after %.0f ms (spawn to first answer)\n", daemon_ready_ms);
    printf("1-token completion, cached prompt: in-process p50 %.2f ms p99 %.2f ms | daemon p50 %.2f ms p99 %.2f ms | added p50 %.2f ms p99 %.2f ms\n",
           p50_local, p99_local, p50_daemon, p99_daemon, p50_daemon - p50_local, p99_daemon - p99_local);
    printf("  ModelManager::load_model on the daemon (attached in %.2f ms): p50 %.2f ms p99 %.2f ms | added p50 %.2f ms p99 %.2f ms\n",
           attach_ms, p50_manager, p99_manager, p50_manager - p50_local, p99_manager - p99_local);
    printf("  a new connection per call: p50 %.2f ms p99 %.2f ms | added p50 %.2f ms p99 %.2f ms\n", p50_new, p99_new,
           p50_new - p50_local, p99_new - p99_local);
    printf("one-shot command: via daemon %.1f ms | loading in-process %.1f ms | %.1fx faster\n", percentile(shot_daemon, 0.5),
           percentile(shot_local, 0.5), percentile(shot_local, 0.5) / percentile(shot_daemon, 0.5));
    printf("time to first token, 1,000-token system prompt: uncached %.1f ms | cached %.1f ms | %.1fx faster\n", percentile(ttft_cold, 0.5),
           percentile(ttft_warm, 0.5), percentile(ttft_cold, 0.5) / percentile(ttft_warm, 0.5));
    printf("4 concurrent clients: generation phase %.1f tokens/s aggregate | llama-batched-bench 4 seqs S_TG %.1f t/s (1 seq %.1f) | ratio %.3f\n",
           ours_tg_phase, bb_tg4, bb_tg1, bb_tg4 > 0 ? ours_tg_phase / bb_tg4 : 0.0);
    printf("  end to end (calls to last answer, prompts and ramp-up included): %.1f tokens/s | ratio %.3f | daemon CPU %.2f cores\n",
           ours_tg, bb_tg4 > 0 ? ours_tg / bb_tg4 : 0.0, daemon_cores);
    if (!server_bin.empty()) {
        printf("llama-server, 4 slots: ready after %.0f ms | 4 concurrent requests %.1f tokens/s aggregate | ratio (daemon / llama-server) %.3f\n",
               server.ready_ms, server.tokens_per_second, server.tokens_per_second > 0 ? ours_tg / server.tokens_per_second : 0.0);
        printf("  with backend_sampling (greedy tokens picked in its graph): %.1f tokens/s aggregate | ratio (daemon / llama-server) %.3f\n",
               server_bs.tokens_per_second, server_bs.tokens_per_second > 0 ? ours_tg / server_bs.tokens_per_second : 0.0);
    }
    // Resident memory that is not the mapped model file's pages, after the same 4-client load.
    printf("anonymous resident memory (MiB; the mapped model file's pages are not anonymous):\n");
    print_memory("daemon", daemon_anon_mb, daemon_buffers);
    print_memory("bare libllama, same model, context and tokens", bare_anon_mb, bare_buffers);
    printf("  daemon beyond bare libllama (Cortex's own memory) %+.1f MB\n", daemon_anon_mb - bare_anon_mb);
    if (!server_bin.empty()) {
        // Its log does not report llama.cpp's buffers at the default verbosity.
        printf("  llama-server: %.1f MB after its 4 requests | daemon beyond llama-server %+.1f MB\n", server.rss_anon_mb,
               daemon_anon_mb - server.rss_anon_mb);
    }
    return 0;
}
