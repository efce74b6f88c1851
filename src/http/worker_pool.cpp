// Threads on demand, the most recently idle one first (worker_pool.h says why).
#include "http/worker_pool.h"

#include <algorithm>
#include <system_error>

namespace cortex::http {

WorkerPool::WorkerPool(size_t max_threads) : max_threads_(std::max<size_t>(1, max_threads)) {}

WorkerPool::~WorkerPool() {
    shutdown();
}

void WorkerPool::enqueue(std::function<void()> task) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    if (!idle_.empty()) {
        // The thread idle for the shortest time: its stack and caches are the warm ones.
        Worker * w = idle_.back();
        idle_.pop_back();
        w->task = std::move(task);
        w->cv.notify_one();
        return;
    }
    if (threads_.size() < max_threads_) {
        Worker & w = workers_.emplace_back();
        w.task = std::move(task);
        try {
            threads_.emplace_back([this, &w] { run(w); });
            ++started_;
            return;
        } catch (const std::system_error &) {
            // No thread to be had (a process or memory limit): the task waits for a busy one
            // instead of taking the accept loop down.
            task = std::move(w.task);
            workers_.pop_back();
        }
    }
    queued_.push_back(std::move(task));
}

void WorkerPool::run(Worker & w) {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        if (!w.task) {
            if (!queued_.empty()) {
                w.task = std::move(queued_.front());
                queued_.pop_front();
            } else if (stopping_) {
                return;
            } else {
                idle_.push_back(&w);
                w.cv.wait(lock, [&] { return static_cast<bool>(w.task) || stopping_; });
                if (!w.task) return;  // stopping; shutdown() has emptied idle_
                continue;
            }
        }
        std::function<void()> task = std::move(w.task);
        w.task = nullptr;
        lock.unlock();
        task();
        task = nullptr;  // the task's captures (a connection) go before the lock is taken again
        lock.lock();
    }
}

void WorkerPool::shutdown() {
    std::vector<std::thread> threads;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
        idle_.clear();
        for (Worker & w : workers_) w.cv.notify_all();
        threads.swap(threads_);
    }
    for (std::thread & t : threads) t.join();
}

size_t WorkerPool::threads() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return started_;
}

size_t WorkerPool::idle_threads() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return idle_.size();
}

}  // namespace cortex::http
