// Checks a model file before libllama sees it, so that bad files give a clear cortex::Error
// instead of a libllama abort or a bare "failed to load".
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "gguf.h"

namespace cortex::llm {

struct GgufDeleter {
    void operator()(gguf_context * ctx) const { gguf_free(ctx); }
};

// The hint of every "this file is damaged" error; callers that know the model's name put it
// in place of NAME.
inline constexpr const char * kHintRedownload =
    "the file is damaged or not a model: download it again (cortex-model download NAME --force) or pick another file";

struct GgufSummary {
    std::string architecture;  // general.architecture
    int64_t n_tensors = 0;
    uint64_t file_size = 0;
};

// Throws Error (kNotFound, kInvalidModel, kIo) when `path` is not a complete GGUF model file.
GgufSummary check_model_file(const std::string & path);

}  // namespace cortex::llm
