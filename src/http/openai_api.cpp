// OpenAI's API: /v1/chat/completions, /v1/completions (SSE streaming: "data: {...}" events and
// "data: [DONE]"), /v1/models. Errors are {"error": {"message", "type", "param", "code"}}.
#include "http/api_requests.h"

namespace cortex::http {
namespace {

std::string require_model(Context & ctx, const json & body) {
    std::string model;
    get_string(body, "model", model, "");
    if (model.empty()) {
        throw ApiError(400, ErrorCode::kInvalidArgument, "you must provide a model parameter", "model",
                       "missing_required_parameter");
    }
    if (!is_served_model(ctx, model)) {
        throw ApiError(404, ErrorCode::kNotFound,
                       "The model `" + model +
                           "` does not exist or you do not have access to it. This Cortex daemon serves `" +
                           public_model_name(ctx, true) + "`.",
                       "model", "model_not_found");
    }
    return model;
}

const char * finish_reason(const llm::Result & r) {
    return r.finish_reason == llm::FinishReason::kLength ? "length" : "stop";
}

json usage_of(const llm::Result & r) {
    return {{"prompt_tokens", r.prompt_tokens},
            {"completion_tokens", r.completion_tokens},
            {"total_tokens", r.prompt_tokens + r.completion_tokens},
            {"prompt_tokens_details", {{"cached_tokens", r.cached_tokens}}}};
}

void completions(Context & ctx, const httplib::Request & req, httplib::Response & res, bool chat) {
    const json body = parse_body(req, true);
    require_model(ctx, body);
    std::shared_ptr<preload::Scheduler> sched = require_scheduler(ctx);
    bool stream = false, include_usage = false;
    get_bool(body, "stream", stream, "");
    if (auto so = body.find("stream_options"); so != body.end() && so->is_object())
        get_bool(*so, "include_usage", include_usage, "stream_options");
    const llm::GenerationConfig config = openai_config(body, slot_tokens(*sched));

    std::vector<llm::Token> prompt;
    if (chat) {
        prompt = sched->tokenize(sched->apply_chat_template(openai_messages(body)), true, true);
    } else {
        const OpenAiPrompt p = openai_prompt(body);
        prompt = p.is_tokens ? p.tokens : sched->tokenize(p.text, true, true);
        if (prompt.empty())
            throw ApiError(400, ErrorCode::kInvalidArgument, "Invalid 'prompt': it must not be empty.", "prompt",
                           "invalid_value");
    }
    if (ctx.metrics.in_flight >= ctx.options.max_requests) {
        throw ApiError(429, ErrorCode::kBusy,
                       "Too many requests at once: this server serves " + std::to_string(ctx.options.max_requests) +
                           " at a time. Please retry after a short wait.",
                       "", "rate_limit_exceeded");
    }
    auto guard = std::make_shared<InFlight>(ctx);
    auto gen = std::make_shared<Generation>(*sched, std::move(prompt), config, stream);
    const std::string id = (chat ? "chatcmpl-" : "cmpl-") + random_hex(24);
    const int64_t created = unix_now();
    const std::string model = public_model_name(ctx, true);
    const std::string object = chat ? "chat.completion" : "text_completion";
    auto count = [&ctx](const llm::Result & r) {
        ctx.metrics.prompt_tokens += static_cast<uint64_t>(r.prompt_tokens);
        ctx.metrics.completion_tokens += static_cast<uint64_t>(r.completion_tokens);
    };

    if (!stream) {
        const llm::Result r = result_unless_disconnected(*gen, req);
        count(r);
        json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason(r)}};
        if (chat)
            choice["message"] = {{"role", "assistant"}, {"content", r.content}, {"refusal", nullptr}};
        else
            choice["text"] = r.content;
        json out = {{"id", id},
                    {"object", object},
                    {"created", created},
                    {"model", model},
                    {"system_fingerprint", "cortex"},
                    {"choices", {choice}},
                    {"usage", usage_of(r)}};
        res.set_content(out.dump(), "application/json");
        return;
    }

    gen->wait_started();  // errors before the first token (schema, prompt too long) keep their status
    auto first = std::make_shared<std::string>();
    gen->take(*first, std::chrono::milliseconds(0));
    if (first->empty()) gen->result();  // throws when the job failed; else it ended without text
    auto chunk = [id, created, model, chat](const std::string & text, const json & finish, bool role) {
        json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish}};
        if (chat) {
            choice["delta"] = json::object();
            if (role) choice["delta"]["role"] = "assistant";
            if (!text.empty() || role) choice["delta"]["content"] = text;
        } else {
            choice["text"] = text;
        }
        json j = {{"id", id},
                  {"object", chat ? "chat.completion.chunk" : "text_completion"},
                  {"created", created},
                  {"model", model},
                  {"system_fingerprint", "cortex"},
                  {"choices", {choice}}};
        return j;
    };
    auto sent_role = std::make_shared<bool>(false);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [gen, guard, first, chunk, count, include_usage, chat, sent_role](size_t, httplib::DataSink & sink) {
            auto send = [&sink](const json & j) {
                const std::string event = "data: " + j.dump() + "\n\n";
                return sink.write(event.data(), event.size());
            };
            std::string text;
            bool ended = false;
            if (!first->empty())
                text.swap(*first);
            else
                ended = gen->take(text, std::chrono::milliseconds(100));
            if (chat && !*sent_role) {
                // OpenAI's first chunk carries the role.
                *sent_role = true;
                if (!send(chunk(text, nullptr, true))) {
                    gen->cancel();
                    return false;
                }
                text.clear();
            }
            if (!text.empty() && !send(chunk(text, nullptr, false))) {
                gen->cancel();  // the client went away: free the slot now
                return false;
            }
            if (!ended) return true;
            try {
                const llm::Result r = gen->result();
                count(r);
                send(chunk("", finish_reason(r), false));
                if (include_usage) {
                    json u = chunk("", nullptr, false);
                    u["choices"] = json::array();
                    u["usage"] = usage_of(r);
                    send(u);
                }
            } catch (const Error & e) {
                send(json{
                    {"error",
                     {{"message", e.message()}, {"type", "server_error"}, {"param", nullptr}, {"code", nullptr}}}});
            }
            const std::string done = "data: [DONE]\n\n";
            sink.write(done.data(), done.size());
            sink.done();
            return true;
        },
        [gen](bool success) {
            if (!success) gen->cancel();
        });
}

json model_object(Context & ctx) {
    return {{"id", public_model_name(ctx, true)}, {"object", "model"}, {"created", unix_now()}, {"owned_by", "cortex"}};
}

}  // namespace

void register_openai_routes(httplib::Server & server, Context & ctx) {
    server.Post("/v1/chat/completions",
                [&ctx](const httplib::Request & req, httplib::Response & res) { completions(ctx, req, res, true); });
    server.Post("/v1/completions",
                [&ctx](const httplib::Request & req, httplib::Response & res) { completions(ctx, req, res, false); });
    server.Get("/v1/models", [&ctx](const httplib::Request &, httplib::Response & res) {
        json data = json::array();
        if (ctx.backend.scheduler()) data.push_back(model_object(ctx));
        res.set_content(json{{"object", "list"}, {"data", data}}.dump(), "application/json");
    });
    server.Get(R"(/v1/models/(.+))", [&ctx](const httplib::Request & req, httplib::Response & res) {
        const std::string id = req.matches[1];
        if (!ctx.backend.scheduler() || !is_served_model(ctx, id)) {
            throw ApiError(404, ErrorCode::kNotFound,
                           "The model `" + id + "` does not exist or you do not have access to it.", "model",
                           "model_not_found");
        }
        res.set_content(model_object(ctx).dump(), "application/json");
    });
}

}  // namespace cortex::http
