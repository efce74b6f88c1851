// Running another program: argv only, never a shell, output captured or streamed by line.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace cortex {

struct ProcessResult {
    int exit_status = 0;  // the exit code, or 128 + signal number when killed by a signal
    std::string output;   // stdout and stderr together, in order
};

// Runs argv[0] (looked up on PATH) with argv, the environment plus `extra_env`, stdin from
// /dev/null. Each complete output line goes to `on_line` as it arrives (without the newline).
// Throws Error(kIo) when the program cannot be started (not installed, not executable).
ProcessResult run_process(const std::vector<std::string> & argv, const std::map<std::string, std::string> & extra_env = {},
                          const std::function<void(std::string_view line)> & on_line = {});

// Whether `name` is an executable on PATH.
bool program_on_path(const std::string & name);

}  // namespace cortex
