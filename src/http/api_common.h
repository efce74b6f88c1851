// What the Ollama and OpenAI routes share: the server's state, errors that carry an HTTP status,
// request-body checks, the served model's names, and the bridge from a scheduler job to a
// streamed HTTP body.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "cortex/error.h"
#include "cortex/llm.h"
#include "http/http_server.h"
#include "preload/scheduler.h"

namespace cortex::http {

using nlohmann::json;

// A cortex::Error with the HTTP status and OpenAI's "param"/"code" fields to answer it with.
class ApiError : public Error {
  public:
    ApiError(int status, ErrorCode code, std::string message, std::string param = "", std::string api_code = "")
        : Error(code, std::move(message)), status_(status), param_(std::move(param)), api_code_(std::move(api_code)) {}
    int status() const { return status_; }
    const std::string & param() const { return param_; }
    const std::string & api_code() const { return api_code_; }

  private:
    int status_;
    std::string param_, api_code_;
};

// The status for a library error: bad input 400, unknown 404, busy 503, the rest 500.
int status_for(const Error & e);

struct Metrics {
    std::mutex mutex;
    std::map<std::pair<std::string, int>, uint64_t> requests;  // (endpoint, status) -> count
    std::atomic<uint64_t> prompt_tokens{0}, completion_tokens{0};
    std::atomic<int> in_flight{0};  // generation requests being served
};

struct Context {
    HttpOptions options;
    Backend backend;
    Metrics metrics;
    std::atomic<bool> stopping{false};
};

// Counts a generation request against max_requests for as long as it lives.
class InFlight {
  public:
    explicit InFlight(Context & ctx) : ctx_(ctx) { ++ctx_.metrics.in_flight; }
    ~InFlight() { --ctx_.metrics.in_flight; }
    InFlight(const InFlight &) = delete;
    InFlight & operator=(const InFlight &) = delete;

  private:
    Context & ctx_;
};

// Parses the body as a JSON object. Throws ApiError 400 ("openai" picks the message style).
json parse_body(const httplib::Request & req, bool openai);

// The served scheduler, or ApiError 503 when the daemon has no model loaded.
std::shared_ptr<preload::Scheduler> require_scheduler(Context & ctx);

// The name clients see for the served model: the daemon's model name, or a path's file name
// without ".gguf"; Ollama style with ":latest" when `tagged`.
std::string public_model_name(Context & ctx, bool tagged);
// Whether `requested` names the served model (with or without ":latest", or by its path).
bool is_served_model(Context & ctx, const std::string & requested);

// Throws ApiError 400 unless j[name] is absent/null or of the kind asked for.
bool get_number(const json & j, const char * name, double & out, const std::string & where);
bool get_int(const json & j, const char * name, long long & out, const std::string & where);
bool get_string(const json & j, const char * name, std::string & out, const std::string & where);
bool get_bool(const json & j, const char * name, bool & out, const std::string & where);
// "stop": a string or an array of strings.
void get_stop(const json & j, std::vector<std::string> & out, const std::string & where);

// RFC 3339 with microseconds, as Ollama writes created_at.
std::string rfc3339_now();
int64_t unix_now();
std::string random_hex(size_t n);

// One generation on the scheduler, read by an HTTP handler. The scheduler thread appends text;
// the handler takes it, so that a slow client delays only itself.
class Generation {
  public:
    // Submits the job. `stream` false collects nothing but the result.
    Generation(preload::Scheduler & scheduler, std::vector<llm::Token> prompt, const llm::GenerationConfig & config,
               bool stream);
    // Cancels the job unless it has ended: an HTTP response that goes away (the client
    // disconnected, a write failed) frees its slot.
    ~Generation();
    Generation(const Generation &) = delete;
    Generation & operator=(const Generation &) = delete;

    // Waits up to `wait` for text or the end; moves the text into `out`. Returns true once the
    // job has ended and all its text was taken.
    bool take(std::string & out, std::chrono::milliseconds wait);
    // Waits for the first text or the end, so that errors found before generating (schema,
    // prompt too long) can still get their own HTTP status.
    void wait_started();
    // The Result (waits for it); throws the job's Error. May be called again.
    llm::Result result();
    // Waits up to `wait` for the job to end; true when it has.
    bool wait_for(std::chrono::milliseconds wait);
    void cancel() { job_->cancel = true; }

  private:
    std::shared_ptr<preload::Job> job_;
    std::future<llm::Result> future_;
    // The future's outcome, kept: a future can be read only once.
    bool have_result_ = false;
    llm::Result result_;
    std::exception_ptr error_;
    struct Shared {
        std::mutex mutex;
        std::condition_variable cv;
        std::string pending;
        bool finished = false;
    };
    std::shared_ptr<Shared> shared_;
};

// The Result of a non-streamed generation, watching the client meanwhile: one that goes away
// cancels the job and frees its slot. (A streamed response learns it from a failed write; a
// non-streamed one writes nothing until the end, and cpp-httplib 0.11 gives handlers no socket.)
llm::Result result_unless_disconnected(Generation & gen, const httplib::Request & req);

// The prompt's token count must leave a slot room for at least one token.
int slot_tokens(preload::Scheduler & scheduler);

void register_ollama_routes(httplib::Server & server, Context & ctx);
void register_openai_routes(httplib::Server & server, Context & ctx);

// Ollama's error body {"error": "..."}; OpenAI's {"error": {message, type, param, code}}.
void ollama_error(httplib::Response & res, int status, const std::string & message);
void openai_error(httplib::Response & res, int status, const std::string & message, const std::string & type,
                  const std::string & param = "", const std::string & code = "");

}  // namespace cortex::http
