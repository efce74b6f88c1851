// ModelManager::load_model() through a real preload daemon: the same answers, metadata and errors
// as the model loaded in-process, CORTEX_PRELOAD=auto|off|required, and a daemon that is gone,
// killed mid-stream, reloaded with another model or serving another one.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "cortex/llm.h"
#include "cortex/preload.h"
#include "test_support.h"

extern char ** environ;

using namespace cortex;
using cortex::test::TempDir;

namespace {

constexpr int kNCtx = 1024;

llm::GenerationConfig greedy(int n) {
    llm::GenerationConfig g;
    g.temperature = 0;
    g.max_tokens = n;
    return g;
}

llm::ModelConfig model_config() {
    llm::ModelConfig c;
    c.n_ctx = kNCtx;
    c.n_threads = 1;
    return c;
}

// A CORTEX_HOME with models/tiny.gguf (tiny-qwen2) and models/other.gguf (tiny-llama-bpe), and
// the environment a daemon started from it reads.
class Routing : public ::testing::Test {
  protected:
    void SetUp() override {
        std::filesystem::create_directories(home_.file("models"));
        std::filesystem::copy_file(cortex::test::model_path("tiny-qwen2"), home_.file("models/tiny.gguf"));
        std::filesystem::copy_file(cortex::test::model_path("tiny-llama-bpe"), home_.file("models/other.gguf"));
        socket_ = home_.file("run/preload.sock");
        setenv("CORTEX_HOME", home_.path().c_str(), 1);
        unsetenv("CORTEX_PRELOAD_SOCKET");
        unsetenv("XDG_RUNTIME_DIR");
        unsetenv("CORTEX_PRELOAD");
        setenv("LLAMACPP_N_CTX", std::to_string(kNCtx).c_str(), 1);
        setenv("LLAMACPP_N_THREADS", "1", 1);
    }
    void TearDown() override {
        stop_daemon();
        unsetenv("CORTEX_HOME");
        unsetenv("CORTEX_PRELOAD");
        unsetenv("LLAMACPP_N_CTX");
        unsetenv("LLAMACPP_N_THREADS");
    }

    void start_daemon(const std::string & model) {
        pid_ = cortex::test::spawn_logged({CORTEX_PRELOAD_BIN, "run", "--model", model, "--parallel", "2"},
                                          home_.file("daemon.log"));
        if (!cortex::test::wait_for_daemon(socket_)) FAIL() << "daemon did not start: " << cortex::test::read_file(home_.file("daemon.log"));
    }
    void stop_daemon() {
        if (pid_ <= 0) return;
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

    // Generation requests the daemon has finished: how a test sees which way a call went.
    int served() {
        auto c = preload::Client::connect(socket_);
        if (!c) return -1;
        nlohmann::json s = nlohmann::json::parse(c->status().json);
        return s["models"].empty() ? -1 : s["models"][0].value("requests_served", -1);
    }

    std::string path(const std::string & name) const { return home_.file("models/" + name + ".gguf"); }

    TempDir home_;
    std::string socket_;
    pid_t pid_ = -1;
};

struct Output {
    llm::Result result;
    std::vector<std::string> pieces;
};

Output complete(llm::Model & m, const std::string & prompt, const llm::GenerationConfig & g) {
    Output o;
    o.result = m.complete(prompt, g, [&](std::string_view p) {
        o.pieces.emplace_back(p);
        return true;
    });
    return o;
}

Output chat(llm::Model & m, const std::vector<llm::Message> & messages, const llm::GenerationConfig & g) {
    Output o;
    o.result = m.chat(messages, g, [&](std::string_view p) {
        o.pieces.emplace_back(p);
        return true;
    });
    return o;
}

void expect_same(const Output & remote, const Output & local, const std::string & what) {
    EXPECT_EQ(remote.result.content, local.result.content) << what;
    EXPECT_EQ(remote.pieces, local.pieces) << what;
    EXPECT_EQ(remote.result.finish_reason, local.result.finish_reason) << what;
    EXPECT_EQ(remote.result.prompt_tokens, local.result.prompt_tokens) << what;
    EXPECT_EQ(remote.result.completion_tokens, local.result.completion_tokens) << what;
}

ErrorCode code_of(const std::function<void()> & f) {
    try {
        f();
    } catch (const Error & e) {
        EXPECT_FALSE(e.message().empty());
        EXPECT_FALSE(e.hint().empty()) << e.message();
        return e.code();
    }
    ADD_FAILURE() << "no error";
    return ErrorCode::kInternal;
}

}  // namespace

TEST_F(Routing, TheDaemonsModelAnswersAsTheInProcessOne) {
    start_daemon("tiny");
    llm::ModelManager manager(home_.file("models"));
    std::shared_ptr<llm::Model> remote = manager.load_model("tiny", model_config());
    std::shared_ptr<llm::Model> local = llm::Model::load(manager.resolve("tiny"), model_config());
    const int served_before = served();

    EXPECT_EQ(remote->path(), local->path());
    EXPECT_EQ(remote->config(), local->config());
    EXPECT_EQ(remote->architecture(), local->architecture());
    EXPECT_EQ(remote->description(), local->description());
    EXPECT_EQ(remote->n_ctx(), local->n_ctx());
    EXPECT_EQ(remote->n_ctx_train(), local->n_ctx_train());
    EXPECT_EQ(remote->n_vocab(), local->n_vocab());
    EXPECT_EQ(remote->n_params(), local->n_params());
    EXPECT_EQ(remote->size_bytes(), local->size_bytes());
    EXPECT_EQ(remote->has_chat_template(), local->has_chat_template());
    EXPECT_GT(remote->load_ms(), 0);

    const std::string text = "<|im_start|>user\nInstall nginx, please<|im_end|>";
    for (bool add_special : {true, false}) {
        for (bool parse_special : {true, false}) {
            EXPECT_EQ(remote->tokenize(text, add_special, parse_special),
                      local->tokenize(text, add_special, parse_special));
        }
    }
    const std::vector<llm::Token> tokens = local->tokenize(text);
    EXPECT_EQ(remote->detokenize(tokens), local->detokenize(tokens));
    EXPECT_EQ(remote->detokenize(tokens, true), local->detokenize(tokens, true));
    const std::vector<llm::Message> messages = {{"system", "You install packages."}, {"user", "A web server, please"}};
    EXPECT_EQ(remote->apply_chat_template(messages), local->apply_chat_template(messages));
    EXPECT_EQ(remote->apply_chat_template(messages, false), local->apply_chat_template(messages, false));

    for (const std::string prompt : {"apt install", "How do I install nginx?", "The quick brown fox", "1 2 3 4"}) {
        expect_same(complete(*remote, prompt, greedy(24)), complete(*local, prompt, greedy(24)), prompt);
    }
    llm::GenerationConfig stop = greedy(48);
    stop.stop = {"e", "\n"};
    expect_same(complete(*remote, "Install docker", stop), complete(*local, "Install docker", stop), "stop strings");
    llm::GenerationConfig eos = greedy(40);
    eos.ignore_eos = true;
    expect_same(chat(*remote, messages, eos), chat(*local, messages, eos), "chat");
    expect_same(chat(*remote, {{"user", "hi"}}, greedy(16)), chat(*local, {{"user", "hi"}}, greedy(16)), "chat 2");
    llm::GenerationConfig grammar = greedy(16);
    grammar.grammar = "root ::= (\"yes\" | \"no\") \" \" [a-z]+";
    expect_same(complete(*remote, "Answer:", grammar), complete(*local, "Answer:", grammar), "grammar");
    llm::GenerationConfig schema = greedy(40);
    schema.json_schema = R"({"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]})";
    expect_same(complete(*remote, "JSON:", schema), complete(*local, "JSON:", schema), "json schema");

    // Token prompts and results without a callback.
    llm::Result rt = remote->complete(tokens, greedy(12));
    llm::Result lt = local->complete(tokens, greedy(12));
    EXPECT_EQ(rt.content, lt.content);
    EXPECT_EQ(rt.completion_tokens, lt.completion_tokens);
    EXPECT_EQ(rt.load_ms, remote->load_ms());

    // A cleared cache makes the next call read its whole prompt, as in-process.
    remote->complete("apt install", greedy(2));
    EXPECT_GT(remote->complete("apt install", greedy(2)).cached_tokens, 0);
    remote->clear_cache();
    EXPECT_EQ(remote->complete("apt install", greedy(2)).cached_tokens, 0);

    // A callback that says stop ends the answer where it said so.
    int n = 0;
    std::string seen;
    llm::GenerationConfig long_gen = greedy(200);
    long_gen.ignore_eos = true;
    llm::Result cancelled = remote->complete("tell me everything", long_gen, [&](std::string_view p) {
        seen += p;
        return ++n < 3;
    });
    EXPECT_EQ(cancelled.finish_reason, llm::FinishReason::kCancelled);
    EXPECT_EQ(cancelled.content, seen);

    EXPECT_GE(served() - served_before, 14) << "the generations ran on the daemon";
    EXPECT_EQ(manager.loaded(), std::vector<std::string>{path("tiny")});
}

TEST_F(Routing, ConcurrentCallsOnOneDaemonModelGetTheirOwnAnswers) {
    start_daemon("tiny");
    llm::ModelManager manager(home_.file("models"));
    std::shared_ptr<llm::Model> remote = manager.load_model("tiny", model_config());
    std::shared_ptr<llm::Model> local = llm::Model::load(path("tiny"), model_config());
    const std::vector<std::string> prompts = {"apt install", "How do I", "The quick brown fox", "Install docker"};
    std::vector<llm::Result> results(prompts.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < prompts.size(); ++i) {
        threads.emplace_back([&, i] { results[i] = remote->complete(prompts[i], greedy(16)); });
    }
    for (auto & t : threads) t.join();
    for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(results[i].content, local->complete(prompts[i], greedy(16)).content) << prompts[i];
    }
}

TEST_F(Routing, OffLoadsInProcessEvenWithADaemon) {
    start_daemon("tiny");
    setenv("CORTEX_PRELOAD", "off", 1);
    llm::ModelManager manager(home_.file("models"));
    std::shared_ptr<llm::Model> m = manager.load_model("tiny", model_config());
    const int before = served();
    m->complete("apt install", greedy(4));
    EXPECT_EQ(served(), before);
    stop_daemon();
    EXPECT_FALSE(m->complete("apt install", greedy(4)).content.empty()) << "needs no daemon";
}

TEST_F(Routing, RequiredWithoutADaemonIsAnErrorWithAHint) {
    setenv("CORTEX_PRELOAD", "required", 1);
    llm::ModelManager manager(home_.file("models"));
    try {
        manager.load_model("tiny", model_config());
        FAIL() << "loaded without a daemon";
    } catch (const Error & e) {
        EXPECT_EQ(e.code(), ErrorCode::kNotFound);
        EXPECT_NE(e.hint().find("cortex-preload start"), std::string::npos) << e.hint();
    }
    EXPECT_TRUE(manager.loaded().empty());
    // Model::load() is the explicit in-process load, whatever CORTEX_PRELOAD says.
    EXPECT_NO_THROW(llm::Model::load(path("tiny"), model_config()));
}

TEST_F(Routing, ADaemonServingAnotherModelOrContextIsNotUsed) {
    start_daemon("other");
    llm::ModelManager manager(home_.file("models"));
    const int before = served();
    std::shared_ptr<llm::Model> m = manager.load_model("tiny", model_config());
    EXPECT_EQ(m->architecture(), "qwen2");
    m->complete("apt install", greedy(4));
    EXPECT_EQ(served(), before);

    // The daemon serves "other" with n_ctx 1024; asked for 2048 it would say a different n_ctx().
    llm::ModelConfig bigger = model_config();
    bigger.n_ctx = 2048;
    std::shared_ptr<llm::Model> b = manager.load_model("other", bigger);
    EXPECT_EQ(b->n_ctx(), 2048);
    b->complete("apt install", greedy(4));
    EXPECT_EQ(served(), before);

    setenv("CORTEX_PRELOAD", "required", 1);
    llm::ModelManager required(home_.file("models"));
    EXPECT_EQ(code_of([&] { required.load_model("tiny", model_config()); }), ErrorCode::kNotFound);
    std::shared_ptr<llm::Model> o = required.load_model("other", model_config());
    o->complete("apt install", greedy(4));
    EXPECT_EQ(served(), before + 1);
}

TEST_F(Routing, AKilledDaemonFallsBackInAutoAndFailsWhenRequired) {
    start_daemon("tiny");
    std::shared_ptr<llm::Model> local = llm::Model::load(path("tiny"), model_config());
    const llm::Result expected = local->complete("How do I install nginx?", greedy(16));
    llm::ModelManager manager(home_.file("models"));
    std::shared_ptr<llm::Model> m = manager.load_model("tiny", model_config());
    setenv("CORTEX_PRELOAD", "required", 1);
    llm::ModelManager required_manager(home_.file("models"));
    std::shared_ptr<llm::Model> required = required_manager.load_model("tiny", model_config());
    unsetenv("CORTEX_PRELOAD");
    EXPECT_EQ(m->complete("How do I install nginx?", greedy(16)).content, expected.content);
    EXPECT_EQ(required->complete("How do I install nginx?", greedy(16)).content, expected.content);

    stop_daemon();  // kill -9
    std::vector<std::string> pieces;
    llm::Result r = m->complete("How do I install nginx?", greedy(16), [&](std::string_view p) {
        pieces.emplace_back(p);
        return true;
    });
    EXPECT_EQ(r.content, expected.content) << "answered in-process";
    EXPECT_FALSE(pieces.empty());
    EXPECT_EQ(m->tokenize("apt"), local->tokenize("apt"));
    EXPECT_EQ(m->n_vocab(), local->n_vocab());

    const ErrorCode code = code_of([&] { required->complete("How do I install nginx?", greedy(16)); });
    EXPECT_TRUE(code == ErrorCode::kIo || code == ErrorCode::kNotFound) << error_code_name(code);
    EXPECT_EQ(code_of([&] { required->tokenize("apt"); }), ErrorCode::kNotFound);
}

TEST_F(Routing, ADaemonLostMidStreamIsANetworkError) {
    start_daemon("tiny");
    llm::ModelManager manager(home_.file("models"));
    std::shared_ptr<llm::Model> m = manager.load_model("tiny", model_config());
    llm::GenerationConfig g = greedy(100000);
    g.ignore_eos = true;
    int pieces = 0;
    try {
        m->complete("tell me everything", g, [&](std::string_view) {
            if (++pieces == 5) kill(pid_, SIGKILL);
            return true;
        });
        FAIL() << "no error";
    } catch (const Error & e) {
        EXPECT_EQ(e.code(), ErrorCode::kNetwork) << e.what();
        EXPECT_FALSE(e.hint().empty());
    }
    stop_daemon();
    // No second answer was started behind the first; the next call runs in-process.
    EXPECT_LT(pieces, 2000);
    EXPECT_FALSE(m->complete("apt install", greedy(4)).content.empty());
}

TEST_F(Routing, AModelReloadedAwayIsNotAnsweredByTheNewOne) {
    start_daemon("tiny");
    llm::ModelManager manager(home_.file("models"));
    std::shared_ptr<llm::Model> m = manager.load_model("tiny", model_config());
    std::shared_ptr<llm::Model> local = llm::Model::load(path("tiny"), model_config());
    EXPECT_EQ(m->tokenize("apt install"), local->tokenize("apt install"));
    preload::Client::connect(socket_)->reload("other");
    const int before = served();
    EXPECT_EQ(m->tokenize("apt install"), local->tokenize("apt install"));
    EXPECT_EQ(m->complete("apt install", greedy(8)).content, local->complete("apt install", greedy(8)).content);
    EXPECT_EQ(served(), before) << "the daemon's new model did not answer";
}

TEST_F(Routing, BadInputsGiveTheInProcessErrorCodes) {
    start_daemon("tiny");
    llm::ModelManager manager(home_.file("models"));
    std::shared_ptr<llm::Model> remote = manager.load_model("tiny", model_config());
    std::shared_ptr<llm::Model> local = llm::Model::load(path("tiny"), model_config());
    const int before = served();

    const std::vector<llm::Token> word = local->tokenize(" apt", false, false);
    std::vector<llm::Token> too_long;
    while (too_long.size() < static_cast<size_t>(local->n_ctx()) + 8) too_long.push_back(word[0]);
    std::string long_text;
    for (int i = 0; i < local->n_ctx() + 8; ++i) long_text += " apt";
    llm::GenerationConfig bad_grammar = greedy(4);
    bad_grammar.grammar = "root ::= (";
    llm::GenerationConfig bad_schema = greedy(4);
    bad_schema.json_schema = "{not json";
    llm::GenerationConfig bad_max = greedy(0);

    struct Case {
        const char * what;
        std::function<void(llm::Model &)> call;
    };
    const std::vector<Case> cases = {
        {"too long (tokens)", [&](llm::Model & m) { m.complete(too_long, greedy(4)); }},
        {"too long (text)", [&](llm::Model & m) { m.complete(long_text, greedy(4)); }},
        {"invalid grammar", [&](llm::Model & m) { m.complete("apt", bad_grammar); }},
        {"invalid schema", [&](llm::Model & m) { m.complete("apt", bad_schema); }},
        {"max_tokens 0", [&](llm::Model & m) { m.complete("apt", bad_max); }},
        {"empty prompt", [&](llm::Model & m) { m.complete(std::vector<llm::Token>{}, greedy(4)); }},
        {"token out of range", [&](llm::Model & m) { m.complete(std::vector<llm::Token>{-1}, greedy(4)); }},
        {"unknown role",
         [&](llm::Model & m) {
             m.chat({{"robot", "hi"}}, greedy(4));
         }},
        {"no messages", [&](llm::Model & m) { m.chat({}, greedy(4)); }},
        {"detokenize out of range", [&](llm::Model & m) { m.detokenize({local->n_vocab()}); }},
    };
    for (const Case & c : cases) {
        const ErrorCode want = code_of([&] { c.call(*local); });
        EXPECT_EQ(code_of([&] { c.call(*remote); }), want) << c.what << ": " << error_code_name(want);
    }
    EXPECT_EQ(served(), before) << "none of them generated";
    // The connection and the daemon are still fine.
    EXPECT_EQ(remote->complete("apt install", greedy(8)).content, local->complete("apt install", greedy(8)).content);
    EXPECT_EQ(served(), before + 1);
}

TEST_F(Routing, ACallbacksOwnErrorReachesTheCallerAndTheConnectionStaysUsable) {
    start_daemon("tiny");
    llm::ModelManager manager(home_.file("models"));
    std::shared_ptr<llm::Model> remote = manager.load_model("tiny", model_config());
    std::shared_ptr<llm::Model> local = llm::Model::load(path("tiny"), model_config());
    llm::GenerationConfig g = greedy(64);
    g.ignore_eos = true;
    try {
        remote->complete("tell me everything", g, [](std::string_view) -> bool {
            throw Error(ErrorCode::kIo, "stdout is closed", "the caller's own failure");
        });
        FAIL() << "no error";
    } catch (const Error & e) {
        EXPECT_EQ(e.code(), ErrorCode::kIo);
        EXPECT_EQ(e.message(), "stdout is closed");
    }
    const int before = served();
    EXPECT_EQ(remote->complete("apt install", greedy(8)).content, local->complete("apt install", greedy(8)).content);
    EXPECT_EQ(served(), before + 1) << "still on the daemon";
}
