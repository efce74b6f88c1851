// Test helpers shared by the model-labelled tests.
#include "test_support.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace cortex::test {

std::string vocab_path(const std::string & name) { return std::string(LLAMA_VOCAB_DIR) + "/ggml-vocab-" + name + ".gguf"; }

std::string model_path(const std::string & name) {
    return std::string(CORTEX_TEST_MODELS_DIR) + "/" + name + ".gguf";
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

bool file_exists(const std::string & path) { return std::filesystem::exists(path); }

std::string read_file(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace cortex::test
