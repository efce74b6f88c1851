// What the model is told about this system: from /etc/os-release, dpkg and uname, read once
// per call without a shell.
#include "interpreter/system_info.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <map>

#include "core/file_util.h"
#include "core/string_util.h"
#include "cortex/error.h"

extern char ** environ;

namespace cortex::interpreter {
namespace {

// The first line of a program's standard output ("" when it cannot run). Fixed argv, no shell.
std::string first_line_of(const std::vector<std::string> & args) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return "";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    std::vector<char *> argv;
    for (const auto & a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    std::string out;
    if (rc == 0) {
        char buf[256];
        for (;;) {
            ssize_t n = read(fds[0], buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            out.append(buf, static_cast<size_t>(n));
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) out.clear();
    }
    close(fds[0]);
    return trim(out.substr(0, out.find('\n')));
}

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
    info.architecture = first_line_of({"dpkg", "--print-architecture"});
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
