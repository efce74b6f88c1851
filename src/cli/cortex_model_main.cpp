// cortex-model: list, download, verify, inspect and delete models; recommend one for this
// machine; reuse Ollama's. A thin main over cortex/models.h.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cmath>
#include <cstdio>

#include "cli_common.h"
#include "cortex/config.h"
#include "cortex/llm.h"
#include "cortex/models.h"

using namespace cortex;
using namespace cortex::models;
using nlohmann::json;

namespace {

std::atomic<bool> g_interrupted{false};

void on_sigint(int) { g_interrupted = true; }

std::string human_bytes(double bytes) {
    const char * units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1000 && u < 4) bytes /= 1000, ++u;
    char buf[32];
    snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
    return buf;
}

std::string human_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "--:--";
    long s = static_cast<long>(seconds);
    char buf[32];
    if (s >= 3600) snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
    return buf;
}

json entry_json(const CatalogEntry & e, const ModelStore & store) {
    InstalledModel m;
    bool have = store.find(e.name, m);
    return {{"name", e.name},           {"aliases", e.aliases},       {"family", e.family},
            {"tier", e.tier},           {"params", e.params},         {"size", e.size},
            {"context_length", e.context_length}, {"memory_gb", e.memory_gb}, {"best_for", e.best_for},
            {"repo", e.repo},           {"file", e.file},             {"sha256", e.sha256},
            {"downloaded", have},       {"path", have ? m.path : ""}};
}

const CatalogEntry & catalog_entry(const std::string & name) {
    const CatalogEntry * e = Catalog::get().find(name);
    if (!e) {
        std::string names;
        for (const auto & c : Catalog::get().entries()) names += (names.empty() ? "" : ", ") + c.name;
        throw Error(ErrorCode::kNotFound, "'" + name + "' is not in the catalog", "models: " + names + " (or 'recommended')");
    }
    return *e;
}

// Progress on a terminal: one line redrawn in place; elsewhere a line per 10%.
struct ProgressPrinter {
    bool tty = isatty(STDERR_FILENO);
    bool json = false;
    int last_decile = -1;
    void operator()(const DownloadProgress & p) {
        const double frac = p.total ? static_cast<double>(p.done) / p.total : 0;
        const double eta = p.bytes_per_second > 0 && p.total ? (p.total - p.done) / p.bytes_per_second : NAN;
        if (json) {
            printf("%s\n", json::object({{"status", "downloading"}, {"completed", p.done}, {"total", p.total},
                                         {"bytes_per_second", p.bytes_per_second}}).dump().c_str());
            fflush(stdout);
        } else if (tty) {
            const int width = 30, fill = static_cast<int>(frac * width);
            fprintf(stderr, "\r[%s%s] %3.0f%% %s / %s  %s/s  ETA %s   ", std::string(fill, '=').c_str(),
                    std::string(width - fill, ' ').c_str(), frac * 100, human_bytes(p.done).c_str(),
                    human_bytes(p.total).c_str(), human_bytes(p.bytes_per_second).c_str(), human_duration(eta).c_str());
        } else {
            int decile = static_cast<int>(frac * 10);
            if (decile != last_decile) {
                last_decile = decile;
                fprintf(stderr, "%3d%% %s / %s  %s/s\n", decile * 10, human_bytes(p.done).c_str(), human_bytes(p.total).c_str(),
                        human_bytes(p.bytes_per_second).c_str());
            }
        }
    }
};

int cmd_list(const Settings & s, bool downloaded, bool as_json) {
    ModelStore store(s.models_dir());
    if (downloaded) {
        json out = json::array();
        for (const InstalledModel & m : store.list()) {
            out.push_back({{"name", m.name}, {"path", m.path}, {"size", m.size}, {"source", m.source}, {"sha256", m.sha256}});
        }
        if (as_json) {
            printf("%s\n", out.dump(2).c_str());
        } else if (out.empty()) {
            printf("no models in %s\nget one with: cortex-model download recommended\n", store.dir().c_str());
        } else {
            printf("%-24s %10s  %-8s %s\n", "NAME", "SIZE", "SOURCE", "PATH");
            for (const auto & m : out) {
                printf("%-24s %10s  %-8s %s\n", m["name"].get<std::string>().c_str(), human_bytes(m["size"].get<double>()).c_str(),
                       m["source"].get<std::string>().c_str(), m["path"].get<std::string>().c_str());
            }
        }
        return 0;
    }
    json out = json::array();
    for (const CatalogEntry & e : Catalog::get().entries()) out.push_back(entry_json(e, store));
    if (as_json) {
        printf("%s\n", out.dump(2).c_str());
        return 0;
    }
    printf("%-20s %9s %8s  %-7s %-4s %s\n", "NAME", "SIZE", "CONTEXT", "TIER", "HAVE", "BEST FOR");
    for (const auto & m : out) {
        printf("%-20s %9s %8d  %-7s %-4s %s\n", m["name"].get<std::string>().c_str(), human_bytes(m["size"].get<double>()).c_str(),
               m["context_length"].get<int>(), m["tier"].get<std::string>().c_str(), m["downloaded"].get<bool>() ? "yes" : "",
               m["best_for"].get<std::string>().c_str());
    }
    return 0;
}

const CatalogEntry & recommended_entry(Recommendation & rec) {
    rec = recommend(detect_hardware(), Catalog::get());
    return *rec.model;
}

int cmd_download(const Settings & s, std::string name, bool force, bool as_json) {
    Recommendation rec;
    const CatalogEntry & e = name == "recommended" ? recommended_entry(rec) : catalog_entry(name);
    if (name == "recommended" && !as_json) fprintf(stderr, "recommended: %s (%s)\n", e.name.c_str(), rec.reason.c_str());
    ModelStore store(s.models_dir());
    InstalledModel have;
    if (!force && store.find(e.name, have) && have.size == e.size) {
        if (as_json) printf("%s\n", json::object({{"status", "exists"}, {"name", e.name}, {"path", have.path}}).dump().c_str());
        else printf("%s is already downloaded: %s\n(re-download with --force, check it with: cortex-model verify %s)\n", e.name.c_str(),
                    have.path.c_str(), e.name.c_str());
        return 0;
    }
    const std::string dest = store.path(e.name);
    if (force) unlink((dest + ".part").c_str());

    DownloadOptions opt;
    opt.expected_size = e.size;
    opt.expected_sha256 = e.sha256;
    opt.bearer_token = s.env_or_dotenv("HF_TOKEN");
    ProgressPrinter printer;
    printer.json = as_json;
    opt.on_progress = [&printer](const DownloadProgress & p) { printer(p); };
    opt.cancel = &g_interrupted;
    if (const char * v = std::getenv("CORTEX_DOWNLOAD_RETRY_DELAY_MS")) opt.retry_delay_ms = std::atoi(v);
    if (const char * v = std::getenv("CORTEX_DOWNLOAD_STALL_SECONDS")) opt.stall_seconds = std::atoi(v);
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);

    const std::string url = e.url(model_base_url());
    if (!as_json) fprintf(stderr, "downloading %s (%s) from %s\n", e.name.c_str(), human_bytes(e.size).c_str(), url.c_str());
    DownloadResult r;
    try {
        r = download_file(url, dest, opt);
    } catch (...) {
        if (printer.tty && !as_json) fprintf(stderr, "\n");
        throw;
    }
    if (printer.tty && !as_json) fprintf(stderr, "\n");
    store.record({e.name, dest, r.bytes, "catalog", r.sha256, url});
    if (as_json) {
        printf("%s\n", json::object({{"status", "success"}, {"name", e.name}, {"path", dest}, {"sha256", r.sha256},
                                     {"verified_against", r.digest_source}, {"resumed_from", r.resumed_from}}).dump().c_str());
    } else {
        printf("%s: %s\nSHA-256 %s (%s)\n", e.name.c_str(), dest.c_str(), r.sha256.c_str(),
               r.digest_source == "none" ? "no published digest to check against" : ("verified against the " + r.digest_source).c_str());
    }
    return 0;
}

int cmd_delete(const Settings & s, const std::string & name, bool as_json) {
    const CatalogEntry * e = Catalog::get().find(name);
    const std::string store_name = e ? e->name : name;
    ModelStore store(s.models_dir());
    if (!store.remove(store_name)) {
        throw Error(ErrorCode::kNotFound, "'" + name + "' is not in " + store.dir(), "see: cortex-model list --downloaded");
    }
    if (as_json) printf("%s\n", json::object({{"status", "deleted"}, {"name", store_name}}).dump().c_str());
    else printf("deleted %s\n", store_name.c_str());
    return 0;
}

int cmd_info(const Settings & s, const std::string & name, bool as_json) {
    llm::ModelManager manager(s.models_dir());
    ModelFileInfo info = inspect_model_file(manager.resolve(name));
    if (as_json) {
        printf("%s\n", json::object({{"path", info.path}, {"size", info.file_size}, {"architecture", info.architecture},
                                     {"name", info.name}, {"quantization", info.quantization}, {"parameters", info.n_params},
                                     {"context_length", info.context_length}, {"chat_template", info.chat_template}})
                               .dump(2)
                               .c_str());
        return 0;
    }
    printf("path:          %s\nsize:          %s\narchitecture:  %s\nname:          %s\nquantization:  %s\n"
           "parameters:    %.2fB\ncontext:       %d\nchat template: %s\n",
           info.path.c_str(), human_bytes(info.file_size).c_str(), info.architecture.c_str(), info.name.c_str(),
           info.quantization.c_str(), info.n_params / 1e9, info.context_length,
           info.has_chat_template ? (std::to_string(info.chat_template.size()) + " characters").c_str() : "none (ChatML is used)");
    return 0;
}

int cmd_verify(const Settings & s, const std::string & name, bool as_json) {
    const CatalogEntry * e = Catalog::get().find(name);
    const std::string store_name = e ? e->name : name;
    ModelStore store(s.models_dir());
    InstalledModel m;
    if (!store.find(store_name, m)) {
        throw Error(ErrorCode::kNotFound, "'" + name + "' is not in " + store.dir(), "download it with: cortex-model download " + name);
    }
    std::string expected = m.sha256, against = "the digest recorded at download";
    if (m.source == "catalog" && e && !e->sha256.empty()) expected = e->sha256, against = "the catalog";
    if (expected.empty() && e && !e->sha256.empty()) expected = e->sha256, against = "the catalog";
    const std::string actual = sha256_file(m.path);
    const bool ok = expected.empty() || actual == expected;
    if (as_json) {
        printf("%s\n", json::object({{"name", store_name}, {"sha256", actual}, {"expected", expected}, {"ok", ok}}).dump().c_str());
    }
    if (!ok) {
        throw Error(ErrorCode::kChecksumMismatch, m.path + " is damaged: SHA-256 " + actual + ", expected " + expected + " (" + against + ")",
                    "download it again: cortex-model download " + store_name + " --force");
    }
    if (!as_json) {
        printf("%s: SHA-256 %s %s\n", store_name.c_str(), actual.c_str(),
               expected.empty() ? "(nothing to compare with: no digest known)" : ("matches " + against).c_str());
    }
    return 0;
}

int cmd_recommend(bool as_json) {
    HardwareInfo hw = detect_hardware();
    // RPC servers (LLAMACPP_RPC_SERVERS) count with the memory they report; one that does not
    // answer is said, not fatal.
    const Settings settings = Settings::load();
    const llm::ModelConfig devices = settings.model_config();
    for (const llm::RpcServerProblem & p : add_rpc_gpus(hw, devices.rpc_servers, devices.rpc_allow_remote)) {
        fprintf(stderr, "cortex-model: note: not counted: %s\n", p.error.message().c_str());
    }
    Recommendation r = recommend(hw, Catalog::get());
    if (as_json) {
        json gpus = json::array();
        for (const GpuInfo & g : hw.gpus) gpus.push_back({{"vendor", g.vendor}, {"name", g.name}, {"vram", g.vram_bytes}, {"free", g.free_bytes}});
        printf("%s\n", json::object({{"model", r.model->name}, {"n_ctx", r.n_ctx}, {"n_gpu_layers", r.n_gpu_layers},
                                     {"n_threads", r.n_threads}, {"reason", r.reason},
                                     {"hardware", {{"cpu", hw.cpu_model}, {"cpu_features", hw.cpu_features},
                                                   {"physical_cores", hw.physical_cores}, {"ram", hw.ram_bytes},
                                                   {"gpus", gpus}, {"backends", hw.backends}}}})
                               .dump(2)
                               .c_str());
        return 0;
    }
    printf("model:        %s\ncontext:      %d\ngpu layers:   %s\nthreads:      %d\nwhy:          %s\n", r.model->name.c_str(), r.n_ctx,
           r.n_gpu_layers < 0 ? "all" : std::to_string(r.n_gpu_layers).c_str(), r.n_threads, r.reason.c_str());
    printf("get it with:  cortex-model download recommended\n");
    return 0;
}

int cmd_import_ollama(const Settings & s, const std::string & name, bool as_json) {
    std::vector<OllamaModel> found = list_ollama_models();
    std::vector<OllamaModel> chosen;
    for (const OllamaModel & m : found) {
        const std::string want = name.find(':') == std::string::npos && !name.empty() ? name + ":latest" : name;
        if (name.empty() || m.name == want) chosen.push_back(m);
    }
    if (chosen.empty()) {
        throw Error(ErrorCode::kNotFound,
                    name.empty() ? "Ollama's store " + ollama_models_dir() + " holds no models"
                                 : "'" + name + "' is not in Ollama's store " + ollama_models_dir(),
                    "pull it with ollama first, or set OLLAMA_MODELS to the store's directory");
    }
    ModelStore store(s.models_dir());
    json out = json::array();
    for (const OllamaModel & m : chosen) {
        const std::string store_name = store_name_for_ollama(m.name);
        const std::string path = import_ollama_model(m, store.dir(), store_name);
        store.record({store_name, path, m.size, "ollama", m.digest, m.name});
        out.push_back({{"ollama_name", m.name}, {"name", store_name}, {"path", path}});
        if (!as_json) printf("%s -> %s (%s, linked, not copied)\n", m.name.c_str(), store_name.c_str(), path.c_str());
    }
    if (as_json) printf("%s\n", out.dump(2).c_str());
    return 0;
}

}  // namespace

int main(int argc, char ** argv) {
    CLI::App app{"cortex-model: download, verify and manage local language models"};
    app.require_subcommand(1);
    bool as_json = false, downloaded = false, force = false;
    std::string name;

    CLI::App * list = app.add_subcommand("list", "every catalog model, downloaded or not");
    list->add_flag("--downloaded", downloaded, "only the models in the store");
    CLI::App * download = app.add_subcommand("download", "download a catalog model, verified");
    download->add_option("NAME", name, "catalog name, Ollama-style alias, or 'recommended'")->required();
    download->add_flag("--force", force, "download again even if present");
    CLI::App * del = app.add_subcommand("delete", "remove a model from the store");
    del->add_option("NAME", name)->required();
    CLI::App * info = app.add_subcommand("info", "what a model file holds (read from its header)");
    info->add_option("NAME", name, "store name, alias or .gguf path")->required();
    CLI::App * verify = app.add_subcommand("verify", "re-hash a stored model");
    verify->add_option("NAME", name)->required();
    CLI::App * rec = app.add_subcommand("recommend", "the right model for this machine, and why");
    CLI::App * import = app.add_subcommand("import-ollama", "use models Ollama already downloaded, without copying");
    import->add_option("NAME", name, "e.g. llama3.2:3b (default: all)");
    for (CLI::App * sub : {list, download, del, info, verify, rec, import}) sub->add_flag("--json", as_json, "print JSON");

    CLI11_PARSE(app, argc, argv);
    return cortex::cli::run_guarded(as_json, [&] {
        if (rec->parsed()) return cmd_recommend(as_json);
        const Settings settings = Settings::load();
        if (list->parsed()) return cmd_list(settings, downloaded, as_json);
        if (download->parsed()) return cmd_download(settings, name, force, as_json);
        if (del->parsed()) return cmd_delete(settings, name, as_json);
        if (info->parsed()) return cmd_info(settings, name, as_json);
        if (verify->parsed()) return cmd_verify(settings, name, as_json);
        return cmd_import_ollama(settings, name, as_json);
    });
}
