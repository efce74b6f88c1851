// The requests of cortex-load-test and their expected answers, computed in-process.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cortex/llm.h"

namespace cortex::load {

// One prompt, how much to generate, and its in-process greedy answer.
struct Case {
    std::string name;
    bool chat = false;
    std::string prompt;                  // complete
    std::vector<llm::Message> messages;  // chat
    int max_tokens = 1;
    float repeat_penalty = 1.0f;  // != 1: the sampler's token history is part of the answer
    std::string expected;
    int expected_tokens = 0;
    std::string expected_finish;  // "stop" or "length"
};

// Prompts of mixed lengths (1 to several hundred tokens), completions and chats, a shared
// system prompt (so that the daemon's prompt caches are hit), multi-turn, non-ASCII text; each
// with max_tokens from 1 to `max_tokens`, the longer ones also with a repeat penalty.
std::vector<Case> make_cases(int max_tokens);

// Greedy (temperature 0) generation settings of a case.
llm::GenerationConfig greedy(const Case & c);

// Messages as the protocols write them: [{"role", "content"}].
nlohmann::json messages_json(const std::vector<llm::Message> & messages);

// Sets each case's expected answer from `model_path` loaded in-process with `n_ctx` and
// `n_threads`, and removes the cases whose answer depends on how the prompt is split into
// batches (see load_cases.cpp); returns the names of those removed. Throws cortex::Error.
std::vector<std::string> compute_references(const std::string & model_path, int n_ctx, int n_threads,
                                            std::vector<Case> & cases);

}  // namespace cortex::load
