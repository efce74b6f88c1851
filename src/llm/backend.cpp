// The llama/ggml log goes through here: quiet unless CORTEX_LOG_LEVEL asks, and libllama's error
// lines are kept per thread so that a failed load can say why.
#include "backend.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "cortex/error.h"
#include "cortex/llm.h"
#include "ggml-backend.h"
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
    if (lvl == GGML_LOG_LEVEL_CONT)
        lvl = t_last_level;
    else
        t_last_level = lvl;
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

// GPU builds load their backends as modules (GGML_BACKEND_DL). ggml's default search also tries
// the executable's directory and the current one, so a cortex run by root in a directory others
// can write would load a library planted there. Load them from where libggml itself lives
// (the llama.cpp prefix, or the package's private library folder) instead; GGML_BACKEND_PATH,
// an explicit choice, still works. Builds with backends built in have them registered already.
namespace {
void load_backend_modules() {
    if (ggml_backend_reg_count() > 0) return;
    Dl_info info{};
    if (dladdr(reinterpret_cast<void *>(&ggml_backend_load_all_from_path), &info) == 0 || !info.dli_fname) return;
    const std::string library = info.dli_fname;
    const size_t slash = library.find_last_of('/');
    if (slash == std::string::npos) return;
    ggml_backend_load_all_from_path(library.substr(0, slash).c_str());
}
}  // namespace

void ensure_backend() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (const char * env = std::getenv("CORTEX_LOG_LEVEL"); env && *env) {
            int parsed = parse_level(env);
            if (parsed >= 0)
                g_min_level = parsed;
            else
                fprintf(stderr,
                        "cortex: warning: CORTEX_LOG_LEVEL='%s' is not one of error, warn, info, debug, none; using "
                        "error\n",
                        env);
        }
        llama_log_set(log_callback, nullptr);
        load_backend_modules();  // before libllama would search with ggml's defaults
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
