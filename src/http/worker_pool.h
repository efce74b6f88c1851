// The HTTP server's threads. cpp-httplib's ThreadPool starts all of its threads up front and
// wakes them in turn, so over hours every thread serves a connection and keeps the stack pages
// and malloc caches it touched: the daemon grew by ~70 KB per thread as reconnecting clients
// reached one thread after another (about 6 MB for 80 threads; docs/RELIABILITY.md). Here a
// thread starts only when no idle one is left, and the most recently idle one takes the next
// task, so the threads that ever run follow the peak number of connections, not the limit.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

namespace cortex::http {

class WorkerPool {
  public:
    // At most `max_threads` threads (at least 1); none starts before the first task.
    explicit WorkerPool(size_t max_threads);
    // As shutdown().
    ~WorkerPool();
    WorkerPool(const WorkerPool &) = delete;
    WorkerPool & operator=(const WorkerPool &) = delete;

    // Runs `task` on the thread that became idle last; if none is idle, on a new thread while
    // there are fewer than max_threads, else on the first thread that frees up. Thread-safe.
    // After shutdown() the task is dropped.
    void enqueue(std::function<void()> task);
    // Lets the running and queued tasks finish, then joins every thread. Must not be called from
    // a task. A second call does nothing.
    void shutdown();
    // Threads started so far, and those of them waiting for a task.
    size_t threads() const;
    size_t idle_threads() const;

  private:
    struct Worker {
        std::condition_variable cv;
        std::function<void()> task;  // handed over by enqueue() while the worker is idle
    };
    void run(Worker & w);

    const size_t max_threads_;
    mutable std::mutex mutex_;
    std::list<Worker> workers_;                 // one per thread; a list keeps their addresses
    std::vector<Worker *> idle_;                // the most recently idle last
    std::deque<std::function<void()>> queued_;  // tasks waiting for a thread
    std::vector<std::thread> threads_;
    size_t started_ = 0;
    bool stopping_ = false;
};

}  // namespace cortex::http
