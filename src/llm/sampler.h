// Token sampling for one generation: the llama-server sampler order, an optional grammar
// (GBNF or from a JSON schema) and a fast path for greedy decoding.
#pragma once

#include <vector>

#include "cortex/llm.h"
#include "llama-cpp.h"

namespace cortex::llm {

// Throws Error(kInvalidArgument) when a field of `config` is out of range.
void validate_generation_config(const GenerationConfig & config);

// The first index of the largest of `n` > 0 logits (NaN never wins; 0 when all are NaN): greedy
// decoding's whole sampling step.
int argmax(const float * logits, int n);

// Turns a JSON schema into GBNF. Throws Error(kInvalidSchema).
std::string json_schema_to_gbnf(const std::string & schema);

class Sampler {
  public:
    // `eog_tokens` are banned when config.ignore_eos is set. Throws Error (kInvalidGrammar,
    // kInvalidSchema, kInvalidArgument).
    Sampler(const llama_model * model, const GenerationConfig & config, const std::vector<llama_token> & eog_tokens);

    // Samples from the logits of output `idx` of the last decode.
    llama_token sample(llama_context * ctx, int idx);
    // Samples from one output's logits (llama_get_logits_ith), which it may change. Samplers of
    // different generations may run this at once.
    llama_token sample(float * logits);
    // Records `token` as generated (grammar state, repeat penalty window).
    void accept(llama_token token);

  private:
    void fill_candidates(const float * logits);

    const llama_vocab * vocab_;
    int n_vocab_;
    bool greedy_fast_path_;
    const std::vector<llama_token> & eog_tokens_;
    bool ignore_eos_;
    llama_sampler_ptr chain_;
    llama_sampler_ptr grammar_;
    std::vector<llama_token_data> candidates_;
};

}  // namespace cortex::llm
