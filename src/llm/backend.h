// Process-wide libllama state: backend initialisation and the log bridge.
#pragma once

#include <string>

namespace cortex::llm {

// Initialises the llama/ggml backends once per process and routes their log through Cortex's.
void ensure_backend();

// Starts collecting libllama's error lines on this thread, for error messages; returns them
// (the last few, joined) from take_captured_errors().
void begin_capture_errors();
std::string take_captured_errors();

}  // namespace cortex::llm
