// Runs a plan's commands: argv vectors from fixed templates, never a shell; sudo when not root.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "interpreter/plan.h"

namespace cortex::interpreter {

struct ExecuteOptions {
    std::function<void(std::string_view line)> on_output;  // apt's output, line by line
    const std::atomic<bool> * cancel = nullptr;             // Ctrl-C: stop after the current command
    std::string dpkg_status = "/var/lib/dpkg/status";
};

struct ExecuteResult {
    int exit_status = 0;
    std::string log_tail;                   // the last lines of the output
    std::vector<InstalledPackage> before;   // states of every package the plan changes
    std::vector<InstalledPackage> after;
    int commands_run = 0;                   // how many commands were started
    bool cancelled = false;                 // options.cancel stopped it before a command (exit_status 130)
    std::string message;                    // on failure: what went wrong, in words (e.g. apt's lock)
};

// Runs plan.commands in order, stopping at the first failure. Not root: prefixes sudo when it
// exists, else throws Error(kInvalidArgument) saying to run as root or install sudo.
// Only apt-get, apt, apt-mark and dpkg may be argv[0] (Error(kInvalidArgument) otherwise): a plan
// read back from history is data, and must not be able to run anything else as root.
// Not thread-safe with respect to other code that forks while this runs (inherited pipe ends).
ExecuteResult execute_plan(const Plan & plan, const ExecuteOptions & options = {});

// The recorded state of every package in plan.changes and plan.packages ("name=version" and
// "name:arch" reduced to the name), from a dpkg status file: one row per installed architecture,
// or one row with an empty version for a package that is not installed. Throws Error(kIo).
std::vector<InstalledPackage> package_states(const Plan & plan, const std::string & dpkg_status);

// A one-line explanation of a failed apt run from its output, e.g. "another package manager is
// running (pid 123, apt-get)"; empty when the output has no recognisable cause.
std::string describe_apt_failure(const std::string & output);

}  // namespace cortex::interpreter
