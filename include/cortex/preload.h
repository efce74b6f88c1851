// cortex::preload: the client of the preload daemon (cortex-preload), which keeps a model warm
// behind a Unix socket and serves several clients at once with continuous batching.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cortex/llm.h"

namespace cortex::preload {

// What Model's getters say about a model the daemon serves (empty/0 from a daemon too old to
// report it).
struct ModelInfo {
    std::string architecture;  // GGUF general.architecture
    std::string description;
    int n_ctx = 0;  // the context window of one request (one slot), as Model::n_ctx()
    int n_ctx_train = 0;
    int n_vocab = 0;
    uint64_t n_params = 0;
    uint64_t size_bytes = 0;
    bool has_chat_template = false;
    double load_ms = 0;  // the daemon's load of the model
};

struct DaemonStatus {
    int pid = 0;
    std::string socket;
    std::string model_name;
    std::string model_path;
    int n_ctx = 0;  // the n_ctx setting the model was loaded with
    int n_gpu_layers = 0;
    int slots = 0;
    double uptime_s = 0;
    ModelInfo info;
    std::string json;  // the whole status object
};

// A connection to a running daemon. Not thread-safe: one request at a time per Client.
class Client {
  public:
    ~Client();
    Client(const Client &) = delete;
    Client & operator=(const Client &) = delete;

    // Connects to `socket_path` (empty = the preload_socket setting). Returns nullptr when no
    // daemon answers there.
    static std::unique_ptr<Client> connect(const std::string & socket_path = "");

    DaemonStatus status();
    llm::Result complete(const std::string & prompt, const llm::GenerationConfig & config = {},
                         const llm::TokenCallback & on_token = {});
    llm::Result chat(const std::vector<llm::Message> & messages, const llm::GenerationConfig & config = {},
                     const llm::TokenCallback & on_token = {});
    // The daemon tokenizes the prompt text as Model::complete() does.
    llm::Result complete(const std::vector<llm::Token> & prompt, const llm::GenerationConfig & config = {},
                         const llm::TokenCallback & on_token = {});
    std::vector<llm::Token> tokenize(const std::string & text, bool add_special = true, bool parse_special = true);
    std::string detokenize(const std::vector<llm::Token> & tokens, bool render_special = false);
    std::string apply_chat_template(const std::vector<llm::Message> & messages, bool add_generation_prompt = true);
    // From now on, model requests (complete, chat, tokenize, detokenize, apply_chat_template)
    // carry `path`: a daemon that serves another file by then (after a reload) refuses them
    // with Error(kNotFound) instead of answering from the wrong model. Empty: no check.
    void expect_model(const std::string & path);
    // Asks the daemon to load `model` (empty: the model of its re-read settings) while it keeps
    // serving; requests in flight finish on the old model. Returns the answer's JSON text.
    std::string reload(const std::string & model = "");
    // Asks the daemon to finish its requests and exit.
    void shutdown();

  private:
    explicit Client(int fd);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// CORTEX_PRELOAD: "auto" (default: use a daemon that serves the model, else load in-process),
// "off" or "required" (fail when no daemon serves it).
std::string preload_mode();

}  // namespace cortex::preload
