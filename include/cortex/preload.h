// cortex::preload: the client of the preload daemon (cortex-preload), which keeps a model warm
// behind a Unix socket and serves several clients at once with continuous batching.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cortex/llm.h"

namespace cortex::preload {

struct DaemonStatus {
    int pid = 0;
    std::string socket;
    std::string model_name;
    std::string model_path;
    int n_ctx = 0;
    int slots = 0;
    double uptime_s = 0;
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
    std::vector<llm::Token> tokenize(const std::string & text);
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
