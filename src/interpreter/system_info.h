// A short description of this system for the model's prompts (`cortex ask`, planning):
// distribution, architecture, kernel, and which of the relevant packages are installed.
#pragma once

#include <string>
#include <vector>

#include "interpreter/plan.h"

namespace cortex::interpreter {

struct SystemInfo {
    std::string distribution;  // PRETTY_NAME of /etc/os-release, e.g. "Debian GNU/Linux 12 (bookworm)"
    std::string architecture;  // dpkg's native architecture ("amd64"), else uname's machine
    std::string kernel;        // uname's release, e.g. "6.1.0-18-amd64"
};

// Probes this machine; never throws: what cannot be read is "unknown". `os_release` is for tests.
SystemInfo detect_system(const std::string & os_release = "/etc/os-release");

// The installed version of each of `names` (by package name, any architecture), in the order
// of `names`; a package that is not installed has an empty version. Throws what
// read_installed_packages() throws.
std::vector<InstalledPackage> installed_versions(const std::vector<std::string> & names,
                                                 const std::string & status_path = "/var/lib/dpkg/status");

// One short paragraph for a system prompt, e.g. "Debian GNU/Linux 12 (bookworm), amd64, Linux
// 6.1.0-18-amd64. Installed: nginx 1.22.1-9. Not installed: apache2." Never throws: an
// unreadable dpkg status leaves out the package part.
std::string describe_system_for_prompt(const std::vector<std::string> & relevant_packages);
// The same from given parts (tests, and callers that already read them).
std::string describe_system_for_prompt(const SystemInfo & system, const std::vector<InstalledPackage> & packages);

}  // namespace cortex::interpreter
