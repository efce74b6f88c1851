// Hardware detection (CPU, RAM, NVIDIA/AMD/Apple GPUs, ggml backends) and the recommendation.
#include <dirent.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/file_util.h"
#include "core/string_util.h"
#include "core/subprocess.h"
#include "cortex/models.h"
#include "ggml-backend.h"
#include "llm/backend.h"

namespace cortex::models {
namespace {

constexpr uint64_t kGiB = 1ull << 30;

// Runs a vendor tool with fixed arguments (no shell); returns false when it is not there or fails.
// Its stderr is dropped: only the report on stdout is parsed.
bool run_tool(const std::string & tool, const std::vector<std::string> & args, std::string & out) {
    std::vector<std::string> argv = {tool};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessOptions options;
    options.merge_stderr = false;
    options.throw_if_not_started = false;
    ProcessResult r = run_process(argv, options);
    out = std::move(r.output);
    return r.exit_status == 0 && !out.empty();
}

std::string tool_path(const char * env, const char * name) {
    const char * v = std::getenv(env);
    return v && *v ? v : name;
}

}  // namespace

std::vector<GpuInfo> parse_nvidia_smi(const std::string & csv) {
    std::vector<GpuInfo> gpus;
    std::istringstream in(csv);
    for (std::string line; std::getline(in, line);) {
        line = trim(line);
        if (line.empty()) continue;
        std::vector<std::string> f;
        std::stringstream ls(line);
        for (std::string cell; std::getline(ls, cell, ',');) f.push_back(trim(cell));
        if (f.size() < 2) continue;
        GpuInfo g;
        g.vendor = "nvidia";
        g.name = f[0];
        g.vram_bytes = std::strtoull(f[1].c_str(), nullptr, 10) << 20;  // MiB
        if (f.size() >= 3) g.free_bytes = std::strtoull(f[2].c_str(), nullptr, 10) << 20;
        if (g.vram_bytes > 0) gpus.push_back(g);
    }
    return gpus;
}

std::vector<GpuInfo> parse_rocm_smi(const std::string & text) {
    std::vector<GpuInfo> gpus;
    nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
    if (!doc.is_object()) return gpus;
    for (auto it = doc.begin(); it != doc.end(); ++it) {
        if (it.key().rfind("card", 0) != 0 || !it->is_object()) continue;
        GpuInfo g;
        g.vendor = "amd";
        for (auto f = it->begin(); f != it->end(); ++f) {
            const std::string key = f.key();
            const std::string value = f->is_string() ? f->get<std::string>() : f->dump();
            if (key == "Card series" || key == "Card SKU" || key == "Card model") {
                if (g.name.empty() || key == "Card series") g.name = value;
            } else if (key == "VRAM Total Memory (B)") {
                g.vram_bytes = std::strtoull(value.c_str(), nullptr, 10);
            } else if (key == "VRAM Total Used Memory (B)") {
                g.free_bytes = std::strtoull(value.c_str(), nullptr, 10);  // used, fixed below
            }
        }
        g.free_bytes = g.vram_bytes > g.free_bytes ? g.vram_bytes - g.free_bytes : 0;
        if (g.name.empty()) g.name = "AMD GPU (" + it.key() + ")";
        if (g.vram_bytes > 0) gpus.push_back(g);
    }
    return gpus;
}

HardwareInfo detect_hardware() {
    HardwareInfo hw;
    std::string text;
    if (read_file("/proc/cpuinfo", text)) {
        std::set<std::pair<std::string, std::string>> cores;
        std::string physical_id, flags;
        std::istringstream in(text);
        for (std::string line; std::getline(in, line);) {
            size_t colon = line.find(':');
            if (colon == std::string::npos) continue;
            std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
            if (key == "model name" && hw.cpu_model.empty()) hw.cpu_model = value;
            if (key == "processor") ++hw.logical_cores;
            if (key == "physical id") physical_id = value;
            if (key == "core id") cores.insert({physical_id, value});
            if ((key == "flags" || key == "Features") && flags.empty()) flags = " " + value + " ";
        }
        hw.physical_cores = cores.empty() ? hw.logical_cores : static_cast<int>(cores.size());
        for (const char * f : {"avx", "avx2", "avx512f", "asimd"}) {
            if (flags.find(std::string(" ") + f + " ") != std::string::npos) hw.cpu_features.push_back(f == std::string("asimd") ? "neon" : f);
        }
    }
    if (hw.logical_cores == 0) hw.logical_cores = hw.physical_cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    hw.ram_bytes = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));

    std::string out;
    if (run_tool(tool_path("CORTEX_NVIDIA_SMI", "nvidia-smi"),
                 {"--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"}, out)) {
        for (auto & g : parse_nvidia_smi(out)) hw.gpus.push_back(g);
    }
    if (run_tool(tool_path("CORTEX_ROCM_SMI", "rocm-smi"), {"--showproductname", "--showmeminfo", "vram", "--json"}, out)) {
        for (auto & g : parse_rocm_smi(out)) hw.gpus.push_back(g);
    } else if (!std::getenv("CORTEX_ROCM_SMI")) {
        // Without rocm-smi the amdgpu driver still reports VRAM in sysfs.
        std::unique_ptr<DIR, int (*)(DIR *)> d(opendir("/sys/class/drm"), closedir);
        while (dirent * e = d ? readdir(d.get()) : nullptr) {
            std::string name = e->d_name;
            if (name.rfind("card", 0) != 0 || name.find('-') != std::string::npos) continue;
            std::string vram;
            if (read_file("/sys/class/drm/" + name + "/device/mem_info_vram_total", vram)) {
                GpuInfo g{"amd", "AMD GPU (" + name + ")", std::strtoull(vram.c_str(), nullptr, 10), 0};
                if (g.vram_bytes > 0) hw.gpus.push_back(g);
            }
        }
    }
    struct utsname u {};
    if (uname(&u) == 0 && std::string(u.sysname) == "Darwin" && std::string(u.machine) == "arm64") {
        // Unified memory: Metal may use about three quarters of it.
        hw.gpus.push_back({"apple", "Apple Silicon GPU", hw.ram_bytes / 4 * 3, 0});
    }
    llm::ensure_backend();  // loads the backend modules of a GGML_BACKEND_DL build, once
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) hw.backends.push_back(ggml_backend_reg_name(ggml_backend_reg_get(i)));
    return hw;
}

std::vector<llm::RpcServerProblem> add_rpc_gpus(HardwareInfo & hw, const std::vector<std::string> & rpc_servers, bool allow_remote) {
    std::vector<llm::RpcServerProblem> problems;
    if (rpc_servers.empty()) return problems;
    for (const llm::DeviceInfo & d : llm::list_devices(rpc_servers, allow_remote, &problems)) {
        if (d.type == "rpc") hw.gpus.push_back({"rpc", d.name + " on " + d.endpoint, d.total_bytes, d.free_bytes});
    }
    return problems;
}

Recommendation recommend(const HardwareInfo & hw, const Catalog & catalog) {
    auto pick = [&](const char * name) {
        const CatalogEntry * e = catalog.find(name);
        if (!e) throw Error(ErrorCode::kNotFound, std::string("the catalog has no ") + name, "use the built-in catalog (unset CORTEX_CATALOG)");
        return e;
    };
    Recommendation r;
    r.n_threads = hw.physical_cores > 0 ? hw.physical_cores : 1;
    const GpuInfo * best = nullptr;
    uint64_t total = 0;  // libllama splits the layers over every GPU (split_mode layer)
    for (const GpuInfo & g : hw.gpus) {
        if (!best || g.vram_bytes > best->vram_bytes) best = &g;
        total += g.vram_bytes;
    }
    // Cards are sold as "8 GB" but report a little less (7.6 to 8 GiB): round to the label.
    const double gb = best ? static_cast<double>(total) / 1e9 + 0.5 : 0;
    auto gpu_reason = [&](const Recommendation & rec) {
        char buf[512];
        if (hw.gpus.size() > 1) {
            std::string names;
            for (const GpuInfo & g : hw.gpus) {
                char one[160];
                snprintf(one, sizeof one, "%s%s (%.0f GB)", names.empty() ? "" : ", ", g.name.c_str(), static_cast<double>(g.vram_bytes) / 1e9);
                names += one;
            }
            snprintf(buf, sizeof buf, "%zu GPUs with %.0f GB together, %s: %s (%.1f GB) runs with its layers split across them and a %d-token context",
                     hw.gpus.size(), static_cast<double>(total) / 1e9, names.c_str(), rec.model->name.c_str(),
                     static_cast<double>(rec.model->size) / 1e9, rec.n_ctx);
            return std::string(buf);
        }
        snprintf(buf, sizeof buf, "%s with %.0f GB: %s (%.1f GB) runs with all layers on the GPU and a %d-token context",
                 best->name.c_str(), static_cast<double>(best->vram_bytes) / 1e9, rec.model->name.c_str(),
                 static_cast<double>(rec.model->size) / 1e9, rec.n_ctx);
        return std::string(buf);
    };
    if (best && gb >= 4) {
        r.n_gpu_layers = -1;
        if (gb >= 16) r.model = pick("qwen2.5-14b"), r.n_ctx = 8192;
        else if (gb >= 12) r.model = pick("qwen2.5-7b"), r.n_ctx = 8192;
        else if (gb >= 8) r.model = pick("qwen2.5-7b"), r.n_ctx = 4096;
        else r.model = pick("llama3.2-1b"), r.n_ctx = 4096;
        r.reason = gpu_reason(r);
        return r;
    }
    // CPU only: what fits in RAM with room for the system, and is fast enough on these cores.
    const double ram_gb = static_cast<double>(hw.ram_bytes) / kGiB;
    r.n_gpu_layers = 0;
    r.n_ctx = 4096;
    if (ram_gb >= 15 && hw.physical_cores >= 8) r.model = pick("qwen2.5-7b");
    else if (ram_gb >= 7) r.model = pick("llama3.2-3b");
    else if (ram_gb >= 3.5) r.model = pick("qwen2.5-1.5b");
    else r.model = pick("qwen2.5-0.5b");
    char buf[512];
    snprintf(buf, sizeof buf, "%s%.1f GB RAM and %d physical cores: %s (%.1f GB, needs about %.1f GB) runs on the CPU at a usable speed",
             best ? (best->name + " has under 4 GB, so the CPU is used; ").c_str() : "no GPU found; ", ram_gb,
             hw.physical_cores, r.model->name.c_str(), static_cast<double>(r.model->size) / 1e9, r.model->memory_gb);
    r.reason = buf;
    return r;
}

}  // namespace cortex::models
