// apt's own view of a transaction: `apt-get -s` (simulation, works without root) parsed into
// PackageChange rows, and the fixed argv templates that --execute runs.
#pragma once

#include <string>
#include <vector>

#include "interpreter/plan.h"

namespace cortex::interpreter {

// The argv that performs `op` on `packages` ("name", "name=version" or "name:arch"), e.g.
// {"apt-get", "install", "-y", "-q", "--no-remove", "nginx"}. Install never removes anything
// (--no-remove). Throws Error(kInvalidArgument) for a name that is not a Debian package name,
// so that no argument can ever be read as an option.
std::vector<std::string> apt_command(Operation op, const std::vector<std::string> & packages);

// The package arguments of an apt_command() argv (options and their values skipped).
std::vector<std::string> command_packages(const std::vector<std::string> & argv);

struct Simulation {
    std::vector<PackageChange> changes;  // sizes are 0: the planner fills them from the index
    std::string output;                  // apt's whole output
};

// Runs `apt-get -s` for `op` on `packages`. Throws Error(kNotFound) for a package apt does not
// know, Error(kInvalidArgument) for an unsatisfiable request (apt's own explanation in the
// message), Error(kIo) when apt-get cannot be run.
Simulation simulate(Operation op, const std::vector<std::string> & packages);

// Parses the "Inst"/"Remv" lines of `apt-get -s` output (exposed for tests).
std::vector<PackageChange> parse_simulation(const std::string & output);

}  // namespace cortex::interpreter
