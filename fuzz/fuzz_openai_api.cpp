// The body of a request to the daemon's OpenAI API (/v1/chat/completions, /v1/completions):
// parsed as the routes parse it, then its sampling fields, response_format, messages and prompt.
#include "fuzz_common.h"
#include "http/api_requests.h"

using namespace cortex;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    httplib::Request req;
    req.body = fuzz::as_string(data, size);
    http::json body;
    if (!fuzz::accepts([&] { body = http::parse_body(req, true); })) return 0;

    constexpr int kSlot = 4096;
    llm::GenerationConfig config;
    if (fuzz::accepts([&] { config = http::openai_config(body, kSlot); })) {
        fuzz::require(config.max_tokens >= 1 && config.max_tokens <= kSlot, "max_tokens outside the slot");
        fuzz::require(config.temperature >= 0 && config.temperature <= 2, "temperature outside [0, 2]");
        fuzz::require(config.top_p >= 0 && config.top_p <= 1, "top_p outside [0, 1]");
    }
    std::vector<llm::Message> messages;
    if (fuzz::accepts([&] { messages = http::openai_messages(body); })) {
        fuzz::require(!messages.empty(), "an empty conversation accepted");
        for (const llm::Message & m : messages) fuzz::require(!m.role.empty(), "a message without a role accepted");
    }
    http::OpenAiPrompt prompt;
    if (fuzz::accepts([&] { prompt = http::openai_prompt(body); })) {
        fuzz::require(prompt.is_tokens ? !prompt.tokens.empty() && prompt.text.empty() : prompt.tokens.empty(),
                      "a prompt both text and tokens");
    }
    bool b = false;
    fuzz::accepts([&] { http::get_bool(body, "stream", b, ""); });
    return 0;
}
