// The router and providers end to end: llamacpp in-process and through a real preload daemon on a
// generated model (the grammar keeps even random weights inside the schema), Ollama's /api/chat
// against a real loopback HTTP server speaking its protocol, system description, ask and doctor.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cortex/config.h"
#include "cortex/preload.h"
#include "interpreter/ask.h"
#include "interpreter/doctor.h"
#include "interpreter/ollama_provider.h"
#include "interpreter/planner.h"
#include "interpreter/provider.h"
#include "interpreter/system_info.h"
#include "http_test_server.h"
#include "test_support.h"

extern char ** environ;

using namespace cortex;
using namespace cortex::interpreter;
using cortex::test::TempDir;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const char * kSchema =
    R"({"type": "object", "properties": {"package": {"type": "string", "enum": ["nginx", "apache2", "lighttpd"]}},
                           "required": ["package"], "additionalProperties": false})";

std::string fixture(const std::string & name) {
    return cortex::test::read_file(std::string(CORTEX_FIXTURES_DIR) + "/ollama/" + name);
}

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// Every test starts from the same environment: nothing of the developer's own setup leaks in.
class ProviderTest : public ::testing::Test {
  protected:
    void SetUp() override {
        for (const char * v : {"CORTEX_PROVIDER", "LLAMACPP_MODEL", "OLLAMA_MODEL", "OLLAMA_HOST", "CORTEX_PRELOAD",
                               "CORTEX_PRELOAD_SOCKET", "CORTEX_MODELS_DIR", "CORTEX_HOME", "LLAMACPP_N_CTX",
                               "LLAMACPP_N_THREADS", "LLAMACPP_N_GPU_LAYERS", "XDG_RUNTIME_DIR"}) {
            unsetenv(v);
        }
    }
    void TearDown() override { unsetenv("CORTEX_PRELOAD"); }

    // Settings in `home_` with small-model defaults; no daemon listens on the default socket.
    Settings settings(std::map<std::string, std::string> flags) {
        flags.emplace("preload_socket", home_.file("none.sock"));
        flags.emplace("n_ctx", "1024");
        flags.emplace("n_threads", "2");
        return Settings::load(flags, home_.path());
    }

    static ProviderRequest schema_request(int max_tokens = 48) {
        ProviderRequest r;
        r.messages = {{"system", "Pick the package for the request. Answer in JSON."},
                      {"user", "install a web server"}};
        r.json_schema = kSchema;
        r.max_tokens = max_tokens;
        return r;
    }

    TempDir home_;
};

// The answer is a JSON object whose "package" is one of the schema's enum.
void expect_package_from_enum(const std::string & content) {
    json j = json::parse(content, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << content;
    ASSERT_TRUE(j.contains("package")) << content;
    const std::string p = j["package"].get<std::string>();
    EXPECT_TRUE(p == "nginx" || p == "apache2" || p == "lighttpd") << p;
}

// cortex-preload as a real process in its own home, serving tiny-qwen2 as "tiny".
class Daemon {
  public:
    explicit Daemon(const TempDir & home) : socket_(home.file("d.sock")) {
        std::filesystem::create_directories(home.file("models"));
        std::filesystem::copy_file(cortex::test::model_path("tiny-qwen2"), home.file("models/tiny.gguf"),
                                   std::filesystem::copy_options::skip_existing);
        setenv("CORTEX_HOME", home.path().c_str(), 1);
        setenv("LLAMACPP_N_CTX", "1024", 1);
        setenv("LLAMACPP_N_THREADS", "1", 1);
        pid_ = cortex::test::spawn_logged({CORTEX_PRELOAD_BIN, "run", "--model", "tiny", "--parallel", "1", "--socket", socket_},
                                          home.file("daemon.log"));
        for (const char * v : {"CORTEX_HOME", "LLAMACPP_N_CTX", "LLAMACPP_N_THREADS"}) unsetenv(v);
        if (!cortex::test::wait_for_daemon(socket_)) {
            ADD_FAILURE() << "daemon did not start: " << cortex::test::read_file(home.file("daemon.log"));
        }
    }
    ~Daemon() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    const std::string & socket() const { return socket_; }

  private:
    std::string socket_;
    pid_t pid_ = -1;
};

// A loopback HTTP server that speaks Ollama's /api/chat and /api/tags with canned bodies.
class FakeOllama {
  public:
    struct Reply {
        int status = 200;
        std::string body;       // NDJSON lines (streamed one by one) or one JSON object
        int line_delay_ms = 0;  // between streamed lines
        int stall_ms = 0;       // after the first line, send nothing for this long
    };

    FakeOllama() {
        server_.Post("/api/chat", [this](const httplib::Request & req, httplib::Response & res) {
            Reply reply;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                bodies_.push_back(req.body);
                reply = chat_;
            }
            serve(reply, res);
        });
        server_.Get("/api/tags", [this](const httplib::Request &, httplib::Response & res) {
            std::lock_guard<std::mutex> lock(mutex_);
            res.set_content(tags_, "application/json; charset=utf-8");
        });
        port_ = server_.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~FakeOllama() {
        stopping_ = true;
        server_.stop();
        thread_.join();
    }

    std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
    void set_chat(Reply r) {
        std::lock_guard<std::mutex> lock(mutex_);
        chat_ = std::move(r);
    }
    void set_tags(std::string body) {
        std::lock_guard<std::mutex> lock(mutex_);
        tags_ = std::move(body);
    }
    json last_request() {
        std::lock_guard<std::mutex> lock(mutex_);
        return bodies_.empty() ? json() : json::parse(bodies_.back());
    }

  private:
    void serve(const Reply & reply, httplib::Response & res) {
        res.status = reply.status;
        if (reply.status != 200) {
            res.set_content(reply.body, "application/json; charset=utf-8");
            return;
        }
        // Chunked, line by line, as Ollama streams.
        res.set_chunked_content_provider("application/x-ndjson", [this, reply](size_t, httplib::DataSink & sink) {
            size_t pos = 0;
            bool first = true;
            while (pos < reply.body.size()) {
                size_t end = reply.body.find('\n', pos);
                end = end == std::string::npos ? reply.body.size() : end + 1;
                if (!sink.write(reply.body.data() + pos, end - pos)) return false;
                pos = end;
                int wait_ms = first && reply.stall_ms > 0 ? reply.stall_ms : reply.line_delay_ms;
                first = false;
                for (int waited = 0; waited < wait_ms && !stopping_; waited += 10) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(10));
                }
                if (stopping_) return false;
            }
            sink.done();
            return true;
        });
    }

    httplib::Server server_;
    std::thread thread_;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::mutex mutex_;
    Reply chat_;
    std::string tags_ = "{\"models\": []}";
    std::vector<std::string> bodies_;
};


}  // namespace

// --- llamacpp ---------------------------------------------------------------------------------

TEST_F(ProviderTest, LlamaCppInProcessAnswersInsideTheSchema) {
    setenv("CORTEX_PRELOAD", "off", 1);
    auto provider = open_provider(settings({{"model", cortex::test::model_path("tiny-qwen2")}}));
    EXPECT_EQ(provider->name(), "llamacpp");
    ProviderRequest req = schema_request();
    std::string streamed;
    req.on_token = [&](std::string_view piece) {
        streamed += piece;
        return true;
    };
    ProviderReply reply = provider->chat(req);
    EXPECT_EQ(reply.route, "in-process");
    EXPECT_EQ(streamed, reply.content);
    EXPECT_GT(reply.result.completion_tokens, 0);
    EXPECT_FALSE(reply.truncated) << reply.content;
    expect_package_from_enum(reply.content);
    // Greedy: the same request gives the same answer, from the model the provider keeps loaded.
    EXPECT_EQ(provider->chat(schema_request()).content, reply.content);
}

TEST_F(ProviderTest, LlamaCppUsesTheDaemonThatServesTheModel) {
    Daemon daemon(home_);
    const std::map<std::string, std::string> flags = {
        {"model", "tiny"}, {"models_dir", home_.file("models")}, {"preload_socket", daemon.socket()}};
    ProviderReply reply = open_provider(settings(flags))->chat(schema_request());
    EXPECT_EQ(reply.route, "daemon");
    EXPECT_EQ(reply.model, "tiny");
    expect_package_from_enum(reply.content);

    // The model setting unset: the model the daemon serves.
    ProviderReply any =
        open_provider(settings({{"models_dir", home_.file("models")}, {"preload_socket", daemon.socket()}}))
            ->chat(schema_request());
    EXPECT_EQ(any.route, "daemon");
    EXPECT_EQ(any.model, "tiny");

    // CORTEX_PRELOAD=off: the same model in-process, the same greedy answer.
    setenv("CORTEX_PRELOAD", "off", 1);
    ProviderReply local = open_provider(settings(flags))->chat(schema_request());
    EXPECT_EQ(local.route, "in-process");
    EXPECT_EQ(local.content, reply.content);
    std::string why;
    EXPECT_TRUE(provider_available(settings(flags), &why)) << why;
}

TEST_F(ProviderTest, LlamaCppDaemonRequiredButAbsent) {
    setenv("CORTEX_PRELOAD", "required", 1);
    auto provider = open_provider(settings({{"model", cortex::test::model_path("tiny-qwen2")}}));
    Error e = cortex::test::expect_error(ErrorCode::kNotFound, [&] { provider->chat(schema_request()); });
    EXPECT_NE(e.hint().find("cortex-preload start"), std::string::npos) << e.hint();
    std::string why;
    EXPECT_FALSE(provider_available(settings({{"model", cortex::test::model_path("tiny-qwen2")}}), &why));
    EXPECT_NE(why.find("cortex-preload start"), std::string::npos) << why;
}

TEST_F(ProviderTest, LlamaCppWithoutAModelSaysHowToGetOne) {
    setenv("CORTEX_PRELOAD", "off", 1);
    Error e =
        cortex::test::expect_error(ErrorCode::kNotFound, [&] { open_provider(settings({}))->chat(schema_request()); });
    EXPECT_NE(e.hint().find("cortex-model download recommended"), std::string::npos) << e.hint();
    std::string why;
    EXPECT_FALSE(provider_available(settings({}), &why));
    EXPECT_NE(why.find("cortex-model download recommended"), std::string::npos) << why;

    e = cortex::test::expect_error(ErrorCode::kNotFound, [&] {
        open_provider(settings({{"model", "no-such-model"}}))->chat(schema_request());
    });
    EXPECT_NE(e.message().find("no-such-model"), std::string::npos) << e.message();
    EXPECT_FALSE(provider_available(settings({{"model", "no-such-model"}}), &why));
    EXPECT_TRUE(provider_available(settings({{"model", cortex::test::model_path("tiny-qwen2")}}), &why)) << why;
}

TEST_F(ProviderTest, LlamaCppCancelAndTimeout) {
    setenv("CORTEX_PRELOAD", "off", 1);
    auto provider = open_provider(settings({{"model", cortex::test::model_path("tiny-qwen2")}}));
    // The streaming callback says stop.
    ProviderRequest req = schema_request();
    req.json_schema.clear();
    req.max_tokens = 64;
    int pieces = 0;
    req.on_token = [&](std::string_view) { return ++pieces < 2; };
    cortex::test::expect_error(ErrorCode::kCancelled, [&] { provider->chat(req); });
    EXPECT_EQ(pieces, 2);
    // The Ctrl-C flag, set while tokens come.
    std::atomic<bool> cancel{false};
    req.cancel = &cancel;
    req.on_token = [&](std::string_view) {
        cancel = true;
        return true;
    };
    cortex::test::expect_error(ErrorCode::kCancelled, [&] { provider->chat(req); });
    // Already set: nothing runs.
    req.on_token = {};
    cortex::test::expect_error(ErrorCode::kCancelled, [&] { provider->chat(req); });
    // The deadline passes between tokens.
    cancel = false;
    req.timeout_s = 1e-6;
    Error e = cortex::test::expect_error(ErrorCode::kCancelled, [&] { provider->chat(req); });
    EXPECT_NE(e.message().find("did not finish"), std::string::npos) << e.message();
}

// --- Ollama -----------------------------------------------------------------------------------

TEST(OllamaHost, AcceptsTheFormsOllamaAccepts) {
    EXPECT_EQ(ollama_base_url("127.0.0.1:11434"), "http://127.0.0.1:11434");
    EXPECT_EQ(ollama_base_url("http://localhost:11434/"), "http://localhost:11434");
    EXPECT_EQ(ollama_base_url("localhost"), "http://localhost:11434");
    EXPECT_EQ(ollama_base_url(""), "http://127.0.0.1:11434");
    EXPECT_EQ(ollama_base_url(":8080"), "http://127.0.0.1:8080");
    EXPECT_EQ(ollama_base_url("https://ollama.example.com"), "https://ollama.example.com");
    EXPECT_EQ(ollama_base_url("[::1]:11434"), "http://[::1]:11434");
    EXPECT_EQ(ollama_base_url(" http://10.0.0.5:11434/base/ "), "http://10.0.0.5:11434/base");
    EXPECT_TRUE(ollama_has_model({"llama3.2:latest"}, "llama3.2"));
    EXPECT_TRUE(ollama_has_model({"qwen2.5:7b"}, "qwen2.5:7b"));
    EXPECT_FALSE(ollama_has_model({"qwen2.5:7b"}, "qwen2.5"));
}

TEST_F(ProviderTest, OllamaStreamsAndSendsTheSchemaAsFormat) {
    FakeOllama ollama;
    ollama.set_chat({200, fixture("chat_stream.ndjson")});
    auto provider =
        open_provider(settings({{"provider", "ollama"}, {"ollama_host", ollama.host()}, {"ollama_model", "llama3.2"}}));
    EXPECT_EQ(provider->name(), "ollama");
    ProviderRequest req = schema_request(77);
    std::vector<std::string> pieces;
    req.on_token = [&](std::string_view p) {
        pieces.emplace_back(p);
        return true;
    };
    ProviderReply reply = provider->chat(req);
    EXPECT_EQ(reply.content, R"({"package": "nginx", "reason": "a fast web server"})");
    EXPECT_EQ(pieces.size(), 9u);
    EXPECT_EQ(reply.model, "llama3.2");
    EXPECT_EQ(reply.route, "ollama http://" + ollama.host());
    EXPECT_FALSE(reply.truncated);
    EXPECT_EQ(reply.result.prompt_tokens, 112);
    EXPECT_EQ(reply.result.completion_tokens, 10);
    EXPECT_NEAR(reply.result.tokens_per_second, 50.0, 1e-9);
    EXPECT_NEAR(reply.result.load_ms, 1402.336958, 1e-6);

    json sent = ollama.last_request();
    EXPECT_EQ(sent["model"], "llama3.2");
    EXPECT_EQ(sent["stream"], true);
    EXPECT_EQ(sent["format"], json::parse(kSchema));
    EXPECT_EQ(sent["options"]["temperature"], 0.0);
    EXPECT_EQ(sent["options"]["num_predict"], 77);
    ASSERT_EQ(sent["messages"].size(), 2u);
    EXPECT_EQ(sent["messages"][0]["role"], "system");
    EXPECT_EQ(sent["messages"][1], json({{"role", "user"}, {"content", "install a web server"}}));
}

TEST_F(ProviderTest, OllamaWithoutStreaming) {
    FakeOllama ollama;
    ollama.set_chat({200, fixture("chat.json")});
    auto provider = open_provider(
        settings({{"provider", "ollama"}, {"ollama_host", "http://" + ollama.host()}, {"ollama_model", "llama3.2"}}));
    ProviderRequest req = schema_request();
    req.json_schema.clear();
    ProviderReply reply = provider->chat(req);
    EXPECT_EQ(reply.content, R"({"package": "nginx", "reason": "a fast web server"})");
    EXPECT_EQ(reply.result.completion_tokens, 16);
    json sent = ollama.last_request();
    EXPECT_EQ(sent["stream"], false);
    EXPECT_FALSE(sent.contains("format"));
}

TEST_F(ProviderTest, OllamaStoppedByNumPredictIsTruncated) {
    FakeOllama ollama;
    ollama.set_chat({200, fixture("chat_stream_length.ndjson")});
    ProviderRequest req = schema_request();
    req.on_token = [](std::string_view) { return true; };
    ProviderReply reply =
        open_provider(settings({{"provider", "ollama"}, {"ollama_host", ollama.host()}, {"ollama_model", "llama3.2"}}))
            ->chat(req);
    EXPECT_TRUE(reply.truncated);
    EXPECT_EQ(reply.content, "To install nginx,");
}

TEST_F(ProviderTest, OllamaUnreachable) {
    const std::string host = "127.0.0.1:" + std::to_string(cortex::test::unused_loopback_port());
    auto provider =
        open_provider(settings({{"provider", "ollama"}, {"ollama_host", host}, {"ollama_model", "llama3.2"}}));
    Error e = cortex::test::expect_error(ErrorCode::kNetwork, [&] { provider->chat(schema_request()); });
    EXPECT_NE(e.message().find("cannot reach Ollama at http://" + host), std::string::npos) << e.message();
    EXPECT_NE(e.hint().find("ollama serve"), std::string::npos) << e.hint();
    EXPECT_NE(e.hint().find("CORTEX_PROVIDER=llamacpp"), std::string::npos) << e.hint();
    std::string why;
    EXPECT_FALSE(provider_available(
        settings({{"provider", "ollama"}, {"ollama_host", host}, {"ollama_model", "llama3.2"}}), &why));
    EXPECT_NE(why.find("cannot reach Ollama"), std::string::npos) << why;
}

TEST_F(ProviderTest, OllamaModelNotPulled) {
    FakeOllama ollama;
    ollama.set_chat({404, fixture("error_model_not_found.json")});
    ollama.set_tags(fixture("tags.json"));
    auto s = settings({{"provider", "ollama"}, {"ollama_host", ollama.host()}, {"ollama_model", "nosuch"}});
    Error e = cortex::test::expect_error(ErrorCode::kNotFound, [&] { open_provider(s)->chat(schema_request()); });
    EXPECT_NE(e.message().find("not found, try pulling it first"), std::string::npos) << e.message();
    EXPECT_NE(e.hint().find("ollama pull nosuch"), std::string::npos) << e.hint();
    std::string why;
    EXPECT_FALSE(provider_available(s, &why));
    EXPECT_NE(why.find("ollama pull nosuch"), std::string::npos) << why;
    EXPECT_TRUE(provider_available(
        settings({{"provider", "ollama"}, {"ollama_host", ollama.host()}, {"ollama_model", "llama3.2"}}), &why))
        << why;
}

TEST_F(ProviderTest, OllamaServerErrorShowsItsText) {
    FakeOllama ollama;
    ollama.set_chat({500, fixture("error_500.json")});
    auto provider =
        open_provider(settings({{"provider", "ollama"}, {"ollama_host", ollama.host()}, {"ollama_model", "llama3.2"}}));
    Error e = cortex::test::expect_error(ErrorCode::kNetwork, [&] { provider->chat(schema_request()); });
    EXPECT_NE(e.message().find("HTTP 500"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("llama runner process has terminated"), std::string::npos) << e.message();
    // The same text when it comes as a line mid-stream.
    ollama.set_chat({200, fixture("chat_stream_error.ndjson")});
    ProviderRequest req = schema_request();
    req.on_token = [](std::string_view) { return true; };
    e = cortex::test::expect_error(ErrorCode::kNetwork, [&] { provider->chat(req); });
    EXPECT_NE(e.message().find("unexpected EOF"), std::string::npos) << e.message();
}

TEST_F(ProviderTest, OllamaBadStreams) {
    FakeOllama ollama;
    auto provider =
        open_provider(settings({{"provider", "ollama"}, {"ollama_host", ollama.host()}, {"ollama_model", "llama3.2"}}));
    ProviderRequest req = schema_request();
    req.on_token = [](std::string_view) { return true; };
    ollama.set_chat({200, fixture("chat_stream_malformed.ndjson")});
    Error e = cortex::test::expect_error(ErrorCode::kNetwork, [&] { provider->chat(req); });
    EXPECT_NE(e.message().find("not a JSON object"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("502 Bad Gateway"), std::string::npos) << e.message();
    ollama.set_chat({200, fixture("chat_stream_truncated.ndjson")});
    e = cortex::test::expect_error(ErrorCode::kNetwork, [&] { provider->chat(req); });
    EXPECT_NE(e.message().find("ended before"), std::string::npos) << e.message();
    req.on_token = {};
    ollama.set_chat({200, "<html>not ollama</html>"});
    e = cortex::test::expect_error(ErrorCode::kNetwork, [&] { provider->chat(req); });
    EXPECT_NE(e.message().find("not a JSON object"), std::string::npos) << e.message();
}

TEST_F(ProviderTest, OllamaStalledServerTimesOut) {
    FakeOllama ollama;
    ollama.set_chat({200, fixture("chat_stream.ndjson"), 0, 20000});
    auto provider =
        open_provider(settings({{"provider", "ollama"}, {"ollama_host", ollama.host()}, {"ollama_model", "llama3.2"}}));
    ProviderRequest req = schema_request();
    req.on_token = [](std::string_view) { return true; };
    req.timeout_s = 1;
    const auto start = Clock::now();
    Error e = cortex::test::expect_error(ErrorCode::kNetwork, [&] { provider->chat(req); });
    EXPECT_LT(seconds_since(start), 5);
    EXPECT_NE(e.message().find("within 1 s"), std::string::npos) << e.message();
}

TEST_F(ProviderTest, OllamaCancelMidStream) {
    FakeOllama ollama;
    ollama.set_chat({200, fixture("chat_stream.ndjson"), 100});
    auto provider =
        open_provider(settings({{"provider", "ollama"}, {"ollama_host", ollama.host()}, {"ollama_model", "llama3.2"}}));
    ProviderRequest req = schema_request();
    int pieces = 0;
    req.on_token = [&](std::string_view) { return ++pieces < 3; };
    auto start = Clock::now();
    cortex::test::expect_error(ErrorCode::kCancelled, [&] { provider->chat(req); });
    EXPECT_EQ(pieces, 3);
    EXPECT_LT(seconds_since(start), 0.8);

    // Ctrl-C's flag while the server sends nothing at all.
    ollama.set_chat({200, fixture("chat_stream.ndjson"), 0, 20000});
    std::atomic<bool> cancel{false};
    req.cancel = &cancel;
    req.on_token = [](std::string_view) { return true; };
    std::thread ctrl_c([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        cancel = true;
    });
    start = Clock::now();
    cortex::test::expect_error(ErrorCode::kCancelled, [&] { provider->chat(req); });
    ctrl_c.join();
    EXPECT_LT(seconds_since(start), 2.5);
}

TEST_F(ProviderTest, OllamaWithoutAModelName) {
    FakeOllama ollama;
    Error e = cortex::test::expect_error(ErrorCode::kNotFound, [&] {
        open_provider(settings({{"provider", "ollama"}, {"ollama_host", ollama.host()}}))->chat(schema_request());
    });
    EXPECT_NE(e.hint().find("OLLAMA_MODEL"), std::string::npos) << e.hint();
}

// --- system description and ask ---------------------------------------------------------------

TEST_F(ProviderTest, SystemDescription) {
    TempDir dir;
    cortex::test::write_file(dir.file("os-release"),
                             "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n");
    cortex::test::write_file(
        dir.file("status"),
        "Package: nginx\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.22.1-9\n\n"
        "Package: curl\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 7.88.1-10\n\n");
    SystemInfo info = detect_system(dir.file("os-release"));
    EXPECT_EQ(info.distribution, "Debian GNU/Linux 12 (bookworm)");
    EXPECT_FALSE(info.architecture.empty());
    EXPECT_FALSE(info.kernel.empty());
    auto packages = installed_versions({"nginx", "curl", "apache2"}, dir.file("status"));
    ASSERT_EQ(packages.size(), 3u);
    EXPECT_EQ(packages[0].version, "1.22.1-9");
    EXPECT_EQ(packages[1].version, "");  // only its configuration is left
    EXPECT_EQ(describe_system_for_prompt({"Debian GNU/Linux 12 (bookworm)", "amd64", "6.1.0-18-amd64"}, packages),
              "Debian GNU/Linux 12 (bookworm), amd64, Linux 6.1.0-18-amd64. Installed: nginx 1.22.1-9. Not installed: "
              "curl, apache2.");
    // This machine, for real: its dpkg knows its own dpkg.
    const std::string real = describe_system_for_prompt({"dpkg", "no-such-package-xyz"});
    EXPECT_NE(real.find("Installed: dpkg "), std::string::npos) << real;
    EXPECT_NE(real.find("Not installed: no-such-package-xyz."), std::string::npos) << real;
}

TEST_F(ProviderTest, AskPutsTheSystemInTheSystemPrompt) {
    FakeOllama ollama;
    ollama.set_chat({200, fixture("chat_stream_length.ndjson")});
    auto provider =
        open_provider(settings({{"provider", "ollama"}, {"ollama_host", ollama.host()}, {"ollama_model", "llama3.2"}}));
    std::string streamed;
    ProviderReply reply =
        ask(*provider, "how do I install nginx?", "Debian GNU/Linux 12 (bookworm), amd64", [&](std::string_view p) {
            streamed += p;
            return true;
        });
    EXPECT_EQ(streamed, reply.content);
    json sent = ollama.last_request();
    const std::string system = sent["messages"][0]["content"];
    EXPECT_NE(system.find("Cortex"), std::string::npos);
    EXPECT_NE(system.find("Debian GNU/Linux 12 (bookworm), amd64"), std::string::npos);
    EXPECT_NE(system.find("apt"), std::string::npos);
    EXPECT_EQ(sent["messages"][1]["content"], "how do I install nginx?");
    EXPECT_FALSE(sent.contains("format"));
    cortex::test::expect_error(ErrorCode::kInvalidArgument, [&] { ask(*provider, "  \n", "x"); });
    cortex::test::expect_error(ErrorCode::kInvalidArgument, [&] { ask(*provider, std::string(100 * 1024, 'a'), "x"); });
}

TEST_F(ProviderTest, AskWithTheLocalModel) {
    setenv("CORTEX_PRELOAD", "off", 1);
    auto provider = open_provider(settings({{"model", cortex::test::model_path("tiny-qwen2")}}));
    std::string streamed;
    ProviderReply reply = ask(
        *provider, "how do I install nginx?", describe_system_for_prompt({"nginx"}),
        [&](std::string_view p) {
            streamed += p;
            return true;
        },
        nullptr, 16);
    EXPECT_EQ(streamed, reply.content);
    EXPECT_EQ(reply.route, "in-process");
    EXPECT_GT(reply.result.prompt_tokens, 20);
}

// --- doctor -----------------------------------------------------------------------------------

namespace {
// A copy: callers pass run_doctor()'s temporary result.
DoctorCheck find_check(const std::vector<DoctorCheck> & checks, const std::string & name) {
    for (const auto & c : checks) {
        if (c.name == name) return c;
    }
    ADD_FAILURE() << "no check " << name;
    return {};
}
}  // namespace

TEST_F(ProviderTest, DoctorReportsEveryCheck) {
    setenv("CORTEX_PRELOAD", "auto", 1);
    auto checks = run_doctor(settings({{"model", cortex::test::model_path("tiny-qwen2")}}));
    const std::vector<std::string> names = {"llama.cpp backends", "GPUs",       "RPC servers",
                                            "model",              "preload daemon", "settings",
                                            "Ollama",             "apt package index", "privileges"};
    ASSERT_EQ(checks.size(), names.size());
    for (size_t i = 0; i < names.size(); ++i) {
        EXPECT_EQ(checks[i].name, names[i]);
        EXPECT_FALSE(checks[i].detail.empty()) << names[i];
        if (checks[i].status != DoctorCheck::kOk) {
            EXPECT_FALSE(checks[i].fix.empty()) << names[i] << ": " << checks[i].detail;
        }
    }
    EXPECT_EQ(find_check(checks, "llama.cpp backends").detail.find("CPU") != std::string::npos, true)
        << find_check(checks, "llama.cpp backends").detail;
    EXPECT_EQ(find_check(checks, "model").status, DoctorCheck::kOk) << find_check(checks, "model").detail;
    EXPECT_NE(find_check(checks, "model").detail.find("qwen2"), std::string::npos);
    EXPECT_NE(find_check(checks, "preload daemon").detail.find("not running"), std::string::npos);
    EXPECT_NE(find_check(checks, "settings").detail.find("n_ctx"), std::string::npos);
    EXPECT_NE(find_check(checks, "settings").detail.find("[flag"), std::string::npos);
    EXPECT_NE(find_check(checks, "Ollama").detail.find("not used"), std::string::npos);

    const std::string text = doctor_to_text(checks);
    for (const auto & n : names) EXPECT_NE(text.find("] " + n + ": "), std::string::npos) << n;
    json j = doctor_to_json(checks);
    EXPECT_EQ(j["checks"].size(), names.size());
    EXPECT_EQ(j["passed"], doctor_passed(checks));
    EXPECT_EQ(j["checks"][2]["status"], "ok");
}

TEST_F(ProviderTest, DoctorFailsABadModelWithAFix) {
    auto checks = run_doctor(settings({{"model", "no-such-model"}}));
    const DoctorCheck model = find_check(checks, "model");
    EXPECT_EQ(model.status, DoctorCheck::kFail);
    EXPECT_NE(model.detail.find("no-such-model"), std::string::npos) << model.detail;
    EXPECT_FALSE(model.fix.empty());
    EXPECT_FALSE(doctor_passed(checks));
    EXPECT_NE(doctor_to_text(checks).find("fix: "), std::string::npos);

    // A damaged file: the GGUF header check catches it without loading weights.
    TempDir dir;
    const std::string whole = cortex::test::read_file(cortex::test::model_path("tiny-qwen2"));
    cortex::test::write_file(dir.file("broken.gguf"), whole.substr(0, whole.size() / 2));
    const DoctorCheck broken = find_check(run_doctor(settings({{"model", dir.file("broken.gguf")}})), "model");
    EXPECT_EQ(broken.status, DoctorCheck::kFail) << broken.detail;
    EXPECT_NE(broken.fix.find("download"), std::string::npos) << broken.fix;

    // No model at all.
    const DoctorCheck none = find_check(run_doctor(settings({})), "model");
    EXPECT_EQ(none.status, DoctorCheck::kFail);
    EXPECT_NE(none.fix.find("cortex-model download recommended"), std::string::npos) << none.fix;
}

TEST_F(ProviderTest, DoctorChecksOllamaWhenItIsTheProvider) {
    const std::string dead = "127.0.0.1:" + std::to_string(cortex::test::unused_loopback_port());
    const DoctorCheck down = find_check(
        run_doctor(settings({{"provider", "ollama"}, {"ollama_host", dead}, {"ollama_model", "llama3.2"}})), "Ollama");
    EXPECT_EQ(down.status, DoctorCheck::kFail);
    EXPECT_NE(down.fix.find("ollama serve"), std::string::npos) << down.fix;

    FakeOllama ollama;
    ollama.set_tags(fixture("tags.json"));
    auto checks =
        run_doctor(settings({{"provider", "ollama"}, {"ollama_host", ollama.host()}, {"ollama_model", "llama3.2"}}));
    EXPECT_EQ(find_check(checks, "Ollama").status, DoctorCheck::kOk) << find_check(checks, "Ollama").detail;
    EXPECT_EQ(find_check(checks, "model").status, DoctorCheck::kOk);  // not used
    const DoctorCheck missing = find_check(
        run_doctor(settings({{"provider", "ollama"}, {"ollama_host", ollama.host()}, {"ollama_model", "mistral"}})),
        "Ollama");
    EXPECT_EQ(missing.status, DoctorCheck::kFail);
    EXPECT_EQ(missing.fix, "ollama pull mistral");
}

TEST_F(ProviderTest, DoctorSeesTheDaemon) {
    Daemon daemon(home_);
    auto checks = run_doctor(
        settings({{"model", "tiny"}, {"models_dir", home_.file("models")}, {"preload_socket", daemon.socket()}}));
    const DoctorCheck d = find_check(checks, "preload daemon");
    EXPECT_EQ(d.status, DoctorCheck::kOk) << d.detail;
    EXPECT_NE(d.detail.find("running, pid"), std::string::npos) << d.detail;
    EXPECT_NE(d.detail.find("'tiny'"), std::string::npos) << d.detail;
    // It serves another model than the setting names.
    const DoctorCheck other = find_check(run_doctor(settings({{"model", cortex::test::model_path("tiny-llama-spm")},
                                                              {"preload_socket", daemon.socket()}})),
                                         "preload daemon");
    EXPECT_EQ(other.status, DoctorCheck::kWarn) << other.detail;
    EXPECT_NE(other.fix.find("cortex-preload reload --model"), std::string::npos) << other.fix;
}

// --- the planner through Ollama -----------------------------------------------------------------

namespace {

std::string ollama_chat_body(const std::string & content) {
    return json({{"model", "llama3.2"},
                 {"created_at", "2024-11-26T08:00:00.000000Z"},
                 {"message", {{"role", "assistant"}, {"content", content}}},
                 {"done_reason", "stop"},
                 {"done", true},
                 {"total_duration", 1500000000},
                 {"load_duration", 2000000},
                 {"prompt_eval_count", 180},
                 {"prompt_eval_duration", 300000000},
                 {"eval_count", 20},
                 {"eval_duration", 400000000}})
        .dump();
}

}  // namespace

TEST_F(ProviderTest, PlannerAsksOllamaAndKeepsOnlyCandidates) {
    TempDir cache;
    IndexOptions o;
    o.cache_dir = cache.path();
    o.package_lists = {std::string(CORTEX_FIXTURES_DIR) + "/apt/Packages"};
    o.dpkg_status = std::string(CORTEX_FIXTURES_DIR) + "/apt/status";
    o.architecture = "amd64";
    std::unique_ptr<PackageIndex> index = PackageIndex::open(o);
    FakeOllama ollama;
    auto provider = open_provider(settings({{"provider", "ollama"}, {"ollama_host", ollama.host()}, {"ollama_model", "llama3.2"}}));
    PlannerOptions po;
    po.provider = provider.get();
    po.simulate = false;
    Planner planner(*index, po);

    ollama.set_chat({200, ollama_chat_body(R"({"package": "apache2", "reason": "the classic HTTP server"})")});
    Plan p = planner.plan(Operation::kInstall, "a fast http server for my blog");
    EXPECT_EQ(p.packages, (std::vector<std::string>{"apache2"}));
    EXPECT_EQ(p.chosen_by, "model llama3.2 (ollama http://" + ollama.host() + ")");
    EXPECT_EQ(p.reason, "the classic HTTP server");
    // The request carried the candidates as the schema's enum, and the user's words.
    json sent = ollama.last_request();
    std::vector<std::string> allowed = sent["format"]["properties"]["package"]["enum"];
    EXPECT_NE(std::find(allowed.begin(), allowed.end(), "apache2"), allowed.end());
    EXPECT_EQ(allowed.back(), "none");  // the model may say that nothing fits
    EXPECT_NE(std::find(allowed.begin(), allowed.end(), "nginx"), allowed.end());
    EXPECT_NE(sent["messages"][1]["content"].get<std::string>().find("for my blog"), std::string::npos);

    // Ollama's format is a request, not a guarantee: a name outside the candidates is dropped,
    // and with nothing left the index chooses and says why.
    ollama.set_chat({200, ollama_chat_body(R"({"package": "evil-package", "reason": "trust me"})")});
    p = planner.plan(Operation::kInstall, "a fast http server for my blog");
    ASSERT_EQ(p.packages.size(), 1u);
    EXPECT_NE(p.packages[0], "evil-package");
    EXPECT_EQ(p.chosen_by, "package index, after model llama3.2 (ollama http://" + ollama.host() + ")");
    ASSERT_FALSE(p.notes.empty());
    EXPECT_NE(p.notes[0].find("not a valid plan"), std::string::npos);
    ollama.set_chat({200, ollama_chat_body("this is not json")});
    EXPECT_TRUE(planner.plan(Operation::kInstall, "a fast http server for my blog")
                    .chosen_by.starts_with("package index, after model"));
    // "none": the model found nothing fitting, and nothing is planned.
    ollama.set_chat({200, ollama_chat_body(R"({"package": "none", "reason": "no blog engine here"})")});
    p = planner.plan(Operation::kInstall, "a fast http server for my blog");
    EXPECT_TRUE(p.no_confident_match);
    EXPECT_TRUE(p.packages.empty());
    EXPECT_FALSE(p.candidates.empty());

    // Ollama down: the error says what to start.
    ollama.set_chat({404, fixture("error_model_not_found.json")});
    Error e = cortex::test::expect_error(ErrorCode::kNotFound, [&] { planner.plan(Operation::kInstall, "a fast http server for my blog"); });
    EXPECT_NE(e.hint().find("ollama pull"), std::string::npos);
}
