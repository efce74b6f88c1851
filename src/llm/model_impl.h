// What stands behind a Model: weights loaded in this process (model.cpp) or a preload daemon
// that serves the same file (remote_model.cpp). Model forwards every call, so that a caller
// cannot tell which one it holds except by speed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cortex/llm.h"

namespace cortex::llm {

struct Model::Impl {
    virtual ~Impl() = default;

    virtual Result complete(const std::string & prompt, const GenerationConfig & config,
                            const TokenCallback & on_token) = 0;
    virtual Result complete(const std::vector<Token> & prompt, const GenerationConfig & config,
                            const TokenCallback & on_token) = 0;
    virtual Result chat(const std::vector<Message> & messages, const GenerationConfig & config,
                        const TokenCallback & on_token) = 0;
    virtual std::string apply_chat_template(const std::vector<Message> & messages, bool add_generation_prompt) = 0;
    virtual std::vector<Token> tokenize(std::string_view text, bool add_special, bool parse_special) = 0;
    virtual std::string detokenize(const std::vector<Token> & tokens, bool render_special) = 0;
    virtual void clear_cache() = 0;

    virtual std::string architecture() const = 0;
    virtual std::string description() const = 0;
    virtual int n_ctx() const = 0;
    virtual int n_ctx_train() const = 0;
    virtual int n_vocab() const = 0;
    virtual uint64_t n_params() const = 0;
    virtual uint64_t size_bytes() const = 0;
    virtual bool has_chat_template() const = 0;
    virtual double load_ms() const = 0;

    // Returned by reference from Model, so held here rather than computed.
    std::string path;
    ModelConfig config;
};

std::shared_ptr<Model> make_model(std::unique_ptr<Model::Impl> impl);

// A Model served by the preload daemon when one runs on the preload_socket setting and serves
// the file `path` (canonical `key`) with `config.n_ctx`; nullptr when none does and the mode
// (CORTEX_PRELOAD) is auto. Mode off: nullptr at once; required: Error(kNotFound) with a hint.
std::shared_ptr<Model> attach_remote_model(const std::string & name, const std::string & path, const std::string & key,
                                           const ModelConfig & config);

}  // namespace cortex::llm
