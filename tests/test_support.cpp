// Test helpers shared by the model-labelled tests.
#include "test_support.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
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

SmallDisk::SmallDisk(size_t bytes) {
    mounted_ = mount("tmpfs", dir_.path().c_str(), "tmpfs", MS_NOSUID | MS_NODEV, ("size=" + std::to_string(bytes)).c_str()) == 0;
}

SmallDisk::~SmallDisk() {
    if (mounted_) umount2(dir_.path().c_str(), MNT_DETACH);
}

void SmallDisk::fill(const std::string & name, size_t leave) {
    const std::string path = file(name);
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << path;
    const std::string chunk(4096, 'x');
    while (write(fd, chunk.data(), chunk.size()) > 0) {
    }
    close(fd);
    // tmpfs counts whole pages: give back what was asked, rounded up to pages.
    const off_t size = static_cast<off_t>(std::filesystem::file_size(path));
    ASSERT_EQ(truncate(path.c_str(), std::max<off_t>(0, size - static_cast<off_t>((leave + 4095) / 4096 * 4096))), 0);
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
