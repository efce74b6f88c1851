// The body of a request to the daemon's Ollama API (/api/generate, /api/chat): parsed as the
// routes parse it, then its options, format and messages decoded.
#include "fuzz_common.h"
#include "http/api_requests.h"

using namespace cortex;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    httplib::Request req;
    req.body = fuzz::as_string(data, size);
    http::json body;
    if (!fuzz::accepts([&] { body = http::parse_body(req, false); })) return 0;
    fuzz::require(body.is_object(), "parse_body() let a non-object through");

    constexpr int kSlot = 4096;
    std::string note;
    llm::GenerationConfig config;
    if (fuzz::accepts([&] { config = http::ollama_config(body, kSlot, note); })) {
        fuzz::require(config.max_tokens >= 1 && config.max_tokens <= kSlot, "max_tokens outside the slot");
    }
    fuzz::accepts([&] { http::ollama_messages(body); });
    // The flat fields /api/generate reads.
    std::string s;
    bool b = false;
    fuzz::accepts([&] {
        http::get_string(body, "model", s, "");
        http::get_string(body, "prompt", s, "");
        http::get_string(body, "system", s, "");
        http::get_bool(body, "raw", b, "");
        http::get_bool(body, "stream", b, "");
    });
    return 0;
}
