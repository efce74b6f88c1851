// Sampler chain construction and the per-token sampling step.
#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backend.h"
#include "cortex/error.h"
#include "json-schema-to-grammar.h"
#include "json.h"

namespace cortex::llm {

void validate_generation_config(const GenerationConfig & c) {
    auto bad = [](const std::string & what, const std::string & hint) {
        throw Error(ErrorCode::kInvalidArgument, what, hint);
    };
    if (c.max_tokens <= 0) bad("max_tokens must be > 0, got " + std::to_string(c.max_tokens), "e.g. max_tokens = 256");
    if (!std::isfinite(c.temperature) || c.temperature < 0)
        bad("temperature must be >= 0", "0 = greedy, 0.7 = typical");
    if (!(c.top_p > 0 && c.top_p <= 1)) bad("top_p must be in (0, 1]", "1 turns it off");
    if (c.top_k < 0) bad("top_k must be >= 0", "0 turns it off");
    if (!(c.min_p >= 0 && c.min_p <= 1)) bad("min_p must be in [0, 1]", "0 turns it off");
    if (!(c.repeat_penalty > 0) || !std::isfinite(c.repeat_penalty))
        bad("repeat_penalty must be > 0", "1 turns it off");
    if (c.repeat_last_n < -1) bad("repeat_last_n must be >= -1", "-1 = the whole context, 0 = off");
    if (!c.grammar.empty() && !c.json_schema.empty()) {
        bad("grammar and json_schema are both set", "set one of them: a JSON schema is turned into a grammar");
    }
    if (c.ignore_eos && (!c.grammar.empty() || !c.json_schema.empty())) {
        bad("ignore_eos cannot be combined with a grammar or json_schema", "a finished grammar can only end the text");
    }
}

std::string json_schema_to_gbnf(const std::string & schema) {
    try {
        return json_schema_to_grammar(common_json::parse(schema));
    } catch (const std::exception & e) {
        throw Error(
            ErrorCode::kInvalidSchema, std::string("invalid JSON schema: ") + e.what(),
            "pass a JSON Schema object, e.g. {\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}}}");
    }
}

Sampler::Sampler(const llama_model * model, const GenerationConfig & config,
                 const std::vector<llama_token> & eog_tokens)
    : vocab_(llama_model_get_vocab(model)),
      n_vocab_(llama_vocab_n_tokens(vocab_)),
      eog_tokens_(eog_tokens),
      ignore_eos_(config.ignore_eos) {
    validate_generation_config(config);

    std::string grammar = config.grammar;
    if (!config.json_schema.empty()) grammar = json_schema_to_gbnf(config.json_schema);
    if (!grammar.empty()) {
        begin_capture_errors();
        grammar_.reset(llama_sampler_init_grammar(vocab_, grammar.c_str(), "root"));
        std::string why = take_captured_errors();
        if (!grammar_) {
            throw Error(config.json_schema.empty() ? ErrorCode::kInvalidGrammar : ErrorCode::kInvalidSchema,
                        "the grammar does not parse" + (why.empty() ? std::string() : ": " + why),
                        "check the GBNF syntax (a 'root' rule is required); see llama.cpp grammars/README.md");
        }
    }

    const bool penalties = config.repeat_penalty != 1.0f && config.repeat_last_n != 0;
    greedy_fast_path_ = config.temperature == 0 && !penalties;

    llama_sampler_chain_params params = llama_sampler_chain_default_params();
    params.no_perf = true;
    chain_.reset(llama_sampler_chain_init(params));
    if (penalties) {
        llama_sampler_chain_add(chain_.get(), llama_sampler_init_penalties(n_vocab_, config.repeat_last_n,
                                                                           config.repeat_penalty, 0.0f, 0.0f));
    }
    if (config.temperature == 0) {
        llama_sampler_chain_add(chain_.get(), llama_sampler_init_greedy());
    } else {
        if (config.top_k > 0) llama_sampler_chain_add(chain_.get(), llama_sampler_init_top_k(config.top_k));
        if (config.top_p < 1) llama_sampler_chain_add(chain_.get(), llama_sampler_init_top_p(config.top_p, 1));
        if (config.min_p > 0) llama_sampler_chain_add(chain_.get(), llama_sampler_init_min_p(config.min_p, 1));
        llama_sampler_chain_add(chain_.get(), llama_sampler_init_temp(config.temperature));
        llama_sampler_chain_add(chain_.get(), llama_sampler_init_dist(config.seed));
    }
    // Made here, not on first use: made lazily, the daemon's sampled requests allocate their 1.8
    // MB (152k vocabulary) at unpredictable times, and glibc's raised mmap threshold keeps such
    // blocks in the heap, so its resident memory crept up over a soak run (load_soak, +5.8%).
    candidates_.resize(n_vocab_);
}

namespace {

// Four 4-wide maxima (GCC's vector extension: SSE on x86-64, NEON on arm64). A plain lane
// loop is not vectorised at -O2, and this runs once per slot on every decode step while the GPU
// waits: 24 us instead of 190 us for 152k logits here.
using Float4 = float __attribute__((vector_size(16)));

// NaN never wins: `x > m` is false for it.
inline Float4 max4(Float4 m, Float4 x) {
    return x > m ? x : m;
}

float block_max(const float * x, int n) {
    float best = -std::numeric_limits<float>::infinity();
    int i = 0;
    if (n >= 16) {
        Float4 m[4];
        for (Float4 & v : m) v = Float4{best, best, best, best};
        for (; i + 16 <= n; i += 16) {
            for (int k = 0; k < 4; ++k) {
                Float4 v;
                std::memcpy(&v, x + i + 4 * k, sizeof v);
                m[k] = max4(m[k], v);
            }
        }
        const Float4 all = max4(max4(m[0], m[1]), max4(m[2], m[3]));
        for (int k = 0; k < 4; ++k) best = all[k] > best ? all[k] : best;
    }
    for (; i < n; ++i) best = x[i] > best ? x[i] : best;
    return best;
}

}  // namespace

int argmax(const float * logits, int n) {
    // The maximum of each block, then the first index of the best value in the first block that
    // holds it: the second pass reads one block, not the whole vocabulary.
    constexpr int kBlock = 2048;
    float best = -std::numeric_limits<float>::infinity();
    int best_start = 0;
    for (int start = 0; start < n; start += kBlock) {
        const float m = block_max(logits + start, std::min(kBlock, n - start));
        if (m > best) {
            best = m;
            best_start = start;
        }
    }
    for (int i = best_start; i < std::min(n, best_start + kBlock); ++i) {
        if (logits[i] == best) return i;
    }
    return 0;  // all NaN
}

void Sampler::fill_candidates(const float * logits) {
    for (int i = 0; i < n_vocab_; ++i) candidates_[i] = llama_token_data{i, logits[i], 0.0f};
    if (ignore_eos_) {
        for (llama_token t : eog_tokens_) candidates_[t].logit = -std::numeric_limits<float>::infinity();
    }
}

llama_token Sampler::sample(llama_context * ctx, int idx) {
    float * logits = llama_get_logits_ith(ctx, idx);
    if (logits == nullptr) throw Error(ErrorCode::kInternal, "no logits for the last token", "please report this bug");
    return sample(logits);
}

llama_token Sampler::sample(float * logits) {
    // Greedy without a grammar needs no candidate array: an argmax over the logits is the
    // whole job, and it keeps per-token overhead far below a GPU's decode time.
    if (greedy_fast_path_ && !grammar_) {
        if (ignore_eos_) {
            for (llama_token t : eog_tokens_) logits[t] = -std::numeric_limits<float>::infinity();
        }
        return argmax(logits, n_vocab_);
    }

    fill_candidates(logits);
    llama_token_data_array arr{candidates_.data(), candidates_.size(), -1, false};
    if (grammar_) {
        // As llama.cpp's common sampler does: sample freely, and only when the grammar rejects
        // the choice pay for applying it to the whole vocabulary.
        llama_sampler_apply(chain_.get(), &arr);
        llama_token id = arr.data[arr.selected].id;
        llama_token_data single{id, 1.0f, 0.0f};
        llama_token_data_array single_arr{&single, 1, -1, false};
        llama_sampler_apply(grammar_.get(), &single_arr);
        if (std::isfinite(single.logit)) return id;
        fill_candidates(logits);
        arr = llama_token_data_array{candidates_.data(), candidates_.size(), -1, false};
        llama_sampler_apply(grammar_.get(), &arr);
    }
    llama_sampler_apply(chain_.get(), &arr);
    if (arr.selected < 0 || arr.selected >= static_cast<int64_t>(arr.size)) {
        throw Error(ErrorCode::kInternal, "the sampler selected no token", "please report this bug");
    }
    return arr.data[arr.selected].id;
}

void Sampler::accept(llama_token token) {
    if (grammar_) llama_sampler_accept(grammar_.get(), token);
    llama_sampler_accept(chain_.get(), token);
}

}  // namespace cortex::llm
