// Settings: the precedence matrix, .env syntax, config.json, migration, and every bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cortex/config.h"
#include "test_support.h"

using namespace cortex;
using cortex::test::expect_error;
using cortex::test::TempDir;
using cortex::test::write_file;

namespace {

// Clears the Cortex variables of the test process, so the host's environment cannot leak in.
struct CleanEnv {
    CleanEnv() {
        for (const SettingKey & k : setting_keys()) unsetenv(k.env);
        unsetenv("XDG_RUNTIME_DIR");
    }
    ~CleanEnv() {
        for (const SettingKey & k : setting_keys()) unsetenv(k.env);
    }
};

}  // namespace

TEST(Settings, Defaults) {
    CleanEnv env;
    TempDir home;
    Settings s = Settings::load({}, home.path());
    EXPECT_EQ(s.provider(), "llamacpp");
    EXPECT_EQ(s.model(), "");
    EXPECT_EQ(s.n_ctx(), 4096);
    EXPECT_EQ(s.n_gpu_layers(), -1);
    EXPECT_EQ(s.n_threads(), 0);
    EXPECT_EQ(s.models_dir(), home.file("models"));
    EXPECT_EQ(s.preload_socket(), home.file("run/preload.sock"));
    EXPECT_EQ(s.get("n_ctx").source, SettingSource::kDefault);
    setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    EXPECT_EQ(Settings::load({}, home.path()).preload_socket(), "/run/user/1000/cortex/preload.sock");
}

TEST(Settings, PrecedenceFlagsEnvDotenvJsonDefaults) {
    CleanEnv env;
    TempDir home;
    write_file(home.file("config.json"), R"({"llamacpp_n_ctx": 1024, "llamacpp_n_gpu_layers": 10, "llamacpp_n_threads": 3,
                                          "llamacpp_model": "from-json", "unknown_key": true})");
    write_file(home.file(".env"), "LLAMACPP_N_CTX=2048\nLLAMACPP_N_GPU_LAYERS=20\nLLAMACPP_MODEL=from-dotenv\n");
    setenv("LLAMACPP_N_CTX", "3072", 1);
    setenv("LLAMACPP_MODEL", "from-env", 1);
    Settings s = Settings::load({{"model", "from-flag"}}, home.path());
    EXPECT_EQ(s.model(), "from-flag");
    EXPECT_EQ(s.get("model").source, SettingSource::kFlag);
    EXPECT_EQ(s.n_ctx(), 3072);
    EXPECT_EQ(s.get("n_ctx").source, SettingSource::kEnvironment);
    EXPECT_EQ(s.n_gpu_layers(), 20);
    EXPECT_EQ(s.get("n_gpu_layers").source, SettingSource::kDotEnv);
    EXPECT_EQ(s.n_threads(), 3);
    EXPECT_EQ(s.get("n_threads").source, SettingSource::kConfigFile);
    EXPECT_EQ(s.get("provider").source, SettingSource::kDefault);
    llm::ModelConfig mc = s.model_config();
    EXPECT_EQ(mc.n_ctx, 3072);
    EXPECT_EQ(mc.n_gpu_layers, 20);
    EXPECT_EQ(mc.n_threads, 3);
    // Every key can be given each way.
    for (const SettingKey & k : setting_keys()) {
        EXPECT_NO_THROW(s.get(k.name));
        EXPECT_NO_THROW(s.get(k.json));
        EXPECT_NO_THROW(s.get(k.env));
    }
}

TEST(Settings, DotenvSyntax) {
    auto vars = parse_dotenv(
        "# a comment\n"
        "\n"
        "export CORTEX_PROVIDER=ollama\n"
        "OLLAMA_MODEL = \"llama3.2\"\n"
        "HF_TOKEN='hf_abc # not a comment'\n"
        "PLAIN=value # trailing comment\n"
        "ESCAPED=\"a\\\"b\\nc\"\n"
        "EMPTY=\n",
        "test.env");
    EXPECT_EQ(vars["CORTEX_PROVIDER"], "ollama");
    EXPECT_EQ(vars["OLLAMA_MODEL"], "llama3.2");
    EXPECT_EQ(vars["HF_TOKEN"], "hf_abc # not a comment");
    EXPECT_EQ(vars["PLAIN"], "value");
    EXPECT_EQ(vars["ESCAPED"], "a\"b\nc");
    EXPECT_EQ(vars["EMPTY"], "");
}

TEST(Settings, BadDotenvLinesNameFileAndLine) {
    for (const char * text : {"LLAMACPP_N_CTX 4096\n", "1BAD=x\n", "KEY=\"unterminated\n", "KEY='a' trailing\n", "=value\n"}) {
        Error e = expect_error(ErrorCode::kInvalidArgument, [&] { parse_dotenv(std::string("# ok\n") + text, "/home/u/.cortex/.env"); });
        EXPECT_NE(e.message().find("/home/u/.cortex/.env:2"), std::string::npos) << e.message();
    }
}

TEST(Settings, BadValuesNameWhereTheyCameFrom) {
    CleanEnv env;
    TempDir home;
    write_file(home.file(".env"), "# settings\nLLAMACPP_N_CTX=lots\n");
    Error e = expect_error(ErrorCode::kInvalidArgument, [&] { Settings::load({}, home.path()); });
    EXPECT_NE(e.message().find(home.file(".env")), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("LLAMACPP_N_CTX"), std::string::npos);

    write_file(home.file(".env"), "");
    for (auto [var, value] : std::vector<std::pair<const char *, const char *>>{
             {"CORTEX_PROVIDER", "openai"}, {"LLAMACPP_N_CTX", "0"}, {"LLAMACPP_N_CTX", "-5"}, {"LLAMACPP_N_CTX", "4k"},
             {"LLAMACPP_N_GPU_LAYERS", "-2"}, {"LLAMACPP_N_THREADS", "many"}, {"CORTEX_LOG_LEVEL", "loud"}, {"OLLAMA_HOST", ""}}) {
        setenv(var, value, 1);
        Error bad = expect_error(ErrorCode::kInvalidArgument, [&] { Settings::load({}, home.path()); });
        EXPECT_NE(bad.message().find(var), std::string::npos) << bad.message();
        unsetenv(var);
    }
    expect_error(ErrorCode::kInvalidArgument, [&] { Settings::load({{"n_ctx", "zero"}}, home.path()); });
    expect_error(ErrorCode::kInvalidArgument, [&] { Settings::load({{"no_such_key", "1"}}, home.path()); });
}

TEST(Settings, MalformedConfigJson) {
    CleanEnv env;
    TempDir home;
    // 1e400: a number beyond a double is nlohmann's out_of_range, not a parse_error, and escaped.
    for (const char * text : {"{", "[1,2]", "{\"llamacpp_n_ctx\": true}", "{\"api_provider\": \"gpt\"}",
                              "{\"llamacpp_n_ctx\": [4096]}", "{\"llamacpp_n_ctx\": 1e400}"}) {
        write_file(home.file("config.json"), text);
        Error e = expect_error(ErrorCode::kInvalidArgument, [&] { Settings::load({}, home.path()); });
        EXPECT_NE(e.message().find(home.file("config.json")), std::string::npos) << e.message();
    }
}

TEST(Settings, OllamaSetupKeepsWorkingAndMigrates) {
    CleanEnv env;
    TempDir home;
    setenv("CORTEX_PROVIDER", "ollama", 1);
    setenv("OLLAMA_MODEL", "llama3.2", 1);
    Settings ollama = Settings::load({}, home.path());
    EXPECT_EQ(ollama.provider(), "ollama");
    EXPECT_EQ(ollama.ollama_model(), "llama3.2");
    EXPECT_EQ(ollama.model(), "") << "no migration while Ollama is the provider";
    setenv("CORTEX_PROVIDER", "llamacpp", 1);
    Settings moved = Settings::load({}, home.path());
    EXPECT_EQ(moved.model(), "llama3.2");
    EXPECT_EQ(moved.get("model").source, SettingSource::kMigrated);
    setenv("LLAMACPP_MODEL", "qwen2.5-7b", 1);
    EXPECT_EQ(Settings::load({}, home.path()).model(), "qwen2.5-7b") << "an explicit model wins";
}

TEST(Settings, DotenvExtrasAreKeptNotInterpreted) {
    CleanEnv env;
    TempDir home;
    write_file(home.file(".env"), "HF_TOKEN=hf_secret\nOPENAI_API_KEY=sk-old\n");
    Settings s = Settings::load({}, home.path());
    EXPECT_EQ(s.env_or_dotenv("HF_TOKEN"), "hf_secret");
    setenv("HF_TOKEN", "hf_env", 1);
    EXPECT_EQ(s.env_or_dotenv("HF_TOKEN"), "hf_env");
    unsetenv("HF_TOKEN");
    EXPECT_NE(s.to_text().find("OPENAI_API_KEY"), std::string::npos);
}

TEST(Settings, ShowListsEveryKeyWithItsSource) {
    CleanEnv env;
    TempDir home;
    setenv("LLAMACPP_N_CTX", "8192", 1);
    Settings s = Settings::load({}, home.path());
    nlohmann::json j = nlohmann::json::parse(s.to_json());
    EXPECT_EQ(j.size(), setting_keys().size());
    EXPECT_EQ(j["n_ctx"]["value"], "8192");
    EXPECT_EQ(j["n_ctx"]["source"], "environment");
    EXPECT_EQ(j["provider"]["source"], "default");
    EXPECT_NE(s.to_text().find("n_ctx           8192  [environment: LLAMACPP_N_CTX]"), std::string::npos) << s.to_text();
}

TEST(ConfigSet, WritesAtomicallyAndKeepsUnknownKeys) {
    CleanEnv env;
    TempDir home;
    write_file(home.file("config.json"), R"({"api_provider": "ollama", "my_own_key": {"nested": [1, 2]}})");
    set_config_value(home.path(), "n_ctx", "8192");
    set_config_value(home.path(), "llamacpp_model", "qwen2.5-7b");
    set_config_value(home.path(), "provider", "llamacpp");
    nlohmann::json j = nlohmann::json::parse(cortex::test::read_file(home.file("config.json")));
    EXPECT_EQ(j["llamacpp_n_ctx"], 8192);
    EXPECT_EQ(j["llamacpp_model"], "qwen2.5-7b");
    EXPECT_EQ(j["api_provider"], "llamacpp");
    EXPECT_EQ(j["my_own_key"]["nested"][1], 2);
    Settings s = Settings::load({}, home.path());
    EXPECT_EQ(s.n_ctx(), 8192);
    EXPECT_EQ(s.get("n_ctx").source, SettingSource::kConfigFile);
}

TEST(ConfigSet, RejectsBadInputAndLeavesTheFileAlone) {
    CleanEnv env;
    TempDir home;
    const std::string before = R"({"llamacpp_n_ctx": 2048})";
    write_file(home.file("config.json"), before);
    expect_error(ErrorCode::kInvalidArgument, [&] { set_config_value(home.path(), "n_ctx", "big"); });
    expect_error(ErrorCode::kInvalidArgument, [&] { set_config_value(home.path(), "provider", "gpt4"); });
    expect_error(ErrorCode::kInvalidArgument, [&] { set_config_value(home.path(), "colour", "blue"); });
    EXPECT_EQ(cortex::test::read_file(home.file("config.json")), before);
    write_file(home.file("config.json"), "{broken");
    expect_error(ErrorCode::kInvalidArgument, [&] { set_config_value(home.path(), "n_ctx", "4096"); });
    EXPECT_EQ(cortex::test::read_file(home.file("config.json")), "{broken") << "a file we cannot parse is never overwritten";
    write_file(home.file("config.json"), "{\"x\": -1e400}");
    expect_error(ErrorCode::kInvalidArgument, [&] { set_config_value(home.path(), "n_ctx", "4096"); });
    EXPECT_EQ(cortex::test::read_file(home.file("config.json")), "{\"x\": -1e400}");
    EXPECT_FALSE(cortex::test::file_exists(home.file("config.json.tmp")));
}

// A full disk while writing config.json: a clear error, the old file intact, no temporary left.
TEST(ConfigSet, FullDiskLeavesTheOldFileWhole) {
    cortex::test::SmallDisk disk(1 << 20);
    if (!disk.ok()) GTEST_SKIP() << "needs root to mount a small tmpfs";
    CleanEnv env;
    const std::string home = disk.file("home");
    std::filesystem::create_directories(home);
    const std::string before = R"({"llamacpp_n_ctx": 2048, "my_own_key": ")" + std::string(3000, 'k') + "\"}";
    write_file(home + "/config.json", before);
    disk.fill("other-writer");
    Error e = expect_error(ErrorCode::kIo, [&] { set_config_value(home, "n_ctx", "8192"); });
    EXPECT_NE(e.hint().find("free some disk space"), std::string::npos) << e.message() << " / " << e.hint();
    EXPECT_EQ(cortex::test::read_file(home + "/config.json"), before);
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(home), std::filesystem::directory_iterator()), 1)
        << "nothing but config.json";
    std::filesystem::remove(disk.file("other-writer"));
    set_config_value(home, "n_ctx", "8192");
    EXPECT_EQ(Settings::load({}, home).n_ctx(), 8192);
}
