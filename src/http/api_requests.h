// The request bodies of the HTTP API, decoded apart from the routes that serve them (so that
// they can be tested and fuzzed without a model): the generation settings, messages and prompts
// of Ollama's /api/generate and /api/chat and OpenAI's /v1/chat/completions and /v1/completions.
// Every bad field is an ApiError 400 in the style of the API it belongs to.
#pragma once

#include <string>
#include <vector>

#include "http/api_common.h"

namespace cortex::http {

// Ollama's "options" and "format" as a GenerationConfig. num_predict -1 (the default) means
// until the slot (`slot` tokens) is full, as in Ollama. num_ctx cannot grow a slot of a running
// daemon: a larger value is ignored and said so in `note`.
llm::GenerationConfig ollama_config(const json & body, int slot, std::string & note);
// /api/chat's "messages" ([{role, content}]); none when absent.
std::vector<llm::Message> ollama_messages(const json & body);

// OpenAI's sampling fields (with llama.cpp's extensions, as llama-server takes them),
// max_tokens (at most `slot`), stop and response_format as a GenerationConfig.
llm::GenerationConfig openai_config(const json & body, int slot);
// /v1/chat/completions' "messages": at least one; content a string or text parts.
std::vector<llm::Message> openai_messages(const json & body);

// /v1/completions' "prompt": text (or an array of one string), or token ids.
struct OpenAiPrompt {
    std::string text;
    std::vector<llm::Token> tokens;
    bool is_tokens = false;
};
OpenAiPrompt openai_prompt(const json & body);

}  // namespace cortex::http
