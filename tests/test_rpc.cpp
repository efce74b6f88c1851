// Multi-device settings and llama.cpp's RPC backend end to end: real ggml-rpc-server processes on
// 127.0.0.1 serve a generated model split across them (issue #9).
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cortex/config.h"
#include "cortex/llm.h"
#include "cortex/preload.h"
#include "http_test_server.h"
#include "llm/rpc.h"
#include "test_support.h"

using namespace cortex;
using namespace cortex::llm;
using cortex::test::expect_error;

namespace {

// A TCP port nothing listens on right now (the kernel's pick, released again).
// One ggml-rpc-server child on 127.0.0.1 with the CPU backend; killed and reaped when it goes.
class RpcServer {
  public:
    RpcServer() : port_(cortex::test::unused_loopback_port()) {
        pid_ = fork();
        if (pid_ == 0) {
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            const std::string port = std::to_string(port_);
            execl(RPC_SERVER_BIN, RPC_SERVER_BIN, "-H", "127.0.0.1", "-p", port.c_str(), "-t", "1",
                  static_cast<char *>(nullptr));
            _exit(127);
        }
        // Ready once it answers the handshake (each probe is a short connection of its own).
        for (int i = 0; i < 200; ++i) {
            try {
                probe_rpc_server(endpoint(), 500);
                return;
            } catch (const Error &) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        }
        ADD_FAILURE() << "ggml-rpc-server on " << endpoint() << " did not come up";
    }
    ~RpcServer() { kill(); }
    RpcServer(const RpcServer &) = delete;
    RpcServer & operator=(const RpcServer &) = delete;

    void kill() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    void freeze() { ::kill(pid_, SIGSTOP); }  // accepts connections, answers nothing
    std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }

  private:
    int port_;
    pid_t pid_ = -1;
};

bool have_rpc_server() {
    return access(RPC_SERVER_BIN, X_OK) == 0;
}

GenerationConfig greedy(int max_tokens) {
    GenerationConfig g;
    g.temperature = 0;
    g.max_tokens = max_tokens;
    g.ignore_eos = true;
    g.seed = 1;
    return g;
}

ModelConfig split_config(const std::vector<std::string> & servers) {
    ModelConfig c;
    c.n_ctx = 512;
    c.n_threads = 1;
    c.rpc_servers = servers;
    c.tensor_split = {1, 1};  // half the layers on each server
    return c;
}

const char * const kPrompt = "Install a web server and explain what it does:";

// The greedy answer of the model loaded on this machine alone: what every split must give.
std::string local_answer(const std::string & path, const std::string & prompt, int max_tokens) {
    ModelConfig c;
    c.n_ctx = 512;
    c.n_threads = 1;
    return Model::load(path, c)->complete(prompt, greedy(max_tokens)).content;
}

std::string g_self;  // this test binary, for the child that loses its server

}  // namespace

TEST(RpcSettings, BadValuesAreClearErrors) {
    cortex::test::TempDir home;
    auto load = [&](const std::string & key, const std::string & value) {
        Settings::load({{key, value}}, home.path());
    };
    Error e = expect_error(ErrorCode::kInvalidArgument, [&] { load("split_mode", "rows"); });
    EXPECT_NE(e.message().find("rows"), std::string::npos);
    e = expect_error(ErrorCode::kInvalidArgument, [&] { load("tensor_split", "3,x"); });
    EXPECT_NE(e.message().find("3,x"), std::string::npos);
    expect_error(ErrorCode::kInvalidArgument, [&] { load("tensor_split", "0,0"); });
    expect_error(ErrorCode::kInvalidArgument, [&] { load("tensor_split", "1,-1"); });
    expect_error(ErrorCode::kInvalidArgument, [&] { load("main_gpu", "-1"); });
    e = expect_error(ErrorCode::kInvalidArgument, [&] { load("rpc_servers", "127.0.0.1"); });
    EXPECT_NE(e.message().find("HOST:PORT"), std::string::npos);
    expect_error(ErrorCode::kInvalidArgument, [&] { load("rpc_servers", "127.0.0.1:70000"); });
    expect_error(ErrorCode::kInvalidArgument, [&] { load("rpc_servers", "127.0.0.1:50052,,127.0.0.1:50053"); });
    expect_error(ErrorCode::kInvalidArgument, [&] { load("rpc_servers", "[::1]:50052"); });
    expect_error(ErrorCode::kInvalidArgument, [&] { load("rpc_allow_remote", "yes"); });

    // Good values reach the ModelConfig; the defaults leave libllama's behaviour as it was.
    const ModelConfig defaults = Settings::load({}, home.path()).model_config();
    EXPECT_EQ(defaults.split_mode, SplitMode::kLayer);
    EXPECT_TRUE(defaults.tensor_split.empty() && defaults.rpc_servers.empty());
    EXPECT_EQ(defaults.main_gpu, 0);
    const Settings s = Settings::load({{"split_mode", "row"},
                                       {"tensor_split", "3, 1"},
                                       {"main_gpu", "1"},
                                       {"rpc_servers", "127.0.0.1:50052, localhost:50053"}},
                                      home.path());
    const ModelConfig c = s.model_config();
    EXPECT_EQ(c.split_mode, SplitMode::kRow);
    EXPECT_EQ(c.tensor_split, (std::vector<float>{3, 1}));
    EXPECT_EQ(c.main_gpu, 1);
    EXPECT_EQ(c.rpc_servers, (std::vector<std::string>{"127.0.0.1:50052", "localhost:50053"}));
    EXPECT_NE(s.to_text().find("rpc_servers"), std::string::npos);
}

TEST(RpcSettings, NonLoopbackNeedsTheOptInAndSaysWhy) {
    cortex::test::TempDir home;
    Error e = expect_error(ErrorCode::kInvalidArgument, [&] {
        Settings::load({{"rpc_servers", "192.0.2.10:50052"}}, home.path());
    });
    EXPECT_NE(e.message().find("192.0.2.10:50052"), std::string::npos);
    EXPECT_NE(e.message().find("authentication"), std::string::npos);
    EXPECT_NE(e.hint().find("LLAMACPP_RPC_ALLOW_REMOTE=1"), std::string::npos);
    // From config.json too, with the file named.
    cortex::test::write_file(home.file("config.json"), R"({"llamacpp_rpc_servers": "gpu-box:50052"})");
    e = expect_error(ErrorCode::kInvalidArgument, [&] { Settings::load({}, home.path()); });
    EXPECT_NE(e.message().find("config.json"), std::string::npos);
    // The opt-in allows it.
    const Settings s = Settings::load({{"rpc_allow_remote", "1"}}, home.path());
    EXPECT_EQ(s.model_config().rpc_servers, (std::vector<std::string>{"gpu-box:50052"}));

    // A ModelConfig built in code meets the same rule before any connection is tried.
    ModelConfig c = split_config({"192.0.2.10:50052"});
    e = expect_error(ErrorCode::kInvalidArgument, [&] { Model::load(cortex::test::model_path("tiny-qwen2"), c); });
    EXPECT_NE(e.message().find("authentication"), std::string::npos);
}

TEST(Rpc, WrongPortIsAClearErrorAtLoad) {
    if (!have_rpc_server()) GTEST_SKIP() << "this llama.cpp build has no ggml-rpc-server";
    const std::string endpoint = "127.0.0.1:" + std::to_string(cortex::test::unused_loopback_port());
    const auto t0 = std::chrono::steady_clock::now();
    Error e = expect_error(ErrorCode::kNetwork,
                           [&] { Model::load(cortex::test::model_path("tiny-qwen2"), split_config({endpoint})); });
    EXPECT_NE(e.message().find(endpoint), std::string::npos) << e.message();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
    // doctor's device list reports it instead of failing.
    std::vector<RpcServerProblem> problems;
    std::vector<DeviceInfo> devices = list_devices({endpoint}, false, &problems);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0].endpoint, endpoint);
    EXPECT_FALSE(devices.empty());  // the local CPU
}

TEST(Rpc, SplitOverTwoServersGeneratesWhatLocalDoes) {
    if (!have_rpc_server()) GTEST_SKIP() << "this llama.cpp build has no ggml-rpc-server";
    const std::string path = cortex::test::model_path("tiny-qwen2");
    const std::string local = local_answer(path, kPrompt, 48);
    RpcServer a, b;
    std::vector<RpcServerProblem> problems;
    std::vector<DeviceInfo> devices = list_devices({a.endpoint(), b.endpoint()}, false, &problems);
    EXPECT_TRUE(problems.empty());
    int rpc_devices = 0;
    for (const DeviceInfo & d : devices) {
        if (d.type != "rpc") continue;
        ++rpc_devices;
        EXPECT_GT(d.total_bytes, 0u) << d.name;
        EXPECT_TRUE(d.endpoint == a.endpoint() || d.endpoint == b.endpoint()) << d.endpoint;
    }
    EXPECT_EQ(rpc_devices, 2);

    auto model = Model::load(path, split_config({a.endpoint(), b.endpoint()}));
    const Result split = model->complete(kPrompt, greedy(48));
    EXPECT_EQ(split.content, local);
    EXPECT_EQ(split.completion_tokens, 48);
    // A second request on the same connections (KV cache on the servers) still matches.
    EXPECT_EQ(model->complete(kPrompt, greedy(48)).content, local);
}

// The child: loads the split model, says "started" once tokens flow, and generates until its
// server disappears. ggml-rpc cannot survive that in-process, so it must end with a clear message.
int child_generate(const std::string & model, const std::string & a, const std::string & b) {
    auto m = Model::load(model, split_config({a, b}));
    bool said = false;
    m->complete("Once upon a time", greedy(400), [&](std::string_view) {
        if (!said) {
            fputs("started\n", stdout);
            fflush(stdout);
            said = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // leaves time for the kill
        return true;
    });
    fputs("finished without noticing\n", stdout);
    return 0;
}

TEST(Rpc, ServerKilledMidRequestIsAClearErrorNamingIt) {
    if (!have_rpc_server()) GTEST_SKIP() << "this llama.cpp build has no ggml-rpc-server";
    RpcServer a, b;
    int out[2], err[2];
    ASSERT_EQ(pipe(out), 0);
    ASSERT_EQ(pipe(err), 0);
    const std::string model = cortex::test::model_path("tiny-qwen2");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        execl(g_self.c_str(), g_self.c_str(), "--rpc-child", model.c_str(), a.endpoint().c_str(), b.endpoint().c_str(),
              static_cast<char *>(nullptr));
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    std::string stdout_text;
    char buf[256];
    while (stdout_text.find("started") == std::string::npos) {
        ssize_t n = read(out[0], buf, sizeof buf);
        if (n <= 0) break;
        stdout_text.append(buf, static_cast<size_t>(n));
    }
    ASSERT_NE(stdout_text.find("started"), std::string::npos) << stdout_text;
    b.kill();  // mid-request: the child is generating over both servers
    std::string stderr_text;
    for (ssize_t n; (n = read(err[0], buf, sizeof buf)) > 0;) stderr_text.append(buf, static_cast<size_t>(n));
    for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) stdout_text.append(buf, static_cast<size_t>(n));
    close(out[0]);
    close(err[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status)) << "the child did not exit cleanly (signal "
                                   << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << "): " << stderr_text;
    EXPECT_EQ(WEXITSTATUS(status), 75) << stderr_text;
    EXPECT_NE(stderr_text.find("error: the RPC connection to " + b.endpoint()), std::string::npos) << stderr_text;
    EXPECT_NE(stderr_text.find("hint: "), std::string::npos) << stderr_text;
    EXPECT_EQ(stdout_text.find("finished without noticing"), std::string::npos);
}

// The daemon cannot keep ggml-rpc going either, but it must not take its clients down with it:
// the request in flight gets an error naming the server, and the same daemon (pid, socket)
// serves again on the devices left, saying so in its status. `lose` takes server b away.
void daemon_goes_on_without(const std::function<void(RpcServer &)> & lose) {
    const std::string path = cortex::test::model_path("tiny-qwen2");
    const std::string local = local_answer(path, kPrompt, 24);
    RpcServer a, b;
    cortex::test::TempDir home;
    std::filesystem::create_directories(home.file("models"));
    std::filesystem::copy_file(path, home.file("models/tiny.gguf"));
    const std::string socket = home.file("run/preload.sock");
    setenv("CORTEX_HOME", home.path().c_str(), 1);
    setenv("LLAMACPP_N_CTX", "512", 1);
    setenv("LLAMACPP_N_THREADS", "1", 1);
    setenv("CORTEX_RPC_TIMEOUT_S", "3", 1);
    const pid_t pid =
        cortex::test::spawn_logged({CORTEX_PRELOAD_BIN, "run", "--model", "tiny", "--parallel", "1", "--socket", socket,
                                    "--rpc", a.endpoint() + "," + b.endpoint(), "--tensor-split", "1,1"},
                                   home.file("daemon.log"));
    for (const char * name : {"CORTEX_HOME", "LLAMACPP_N_CTX", "LLAMACPP_N_THREADS", "CORTEX_RPC_TIMEOUT_S"})
        unsetenv(name);
    struct Reap {
        pid_t pid;
        ~Reap() {
            if (pid <= 0) return;  // kill(-1) would signal every process we may signal
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
    } reap{pid};
    ASSERT_TRUE(cortex::test::wait_for_daemon(socket)) << cortex::test::read_file(home.file("daemon.log"));
    auto c = preload::Client::connect(socket);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->complete(kPrompt, greedy(24)).content, local) << "split over both servers";

    int pieces = 0;
    const auto t0 = std::chrono::steady_clock::now();
    try {
        c->complete("Once upon a time", greedy(100000), [&](std::string_view) {
            if (++pieces == 5) lose(b);
            return true;
        });
        FAIL() << "no error";
    } catch (const Error & e) {
        EXPECT_EQ(e.code(), ErrorCode::kNetwork) << e.message();
        EXPECT_NE(e.message().find("RPC server " + b.endpoint() + " was lost"), std::string::npos)
            << e.message() << "\n"
            << cortex::test::read_file(home.file("daemon.log"));
        EXPECT_NE(e.hint().find("cortex-preload reload"), std::string::npos) << e.hint();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20)) << "bounded by CORTEX_RPC_TIMEOUT_S";
    ASSERT_TRUE(cortex::test::wait_for_daemon(socket, 30000)) << cortex::test::read_file(home.file("daemon.log"));
    auto again = preload::Client::connect(socket);
    ASSERT_NE(again, nullptr);
    const preload::DaemonStatus s = again->status();
    EXPECT_EQ(s.pid, pid) << "the same daemon, started again in place";
    const std::string notice = nlohmann::json::parse(s.json).value("notice", "");
    EXPECT_NE(notice.find(b.endpoint()), std::string::npos) << s.json;
    EXPECT_EQ(notice.find(a.endpoint() + ","), std::string::npos) << "only the lost server is left out: " << notice;
    EXPECT_EQ(again->complete(kPrompt, greedy(24)).content, local) << "on the server left and this machine";
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    reap.pid = -1;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cortex::test::read_file(home.file("daemon.log"));
    EXPECT_FALSE(std::filesystem::exists(socket)) << "a clean stop removes the socket it was handed across the restart";
}

TEST(Rpc, TheDaemonLosingAServerMidRequestAnswersClearlyAndGoesOnWithoutIt) {
    if (!have_rpc_server()) GTEST_SKIP() << "this llama.cpp build has no ggml-rpc-server";
    daemon_goes_on_without([](RpcServer & b) { b.kill(); });
}

// A server that stops answering but keeps its connections (a frozen process, a host gone without
// a reset) would block ggml-rpc forever: the time limit turns it into the same clear outcome.
TEST(Rpc, TheDaemonWithAFrozenServerAnswersWithinTheTimeLimitAndGoesOnWithoutIt) {
    if (!have_rpc_server()) GTEST_SKIP() << "this llama.cpp build has no ggml-rpc-server";
    daemon_goes_on_without([](RpcServer & b) { b.freeze(); });
}

int main(int argc, char ** argv) {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    g_self = n > 0 ? std::string(self, static_cast<size_t>(n)) : argv[0];
    if (argc == 5 && std::string(argv[1]) == "--rpc-child") {
        try {
            return child_generate(argv[2], argv[3], argv[4]);
        } catch (const Error & e) {
            fprintf(stderr, "error: %s\nhint: %s\n", e.message().c_str(), e.hint().c_str());
            return 1;
        }
    }
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
