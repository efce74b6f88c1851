// The HTTP API's request bodies, decoded without a model (src/http/api_requests.h): the fields
// clients send, the errors for bad ones, and the inputs fuzz/ found.
#include <gtest/gtest.h>

#include "http/api_requests.h"

using namespace cortex;
using namespace cortex::http;

namespace {

json body(const std::string & text, bool openai) {
    httplib::Request req;
    req.body = text;
    return parse_body(req, openai);
}

// The ApiError `f` throws: its status and OpenAI "param".
template <typename F>
ApiError api_error(F && f) {
    try {
        f();
    } catch (const ApiError & e) {
        return e;
    }
    ADD_FAILURE() << "no ApiError thrown";
    return ApiError(0, ErrorCode::kInternal, "none");
}

}  // namespace

TEST(HttpRequests, OpenAiFieldsBecomeAGenerationConfig) {
    const llm::GenerationConfig c =
        openai_config(body(R"({"temperature":0.5,"top_p":0.9,"top_k":40.0,"seed":7,"max_tokens":64,"stop":"END",
                 "response_format":{"type":"json_object"}})",
                           true),
                      4096);
    EXPECT_FLOAT_EQ(c.temperature, 0.5f);
    EXPECT_FLOAT_EQ(c.top_p, 0.9f);
    EXPECT_EQ(c.top_k, 40) << "2.0 is a whole number to JavaScript";
    EXPECT_EQ(c.seed, 7u);
    EXPECT_EQ(c.max_tokens, 64);
    EXPECT_EQ(c.stop, std::vector<std::string>{"END"});
    EXPECT_EQ(c.json_schema, R"({"type":"object"})");
    EXPECT_EQ(openai_config(body(R"({"max_tokens":100000})", true), 512).max_tokens, 512) << "at most the slot";
    EXPECT_EQ(api_error([] { openai_config(body(R"({"temperature":2.5})", true), 512); }).param(), "temperature");
    EXPECT_EQ(api_error([] { openai_config(body(R"({"top_k":"many"})", true), 512); }).status(), 400);
}

// fuzz/corpus/openai_api/regression-huge-float-int: a float far outside long long's range was
// cast to long long (undefined behaviour, caught by UBSan) before being checked.
TEST(HttpRequests, HugeWholeFloatsAreNotIntegers) {
    const json b = body(
        R"({"model":"m","prompt":"Once upon a time","max_completion_tokens":7777777777777777777777777777777777777777777777777777777777777777777716,"top_p":0.9,"top_k":40,"min_p":0.1,"repeat_penalty":1.2,"stop":["\n","END"],"ignoreoe_s":false})",
        true);
    const ApiError e = api_error([&] { openai_config(b, 4096); });
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.param(), "max_completion_tokens");
    std::string note;
    for (const char * big : {"1e300", "-1e300", "9223372036854775808.0", "-9.3e18"}) {
        EXPECT_EQ(api_error([&] {
                      ollama_config(body(std::string(R"({"options":{"top_k":)") + big + "}}", false), 4096, note);
                  }).status(),
                  400)
            << big;
    }
    EXPECT_EQ(ollama_config(body(R"({"options":{"num_predict":-9.2e18}})", false), 4096, note).max_tokens, 4096);
}

TEST(HttpRequests, MessagesAndPrompts) {
    const std::vector<llm::Message> m = openai_messages(body(
        R"({"messages":[{"role":"developer","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]})",
        true));
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m[0].role, "system");
    EXPECT_EQ(m[1].content, "ab");
    EXPECT_EQ(api_error([] { openai_messages(body(R"({"messages":[]})", true)); }).api_code(), "empty_array");
    // fuzz/corpus/openai_api/regression-part-type-number: a content part whose "type" is not a
    // string threw nlohmann's type_error (a 500) instead of this 400. Found by reading after
    // the 10-minute run of fuzz_openai_api had not reached it.
    const ApiError part = api_error(
        [] { openai_messages(body(R"({"messages":[{"role":"user","content":[{"type":1,"text":"x"}]}]})", true)); });
    EXPECT_EQ(part.status(), 400);
    EXPECT_EQ(part.param(), "messages[0].content");
    EXPECT_EQ(openai_prompt(body(R"({"prompt":["one"]})", true)).text, "one");
    const OpenAiPrompt tokens = openai_prompt(body(R"({"prompt":[1,2,3]})", true));
    EXPECT_TRUE(tokens.is_tokens);
    EXPECT_EQ(tokens.tokens, (std::vector<llm::Token>{1, 2, 3}));
    EXPECT_EQ(api_error([] { openai_prompt(body(R"({"prompt":[1,"x"]})", true)); }).param(), "prompt");
    EXPECT_EQ(ollama_messages(body(R"({"messages":[{"role":"user","content":"hi"}]})", false)).size(), 1u);
    EXPECT_EQ(api_error([] { ollama_messages(body(R"({"messages":{}})", false)); }).status(), 400);
    EXPECT_EQ(api_error([] { body("[1]", true); }).status(), 400);
    EXPECT_EQ(api_error([] { body("", false); }).status(), 400);
}
