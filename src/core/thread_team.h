// A calling thread and a few helpers that split a short loop between them, for work too small
// to pay a thread wake-up per item: the preload daemon's per-step sampling, while a GPU waits.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cortex {

class ThreadTeam {
  public:
    // `helpers` threads join the caller in run(). Woken by prepare(), a helper spins for up to
    // `spin` waiting for the work, so that it starts on it at once instead of after a wake-up.
    ThreadTeam(int helpers, std::chrono::microseconds spin);
    ~ThreadTeam();
    ThreadTeam(const ThreadTeam &) = delete;
    ThreadTeam & operator=(const ThreadTeam &) = delete;

    // Work follows in about `in` (e.g. when the GPU decode just submitted should end): the
    // helpers sleep until shortly before then and spin from there, not for the whole wait.
    void prepare(std::chrono::microseconds in = std::chrono::microseconds(0));
    // Runs fn(0) .. fn(n - 1), each once, on the caller and on the helpers that are awake; returns
    // when all are done. `fn` must not throw. One caller at a time.
    void run(int n, const std::function<void(int)> & fn);

  private:
    void help();
    bool take_one();

    const std::chrono::microseconds spin_;
    std::mutex mutex_;
    std::condition_variable wake_;
    uint64_t wakeups_ = 0;                             // guarded by mutex_
    uint64_t prepared_round_ = 0;                      // the round before the one prepare() announced; mutex_
    std::chrono::steady_clock::time_point spin_from_;  // mutex_
    std::atomic<bool> stop_{false};                    // set under mutex_, read by spinning helpers too
    bool prepared_ = false;                            // only the caller's thread
    // round << 32 | n << 16 | next index: a helper claims an item with one compare-and-swap, and
    // a claim of a finished round cannot succeed (the round differs).
    std::atomic<uint64_t> work_{0};
    std::atomic<int> done_{0};
    const std::function<void(int)> * fn_ = nullptr;  // written before work_ publishes a round
    std::vector<std::thread> threads_;
};

}  // namespace cortex
