// The preload daemon's socket side: a Unix socket (0600, in a 0700 directory) that only this
// user may use, one thread per client, newline-delimited JSON (docs/PROTOCOL.md).
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "scheduler.h"

namespace cortex::preload {

struct ServerOptions {
    std::string socket_path;
    size_t max_line_bytes = 4u << 20;  // a longer request line is refused
    int max_clients = 128;             // more connections at once are refused
    std::string model_name;            // what the model was asked for by (status)
    int inherited_fd = -1;             // a listening socket passed by systemd (socket activation)
    bool owns_inherited_socket = false;  // it was ours before an exec: remove its file at stop
    std::string notice;                // shown by status: why this daemon runs degraded
};

// Loads the model named (empty = the settings' model, read again) into a new scheduler and
// sets `model_name` to the name it loaded.
using SchedulerFactory = std::function<std::shared_ptr<Scheduler>(std::string & model_name)>;

class Server {
  public:
    // Takes the socket: creates its directory, refuses when another daemon holds the lock,
    // replaces a stale socket of a dead one. Throws Error (kBusy, kIo). `factory` serves the
    // "load" and "reload" requests.
    Server(std::shared_ptr<Scheduler> scheduler, SchedulerFactory factory, ServerOptions options);
    ~Server();
    Server(const Server &) = delete;
    Server & operator=(const Server &) = delete;

    // Serves until stop() or a "shutdown" request; then drains the scheduler.
    void run();
    void stop() { stopping_ = true; }

    // The model served now (null after "unload") and the name it was asked for by; the HTTP
    // API (src/http) serves from the same scheduler. Thread-safe.
    std::shared_ptr<Scheduler> current() const;
    std::string current_name() const;

    // Answers every request in flight with `error` and gives their connections a moment to send
    // it, before the process replaces itself (see Scheduler::abandon).
    void abandon_requests(const Error & error);
    int listen_fd() const { return listen_fd_; }

  private:
    // A thread that says when it has ended, so that the accept loop can join it early.
    struct Worker {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;
    };
    void spawn(std::function<void()> fn);
    void reap_finished();

    void serve_client(int fd);
    // Swaps in a newly loaded model; requests in flight finish on the old one.
    void replace(std::shared_ptr<Scheduler> next, const std::string & name);

    mutable std::mutex scheduler_mutex_;
    std::shared_ptr<Scheduler> scheduler_;
    std::string model_name_;  // what the current model was asked for by
    SchedulerFactory factory_;
    std::mutex reload_mutex_;  // one load at a time
    ServerOptions options_;
    int listen_fd_ = -1;
    int lock_fd_ = -1;
    std::atomic<bool> stopping_{false};
    std::atomic<bool> abandoning_{false};  // the process is about to replace itself: accept nothing
    std::atomic<int> clients_{0};
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    std::mutex threads_mutex_;
    std::list<Worker> threads_;  // finished ones are joined by the accept loop
};

// $XDG_RUNTIME_DIR/cortex/preload.sock or $CORTEX_HOME/run/preload.sock, unless the settings
// (CORTEX_PRELOAD_SOCKET) say otherwise.
std::string default_socket_path();

}  // namespace cortex::preload
