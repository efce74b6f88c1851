// JSON of the preload protocol.
#include "protocol.h"

#include <limits>
#include <type_traits>

namespace cortex::preload {
namespace {

using nlohmann::json;

template <typename T>
void read_field(const json & j, const char * name, T & out, json::value_t kind) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) return;
    bool ok = kind == json::value_t::number_float     ? it->is_number()
              : kind == json::value_t::number_integer ? it->is_number_integer()
                                                      : it->type() == kind;
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        // get<int>() would wrap 2^32 + 5 to 5: a number out of range is as wrong as a string.
        ok = ok && !(it->is_number_unsigned() && it->template get<uint64_t>() > uint64_t(INT64_MAX)) &&
             it->template get<int64_t>() >= std::numeric_limits<T>::min() &&
             it->template get<int64_t>() <= std::numeric_limits<T>::max();
    }
    if (!ok) {
        throw Error(ErrorCode::kInvalidArgument, std::string("field \"") + name + "\" has the wrong type: " + it->dump(),
                    "see docs/PROTOCOL.md for the fields of a request");
    }
    out = it->get<T>();
}

const std::pair<ErrorCode, const char *> kCodes[] = {
    {ErrorCode::kInvalidArgument, "invalid_argument"}, {ErrorCode::kNotFound, "not_found"},
    {ErrorCode::kInvalidModel, "invalid_model"},       {ErrorCode::kUnsupportedModel, "unsupported_model"},
    {ErrorCode::kLoadFailed, "load_failed"},           {ErrorCode::kPromptTooLong, "prompt_too_long"},
    {ErrorCode::kInvalidGrammar, "invalid_grammar"},   {ErrorCode::kInvalidSchema, "invalid_schema"},
    {ErrorCode::kTemplateFailed, "template_failed"},   {ErrorCode::kDecodeFailed, "decode_failed"},
    {ErrorCode::kIo, "io"},                            {ErrorCode::kNetwork, "network"},
    {ErrorCode::kChecksumMismatch, "checksum_mismatch"}, {ErrorCode::kCancelled, "cancelled"},
    {ErrorCode::kBusy, "busy"},                        {ErrorCode::kInternal, "internal"},
};

}  // namespace

llm::GenerationConfig config_from_json(const json & r) {
    llm::GenerationConfig c;
    read_field(r, "max_tokens", c.max_tokens, json::value_t::number_integer);
    read_field(r, "temperature", c.temperature, json::value_t::number_float);
    read_field(r, "top_p", c.top_p, json::value_t::number_float);
    read_field(r, "top_k", c.top_k, json::value_t::number_integer);
    read_field(r, "min_p", c.min_p, json::value_t::number_float);
    read_field(r, "repeat_penalty", c.repeat_penalty, json::value_t::number_float);
    read_field(r, "repeat_last_n", c.repeat_last_n, json::value_t::number_integer);
    read_field(r, "grammar", c.grammar, json::value_t::string);
    read_field(r, "ignore_eos", c.ignore_eos, json::value_t::boolean);
    read_field(r, "cache_prompt", c.cache_prompt, json::value_t::boolean);
    if (auto it = r.find("seed"); it != r.end() && !it->is_null()) {
        if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 0xFFFFFFFFll) {
            throw Error(ErrorCode::kInvalidArgument, "field \"seed\" must be a whole number from 0 to 4294967295", "omit it for a random seed");
        }
        c.seed = static_cast<uint32_t>(it->get<int64_t>());
    }
    if (auto it = r.find("stop"); it != r.end() && !it->is_null()) {
        if (it->is_string()) {
            c.stop = {it->get<std::string>()};
        } else if (it->is_array()) {
            for (const auto & s : *it) {
                if (!s.is_string()) throw Error(ErrorCode::kInvalidArgument, "field \"stop\" must hold strings", "e.g. \"stop\": [\"\\n\\n\"]");
                c.stop.push_back(s.get<std::string>());
            }
        } else {
            throw Error(ErrorCode::kInvalidArgument, "field \"stop\" must be a string or an array of strings", "e.g. \"stop\": [\"\\n\\n\"]");
        }
    }
    if (auto it = r.find("json_schema"); it != r.end() && !it->is_null()) {
        c.json_schema = it->is_string() ? it->get<std::string>() : it->dump();
    }
    return c;
}

void config_to_json(const llm::GenerationConfig & c, json & r) {
    r["max_tokens"] = c.max_tokens;
    r["temperature"] = c.temperature;
    r["top_p"] = c.top_p;
    r["top_k"] = c.top_k;
    r["min_p"] = c.min_p;
    r["repeat_penalty"] = c.repeat_penalty;
    r["repeat_last_n"] = c.repeat_last_n;
    r["seed"] = c.seed;
    if (!c.stop.empty()) r["stop"] = c.stop;
    if (!c.grammar.empty()) r["grammar"] = c.grammar;
    if (!c.json_schema.empty()) r["json_schema"] = c.json_schema;
    if (c.ignore_eos) r["ignore_eos"] = true;
    if (!c.cache_prompt) r["cache_prompt"] = false;
}

json result_to_json(const llm::Result & r) {
    return {{"content", r.content},
            {"finish_reason", llm::finish_reason_name(r.finish_reason)},
            {"prompt_tokens", r.prompt_tokens},
            {"cached_tokens", r.cached_tokens},
            {"completion_tokens", r.completion_tokens},
            {"tokens_per_second", r.tokens_per_second},
            {"prompt_tokens_per_second", r.prompt_tokens_per_second},
            {"time_to_first_token_ms", r.time_to_first_token_ms},
            {"total_ms", r.total_ms},
            {"load_ms", r.load_ms}};
}

llm::Result result_from_json(const json & j) {
    // A field of the wrong type or out of range (nlohmann would convert 1e30 into an int
    // unchecked, which is undefined behaviour), or no object at all: the daemon broke the protocol.
    auto malformed = [&] {
        return Error(ErrorCode::kInternal, "the preload daemon sent a malformed result: " + j.dump(),
                     "please report this bug");
    };
    if (!j.is_object()) throw malformed();
    llm::Result r;
    std::string finish = "stop";
    try {
        read_field(j, "content", r.content, json::value_t::string);
        read_field(j, "finish_reason", finish, json::value_t::string);
        read_field(j, "prompt_tokens", r.prompt_tokens, json::value_t::number_integer);
        read_field(j, "cached_tokens", r.cached_tokens, json::value_t::number_integer);
        read_field(j, "completion_tokens", r.completion_tokens, json::value_t::number_integer);
        read_field(j, "tokens_per_second", r.tokens_per_second, json::value_t::number_float);
        read_field(j, "prompt_tokens_per_second", r.prompt_tokens_per_second, json::value_t::number_float);
        read_field(j, "time_to_first_token_ms", r.time_to_first_token_ms, json::value_t::number_float);
        read_field(j, "total_ms", r.total_ms, json::value_t::number_float);
        read_field(j, "load_ms", r.load_ms, json::value_t::number_float);
    } catch (const Error &) {
        throw malformed();
    }
    r.finish_reason = finish == "length"      ? llm::FinishReason::kLength
                      : finish == "cancelled" ? llm::FinishReason::kCancelled
                                              : llm::FinishReason::kStop;
    return r;
}

json messages_to_json(const std::vector<llm::Message> & messages) {
    json out = json::array();
    for (const auto & m : messages) out.push_back({{"role", m.role}, {"content", m.content}});
    return out;
}

std::vector<llm::Message> messages_from_json(const json & j) {
    if (!j.is_array()) {
        throw Error(ErrorCode::kInvalidArgument, "\"messages\" must be [{\"role\":...,\"content\":...}]", "see docs/PROTOCOL.md");
    }
    std::vector<llm::Message> messages;
    for (const auto & m : j) {
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") || !m["content"].is_string()) {
            throw Error(ErrorCode::kInvalidArgument, "each message needs string \"role\" and \"content\"", "see docs/PROTOCOL.md");
        }
        messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    }
    return messages;
}

json error_to_json(const Error & e) {
    return {{"code", error_code_name(e.code())}, {"message", e.message()}, {"hint", e.hint()}};
}

Error error_from_json(const json & j) {
    auto text = [&](const char * name, const char * fallback) {
        auto it = j.is_object() ? j.find(name) : j.end();
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string(fallback);
    };
    if (!j.is_object()) {
        return Error(ErrorCode::kInternal, "the preload daemon sent a malformed error: " + j.dump(),
                     "please report this bug");
    }
    const std::string name = text("code", "internal");
    ErrorCode code = ErrorCode::kInternal;
    for (const auto & [c, n] : kCodes) {
        if (name == n) code = c;
    }
    return Error(code, text("message", "the preload daemon failed"), text("hint", ""));
}

Request request_from_json(const json & j) {
    if (!j.is_object()) {
        throw Error(ErrorCode::kInvalidArgument, "a request must be one JSON object per line",
                    "e.g. {\"v\":1,\"op\":\"status\"}");
    }
    if (j.contains("v") && j["v"] != kProtocolVersion) {
        throw Error(ErrorCode::kInvalidArgument,
                    "protocol version " + j["v"].dump() + " is not supported (this daemon speaks 1)",
                    "update the client");
    }
    Request r;
    read_field(j, "op", r.op, json::value_t::string);
    const std::string & op = r.op;
    const bool generation = op == "complete" || op == "chat";
    if (generation || op == "tokenize" || op == "detokenize" || op == "apply_chat_template") {
        read_field(j, "model_path", r.model_path, json::value_t::string);
    }
    // Token ids: whole numbers that fit a llama_token; whether the vocabulary has them is the model's to say.
    auto token_ids = [&](const json & list, const char * field) {
        for (const auto & t : list) {
            if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
                t.get<int64_t>() > std::numeric_limits<llm::Token>::max() ||
                (t.is_number_unsigned() && t.get<uint64_t>() > uint64_t(INT64_MAX))) {
                throw Error(ErrorCode::kInvalidArgument,
                            std::string("\"") + field + "\" must hold token ids (whole numbers from 0)",
                            "token ids come from tokenize, or send text");
            }
            r.tokens.push_back(static_cast<llm::Token>(t.get<int64_t>()));
        }
    };
    if (op == "load") {
        if (!j.contains("model") || !j["model"].is_string()) {
            throw Error(ErrorCode::kInvalidArgument, "load needs \"model\": a name or path",
                        "e.g. {\"op\":\"load\",\"model\":\"qwen2.5-7b\"}");
        }
        r.model = j["model"].get<std::string>();
    } else if (op == "tokenize") {
        if (!j.contains("text") || !j["text"].is_string()) {
            throw Error(ErrorCode::kInvalidArgument, "tokenize needs \"text\"",
                        "e.g. {\"op\":\"tokenize\",\"text\":\"hi\"}");
        }
        r.text = j["text"].get<std::string>();
        read_field(j, "add_special", r.add_special, json::value_t::boolean);
        read_field(j, "parse_special", r.parse_special, json::value_t::boolean);
    } else if (op == "detokenize") {
        if (!j.contains("tokens") || !j["tokens"].is_array()) {
            throw Error(ErrorCode::kInvalidArgument, "detokenize needs \"tokens\": [ids]",
                        "e.g. {\"op\":\"detokenize\",\"tokens\":[1,2]}");
        }
        token_ids(j["tokens"], "tokens");
        read_field(j, "render_special", r.render_special, json::value_t::boolean);
    } else if (op == "apply_chat_template") {
        r.messages = messages_from_json(j.contains("messages") ? j["messages"] : json());
        read_field(j, "add_generation_prompt", r.add_generation_prompt, json::value_t::boolean);
    } else if (generation) {
        r.config = config_from_json(j);
        read_field(j, "stream", r.stream, json::value_t::boolean);
        if (op == "chat") {
            if (!j.contains("messages") || !j["messages"].is_array()) {
                throw Error(ErrorCode::kInvalidArgument, "chat needs \"messages\": [{\"role\":...,\"content\":...}]",
                            "see docs/PROTOCOL.md");
            }
            r.messages = messages_from_json(j["messages"]);
        } else if (j.contains("prompt") && j["prompt"].is_string()) {
            r.text = j["prompt"].get<std::string>();
        } else if (j.contains("prompt") && j["prompt"].is_array()) {
            r.prompt_tokens = true;
            token_ids(j["prompt"], "prompt");
        } else {
            throw Error(ErrorCode::kInvalidArgument, "complete needs \"prompt\": text or token ids",
                        "see docs/PROTOCOL.md");
        }
    }
    return r;
}

bool take_cancel(std::string & buffer) {
    bool found = false;
    std::string kept;
    size_t start = 0;
    for (size_t nl; (nl = buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
        const std::string line = buffer.substr(start, nl - start);
        const json j = json::parse(line, nullptr, false);
        auto op = j.is_object() ? j.find("op") : j.end();
        if (op != j.end() && op->is_string() && *op == "cancel") {
            found = true;
        } else {
            kept += line + "\n";
        }
    }
    buffer = kept + buffer.substr(start);
    return found;
}

}  // namespace cortex::preload
