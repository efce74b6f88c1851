// Test helpers shared by the model-labelled tests.
#include "test_support.h"

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "cortex/preload.h"

extern char ** environ;

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace cortex::test {

std::string vocab_path(const std::string & name) {
    return std::string(LLAMA_VOCAB_DIR) + "/ggml-vocab-" + name + ".gguf";
}

std::string model_path(const std::string & name) {
    return std::string(CORTEX_TEST_MODELS_DIR) + "/" + name + ".gguf";
}

pid_t spawn_logged(const std::vector<std::string> & args, const std::string & log) {
    std::vector<std::string> copy = args;
    std::vector<char *> argv;
    for (auto & a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    pid_t pid = -1;
    posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

bool wait_for_daemon(const std::string & socket, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (preload::Client::connect(socket)) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

TempDir::TempDir() {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/cortex-test-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

void write_file(const std::string & path, const std::string & bytes) {
    std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    std::ofstream out(path, std::ios::binary);
    out << bytes;
}

bool file_exists(const std::string & path) {
    return std::filesystem::exists(path);
}

std::string read_file(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace cortex::test
