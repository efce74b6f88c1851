// The request bodies of the HTTP API decoded: generation settings, messages and prompts.
#include "http/api_requests.h"

#include <limits>

namespace cortex::http {

llm::GenerationConfig ollama_config(const json & body, int slot, std::string & note) {
    llm::GenerationConfig c;
    c.max_tokens = slot;
    auto it = body.find("options");
    if (it != body.end() && !it->is_null()) {
        if (!it->is_object())
            throw ApiError(400, ErrorCode::kInvalidArgument, "\"options\" must be an object", "options",
                           "invalid_type");
        const json & o = *it;
        double d = 0;
        long long n = 0;
        if (get_number(o, "temperature", d, "options")) c.temperature = static_cast<float>(d);
        if (get_number(o, "top_p", d, "options")) c.top_p = static_cast<float>(d);
        if (get_number(o, "min_p", d, "options")) c.min_p = static_cast<float>(d);
        if (get_number(o, "repeat_penalty", d, "options")) c.repeat_penalty = static_cast<float>(d);
        if (get_int(o, "top_k", n, "options")) c.top_k = static_cast<int>(n);
        if (get_int(o, "repeat_last_n", n, "options")) c.repeat_last_n = static_cast<int>(n);
        if (get_int(o, "seed", n, "options") && n >= 0)
            c.seed = static_cast<uint32_t>(n);  // negative: random, as Ollama
        if (get_int(o, "num_predict", n, "options") && n > 0)
            c.max_tokens = static_cast<int>(std::min<long long>(n, slot));
        if (get_int(o, "num_ctx", n, "options") && n > slot) {
            note = "num_ctx " + std::to_string(n) + " ignored: this daemon's slots hold " + std::to_string(slot) +
                   " tokens (start it with a larger n_ctx: LLAMACPP_N_CTX)";
        }
        get_stop(o, c.stop, "options");
    }
    auto f = body.find("format");
    if (f != body.end() && !f->is_null()) {
        if (f->is_string()) {
            const std::string s = f->get<std::string>();
            if (s == "json")
                c.json_schema = R"({"type":"object"})";
            else if (!s.empty())
                throw ApiError(400, ErrorCode::kInvalidArgument,
                               "invalid format: \"" + s + "\" (use \"json\" or a JSON schema)");
        } else if (f->is_object()) {
            c.json_schema = f->dump();
        } else {
            throw ApiError(400, ErrorCode::kInvalidArgument, "invalid format: use \"json\" or a JSON schema object");
        }
    }
    return c;
}

std::vector<llm::Message> ollama_messages(const json & body) {
    std::vector<llm::Message> messages;
    auto it = body.find("messages");
    if (it == body.end() || it->is_null()) return messages;
    if (!it->is_array())
        throw ApiError(400, ErrorCode::kInvalidArgument, "\"messages\" must be an array of {role, content}", "messages",
                       "invalid_type");
    for (const auto & m : *it) {
        if (!m.is_object())
            throw ApiError(400, ErrorCode::kInvalidArgument,
                           "each message must be an object with \"role\" and \"content\"");
        std::string role, content;
        get_string(m, "role", role, "messages");
        get_string(m, "content", content, "messages");
        if (role.empty()) throw ApiError(400, ErrorCode::kInvalidArgument, "each message needs a \"role\"");
        messages.push_back({role, content});
    }
    return messages;
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

namespace {

// A message's content: a string, or an array of parts of which the text ones count.
std::string content_text(const json & m, size_t i) {
    auto it = m.find("content");
    if (it == m.end() || it->is_null()) return "";
    if (it->is_string()) return it->get<std::string>();
    if (it->is_array()) {
        std::string text;
        for (const auto & part : *it) {
            // A comparison, not value("type", ""): that throws a type_error for {"type": 1}.
            if (part.is_object() && part.contains("type") && part["type"] == "text" && part.contains("text") &&
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

}  // namespace

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

OpenAiPrompt openai_prompt(const json & body) {
    OpenAiPrompt out;
    auto p = body.find("prompt");
    if (p == body.end() || p->is_null()) {
        throw ApiError(400, ErrorCode::kInvalidArgument, "Missing required parameter: 'prompt'.", "prompt",
                       "missing_required_parameter");
    }
    if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
        out.text = (*p)[0].get<std::string>();
    } else if (p->is_string()) {
        out.text = p->get<std::string>();
    } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
        out.is_tokens = true;
        for (const auto & t : *p) {
            if (!t.is_number_integer())
                throw ApiError(400, ErrorCode::kInvalidArgument, "Invalid 'prompt': token ids must be integers.",
                               "prompt", "invalid_type");
            out.tokens.push_back(t.get<int32_t>());
        }
    } else {
        throw ApiError(
            400, ErrorCode::kInvalidArgument,
            "Invalid type for 'prompt': expected a string, an array of one string, or an array of token ids.", "prompt",
            "invalid_type");
    }
    return out;
}

}  // namespace cortex::http
