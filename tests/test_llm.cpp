// Generation on generated models through real libllama: determinism, stops, limits, grammars,
// chat templates, KV reuse, streaming and concurrency.
#include <gtest/gtest.h>

#include <thread>

#include "cortex/llm.h"
#include "llama-cpp.h"
#include "test_support.h"

using namespace cortex;
using namespace cortex::llm;
using cortex::test::model_path;

namespace {

ModelConfig test_config() {
    ModelConfig c;
    c.n_ctx = 512;
    c.n_threads = 1;  // ctest runs two tests at once on two cores
    return c;
}

std::shared_ptr<Model> qwen() {
    static std::shared_ptr<Model> model = Model::load(model_path("tiny-qwen2"), test_config());
    return model;
}

GenerationConfig greedy(int max_tokens) {
    GenerationConfig g;
    g.temperature = 0;
    g.max_tokens = max_tokens;
    return g;
}

// The reference: a plain libllama loop, greedy, on its own model and context; returns the
// generated tokens' text.
std::string plain_greedy(const std::string & path, const std::vector<llama_token> & prompt, int n, int * n_generated) {
    *n_generated = 0;
    llama_model_params mp = llama_model_default_params();
    llama_model_ptr model(llama_model_load_from_file(path.c_str(), mp));
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_threads = cp.n_threads_batch = 1;
    llama_context_ptr ctx(llama_init_from_model(model.get(), cp));
    const llama_vocab * vocab = llama_model_get_vocab(model.get());
    llama_sampler_ptr smpl(llama_sampler_init_greedy());
    std::vector<llama_token> input = prompt;
    llama_batch batch = llama_batch_get_one(input.data(), static_cast<int32_t>(input.size()));
    std::string out;
    for (int i = 0; i < n; ++i) {
        if (llama_decode(ctx.get(), batch) != 0) break;
        llama_token t = llama_sampler_sample(smpl.get(), ctx.get(), -1);
        if (llama_vocab_is_eog(vocab, t)) break;
        char piece[256];
        int len = llama_token_to_piece(vocab, t, piece, sizeof piece, 0, false);
        out.append(piece, len > 0 ? len : 0);
        ++*n_generated;
        input.assign(1, t);
        batch = llama_batch_get_one(input.data(), 1);
    }
    return out;
}

bool valid_utf8(const std::string & s) {
    size_t i = 0;
    while (i < s.size()) {
        unsigned char c = s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (size_t k = 1; k < n; ++k) {
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        }
        i += n;
    }
    return true;
}

}  // namespace

TEST(Generation, GreedyMatchesPlainLibllamaLoop) {
    for (const char * name : {"tiny-qwen2", "tiny-llama-bpe", "tiny-llama-spm"}) {
        auto model = Model::load(model_path(name), test_config());
        const std::string prompt = "The package manager of Debian is";
        std::vector<Token> tokens = model->tokenize(prompt);
        int n_expected = 0;
        std::string expected = plain_greedy(model_path(name), tokens, 40, &n_expected);
        ASSERT_GT(n_expected, 0) << name;
        Result r = model->complete(prompt, greedy(40));
        EXPECT_EQ(r.completion_tokens, n_expected) << name;
        EXPECT_EQ(r.content, expected) << name;
    }
}

TEST(Generation, SameSeedSameOutputDifferentSeedDifferentOutput) {
    GenerationConfig g;
    g.temperature = 1.5f;
    g.top_k = 0;
    g.top_p = 1.0f;
    g.min_p = 0;
    g.max_tokens = 24;
    g.ignore_eos = true;
    g.seed = 1234;
    // Cold prompts both times: on a GPU, a prompt read from the KV cache can give logits that
    // differ in the last bits from one evaluated afresh, and sampling amplifies that.
    g.cache_prompt = false;
    Result a = qwen()->complete("Once upon a time", g);
    Result b = qwen()->complete("Once upon a time", g);
    EXPECT_EQ(a.content, b.content);
    g.seed = 99;
    Result c = qwen()->complete("Once upon a time", g);
    EXPECT_NE(a.content, c.content);
}

TEST(Generation, MaxTokensGivesLengthFinish) {
    GenerationConfig g = greedy(7);
    g.ignore_eos = true;
    Result r = qwen()->complete("hello", g);
    EXPECT_EQ(r.completion_tokens, 7);
    EXPECT_EQ(r.finish_reason, FinishReason::kLength);
}

TEST(Generation, StopStringsAreCutEvenAcrossTokens) {
    GenerationConfig g = greedy(48);
    g.ignore_eos = true;
    Result full = qwen()->complete("Write:", g);
    ASSERT_GE(full.content.size(), 12u);
    // A stop string that starts inside one token and ends in a later one.
    const std::string stop = full.content.substr(full.content.size() / 2, 6);
    const size_t first = full.content.find(stop);
    g.stop = {stop};
    std::string streamed;
    Result r = qwen()->complete("Write:", g, [&](std::string_view p) {
        streamed += p;
        return true;
    });
    EXPECT_EQ(r.finish_reason, FinishReason::kStop);
    EXPECT_EQ(r.content, full.content.substr(0, first));
    EXPECT_EQ(streamed, r.content);
    EXPECT_EQ(r.content.find(stop), std::string::npos);
}

TEST(Generation, CallbackCancels) {
    GenerationConfig g = greedy(50);
    g.ignore_eos = true;
    int pieces = 0;
    Result r = qwen()->complete("hello", g, [&](std::string_view) { return ++pieces < 3; });
    EXPECT_EQ(r.finish_reason, FinishReason::kCancelled);
    EXPECT_EQ(pieces, 3);
    EXPECT_LT(r.completion_tokens, 50);
}

TEST(Generation, StreamedPiecesAreWholeUtf8AndAddUpToContent) {
    for (const char * name : {"tiny-qwen2", "tiny-llama-spm", "tiny-phi3"}) {
        auto model = Model::load(model_path(name), test_config());
        GenerationConfig g;
        g.temperature = 1.5f;  // wander over the vocabulary, byte tokens included
        g.top_k = 0;
        g.top_p = 1;
        g.min_p = 0;
        g.max_tokens = 200;
        g.ignore_eos = true;
        g.seed = 3;
        std::string streamed;
        Result r = model->complete("\xE4\xBD\xA0\xE5\xA5\xBD", g, [&](std::string_view p) {
            EXPECT_TRUE(valid_utf8(std::string(p))) << name;
            streamed += p;
            return true;
        });
        EXPECT_EQ(streamed, r.content) << name;
        EXPECT_TRUE(valid_utf8(r.content)) << name;
    }
}

TEST(Generation, GrammarConstrainsOutput) {
    GenerationConfig g;
    g.grammar = "root ::= (\"yes\" | \"no\") \" \" [0-9] [0-9]?";
    g.max_tokens = 32;
    g.seed = 5;
    for (int i = 0; i < 3; ++i) {
        g.seed = 5 + i;
        Result r = qwen()->complete("Answer:", g);
        EXPECT_EQ(r.finish_reason, FinishReason::kStop) << r.content;
        EXPECT_TRUE(r.content.rfind("yes ", 0) == 0 || r.content.rfind("no ", 0) == 0) << r.content;
        std::string digits = r.content.substr(r.content.find(' ') + 1);
        EXPECT_TRUE(digits.size() == 1 || digits.size() == 2) << r.content;
        for (char c : digits) EXPECT_TRUE(isdigit(static_cast<unsigned char>(c))) << r.content;
    }
}

TEST(Generation, JsonSchemaOutputParsesAndMatches) {
    GenerationConfig g;
    g.json_schema = R"({"type":"object","properties":{
        "action":{"type":"string","enum":["install","remove"]},
        "package":{"type":"string","enum":["nginx","apache2","docker.io"]},
        "confirm":{"type":"boolean"}},
        "required":["action","package","confirm"],"additionalProperties":false})";
    g.max_tokens = 200;
    for (uint32_t seed : {1u, 2u, 3u}) {
        g.seed = seed;
        Result r = qwen()->complete("Plan:", g);
        EXPECT_EQ(r.finish_reason, FinishReason::kStop) << r.content;
        // Minimal structural checks without a JSON library: every required key and an enum value.
        EXPECT_EQ(r.content.find_first_not_of(" \n\t"), r.content.find('{')) << r.content;
        EXPECT_NE(r.content.find("\"action\""), std::string::npos) << r.content;
        EXPECT_NE(r.content.find("\"package\""), std::string::npos) << r.content;
        EXPECT_NE(r.content.find("\"confirm\""), std::string::npos) << r.content;
        EXPECT_TRUE(r.content.find("\"install\"") != std::string::npos || r.content.find("\"remove\"") != std::string::npos);
        EXPECT_TRUE(r.content.find("true") != std::string::npos || r.content.find("false") != std::string::npos);
        EXPECT_EQ(r.content.substr(r.content.find_last_not_of(" \n\t")), "}") << r.content;
    }
}

TEST(ChatTemplate, ModelTemplateIsApplied) {
    std::vector<Message> msgs = {{"system", "You are Cortex."}, {"user", "Install docker"}};
    std::string qwen_prompt = qwen()->apply_chat_template(msgs);
    EXPECT_TRUE(qwen()->has_chat_template());
    EXPECT_NE(qwen_prompt.find("<|im_start|>system\nYou are Cortex.<|im_end|>"), std::string::npos) << qwen_prompt;
    EXPECT_NE(qwen_prompt.find("<|im_start|>user\nInstall docker<|im_end|>"), std::string::npos) << qwen_prompt;
    EXPECT_EQ(qwen_prompt.substr(qwen_prompt.size() - 22), "<|im_start|>assistant\n");

    auto llama3 = Model::load(model_path("tiny-llama-bpe"), test_config());
    std::string l3 = llama3->apply_chat_template(msgs);
    EXPECT_NE(l3.find("<|start_header_id|>user<|end_header_id|>"), std::string::npos) << l3;
    EXPECT_NE(l3.find("Install docker<|eot_id|>"), std::string::npos) << l3;

    // The chat() prompt is that text, tokenized with the special tokens as control tokens.
    Result r = qwen()->chat(msgs, greedy(4));
    EXPECT_EQ(r.prompt_tokens, static_cast<int>(qwen()->tokenize(qwen_prompt).size()));
    std::vector<Token> toks = qwen()->tokenize("<|im_start|>");
    EXPECT_EQ(toks.size(), 1u) << "<|im_start|> must be one control token";
}

TEST(ChatTemplate, ChatMLFallbackWithoutTemplate) {
    auto model = Model::load(model_path("tiny-no-template"), test_config());
    EXPECT_FALSE(model->has_chat_template());
    std::string p = model->apply_chat_template({{"user", "hi"}});
    EXPECT_NE(p.find("<|im_start|>user\nhi<|im_end|>"), std::string::npos) << p;
    EXPECT_NO_THROW(model->chat({{"user", "hi"}}, greedy(3)));
}

TEST(KvCache, ChatFollowUpEvaluatesOnlyNewTokens) {
    qwen()->clear_cache();
    std::vector<Message> msgs = {{"system", "You are Cortex."}, {"user", "Install nginx"}};
    Result first = qwen()->chat(msgs, greedy(8));
    EXPECT_EQ(first.cached_tokens, 0);

    msgs.push_back({"assistant", first.content});
    msgs.push_back({"user", "And docker too"});
    Result second = qwen()->chat(msgs, greedy(8));
    // The whole first prompt is reused; what is evaluated is about the reply and the new turn.
    // (All but possibly its last token, "\n", which BPE may merge with the reply's first.)
    EXPECT_GE(second.cached_tokens, first.prompt_tokens - 1);
    const int new_turn = static_cast<int>(qwen()->tokenize("<|im_end|>\n<|im_start|>user\nAnd docker too<|im_end|>\n<|im_start|>assistant\n").size());
    EXPECT_LE(second.prompt_tokens - second.cached_tokens, first.completion_tokens + new_turn + 2);

    // Same prompt again: everything but the last token comes from the cache...
    Result again = qwen()->chat(msgs, greedy(8));
    EXPECT_EQ(again.cached_tokens, again.prompt_tokens - 1);
    EXPECT_EQ(again.content, second.content);
    // ...and with caching off nothing does, with the same greedy answer.
    GenerationConfig nocache = greedy(8);
    nocache.cache_prompt = false;
    Result cold = qwen()->chat(msgs, nocache);
    EXPECT_EQ(cold.cached_tokens, 0);
    EXPECT_EQ(cold.content, second.content);
}

TEST(KvCache, DivergingPromptReusesCommonPrefixOnly) {
    qwen()->clear_cache();
    Result a = qwen()->complete("apt install nginx and then", greedy(4));
    Result b = qwen()->complete("apt install nginx or maybe", greedy(4));
    int common = 0;
    auto ta = qwen()->tokenize("apt install nginx and then");
    auto tb = qwen()->tokenize("apt install nginx or maybe");
    while (common < (int)ta.size() && ta[common] == tb[common]) ++common;
    EXPECT_EQ(b.cached_tokens, common);
    // Greedy output is the same as from a cold cache.
    GenerationConfig nocache = greedy(4);
    nocache.cache_prompt = false;
    EXPECT_EQ(qwen()->complete("apt install nginx or maybe", nocache).content, b.content);
}

TEST(Result, CountsAndTimingsAreFilled) {
    GenerationConfig g = greedy(16);
    g.ignore_eos = true;
    qwen()->clear_cache();
    Result r = qwen()->complete("Explain how to install nginx", g);
    EXPECT_EQ(r.prompt_tokens, static_cast<int>(qwen()->tokenize("Explain how to install nginx").size()));
    EXPECT_EQ(r.completion_tokens, 16);
    EXPECT_GT(r.tokens_per_second, 0);
    EXPECT_GT(r.prompt_tokens_per_second, 0);
    EXPECT_GT(r.time_to_first_token_ms, 0);
    EXPECT_GE(r.total_ms, r.time_to_first_token_ms);
    EXPECT_GT(r.load_ms, 0);
    EXPECT_STREQ(finish_reason_name(r.finish_reason), "length");
}

TEST(Generation, RunsOutOfContextAsLength) {
    ModelConfig c = test_config();
    c.n_ctx = 256;
    auto model = Model::load(model_path("tiny-qwen2"), c);
    ASSERT_EQ(model->n_ctx(), 256);
    GenerationConfig g = greedy(1000);
    g.ignore_eos = true;
    Result r = model->complete("hello there", g);
    EXPECT_EQ(r.finish_reason, FinishReason::kLength);
    EXPECT_EQ(r.prompt_tokens + r.completion_tokens, 257);  // the last sampled token needs no slot
}

TEST(Tokens, RoundTrip) {
    const std::string text = "sudo apt-get install -y nginx # héllo €";
    auto tokens = qwen()->tokenize(text, false, false);
    EXPECT_EQ(qwen()->detokenize(tokens), text);
    EXPECT_EQ(qwen()->complete(tokens, greedy(3)).prompt_tokens, static_cast<int>(tokens.size()));
}

TEST(Concurrency, TwoModelsLoadedAtOnce) {
    auto a = Model::load(model_path("tiny-qwen2"), test_config());
    auto b = Model::load(model_path("tiny-llama-bpe"), test_config());
    Result ra = a->complete("hello", greedy(5));
    Result rb = b->complete("hello", greedy(5));
    EXPECT_EQ(a->architecture(), "qwen2");
    EXPECT_EQ(b->architecture(), "llama");
    EXPECT_EQ(ra.content, a->complete("hello", greedy(5)).content);
    EXPECT_EQ(rb.content, b->complete("hello", greedy(5)).content);
}

TEST(Concurrency, ConcurrentCallsOnOneModelAreSerialisedAndCorrect) {
    auto model = Model::load(model_path("tiny-qwen2"), test_config());
    const std::vector<std::string> prompts = {"apt install nginx", "install docker", "set up python", "remove apache2"};
    std::vector<std::string> expected;
    for (auto & p : prompts) expected.push_back(model->complete(p, greedy(12)).content);
    std::vector<std::string> got(prompts.size() * 3);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < got.size(); ++i) {
        threads.emplace_back([&, i] { got[i] = model->complete(prompts[i % prompts.size()], greedy(12)).content; });
    }
    for (auto & t : threads) t.join();
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], expected[i % prompts.size()]) << i;
}
