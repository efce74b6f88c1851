// `cortex ask`: a question answered by the provider's model, with this system in the prompt.
#pragma once

#include <atomic>
#include <string>

#include "interpreter/provider.h"

namespace cortex::interpreter {

// The questions ask() takes at most, in bytes; longer ones are Error(kInvalidArgument).
inline constexpr size_t kMaxQuestionBytes = 16 * 1024;

// The fixed system prompt of ask(), with `system_description` (describe_system_for_prompt()).
std::string ask_system_prompt(const std::string & system_description);

// Streams the answer to `question` through `on_token` (may be empty) and returns it. `cancel`
// (may be null) ends the request when set. Throws Error: kInvalidArgument for an empty or too
// long question, and what Provider::chat() throws.
ProviderReply ask(Provider & provider, const std::string & question, const std::string & system_description,
                  llm::TokenCallback on_token = {}, const std::atomic<bool> * cancel = nullptr, int max_tokens = 512);

}  // namespace cortex::interpreter
