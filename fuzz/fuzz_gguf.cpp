// The pre-flight checks of a model file (check_model_file) and cortex-model's reading of its
// header (inspect_model_file), on the input as a file: what a truncated download, a wrong file
// or a damaged one looks like to Cortex before libllama sees it.
#include <sys/mman.h>
#include <unistd.h>

#include "cortex/models.h"
#include "fuzz_common.h"
#include "ggml.h"
#include "llm/gguf_check.h"

using namespace cortex;

namespace {

int g_fd = -1;
std::string g_path;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    // gguf explains each rejected header on stderr; thousands a second would drown the report.
    ggml_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    // One in-memory file, rewritten for every input: no disk, nothing left behind.
    g_fd = memfd_create("fuzz-gguf", MFD_CLOEXEC);
    if (g_fd < 0) abort();
    g_path = "/proc/self/fd/" + std::to_string(g_fd);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    if (ftruncate(g_fd, 0) != 0 || pwrite(g_fd, data, size, 0) != static_cast<ssize_t>(size)) abort();
    llm::GgufSummary summary;
    if (!fuzz::accepts([&] { summary = llm::check_model_file(g_path); })) return 0;
    fuzz::require(summary.file_size == size && summary.n_tensors > 0, "a model file accepted with no tensors");
    models::ModelFileInfo info;
    fuzz::require(fuzz::accepts([&] { info = models::inspect_model_file(g_path); }),
                  "a file check_model_file() accepts, inspect_model_file() refuses");
    fuzz::require(info.architecture == summary.architecture, "two readings of one header disagree");
    return 0;
}
