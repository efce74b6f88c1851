// What Model and the preload daemon's scheduler share: loading a llama_model with clear errors,
// creating a context, the end-of-generation tokens, token text.
#pragma once

#include <string>
#include <vector>

#include "cortex/llm.h"
#include "llama-cpp.h"

namespace cortex::llm {

// Checks and loads the file. Throws Error (kNotFound, kInvalidModel, kUnsupportedModel,
// kLoadFailed, kInvalidArgument).
llama_model_ptr load_llama_model(const std::string & path, const ModelConfig & config);

// A context of `n_ctx_total` cells for `n_seq_max` sequences. Throws Error(kLoadFailed).
llama_context_ptr create_context(llama_model * model, const ModelConfig & config, int n_seq_max, int n_ctx_total,
                                 const std::string & path);

std::vector<llama_token> eog_tokens(const llama_vocab * vocab);

// The text of `token` into `buf` (resized), control tokens rendered empty.
const std::string & token_text(const llama_vocab * vocab, llama_token token, std::string & buf);

std::vector<Token> tokenize_text(const llama_vocab * vocab, std::string_view text, bool add_special, bool parse_special);

// Throws Error(kInvalidArgument) for a token outside the vocabulary.
std::string detokenize_tokens(const llama_vocab * vocab, const std::vector<Token> & tokens, bool render_special);

std::string model_architecture(const llama_model * model);  // GGUF general.architecture
std::string model_description(const llama_model * model);   // llama_model_desc()

}  // namespace cortex::llm
