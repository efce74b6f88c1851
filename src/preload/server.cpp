// The daemon's socket server. A client's trouble (bad JSON, a huge line, garbage, a stall, a
// disconnect) ends at most that client's connection; generation runs on the scheduler, and what
// it produces waits in the connection's own queue, so no client can slow another.
#include "server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>

#include "core/file_util.h"
#include "cortex/config.h"
#include "protocol.h"

namespace cortex::preload {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

bool send_all(int fd, const std::string & data) {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<size_t>(n);
    }
    return true;
}

uint64_t resident_bytes() {
    std::string statm;
    if (!read_file("/proc/self/statm", statm)) return 0;
    unsigned long size = 0, resident = 0;
    sscanf(statm.c_str(), "%lu %lu", &size, &resident);
    return static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
}

// Lines the scheduler produced for one client, waiting to be written by its thread.
struct Outbox {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<std::string> lines;
    size_t bytes = 0;
    bool finished = false;
};

constexpr size_t kMaxQueuedBytes = 16u << 20;  // a client this far behind is stuck: cancel

}  // namespace

std::string default_socket_path() { return Settings::load().preload_socket(); }

Server::Server(std::shared_ptr<Scheduler> scheduler, SchedulerFactory factory, ServerOptions options)
    : scheduler_(std::move(scheduler)), factory_(std::move(factory)), options_(std::move(options)) {
    model_name_ = options_.model_name;
    const std::string & path = options_.socket_path;
    if (path.size() >= sizeof(sockaddr_un::sun_path)) {
        throw Error(ErrorCode::kInvalidArgument, "socket path '" + path + "' is too long for a Unix socket",
                    "set CORTEX_PRELOAD_SOCKET to a shorter path");
    }
    const std::string dir = path.substr(0, path.find_last_of('/'));
    make_dirs(dir, 0700);
    chmod(dir.c_str(), 0700);

    lock_fd_ = open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0) throw Error(ErrorCode::kIo, "cannot create " + path + ".lock: " + strerror(errno), "check the directory");
    if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        close(lock_fd_);
        throw Error(ErrorCode::kBusy, "a preload daemon is already running on " + path, "see: cortex-preload status");
    }
    if (options_.inherited_fd >= 0) {
        listen_fd_ = options_.inherited_fd;  // systemd made and owns the socket file
        return;
    }
    // We hold the lock, so a socket file left there belongs to a daemon that died.
    unlink(path.c_str());

    listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    const mode_t old_mask = umask(0177);  // the socket is born 0600
    const int rc = bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
    umask(old_mask);
    if (rc != 0 || listen(listen_fd_, 128) != 0) {
        throw Error(ErrorCode::kIo, "cannot listen on " + path + ": " + strerror(errno), "check the directory and its permissions");
    }
}

Server::~Server() {
    if (listen_fd_ >= 0) close(listen_fd_);
    if (options_.inherited_fd < 0 || options_.owns_inherited_socket) unlink(options_.socket_path.c_str());
    if (lock_fd_ >= 0) close(lock_fd_);  // releases the lock
}

void Server::run() {
    while (!stopping_) {
        if (abandoning_) {  // new connections wait in the backlog for the process that follows
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            continue;
        }
        pollfd p{listen_fd_, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) {
            reap_finished();
            continue;
        }
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        if (clients_ >= options_.max_clients) {
            send_all(fd, json{{"v", kProtocolVersion}, {"error", {{"code", "busy"}, {"message", "too many clients"}, {"hint", "retry later"}}}}.dump() + "\n");
            close(fd);
            continue;
        }
        ++clients_;
        spawn([this, fd] {
            serve_client(fd);
            close(fd);
            --clients_;
        });
        reap_finished();
    }
    // In-flight requests finish (bounded), then the clients' threads end.
    close(listen_fd_);
    listen_fd_ = -1;
    if (options_.inherited_fd < 0 || options_.owns_inherited_socket) unlink(options_.socket_path.c_str());
    if (std::shared_ptr<Scheduler> last = current()) last->drain(std::chrono::seconds(10));
    std::list<Worker> threads;
    {
        std::lock_guard<std::mutex> lock(threads_mutex_);
        threads.swap(threads_);
    }
    for (auto & w : threads) w.thread.join();
}

void Server::spawn(std::function<void()> fn) {
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard<std::mutex> lock(threads_mutex_);
    threads_.push_back({std::thread([fn = std::move(fn), done] {
                            fn();
                            *done = true;
                        }),
                        done});
}

// Every connection used to leave a joinable std::thread (its stack included) in threads_ until
// shutdown, so a daemon serving many short connections grew without bound.
void Server::reap_finished() {
    std::list<Worker> finished;
    {
        std::lock_guard<std::mutex> lock(threads_mutex_);
        for (auto it = threads_.begin(); it != threads_.end();) {
            auto next = std::next(it);
            if (*it->done) finished.splice(finished.end(), threads_, it);
            it = next;
        }
    }
    for (auto & w : finished) w.thread.join();  // outside the lock: it has ended or is ending now
}

void Server::abandon_requests(const Error & error) {
    abandoning_ = true;
    if (std::shared_ptr<Scheduler> s = current()) s->abandon(std::make_exception_ptr(error));
    // The connections' threads write the error lines; the exec that follows closes them.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
}

std::string Server::current_name() const {
    std::lock_guard<std::mutex> lock(scheduler_mutex_);
    return model_name_;
}

std::shared_ptr<Scheduler> Server::current() const {
    std::lock_guard<std::mutex> lock(scheduler_mutex_);
    return scheduler_;
}

void Server::replace(std::shared_ptr<Scheduler> next, const std::string & name) {
    std::shared_ptr<Scheduler> old;
    {
        std::lock_guard<std::mutex> lock(scheduler_mutex_);
        old = scheduler_;
        scheduler_ = std::move(next);
        model_name_ = name;
    }
    if (!old) return;
    // The old model finishes what it runs (bounded), off this thread, then goes.
    spawn([old = std::move(old)]() mutable {
        old->drain(std::chrono::seconds(30));
        old.reset();
    });
}

void Server::serve_client(int fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != getuid()) {
        send_all(fd, json{{"v", kProtocolVersion},
                          {"error", {{"code", "invalid_argument"}, {"message", "this daemon serves only its own user"}, {"hint", "start your own: cortex-preload start"}}}}
                             .dump() + "\n");
        return;
    }
    std::string buffer;
    char chunk[65536];
    auto reply = [&](const json & j) { return send_all(fd, j.dump() + "\n"); };
    auto reply_error = [&](const json & id, const Error & e) {
        json j = {{"v", kProtocolVersion}, {"error", error_to_json(e)}};
        if (!id.is_null()) j["id"] = id;
        return reply(j);
    };

    while (!stopping_) {
        size_t nl = buffer.find('\n');
        if (nl == std::string::npos) {
            if (buffer.size() > options_.max_line_bytes) {
                reply_error(nullptr, Error(ErrorCode::kInvalidArgument, "request line longer than " + std::to_string(options_.max_line_bytes) + " bytes",
                                           "send one JSON object per line"));
                return;
            }
            pollfd p{fd, POLLIN, 0};
            int ready = poll(&p, 1, 200);
            if (ready == 0) continue;
            if (ready < 0 && errno == EINTR) continue;
            ssize_t n = recv(fd, chunk, sizeof chunk, 0);
            if (n <= 0) return;  // closed (or half-closed) by the client
            buffer.append(chunk, static_cast<size_t>(n));
            continue;
        }
        std::string line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;

        const json line_json = json::parse(line, nullptr, false);
        json id = line_json.is_object() && line_json.contains("id") ? line_json["id"] : json();
        try {
            const Request req = request_from_json(line_json);
            const std::string & op = req.op;
            const std::shared_ptr<Scheduler> sched = current();  // a reload never pulls it away mid-request
            json out = {{"v", kProtocolVersion}};
            if (!id.is_null()) out["id"] = id;
            const bool needs_model = op == "complete" || op == "chat" || op == "tokenize" || op == "detokenize" ||
                                     op == "apply_chat_template";
            if (needs_model && !sched) {
                throw Error(ErrorCode::kNotFound, "the preload daemon has no model loaded",
                            "load one: {\"op\":\"load\",\"model\":\"NAME\"} or cortex-preload reload --model NAME");
            }
            if (needs_model && !req.model_path.empty()) {
                // A client bound to one file (a Model attached to this daemon) must never get
                // answers from another one loaded since.
                const std::string & w = req.model_path;
                if (w != sched->path() && canonical_path(w) != canonical_path(sched->path())) {
                    throw Error(ErrorCode::kNotFound, "the preload daemon serves '" + sched->path() + "', not '" + w + "'",
                                "it was reloaded with another model; load this one in-process or reload the daemon with it");
                }
            }
            if (op == "status" && !sched) {
                out["status"] = {{"pid", getpid()}, {"socket", options_.socket_path}, {"clients", clients_.load()},
                                 {"resident_bytes", resident_bytes()}, {"models", json::array()},
                                 {"uptime_s", std::chrono::duration<double>(Clock::now() - started_).count()}};
                if (!options_.notice.empty()) out["status"]["notice"] = options_.notice;
                if (!reply(out)) return;
                continue;
            }
            if (op == "unload") {
                replace(nullptr, "");
                out["ok"] = true;
                if (!reply(out)) return;
                continue;
            }
            Scheduler * scheduler_ptr = sched.get();
            if (op == "status") {
                SchedulerStats s = scheduler_ptr->stats();
                const ModelInfo info = scheduler_ptr->info();
                out["status"] = {{"pid", getpid()},
                                 {"uptime_s", std::chrono::duration<double>(Clock::now() - started_).count()},
                                 {"socket", options_.socket_path},
                                 {"clients", clients_.load()},
                                 {"resident_bytes", resident_bytes()},
                                 {"models",
                                  {{{"name", current_name()},
                                    {"path", scheduler_ptr->path()},
                                    {"description", scheduler_ptr->description()},
                                    {"n_ctx", scheduler_ptr->config().n_ctx},
                                    {"n_gpu_layers", scheduler_ptr->config().n_gpu_layers},
                                    {"slots", s.slots},
                                    {"sampling_threads", s.sampling_threads},
                                    {"active", s.active},
                                    {"queued", s.queued},
                                    {"kv_cache_bytes", s.kv_cache_bytes},
                                    {"load_ms", scheduler_ptr->load_ms()},
                                    {"requests_served", s.requests_served},
                                    {"tokens_generated", s.tokens_generated},
                                    {"recent_tokens_per_second", s.recent_tokens_per_second},
                                    {"architecture", info.architecture},
                                    {"n_ctx_slot", info.n_ctx},
                                    {"n_ctx_train", info.n_ctx_train},
                                    {"n_vocab", info.n_vocab},
                                    {"n_params", info.n_params},
                                    {"size_bytes", info.size_bytes},
                                    {"has_chat_template", info.has_chat_template}}}}};
                if (!options_.notice.empty()) out["status"]["notice"] = options_.notice;
                if (!reply(out)) return;
            } else if (op == "tokenize") {
                out["tokens"] = scheduler_ptr->tokenize(req.text, req.add_special, req.parse_special);
                if (!reply(out)) return;
            } else if (op == "detokenize") {
                out["text"] = scheduler_ptr->detokenize(req.tokens, req.render_special);
                if (!reply(out)) return;
            } else if (op == "apply_chat_template") {
                out["text"] = scheduler_ptr->apply_chat_template(req.messages, req.add_generation_prompt);
                if (!reply(out)) return;
            } else if (op == "load" || op == "reload") {
                std::lock_guard<std::mutex> lock(reload_mutex_);
                const auto t0 = Clock::now();
                std::string served = op == "load" ? req.model : std::string();
                std::shared_ptr<Scheduler> next = factory_(served);  // throws: the old model keeps serving
                replace(next, served);
                out["ok"] = true;
                out["model"] = served;
                out["path"] = next->path();
                out["load_ms"] = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
                if (!reply(out)) return;
            } else if (op == "shutdown") {
                out["ok"] = true;
                reply(out);
                stopping_ = true;
                return;
            } else if (op == "cancel") {
                out["ok"] = true;  // nothing runs on this connection between requests
                if (!reply(out)) return;
            } else if (op == "complete" || op == "chat") {
                auto job = std::make_shared<Job>();
                job->config = req.config;
                if (op == "chat") {
                    job->prompt = scheduler_ptr->tokenize(scheduler_ptr->apply_chat_template(req.messages), true, true);
                } else if (req.prompt_tokens) {
                    job->prompt = req.tokens;
                } else {
                    job->prompt = scheduler_ptr->tokenize(req.text, true, true);
                }
                const bool stream = req.stream;
                auto outbox = std::make_shared<Outbox>();
                if (stream) {
                    json piece = {{"v", kProtocolVersion}};
                    if (!id.is_null()) piece["id"] = id;
                    job->on_text = [outbox, piece](std::string_view text) mutable {
                        piece["token"] = std::string(text);
                        std::lock_guard<std::mutex> lock(outbox->mutex);
                        outbox->lines.push_back(piece.dump() + "\n");
                        outbox->bytes += outbox->lines.back().size();
                        outbox->cv.notify_one();
                        return outbox->bytes < kMaxQueuedBytes;  // a stuck client cancels its own request
                    };
                }
                job->on_done = [outbox] {
                    std::lock_guard<std::mutex> lock(outbox->mutex);
                    outbox->finished = true;
                    outbox->cv.notify_one();
                };
                std::future<llm::Result> done = scheduler_ptr->submit(job);
                // Write what comes; watch the socket for "cancel" or a disconnect meanwhile.
                bool connected = true;
                for (;;) {
                    std::deque<std::string> lines;
                    {
                        std::unique_lock<std::mutex> lock(outbox->mutex);
                        // Woken by output or by the end of the job; the timeout only paces the
                        // check for a "cancel" or a disconnect.
                        outbox->cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return !outbox->lines.empty() || outbox->finished; });
                        lines.swap(outbox->lines);
                        outbox->bytes = 0;
                    }
                    for (const std::string & l : lines) {
                        if (connected && !send_all(fd, l)) connected = false;
                    }
                    pollfd p{fd, POLLIN, 0};
                    if (connected && poll(&p, 1, 0) > 0) {
                        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
                        if (n <= 0) {
                            connected = false;
                        } else {
                            buffer.append(chunk, static_cast<size_t>(n));
                            if (take_cancel(buffer)) job->cancel = true;
                        }
                    }
                    if (!connected) job->cancel = true;
                    if (done.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready) {
                        std::lock_guard<std::mutex> lock(outbox->mutex);
                        if (outbox->lines.empty()) break;
                    }
                }
                if (!connected) {
                    done.wait();
                    return;
                }
                llm::Result r = done.get();  // throws the job's Error
                out["done"] = true;
                out["result"] = result_to_json(r);
                if (!reply(out)) return;
                // A "cancel" that arrives after the end has nothing left to stop.
                take_cancel(buffer);
            } else {
                throw Error(ErrorCode::kInvalidArgument, op.empty() ? "the request has no \"op\"" : "unknown op '" + op + "'",
                            "ops: status, complete, chat, tokenize, detokenize, apply_chat_template, cancel, load, reload, unload, shutdown");
            }
        } catch (const Error & e) {
            if (!reply_error(id, e)) return;
        } catch (const std::exception & e) {
            if (!reply_error(id, Error(ErrorCode::kInternal, std::string("the daemon failed on this request: ") + e.what(), "please report this bug"))) return;
        }
    }
}

}  // namespace cortex::preload
