// Checks a model file before libllama sees it, so that bad files give a clear cortex::Error
// instead of a libllama abort or a bare "failed to load".
#pragma once

#include <cstdint>
#include <string>

namespace cortex::llm {

struct GgufSummary {
    std::string architecture;  // general.architecture
    int64_t n_tensors = 0;
    uint64_t file_size = 0;
};

// Throws Error (kNotFound, kInvalidModel, kIo) when `path` is not a complete GGUF model file.
GgufSummary check_model_file(const std::string & path);

}  // namespace cortex::llm
