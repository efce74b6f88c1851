// GGUF pre-flight checks: file kind, size, magic, header, tensor bounds, architecture key.
#include "gguf_check.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "cortex/error.h"
#include "gguf.h"

namespace cortex::llm {
namespace {

struct GgufDeleter {
    void operator()(gguf_context * ctx) const { gguf_free(ctx); }
};
using GgufPtr = std::unique_ptr<gguf_context, GgufDeleter>;

struct FileCloser {
    void operator()(FILE * f) const { fclose(f); }
};

const char * kHintRedownload = "the file is damaged or not a model: download it again (cortex-model download NAME --force) or pick another file";

std::string printable_prefix(const unsigned char * bytes, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) {
        char buf[8];
        if (bytes[i] >= 0x20 && bytes[i] < 0x7f) snprintf(buf, sizeof buf, "%c", bytes[i]);
        else snprintf(buf, sizeof buf, "\\x%02x", bytes[i]);
        out += buf;
    }
    return out;
}

}  // namespace

GgufSummary check_model_file(const std::string & path) {
    if (path.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "no model path given", "pass a model name or the path of a .gguf file");
    }
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            throw Error(ErrorCode::kNotFound, "model file '" + path + "' does not exist",
                        "check the path, or list the models you have with: cortex-model list --downloaded");
        }
        throw Error(ErrorCode::kIo, "cannot access model file '" + path + "': " + strerror(errno), "check its permissions");
    }
    if (S_ISDIR(st.st_mode)) {
        throw Error(ErrorCode::kInvalidModel, "'" + path + "' is a directory, not a model file",
                    "pass the .gguf file inside it, or a model name");
    }
    if (!S_ISREG(st.st_mode)) {
        throw Error(ErrorCode::kInvalidModel, "'" + path + "' is not a regular file", "pass the path of a .gguf file");
    }
    GgufSummary summary;
    summary.file_size = static_cast<uint64_t>(st.st_size);
    if (st.st_size == 0) {
        throw Error(ErrorCode::kInvalidModel, "model file '" + path + "' is empty", kHintRedownload);
    }

    std::unique_ptr<FILE, FileCloser> file(fopen(path.c_str(), "rb"));
    if (!file) {
        throw Error(ErrorCode::kIo, "cannot open model file '" + path + "': " + strerror(errno), "check its permissions");
    }
    unsigned char magic[4] = {};
    size_t got = fread(magic, 1, sizeof magic, file.get());
    if (got < sizeof magic || memcmp(magic, "GGUF", 4) != 0) {
        throw Error(ErrorCode::kInvalidModel,
                    "'" + path + "' is not a GGUF model (it starts with \"" + printable_prefix(magic, got) + "\", not \"GGUF\")",
                    kHintRedownload);
    }

    rewind(file.get());
    gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
    GgufPtr ctx(gguf_init_from_file_ptr(file.get(), params));
    if (!ctx) {
        throw Error(ErrorCode::kInvalidModel, "'" + path + "' has a corrupt or truncated GGUF header", kHintRedownload);
    }
    summary.n_tensors = gguf_get_n_tensors(ctx.get());
    if (summary.n_tensors == 0) {
        throw Error(ErrorCode::kInvalidModel, "'" + path + "' holds no tensors (a vocabulary-only GGUF?)",
                    "pass a complete model file");
    }
    const uint64_t data_offset = gguf_get_data_offset(ctx.get());
    uint64_t data_end = data_offset;
    for (int64_t i = 0; i < summary.n_tensors; ++i) {
        uint64_t end = data_offset + gguf_get_tensor_offset(ctx.get(), i) + gguf_get_tensor_size(ctx.get(), i);
        if (end > data_end) data_end = end;
    }
    if (data_end > summary.file_size) {
        throw Error(ErrorCode::kInvalidModel,
                    "'" + path + "' is truncated: its tensors need " + std::to_string(data_end) + " bytes but the file has " +
                        std::to_string(summary.file_size),
                    "the download did not finish: download it again (cortex-model download NAME --force)");
    }
    int64_t arch_key = gguf_find_key(ctx.get(), "general.architecture");
    if (arch_key < 0 || gguf_get_kv_type(ctx.get(), arch_key) != GGUF_TYPE_STRING) {
        throw Error(ErrorCode::kInvalidModel, "'" + path + "' has no general.architecture key", kHintRedownload);
    }
    summary.architecture = gguf_get_val_str(ctx.get(), arch_key);
    return summary;
}

}  // namespace cortex::llm
