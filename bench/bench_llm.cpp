// cortex-bench-llm: prompt processing and generation speed through Model::complete against
// llama-bench of the same llama.cpp build, same model, threads, batch and context, in one run.
//
// Rounds alternate between the two so that machine noise hits both alike; the figures are
// medians over rounds, and the ratio (Cortex / llama-bench: 1.0 = same speed, higher = faster)
// is the median of the per-round ratios, each taken from runs seconds apart.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cortex/llm.h"

using namespace cortex::llm;

namespace {

struct Options {
    std::string model;
    std::string llama_bench = LLAMA_BENCH_PATH;
    int n_prompt = 512;
    int n_gen = 128;
    int threads = 0;
    int n_gpu_layers = -1;
    int rounds = 5;
    int reps = 3;  // repetitions per round, for both tools
    double min_ratio = 0;
    bool json = false;
    // Several devices (issue #9), given to both tools alike.
    std::string split_mode;    // layer, row, none (empty = the default, layer)
    std::string tensor_split;  // "3,1"
    int main_gpu = 0;
    std::string rpc;  // ggml-rpc-server HOST:PORT list
};

[[noreturn]] void die(const std::string & msg) {
    fprintf(stderr, "error: %s\n", msg.c_str());
    exit(1);
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string run_capture(const std::vector<std::string> & argv) {
    int out[2];
    if (pipe(out) != 0) die("pipe failed");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        std::vector<char *> args;
        for (const auto & a : argv) args.push_back(const_cast<char *>(a.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        _exit(127);
    }
    close(out[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    close(out[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("llama-bench failed: " + argv[0]);
    return text;
}

// llama-bench's average tokens/second of each test in one invocation: {pp, tg}.
std::pair<double, double> run_llama_bench(const Options & o) {
    std::vector<std::string> argv = {o.llama_bench, "-m", o.model, "-p", std::to_string(o.n_prompt),
                                     "-n", std::to_string(o.n_gen), "-t", std::to_string(o.threads),
                                     "-ngl", std::to_string(o.n_gpu_layers), "-r", std::to_string(o.reps),
                                     "-b", "2048", "-ub", "512", "-fa", "auto", "-o", "json"};
    if (!o.split_mode.empty()) argv.insert(argv.end(), {"-sm", o.split_mode});
    if (o.main_gpu != 0) argv.insert(argv.end(), {"-mg", std::to_string(o.main_gpu)});
    if (!o.tensor_split.empty()) {
        std::string ts = o.tensor_split;  // llama-bench separates proportions with '/'
        std::replace(ts.begin(), ts.end(), ',', '/');
        argv.insert(argv.end(), {"-ts", ts});
    }
    if (!o.rpc.empty()) argv.insert(argv.end(), {"-rpc", o.rpc});
    nlohmann::json tests = nlohmann::json::parse(run_capture(argv));
    double pp = 0, tg = 0;
    for (const auto & t : tests) {
        if (t.value("n_prompt", 0) > 0 && t.value("n_gen", 0) == 0) pp = t.value("avg_ts", 0.0);
        if (t.value("n_gen", 0) > 0 && t.value("n_prompt", 0) == 0) tg = t.value("avg_ts", 0.0);
    }
    return {pp, tg};
}

}  // namespace

int main(int argc, char ** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) die(a + " needs a value");
            return argv[++i];
        };
        if (a == "-m" || a == "--model") o.model = value();
        else if (a == "--llama-bench") o.llama_bench = value();
        else if (a == "-p") o.n_prompt = std::stoi(value());
        else if (a == "-n") o.n_gen = std::stoi(value());
        else if (a == "-t") o.threads = std::stoi(value());
        else if (a == "-ngl") o.n_gpu_layers = std::stoi(value());
        else if (a == "--rounds") o.rounds = std::stoi(value());
        else if (a == "-r") o.reps = std::stoi(value());
        else if (a == "--min-ratio") o.min_ratio = std::stod(value());
        else if (a == "--json") o.json = true;
        else if (a == "-sm" || a == "--split-mode") o.split_mode = value();
        else if (a == "-ts" || a == "--tensor-split") o.tensor_split = value();
        else if (a == "-mg" || a == "--main-gpu") o.main_gpu = std::stoi(value());
        else if (a == "--rpc") o.rpc = value();
        else if (a == "-h" || a == "--help") {
            printf("usage: cortex-bench-llm -m MODEL [-p 512] [-n 128] [-t THREADS] [-ngl -1] [--rounds 5] [-r 3]\n"
                   "                        [--llama-bench PATH] [--min-ratio R] [--json]\n"
                   "                        [--split-mode layer|row|none] [--tensor-split 3,1] [--main-gpu N] [--rpc HOST:PORT,...]\n");
            return 0;
        } else die("unknown argument " + a);
    }
    if (o.model.empty()) die("-m MODEL is required");
    if (o.threads <= 0) o.threads = static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));

    ModelConfig mc;
    mc.n_ctx = o.n_prompt + o.n_gen;
    mc.n_batch = 512;
    mc.n_threads = o.threads;
    mc.n_gpu_layers = o.n_gpu_layers;
    mc.split_mode = o.split_mode == "none" ? SplitMode::kNone : o.split_mode == "row" ? SplitMode::kRow : SplitMode::kLayer;
    mc.main_gpu = o.main_gpu;
    for (size_t start = 0; !o.tensor_split.empty() && start <= o.tensor_split.size();) {
        size_t comma = o.tensor_split.find(',', start);
        if (comma == std::string::npos) comma = o.tensor_split.size();
        mc.tensor_split.push_back(std::stof(o.tensor_split.substr(start, comma - start)));
        start = comma + 1;
    }
    try {
        mc.rpc_servers = parse_rpc_servers(o.rpc, false);
    } catch (const cortex::Error & e) {
        die(e.message() + "\nhint: " + e.hint());
    }
    std::shared_ptr<Model> model;
    auto load = [&] {
        try {
            model = Model::load(o.model, mc);
        } catch (const cortex::Error & e) {
            die(e.message());
        }
    };
    load();

    // Random prompt tokens, as llama-bench uses.
    std::mt19937 rng(1234);
    std::vector<Token> prompt(o.n_prompt);
    for (auto & t : prompt) t = static_cast<Token>(rng() % static_cast<unsigned>(model->n_vocab()));
    const std::vector<Token> one = model->tokenize("The", true, false);

    GenerationConfig pp_cfg;
    pp_cfg.temperature = 0;
    pp_cfg.max_tokens = 1;
    pp_cfg.cache_prompt = false;
    GenerationConfig tg_cfg = pp_cfg;
    // n_gen decode+sample steps follow the first token, which comes from the prompt's logits.
    tg_cfg.max_tokens = o.n_gen + 1;
    tg_cfg.ignore_eos = true;

    auto ours_pp = [&] { return model->complete(prompt, pp_cfg).prompt_tokens_per_second; };
    auto ours_tg = [&] { return model->complete(one, tg_cfg).tokens_per_second; };
    ours_pp();  // warm-up, as llama-bench does
    ours_tg();

    std::vector<double> c_pp, c_tg, l_pp, l_tg, ratios_pp, ratios_tg;
    for (int round = 0; round < o.rounds; ++round) {
        std::vector<double> pp, tg;
        for (int r = 0; r < o.reps; ++r) pp.push_back(ours_pp());
        for (int r = 0; r < o.reps; ++r) tg.push_back(ours_tg());
        c_pp.push_back(median(pp));
        c_tg.push_back(median(tg));
        // A ggml-rpc-server serves one client at a time: llama-bench gets the servers while
        // Cortex's model is freed, and the model is loaded again after (not timed).
        if (!o.rpc.empty()) model.reset();
        auto [lpp, ltg] = run_llama_bench(o);
        if (!o.rpc.empty()) load();
        l_pp.push_back(lpp);
        l_tg.push_back(ltg);
        ratios_pp.push_back(lpp > 0 ? c_pp.back() / lpp : 0);
        ratios_tg.push_back(ltg > 0 ? c_tg.back() / ltg : 0);
        if (!o.json) {
            fprintf(stderr, "round %d: cortex pp %.1f tg %.1f | llama-bench pp %.1f tg %.1f\n", round + 1, c_pp.back(),
                    c_tg.back(), lpp, ltg);
        }
    }
    const double cpp = median(c_pp), ctg = median(c_tg), lpp = median(l_pp), ltg = median(l_tg);
    const double r_pp = median(ratios_pp), r_tg = median(ratios_tg);
    if (o.json) {
        nlohmann::json j = {{"model", o.model},       {"description", model->description()},
                            {"threads", o.threads},   {"n_gpu_layers", o.n_gpu_layers},
                            {"load_ms", model->load_ms()},
                            {"cortex_pp", cpp},       {"llama_bench_pp", lpp}, {"ratio_pp", r_pp},
                            {"cortex_tg", ctg},       {"llama_bench_tg", ltg}, {"ratio_tg", r_tg}};
        printf("%s\n", j.dump().c_str());
    } else {
        printf("model: %s (%s)\nthreads: %d, gpu layers: %d, load: %.0f ms\n", o.model.c_str(),
               model->description().c_str(), o.threads, o.n_gpu_layers, model->load_ms());
        printf("%-8s %14s %14s %8s\n", "test", "cortex t/s", "llama-bench", "ratio");
        printf("pp%-6d %14.1f %14.1f %8.3f\n", o.n_prompt, cpp, lpp, r_pp);
        printf("tg%-6d %14.1f %14.1f %8.3f\n", o.n_gen, ctg, ltg, r_tg);
    }
    if (o.min_ratio > 0 && (r_pp < o.min_ratio || r_tg < o.min_ratio)) return 1;
    return 0;
}
