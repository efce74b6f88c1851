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
};

// Runs plan.commands in order, stopping at the first failure. Not root: prefixes sudo when it
// exists, else throws Error(kInvalidArgument) saying to run as root or install sudo.
ExecuteResult execute_plan(const Plan & plan, const ExecuteOptions & options = {});

}  // namespace cortex::interpreter
