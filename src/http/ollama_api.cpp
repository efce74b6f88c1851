// Ollama's API (docs/api.md of ollama/ollama): /api/generate, /api/chat, /api/tags, /api/ps,
// /api/show, /api/version, /api/pull, /api/embed. Errors are {"error": "..."}.
#include <sys/stat.h>

#include <deque>
#include <thread>

#include "cortex/models.h"
#include "http/api_requests.h"

namespace cortex::http {
namespace {

// The Ollama version whose API this follows (clients check it for features).
constexpr const char * kOllamaApiVersion = "0.6.0";

std::string parameter_size(uint64_t n) {
    char buf[32];
    if (n >= 1000000000ull)
        snprintf(buf, sizeof buf, "%.1fB", n / 1e9);
    else
        snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
    return buf;
}

std::string file_time(const std::string & path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return rfc3339_now();
    std::tm tm{};
    gmtime_r(&st.st_mtime, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// Ollama's digest names a manifest; ours names the file: its recorded SHA-256 when the store
// has one, else a stable stand-in (hashing gigabytes per listing would be too slow).
std::string digest_of(const std::string & path, const std::string & recorded) {
    if (recorded.size() == 64) return recorded;
    struct stat st {};
    stat(path.c_str(), &st);
    const size_t h =
        std::hash<std::string>{}(path + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtime));
    char buf[17];
    snprintf(buf, sizeof buf, "%016zx", h);
    std::string d;
    for (int i = 0; i < 4; ++i) d += buf;
    return d;
}

json details_of(const std::string & path) {
    json d = {{"parent_model", ""},        {"format", "gguf"},     {"family", ""},
              {"families", json::array()}, {"parameter_size", ""}, {"quantization_level", ""}};
    try {
        const models::ModelFileInfo info = models::inspect_model_file(path);
        d["family"] = info.architecture;
        d["families"] = json::array({info.architecture});
        d["parameter_size"] = parameter_size(info.n_params);
        d["quantization_level"] = info.quantization;
    } catch (const Error &) {
        // A file that cannot be read is still listed; its details stay empty.
    }
    return d;
}

std::string require_model(Context & ctx, const json & body) {
    std::string model;
    get_string(body, "model", model, "");
    if (model.empty()) get_string(body, "name", model, "");  // the older field name
    if (model.empty()) throw ApiError(400, ErrorCode::kInvalidArgument, "model is required");
    if (!is_served_model(ctx, model)) {
        throw ApiError(404, ErrorCode::kNotFound,
                       "model '" + model + "' not found: this Cortex daemon serves '" + public_model_name(ctx, true) +
                           "' (switch with: cortex-preload reload --model NAME)");
    }
    return model;
}

void add_stats(json & j, const llm::Result & r) {
    const double ttft_ms = r.completion_tokens > 0 ? r.time_to_first_token_ms : r.total_ms;
    j["done_reason"] = r.finish_reason == llm::FinishReason::kLength ? "length" : "stop";
    j["total_duration"] = static_cast<int64_t>(r.total_ms * 1e6);
    j["load_duration"] = 0;  // the daemon's model is loaded already
    j["prompt_eval_count"] = r.prompt_tokens;
    j["prompt_eval_duration"] = static_cast<int64_t>(ttft_ms * 1e6);
    j["eval_count"] = r.completion_tokens;
    j["eval_duration"] = static_cast<int64_t>(std::max(0.0, r.total_ms - ttft_ms) * 1e6);
}

// /api/generate and /api/chat: the same flow, told apart by `chat`.
void generate(Context & ctx, const httplib::Request & req, httplib::Response & res, bool chat) {
    const json body = parse_body(req, false);
    const std::string model = require_model(ctx, body);
    bool stream = true;
    get_bool(body, "stream", stream, "");
    std::shared_ptr<preload::Scheduler> sched = require_scheduler(ctx);
    const int slot = slot_tokens(*sched);
    std::string note;
    const llm::GenerationConfig config = ollama_config(body, slot, note);
    if (!note.empty()) res.set_header("X-Cortex-Note", note);

    std::vector<llm::Token> prompt;
    std::vector<llm::Message> messages;
    if (chat) {
        messages = ollama_messages(body);
    } else {
        std::string text, system;
        bool raw = false;
        get_string(body, "prompt", text, "");
        get_string(body, "system", system, "");
        get_bool(body, "raw", raw, "");
        if (raw) {
            if (!text.empty()) prompt = sched->tokenize(text, true, true);
        } else if (!text.empty()) {
            if (!system.empty()) messages.push_back({"system", system});
            messages.push_back({"user", text});
        }
    }
    if (!messages.empty()) prompt = sched->tokenize(sched->apply_chat_template(messages), true, true);
    const std::string name = public_model_name(ctx, true);
    auto base = [name] { return json{{"model", name}, {"created_at", rfc3339_now()}}; };
    auto piece = [chat, base](const std::string & text) {
        json j = base();
        if (chat)
            j["message"] = {{"role", "assistant"}, {"content", text}};
        else
            j["response"] = text;
        j["done"] = false;
        return j;
    };
    if (prompt.empty()) {
        // Ollama's answer to a request without a prompt: the model is loaded (it always is).
        json j = piece("");
        j["done"] = true;
        j["done_reason"] = "load";
        res.set_content(j.dump() + (stream ? "\n" : ""), stream ? "application/x-ndjson" : "application/json");
        return;
    }
    if (ctx.metrics.in_flight >= ctx.options.max_requests) {
        throw ApiError(503, ErrorCode::kBusy, "server busy, please try again.  maximum pending requests exceeded");
    }
    auto guard = std::make_shared<InFlight>(ctx);
    auto gen = std::make_shared<Generation>(*sched, std::move(prompt), config, stream);
    auto finish = [&ctx, piece](const llm::Result & r, const std::string & content) {
        ctx.metrics.prompt_tokens += static_cast<uint64_t>(r.prompt_tokens);
        ctx.metrics.completion_tokens += static_cast<uint64_t>(r.completion_tokens);
        json j = piece(content);
        j["done"] = true;
        add_stats(j, r);
        return j;
    };
    if (!stream) {
        const llm::Result r = result_unless_disconnected(*gen, req);
        res.set_content(finish(r, r.content).dump(), "application/json");
        return;
    }
    gen->wait_started();  // an error found before the first token still gets its status
    auto first = std::make_shared<std::string>();
    gen->take(*first, std::chrono::milliseconds(0));
    if (first->empty()) {  // ended without any text (or failed): one final line
        const llm::Result r = gen->result();
        res.set_content(finish(r, "").dump() + "\n", "application/x-ndjson");
        return;
    }
    res.set_chunked_content_provider(
        "application/x-ndjson",
        [gen, guard, piece, finish, first](size_t, httplib::DataSink & sink) {
            std::string text;
            bool ended = false;
            if (!first->empty())
                text.swap(*first);
            else
                ended = gen->take(text, std::chrono::milliseconds(100));
            if (!text.empty()) {
                const std::string line = piece(text).dump() + "\n";
                if (!sink.write(line.data(), line.size())) {
                    gen->cancel();  // the client went away: free the slot now
                    return false;
                }
            }
            if (ended) {
                std::string last;
                try {
                    last = finish(gen->result(), "").dump() + "\n";
                } catch (const Error & e) {
                    last = json{{"error", e.message()}}.dump() + "\n";
                }
                sink.write(last.data(), last.size());
                sink.done();
            }
            return true;
        },
        [gen](bool success) {
            if (!success) gen->cancel();
        });
}

json model_entry(const std::string & name, const std::string & path, uint64_t size, const std::string & sha) {
    return {{"name", name},
            {"model", name},
            {"modified_at", file_time(path)},
            {"size", size},
            {"digest", digest_of(path, sha)},
            {"details", details_of(path)}};
}

void tags(Context & ctx, httplib::Response & res) {
    json list = json::array();
    std::string served_path;
    if (auto s = ctx.backend.scheduler()) {
        served_path = s->path();
        struct stat st {};
        stat(served_path.c_str(), &st);
        list.push_back(model_entry(public_model_name(ctx, true), served_path, static_cast<uint64_t>(st.st_size), ""));
    }
    // The store's other models: Ollama lists every local model here (/api/ps has the loaded one).
    try {
        for (const models::InstalledModel & m : models::ModelStore(ctx.backend.models_dir).list()) {
            if (!served_path.empty() && (m.path == served_path)) continue;
            list.push_back(model_entry(m.name + (m.name.find(':') == std::string::npos ? ":latest" : ""), m.path,
                                       m.size, m.sha256));
        }
    } catch (const Error &) {
        // No models directory yet: only the served model.
    }
    res.set_content(json{{"models", list}}.dump(), "application/json");
}

void ps(Context & ctx, httplib::Response & res) {
    json list = json::array();
    if (auto s = ctx.backend.scheduler()) {
        const preload::SchedulerStats st = s->stats();
        const preload::ModelInfo info = s->info();
        const std::string name = public_model_name(ctx, true);
        json e = model_entry(name, s->path(), info.size_bytes, "");
        e.erase("modified_at");
        e["size"] = info.size_bytes + st.kv_cache_bytes;
        e["size_vram"] = s->config().n_gpu_layers != 0 ? e["size"] : json(0);
        e["expires_at"] = "2318-01-01T00:00:00Z";  // kept loaded for as long as the daemon runs
        // Cortex's own fields: what the slots are doing.
        e["slots"] = st.slots;
        e["active"] = st.active;
        e["queued"] = st.queued;
        e["context_length"] = info.n_ctx;
        list.push_back(e);
    }
    res.set_content(json{{"models", list}}.dump(), "application/json");
}

void show(Context & ctx, const httplib::Request & req, httplib::Response & res) {
    const json body = parse_body(req, false);
    require_model(ctx, body);
    std::shared_ptr<preload::Scheduler> s = require_scheduler(ctx);
    const preload::ModelInfo info = s->info();
    models::ModelFileInfo file;
    try {
        file = models::inspect_model_file(s->path());
    } catch (const Error &) {
    }
    json model_info = {{"general.architecture", info.architecture},
                       {"general.parameter_count", info.n_params},
                       {info.architecture + ".context_length", info.n_ctx_train}};
    json out = {{"modelfile", "# Served by the Cortex preload daemon\nFROM " + s->path() + "\n"},
                {"parameters", "num_ctx " + std::to_string(info.n_ctx)},
                {"template", file.chat_template},
                {"details", details_of(s->path())},
                {"model_info", model_info},
                {"capabilities", json::array({"completion"})},
                {"modified_at", file_time(s->path())}};
    res.set_content(out.dump(), "application/json");
}

// /api/pull: a catalog model through the verified downloader, with Ollama's progress lines.
struct Pull {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<std::string> lines;
    bool finished = false;
    std::atomic<bool> cancel{false};
    std::thread worker;
    void push(const json & j) {
        std::lock_guard<std::mutex> lock(mutex);
        lines.push_back(j.dump() + "\n");
        cv.notify_one();
    }
    ~Pull() {
        cancel = true;
        if (worker.joinable()) worker.join();
    }
};

void run_pull(const models::CatalogEntry & e, const std::string & models_dir, Pull & pull) {
    try {
        const std::string digest = "sha256:" + (e.sha256.empty() ? std::string(64, '0') : e.sha256);
        pull.push({{"status", "pulling manifest"}});
        models::ModelStore store(models_dir);
        models::InstalledModel have;
        if (!(store.find(e.name, have) && have.size == e.size)) {
            models::DownloadOptions opt;
            opt.expected_size = e.size;
            opt.expected_sha256 = e.sha256;
            if (const char * t = std::getenv("HF_TOKEN")) opt.bearer_token = t;
            opt.cancel = &pull.cancel;
            const std::string status = "pulling " + (e.sha256.empty() ? e.name : e.sha256.substr(0, 12));
            opt.on_progress = [&](const models::DownloadProgress & p) {
                pull.push({{"status", status},
                           {"digest", digest},
                           {"total", p.total ? p.total : e.size},
                           {"completed", p.done}});
            };
            const std::string dest = store.path(e.name);
            const std::string url = e.url(models::model_base_url());
            const models::DownloadResult r = models::download_file(url, dest, opt);
            pull.push({{"status", status}, {"digest", digest}, {"total", r.bytes}, {"completed", r.bytes}});
            pull.push({{"status", "verifying sha256 digest"}});
            store.record({e.name, dest, r.bytes, "catalog", r.sha256, url});
            pull.push({{"status", "writing manifest"}});
        }
        pull.push({{"status", "success"}});
    } catch (const Error & err) {
        pull.push({{"error", err.message() + (err.hint().empty() ? "" : " (" + err.hint() + ")")}});
    }
    std::lock_guard<std::mutex> lock(pull.mutex);
    pull.finished = true;
    pull.cv.notify_one();
}

void pull(Context & ctx, const httplib::Request & req, httplib::Response & res) {
    const json body = parse_body(req, false);
    std::string model;
    get_string(body, "model", model, "");
    if (model.empty()) get_string(body, "name", model, "");
    if (model.empty()) throw ApiError(400, ErrorCode::kInvalidArgument, "model is required");
    bool stream = true;
    get_bool(body, "stream", stream, "");
    const models::CatalogEntry * e = models::Catalog::get().find(model);
    if (!e) {
        const std::string bare = model.size() > 7 && model.compare(model.size() - 7, 7, ":latest") == 0
                                     ? model.substr(0, model.size() - 7)
                                     : model;
        e = models::Catalog::get().find(bare);
    }
    if (!e) {
        std::string names;
        for (const auto & c : models::Catalog::get().entries()) names += (names.empty() ? "" : ", ") + c.name;
        throw ApiError(
            404, ErrorCode::kNotFound,
            "pull model manifest: file does not exist ('" + model + "' is not in the Cortex catalog: " + names + ")");
    }
    auto state = std::make_shared<Pull>();
    const std::string dir = ctx.backend.models_dir;
    state->worker = std::thread([entry = *e, dir, raw = state.get()] { run_pull(entry, dir, *raw); });
    if (!stream) {
        std::string last;
        {
            std::unique_lock<std::mutex> lock(state->mutex);
            state->cv.wait(lock, [&] { return state->finished; });
            last = state->lines.back();
        }
        json j = json::parse(last);
        if (j.contains("error")) throw ApiError(502, ErrorCode::kNetwork, j["error"].get<std::string>());
        res.set_content(j.dump(), "application/json");
        return;
    }
    res.set_chunked_content_provider(
        "application/x-ndjson",
        [state](size_t, httplib::DataSink & sink) {
            std::deque<std::string> lines;
            bool finished = false;
            {
                std::unique_lock<std::mutex> lock(state->mutex);
                state->cv.wait_for(lock, std::chrono::milliseconds(200),
                                   [&] { return !state->lines.empty() || state->finished; });
                lines.swap(state->lines);
                finished = state->finished;
            }
            // Progress comes ~10 times a second; only the latest progress line matters to a client.
            for (size_t i = 0; i < lines.size(); ++i) {
                if (i + 1 < lines.size() && lines[i].find("\"completed\"") != std::string::npos &&
                    lines[i + 1].find("\"completed\"") != std::string::npos) {
                    continue;
                }
                if (!sink.write(lines[i].data(), lines[i].size())) {
                    state->cancel = true;  // the client went away: stop, keep the .part for next time
                    return false;
                }
            }
            if (finished) sink.done();
            return true;
        },
        [state](bool success) {
            if (!success) state->cancel = true;
        });
}

}  // namespace

void register_ollama_routes(httplib::Server & server, Context & ctx) {
    server.Post("/api/generate",
                [&ctx](const httplib::Request & req, httplib::Response & res) { generate(ctx, req, res, false); });
    server.Post("/api/chat",
                [&ctx](const httplib::Request & req, httplib::Response & res) { generate(ctx, req, res, true); });
    server.Get("/api/tags", [&ctx](const httplib::Request &, httplib::Response & res) { tags(ctx, res); });
    server.Get("/api/ps", [&ctx](const httplib::Request &, httplib::Response & res) { ps(ctx, res); });
    server.Post("/api/show", [&ctx](const httplib::Request & req, httplib::Response & res) { show(ctx, req, res); });
    server.Get("/api/version", [](const httplib::Request &, httplib::Response & res) {
        res.set_content(json{{"version", kOllamaApiVersion}}.dump(), "application/json");
    });
    server.Post("/api/pull", [&ctx](const httplib::Request & req, httplib::Response & res) { pull(ctx, req, res); });
    auto embed = [&ctx](const httplib::Request & req, httplib::Response &) {
        const json body = parse_body(req, false);
        const std::string model = require_model(ctx, body);
        // The daemon's context is built for generation (no pooled outputs): say so rather than
        // return vectors that mean nothing.
        throw ApiError(501, ErrorCode::kInvalidArgument,
                       "\"" + model + "\" does not support embeddings: this Cortex daemon serves text generation only");
    };
    server.Post("/api/embed", embed);
    server.Post("/api/embeddings", embed);
    server.Get("/", [](const httplib::Request &, httplib::Response & res) {
        res.set_content("Ollama is running", "text/plain");
    });
}

}  // namespace cortex::http
