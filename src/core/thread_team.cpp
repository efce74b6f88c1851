#include "core/thread_team.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace cortex {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

constexpr uint64_t kIndexMask = 0xffff;
// How long before the announced time a helper starts to spin: a timed sleep ends up to ~50 us
// late (timer slack), and a core may take as long again to wake.
constexpr std::chrono::microseconds kLead(300);

}  // namespace

ThreadTeam::ThreadTeam(int helpers, std::chrono::microseconds spin) : spin_(spin) {
    for (int i = 0; i < helpers; ++i) threads_.emplace_back([this] { help(); });
}

ThreadTeam::~ThreadTeam() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    for (auto & t : threads_) t.join();
}

void ThreadTeam::prepare(std::chrono::microseconds in) {
    prepared_ = true;
    if (threads_.empty()) return;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ++wakeups_;
        prepared_round_ = work_.load(std::memory_order_relaxed) >> 32;
        spin_from_ = std::chrono::steady_clock::now() + std::max(std::chrono::microseconds(0), in - kLead);
    }
    wake_.notify_all();
}

bool ThreadTeam::take_one() {
    uint64_t w = work_.load(std::memory_order_acquire);
    for (;;) {
        const uint64_t n = (w >> 16) & kIndexMask, i = w & kIndexMask;
        if (i >= n) return false;
        if (work_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
            (*fn_)(static_cast<int>(i));
            done_.fetch_add(1, std::memory_order_release);
            return true;
        }
    }
}

void ThreadTeam::run(int n, const std::function<void(int)> & fn) {
    if (n <= 0) return;
    if (!prepared_) prepare();  // the helpers wake late: the caller starts alone
    prepared_ = false;
    fn_ = &fn;
    done_.store(0, std::memory_order_relaxed);
    const uint64_t round = (work_.load(std::memory_order_relaxed) >> 32) + 1;
    work_.store(round << 32 | static_cast<uint64_t>(n) << 16, std::memory_order_release);
    while (take_one()) {
    }
    while (done_.load(std::memory_order_acquire) < n) cpu_relax();
}

void ThreadTeam::help() {
    uint64_t seen = 0;
    for (;;) {
        uint64_t woken_in;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return stop_ || wakeups_ != seen; });
            seen = wakeups_;
            woken_in = prepared_round_;
            wake_.wait_until(lock, spin_from_, [&] { return stop_.load(); });
            if (stop_) return;
        }
        // Spin until the announced round is handed out (it may be already), help with it, and
        // sleep again.
        const auto deadline = std::chrono::steady_clock::now() + spin_;
        for (;;) {
            const uint64_t w = work_.load(std::memory_order_acquire);
            if ((w >> 32) != woken_in) {
                while (take_one()) {
                }
                break;
            }
            if (stop_.load(std::memory_order_relaxed) || std::chrono::steady_clock::now() > deadline) break;
            cpu_relax();
        }
    }
}

}  // namespace cortex
