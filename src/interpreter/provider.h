// Router and providers: where the interpreter's language model runs.
//
//   CORTEX_PROVIDER=llamacpp: the preload daemon when it serves the model, else in-process
//                             cortex::llm (CORTEX_PRELOAD=auto|off|required decides).
//   CORTEX_PROVIDER=ollama:   HTTP POST $OLLAMA_HOST/api/chat with OLLAMA_MODEL.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "cortex/config.h"
#include "cortex/llm.h"

namespace cortex::interpreter {

struct ProviderRequest {
    std::vector<llm::Message> messages;  // system + user
    std::string json_schema;             // empty: free text; else the answer must match it
    int max_tokens = 256;
    float temperature = 0.0f;            // 0 = greedy
    double timeout_s = 120;              // whole request, then Error(kNetwork or kCancelled)
    llm::TokenCallback on_token;         // streaming; return false to cancel
    const std::atomic<bool> * cancel = nullptr;  // set by a Ctrl-C handler: ends the request
};

struct ProviderReply {
    std::string content;
    std::string model;        // the model that answered
    std::string route;        // "daemon", "in-process" or "ollama http://127.0.0.1:11434"
    bool truncated = false;   // stopped by max_tokens
    llm::Result result;       // timings where the provider reports them
};

class Provider {
  public:
    virtual ~Provider() = default;
    // "llamacpp" or "ollama".
    virtual std::string name() const = 0;
    // Throws Error: kNotFound (no model), kNetwork (Ollama unreachable, HTTP error, timeout),
    // kCancelled, and the llm errors; each with a hint that says what to start or set.
    virtual ProviderReply chat(const ProviderRequest & request) = 0;
};

// The provider the settings choose. Cheap: nothing is loaded or connected until chat().
// Throws Error(kInvalidArgument) for an unknown provider name.
std::unique_ptr<Provider> open_provider(const Settings & settings);

// Whether a model is available at all for `settings` (a model file resolves, a daemon serves
// one, or Ollama answers with the model), without loading it. `why_not` says what to do.
bool provider_available(const Settings & settings, std::string * why_not);

}  // namespace cortex::interpreter
