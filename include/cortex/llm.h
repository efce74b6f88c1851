// cortex::llm: local text generation over libllama.
//
// The C++ face of Python's cortex.llm: a ModelManager resolves and caches models, a Model
// generates text with complete() and chat(), GenerationConfig says how, Result says what came
// out and how fast. All errors are cortex::Error (cortex/error.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cortex/error.h"

namespace cortex::llm {

using Token = int32_t;

enum class FlashAttention { kAuto, kOn, kOff };

// How a model is spread over several devices (libllama's llama_split_mode): kNone puts it all on
// main_gpu; kLayer gives each device whole layers (and their KV cache); kRow also splits the
// rows of the large matrices across GPUs (tensor parallelism where the backend supports it).
enum class SplitMode { kNone, kLayer, kRow };

// How a model is loaded. Every field has the documented default of the Cortex settings.
struct ModelConfig {
    int n_ctx = 4096;       // context window in tokens; must be > 0
    int n_gpu_layers = -1;  // layers to offload to the GPU; -1 = all, 0 = none
    int n_threads = 0;      // CPU threads; 0 = the number of physical cores
    int n_batch = 512;      // tokens evaluated per llama_decode() call while reading a prompt
    FlashAttention flash_attention = FlashAttention::kAuto;
    bool use_mmap = true;  // map the file instead of reading it into memory

    // Several devices. The defaults are libllama's: layers over every local GPU, in proportion
    // to their free memory. The device order is: RPC servers (in the order given), then local GPUs.
    SplitMode split_mode = SplitMode::kLayer;
    std::vector<float> tensor_split;  // a proportion per device, e.g. {3, 1}; empty = by free memory
    int main_gpu = 0;                 // the device of split_mode kNone (and of row split's small tensors)
    // ggml RPC servers ("host:port", `ggml-rpc-server` on another machine) whose devices take
    // part in the split. RPC has no authentication or encryption upstream, so a host other than
    // loopback is refused unless rpc_allow_remote is set (LLAMACPP_RPC_ALLOW_REMOTE=1).
    std::vector<std::string> rpc_servers;
    bool rpc_allow_remote = false;

    bool operator==(const ModelConfig &) const = default;
};

struct Message {
    std::string role;  // "system", "user" or "assistant"
    std::string content;
};

// How to generate. The defaults are llama-server's.
struct GenerationConfig {
    int max_tokens = 256;         // most tokens to generate; must be > 0
    float temperature = 0.8f;     // 0 = greedy (deterministic argmax)
    float top_p = 0.95f;          // 1 = off
    int top_k = 40;               // 0 = off
    float min_p = 0.05f;          // 0 = off
    float repeat_penalty = 1.0f;  // 1 = off
    int repeat_last_n = 64;       // tokens the repeat penalty looks back over
    uint32_t seed = 0xFFFFFFFF;   // 0xFFFFFFFF = a random seed per call
    std::vector<std::string> stop;  // never part of the returned content
    std::string grammar;            // GBNF; the output must match its "root" rule
    std::string json_schema;        // JSON Schema text; the output is JSON that matches it
    bool ignore_eos = false;        // keep generating past end-of-generation tokens
    // Reuse the KV cache of the longest common prefix. Logits depend in their last bits on how
    // the prompt was split into batches, on the CPU as on a GPU (a prompt read whole or in small
    // batches can differ by a few hundredths in a logit), so a cached prefix can tip a near-tie
    // between two tokens; turn it off for reproducible sampling.
    bool cache_prompt = true;
};

enum class FinishReason { kStop, kLength, kCancelled };

// Returns "stop", "length" or "cancelled".
const char * finish_reason_name(FinishReason reason);

struct Result {
    std::string content;
    FinishReason finish_reason = FinishReason::kStop;
    int prompt_tokens = 0;      // tokens in the prompt, cached ones included
    int cached_tokens = 0;      // prompt tokens reused from the KV cache, not evaluated again
    int completion_tokens = 0;  // tokens generated
    double tokens_per_second = 0;         // generation speed after the first token
    double prompt_tokens_per_second = 0;  // speed of evaluating the uncached prompt tokens
    double time_to_first_token_ms = 0;    // from the call to the first generated token
    double total_ms = 0;                  // the whole call
    double load_ms = 0;                   // how long loading this model took (once per model)
};

// Receives generated text as it comes, in pieces that never split a UTF-8 character and never
// hold any part of a stop string. Return false to stop generating (finish_reason kCancelled).
using TokenCallback = std::function<bool(std::string_view piece)>;

// A loaded model and its inference context.
//
// Thread safety: every method may be called from any thread. Generation calls on one Model are
// serialised: a second concurrent complete()/chat() waits until the first returns, then runs;
// both return correct results. For parallel generation load a second Model or use the daemon
// (a Model that ModelManager attached to the daemon runs concurrent calls in parallel).
class Model {
  public:
    ~Model();
    Model(const Model &) = delete;
    Model & operator=(const Model &) = delete;

    // Loads the GGUF file at `path`. Throws Error (kNotFound, kInvalidModel, kUnsupportedModel,
    // kLoadFailed, kInvalidArgument) and never aborts on a bad file.
    static std::shared_ptr<Model> load(const std::string & path, const ModelConfig & config = {});

    // Generates a continuation of `prompt` (raw text, no chat template).
    Result complete(const std::string & prompt, const GenerationConfig & config = {},
                    const TokenCallback & on_token = {});
    // Same, from prompt tokens (as produced by tokenize()).
    Result complete(const std::vector<Token> & prompt, const GenerationConfig & config = {},
                    const TokenCallback & on_token = {});
    // Applies the model's chat template to `messages` and generates the assistant's reply.
    Result chat(const std::vector<Message> & messages, const GenerationConfig & config = {},
                const TokenCallback & on_token = {});

    // The prompt text that chat() evaluates for `messages`.
    std::string apply_chat_template(const std::vector<Message> & messages, bool add_generation_prompt = true) const;

    // `add_special` adds BOS/EOS as the model wants; `parse_special` turns "<|im_end|>" and the
    // like into their control tokens instead of plain text.
    std::vector<Token> tokenize(std::string_view text, bool add_special = true, bool parse_special = true) const;
    std::string detokenize(const std::vector<Token> & tokens, bool render_special = false) const;

    // Forgets the KV cache, so that the next call evaluates its whole prompt.
    void clear_cache();

    const std::string & path() const;
    const ModelConfig & config() const;
    std::string architecture() const;    // GGUF general.architecture, e.g. "qwen2"
    std::string description() const;     // e.g. "qwen2 0.5B Q4_K - Medium"
    int n_ctx() const;                   // the context window actually allocated
    int n_ctx_train() const;             // the context length the model was trained with
    int n_vocab() const;
    uint64_t n_params() const;
    uint64_t size_bytes() const;
    bool has_chat_template() const;  // false: chat() uses the ChatML fallback
    double load_ms() const;

    struct Impl;

  private:
    explicit Model(std::unique_ptr<Impl> impl);
    friend std::shared_ptr<Model> make_model(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Resolves model names, loads models and keeps them loaded until unloaded.
//
// A name resolves, in order, to: an existing path; MODELS/<name>.gguf; the single .gguf file in
// MODELS/<name>/; for a catalog alias (qwen2.5:7b), MODELS/<catalog name>.gguf; a model in
// Ollama's store (llama3.2 = llama3.2:latest). MODELS is the models_dir setting
// (CORTEX_MODELS_DIR, default $CORTEX_HOME/models; CORTEX_HOME defaults to ~/.cortex).
// Thread-safe: concurrent load_model() calls of one model load it once and share it.
//
// With a preload daemon (cortex-preload) running on the preload_socket setting and serving the
// same file with the same n_ctx, load_model() returns a Model that runs on the daemon: every
// method answers as the in-process Model would (greedy output token for token, but for a near-tie
// that the batch split decides, as in-process caching can: see cache_prompt), only faster to get.
// CORTEX_PRELOAD=auto (default) uses such a daemon and loads in-process otherwise, also when
// the daemon goes away before a call has streamed anything (the Model then stays in-process);
// off never uses one; required makes load_model() fail with Error(kNotFound) when no daemon
// serves the model. Model::load() always loads in-process.
class ModelManager {
  public:
    // `models_dir` empty = the models_dir setting; throws Error when the settings are bad.
    explicit ModelManager(std::string models_dir = "");
    ~ModelManager();
    ModelManager(const ModelManager &) = delete;
    ModelManager & operator=(const ModelManager &) = delete;

    // Returns the loaded model, loading it first if needed. The handle stays valid after
    // unload(); the model is freed when the last handle goes. Throws Error.
    std::shared_ptr<Model> load_model(const std::string & name_or_path, const ModelConfig & config = {});

    // The file `name_or_path` resolves to. Throws Error(kNotFound) naming every place looked at.
    std::string resolve(const std::string & name_or_path) const;

    // Drops the manager's reference to every loaded instance of the model; returns whether any.
    bool unload(const std::string & name_or_path);
    void unload_all();
    // Paths of the loaded models.
    std::vector<std::string> loaded() const;

    const std::string & models_dir() const;

  private:
    struct State;
    std::unique_ptr<State> state_;
};

// $CORTEX_HOME, or ~/.cortex when unset.
std::string cortex_home();

// The default model: the "model" setting (LLAMACPP_MODEL, .env, config.json; or OLLAMA_MODEL
// for an Ollama setup moving to llamacpp). Throws Error(kNotFound) with a hint when unset.
std::string default_model_name();

// One-shot generation on `model` (empty = the default model), loaded once per process by a
// shared ModelManager with the Cortex settings (models_dir, n_ctx, n_gpu_layers, n_threads).
Result quick_complete(const std::string & prompt, const GenerationConfig & config = {}, const std::string & model = "");
Result quick_chat(const std::string & message, const GenerationConfig & config = {}, const std::string & model = "");

// A device libllama can compute on: a local CPU or GPU, or one of an RPC server's devices.
struct DeviceInfo {
    std::string name;         // ggml's name: "CPU", "CUDA0", "RPC0", ...
    std::string description;  // e.g. "NVIDIA H100 80GB HBM3"; for RPC, the server's host:port
    std::string type;         // "cpu", "gpu", "igpu", "accel" or "rpc"
    std::string endpoint;     // host:port of an RPC device, else empty
    uint64_t free_bytes = 0;
    uint64_t total_bytes = 0;
};

// A server of `rpc_servers` that did not answer, and why (an Error naming host:port).
struct RpcServerProblem {
    std::string endpoint;
    Error error;
};

// Every local device, then the devices of each RPC server that answers a handshake within a
// couple of seconds; the ones that do not are in `problems` (an RPC server serves one client at
// a time, so one busy with a loaded model does not answer either). Throws Error(kInvalidArgument)
// for a malformed or refused endpoint (see parse_rpc_servers), never for an unreachable one.
std::vector<DeviceInfo> list_devices(const std::vector<std::string> & rpc_servers, bool rpc_allow_remote,
                                     std::vector<RpcServerProblem> * problems = nullptr);

// Splits "host:port,host:port" (spaces allowed around commas; IPv6 as [addr]:port) and checks
// each: a port in 1..65535, and a loopback host (127.0.0.0/8, ::1, localhost) unless
// `allow_remote`, because the RPC protocol has no authentication: anyone who can reach the port
// can run code-like graphs and read or write the server's memory. Throws Error(kInvalidArgument).
std::vector<std::string> parse_rpc_servers(const std::string & list, bool allow_remote);

// libllama's and Cortex's log threshold: "error" (default), "warn", "info" or "debug".
// Also read once from CORTEX_LOG_LEVEL.
void set_log_level(const std::string & level);

}  // namespace cortex::llm
