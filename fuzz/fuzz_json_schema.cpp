// A JSON schema from a request (the protocol's json_schema, Ollama's "format", OpenAI's
// response_format) turned into a grammar, as the sampler does before generating. The conversion
// is libllama-common's (not instrumented: no coverage guidance inside it), but whatever it does
// with a request's schema, the daemon must answer with an error, not crash or hang.
#include "fuzz_common.h"
#include "llm/sampler.h"

using namespace cortex;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    std::string grammar;
    if (fuzz::accepts([&] { grammar = llm::json_schema_to_gbnf(fuzz::as_string(data, size)); })) {
        fuzz::require(grammar.find("root") != std::string::npos, "a grammar without a root rule");
    }
    return 0;
}
