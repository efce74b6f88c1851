// Running another program: argv only, never a shell, output captured or streamed by line.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace cortex {

struct ProcessOptions {
    // Called with each complete output line as it arrives, without its '\n'; a last line without
    // one is passed when the program ends. May throw: the exception leaves run_process after the
    // child has been reaped (its output pipe is closed first, so it cannot block on writing).
    std::function<void(std::string_view line)> on_line;
    // Set in the child's environment, replacing a variable of the same name; the rest is inherited.
    std::map<std::string, std::string> extra_env;
    // Start the child with every standard signal at its default action and nothing blocked. A
    // signal the caller ignores (SIGPIPE, SIGINT while it handles Ctrl-C) otherwise stays ignored
    // across exec, and `yes | head` style pipelines in the child would run for ever.
    bool reset_signals = true;
    // true: stderr goes into the output with stdout, in order. false: stderr goes to /dev/null.
    bool merge_stderr = true;
    // true: a program that cannot be started (not on PATH, not executable) throws Error(kIo).
    // false: that is a result instead: exit_status 127 (as a shell reports it) and start_error.
    bool throw_if_not_started = true;
};

struct ProcessResult {
    int exit_status = 0;      // the exit code, or 128 + signal number when killed by a signal
    std::string output;       // stdout (and stderr, with merge_stderr) together, in order
    std::string start_error;  // why the program could not be started; empty when it ran
};

// Runs argv[0] (looked up on PATH unless it has a '/') with argv, the environment plus
// options.extra_env, stdin from /dev/null, and waits for it. Returns when the child has exited
// and the output it left in the pipe is read: a grandchild that keeps the pipe open (a daemon
// started by a package's maintainer script) does not keep the caller waiting, and what it writes
// after the child's exit is not collected. The child is never killed: how long it runs is its call.
// Throws Error(kInternal) for an empty argv, Error(kIo) when no pipe can be made, and Error(kIo)
// when the program cannot be started unless options.throw_if_not_started is false.
// Thread-safe; the pipe is close-on-exec, so a concurrent spawn elsewhere does not inherit it.
ProcessResult run_process(const std::vector<std::string> & argv, const ProcessOptions & options);

// The same with default options but for `extra_env` and `on_line`.
ProcessResult run_process(const std::vector<std::string> & argv, const std::map<std::string, std::string> & extra_env = {},
                          const std::function<void(std::string_view line)> & on_line = {});

// Whether `name` is an executable on PATH (or, with a '/', an executable file).
bool program_on_path(const std::string & name);

}  // namespace cortex
