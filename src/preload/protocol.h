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

}  // namespace cortex::preload
