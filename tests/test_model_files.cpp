// Bad input to the library: every case is a cortex::Error with a code and a hint, never an abort.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <random>

#include "cortex/llm.h"
#include "test_support.h"

using namespace cortex;
using namespace cortex::llm;
using cortex::test::model_path;
using cortex::test::expect_error;
using cortex::test::TempDir;

namespace {

ModelConfig small_ctx() {
    ModelConfig c;
    c.n_ctx = 256;
    return c;
}

std::shared_ptr<Model> tiny() {
    static std::shared_ptr<Model> model = Model::load(model_path("tiny-qwen2"), small_ctx());
    return model;
}

}  // namespace

TEST(ModelFiles, MissingFile) {
    Error e = expect_error(ErrorCode::kNotFound, [] { Model::load("/nonexistent/model.gguf"); });
    EXPECT_NE(e.message().find("/nonexistent/model.gguf"), std::string::npos);
}

TEST(ModelFiles, Directory) {
    TempDir dir;
    Error e = expect_error(ErrorCode::kInvalidModel, [&] { Model::load(dir.path()); });
    EXPECT_NE(e.message().find("directory"), std::string::npos);
}

TEST(ModelFiles, EmptyFile) {
    TempDir dir;
    cortex::test::write_file(dir.file("empty.gguf"), "");
    Error e = expect_error(ErrorCode::kInvalidModel, [&] { Model::load(dir.file("empty.gguf")); });
    EXPECT_NE(e.message().find("empty"), std::string::npos);
}

TEST(ModelFiles, WrongMagic) {
    TempDir dir;
    cortex::test::write_file(dir.file("m.gguf"), "<html>Not Found</html>");
    Error e = expect_error(ErrorCode::kInvalidModel, [&] { Model::load(dir.file("m.gguf")); });
    EXPECT_NE(e.message().find("not a GGUF"), std::string::npos);
}

TEST(ModelFiles, RandomBytes) {
    TempDir dir;
    std::mt19937 rng(7);
    for (int round = 0; round < 20; ++round) {
        std::string bytes(1 + rng() % 4096, '\0');
        for (char & c : bytes) c = static_cast<char>(rng());
        if (round % 2 == 0 && bytes.size() >= 4) bytes.replace(0, 4, "GGUF");  // get past the magic
        cortex::test::write_file(dir.file("r.gguf"), bytes);
        expect_error(ErrorCode::kInvalidModel, [&] { Model::load(dir.file("r.gguf")); });
    }
}

TEST(ModelFiles, TruncatedAtManyPoints) {
    TempDir dir;
    const std::string whole = cortex::test::read_file(model_path("tiny-llama-spm"));
    ASSERT_GT(whole.size(), 100000u);
    for (size_t cut : {size_t(3), size_t(16), size_t(100), size_t(5000), whole.size() / 2, whole.size() - 1}) {
        cortex::test::write_file(dir.file("t.gguf"), whole.substr(0, cut));
        expect_error(ErrorCode::kInvalidModel, [&] { Model::load(dir.file("t.gguf")); });
    }
}

TEST(ModelFiles, VocabOnlyFile) {
    // A GGUF with a tokenizer and no weights: valid GGUF, not a model.
    const std::string vocab = cortex::test::vocab_path("qwen2");
    Error e = expect_error(ErrorCode::kInvalidModel, [&] { Model::load(vocab); });
    EXPECT_NE(e.message().find("no tensors"), std::string::npos);
}

TEST(ModelFiles, UnknownArchitecture) {
    Error e = expect_error(ErrorCode::kUnsupportedModel, [] { Model::load(model_path("tiny-unknown-arch"), small_ctx()); });
    EXPECT_NE(e.message().find("cortex-unknown"), std::string::npos);
}

TEST(ModelFiles, UnreadableFile) {
    if (geteuid() == 0) GTEST_SKIP() << "root reads every file";
    TempDir dir;
    cortex::test::write_file(dir.file("locked.gguf"), "GGUF");
    chmod(dir.file("locked.gguf").c_str(), 0);
    expect_error(ErrorCode::kIo, [&] { Model::load(dir.file("locked.gguf")); });
}

TEST(ModelConfigErrors, NonPositiveContext) {
    for (int n_ctx : {0, -1, -4096}) {
        ModelConfig c;
        c.n_ctx = n_ctx;
        expect_error(ErrorCode::kInvalidArgument, [&] { Model::load(model_path("tiny-qwen2"), c); });
    }
}

TEST(ModelConfigErrors, BadBatchThreadsAndGpuLayers) {
    ModelConfig c;
    c.n_batch = 0;
    expect_error(ErrorCode::kInvalidArgument, [&] { Model::load(model_path("tiny-qwen2"), c); });
    c = ModelConfig{};
    c.n_threads = -2;
    expect_error(ErrorCode::kInvalidArgument, [&] { Model::load(model_path("tiny-qwen2"), c); });
    c = ModelConfig{};
    c.n_gpu_layers = -5;
    expect_error(ErrorCode::kInvalidArgument, [&] { Model::load(model_path("tiny-qwen2"), c); });
}

TEST(GenerationErrors, PromptLongerThanContext) {
    std::string prompt;
    for (int i = 0; i < 400; ++i) prompt += "apt install nginx ";
    Error e = expect_error(ErrorCode::kPromptTooLong, [&] { tiny()->complete(prompt); });
    EXPECT_NE(e.message().find("256"), std::string::npos);
    // The model still works afterwards.
    GenerationConfig g;
    g.max_tokens = 4;
    EXPECT_NO_THROW(tiny()->complete("hello", g));
}

TEST(GenerationErrors, MalformedGrammar) {
    for (const char * grammar : {"root ::= (", "root ::= \"unterminated", "not a grammar at all", "root ::= undefined-rule"}) {
        GenerationConfig g;
        g.grammar = grammar;
        expect_error(ErrorCode::kInvalidGrammar, [&] { tiny()->complete("x", g); });
    }
}

TEST(GenerationErrors, MalformedSchema) {
    for (const char * schema : {"{", "not json", "{\"type\": \"object\", \"properties\": 5}", "[1,2"}) {
        GenerationConfig g;
        g.json_schema = schema;
        expect_error(ErrorCode::kInvalidSchema, [&] { tiny()->complete("x", g); });
    }
}

TEST(GenerationErrors, OutOfRangeSettings) {
    std::vector<std::function<void(GenerationConfig &)>> breakers = {
        [](GenerationConfig & g) { g.max_tokens = 0; },
        [](GenerationConfig & g) { g.temperature = -1; },
        [](GenerationConfig & g) { g.temperature = std::numeric_limits<float>::quiet_NaN(); },
        [](GenerationConfig & g) { g.top_p = 0; },
        [](GenerationConfig & g) { g.top_p = 1.5f; },
        [](GenerationConfig & g) { g.top_k = -1; },
        [](GenerationConfig & g) { g.min_p = 2; },
        [](GenerationConfig & g) { g.repeat_penalty = 0; },
        [](GenerationConfig & g) { g.repeat_last_n = -2; },
        [](GenerationConfig & g) { g.grammar = "root ::= \"a\""; g.json_schema = "{}"; },
        [](GenerationConfig & g) { g.grammar = "root ::= \"a\""; g.ignore_eos = true; },
    };
    for (auto & brk : breakers) {
        GenerationConfig g;
        brk(g);
        expect_error(ErrorCode::kInvalidArgument, [&] { tiny()->complete("x", g); });
    }
}

TEST(GenerationErrors, EmptyPromptWithoutBos) {
    // qwen2 adds no BOS, so an empty prompt has no token at all.
    expect_error(ErrorCode::kInvalidArgument, [] { tiny()->complete(std::string()); });
    expect_error(ErrorCode::kInvalidArgument, [] { tiny()->complete(std::vector<Token>{}); });
}

TEST(GenerationErrors, TokensOutsideTheVocabulary) {
    expect_error(ErrorCode::kInvalidArgument, [] { tiny()->complete(std::vector<Token>{1, -5}); });
    expect_error(ErrorCode::kInvalidArgument, [] { tiny()->complete(std::vector<Token>{tiny()->n_vocab()}); });
    expect_error(ErrorCode::kInvalidArgument, [] { tiny()->detokenize({tiny()->n_vocab() + 10}); });
}

TEST(GenerationErrors, BadChatMessages) {
    expect_error(ErrorCode::kInvalidArgument, [] { tiny()->chat({}); });
    expect_error(ErrorCode::kInvalidArgument, [] { tiny()->chat({{"wizard", "hi"}}); });
}
