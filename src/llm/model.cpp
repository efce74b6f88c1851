// Model: one llama_model with one llama_context, and the generation loop over them.
#include <algorithm>
#include <chrono>
#include <mutex>

#include "backend.h"
#include "chat_template.h"
#include "common.h"
#include "cortex/llm.h"
#include "gguf_check.h"
#include "llama-cpp.h"
#include "model_impl.h"
#include "model_file_watch.h"
#include "model_loader.h"
#include "rpc.h"
#include "sampler.h"
#include "text_stream.h"

namespace cortex::llm {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

struct BatchDeleter {
    void operator()(llama_batch * batch) const {
        llama_batch_free(*batch);
        delete batch;
    }
};
using BatchPtr = std::unique_ptr<llama_batch, BatchDeleter>;

BatchPtr make_batch(int n_tokens) {
    return BatchPtr(new llama_batch(llama_batch_init(n_tokens, 0, 1)));
}

void validate_model_config(const ModelConfig & c) {
    auto bad = [](const std::string & what, const std::string & hint) {
        throw Error(ErrorCode::kInvalidArgument, what, hint);
    };
    if (c.n_ctx <= 0) bad("n_ctx must be > 0, got " + std::to_string(c.n_ctx), "e.g. n_ctx = 4096 (LLAMACPP_N_CTX)");
    if (c.n_batch <= 0) bad("n_batch must be > 0, got " + std::to_string(c.n_batch), "e.g. n_batch = 512");
    if (c.n_threads < 0) bad("n_threads must be >= 0, got " + std::to_string(c.n_threads), "0 = one per physical core");
    if (c.n_gpu_layers < -1) bad("n_gpu_layers must be >= -1, got " + std::to_string(c.n_gpu_layers), "-1 = all layers, 0 = CPU only");
    if (c.main_gpu < 0) bad("main_gpu must be >= 0, got " + std::to_string(c.main_gpu), "0 = the first device (LLAMACPP_MAIN_GPU)");
    if (c.tensor_split.size() > llama_max_devices()) {
        bad("tensor_split has " + std::to_string(c.tensor_split.size()) + " proportions, but libllama takes at most " +
                std::to_string(llama_max_devices()) + " devices",
            "one proportion per device, e.g. 3,1 (LLAMACPP_TENSOR_SPLIT)");
    }
    float sum = 0;
    for (float f : c.tensor_split) {
        if (!(f >= 0)) bad("tensor_split proportions must be >= 0", "e.g. 3,1 (LLAMACPP_TENSOR_SPLIT)");
        sum += f;
    }
    if (!c.tensor_split.empty() && sum <= 0) bad("tensor_split proportions are all 0", "e.g. 1,1 to split evenly");
}

llama_split_mode to_llama(SplitMode mode) {
    switch (mode) {
        case SplitMode::kNone: return LLAMA_SPLIT_MODE_NONE;
        case SplitMode::kRow: return LLAMA_SPLIT_MODE_ROW;
        case SplitMode::kLayer: break;
    }
    return LLAMA_SPLIT_MODE_LAYER;
}

llama_flash_attn_type to_llama(FlashAttention fa) {
    switch (fa) {
        case FlashAttention::kOn: return LLAMA_FLASH_ATTN_TYPE_ENABLED;
        case FlashAttention::kOff: return LLAMA_FLASH_ATTN_TYPE_DISABLED;
        case FlashAttention::kAuto: break;
    }
    return LLAMA_FLASH_ATTN_TYPE_AUTO;
}

}  // namespace

const char * finish_reason_name(FinishReason reason) {
    switch (reason) {
        case FinishReason::kStop: return "stop";
        case FinishReason::kLength: return "length";
        case FinishReason::kCancelled: return "cancelled";
    }
    return "unknown";
}

// The weights and one context in this process.
struct LocalModel final : Model::Impl {
    llama_model_ptr model;
    llama_context_ptr ctx;
    const llama_vocab * vocab = nullptr;
    std::unique_ptr<ChatTemplate> chat_template;
    std::vector<llama_token> eog_tokens;
    std::unique_ptr<ModelFileWatch> file_watch;  // only while the weights are mapped
    double load_ms_ = 0;

    std::mutex mutex;                  // serialises generation; guards everything below
    std::vector<llama_token> kv_tokens;  // what sequence 0 of the KV cache holds, in order

    BatchPtr batch;
    std::string piece;

    Result generate(const std::vector<llama_token> & prompt, const GenerationConfig & config, const TokenCallback & on_token,
                    Clock::time_point t_start);

    void evaluate_prompt(const std::vector<llama_token> & prompt, size_t from);
    void decode_one(llama_token token);
    void decode(const llama_batch & batch, const char * when);

    Result complete(const std::string & prompt, const GenerationConfig & config, const TokenCallback & on_token) override;
    Result complete(const std::vector<Token> & prompt, const GenerationConfig & config, const TokenCallback & on_token) override;
    Result chat(const std::vector<Message> & messages, const GenerationConfig & config, const TokenCallback & on_token) override;
    std::string apply_chat_template(const std::vector<Message> & messages, bool add_generation_prompt) override {
        return chat_template->apply(messages, add_generation_prompt);
    }
    std::vector<Token> tokenize(std::string_view text, bool add_special, bool parse_special) override {
        return tokenize_text(vocab, text, add_special, parse_special);
    }
    std::string detokenize(const std::vector<Token> & tokens, bool render_special) override {
        return detokenize_tokens(vocab, tokens, render_special);
    }
    void clear_cache() override;

    std::string architecture() const override { return model_architecture(model.get()); }
    std::string description() const override { return model_description(model.get()); }
    int n_ctx() const override { return static_cast<int>(llama_n_ctx(ctx.get())); }
    int n_ctx_train() const override { return llama_model_n_ctx_train(model.get()); }
    int n_vocab() const override { return llama_vocab_n_tokens(vocab); }
    uint64_t n_params() const override { return llama_model_n_params(model.get()); }
    uint64_t size_bytes() const override { return llama_model_size(model.get()); }
    bool has_chat_template() const override { return chat_template->from_model(); }
    double load_ms() const override { return load_ms_; }
};

llama_model_ptr load_llama_model(const std::string & path, const ModelConfig & config) {
    validate_model_config(config);
    GgufSummary summary = check_model_file(path);
    ensure_backend();
    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = config.n_gpu_layers;
    // The default (auto) maps the file where that is best; off reads it into memory.
    if (!config.use_mmap) mparams.load_mode = LLAMA_LOAD_MODE_NONE;
    mparams.split_mode = to_llama(config.split_mode);
    mparams.main_gpu = config.main_gpu;
    // libllama reads llama_max_devices() floats; the rest stay 0 (= no share).
    std::vector<float> split(llama_max_devices(), 0.0f);
    std::copy(config.tensor_split.begin(), config.tensor_split.end(), split.begin());
    if (!config.tensor_split.empty()) mparams.tensor_split = split.data();
    // RPC servers are probed here (a clear Error naming host:port) before libllama connects.
    std::vector<ggml_backend_dev_t> devices = model_devices(config);
    if (!devices.empty()) mparams.devices = devices.data();
    const size_t n_devices = devices.empty() ? 0 : devices.size() - 1;
    if (config.main_gpu > 0 && !devices.empty() && static_cast<size_t>(config.main_gpu) >= n_devices) {
        throw Error(ErrorCode::kInvalidArgument,
                    "main_gpu is " + std::to_string(config.main_gpu) + ", but there are only " + std::to_string(n_devices) +
                        " devices (RPC servers first, then local GPUs)",
                    "see the devices with: cortex doctor; set LLAMACPP_MAIN_GPU to one of them");
    }
    begin_capture_errors();
    llama_model_ptr model(llama_model_load_from_file(path.c_str(), mparams));
    std::string why = take_captured_errors();
    if (model && !config.rpc_servers.empty()) limit_rpc_waits(config.rpc_servers);
    if (!model) {
        if (why.find("unknown model architecture") != std::string::npos) {
            throw Error(ErrorCode::kUnsupportedModel,
                        "'" + path + "' is a '" + summary.architecture + "' model, which this llama.cpp build cannot run",
                        "use a model of a supported architecture (qwen2, llama, phi3, ...), or rebuild with a newer llama.cpp");
        }
        throw Error(ErrorCode::kLoadFailed, "libllama could not load '" + path + "'" + (why.empty() ? "" : ": " + why),
                    "the file may be damaged (download it again with --force) or need more memory than is free "
                    "(try fewer GPU layers: LLAMACPP_N_GPU_LAYERS)");
    }
    return model;
}

llama_context_ptr create_context(llama_model * model, const ModelConfig & config, int n_seq_max, int n_ctx_total,
                                 const std::string & path) {
    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = static_cast<uint32_t>(n_ctx_total);
    cparams.n_batch = static_cast<uint32_t>(config.n_batch);
    cparams.n_ubatch = static_cast<uint32_t>(std::min(config.n_batch, 512));
    cparams.n_seq_max = static_cast<uint32_t>(n_seq_max);
    // Cortex asks for the logits of one token per sequence and batch (a prompt's last, or the one
    // just generated). libllama otherwise plans its compute buffer for a whole ubatch of logits:
    // 512 x vocabulary floats, 311 MB for a 152k vocabulary, touched by every long prompt.
    // A batch with more outputs would be refused by an assertion, so every caller keeps to it.
    cparams.n_outputs_max = static_cast<uint32_t>(n_seq_max);
    const int threads = config.n_threads > 0 ? config.n_threads : std::max(1, common_cpu_get_num_physical_cores());
    cparams.n_threads = threads;
    cparams.n_threads_batch = threads;
    cparams.flash_attn_type = to_llama(config.flash_attention);
    cparams.no_perf = true;
    begin_capture_errors();
    llama_context_ptr ctx(llama_init_from_model(model, cparams));
    std::string why = take_captured_errors();
    if (!ctx) {
        throw Error(ErrorCode::kLoadFailed,
                    "could not create a context of " + std::to_string(n_ctx_total) + " tokens for '" + path + "'" +
                        (why.empty() ? "" : ": " + why),
                    "lower n_ctx (LLAMACPP_N_CTX) or the GPU layers (LLAMACPP_N_GPU_LAYERS) to need less memory");
    }
    return ctx;
}

std::vector<llama_token> eog_tokens(const llama_vocab * vocab) {
    std::vector<llama_token> out;
    const int n_vocab = llama_vocab_n_tokens(vocab);
    for (llama_token t = 0; t < n_vocab; ++t) {
        if (llama_vocab_is_eog(vocab, t)) out.push_back(t);
    }
    return out;
}

const std::string & token_text(const llama_vocab * vocab, llama_token token, std::string & buf) {
    buf.resize(buf.capacity() < 64 ? 64 : buf.capacity());
    int n = llama_token_to_piece(vocab, token, buf.data(), static_cast<int32_t>(buf.size()), 0, false);
    if (n < 0) {
        buf.resize(static_cast<size_t>(-n));
        n = llama_token_to_piece(vocab, token, buf.data(), static_cast<int32_t>(buf.size()), 0, false);
    }
    buf.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return buf;
}

std::vector<Token> tokenize_text(const llama_vocab * vocab, std::string_view text, bool add_special, bool parse_special) {
    // A token is at least one byte, plus BOS/EOS.
    std::vector<Token> tokens(text.size() + 2);
    int n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(), static_cast<int32_t>(tokens.size()),
                           add_special, parse_special);
    if (n < 0) {
        tokens.resize(static_cast<size_t>(-n));
        n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(), static_cast<int32_t>(tokens.size()),
                           add_special, parse_special);
    }
    if (n < 0) throw Error(ErrorCode::kInvalidArgument, "the text could not be tokenized", "check that it is valid UTF-8");
    tokens.resize(static_cast<size_t>(n));
    return tokens;
}

std::string detokenize_tokens(const llama_vocab * vocab, const std::vector<Token> & tokens, bool render_special) {
    const int n_vocab = llama_vocab_n_tokens(vocab);
    for (Token t : tokens) {
        if (t < 0 || t >= n_vocab) {
            throw Error(ErrorCode::kInvalidArgument, "token " + std::to_string(t) + " is not in the vocabulary",
                        "tokens must come from this model's tokenize()");
        }
    }
    std::string text(tokens.size() * 8 + 16, '\0');
    int n = llama_detokenize(vocab, tokens.data(), static_cast<int32_t>(tokens.size()), text.data(),
                             static_cast<int32_t>(text.size()), false, render_special);
    if (n < 0) {
        text.resize(static_cast<size_t>(-n));
        n = llama_detokenize(vocab, tokens.data(), static_cast<int32_t>(tokens.size()), text.data(),
                             static_cast<int32_t>(text.size()), false, render_special);
    }
    text.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return text;
}

std::string model_architecture(const llama_model * model) {
    char buf[128];
    int n = llama_model_meta_val_str(model, "general.architecture", buf, sizeof buf);
    return n < 0 ? std::string() : std::string(buf);
}

std::string model_description(const llama_model * model) {
    char buf[256];
    llama_model_desc(model, buf, sizeof buf);
    return buf;
}

std::shared_ptr<Model> Model::load(const std::string & path, const ModelConfig & config) {
    const auto t0 = Clock::now();
    auto impl = std::make_unique<LocalModel>();
    impl->path = path;
    impl->config = config;
    if (config.use_mmap) impl->file_watch = std::make_unique<ModelFileWatch>(path);
    impl->model = load_llama_model(path, config);
    impl->ctx = create_context(impl->model.get(), config, 1, config.n_ctx, path);
    impl->vocab = llama_model_get_vocab(impl->model.get());
    impl->eog_tokens = eog_tokens(impl->vocab);
    impl->chat_template = std::make_unique<ChatTemplate>(impl->model.get());
    impl->batch = make_batch(config.n_batch);
    impl->load_ms_ = ms_between(t0, Clock::now());
    return make_model(std::move(impl));
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

std::shared_ptr<Model> make_model(std::unique_ptr<Model::Impl> impl) {
    return std::shared_ptr<Model>(new Model(std::move(impl)));
}

void LocalModel::evaluate_prompt(const std::vector<llama_token> & prompt, size_t from) {
    const size_t n_batch = static_cast<size_t>(config.n_batch);
    for (size_t i = from; i < prompt.size(); i += n_batch) {
        const size_t n = std::min(n_batch, prompt.size() - i);
        llama_batch & b = *batch;
        b.n_tokens = static_cast<int32_t>(n);
        for (size_t j = 0; j < n; ++j) {
            b.token[j] = prompt[i + j];
            b.pos[j] = static_cast<llama_pos>(i + j);
            b.n_seq_id[j] = 1;
            b.seq_id[j][0] = 0;
            b.logits[j] = (i + j + 1 == prompt.size());
        }
        decode(b, "while reading the prompt");
        kv_tokens.insert(kv_tokens.end(), prompt.begin() + static_cast<std::ptrdiff_t>(i),
                         prompt.begin() + static_cast<std::ptrdiff_t>(i + n));
    }
}

void LocalModel::decode_one(llama_token token) {
    decode(llama_batch_get_one(&token, 1), "while generating");
    kv_tokens.push_back(token);
}

void LocalModel::decode(const llama_batch & batch, const char * when) {
    if (file_watch) file_watch->check();  // before libllama reads a mapping that may be gone
    int rc = llama_decode(ctx.get(), batch);
    if (rc != 0) {
        // What the failed call left in the cache is unknown: start the next request clean.
        llama_memory_clear(llama_get_memory(ctx.get()), true);
        kv_tokens.clear();
        throw Error(ErrorCode::kDecodeFailed, "llama_decode failed with code " + std::to_string(rc) + " " + when,
                    "the context may be too small or memory short: lower n_ctx or max_tokens and retry");
    }
}

Result LocalModel::generate(const std::vector<llama_token> & prompt, const GenerationConfig & config,
                             const TokenCallback & on_token, Clock::time_point t_start) {
    Sampler sampler(model.get(), config, eog_tokens);  // validates config; throws before any work
    const int n_ctx = static_cast<int>(llama_n_ctx(ctx.get()));
    const int n_prompt = static_cast<int>(prompt.size());
    if (n_prompt == 0) {
        throw Error(ErrorCode::kInvalidArgument, "the prompt is empty", "pass some text to complete");
    }
    if (n_prompt >= n_ctx) {
        throw Error(ErrorCode::kPromptTooLong,
                    "the prompt has " + std::to_string(n_prompt) + " tokens but the context holds " + std::to_string(n_ctx) +
                        " (at least one more is needed to generate)",
                    "shorten the prompt or load the model with a larger n_ctx (LLAMACPP_N_CTX)");
    }
    for (llama_token t : prompt) {
        if (t < 0 || t >= llama_vocab_n_tokens(vocab)) {
            throw Error(ErrorCode::kInvalidArgument, "prompt token " + std::to_string(t) + " is not in the vocabulary",
                        "tokens must come from this model's tokenize()");
        }
    }

    // Keep the longest common prefix of the KV cache; always evaluate at least one token so
    // that there are logits to sample from.
    size_t n_keep = 0;
    if (config.cache_prompt) {
        while (n_keep < kv_tokens.size() && n_keep < prompt.size() && kv_tokens[n_keep] == prompt[n_keep]) ++n_keep;
        if (n_keep == prompt.size()) --n_keep;
    }
    llama_memory_t mem = llama_get_memory(ctx.get());
    if (!llama_memory_seq_rm(mem, 0, static_cast<llama_pos>(n_keep), -1)) {
        llama_memory_clear(mem, true);
        n_keep = 0;
    }
    kv_tokens.resize(n_keep);

    const auto t_prompt = Clock::now();
    evaluate_prompt(prompt, n_keep);
    llama_synchronize(ctx.get());  // a GPU decode returns before it is done
    const auto t_prompt_done = Clock::now();

    Result result;
    result.prompt_tokens = n_prompt;
    result.cached_tokens = static_cast<int>(n_keep);
    result.load_ms = load_ms_;
    result.finish_reason = FinishReason::kLength;

    TextStream stream(config.stop, on_token);
    Clock::time_point t_first = t_prompt_done;
    Clock::time_point t_last = t_prompt_done;
    bool stopped = false;
    while (result.completion_tokens < config.max_tokens) {
        llama_token token = sampler.sample(ctx.get(), -1);
        t_last = Clock::now();
        if (result.completion_tokens == 0) t_first = t_last;
        if (!config.ignore_eos && llama_vocab_is_eog(vocab, token)) {
            result.finish_reason = FinishReason::kStop;
            break;
        }
        ++result.completion_tokens;
        sampler.accept(token);
        stopped = stream.push(token_text(vocab, token, piece));
        if (stream.cancelled()) {
            result.finish_reason = FinishReason::kCancelled;
            break;
        }
        if (stopped) {
            result.finish_reason = FinishReason::kStop;
            break;
        }
        // The last token needs no decode: nothing will sample from its logits.
        if (result.completion_tokens == config.max_tokens) break;
        if (static_cast<int>(kv_tokens.size()) + 1 > n_ctx) break;  // context full: kLength
        decode_one(token);
    }
    if (!stopped) stream.finish();
    result.content = stream.content();
    if (stream.cancelled()) result.finish_reason = FinishReason::kCancelled;

    const auto t_end = Clock::now();
    const int n_evaluated = n_prompt - static_cast<int>(n_keep);
    const double prompt_ms = ms_between(t_prompt, t_prompt_done);
    result.prompt_tokens_per_second = prompt_ms > 0 ? n_evaluated * 1000.0 / prompt_ms : 0;
    const double gen_ms = ms_between(t_first, t_last);
    result.tokens_per_second = result.completion_tokens > 1 && gen_ms > 0 ? (result.completion_tokens - 1) * 1000.0 / gen_ms : 0;
    result.time_to_first_token_ms = ms_between(t_start, t_first);
    result.total_ms = ms_between(t_start, t_end);
    return result;
}

Result LocalModel::complete(const std::string & prompt, const GenerationConfig & config, const TokenCallback & on_token) {
    const auto t_start = Clock::now();
    std::lock_guard<std::mutex> lock(mutex);
    return generate(tokenize(prompt, true, true), config, on_token, t_start);
}

Result LocalModel::complete(const std::vector<Token> & prompt, const GenerationConfig & config, const TokenCallback & on_token) {
    const auto t_start = Clock::now();
    std::lock_guard<std::mutex> lock(mutex);
    return generate(prompt, config, on_token, t_start);
}

Result LocalModel::chat(const std::vector<Message> & messages, const GenerationConfig & config, const TokenCallback & on_token) {
    const auto t_start = Clock::now();
    std::vector<Token> prompt = tokenize(apply_chat_template(messages, true), true, true);
    std::lock_guard<std::mutex> lock(mutex);
    return generate(prompt, config, on_token, t_start);
}

void LocalModel::clear_cache() {
    std::lock_guard<std::mutex> lock(mutex);
    llama_memory_clear(llama_get_memory(ctx.get()), true);
    kv_tokens.clear();
}

Result Model::complete(const std::string & prompt, const GenerationConfig & config, const TokenCallback & on_token) {
    return impl_->complete(prompt, config, on_token);
}

Result Model::complete(const std::vector<Token> & prompt, const GenerationConfig & config, const TokenCallback & on_token) {
    return impl_->complete(prompt, config, on_token);
}

Result Model::chat(const std::vector<Message> & messages, const GenerationConfig & config, const TokenCallback & on_token) {
    return impl_->chat(messages, config, on_token);
}

std::string Model::apply_chat_template(const std::vector<Message> & messages, bool add_generation_prompt) const {
    return impl_->apply_chat_template(messages, add_generation_prompt);
}

std::vector<Token> Model::tokenize(std::string_view text, bool add_special, bool parse_special) const {
    return impl_->tokenize(text, add_special, parse_special);
}

std::string Model::detokenize(const std::vector<Token> & tokens, bool render_special) const {
    return impl_->detokenize(tokens, render_special);
}

void Model::clear_cache() { impl_->clear_cache(); }

const std::string & Model::path() const { return impl_->path; }
const ModelConfig & Model::config() const { return impl_->config; }
std::string Model::architecture() const { return impl_->architecture(); }
std::string Model::description() const { return impl_->description(); }
int Model::n_ctx() const { return impl_->n_ctx(); }
int Model::n_ctx_train() const { return impl_->n_ctx_train(); }
int Model::n_vocab() const { return impl_->n_vocab(); }
uint64_t Model::n_params() const { return impl_->n_params(); }
uint64_t Model::size_bytes() const { return impl_->size_bytes(); }
bool Model::has_chat_template() const { return impl_->has_chat_template(); }
double Model::load_ms() const { return impl_->load_ms(); }

}  // namespace cortex::llm
