// Shared pieces of the HTTP routes: errors, body checks, model names, the job bridge.
#include "http/api_common.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cmath>
#include <cstdlib>
#include <ctime>
#include <random>

namespace cortex::http {

int status_for(const Error & e) {
    if (auto * api = dynamic_cast<const ApiError *>(&e)) return api->status();
    switch (e.code()) {
        case ErrorCode::kInvalidArgument:
        case ErrorCode::kPromptTooLong:
        case ErrorCode::kInvalidGrammar:
        case ErrorCode::kInvalidSchema:
        case ErrorCode::kTemplateFailed:
            return 400;
        case ErrorCode::kNotFound:
            return 404;
        case ErrorCode::kBusy:
        case ErrorCode::kCancelled:
            return 503;
        case ErrorCode::kNetwork:
        case ErrorCode::kChecksumMismatch:
            return 502;
        default:
            return 500;
    }
}

json parse_body(const httplib::Request & req, bool openai) {
    if (req.body.empty()) {
        throw ApiError(
            400, ErrorCode::kInvalidArgument,
            openai ? "We could not parse the JSON body of your request: the body is empty. The OpenAI API expects a "
                     "JSON payload."
                   : "missing request body");
    }
    json j = json::parse(req.body, nullptr, false);
    if (j.is_discarded()) {
        throw ApiError(
            400, ErrorCode::kInvalidArgument,
            openai ? "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
                     "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid "
                     "JSON.)"
                   : "invalid JSON in the request body");
    }
    if (!j.is_object()) {
        throw ApiError(400, ErrorCode::kInvalidArgument,
                       openai ? "We could not parse the JSON body of your request: it must be a JSON object."
                              : "the request body must be a JSON object");
    }
    return j;
}

std::shared_ptr<preload::Scheduler> require_scheduler(Context & ctx) {
    std::shared_ptr<preload::Scheduler> s = ctx.backend.scheduler();
    if (!s) {
        throw ApiError(503, ErrorCode::kNotFound,
                       "the Cortex daemon has no model loaded (load one: cortex-preload reload --model NAME)");
    }
    return s;
}

namespace {

std::string base_name(const std::string & name) {
    std::string n = name;
    const size_t slash = n.find_last_of('/');
    if (slash != std::string::npos) n = n.substr(slash + 1);
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".gguf") == 0) n.resize(n.size() - 5);
    return n;
}

std::string without_latest(const std::string & name) {
    const std::string tag = ":latest";
    if (name.size() > tag.size() && name.compare(name.size() - tag.size(), tag.size(), tag) == 0) {
        return name.substr(0, name.size() - tag.size());
    }
    return name;
}

}  // namespace

std::string public_model_name(Context & ctx, bool tagged) {
    std::string name = base_name(ctx.backend.model_name());
    if (name.empty()) {
        if (auto s = ctx.backend.scheduler()) name = base_name(s->path());
    }
    if (tagged && name.find(':') == std::string::npos) name += ":latest";
    return name;
}

bool is_served_model(Context & ctx, const std::string & requested) {
    if (requested.empty()) return false;
    const std::string want = without_latest(requested);
    const std::string served = ctx.backend.model_name();
    if (want == without_latest(served) || want == base_name(served) ||
        want == without_latest(public_model_name(ctx, false))) {
        return true;
    }
    auto s = ctx.backend.scheduler();
    return s && (requested == s->path() || want == base_name(s->path()));
}

namespace {

std::string type_name(const json & v) {
    if (v.is_string()) return "a string";
    if (v.is_boolean()) return "a boolean";
    if (v.is_number()) return "a number";
    if (v.is_array()) return "an array";
    if (v.is_object()) return "an object";
    return "null";
}

[[noreturn]] void wrong_type(const std::string & where, const char * name, const char * want, const json & got) {
    const std::string field = where.empty() ? std::string(name) : where + "." + name;
    throw ApiError(400, ErrorCode::kInvalidArgument,
                   "Invalid type for '" + field + "': expected " + want + ", but got " + type_name(got) + " instead.",
                   field, "invalid_type");
}

}  // namespace

bool get_number(const json & j, const char * name, double & out, const std::string & where) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) return false;
    if (!it->is_number()) wrong_type(where, name, "a number", *it);
    out = it->get<double>();
    return true;
}

bool get_int(const json & j, const char * name, long long & out, const std::string & where) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) return false;
    // 2.0 is a whole number to JavaScript clients, which do not tell the two apart. Only a double
    // inside long long's range may be cast (1e300 would be undefined behaviour, not an error).
    if (it->is_number_float()) {
        const double d = it->get<double>();
        if (d >= -0x1p63 && d < 0x1p63 && d == std::trunc(d)) {
            out = static_cast<long long>(d);
            return true;
        }
    }
    if (!it->is_number_integer()) wrong_type(where, name, "an integer", *it);
    out = it->get<long long>();
    return true;
}

bool get_string(const json & j, const char * name, std::string & out, const std::string & where) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) return false;
    if (!it->is_string()) wrong_type(where, name, "a string", *it);
    out = it->get<std::string>();
    return true;
}

bool get_bool(const json & j, const char * name, bool & out, const std::string & where) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) return false;
    if (!it->is_boolean()) wrong_type(where, name, "a boolean", *it);
    out = it->get<bool>();
    return true;
}

void get_stop(const json & j, std::vector<std::string> & out, const std::string & where) {
    auto it = j.find("stop");
    if (it == j.end() || it->is_null()) return;
    if (it->is_string()) {
        if (!it->get<std::string>().empty()) out.push_back(it->get<std::string>());
        return;
    }
    if (!it->is_array()) wrong_type(where, "stop", "a string or an array of strings", *it);
    for (const auto & s : *it) {
        if (!s.is_string()) wrong_type(where, "stop", "a string or an array of strings", s);
        if (!s.get<std::string>().empty()) out.push_back(s.get<std::string>());
    }
}

std::string rfc3339_now() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%06lldZ", static_cast<long long>(us));
    return buf;
}

int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string random_hex(size_t n) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    static const char * digits = "0123456789abcdef";
    std::string s(n, '0');
    for (char & c : s) c = digits[rng() & 15];
    return s;
}

int slot_tokens(preload::Scheduler & scheduler) {
    return scheduler.info().n_ctx;
}

// A client far behind (16 MiB of text not taken) is stuck: its request is cancelled, as on the
// socket.
constexpr size_t kMaxPendingBytes = 16u << 20;

Generation::Generation(preload::Scheduler & scheduler, std::vector<llm::Token> prompt,
                       const llm::GenerationConfig & config, bool stream)
    : job_(std::make_shared<preload::Job>()), shared_(std::make_shared<Shared>()) {
    job_->prompt = std::move(prompt);
    job_->config = config;
    if (stream) {
        job_->on_text = [shared = shared_](std::string_view text) {
            std::lock_guard<std::mutex> lock(shared->mutex);
            shared->pending.append(text);
            shared->cv.notify_one();
            return shared->pending.size() < kMaxPendingBytes;
        };
    }
    job_->on_done = [shared = shared_] {
        std::lock_guard<std::mutex> lock(shared->mutex);
        shared->finished = true;
        shared->cv.notify_one();
    };
    future_ = scheduler.submit(job_);
}

Generation::~Generation() {
    job_->cancel = true;
}

bool Generation::take(std::string & out, std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(shared_->mutex);
    shared_->cv.wait_for(lock, wait, [&] { return !shared_->pending.empty() || shared_->finished; });
    out.swap(shared_->pending);
    shared_->pending.clear();
    return shared_->finished && out.empty();
}

void Generation::wait_started() {
    std::unique_lock<std::mutex> lock(shared_->mutex);
    shared_->cv.wait(lock, [&] { return !shared_->pending.empty() || shared_->finished; });
}

bool Generation::wait_for(std::chrono::milliseconds wait) {
    return have_result_ || future_.wait_for(wait) == std::future_status::ready;
}

// The connected socket whose peer is the request's client: found among this process's open
// descriptors by the peer's address and port, which are unique while the connection lasts.
static int connection_socket(const httplib::Request & req) {
    DIR * dir = opendir("/proc/self/fd");
    if (!dir) return -1;
    int found = -1;
    while (dirent * e = readdir(dir)) {
        const int fd = std::atoi(e->d_name);
        if (fd <= 2) continue;
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        if (getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &len) != 0) continue;
        char host[INET6_ADDRSTRLEN] = {};
        int port = -1;
        if (peer.ss_family == AF_INET) {
            const auto * a = reinterpret_cast<const sockaddr_in *>(&peer);
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        } else if (peer.ss_family == AF_INET6) {
            const auto * a = reinterpret_cast<const sockaddr_in6 *>(&peer);
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        }
        if (port == req.remote_port && req.remote_addr == host) {
            found = fd;
            break;
        }
    }
    closedir(dir);
    return found;
}

llm::Result result_unless_disconnected(Generation & gen, const httplib::Request & req) {
    const int fd = connection_socket(req);
    while (!gen.wait_for(std::chrono::milliseconds(100))) {
        if (fd < 0) continue;
        // An HTTP client waiting for its answer sends nothing more: a readable end of stream or
        // an error means it closed the connection.
        pollfd p{fd, POLLRDHUP, 0};
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            gen.cancel();
            break;
        }
    }
    return gen.result();
}

llm::Result Generation::result() {
    if (!have_result_) {
        try {
            result_ = future_.get();
        } catch (...) {
            error_ = std::current_exception();
        }
        have_result_ = true;
    }
    if (error_) std::rethrow_exception(error_);
    return result_;
}

void ollama_error(httplib::Response & res, int status, const std::string & message) {
    res.status = status;
    res.set_content(json{{"error", message}}.dump(), "application/json");
}

void openai_error(httplib::Response & res, int status, const std::string & message, const std::string & type,
                  const std::string & param, const std::string & code) {
    res.status = status;
    json e = {{"message", message},
              {"type", type},
              {"param", param.empty() ? json() : json(param)},
              {"code", code.empty() ? json() : json(code)}};
    res.set_content(json{{"error", e}}.dump(), "application/json");
}

}  // namespace cortex::http
