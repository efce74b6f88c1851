// Token sampling for one generation: the llama-server sampler order, an optional grammar
// (GBNF or from a JSON schema) and a fast path for greedy decoding.
#pragma once

#include <vector>

#include "cortex/llm.h"
#include "llama-cpp.h"

namespace cortex::llm {

// Throws Error(kInvalidArgument) when a field of `config` is out of range.
void validate_generation_config(const GenerationConfig & config);

// Turns a JSON schema into GBNF. Throws Error(kInvalidSchema).
std::string json_schema_to_gbnf(const std::string & schema);

class Sampler {
  public:
    // `eog_tokens` are banned when config.ignore_eos is set. With `for_backend` (and no grammar)
    // the chain is built to run inside the decode graph on the model's output device; attach
    // it with llama_set_sampler(). Throws Error (kInvalidGrammar, kInvalidSchema,
    // kInvalidArgument).
    Sampler(const llama_model * model, const GenerationConfig & config, const std::vector<llama_token> & eog_tokens,
            bool for_backend);

    // Samples output `idx` of the last decode: the token the backend already picked, or one
    // picked here from the logits.
    llama_token sample(llama_context * ctx, int idx);
    // Records `token` as generated (grammar state, repeat penalty window).
    void accept(llama_token token);
    // Back to the state of a new generation (penalty window, random seed).
    void reset() { llama_sampler_reset(chain_.get()); }

    bool for_backend() const { return for_backend_; }
    llama_sampler * chain() const { return chain_.get(); }

    // Whether `a` and `b` sample alike, so that one attached chain serves both.
    static bool same_sampling(const GenerationConfig & a, const GenerationConfig & b);

  private:
    void fill_candidates(const float * logits);

    const llama_vocab * vocab_;
    int n_vocab_;
    bool for_backend_;
    bool greedy_fast_path_;
    const std::vector<llama_token> & eog_tokens_;
    bool ignore_eos_;
    llama_sampler_ptr chain_;
    llama_sampler_ptr grammar_;
    std::vector<llama_token_data> candidates_;
};

}  // namespace cortex::llm
