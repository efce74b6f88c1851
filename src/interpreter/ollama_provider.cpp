// The Ollama provider: POST /api/chat with libcurl, the reply read as NDJSON while it streams
// (or as one object with "stream": false), Ollama's statistics turned into an llm::Result.
// Response shapes follow Ollama's docs/api.md: chunks {"message": {"content"}, "done": false},
// a final chunk with done_reason, prompt_eval_count, eval_count and durations in nanoseconds,
// and errors as {"error": "..."} (as the body of a 4xx/5xx, or as a line mid-stream).
#include "interpreter/ollama_provider.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "core/string_util.h"

namespace cortex::interpreter {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct CurlDeleter {
    void operator()(CURL * curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
    void operator()(curl_slist * list) const { curl_slist_free_all(list); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

// Bodies we keep in memory: error texts and non-streamed answers are small; more is not Ollama.
constexpr size_t kMaxBody = 16 << 20;

constexpr const char * kProtocolHint = "this is not Ollama's /api/chat protocol: check OLLAMA_HOST and update Ollama";
constexpr const char * kLogHint =
    "see the log of `ollama serve` (journalctl -u ollama for the service), then try again";

std::string start_hint() {
    return "start it with `ollama serve` (or point OLLAMA_HOST at it), or set CORTEX_PROVIDER=llamacpp to run a "
           "local model instead (cortex-model download recommended)";
}

CurlPtr new_curl() {
    // curl_global_init is not thread-safe; a function-local static runs it once.
    static const bool ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    if (!ready) throw Error(ErrorCode::kInternal, "libcurl failed to initialise", "check the libcurl installation");
    CurlPtr curl(curl_easy_init());
    if (!curl) throw Error(ErrorCode::kInternal, "libcurl could not create a handle", "check the libcurl installation");
    return curl;
}

// Options every request to Ollama shares.
void set_common(CURL * curl, const std::string & url, double timeout_s, char * errbuf) {
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "cortex/0.1");
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    // A proxy from the environment must not catch a local Ollama (Go's client skips loopback too).
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
    long total_ms = timeout_s > 0 ? static_cast<long>(timeout_s * 1000) : 0;
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, total_ms > 0 ? std::min(total_ms, 10000L) : 10000L);
}

std::string excerpt(const std::string & text) {
    std::string out = trim(text);
    if (out.size() > 200) out = out.substr(0, 200) + "...";
    return out;
}

// Ollama's {"error": "..."} text of a body, or the body itself when it is not that.
std::string error_text(const std::string & body, bool * was_json = nullptr) {
    json j = json::parse(body, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_string()) {
        if (was_json) *was_json = true;
        return j["error"].get<std::string>();
    }
    if (was_json) *was_json = false;
    return excerpt(body);
}

// Maps a failed transfer (no HTTP status to judge) to an Error.
Error transport_error(CURLcode rc, const std::string & base, const char * errbuf, double timeout_s,
                      const std::string & model) {
    const std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    switch (rc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
            return Error(ErrorCode::kNetwork, "cannot reach Ollama at " + base + " (" + detail + ")", start_hint());
        case CURLE_OPERATION_TIMEDOUT:
            return Error(ErrorCode::kNetwork,
                         "Ollama at " + base + " did not finish answering within " +
                             std::to_string(static_cast<int>(timeout_s)) + " s",
                         "it may still be loading " + (model.empty() ? std::string("the model") : "'" + model + "'") +
                             " (see `ollama ps`): try again, or use a smaller model");
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
            return Error(ErrorCode::kInvalidArgument, "OLLAMA_HOST gives a bad URL " + base + " (" + detail + ")",
                         "set OLLAMA_HOST to host:port, e.g. 127.0.0.1:11434");
        default:
            return Error(ErrorCode::kNetwork, "the request to Ollama at " + base + " failed: " + detail,
                         "check that `ollama serve` is still running (its log says why it stopped), then try again");
    }
}

// Maps a non-200 answer of /api/chat to an Error.
Error status_error(long status, const std::string & body, const std::string & base, const std::string & model) {
    bool was_json = false;
    const std::string text = error_text(body, &was_json);
    if (status == 404 && was_json) {
        return Error(ErrorCode::kNotFound, "Ollama has no model '" + model + "': " + text,
                     "pull it: ollama pull " + model + " (or set OLLAMA_MODEL to one that `ollama list` shows)");
    }
    if (status == 404) {
        return Error(ErrorCode::kNetwork,
                     base + " answered 404 for /api/chat: is it an Ollama server, 0.1.14 or newer?",
                     "check OLLAMA_HOST, and update Ollama");
    }
    std::string message = "Ollama answered HTTP " + std::to_string(status);
    if (!text.empty()) message += ": " + text;
    if (status == 400)
        return Error(ErrorCode::kNetwork, message,
                     "Ollama refused the request; update Ollama (structured outputs need 0.5 or newer)");
    return Error(ErrorCode::kNetwork, message, kLogHint);
}

// The state of one /api/chat transfer, shared with libcurl's callbacks.
struct Transfer {
    CURL * curl = nullptr;
    const ProviderRequest * request = nullptr;
    bool stream = false;
    Clock::time_point start;
    long status = 0;
    std::string body;  // the whole body when not streamed or not 200
    std::string line;  // the unfinished NDJSON line
    std::string content;
    double first_token_ms = 0;
    bool done = false;
    json final_chunk;
    bool cancelled = false;
    // Why a callback stopped the transfer (kept until curl_easy_perform returns).
    bool failed = false;
    std::string failure;
    std::string failure_hint;
};

// One chunk of the answer: appends its text, streams it, keeps the final one. Returns false to
// stop the transfer (cancelled, or a bad chunk: see t.failed).
bool apply_chunk(Transfer & t, const json & j) {
    if (j.contains("error")) {
        t.failed = true;
        t.failure = "Ollama failed while answering: " +
                    (j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump());
        t.failure_hint = kLogHint;
        return false;
    }
    std::string piece;
    if (j.contains("message")) {
        const json & m = j["message"];
        if (!m.is_object() || (m.contains("content") && !m["content"].is_string())) {
            t.failed = true;
            t.failure = "Ollama sent a chunk whose \"message\" is not {\"role\", \"content\"}: " + excerpt(j.dump());
            t.failure_hint = kProtocolHint;
            return false;
        }
        piece = m.value("content", "");
    }
    if (!piece.empty()) {
        if (t.content.empty())
            t.first_token_ms = std::chrono::duration<double, std::milli>(Clock::now() - t.start).count();
        t.content += piece;
        if (t.request->on_token && !t.request->on_token(piece)) {
            t.cancelled = true;
            return false;
        }
    }
    if (j.value("done", false)) {
        t.done = true;
        t.final_chunk = j;
    }
    return true;
}

bool handle_line(Transfer & t, const std::string & raw) {
    const std::string text = trim(raw);
    if (text.empty()) return true;
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        t.failed = true;
        t.failure = "Ollama sent a line that is not a JSON object: '" + excerpt(text) + "'";
        t.failure_hint = kProtocolHint;
        return false;
    }
    return apply_chunk(t, j);
}

size_t on_body(char * data, size_t size, size_t n, void * user) {
    Transfer & t = *static_cast<Transfer *>(user);
    const size_t bytes = size * n;
    if (t.status == 0) curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &t.status);
    if (t.status != 200 || !t.stream) {
        if (t.body.size() + bytes > kMaxBody) {
            t.failed = true;
            t.failure = "Ollama's answer is larger than 16 MiB";
            t.failure_hint = kProtocolHint;
            return 0;
        }
        t.body.append(data, bytes);
        return bytes;
    }
    t.line.append(data, bytes);
    size_t nl;
    while ((nl = t.line.find('\n')) != std::string::npos) {
        const std::string one = t.line.substr(0, nl);
        t.line.erase(0, nl + 1);
        if (!handle_line(t, one)) return 0;  // CURLE_WRITE_ERROR; t says why
    }
    if (t.line.size() > kMaxBody) {
        t.failed = true;
        t.failure = "Ollama sent a line longer than 16 MiB";
        t.failure_hint = kProtocolHint;
        return 0;
    }
    return bytes;
}

// Also called about once a second while nothing arrives, so a Ctrl-C ends a stalled request too.
int on_progress(void * user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    Transfer & t = *static_cast<Transfer *>(user);
    if (t.request->cancel && t.request->cancel->load()) {
        t.cancelled = true;
        return 1;
    }
    return 0;
}

Error cancelled_error() {
    return Error(ErrorCode::kCancelled, "cancelled: the request to Ollama was stopped",
                 "nothing was changed; run the command again to retry");
}

llm::Result result_from_final(const Transfer & t) {
    llm::Result r;
    r.content = t.content;
    const json & f = t.final_chunk;
    const std::string reason = f.value("done_reason", "stop");
    r.finish_reason = reason == "length" ? llm::FinishReason::kLength : llm::FinishReason::kStop;
    auto num = [&](const char * key) { return f.contains(key) && f[key].is_number() ? f[key].get<double>() : 0.0; };
    r.prompt_tokens = static_cast<int>(num("prompt_eval_count"));
    r.completion_tokens = static_cast<int>(num("eval_count"));
    if (num("eval_duration") > 0) r.tokens_per_second = num("eval_count") / num("eval_duration") * 1e9;
    if (num("prompt_eval_duration") > 0)
        r.prompt_tokens_per_second = num("prompt_eval_count") / num("prompt_eval_duration") * 1e9;
    r.load_ms = num("load_duration") / 1e6;
    r.time_to_first_token_ms = t.first_token_ms;
    r.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - t.start).count();
    return r;
}

class OllamaProvider : public Provider {
  public:
    OllamaProvider(std::string base, std::string model) : base_(std::move(base)), model_(std::move(model)) {}

    std::string name() const override { return "ollama"; }

    ProviderReply chat(const ProviderRequest & request) override {
        if (model_.empty()) {
            throw Error(ErrorCode::kNotFound, "no Ollama model is set (provider ollama)",
                        "set OLLAMA_MODEL to one that `ollama list` shows (e.g. OLLAMA_MODEL=llama3.2), or use "
                        "CORTEX_PROVIDER=llamacpp with a local model (cortex-model download recommended)");
        }
        if (request.cancel && request.cancel->load()) throw cancelled_error();
        const std::string body = request_body(request).dump();

        char errbuf[CURL_ERROR_SIZE] = {};
        CurlPtr curl = new_curl();
        Transfer t;
        t.curl = curl.get();
        t.request = &request;
        t.stream = static_cast<bool>(request.on_token);
        t.start = Clock::now();
        SlistPtr headers(curl_slist_append(nullptr, "Content-Type: application/json"));
        set_common(curl.get(), base_ + "/api/chat", request.timeout_s, errbuf);
        curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get());
        curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
        curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &t);
        curl_easy_setopt(curl.get(), CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(curl.get(), CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(curl.get(), CURLOPT_XFERINFODATA, &t);
        const CURLcode rc = curl_easy_perform(curl.get());

        if (t.cancelled) throw cancelled_error();
        if (t.failed) throw Error(ErrorCode::kNetwork, t.failure + " (from " + base_ + ")", t.failure_hint);
        if (rc != CURLE_OK) throw transport_error(rc, base_, errbuf, request.timeout_s, model_);
        curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &t.status);
        if (t.status != 200) throw status_error(t.status, t.body, base_, model_);

        if (t.stream) {
            // The last line may come without its newline.
            if (!t.line.empty() && !handle_line(t, t.line)) {
                if (t.cancelled) throw cancelled_error();
                throw Error(ErrorCode::kNetwork, t.failure + " (from " + base_ + ")", t.failure_hint);
            }
        } else {
            json j = json::parse(t.body, nullptr, false);
            if (j.is_discarded() || !j.is_object()) {
                throw Error(
                    ErrorCode::kNetwork,
                    "Ollama at " + base_ + " sent an answer that is not a JSON object: '" + excerpt(t.body) + "'",
                    "check OLLAMA_HOST and update Ollama");
            }
            if (!apply_chunk(t, j)) {
                throw Error(ErrorCode::kNetwork, t.failure + " (from " + base_ + ")", t.failure_hint);
            }
        }
        if (!t.done) {
            throw Error(ErrorCode::kNetwork,
                        "the answer from Ollama at " + base_ + " ended before its final \"done\" chunk",
                        "Ollama may have stopped mid-answer: see the log of `ollama serve`, then try again");
        }

        ProviderReply reply;
        reply.result = result_from_final(t);
        reply.content = reply.result.content;
        reply.model = t.final_chunk.value("model", model_);
        reply.route = "ollama " + base_;
        reply.truncated = reply.result.finish_reason == llm::FinishReason::kLength;
        return reply;
    }

  private:
    json request_body(const ProviderRequest & request) const {
        json messages = json::array();
        for (const auto & m : request.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
        json body = {{"model", model_},
                     {"messages", messages},
                     {"stream", static_cast<bool>(request.on_token)},
                     {"options", {{"temperature", request.temperature}, {"num_predict", request.max_tokens}}}};
        if (!request.json_schema.empty()) {
            json schema = json::parse(request.json_schema, nullptr, false);
            if (schema.is_discarded() || !schema.is_object()) {
                throw Error(ErrorCode::kInvalidSchema, "the JSON schema for Ollama's format is not a JSON object",
                            "this is a bug in the caller: please report it");
            }
            body["format"] = schema;
        }
        return body;
    }

    std::string base_;
    std::string model_;
};

}  // namespace

std::string ollama_base_url(const std::string & host) {
    std::string s = trim(host);
    std::string scheme = "http";
    std::string default_port = "11434";
    if (size_t p = s.find("://"); p != std::string::npos) {
        scheme = to_lower(s.substr(0, p));
        s = s.substr(p + 3);
        // With a scheme, Ollama's client takes the scheme's own port (80, 443) when none is given.
        default_port = "";
    }
    std::string path;
    if (size_t slash = s.find('/'); slash != std::string::npos) {
        path = s.substr(slash);
        s = s.substr(0, slash);
        while (!path.empty() && path.back() == '/') path.pop_back();
    }
    std::string hostname = s;
    std::string port;
    if (!s.empty() && s[0] == '[') {  // [::1]:11434
        size_t close = s.find(']');
        hostname = s.substr(0, close == std::string::npos ? s.size() : close + 1);
        if (close != std::string::npos && close + 1 < s.size() && s[close + 1] == ':') port = s.substr(close + 2);
    } else if (size_t colon = s.rfind(':'); colon != std::string::npos && s.find(':') == colon) {
        hostname = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    if (hostname.empty()) hostname = "127.0.0.1";
    if (port.empty()) port = default_port;
    return scheme + "://" + hostname + (port.empty() ? "" : ":" + port) + path;
}

std::unique_ptr<Provider> open_ollama_provider(const std::string & host, const std::string & model) {
    return std::make_unique<OllamaProvider>(ollama_base_url(host), model);
}

std::vector<std::string> ollama_list_models(const std::string & host, double timeout_s) {
    const std::string base = ollama_base_url(host);
    char errbuf[CURL_ERROR_SIZE] = {};
    CurlPtr curl = new_curl();
    std::string body;
    set_common(curl.get(), base + "/api/tags", timeout_s, errbuf);
    curl_easy_setopt(
        curl.get(), CURLOPT_WRITEFUNCTION, +[](char * data, size_t size, size_t n, void * user) -> size_t {
            auto * out = static_cast<std::string *>(user);
            if (out->size() + size * n > kMaxBody) return 0;
            out->append(data, size * n);
            return size * n;
        });
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
    const CURLcode rc = curl_easy_perform(curl.get());
    if (rc != CURLE_OK) throw transport_error(rc, base, errbuf, timeout_s, "");
    long status = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        throw Error(ErrorCode::kNetwork,
                    base + " answered HTTP " + std::to_string(status) + " for /api/tags: " + error_text(body),
                    "check that OLLAMA_HOST points at an Ollama server");
    }
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("models") || !j["models"].is_array()) {
        throw Error(ErrorCode::kNetwork, base + " sent a model list that is not Ollama's: '" + excerpt(body) + "'",
                    "check that OLLAMA_HOST points at an Ollama server");
    }
    std::vector<std::string> names;
    for (const json & m : j["models"]) {
        if (!m.is_object()) continue;
        std::string name = m.value("name", "");
        if (name.empty()) name = m.value("model", "");
        if (!name.empty()) names.push_back(name);
    }
    return names;
}

bool ollama_has_model(const std::vector<std::string> & names, const std::string & model) {
    // "llama3.2" is "llama3.2:latest"; a tag in the last path segment is explicit.
    const size_t slash = model.rfind('/');
    const bool tagged = model.find(':', slash == std::string::npos ? 0 : slash) != std::string::npos;
    const std::string full = tagged ? model : model + ":latest";
    for (const auto & n : names) {
        if (n == model || n == full) return true;
    }
    return false;
}

}  // namespace cortex::interpreter
