// GGUF pre-flight checks: file kind, size, magic, header, tensor bounds, architecture key.
#include "gguf_check.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "cortex/error.h"
#include "cortex/models.h"
#include "ggml.h"
#include "gguf.h"

namespace cortex::llm {
namespace {

using GgufPtr = std::unique_ptr<gguf_context, GgufDeleter>;

struct FileCloser {
    void operator()(FILE * f) const { fclose(f); }
};


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

namespace cortex::models {
namespace {

// general.file_type values (llama_ftype) of the quantizations people meet.
const char * ftype_name(uint32_t ftype) {
    switch (ftype) {
        case 0: return "F32";
        case 1: return "F16";
        case 2: return "Q4_0";
        case 3: return "Q4_1";
        case 7: return "Q8_0";
        case 8: return "Q5_0";
        case 9: return "Q5_1";
        case 10: return "Q2_K";
        case 11: return "Q3_K_S";
        case 12: return "Q3_K_M";
        case 13: return "Q3_K_L";
        case 14: return "Q4_K_S";
        case 15: return "Q4_K_M";
        case 16: return "Q5_K_S";
        case 17: return "Q5_K_M";
        case 18: return "Q6_K";
        case 32: return "BF16";
        default: return "other";
    }
}

}  // namespace

ModelFileInfo inspect_model_file(const std::string & path) {
    llm::GgufSummary summary = llm::check_model_file(path);
    gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
    std::unique_ptr<gguf_context, llm::GgufDeleter> ctx(gguf_init_from_file(path.c_str(), params));
    if (!ctx) throw Error(ErrorCode::kInvalidModel, "'" + path + "' has a corrupt GGUF header", llm::kHintRedownload);
    ModelFileInfo info;
    info.path = path;
    info.file_size = summary.file_size;
    info.architecture = summary.architecture;
    auto str = [&](const std::string & key) {
        int64_t id = gguf_find_key(ctx.get(), key.c_str());
        return id >= 0 && gguf_get_kv_type(ctx.get(), id) == GGUF_TYPE_STRING ? std::string(gguf_get_val_str(ctx.get(), id)) : std::string();
    };
    auto u32 = [&](const std::string & key) -> int64_t {
        int64_t id = gguf_find_key(ctx.get(), key.c_str());
        if (id < 0) return -1;
        switch (gguf_get_kv_type(ctx.get(), id)) {
            case GGUF_TYPE_UINT32: return gguf_get_val_u32(ctx.get(), id);
            case GGUF_TYPE_INT32: return gguf_get_val_i32(ctx.get(), id);
            case GGUF_TYPE_UINT64: return static_cast<int64_t>(gguf_get_val_u64(ctx.get(), id));
            default: return -1;
        }
    };
    info.name = str("general.name");
    int64_t ftype = u32("general.file_type");
    info.quantization = ftype < 0 ? "unknown" : ftype_name(static_cast<uint32_t>(ftype));
    info.context_length = static_cast<int>(std::max<int64_t>(0, u32(info.architecture + ".context_length")));
    info.chat_template = str("tokenizer.chat_template");
    info.has_chat_template = !info.chat_template.empty();
    for (int64_t i = 0; i < gguf_get_n_tensors(ctx.get()); ++i) {
        const ggml_type type = gguf_get_tensor_type(ctx.get(), i);
        const size_t bytes = gguf_get_tensor_size(ctx.get(), i);
        info.n_params += bytes / ggml_type_size(type) * static_cast<uint64_t>(ggml_blck_size(type));
    }
    return info;
}

}  // namespace cortex::models
