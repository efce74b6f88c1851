// Continuous batching: every step decodes one batch holding the next token of each generating
// slot and as much of the waiting prompts as fits; a new request joins at the next step.
#include "scheduler.h"

#include <algorithm>

#include "core/thread_team.h"
#include "ggml-backend.h"
#include "llm/chat_template.h"
#include "llm/model_file_watch.h"
#include "llm/model_loader.h"
#include "llm/sampler.h"
#include "llm/text_stream.h"

namespace cortex::preload {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// Whether layers go to a GPU or to RPC servers, where the CPU waits during a decode.
// (llama_supports_gpu_offload() says true for any build with RPC support, GPU or not.)
bool decodes_off_the_cpu(const llm::ModelConfig & config) {
    if (config.n_gpu_layers == 0) return false;
    if (!config.rpc_servers.empty()) return true;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        const auto type = ggml_backend_dev_type(ggml_backend_dev_get(i));
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) return true;
    }
    return false;
}

}  // namespace

struct Scheduler::Slot {
    int id = 0;
    std::vector<llama_token> kv;  // what this slot's sequence holds in the KV cache
    std::shared_ptr<Job> job;     // null when free; set and cleared by the loop under mutex_
    std::unique_ptr<llm::Sampler> sampler;
    std::unique_ptr<llm::TextStream> stream;
    size_t prompt_pos = 0;
    bool has_pending = false;  // a sampled token that the next batch evaluates
    llama_token pending = 0;
    int output = -1;           // index of this slot's logits in the current batch
    float * logits = nullptr;  // and the logits themselves, once the decode is done
    llama_token sampled = 0;
    std::exception_ptr sample_error;
    bool stopped = false;
    int n_keep = 0;
    int completion = 0;
    std::string piece;
    Clock::time_point t_prompt, t_prompt_done, t_first, t_last;
};

Scheduler::Scheduler(const std::string & path, const llm::ModelConfig & config, int n_slots, int sampling_threads)
    : path_(path), config_(config) {
    if (n_slots < 1 || n_slots > 64) {
        throw Error(ErrorCode::kInvalidArgument, "parallel must be between 1 and 64, got " + std::to_string(n_slots), "e.g. --parallel 4");
    }
    if (sampling_threads < -1 || sampling_threads > 16) {
        throw Error(ErrorCode::kInvalidArgument, "sampling threads must be between 0 and 16, got " + std::to_string(sampling_threads),
                    "e.g. --sampling-threads 3, or leave it out for the default");
    }
    const auto t0 = Clock::now();
    if (config.use_mmap) file_watch_ = std::make_unique<llm::ModelFileWatch>(path);
    model_ = llm::load_llama_model(path, config);
    ctx_ = llm::create_context(model_.get(), config, n_slots, config.n_ctx * n_slots, path);
    // libllama rounds each sequence up (to 256 cells), as it does Model's one context: the same
    // prompts fit here as in-process.
    n_ctx_slot_ = static_cast<int>(llama_n_ctx_seq(ctx_.get()));
    vocab_ = llama_model_get_vocab(model_.get());
    eog_ = llm::eog_tokens(vocab_);
    chat_template_ = std::make_unique<llm::ChatTemplate>(model_.get());
    for (int i = 0; i < n_slots; ++i) {
        slots_.push_back(std::make_unique<Slot>());
        slots_.back()->id = i;
    }
    // While a GPU decodes, the CPU only waits; then every slot's logits are read, a vocabulary of
    // floats each (600 kB for 152k tokens), before the next batch can go. One thread took 0.15 ms
    // of each 5.4 ms step at 4 slots (7b-shaped, H200), four take 0.06 ms. On the CPU, ggml's
    // threads own the cores and a step is far longer: no helpers unless asked for.
    const int helpers = std::min(n_slots - 1, sampling_threads >= 0 ? sampling_threads : decodes_off_the_cpu(config) ? 3 : 0);
    if (helpers > 0) team_ = std::make_unique<ThreadTeam>(helpers, std::chrono::milliseconds(10));
    sampling_threads_ = std::max(helpers, 0);
    load_ms_ = ms_between(t0, Clock::now());
    thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { drain(std::chrono::milliseconds(0)); }

std::string Scheduler::description() const { return llm::model_description(model_.get()); }

ModelInfo Scheduler::info() const {
    ModelInfo i;
    i.architecture = llm::model_architecture(model_.get());
    i.description = description();
    i.n_ctx = n_ctx_slot_;
    i.n_ctx_train = llama_model_n_ctx_train(model_.get());
    i.n_vocab = llama_vocab_n_tokens(vocab_);
    i.n_params = llama_model_n_params(model_.get());
    i.size_bytes = llama_model_size(model_.get());
    i.has_chat_template = chat_template_->from_model();
    return i;
}

std::string Scheduler::detokenize(const std::vector<llm::Token> & tokens, bool render_special) const {
    return llm::detokenize_tokens(vocab_, tokens, render_special);
}

std::vector<llm::Token> Scheduler::tokenize(const std::string & text, bool add_special, bool parse_special) const {
    return llm::tokenize_text(vocab_, text, add_special, parse_special);
}

std::string Scheduler::apply_chat_template(const std::vector<llm::Message> & messages, bool add_generation_prompt) const {
    return chat_template_->apply(messages, add_generation_prompt);
}

std::future<llm::Result> Scheduler::submit(const std::shared_ptr<Job> & job) {
    std::future<llm::Result> f = job->done.get_future();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (broken_) {
            job->done.set_exception(broken_);
            if (job->on_done) job->on_done();
            return f;
        }
        if (!accepting_) {
            job->done.set_exception(std::make_exception_ptr(
                Error(ErrorCode::kBusy, "the preload daemon is shutting down", "retry in a moment, or run without the daemon")));
            if (job->on_done) job->on_done();
            return f;
        }
        queue_.push_back(job);
    }
    cv_.notify_all();
    return f;
}

SchedulerStats Scheduler::stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    SchedulerStats s;
    s.slots = static_cast<int>(slots_.size());
    s.sampling_threads = sampling_threads_;
    for (const auto & slot : slots_) s.active += slot->job ? 1 : 0;
    s.queued = static_cast<int>(queue_.size());
    s.requests_served = served_;
    s.tokens_generated = generated_;
    s.recent_tokens_per_second = recent_tps_;
    s.kv_cells_used = kv_cells_used_;
    const uint64_t head_dim = llama_model_n_embd(model_.get()) / std::max(1, llama_model_n_head(model_.get()));
    s.kv_cache_bytes = static_cast<uint64_t>(llama_n_ctx(ctx_.get())) * llama_model_n_layer(model_.get()) * 2 * head_dim *
                       llama_model_n_head_kv(model_.get()) * 2;  // K and V, f16
    return s;
}

void Scheduler::abandon(const std::exception_ptr & error) {
    std::vector<std::shared_ptr<Job>> jobs;
    for (const auto & slot : slots_) {
        if (slot->job) jobs.push_back(slot->job);
    }
    {
        // The aborting thread may be the one holding it; the queue is then left to the exec.
        std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
        if (lock.owns_lock()) jobs.insert(jobs.end(), queue_.begin(), queue_.end());
    }
    for (const auto & job : jobs) {
        try {
            job->done.set_exception(error);
        } catch (const std::future_error &) {
            continue;  // answered already
        }
        if (job->on_done) job->on_done();
    }
}

void Scheduler::drain(std::chrono::milliseconds grace) {
    {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!thread_.joinable()) return;
        accepting_ = false;
        auto idle = [this] {
            if (!queue_.empty()) return false;
            for (const auto & slot : slots_) {
                if (slot->job) return false;
            }
            return true;
        };
        cv_.wait_for(lock, grace, idle);
        for (const auto & job : queue_) job->cancel = true;
        for (const auto & slot : slots_) {
            if (slot->job) slot->job->cancel = true;
        }
        stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

bool Scheduler::assign(const std::shared_ptr<Job> & job) {
    Slot * best = nullptr;
    size_t best_keep = 0;
    for (const auto & slot : slots_) {
        if (slot->job) continue;
        size_t keep = 0;
        if (job->config.cache_prompt) {
            while (keep < slot->kv.size() && keep < job->prompt.size() && slot->kv[keep] == job->prompt[keep]) ++keep;
        }
        if (!best || keep > best_keep) best = slot.get(), best_keep = keep;
    }
    if (!best) return false;
    Slot & s = *best;
    try {
        // Checked in Model's order, so that a request with several faults fails with the same
        // error in-process and here.
        s.sampler = std::make_unique<llm::Sampler>(model_.get(), job->config, eog_);
        const int n_prompt = static_cast<int>(job->prompt.size());
        if (n_prompt == 0) throw Error(ErrorCode::kInvalidArgument, "the prompt is empty", "pass some text to complete");
        if (n_prompt >= n_ctx_slot_) {
            throw Error(ErrorCode::kPromptTooLong,
                        "the prompt has " + std::to_string(n_prompt) + " tokens but a slot holds " + std::to_string(n_ctx_slot_),
                        "shorten the prompt or start the daemon with a larger n_ctx (LLAMACPP_N_CTX)");
        }
        const int n_vocab = llama_vocab_n_tokens(vocab_);
        for (llama_token t : job->prompt) {
            if (t < 0 || t >= n_vocab) {
                throw Error(ErrorCode::kInvalidArgument, "prompt token " + std::to_string(t) + " is not in the vocabulary",
                            "tokens must come from this model's tokenizer");
            }
        }
    } catch (...) {
        s.sampler.reset();
        job->done.set_exception(std::current_exception());
        if (job->on_done) job->on_done();
        return true;
    }
    if (best_keep == job->prompt.size()) --best_keep;  // logits need one evaluated token
    llama_memory_t mem = llama_get_memory(ctx_.get());
    if (!llama_memory_seq_rm(mem, s.id, static_cast<llama_pos>(best_keep), -1)) {
        llama_memory_seq_rm(mem, s.id, -1, -1);
        best_keep = 0;
    }
    s.kv.resize(best_keep);
    {
        std::lock_guard<std::mutex> lock(mutex_);  // stats() and drain() read it from other threads
        s.job = job;
    }
    s.stream = std::make_unique<llm::TextStream>(job->config.stop, job->on_text);
    s.prompt_pos = best_keep;
    s.n_keep = static_cast<int>(best_keep);
    s.has_pending = false;
    s.stopped = false;
    s.completion = 0;
    s.t_prompt = Clock::now();
    return true;
}

void Scheduler::finish(Slot & s, llm::FinishReason reason) {
    if (!s.stopped) s.stream->finish();
    const auto t_end = Clock::now();
    llm::Result r;
    r.content = s.stream->content();
    r.finish_reason = s.stream->cancelled() ? llm::FinishReason::kCancelled : reason;
    r.prompt_tokens = static_cast<int>(s.job->prompt.size());
    r.cached_tokens = s.n_keep;
    r.completion_tokens = s.completion;
    r.load_ms = load_ms_;
    const double prompt_ms = ms_between(s.t_prompt, s.t_prompt_done);
    r.prompt_tokens_per_second = prompt_ms > 0 ? (r.prompt_tokens - r.cached_tokens) * 1000.0 / prompt_ms : 0;
    const double gen_ms = ms_between(s.t_first, s.t_last);
    r.tokens_per_second = s.completion > 1 && gen_ms > 0 ? (s.completion - 1) * 1000.0 / gen_ms : 0;
    r.time_to_first_token_ms = s.completion > 0 ? ms_between(s.job->t_start, s.t_first) : 0;
    r.total_ms = ms_between(s.job->t_start, t_end);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ++served_;
        generated_ += static_cast<uint64_t>(s.completion);
        if (r.tokens_per_second > 0) recent_tps_ = recent_tps_ == 0 ? r.tokens_per_second : 0.8 * recent_tps_ + 0.2 * r.tokens_per_second;
    }
    s.job->done.set_value(std::move(r));
    if (s.job->on_done) s.job->on_done();
    release(s);
}

void Scheduler::release(Slot & s) {
    std::shared_ptr<Job> job;  // the Job itself may go only after the lock is released
    {
        std::lock_guard<std::mutex> lock(mutex_);
        job.swap(s.job);
    }
    s.sampler.reset();
    s.stream.reset();
    cv_.notify_all();
}

// A file truncated under the mapping would kill the daemon with SIGBUS at the next read of a
// lost page, and one rewritten in place would answer from weights nobody loaded: every request,
// running and to come, gets the clear error until a reload.
bool Scheduler::model_file_intact() {
    if (!file_watch_) return true;
    try {
        file_watch_->check();
        return true;
    } catch (const Error &) {
        const std::exception_ptr error = std::current_exception();
        for (auto & slot : slots_) {
            if (slot->job) fail(*slot, error);
        }
        std::lock_guard<std::mutex> lock(mutex_);
        broken_ = error;
        for (auto & job : queue_) {
            job->done.set_exception(error);
            if (job->on_done) job->on_done();
        }
        queue_.clear();
        return false;
    }
}

void Scheduler::fail(Slot & s, const std::exception_ptr & error) {
    // What the failed decode left in this sequence is unknown: forget it.
    llama_memory_seq_rm(llama_get_memory(ctx_.get()), s.id, -1, -1);
    s.kv.clear();
    s.job->done.set_exception(error);
    if (s.job->on_done) s.job->on_done();
    release(s);
}

void Scheduler::sample_outputs() {
    outputs_.clear();
    for (auto & slot : slots_) {
        if (!slot->job || slot->output < 0) continue;
        slot->logits = llama_get_logits_ith(ctx_.get(), slot->output);  // the first waits for the decode
        outputs_.push_back(slot.get());
    }
    auto pick = [this](int k) {
        Slot & s = *outputs_[k];
        s.sample_error = nullptr;
        try {
            if (!s.logits) throw Error(ErrorCode::kInternal, "no logits for the last token", "please report this bug");
            s.sampled = s.sampler->sample(s.logits);
        } catch (...) {
            s.sample_error = std::current_exception();
        }
    };
    const int n = static_cast<int>(outputs_.size());
    if (team_ && n > 1) {
        // What the helpers are told to expect next time: a decode step takes about as long as
        // the last few did.
        const double waited = std::chrono::duration<double, std::micro>(Clock::now() - t_submitted_).count();
        decode_wait_us_ = decode_wait_us_ == 0 ? waited : 0.8 * decode_wait_us_ + 0.2 * waited;
        team_->run(n, pick);
    } else {
        for (int k = 0; k < n; ++k) pick(k);
    }
}

void Scheduler::loop() {
    const int n_batch = config_.n_batch;
    llama_batch batch = llama_batch_init(n_batch, 0, 1);
    struct BatchFree {
        llama_batch & b;
        ~BatchFree() { llama_batch_free(b); }
    } batch_free{batch};

    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mutex_);
            auto any_active = [this] {
                for (const auto & slot : slots_) {
                    if (slot->job) return true;
                }
                return false;
            };
            cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || any_active(); });
            if (stopping_) {
                lock.unlock();
                for (auto & slot : slots_) {
                    if (slot->job) finish(*slot, llm::FinishReason::kCancelled);
                }
                lock.lock();
                for (auto & job : queue_) {
                    job->done.set_exception(std::make_exception_ptr(Error(ErrorCode::kCancelled, "the preload daemon stopped", "retry")));
                    if (job->on_done) job->on_done();
                }
                queue_.clear();
                return;
            }
            while (!queue_.empty()) {
                std::shared_ptr<Job> job = queue_.front();
                lock.unlock();
                const bool placed = assign(job);
                lock.lock();
                if (!placed) break;
                queue_.pop_front();
            }
        }

        for (auto & slot : slots_) {
            if (slot->job && slot->job->cancel) finish(*slot, llm::FinishReason::kCancelled);
        }

        // One batch: each generating slot's next token, then waiting prompts while room lasts.
        batch.n_tokens = 0;
        int n_outputs = 0;
        auto add = [&](Slot & s, llama_token token, bool logits) {
            const int i = batch.n_tokens++;
            batch.token[i] = token;
            batch.pos[i] = static_cast<llama_pos>(s.kv.size());
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = s.id;
            batch.logits[i] = logits;
            s.kv.push_back(token);
            if (logits) s.output = i, ++n_outputs;
        };
        for (auto & slot : slots_) {
            slot->output = -1;
            if (slot->job && slot->has_pending && batch.n_tokens < n_batch) {
                add(*slot, slot->pending, true);
                slot->has_pending = false;
            }
        }
        bool prompt_finished = false;
        for (auto & slot : slots_) {
            Slot & s = *slot;
            if (!s.job || s.prompt_pos >= s.job->prompt.size()) continue;
            while (s.prompt_pos < s.job->prompt.size() && batch.n_tokens < n_batch) {
                const bool last = s.prompt_pos + 1 == s.job->prompt.size();
                add(s, s.job->prompt[s.prompt_pos++], last);
                prompt_finished |= last;
            }
        }
        if (batch.n_tokens == 0) continue;
        if (!model_file_intact()) continue;

        const int rc = llama_decode(ctx_.get(), batch);
        if (rc != 0) {
            auto error = std::make_exception_ptr(Error(ErrorCode::kDecodeFailed, "llama_decode failed with code " + std::to_string(rc),
                                                       "the KV cache may be full: lower n_ctx or max_tokens, or use fewer slots"));
            for (auto & slot : slots_) {
                if (slot->job && (slot->output >= 0 || slot->prompt_pos > 0)) fail(*slot, error);
            }
            continue;
        }
        // The decode runs on the GPU meanwhile; one output needs no help.
        if (team_ && n_outputs > 1) {
            t_submitted_ = Clock::now();
            team_->prepare(std::chrono::microseconds(static_cast<int64_t>(decode_wait_us_)));
        }
        if (prompt_finished) llama_synchronize(ctx_.get());  // a GPU decode returns before it is done
        uint64_t cells = 0;
        for (const auto & slot : slots_) cells += slot->kv.size();
        kv_cells_used_ = cells;
        const auto now = Clock::now();
        sample_outputs();

        for (Slot * sp : outputs_) {
            Slot & s = *sp;
            if (s.completion == 0) s.t_prompt_done = now;
            if (s.sample_error) {
                fail(s, s.sample_error);
                continue;
            }
            const llama_token token = s.sampled;
            s.t_last = Clock::now();
            if (s.completion == 0) s.t_first = s.t_last;
            const llm::GenerationConfig & cfg = s.job->config;
            if (!cfg.ignore_eos && llama_vocab_is_eog(vocab_, token)) {
                finish(s, llm::FinishReason::kStop);
                continue;
            }
            ++s.completion;
            s.sampler->accept(token);
            s.stopped = s.stream->push(llm::token_text(vocab_, token, s.piece));
            if (s.stream->cancelled()) {
                finish(s, llm::FinishReason::kCancelled);
            } else if (s.stopped) {
                finish(s, llm::FinishReason::kStop);
            } else if (s.completion == cfg.max_tokens || static_cast<int>(s.kv.size()) + 1 > n_ctx_slot_) {
                finish(s, llm::FinishReason::kLength);
            } else {
                s.pending = token;
                s.has_pending = true;
            }
        }
    }
}

}  // namespace cortex::preload
