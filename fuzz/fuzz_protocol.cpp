// The preload daemon's protocol (docs/PROTOCOL.md): a request line as the server decodes it,
// the "cancel" scan over a connection's buffer, and the result and error lines as the client
// reads them back.
#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "preload/protocol.h"

using namespace cortex;
using nlohmann::json;

namespace {

bool same_config(const llm::GenerationConfig & a, const llm::GenerationConfig & b) {
    return a.max_tokens == b.max_tokens && a.temperature == b.temperature && a.top_p == b.top_p && a.top_k == b.top_k &&
           a.min_p == b.min_p && a.repeat_penalty == b.repeat_penalty && a.repeat_last_n == b.repeat_last_n &&
           a.seed == b.seed && a.stop == b.stop && a.grammar == b.grammar && a.json_schema == b.json_schema &&
           a.ignore_eos == b.ignore_eos && a.cache_prompt == b.cache_prompt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::string line = fuzz::as_string(data, size);
    const json j = json::parse(line, nullptr, false);  // as the server reads a line

    preload::Request request;
    if (fuzz::accepts([&] { request = preload::request_from_json(j); })) {
        // What the client sends for a request is what the server reads back.
        if (request.op == "complete" || request.op == "chat") {
            json again = json::object();
            preload::config_to_json(request.config, again);
            llm::GenerationConfig round_trip;
            fuzz::require(fuzz::accepts([&] { round_trip = preload::config_from_json(again); }),
                          "config_to_json() wrote a request config_from_json() refuses");
            fuzz::require(same_config(request.config, round_trip),
                          "a GenerationConfig changed on its way through JSON");
        }
        if (!request.messages.empty()) {
            std::vector<llm::Message> round_trip;
            fuzz::require(fuzz::accepts([&] {
                              round_trip = preload::messages_from_json(preload::messages_to_json(request.messages));
                          }),
                          "messages_to_json() wrote messages messages_from_json() refuses");
            fuzz::require(round_trip.size() == request.messages.size(), "messages were lost on their way through JSON");
        }
    }

    // The client's side: the same bytes as a daemon's answer.
    if (j.is_object()) {
        fuzz::accepts([&] { preload::result_from_json(j.contains("result") ? j["result"] : j); });
        if (j.contains("error")) fuzz::accepts([&] { preload::error_from_json(j["error"]); });
    }

    // A connection's buffer holding requests sent ahead: only whole "cancel" lines go.
    std::string buffer = line;
    bool found = false;
    fuzz::require(fuzz::accepts([&] { found = preload::take_cancel(buffer); }), "take_cancel() threw");
    fuzz::require(found ? buffer.size() < line.size() : buffer == line, "take_cancel() changed what it did not take");
    return 0;
}
