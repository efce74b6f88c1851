// cortex::models: the model catalog, verified resumable downloads, the model store, hardware
// detection with a recommendation, and reuse of Ollama's stored models.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cortex/error.h"
#include "cortex/llm.h"

namespace cortex::models {

struct CatalogEntry {
    std::string name;                  // e.g. "qwen2.5-7b"
    std::vector<std::string> aliases;  // e.g. "qwen2.5:7b" (Ollama names)
    std::string family;                // e.g. "qwen2"
    std::string tier;                  // small, medium or code
    std::string params;                // e.g. "7.6B"
    std::string repo;                  // Hugging Face repository
    std::string file;                  // the Q4_K_M GGUF in it
    std::string quantization;          // "Q4_K_M"
    uint64_t size = 0;                 // bytes of that file
    std::string sha256;                // lower-case hex; empty when not known in advance
    int context_length = 0;            // trained context
    double memory_gb = 0;              // memory needed to run it at n_ctx 4096
    std::string best_for;

    // `base_url`/REPO/resolve/main/FILE.
    std::string url(const std::string & base_url) const;
};

class Catalog {
  public:
    // The catalog compiled into the library (data/catalog.json), or the file named by
    // $CORTEX_CATALOG. Throws Error when that file is bad.
    static const Catalog & get();
    // Parses catalog JSON; `origin` names it in errors. Throws Error(kInvalidArgument).
    static Catalog parse(const std::string & json, const std::string & origin);

    const std::vector<CatalogEntry> & entries() const { return entries_; }
    // By name or alias (case-insensitive); nullptr when unknown.
    const CatalogEntry * find(const std::string & name_or_alias) const;

  private:
    std::vector<CatalogEntry> entries_;
};

// $CORTEX_MODEL_BASE_URL, else https://huggingface.co.
std::string model_base_url();

struct DownloadProgress {
    uint64_t done = 0;       // bytes in the file so far, resumed ones included
    uint64_t total = 0;      // 0 when unknown
    uint64_t resumed = 0;    // bytes that were already there when this transfer started
    double bytes_per_second = 0;
};

struct DownloadOptions {
    uint64_t expected_size = 0;       // 0 = unknown
    std::string expected_sha256;      // empty = take the server's published digest, if any
    std::string bearer_token;         // HF_TOKEN for gated repositories
    int max_attempts = 5;             // failed attempts in a row (without new bytes) before giving up
    int retry_delay_ms = 1000;        // first backoff; doubles each time
    int stall_seconds = 30;           // no byte for this long = a transient failure
    std::function<void(const DownloadProgress &)> on_progress;  // called at most ~10 times a second
    const std::atomic<bool> * cancel = nullptr;                 // set to stop; the .part is kept
};

struct DownloadResult {
    std::string sha256;      // of the whole file, computed while streaming
    std::string digest_source;  // "catalog", "server" or "none"
    uint64_t bytes = 0;
    uint64_t resumed_from = 0;
    int attempts = 0;
};

// Downloads `url` to `dest`: into `dest`.part (resumed with HTTP Range when present, restarted
// when the server ignores Range), SHA-256 while streaming, checked against the expected or the
// server's digest, then renamed into place. A lock file makes a second process wait instead of
// writing the same file. Throws Error: kNetwork (with what the status means), kChecksumMismatch
// (the .part is removed), kCancelled (the .part is kept), kIo (disk full: the .part is kept).
DownloadResult download_file(const std::string & url, const std::string & dest, const DownloadOptions & options);

// Bytes free for an unprivileged writer at `dir` ($CORTEX_TEST_FREE_BYTES overrides it, for tests).
uint64_t free_bytes(const std::string & dir);

// SHA-256 of a file, lower-case hex. Throws Error(kIo).
std::string sha256_file(const std::string & path);

}  // namespace cortex::models

namespace cortex::models {

struct GpuInfo {
    std::string vendor;  // "nvidia", "amd", "apple"
    std::string name;
    uint64_t vram_bytes = 0;
    uint64_t free_bytes = 0;  // 0 when unknown
};

struct HardwareInfo {
    std::string cpu_model;
    std::vector<std::string> cpu_features;  // of avx, avx2, avx512f, neon
    int physical_cores = 0;
    int logical_cores = 0;
    uint64_t ram_bytes = 0;
    std::vector<GpuInfo> gpus;
    std::vector<std::string> backends;  // ggml backends this build can use, e.g. "CPU", "CUDA"
};

// Probes this machine: /proc/cpuinfo and /proc/meminfo, nvidia-smi ($CORTEX_NVIDIA_SMI),
// rocm-smi ($CORTEX_ROCM_SMI) or the amdgpu sysfs files, Apple Silicon's unified memory, and
// the ggml backend registry. A missing tool means no such GPU, never an error.
HardwareInfo detect_hardware();

// Parsers of the vendor tools' output, for detect_hardware() and for recorded fixtures.
// nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits
std::vector<GpuInfo> parse_nvidia_smi(const std::string & csv);
// rocm-smi --showproductname --showmeminfo vram --json
std::vector<GpuInfo> parse_rocm_smi(const std::string & json);

struct Recommendation {
    const CatalogEntry * model = nullptr;
    int n_ctx = 4096;
    int n_gpu_layers = 0;  // -1 = all
    int n_threads = 0;
    std::string reason;
};

// Adds the devices of each server of `rpc_servers` (ggml-rpc-server HOST:PORT) that answers to
// hw.gpus, vendor "rpc", with the memory the server reports; returns the servers that did not
// answer, each with an Error naming it. Throws Error(kInvalidArgument) for a malformed or refused
// endpoint (see llm::parse_rpc_servers).
std::vector<llm::RpcServerProblem> add_rpc_gpus(HardwareInfo & hw, const std::vector<std::string> & rpc_servers, bool allow_remote);

// The guide's table: GPU memory 4 GB -> llama3.2-1b/4096, 8 GB -> qwen2.5-7b/4096,
// 12 GB -> qwen2.5-7b/8192, 16 GB+ -> qwen2.5-14b/8192, all layers on the GPU (the memory of
// every GPU counted, local and RPC: libllama splits the layers across them); without a usable
// GPU a table by RAM and cores. Throws Error(kNotFound) when a needed model is not in `catalog`.
Recommendation recommend(const HardwareInfo & hw, const Catalog & catalog);

// Models in Ollama's store ($OLLAMA_MODELS, default ~/.ollama/models).
struct OllamaModel {
    std::string name;    // "llama3.2:3b", or "host/namespace/name:tag" outside the library
    std::string blob;    // path of the GGUF blob
    std::string digest;  // sha256 hex of the blob, from the manifest
    uint64_t size = 0;
};

std::string ollama_models_dir();
// Every model with a GGUF layer; `dir` empty = ollama_models_dir().
std::vector<OllamaModel> list_ollama_models(const std::string & dir = "");
// "llama3.2" means "llama3.2:latest". Returns false when not there.
bool find_ollama_model(const std::string & name, OllamaModel & out, const std::string & dir = "");
// Checks the blob's SHA-256 against the manifest, then links it as `models_dir`/`store_name`.gguf
// (a hard link, else a symbolic link: never a copy). Returns the path. Throws Error
// (kChecksumMismatch, kIo).
std::string import_ollama_model(const OllamaModel & model, const std::string & models_dir, const std::string & store_name);

// "llama3.2:3b" -> "llama3.2-3b"; "user/name:tag" -> "user-name-tag".
std::string store_name_for_ollama(const std::string & ollama_name);

}  // namespace cortex::models

namespace cortex::models {

// What a GGUF header says, read without loading weights.
struct ModelFileInfo {
    std::string path;
    uint64_t file_size = 0;
    std::string architecture;
    std::string name;          // general.name
    std::string quantization;  // e.g. "Q4_K_M", from general.file_type
    uint64_t n_params = 0;
    int context_length = 0;
    bool has_chat_template = false;
    std::string chat_template;
};

// Throws Error (kNotFound, kInvalidModel with a hint to re-download) like the loader does.
ModelFileInfo inspect_model_file(const std::string & path);

struct InstalledModel {
    std::string name;    // store name, e.g. "qwen2.5-7b"
    std::string path;
    uint64_t size = 0;
    std::string source;  // "catalog", "ollama" or "file" (put there by hand)
    std::string sha256;  // recorded at download/import time; empty when unknown
    std::string origin;  // URL or Ollama name
};

// The models directory: NAME.gguf files, each with an optional NAME.gguf.json record of where
// it came from and its SHA-256.
class ModelStore {
  public:
    explicit ModelStore(std::string dir);
    const std::string & dir() const { return dir_; }
    std::string path(const std::string & name) const { return dir_ + "/" + name + ".gguf"; }
    std::vector<InstalledModel> list() const;
    bool find(const std::string & name, InstalledModel & out) const;
    // Writes the record atomically.
    void record(const InstalledModel & model) const;
    // Removes the model, its record and any partial download; false when there was nothing.
    bool remove(const std::string & name) const;

  private:
    std::string dir_;
};

}  // namespace cortex::models
