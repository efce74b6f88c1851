// Runs a plan's apt commands as argv (core/subprocess, never a shell), streams their output line by
// line, and records the plan's package states from dpkg's status file before and after.
#include "interpreter/executor.h"

#include <unistd.h>

#include <cstring>
#include <deque>
#include <map>
#include <set>

#include "core/subprocess.h"
#include "cortex/error.h"

namespace cortex::interpreter {
namespace {

constexpr size_t kLogTailLines = 40;

// The programs a plan may run. Plans come from fixed templates (apt_command), but a plan is also
// read back from the history database, and that file must not become a way to run anything as root.
const std::set<std::string> kAllowedPrograms = {"apt-get", "apt", "apt-mark", "dpkg"};

std::string join(const std::vector<std::string> & argv) {
    std::string out;
    for (const std::string & a : argv) out += (out.empty() ? "" : " ") + a;
    return out;
}

// Splits a byte stream into lines for on_output and keeps the last kLogTailLines of them. apt's
// progress may end a line with '\r' alone; that counts as a line end too.
class LineSink {
  public:
    explicit LineSink(const ExecuteOptions & options) : options_(options) {}

    void feed(const char * data, size_t n) {
        for (size_t i = 0; i < n; i++) {
            char c = data[i];
            if (c == '\n') {
                if (!(partial_.empty() && last_was_cr_)) emit();
                last_was_cr_ = false;
            } else if (c == '\r') {
                if (!partial_.empty()) emit();
                last_was_cr_ = true;
            } else {
                partial_ += c;
                last_was_cr_ = false;
            }
        }
    }
    // One '\n'-terminated line from the runner, which may hold '\r'-separated progress lines.
    void feed_line(std::string_view line) {
        feed(line.data(), line.size());
        feed("\n", 1);
    }
    void add_line(const std::string & line) {
        partial_ = line;
        emit();
    }
    void finish() {
        if (!partial_.empty()) emit();
    }
    std::string tail() const {
        std::string out;
        for (const std::string & l : tail_) out += l + "\n";
        return out;
    }
    // All lines of the current command, for recognising why it failed.
    std::string command_output;

  private:
    void emit() {
        if (options_.on_output) options_.on_output(partial_);
        command_output += partial_ + "\n";
        tail_.push_back(std::move(partial_));
        if (tail_.size() > kLogTailLines) tail_.pop_front();
        partial_.clear();
    }
    const ExecuteOptions & options_;
    std::string partial_;
    bool last_was_cr_ = false;
    std::deque<std::string> tail_;
};

// Runs one argv with stdout and stderr merged into `sink`; returns the exit status (128 + signal
// for a child killed by a signal, 127 when the program cannot be started, with the reason logged).
// Ctrl-C reaches apt through the terminal's process group; whether it stops is apt's call (it may
// be in the middle of dpkg), so the command is only ever waited for, never killed.
int run_command(const std::vector<std::string> & argv, LineSink & sink) {
    ProcessOptions options;
    // DEBIAN_FRONTEND=noninteractive: debconf must never wait for an answer. LC_ALL=C:
    // describe_apt_failure() reads apt's English messages (sudo keeps LC_* by default).
    options.extra_env = {{"DEBIAN_FRONTEND", "noninteractive"}, {"LC_ALL", "C"}};
    options.on_line = [&](std::string_view line) { sink.feed_line(line); };
    // A failed start is a result, not an exception: the plan's package states are still recorded.
    options.throw_if_not_started = false;
    ProcessResult r = run_process(argv, options);
    if (!r.start_error.empty()) sink.add_line("cortex: " + r.start_error);
    sink.finish();
    return r.exit_status;
}

std::string base_name(const std::string & package) {
    size_t end = package.find_first_of("=:");
    return end == std::string::npos ? package : package.substr(0, end);
}

}  // namespace

std::vector<InstalledPackage> package_states(const Plan & plan, const std::string & dpkg_status) {
    std::vector<std::pair<std::string, std::string>> wanted;  // name, architecture from the plan
    std::set<std::string> seen;
    for (const PackageChange & c : plan.changes) {
        if (seen.insert(c.name).second) wanted.emplace_back(c.name, c.architecture);
    }
    for (const std::string & p : plan.packages) {
        std::string name = base_name(p);
        if (seen.insert(name).second) wanted.emplace_back(name, "");
    }
    if (wanted.empty()) return {};

    std::map<std::string, std::vector<InstalledPackage>> installed;
    for (InstalledPackage & p : read_installed_packages(dpkg_status)) installed[p.name].push_back(std::move(p));
    std::vector<InstalledPackage> out;
    for (const auto & [name, arch] : wanted) {
        auto it = installed.find(name);
        if (it == installed.end()) {
            out.push_back({name, arch, ""});
        } else {
            for (const InstalledPackage & p : it->second) out.push_back(p);
        }
    }
    return out;
}

std::string describe_apt_failure(const std::string & output) {
    auto line_with = [&](const std::string & needle) -> std::string {
        size_t at = output.find(needle);
        if (at == std::string::npos) return "";
        size_t start = output.rfind('\n', at);
        start = start == std::string::npos ? 0 : start + 1;
        size_t end = output.find('\n', at);
        return output.substr(start, end == std::string::npos ? std::string::npos : end - start);
    };
    // "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (apt-get)"
    std::string lock = line_with("Could not get lock");
    if (lock.empty()) lock = line_with("Unable to acquire the dpkg frontend lock");
    if (!lock.empty()) {
        size_t held = lock.find("held by process ");
        if (held != std::string::npos) {
            std::string who = lock.substr(held + strlen("held by process "));
            size_t paren = who.find(" (");
            std::string pid = who.substr(0, paren);
            std::string name;
            if (paren != std::string::npos) {
                name = who.substr(paren + 2);
                if (!name.empty() && name.back() == ')') name.pop_back();
            }
            return "another package manager is running (pid " + pid + (name.empty() ? "" : ", " + name) +
                   "); wait for it to finish and retry";
        }
        return "another package manager is running (" + lock + "); wait for it to finish and retry";
    }
    if (!line_with("Permission denied").empty() && !line_with("lock").empty()) {
        return "apt needs root to change packages; run it as root or through sudo";
    }
    std::string interrupted = line_with("dpkg was interrupted");
    if (!interrupted.empty()) return "an earlier dpkg run was interrupted; run `dpkg --configure -a` as root first";
    // Otherwise apt's own last error line says it best.
    std::string last_error;
    size_t start = 0;
    while (start < output.size()) {
        size_t end = output.find('\n', start);
        if (end == std::string::npos) end = output.size();
        std::string line = output.substr(start, end - start);
        if (line.rfind("E: ", 0) == 0) last_error = line.substr(3);
        start = end + 1;
    }
    return last_error;
}

ExecuteResult execute_plan(const Plan & plan, const ExecuteOptions & options) {
    for (const std::vector<std::string> & argv : plan.commands) {
        if (argv.empty() || !kAllowedPrograms.count(argv[0])) {
            throw Error(ErrorCode::kInvalidArgument,
                        "refusing to run `" + join(argv) + "`: a plan may only run apt-get, apt, apt-mark or dpkg",
                        "plans are built by cortex install/remove/rollback; this one was changed by hand");
        }
    }
    std::vector<std::string> prefix;
    if (!plan.commands.empty() && geteuid() != 0) {
        if (!program_on_path("sudo")) {
            throw Error(ErrorCode::kInvalidArgument, "changing packages needs root, and sudo was not found on PATH",
                        "run it as root or install sudo");
        }
        // sudo resets the environment; DEBIAN_FRONTEND is passed as sudo's own VAR=value argument.
        prefix = {"sudo", "DEBIAN_FRONTEND=noninteractive"};
    }

    ExecuteResult result;
    result.before = package_states(plan, options.dpkg_status);
    LineSink sink(options);
    for (size_t i = 0; i < plan.commands.size(); i++) {
        if (options.cancel && options.cancel->load()) {
            result.cancelled = true;
            result.exit_status = 130;  // as a shell reports a command stopped by Ctrl-C
            result.message = "cancelled before `" + join(plan.commands[i]) + "`; " + std::to_string(i) + " of " +
                             std::to_string(plan.commands.size()) + " commands ran";
            break;
        }
        std::vector<std::string> argv = prefix;
        argv.insert(argv.end(), plan.commands[i].begin(), plan.commands[i].end());
        sink.command_output.clear();
        result.commands_run++;
        int status = run_command(argv, sink);
        if (status != 0) {
            result.exit_status = status;
            std::string why = describe_apt_failure(sink.command_output);
            result.message = "`" + join(plan.commands[i]) + "` failed with exit status " + std::to_string(status) +
                             (why.empty() ? "" : ": " + why);
            break;
        }
    }
    result.log_tail = sink.tail();
    result.after = package_states(plan, options.dpkg_status);
    return result;
}

}  // namespace cortex::interpreter
