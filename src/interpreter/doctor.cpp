// The checks of `cortex doctor`. Each one looks at one thing the guide's troubleshooting names
// and, when it is wrong, says the command that puts it right.
#include "interpreter/doctor.h"

#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <functional>

#include "core/file_util.h"
#include "core/subprocess.h"
#include "cortex/models.h"
#include "cortex/preload.h"
#include "ggml-backend.h"
#include "interpreter/ollama_provider.h"
#include "llm/backend.h"
#include "llm/gguf_check.h"

namespace cortex::interpreter {
namespace {

using Check = DoctorCheck;

// "4.7 GB", or "26 MB" for the small ones (test models, vocab-only files).
std::string gb(uint64_t bytes) {
    char buf[32];
    if (bytes < 1000000000)
        snprintf(buf, sizeof buf, "%.0f MB", static_cast<double>(bytes) / 1e6);
    else
        snprintf(buf, sizeof buf, "%.1f GB", static_cast<double>(bytes) / 1e9);
    return buf;
}

Check make(const char * name, Check::Status status, std::string detail, std::string fix = "") {
    return Check{name, status, std::move(detail), std::move(fix)};
}

// Which ggml backends and devices this llama.cpp build has, against the GPUs the machine has.
Check check_backends(const models::HardwareInfo & hw) {
    llm::ensure_backend();  // loads the backend modules of a GGML_BACKEND_DL build, once
    std::string detail;
    bool gpu_device = false;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        const enum ggml_backend_dev_type type = ggml_backend_dev_type(dev);
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) gpu_device = true;
        size_t free = 0, total = 0;
        ggml_backend_dev_memory(dev, &free, &total);
        if (!detail.empty()) detail += "; ";
        detail += std::string(ggml_backend_dev_name(dev)) + " (" + ggml_backend_dev_description(dev) +
                  (type != GGML_BACKEND_DEVICE_TYPE_CPU && total > 0 ? ", " + gb(total) : "") + ")";
    }
    std::string backends;
    for (const auto & b : hw.backends) backends += (backends.empty() ? "" : ", ") + b;
    if (backends.empty() || ggml_backend_dev_count() == 0) {
        return make("llama.cpp backends", Check::kFail, "no ggml backend or device is registered",
                    "rebuild llama.cpp and Cortex: bash scripts/setup.sh (or scripts/build_llamacpp.sh auto)");
    }
    detail = backends + " built in; devices: " + detail;
    if (!hw.gpus.empty() && !gpu_device) {
        return make("llama.cpp backends", Check::kWarn,
                    detail + "\nthis machine has a " + hw.gpus[0].vendor +
                        " GPU, but this build has no GPU backend: models run on the CPU",
                    "rebuild llama.cpp for it: scripts/build_llamacpp.sh " +
                        std::string(hw.gpus[0].vendor == "amd" ? "rocm" : "cuda") +
                        ", then rebuild Cortex against that prefix");
    }
    return make("llama.cpp backends", Check::kOk, detail);
}

Check check_gpus(const models::HardwareInfo & hw, const Settings & settings) {
    const std::string cpu = std::to_string(hw.physical_cores) + " cores, " + gb(hw.ram_bytes) + " RAM";
    if (hw.gpus.empty()) return make("GPUs", Check::kOk, "none seen; models run on the CPU (" + cpu + ")");
    std::string detail;
    for (const auto & g : hw.gpus) {
        if (!detail.empty()) detail += "; ";
        detail += g.name + ", " + gb(g.vram_bytes) + (g.free_bytes ? " (" + gb(g.free_bytes) + " free)" : "");
    }
    detail += "; CPU: " + cpu;
    if (settings.n_gpu_layers() == 0) {
        return make("GPUs", Check::kWarn,
                    detail + "\nn_gpu_layers is 0 (" + settings.get("n_gpu_layers").origin + "): the GPU is not used",
                    "cortex config set n_gpu_layers -1 (or unset LLAMACPP_N_GPU_LAYERS)");
    }
    return make("GPUs", Check::kOk, detail);
}

// The RPC servers of LLAMACPP_RPC_SERVERS: each one's devices with free memory, or why it does
// not answer. A server answers one client at a time, so one that a running daemon uses does not.
Check check_rpc(const Settings & settings) {
    const llm::ModelConfig config = settings.model_config();
    const std::string split = "split_mode " + settings.get("split_mode").value +
                              (settings.get("tensor_split").value.empty() ? "" : ", tensor_split " + settings.get("tensor_split").value);
    if (config.rpc_servers.empty()) return make("RPC servers", Check::kOk, "none (LLAMACPP_RPC_SERVERS); " + split);
    std::vector<llm::RpcServerProblem> problems;
    std::string detail;
    for (const llm::DeviceInfo & d : llm::list_devices(config.rpc_servers, config.rpc_allow_remote, &problems)) {
        if (d.type != "rpc") continue;
        detail += (detail.empty() ? "" : "; ") + d.name + " on " + d.endpoint + ", " + gb(d.total_bytes) + " (" + gb(d.free_bytes) + " free)";
    }
    detail += (detail.empty() ? "" : "; ") + split;
    if (config.rpc_allow_remote) detail += "; non-loopback servers allowed (RPC has no authentication: trusted networks only)";
    if (!problems.empty()) {
        std::string why;
        for (const auto & p : problems) why += "\n" + p.error.message();
        return make("RPC servers", Check::kFail, detail + why, problems.front().error.hint());
    }
    return make("RPC servers", Check::kOk, detail);
}

// The configured model: set, resolvable, a complete GGUF file, and small enough for this RAM.
Check check_model(const Settings & settings, const models::HardwareInfo & hw) {
    const std::string & name = settings.model();
    const bool used = settings.provider() == "llamacpp";
    if (name.empty()) {
        if (!used) return make("model", Check::kOk, "not used: the provider is ollama");
        return make("model", Check::kFail, "no model is set (LLAMACPP_MODEL, or `model` in config.json)",
                    "cortex-model download recommended, then cortex config set model NAME");
    }
    const Setting & s = settings.get("model");
    const std::string source = std::string(setting_source_name(s.source)) + (s.origin.empty() ? "" : ": " + s.origin);
    std::string path;
    try {
        path = llm::ModelManager(settings.models_dir()).resolve(name);
    } catch (const Error & e) {
        return make("model", used ? Check::kFail : Check::kWarn, "'" + name + "' [" + source + "]: " + e.message(),
                    e.hint().empty() ? "cortex-model download " + name : e.hint());
    }
    try {
        const llm::GgufSummary summary = llm::check_model_file(path);
        const std::string where = canonical_path(path) == canonical_path(name) ? "" : " is " + path;
        std::string detail = "'" + name + "' [" + source + "]" + where + " (" + summary.architecture + ", " +
                             std::to_string(summary.n_tensors) + " tensors, " + gb(summary.file_size) + ")";
        if (!used) detail += "; not used while the provider is ollama";
        if (hw.ram_bytes > 0 && summary.file_size > hw.ram_bytes * 9 / 10) {
            return make("model", Check::kWarn,
                        detail + "\nit is larger than 90% of this machine's " + gb(hw.ram_bytes) + " of RAM",
                        "pick a model that fits: cortex-model recommend");
        }
        return make("model", Check::kOk, detail);
    } catch (const Error & e) {
        std::string hint = e.hint();
        if (size_t p = hint.find("NAME"); p != std::string::npos) hint.replace(p, 4, name);
        return make("model", used ? Check::kFail : Check::kWarn, "'" + name + "' is " + path + ": " + e.message(),
                    hint);
    }
}

Check check_daemon(const Settings & settings) {
    const std::string & socket = settings.preload_socket();
    std::string mode;
    try {
        mode = preload::preload_mode();
    } catch (const Error & e) {
        return make("preload daemon", Check::kFail, e.message(), e.hint());
    }
    if (settings.provider() != "llamacpp")
        return make("preload daemon", Check::kOk, "not used: the provider is " + settings.provider());
    auto client = preload::Client::connect(socket);
    if (!client) {
        std::string detail = "not running (socket " + socket + ")";
        if (path_exists(socket)) detail += "; a stale socket file is there";
        if (mode == "required") {
            return make(
                "preload daemon", Check::kFail, detail + "; CORTEX_PRELOAD=required needs it",
                "cortex-preload start" + (settings.model().empty() ? std::string() : " --model " + settings.model()));
        }
        if (mode == "off")
            return make("preload daemon", Check::kOk,
                        detail + "; CORTEX_PRELOAD=off: every request loads the model in-process");
        return make("preload daemon", Check::kOk,
                    detail + "; each request loads the model in-process (cortex-preload start keeps it warm)");
    }
    try {
        const preload::DaemonStatus st = client->status();
        std::string detail = "running, pid " + std::to_string(st.pid) + ", serves '" + st.model_name + "' (" +
                             st.model_path + "), " + std::to_string(st.slots) + " slots, n_ctx " +
                             std::to_string(st.n_ctx) + ", socket " + socket;
        if (mode == "off") detail += "; unused: CORTEX_PRELOAD=off";
        const std::string & want = settings.model();
        if (!want.empty() && want != st.model_name) {
            std::string path;
            try {
                path = llm::ModelManager(settings.models_dir()).resolve(want);
            } catch (const Error &) {
            }
            if (path.empty() || canonical_path(path) != canonical_path(st.model_path)) {
                return make("preload daemon", Check::kWarn,
                            detail + "\nthe model setting is '" + want + "': requests load it in-process instead",
                            "cortex-preload reload --model " + want);
            }
        }
        return make("preload daemon", Check::kOk, detail);
    } catch (const Error & e) {
        return make("preload daemon", Check::kFail, "a daemon at " + socket + " does not answer: " + e.message(),
                    "restart it: cortex-preload stop; cortex-preload start");
    }
}

Check check_ollama(const Settings & settings) {
    const std::string base = ollama_base_url(settings.ollama_host());
    if (settings.provider() != "ollama") {
        std::string detail = "not used: the provider is " + settings.provider();
        if (settings.get("model").source == SettingSource::kMigrated)
            detail += "; the model setting comes from OLLAMA_MODEL (migrated)";
        return make("Ollama", Check::kOk, detail);
    }
    const std::string & model = settings.ollama_model();
    std::vector<std::string> names;
    try {
        names = ollama_list_models(settings.ollama_host());
    } catch (const Error & e) {
        return make("Ollama", Check::kFail, e.message(), e.hint());
    }
    if (model.empty()) {
        return make("Ollama", Check::kFail, "reachable at " + base + ", but no Ollama model is set",
                    "set OLLAMA_MODEL to one of: " + (names.empty() ? std::string("(none yet: ollama pull llama3.2)")
                                                                    : names[0] + (names.size() > 1 ? ", ..." : "")));
    }
    if (!ollama_has_model(names, model)) {
        return make("Ollama", Check::kFail,
                    "reachable at " + base + ", but it has no model '" + model + "' (" + std::to_string(names.size()) +
                        " models)",
                    "ollama pull " + model);
    }
    return make("Ollama", Check::kOk, "reachable at " + base + ", model '" + model + "' present");
}

Check check_apt_index() {
    glob_t g{};
    const int rc = glob("/var/lib/apt/lists/*_Packages*", 0, nullptr, &g);
    std::unique_ptr<glob_t, void (*)(glob_t *)> guard(&g, globfree);
    size_t count = 0;
    time_t newest = 0;
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i) {
        struct stat st {};
        if (stat(g.gl_pathv[i], &st) != 0 || !S_ISREG(st.st_mode)) continue;
        ++count;
        if (st.st_mtime > newest) newest = st.st_mtime;
    }
    const std::string fix = geteuid() == 0 ? "apt-get update" : "sudo apt-get update";
    if (count == 0)
        return make("apt package index", Check::kFail,
                    "no package lists in /var/lib/apt/lists: packages cannot be found", fix);
    const long days = static_cast<long>((time(nullptr) - newest) / 86400);
    const std::string detail = std::to_string(count) + " package lists in /var/lib/apt/lists, updated " +
                               (days <= 0 ? std::string("today") : std::to_string(days) + " days ago");
    if (days > 14) return make("apt package index", Check::kWarn, detail + ": versions may be out of date", fix);
    return make("apt package index", Check::kOk, detail);
}

Check check_privileges() {
    if (geteuid() == 0) return make("privileges", Check::kOk, "running as root: --execute runs apt-get directly");
    if (program_on_path("sudo"))
        return make("privileges", Check::kOk,
                    "sudo is available: --execute runs apt-get through it (it may ask for your password)");
    return make("privileges", Check::kWarn,
                "not root and no sudo: --execute cannot install or remove packages (--dry-run works)",
                "run as root, or install sudo and add yourself to the sudo group");
}

}  // namespace

const char * doctor_status_name(DoctorCheck::Status status) {
    switch (status) {
        case DoctorCheck::kOk:
            return "ok";
        case DoctorCheck::kWarn:
            return "warn";
        case DoctorCheck::kFail:
            return "fail";
    }
    return "fail";
}

std::vector<DoctorCheck> run_doctor(const Settings & settings) {
    std::vector<DoctorCheck> checks;
    // One check's unexpected failure must not hide the others.
    auto run = [&](const char * name, const std::function<Check()> & f) {
        try {
            checks.push_back(f());
        } catch (const Error & e) {
            checks.push_back(make(name, Check::kFail, "the check failed: " + e.message(), e.hint()));
        } catch (const std::exception & e) {
            checks.push_back(
                make(name, Check::kFail, std::string("the check failed: ") + e.what(), "please report this bug"));
        }
    };
    models::HardwareInfo hw;
    try {
        hw = models::detect_hardware();
    } catch (const std::exception &) {
        // Empty: the checks below then say "none seen", which is what we know.
    }
    run("llama.cpp backends", [&] { return check_backends(hw); });
    run("GPUs", [&] { return check_gpus(hw, settings); });
    run("RPC servers", [&] { return check_rpc(settings); });
    run("model", [&] { return check_model(settings, hw); });
    run("preload daemon", [&] { return check_daemon(settings); });
    run("settings",
        [&] { return make("settings", Check::kOk, "from " + settings.home() + ":\n" + settings.to_text()); });
    run("Ollama", [&] { return check_ollama(settings); });
    run("apt package index", [&] { return check_apt_index(); });
    run("privileges", [&] { return check_privileges(); });
    return checks;
}

bool doctor_passed(const std::vector<DoctorCheck> & checks) {
    for (const auto & c : checks) {
        if (c.status == DoctorCheck::kFail) return false;
    }
    return true;
}

std::string doctor_to_text(const std::vector<DoctorCheck> & checks) {
    static const char * kTags[] = {"[ ok ] ", "[warn] ", "[FAIL] "};
    const std::string indent = "       ";
    std::string out;
    int warnings = 0, failures = 0;
    for (const auto & c : checks) {
        if (c.status == DoctorCheck::kWarn) ++warnings;
        if (c.status == DoctorCheck::kFail) ++failures;
        std::string detail = c.detail;
        while (!detail.empty() && detail.back() == '\n') detail.pop_back();
        for (size_t p = detail.find('\n'); p != std::string::npos; p = detail.find('\n', p + 1 + indent.size()))
            detail.insert(p + 1, indent);
        out += kTags[c.status] + c.name + ": " + detail + "\n";
        if (c.status != DoctorCheck::kOk && !c.fix.empty()) out += indent + "fix: " + c.fix + "\n";
    }
    if (failures == 0 && warnings == 0)
        out += "Everything looks fine.\n";
    else
        out += std::to_string(failures) + " problem(s), " + std::to_string(warnings) + " warning(s).\n";
    return out;
}

nlohmann::json doctor_to_json(const std::vector<DoctorCheck> & checks) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto & c : checks) {
        list.push_back(
            {{"name", c.name}, {"status", doctor_status_name(c.status)}, {"detail", c.detail}, {"fix", c.fix}});
    }
    return {{"passed", doctor_passed(checks)}, {"checks", list}};
}

}  // namespace cortex::interpreter
