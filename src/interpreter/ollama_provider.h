// The Ollama provider: HTTP POST $OLLAMA_HOST/api/chat over libcurl, streamed NDJSON, with the
// JSON schema as Ollama's `format`. Kept apart from the llamacpp router: one concern per file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "interpreter/provider.h"

namespace cortex::interpreter {

// OLLAMA_HOST as Ollama's own client reads it: "127.0.0.1:11434", "localhost", ":11434" and
// "http://host:port" all work; without a scheme http and port 11434 are assumed. Returns
// "http://host:port" without a trailing slash.
std::string ollama_base_url(const std::string & host);

// A provider that talks to Ollama at `host` with `model`. Cheap: connects in chat() only.
std::unique_ptr<Provider> open_ollama_provider(const std::string & host, const std::string & model);

// GET /api/tags within `timeout_s`: the names of Ollama's models ("llama3.2:latest").
// Throws Error(kNetwork) when Ollama does not answer, with the hint of chat().
std::vector<std::string> ollama_list_models(const std::string & host, double timeout_s = 2);

// Whether `model` is in `names`, taking Ollama's implicit ":latest" tag into account.
bool ollama_has_model(const std::vector<std::string> & names, const std::string & model);

}  // namespace cortex::interpreter
