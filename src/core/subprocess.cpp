// The one child-process runner: posix_spawnp with argv (never a shell), output through a pipe,
// finished by the child's exit rather than by the pipe's end-of-file.
#include "core/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "cortex/error.h"

extern char ** environ;

namespace cortex {
namespace {

// Without a pidfd (kernels before 5.3) the child's exit is noticed by polling this often.
constexpr int kExitPollMs = 100;

struct Fd {
    int fd = -1;
    explicit Fd(int f = -1) : fd(f) {}
    ~Fd() { reset(); }
    Fd(const Fd &) = delete;
    Fd & operator=(const Fd &) = delete;
    void reset() {
        if (fd >= 0) close(fd);
        fd = -1;
    }
};

// posix_spawn attribute and file-action objects, destroyed on every path.
struct SpawnAttr {
    posix_spawnattr_t a;
    SpawnAttr() { posix_spawnattr_init(&a); }
    ~SpawnAttr() { posix_spawnattr_destroy(&a); }
};
struct SpawnActions {
    posix_spawn_file_actions_t a;
    SpawnActions() { posix_spawn_file_actions_init(&a); }
    ~SpawnActions() { posix_spawn_file_actions_destroy(&a); }
};

// Reaps the child on every path. On an exception (from on_line) the output pipe is closed first:
// a child blocked on writing to it then gets SIGPIPE or EPIPE instead of waiting for ever.
struct Reaper {
    pid_t pid;
    Fd & output;
    int status = 0;
    bool reaped = false;
    ~Reaper() {
        if (reaped) return;
        output.reset();
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    bool try_reap() {
        if (!reaped && waitpid(pid, &status, WNOHANG) == pid) reaped = true;
        return reaped;
    }
    void reap() {
        while (!reaped && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        reaped = true;
    }
};

// Appends output and passes each line completed by it to on_line.
class LineSplitter {
  public:
    LineSplitter(std::string & output, const std::function<void(std::string_view)> & on_line)
        : output_(output), on_line_(on_line) {}
    void append(const char * data, size_t n) {
        output_.append(data, n);
        if (!on_line_) return;
        size_t nl;
        while ((nl = output_.find('\n', line_start_)) != std::string::npos) {
            on_line_(std::string_view(output_).substr(line_start_, nl - line_start_));
            line_start_ = nl + 1;
        }
    }
    void finish() {
        if (on_line_ && line_start_ < output_.size()) on_line_(std::string_view(output_).substr(line_start_));
        line_start_ = output_.size();
    }

  private:
    std::string & output_;
    const std::function<void(std::string_view)> & on_line_;
    size_t line_start_ = 0;
};

// Built before the spawn: between fork and exec only async-signal-safe calls are allowed.
std::vector<std::string> child_environment(const std::map<std::string, std::string> & extra_env) {
    std::vector<std::string> env;
    for (char ** e = environ; e && *e; ++e) {
        std::string_view kv(*e);
        if (!extra_env.count(std::string(kv.substr(0, kv.find('='))))) env.emplace_back(kv);
    }
    for (const auto & [k, v] : extra_env) env.push_back(k + "=" + v);
    return env;
}

std::vector<char *> pointers(std::vector<std::string> & strings) {
    std::vector<char *> out;
    for (std::string & s : strings) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

int exit_status_of(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

}  // namespace

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

ProcessResult run_process(const std::vector<std::string> & argv, const ProcessOptions & options) {
    if (argv.empty()) throw Error(ErrorCode::kInternal, "run_process: empty argv", "please report this bug");
    std::vector<std::string> env_strings = child_environment(options.extra_env);
    std::vector<char *> envp = pointers(env_strings);
    std::vector<std::string> args = argv;
    std::vector<char *> argp = pointers(args);

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        throw Error(ErrorCode::kIo, std::string("cannot create a pipe for a program's output: ") + strerror(errno),
                    "the process is out of file descriptors; retry");
    }
    Fd read_end(fds[0]);
    Fd write_end(fds[1]);

    SpawnActions actions;
    // stdin is /dev/null: a prompt (dpkg's conffile question, sudo without a terminal) reads
    // end-of-file and fails instead of hanging. sudo reads a password from /dev/tty, not stdin.
    posix_spawn_file_actions_addopen(&actions.a, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions.a, write_end.fd, STDOUT_FILENO);
    if (options.merge_stderr) {
        posix_spawn_file_actions_adddup2(&actions.a, write_end.fd, STDERR_FILENO);
    } else {
        posix_spawn_file_actions_addopen(&actions.a, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    }
    SpawnAttr attr;
    if (options.reset_signals) {
        // Standard signals only: glibc keeps the real-time ones above them for itself.
        sigset_t defaults, empty_mask;
        sigemptyset(&defaults);
        for (int sig = 1; sig <= SIGSYS; sig++) {
            if (sig != SIGKILL && sig != SIGSTOP) sigaddset(&defaults, sig);
        }
        sigemptyset(&empty_mask);
        posix_spawnattr_setsigdefault(&attr.a, &defaults);
        posix_spawnattr_setsigmask(&attr.a, &empty_mask);
        posix_spawnattr_setflags(&attr.a, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    }

    ProcessResult result;
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, argp[0], &actions.a, &attr.a, argp.data(), envp.data());
    write_end.reset();  // the child holds the only write end now
    if (rc != 0) {
        const bool missing = rc == ENOENT && argv[0].find('/') == std::string::npos;
        result.exit_status = 127;
        result.start_error = "cannot run '" + argv[0] + "': " + (missing ? "not found on PATH" : strerror(rc));
        if (options.throw_if_not_started) {
            throw Error(ErrorCode::kIo, result.start_error,
                        missing ? "install the package that provides it, or fix PATH" : "check that it is installed");
        }
        return result;
    }

    Reaper child{pid, read_end};
    // The child's exit wakes poll through a pidfd (the unreaped child cannot be replaced by another
    // process with its pid); without one, the exit is checked every kExitPollMs.
    // Through syscall(): glibc 2.36's <sys/pidfd.h> lacks extern "C", so C++ cannot link its wrapper.
    Fd exit_fd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
    LineSplitter lines(result.output, options.on_line);
    char buf[8192];
    // Read until the child has exited and the pipe holds nothing more from it. End-of-file alone
    // cannot be the end: a daemon started by a maintainer script may inherit the pipe and keep it
    // open for ever.
    for (;;) {
        struct pollfd p[2] = {{read_end.fd, POLLIN, 0}, {exit_fd.fd, POLLIN, 0}};
        int ready = poll(p, 2, exit_fd.fd >= 0 ? -1 : kExitPollMs);
        if (ready < 0 && errno != EINTR) break;
        if (ready > 0 && p[0].revents != 0) {
            ssize_t n = read(read_end.fd, buf, sizeof buf);
            if (n > 0) {
                lines.append(buf, static_cast<size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                break;  // end-of-file (or a broken pipe): nothing more can come; wait for the exit below
            }
        }
        if (child.try_reap()) {
            // What the child wrote is in the pipe now; anything after it is a grandchild's.
            int left = 0;
            if (ioctl(read_end.fd, FIONREAD, &left) != 0) left = 0;
            while (left > 0) {
                ssize_t n = read(read_end.fd, buf, std::min(sizeof buf, static_cast<size_t>(left)));
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                lines.append(buf, static_cast<size_t>(n));
                left -= static_cast<int>(n);
            }
            break;
        }
    }
    child.reap();
    lines.finish();
    result.exit_status = exit_status_of(child.status);
    return result;
}

ProcessResult run_process(const std::vector<std::string> & argv, const std::map<std::string, std::string> & extra_env,
                          const std::function<void(std::string_view line)> & on_line) {
    ProcessOptions options;
    options.extra_env = extra_env;
    options.on_line = on_line;
    return run_process(argv, options);
}

}  // namespace cortex
