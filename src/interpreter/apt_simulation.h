// apt's own view of a transaction: `apt-get -s` (simulation, works without root) parsed into
// PackageChange rows, and the fixed argv templates that --execute runs.
#pragma once

#include <string>
#include <vector>

#include "interpreter/plan.h"

namespace cortex::interpreter {

// The argv that performs `op` on `packages` ("name", "name=version", "name/release", "name:arch"
// or the absolute path of a .deb), e.g. {"apt-get", "install", "-y", "-q", "--no-remove", "nginx"}.
// Install never removes anything (--no-remove). Upgrade of no packages is `apt-get upgrade`; of
// named ones, `apt-get install --only-upgrade`. Throws Error(kInvalidArgument) for a name that is not a Debian package
// name, so that no argument can ever be read as an option.
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

// The same for an apt_command() argv (a plan's command): its "-y" becomes "-s". Throws
// Error(kInvalidArgument) for an argv that apt_command() cannot have made.
Simulation simulate_command(std::vector<std::string> argv);

// Parses the "Inst"/"Remv" lines of `apt-get -s` output (exposed for tests).
std::vector<PackageChange> parse_simulation(const std::string & output);

}  // namespace cortex::interpreter
