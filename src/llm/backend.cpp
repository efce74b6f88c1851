// The llama/ggml log goes through here: quiet unless CORTEX_LOG_LEVEL asks, and libllama's error
// lines are kept per thread so that a failed load can say why.
#include "backend.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "cortex/error.h"
#include "cortex/llm.h"
#include "llama.h"

namespace cortex::llm {
namespace {

// ggml levels: 1 debug, 2 info, 3 warn, 4 error (GGML_LOG_LEVEL_*); 5 is CONT.
std::atomic<int> g_min_level{GGML_LOG_LEVEL_ERROR};

thread_local bool t_capturing = false;
thread_local std::string t_captured;
thread_local int t_last_level = GGML_LOG_LEVEL_NONE;

int parse_level(const std::string & level) {
    if (level == "debug") return GGML_LOG_LEVEL_DEBUG;
    if (level == "info") return GGML_LOG_LEVEL_INFO;
    if (level == "warn" || level == "warning") return GGML_LOG_LEVEL_WARN;
    if (level == "error") return GGML_LOG_LEVEL_ERROR;
    if (level == "none" || level == "quiet") return GGML_LOG_LEVEL_ERROR + 1;
    return -1;
}

void log_callback(ggml_log_level level, const char * text, void *) {
    int lvl = level;
    if (lvl == GGML_LOG_LEVEL_CONT) lvl = t_last_level;
    else t_last_level = lvl;
    if (t_capturing && lvl >= GGML_LOG_LEVEL_ERROR) {
        t_captured += text;
        // Keep the tail: the last lines say what finally failed.
        if (t_captured.size() > 4096) t_captured.erase(0, t_captured.size() - 4096);
    }
    if (lvl >= g_min_level.load(std::memory_order_relaxed)) fputs(text, stderr);
}

}  // namespace

void set_log_level(const std::string & level) {
    int parsed = parse_level(level);
    if (parsed < 0) {
        throw Error(ErrorCode::kInvalidArgument, "unknown log level '" + level + "'",
                    "use one of: error, warn, info, debug, none");
    }
    g_min_level = parsed;
}

void ensure_backend() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (const char * env = std::getenv("CORTEX_LOG_LEVEL"); env && *env) {
            int parsed = parse_level(env);
            if (parsed >= 0) g_min_level = parsed;
            else fprintf(stderr, "cortex: warning: CORTEX_LOG_LEVEL='%s' is not one of error, warn, info, debug, none; using error\n", env);
        }
        llama_log_set(log_callback, nullptr);
        llama_backend_init();
    });
}

void begin_capture_errors() {
    t_capturing = true;
    t_captured.clear();
}

std::string take_captured_errors() {
    t_capturing = false;
    std::string out;
    out.swap(t_captured);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

}  // namespace cortex::llm
