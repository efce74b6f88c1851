#include "core/subprocess.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdlib>

#include "cortex/error.h"

extern char ** environ;

namespace cortex {

bool program_on_path(const std::string & name) {
    if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0;
    const char * path = getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    size_t start = 0;
    while (start <= dirs.size()) {
        size_t end = dirs.find(':', start);
        if (end == std::string::npos) end = dirs.size();
        std::string dir = dirs.substr(start, end - start);
        if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0) return true;
        start = end + 1;
    }
    return false;
}

ProcessResult run_process(const std::vector<std::string> & argv, const std::map<std::string, std::string> & extra_env,
                          const std::function<void(std::string_view line)> & on_line) {
    if (argv.empty()) throw Error(ErrorCode::kInternal, "run_process: empty argv", "please report this bug");
    if (!program_on_path(argv[0])) {
        throw Error(ErrorCode::kIo, "cannot run '" + argv[0] + "': not found on PATH",
                    "install the package that provides it, or fix PATH");
    }
    std::vector<std::string> env_strings;
    for (char ** e = environ; *e; ++e) {
        std::string_view kv(*e);
        std::string key(kv.substr(0, kv.find('=')));
        if (!extra_env.count(key)) env_strings.emplace_back(kv);
    }
    for (const auto & [k, v] : extra_env) env_strings.push_back(k + "=" + v);
    std::vector<char *> envp, args;
    for (auto & s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_copy = argv;
    for (auto & s : argv_copy) args.push_back(s.data());
    args.push_back(nullptr);

    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
        throw Error(ErrorCode::kIo, std::string("pipe failed: ") + strerror(errno), "check the process's file limits");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    if (rc != 0) {
        close(pipe_fds[0]);
        throw Error(ErrorCode::kIo, "cannot run '" + argv[0] + "': " + strerror(rc), "check that it is installed");
    }

    ProcessResult result;
    size_t line_start = 0;
    char buf[8192];
    for (;;) {
        ssize_t n = read(pipe_fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        result.output.append(buf, static_cast<size_t>(n));
        if (on_line) {
            size_t nl;
            while ((nl = result.output.find('\n', line_start)) != std::string::npos) {
                on_line(std::string_view(result.output).substr(line_start, nl - line_start));
                line_start = nl + 1;
            }
        }
    }
    close(pipe_fds[0]);
    if (on_line && line_start < result.output.size()) on_line(std::string_view(result.output).substr(line_start));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

}  // namespace cortex
