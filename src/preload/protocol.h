// The preload protocol's JSON: requests' generation settings and results, shared by the daemon
// and the client (docs/PROTOCOL.md).
#pragma once

#include <nlohmann/json.hpp>

#include "cortex/llm.h"

namespace cortex::preload {

constexpr int kProtocolVersion = 1;

// Reads the generation fields of a request; throws Error(kInvalidArgument) naming a bad field.
llm::GenerationConfig config_from_json(const nlohmann::json & request);
void config_to_json(const llm::GenerationConfig & config, nlohmann::json & request);

nlohmann::json result_to_json(const llm::Result & result);
llm::Result result_from_json(const nlohmann::json & j);

nlohmann::json messages_to_json(const std::vector<llm::Message> & messages);
// Throws Error(kInvalidArgument) unless `j` is [{"role": string, "content": string}, ...].
std::vector<llm::Message> messages_from_json(const nlohmann::json & j);

nlohmann::json error_to_json(const Error & e);
// Rebuilds the daemon's error on the client side.
Error error_from_json(const nlohmann::json & j);

// One request line, decoded. Only the fields of its op are read; the rest keep their defaults.
struct Request {
    std::string op;                      // empty when absent; an unknown op is the server's to refuse
    std::string model_path;              // generation ops: the file a bound client expects; empty = any
    std::string model;                   // load: a name or path
    std::string text;                    // tokenize; complete with a text prompt
    std::vector<llm::Token> tokens;      // detokenize; complete with token ids (prompt_tokens)
    bool prompt_tokens = false;          // complete: the prompt came as token ids
    std::vector<llm::Message> messages;  // chat, apply_chat_template
    llm::GenerationConfig config;        // complete, chat
    bool stream = true;
    bool add_special = true, parse_special = true;  // tokenize
    bool render_special = false;                    // detokenize
    bool add_generation_prompt = true;              // apply_chat_template
};

// Decodes a request object (docs/PROTOCOL.md). Throws Error(kInvalidArgument) naming the
// problem: not an object, another protocol version, a missing or mistyped field.
Request request_from_json(const nlohmann::json & j);

// Removes the complete lines of `buffer` that are "cancel" requests and says whether there were
// any; other lines (a next request sent ahead) stay, in order, with the unfinished tail.
bool take_cancel(std::string & buffer);

}  // namespace cortex::preload
