// The cortex-model and cortex binaries end to end: a test catalog served by a real HTTP server on
// 127.0.0.1, a fresh CORTEX_HOME, recorded GPU fixtures, an Ollama-layout store.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "cortex/models.h"
#include "http_test_server.h"
#include "test_support.h"

extern char ** environ;

using namespace cortex;
using cortex::test::HttpTestServer;
using cortex::test::TempDir;
using nlohmann::json;

namespace {

struct CommandResult {
    int status = -1;
    std::string out, err;
};

// Starts `argv` with `env` added to this process's environment, stdout/stderr to files.
pid_t spawn(const std::vector<std::string> & argv, const std::map<std::string, std::string> & env, const std::string & out,
            const std::string & err) {
    std::vector<std::string> envs;
    for (char ** e = environ; *e; ++e) {
        std::string kv = *e, key = kv.substr(0, kv.find('='));
        if (!env.count(key)) envs.push_back(kv);
    }
    for (const auto & [k, v] : env) envs.push_back(k + "=" + v);
    std::vector<char *> a, e;
    for (const auto & s : argv) a.push_back(const_cast<char *>(s.c_str()));
    a.push_back(nullptr);
    for (const auto & s : envs) e.push_back(const_cast<char *>(s.c_str()));
    e.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    posix_spawn(&pid, a[0], &fa, nullptr, a.data(), e.data());
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

class Cli : public ::testing::Test {
  protected:
    void SetUp() override {
        model_ = cortex::test::read_file(cortex::test::model_path("tiny-qwen2"));
        sha_ = models::sha256_file(cortex::test::model_path("tiny-qwen2"));
        server_.set_file("/test/tiny-GGUF/resolve/main/tiny-q8_0.gguf", {.body = model_});
        server_.set_file("/test/gated-GGUF/resolve/main/gated.gguf", {.body = model_, .require_token = "hf_test"});
        server_.set_file("/test/slow-GGUF/resolve/main/slow.gguf", {.body = std::string(8 << 20, 'x'), .bytes_per_ms = 4096});
        json catalog = {{"version", 1},
                        {"models",
                         {entry("tiny", "test/tiny-GGUF", "tiny-q8_0.gguf", model_.size(), sha_, {"tiny:latest"}),
                          entry("gated", "test/gated-GGUF", "gated.gguf", model_.size(), sha_, {}),
                          entry("slow", "test/slow-GGUF", "slow.gguf", 8 << 20, "", {}),
                          // what the 4 GB fixture gets recommended, served by the test server
                          entry("llama3.2-1b", "test/tiny-GGUF", "tiny-q8_0.gguf", model_.size(), sha_, {"llama3.2:1b"})}}};
        cortex::test::write_file(home_.file("catalog.json"), catalog.dump());
        env_ = {{"CORTEX_HOME", home_.path()},
                {"CORTEX_CATALOG", home_.file("catalog.json")},
                {"CORTEX_MODEL_BASE_URL", server_.base_url()},
                {"CORTEX_DOWNLOAD_RETRY_DELAY_MS", "10"},
                {"OLLAMA_MODELS", home_.file("ollama")},
                {"CORTEX_NVIDIA_SMI", "/nonexistent"},
                {"CORTEX_ROCM_SMI", "/nonexistent"}};
    }

    static json entry(const std::string & name, const std::string & repo, const std::string & file, uint64_t size, const std::string & sha,
                      std::vector<std::string> aliases) {
        return {{"name", name}, {"aliases", aliases}, {"family", "qwen2"}, {"tier", "small"}, {"repo", repo}, {"file", file},
                {"size", size}, {"sha256", sha}, {"context_length", 4096}, {"memory_gb", 1.0}, {"best_for", "tests"}};
    }

    CommandResult run(std::vector<std::string> args, std::map<std::string, std::string> extra = {}, const std::string & bin = CORTEX_MODEL_BIN) {
        args.insert(args.begin(), bin);
        std::map<std::string, std::string> env = env_;
        for (auto & [k, v] : extra) env[k] = v;
        pid_t pid = spawn(args, env, home_.file("out"), home_.file("err"));
        CommandResult r;
        int st = 0;
        waitpid(pid, &st, 0);
        r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        r.out = cortex::test::read_file(home_.file("out"));
        r.err = cortex::test::read_file(home_.file("err"));
        return r;
    }

    HttpTestServer server_;
    TempDir home_;
    std::string model_, sha_;
    std::map<std::string, std::string> env_;
};

}  // namespace

TEST_F(Cli, ListShowsTheCatalogAndTheStore) {
    CommandResult r = run({"list"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("tiny"), std::string::npos);
    json j = json::parse(run({"list", "--json"}).out);
    ASSERT_EQ(j.size(), 4u);
    EXPECT_EQ(j[0]["name"], "tiny");
    EXPECT_EQ(j[0]["downloaded"], false);
    EXPECT_EQ(json::parse(run({"list", "--downloaded", "--json"}).out).size(), 0u);
    EXPECT_NE(run({"list", "--downloaded"}).out.find("cortex-model download recommended"), std::string::npos);
}

TEST_F(Cli, DownloadVerifyInfoDelete) {
    CommandResult d = run({"download", "tiny:latest"});
    ASSERT_EQ(d.status, 0) << d.err;
    EXPECT_NE(d.out.find("verified against the catalog"), std::string::npos) << d.out;
    const std::string path = home_.file("models/tiny.gguf");
    EXPECT_EQ(models::sha256_file(path), sha_);
    json listed = json::parse(run({"list", "--downloaded", "--json"}).out);
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0]["source"], "catalog");
    EXPECT_EQ(listed[0]["sha256"], sha_);

    CommandResult again = run({"download", "tiny"});
    EXPECT_EQ(again.status, 0);
    EXPECT_NE(again.out.find("already downloaded"), std::string::npos);
    EXPECT_EQ(server_.requests("/test/tiny-GGUF/resolve/main/tiny-q8_0.gguf"), 1);

    EXPECT_EQ(run({"verify", "tiny"}).status, 0);
    json info = json::parse(run({"info", "tiny", "--json"}).out);
    EXPECT_EQ(info["architecture"], "qwen2");
    EXPECT_EQ(info["quantization"], "Q8_0");
    EXPECT_GT(info["parameters"].get<uint64_t>(), 1000000u);

    // Damage it: verify and info say so, and how to repair it.
    std::string bytes = cortex::test::read_file(path);
    bytes[bytes.size() / 3] ^= 0x40;
    cortex::test::write_file(path, bytes);
    CommandResult bad = run({"verify", "tiny"});
    EXPECT_EQ(bad.status, 1);
    EXPECT_NE(bad.err.find("cortex-model download tiny --force"), std::string::npos) << bad.err;
    cortex::test::write_file(path, bytes.substr(0, bytes.size() / 2));
    CommandResult truncated = run({"info", "tiny"});
    EXPECT_EQ(truncated.status, 1);
    EXPECT_NE(truncated.err.find("truncated"), std::string::npos) << truncated.err;
    EXPECT_NE(truncated.err.find("--force"), std::string::npos) << truncated.err;

    CommandResult fixed = run({"download", "tiny", "--force"});
    EXPECT_EQ(fixed.status, 0) << fixed.err;
    EXPECT_EQ(run({"verify", "tiny"}).status, 0);

    EXPECT_EQ(run({"delete", "tiny"}).status, 0);
    EXPECT_FALSE(cortex::test::file_exists(path));
    EXPECT_FALSE(cortex::test::file_exists(path + ".json"));
    CommandResult gone = run({"delete", "tiny"});
    EXPECT_EQ(gone.status, 1);
    EXPECT_NE(gone.err.find("error: "), std::string::npos);
}

TEST_F(Cli, BadRequestsGetClearErrors) {
    CommandResult unknown = run({"download", "gpt-5"});
    EXPECT_EQ(unknown.status, 1);
    EXPECT_NE(unknown.err.find("not in the catalog"), std::string::npos);
    EXPECT_NE(unknown.err.find("hint: models: tiny, gated"), std::string::npos) << unknown.err;
    json j = json::parse(run({"download", "gpt-5", "--json"}).out);
    EXPECT_EQ(j["error"]["code"], "not_found");
    EXPECT_NE(run({"frobnicate"}).status, 0);
    CommandResult gated = run({"download", "gated"});
    EXPECT_EQ(gated.status, 1);
    EXPECT_NE(gated.err.find("HF_TOKEN"), std::string::npos) << gated.err;
    cortex::test::write_file(home_.file(".env"), "HF_TOKEN=hf_test\n");
    EXPECT_EQ(run({"download", "gated"}).status, 0) << "HF_TOKEN from ~/.cortex/.env is used";
    CommandResult full = run({"download", "tiny"}, {{"CORTEX_TEST_FREE_BYTES", "1000"}});
    EXPECT_EQ(full.status, 1);
    EXPECT_NE(full.err.find("not enough disk space"), std::string::npos);
}

TEST_F(Cli, CtrlCKeepsThePartAndTheNextRunResumes) {
    pid_t pid = spawn({CORTEX_MODEL_BIN, "download", "slow"}, env_, home_.file("out"), home_.file("err"));
    const std::string part = home_.file("models/slow.gguf.part");
    for (int i = 0; i < 200 && std::filesystem::exists(part) == false; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    for (int i = 0; i < 200 && std::filesystem::file_size(part) < (1 << 20); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    kill(pid, SIGINT);
    int st = 0;
    waitpid(pid, &st, 0);
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 130);
    EXPECT_NE(cortex::test::read_file(home_.file("err")).find("run the same command again to resume"), std::string::npos);
    const uint64_t kept = std::filesystem::file_size(part);
    EXPECT_GT(kept, 0u);
    CommandResult resumed = run({"download", "slow", "--json"});
    ASSERT_EQ(resumed.status, 0) << resumed.err;
    json last = json::parse(resumed.out.substr(resumed.out.rfind('{')));
    EXPECT_EQ(last["status"], "success");
    EXPECT_GE(last["resumed_from"].get<uint64_t>(), kept);
    EXPECT_EQ(last["verified_against"], "none");
}

TEST_F(Cli, RecommendAndDownloadRecommendedUseTheFixtures) {
    const std::string tool = home_.file("nvidia-smi");
    cortex::test::write_file(tool, "#!/bin/sh\ncat '" + std::string(CORTEX_FIXTURES_DIR) + "/nvidia-smi-gtx1650-4gb.csv'\n");
    chmod(tool.c_str(), 0755);
    CommandResult r = run({"recommend", "--json"}, {{"CORTEX_NVIDIA_SMI", tool}});
    ASSERT_EQ(r.status, 0) << r.err;
    json j = json::parse(r.out);
    EXPECT_EQ(j["model"], "llama3.2-1b");
    EXPECT_EQ(j["n_gpu_layers"], -1);
    EXPECT_EQ(j["hardware"]["gpus"][0]["name"], "NVIDIA GeForce GTX 1650");
    CommandResult d = run({"download", "recommended"}, {{"CORTEX_NVIDIA_SMI", tool}});
    EXPECT_EQ(d.status, 0) << d.err;
    EXPECT_TRUE(cortex::test::file_exists(home_.file("models/llama3.2-1b.gguf")));
}

TEST_F(Cli, ImportOllamaLinksModels) {
    const std::string blob_digest = sha_;
    std::filesystem::create_directories(home_.file("ollama/blobs"));
    std::filesystem::copy_file(cortex::test::model_path("tiny-qwen2"), home_.file("ollama/blobs/sha256-" + blob_digest));
    json manifest = {{"layers", {{{"mediaType", "application/vnd.ollama.image.model"}, {"digest", "sha256:" + blob_digest}, {"size", model_.size()}}}}};
    cortex::test::write_file(home_.file("ollama/manifests/registry.ollama.ai/library/qwen2.5/0.5b"), manifest.dump());
    CommandResult none = run({"import-ollama", "mistral"});
    EXPECT_EQ(none.status, 1);
    CommandResult r = run({"import-ollama"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("qwen2.5:0.5b -> qwen2.5-0.5b"), std::string::npos) << r.out;
    EXPECT_EQ(run({"verify", "qwen2.5-0.5b"}).status, 0);
    json listed = json::parse(run({"list", "--downloaded", "--json"}).out);
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0]["source"], "ollama");
}

TEST_F(Cli, ConfigShowAndSet) {
    CommandResult set = run({"config", "set", "n_ctx", "8192"}, {}, CORTEX_BIN);
    ASSERT_EQ(set.status, 0) << set.err;
    CommandResult show = run({"config", "show", "--json"}, {}, CORTEX_BIN);
    json j = json::parse(show.out);
    EXPECT_EQ(j["n_ctx"]["value"], "8192");
    EXPECT_EQ(j["n_ctx"]["source"], "config.json");
    CommandResult overridden = run({"config", "set", "n_ctx", "2048"}, {{"LLAMACPP_N_CTX", "1024"}}, CORTEX_BIN);
    EXPECT_NE(overridden.out.find("still '1024'"), std::string::npos) << overridden.out;
    CommandResult bad = run({"config", "set", "n_ctx", "huge"}, {}, CORTEX_BIN);
    EXPECT_EQ(bad.status, 1);
    EXPECT_NE(bad.err.find("hint: "), std::string::npos);
    cortex::test::write_file(home_.file(".env"), "LLAMACPP_N_CTX=oops\n");
    CommandResult broken = run({"config", "show"}, {}, CORTEX_BIN);
    EXPECT_EQ(broken.status, 1);
    EXPECT_NE(broken.err.find(home_.file(".env") + ":1"), std::string::npos) << broken.err;
    EXPECT_NE(run({"--version"}, {}, CORTEX_BIN).out.find("cortex 0.1.0"), std::string::npos);
}
