// The preload daemon's engine: one llama_context with one sequence per slot, decoded together
// in shared batches (continuous batching), each slot keeping its KV cache as a prompt cache.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cortex/llm.h"
#include "cortex/preload.h"
#include "llama-cpp.h"

namespace cortex {
class ThreadTeam;
}

namespace cortex::llm {
class ChatTemplate;
class ModelFileWatch;
}

namespace cortex::preload {

// One generation request. `on_text` runs on the scheduler thread and must not block: it gets
// pieces as Model::complete's callback does; returning false cancels.
struct Job {
    std::vector<llm::Token> prompt;
    llm::GenerationConfig config;
    llm::TokenCallback on_text;
    std::atomic<bool> cancel{false};
    std::promise<llm::Result> done;
    // Runs on the scheduler thread right after `done` is set (e.g. to wake the connection).
    std::function<void()> on_done;
    std::chrono::steady_clock::time_point t_start = std::chrono::steady_clock::now();
};

struct SchedulerStats {
    int slots = 0;
    int sampling_threads = 0;  // helpers that pick tokens alongside the scheduler thread
    int active = 0;
    int queued = 0;
    uint64_t requests_served = 0;
    uint64_t tokens_generated = 0;
    double recent_tokens_per_second = 0;  // aggregate, over the last completed requests
    uint64_t kv_cache_bytes = 0;
    uint64_t kv_cells_used = 0;  // cells holding tokens, the slots' prompt caches included
};

class Scheduler {
  public:
    // Loads `path` with `config` (n_ctx per slot) for `n_slots` parallel requests, with
    // `sampling_threads` helpers picking tokens (-1: 3 when a GPU decodes, none on the CPU).
    // Throws Error.
    Scheduler(const std::string & path, const llm::ModelConfig & config, int n_slots, int sampling_threads = -1);
    ~Scheduler();
    Scheduler(const Scheduler &) = delete;
    Scheduler & operator=(const Scheduler &) = delete;

    // Queues a job; its future gets the Result, or the Error that ended it.
    std::future<llm::Result> submit(const std::shared_ptr<Job> & job);

    std::vector<llm::Token> tokenize(const std::string & text, bool add_special, bool parse_special) const;
    std::string apply_chat_template(const std::vector<llm::Message> & messages, bool add_generation_prompt = true) const;
    // Throws Error(kInvalidArgument) for a token outside the vocabulary.
    std::string detokenize(const std::vector<llm::Token> & tokens, bool render_special) const;
    // What Model's getters say about the model; n_ctx is the cells of one slot.
    ModelInfo info() const;

    // For a process about to replace itself from inside a decode that cannot return (a lost RPC
    // server): gives every running and queued job `error`, so that its client gets an answer.
    // Touches nothing else; the scheduler must not be used afterwards.
    void abandon(const std::exception_ptr & error);

    // Stops taking jobs, lets the running ones finish for up to `grace`, then cancels the rest.
    void drain(std::chrono::milliseconds grace);

    SchedulerStats stats() const;
    const std::string & path() const { return path_; }
    const llm::ModelConfig & config() const { return config_; }
    int n_slots() const { return static_cast<int>(slots_.size()); }
    std::string description() const;
    double load_ms() const { return load_ms_; }

  private:
    struct Slot;
    void loop();
    // Picks the next token of every slot with an output in the last batch.
    void sample_outputs();
    bool assign(const std::shared_ptr<Job> & job);
    // Empties a slot after its job was answered. A slot's `job` is written only by the loop
    // thread, and under mutex_, because stats() and drain() read it from other threads.
    void release(Slot & s);
    void finish(Slot & slot, llm::FinishReason reason);
    void fail(Slot & slot, const std::exception_ptr & error);
    bool model_file_intact();

    std::string path_;
    llm::ModelConfig config_;
    llama_model_ptr model_;
    llama_context_ptr ctx_;
    const llama_vocab * vocab_ = nullptr;
    std::unique_ptr<llm::ChatTemplate> chat_template_;
    std::unique_ptr<llm::ModelFileWatch> file_watch_;  // only while the weights are mapped
    std::exception_ptr broken_;  // set once the model file changed under the mapping; guarded by mutex_
    std::vector<llama_token> eog_;
    double load_ms_ = 0;
    int n_ctx_slot_ = 0;

    std::vector<std::unique_ptr<Slot>> slots_;
    std::vector<Slot *> outputs_;       // the loop's: slots with logits in the last batch
    std::unique_ptr<ThreadTeam> team_;  // helps sampling when a GPU decodes (null on the CPU)
    int sampling_threads_ = 0;          // team_'s helpers
    double decode_wait_us_ = 0;         // recent time from a decode's submission to its logits
    std::chrono::steady_clock::time_point t_submitted_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Job>> queue_;
    bool stopping_ = false;
    bool accepting_ = true;
    uint64_t served_ = 0, generated_ = 0;
    double recent_tps_ = 0;
    std::atomic<uint64_t> kv_cells_used_{0};  // written by the loop, which owns the slots' kv
    std::thread thread_;
};

}  // namespace cortex::preload
