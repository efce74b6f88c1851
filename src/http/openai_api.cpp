// OpenAI's API: /v1/chat/completions, /v1/completions (SSE streaming: "data: {...}" events and
// "data: [DONE]"), /v1/models. Errors are {"error": {"message", "type", "param", "code"}}.
#include "http/api_common.h"

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

llm::GenerationConfig openai_config(const json & body, int slot) {
    llm::GenerationConfig c;
    c.max_tokens = slot;   // OpenAI's default: until the context is full
    c.temperature = 1.0f;  // OpenAI's default
    c.top_p = 1.0f;
    c.top_k = 0;
    c.min_p = 0.0f;
    double d = 0;
    long long n = 0;
    if (get_number(body, "temperature", d, "")) {
        if (d < 0 || d > 2)
            throw ApiError(400, ErrorCode::kInvalidArgument, "temperature must be between 0 and 2", "temperature",
                           "invalid_value");
        c.temperature = static_cast<float>(d);
    }
    if (get_number(body, "top_p", d, "")) {
        if (d < 0 || d > 1)
            throw ApiError(400, ErrorCode::kInvalidArgument, "top_p must be between 0 and 1", "top_p", "invalid_value");
        c.top_p = static_cast<float>(d);
    }
    // llama.cpp's extensions, as llama-server accepts them.
    if (get_int(body, "top_k", n, "")) c.top_k = static_cast<int>(n);
    if (get_number(body, "min_p", d, "")) c.min_p = static_cast<float>(d);
    if (get_number(body, "repeat_penalty", d, "")) c.repeat_penalty = static_cast<float>(d);
    if (get_int(body, "seed", n, "") && n >= 0) c.seed = static_cast<uint32_t>(n);
    get_bool(body, "ignore_eos", c.ignore_eos, "");
    for (const char * name : {"max_completion_tokens", "max_tokens"}) {
        if (get_int(body, name, n, "")) {
            if (n < 1)
                throw ApiError(400, ErrorCode::kInvalidArgument, std::string(name) + " must be at least 1", name,
                               "invalid_value");
            c.max_tokens = static_cast<int>(std::min<long long>(n, slot));
            break;
        }
    }
    if (get_int(body, "n", n, "") && n != 1) {
        throw ApiError(400, ErrorCode::kInvalidArgument, "n must be 1: this server generates one choice per request",
                       "n", "invalid_value");
    }
    get_stop(body, c.stop, "");
    auto rf = body.find("response_format");
    if (rf != body.end() && !rf->is_null()) {
        if (!rf->is_object())
            throw ApiError(400, ErrorCode::kInvalidArgument, "Invalid type for 'response_format': expected an object.",
                           "response_format", "invalid_type");
        std::string type;
        get_string(*rf, "type", type, "response_format");
        if (type == "json_object") {
            c.json_schema = R"({"type":"object"})";
        } else if (type == "json_schema") {
            auto js = rf->find("json_schema");
            if (js == rf->end() || !js->is_object() || !js->contains("schema") || !(*js)["schema"].is_object()) {
                throw ApiError(400, ErrorCode::kInvalidArgument,
                               "Missing required parameter: 'response_format.json_schema.schema'.",
                               "response_format.json_schema", "missing_required_parameter");
            }
            c.json_schema = (*js)["schema"].dump();
        } else if (type != "text" && !type.empty()) {
            throw ApiError(
                400, ErrorCode::kInvalidArgument,
                "Invalid value: '" + type + "'. Supported values are: 'text', 'json_object' and 'json_schema'.",
                "response_format.type", "invalid_value");
        }
    }
    return c;
}

// A message's content: a string, or an array of parts of which the text ones count.
std::string content_text(const json & m, size_t i) {
    auto it = m.find("content");
    if (it == m.end() || it->is_null()) return "";
    if (it->is_string()) return it->get<std::string>();
    if (it->is_array()) {
        std::string text;
        for (const auto & part : *it) {
            if (part.is_object() && part.value("type", "") == "text" && part.contains("text") &&
                part["text"].is_string()) {
                text += part["text"].get<std::string>();
            } else {
                throw ApiError(400, ErrorCode::kInvalidArgument, "only text content parts are supported",
                               "messages[" + std::to_string(i) + "].content", "invalid_value");
            }
        }
        return text;
    }
    throw ApiError(
        400, ErrorCode::kInvalidArgument,
        "Invalid type for 'messages[" + std::to_string(i) + "].content': expected one of a string or array of objects.",
        "messages[" + std::to_string(i) + "].content", "invalid_type");
}

std::vector<llm::Message> openai_messages(const json & body) {
    auto it = body.find("messages");
    if (it == body.end() || it->is_null()) {
        throw ApiError(400, ErrorCode::kInvalidArgument, "Missing required parameter: 'messages'.", "messages",
                       "missing_required_parameter");
    }
    if (!it->is_array()) {
        throw ApiError(400, ErrorCode::kInvalidArgument, "Invalid type for 'messages': expected an array.", "messages",
                       "invalid_type");
    }
    if (it->empty()) {
        throw ApiError(400, ErrorCode::kInvalidArgument,
                       "Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages",
                       "empty_array");
    }
    std::vector<llm::Message> messages;
    for (size_t i = 0; i < it->size(); ++i) {
        const json & m = (*it)[i];
        const std::string where = "messages[" + std::to_string(i) + "]";
        if (!m.is_object())
            throw ApiError(400, ErrorCode::kInvalidArgument, "Invalid type for '" + where + "': expected an object.",
                           where, "invalid_type");
        std::string role;
        get_string(m, "role", role, where);
        if (role.empty())
            throw ApiError(400, ErrorCode::kInvalidArgument, "Missing required parameter: '" + where + ".role'.",
                           where + ".role", "missing_required_parameter");
        if (role == "developer") role = "system";  // OpenAI's newer name for it
        messages.push_back({role, content_text(m, i)});
    }
    return messages;
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
        auto p = body.find("prompt");
        if (p == body.end() || p->is_null()) {
            throw ApiError(400, ErrorCode::kInvalidArgument, "Missing required parameter: 'prompt'.", "prompt",
                           "missing_required_parameter");
        }
        if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
            prompt = sched->tokenize((*p)[0].get<std::string>(), true, true);
        } else if (p->is_string()) {
            prompt = sched->tokenize(p->get<std::string>(), true, true);
        } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
            for (const auto & t : *p) {
                if (!t.is_number_integer())
                    throw ApiError(400, ErrorCode::kInvalidArgument, "Invalid 'prompt': token ids must be integers.",
                                   "prompt", "invalid_type");
                prompt.push_back(t.get<int32_t>());
            }
        } else {
            throw ApiError(
                400, ErrorCode::kInvalidArgument,
                "Invalid type for 'prompt': expected a string, an array of one string, or an array of token ids.",
                "prompt", "invalid_type");
        }
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
