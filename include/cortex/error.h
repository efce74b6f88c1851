// cortex::Error: the one error type of the Cortex library.
//
// Every failure the library can report is an Error with a machine-readable code, a message that
// says what failed, and a hint that says what the user can do about it. Boundaries (CLI mains,
// the daemon, bindings) catch it and print "error: <message>" and "hint: <hint>".
#pragma once

#include <stdexcept>
#include <string>

namespace cortex {

enum class ErrorCode {
    kInvalidArgument,    // a parameter is out of range or malformed
    kNotFound,           // a model name or file does not exist
    kInvalidModel,       // the file is not a usable GGUF model (empty, truncated, wrong magic, ...)
    kUnsupportedModel,   // a valid GGUF whose architecture this llama.cpp build cannot run
    kLoadFailed,         // libllama could not load the model or create its context
    kPromptTooLong,      // the prompt does not fit the context window
    kInvalidGrammar,     // the GBNF grammar does not parse
    kInvalidSchema,      // the JSON schema does not parse or cannot be turned into a grammar
    kTemplateFailed,     // the chat template could not be applied to the messages
    kDecodeFailed,       // libllama failed while evaluating tokens
    kNetwork,            // a download failed: connection, HTTP status, stall
    kChecksumMismatch,   // downloaded or stored bytes do not have the expected SHA-256
    kCancelled,          // the user interrupted the operation (Ctrl-C); what was done is kept
    kBusy,               // another process holds the lock
    kIo,                 // an operating-system call failed
    kInternal,           // a bug: please report it
};

// Returns a stable lower-case name for `code`, e.g. "invalid_model".
const char * error_code_name(ErrorCode code);

class Error : public std::runtime_error {
  public:
    Error(ErrorCode code, std::string message, std::string hint = "");

    ErrorCode code() const { return code_; }
    const std::string & message() const { return message_; }
    const std::string & hint() const { return hint_; }

  private:
    ErrorCode code_;
    std::string message_;
    std::string hint_;
};

}  // namespace cortex
