// cortex::Error and the names of its codes.
#include "cortex/error.h"

#include <utility>

namespace cortex {

const char * error_code_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::kInvalidArgument: return "invalid_argument";
        case ErrorCode::kNotFound: return "not_found";
        case ErrorCode::kInvalidModel: return "invalid_model";
        case ErrorCode::kUnsupportedModel: return "unsupported_model";
        case ErrorCode::kLoadFailed: return "load_failed";
        case ErrorCode::kPromptTooLong: return "prompt_too_long";
        case ErrorCode::kInvalidGrammar: return "invalid_grammar";
        case ErrorCode::kInvalidSchema: return "invalid_schema";
        case ErrorCode::kTemplateFailed: return "template_failed";
        case ErrorCode::kDecodeFailed: return "decode_failed";
        case ErrorCode::kNetwork: return "network";
        case ErrorCode::kChecksumMismatch: return "checksum_mismatch";
        case ErrorCode::kCancelled: return "cancelled";
        case ErrorCode::kBusy: return "busy";
        case ErrorCode::kIo: return "io";
        case ErrorCode::kInternal: return "internal";
    }
    return "unknown";
}

Error::Error(ErrorCode code, std::string message, std::string hint)
    : std::runtime_error(message), code_(code), message_(std::move(message)), hint_(std::move(hint)) {}

}  // namespace cortex
