// What the model is told about this system: from /etc/os-release, dpkg and uname, read once
// per call, without a shell.
#include "interpreter/system_info.h"

#include <sys/utsname.h>

#include <map>

#include "core/file_util.h"
#include "core/string_util.h"
#include "core/subprocess.h"
#include "cortex/error.h"

namespace cortex::interpreter {
namespace {

// PRETTY_NAME of an os-release file: KEY=value lines, values optionally double-quoted.
std::string pretty_name(const std::string & path) {
    std::string text;
    try {
        if (!read_file(path, text)) return "";
    } catch (const Error &) {
        return "";
    }
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        const std::string line = trim(text.substr(pos, end - pos));
        pos = end + 1;
        if (line.rfind("PRETTY_NAME=", 0) != 0) continue;
        std::string value = line.substr(12);
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
            value = value.substr(1, value.size() - 2);
        }
        return value;
    }
    return "";
}

}  // namespace

SystemInfo detect_system(const std::string & os_release) {
    SystemInfo info;
    info.distribution = pretty_name(os_release);
    if (info.distribution.empty()) info.distribution = "unknown Linux";
    utsname u{};
    const bool have_uname = uname(&u) == 0;
    // dpkg's architecture is the one packages are chosen for (i386 userland on an amd64 kernel).
    try {
        const ProcessResult r = run_process({"dpkg", "--print-architecture"});
        if (r.exit_status == 0) info.architecture = trim(r.output.substr(0, r.output.find('\n')));
    } catch (const Error &) {
        // No dpkg: uname's name below.
    }
    if (info.architecture.empty()) info.architecture = have_uname ? u.machine : "unknown";
    info.kernel = have_uname ? u.release : "unknown";
    return info;
}

std::vector<InstalledPackage> installed_versions(const std::vector<std::string> & names,
                                                 const std::string & status_path) {
    std::map<std::string, InstalledPackage> by_name;
    for (InstalledPackage & p : read_installed_packages(status_path)) {
        // "name:arch" for foreign architectures; one entry per name is enough for a prompt.
        const std::string bare = p.name.substr(0, p.name.find(':'));
        by_name.emplace(bare, std::move(p));
    }
    std::vector<InstalledPackage> out;
    for (const auto & name : names) {
        auto it = by_name.find(name);
        if (it != by_name.end()) {
            InstalledPackage p = it->second;
            p.name = name;
            out.push_back(std::move(p));
        } else {
            out.push_back({name, "", ""});
        }
    }
    return out;
}

std::string describe_system_for_prompt(const SystemInfo & system, const std::vector<InstalledPackage> & packages) {
    std::string out = system.distribution + ", " + system.architecture + ", Linux " + system.kernel + ".";
    std::string installed;
    std::string missing;
    for (const auto & p : packages) {
        std::string & list = p.version.empty() ? missing : installed;
        if (!list.empty()) list += ", ";
        list += p.version.empty() ? p.name : p.name + " " + p.version;
    }
    if (!installed.empty()) out += " Installed: " + installed + ".";
    if (!missing.empty()) out += " Not installed: " + missing + ".";
    return out;
}

std::string describe_system_for_prompt(const std::vector<std::string> & relevant_packages) {
    std::vector<InstalledPackage> packages;
    try {
        if (!relevant_packages.empty()) packages = installed_versions(relevant_packages);
    } catch (const Error &) {
        // No dpkg database (a container without dpkg): the description says less, nothing fails.
    }
    return describe_system_for_prompt(detect_system(), packages);
}

}  // namespace cortex::interpreter
