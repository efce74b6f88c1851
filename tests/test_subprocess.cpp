// The child-process runner (core/subprocess): streaming, exit statuses, start failures, a
// grandchild that keeps the pipe open, signal dispositions, environment, no shell.
#include "core/subprocess.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <stdexcept>

#include "cortex/error.h"

using cortex::ProcessOptions;
using cortex::ProcessResult;
using cortex::run_process;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// A scratch directory, removed with its contents at the end of the test.
struct ScratchDir {
    std::string path;
    ScratchDir() {
        char tmpl[] = "/tmp/cortex-subprocess-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~ScratchDir() { run_process({"rm", "-rf", path}); }
};

// The hex mask on a "SigIgn:"/"SigBlk:" line of /proc/<child>/status, read by the child itself.
unsigned long long child_signal_mask(const std::string & field, const ProcessOptions & options) {
    ProcessResult r = run_process({"grep", field + ":", "/proc/self/status"}, options);
    EXPECT_EQ(r.exit_status, 0) << r.output;
    size_t colon = r.output.find(':');
    return colon == std::string::npos ? ~0ull : std::strtoull(r.output.c_str() + colon + 1, nullptr, 16);
}

bool has_signal(unsigned long long mask, int sig) { return (mask >> (sig - 1)) & 1; }

}  // namespace

TEST(Subprocess, StreamsLinesWhileTheChildRuns) {
    ScratchDir dir;
    const std::string flag = dir.path + "/seen-first";
    // The child prints "first" and then waits (up to 10 s) for the caller to have seen it.
    const std::string script = "echo first; i=0; while [ ! -e '" + flag +
                               "' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; "
                               "[ -e '" + flag + "' ] && echo second || echo 'not streamed'";
    std::vector<std::string> lines;
    ProcessOptions options;
    options.on_line = [&](std::string_view line) {
        lines.emplace_back(line);
        if (line == "first") close(creat(flag.c_str(), 0644));
    };
    ProcessResult r = run_process({"sh", "-c", script}, options);
    EXPECT_EQ(r.exit_status, 0);
    EXPECT_EQ(lines, (std::vector<std::string>{"first", "second"}));
    EXPECT_EQ(r.output, "first\nsecond\n");
}

TEST(Subprocess, MergesStderrInOrderAndPassesALastLineWithoutNewline) {
    std::vector<std::string> lines;
    ProcessOptions options;
    options.on_line = [&](std::string_view line) { lines.emplace_back(line); };
    ProcessResult r = run_process({"sh", "-c", "echo out; echo err >&2; printf tail"}, options);
    EXPECT_EQ(r.exit_status, 0);
    EXPECT_EQ(r.output, "out\nerr\ntail");
    EXPECT_EQ(lines, (std::vector<std::string>{"out", "err", "tail"}));
}

TEST(Subprocess, StderrCanBeDropped) {
    ProcessOptions options;
    options.merge_stderr = false;
    ProcessResult r = run_process({"sh", "-c", "echo out; echo err >&2"}, options);
    EXPECT_EQ(r.output, "out\n");
}

TEST(Subprocess, StdinIsEmpty) {
    ProcessResult r = run_process({"cat"});
    EXPECT_EQ(r.exit_status, 0);
    EXPECT_EQ(r.output, "");
}

TEST(Subprocess, ExitCodes) {
    EXPECT_EQ(run_process({"true"}).exit_status, 0);
    EXPECT_EQ(run_process({"false"}).exit_status, 1);
    EXPECT_EQ(run_process({"sh", "-c", "exit 3"}).exit_status, 3);
    EXPECT_EQ(run_process({"sh", "-c", "exit 255"}).exit_status, 255);
}

TEST(Subprocess, DeathBySignalIs128PlusTheSignal) {
    EXPECT_EQ(run_process({"sh", "-c", "kill -TERM $$"}).exit_status, 128 + SIGTERM);
    EXPECT_EQ(run_process({"sh", "-c", "kill -KILL $$"}).exit_status, 128 + SIGKILL);
}

TEST(Subprocess, MissingProgramThrowsOrIsAResult) {
    const std::vector<std::string> argv = {"cortex-no-such-program-here", "arg"};
    cortex::Error e(cortex::ErrorCode::kInternal, "none");
    try {
        run_process(argv);
        ADD_FAILURE() << "no error thrown";
    } catch (const cortex::Error & thrown) {
        e = thrown;
    }
    EXPECT_EQ(e.code(), cortex::ErrorCode::kIo);
    EXPECT_NE(e.message().find("cortex-no-such-program-here"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("not found on PATH"), std::string::npos) << e.message();
    EXPECT_FALSE(e.hint().empty());

    ProcessOptions options;
    options.throw_if_not_started = false;
    ProcessResult r = run_process(argv, options);
    EXPECT_EQ(r.exit_status, 127);
    EXPECT_NE(r.start_error.find("cortex-no-such-program-here"), std::string::npos) << r.start_error;
    EXPECT_EQ(r.output, "");

    // A file that is there but not executable: the system's reason.
    ScratchDir dir;
    const std::string plain = dir.path + "/not-executable";
    close(creat(plain.c_str(), 0644));
    r = run_process({plain}, options);
    EXPECT_EQ(r.exit_status, 127);
    EXPECT_NE(r.start_error.find("Permission denied"), std::string::npos) << r.start_error;
}

TEST(Subprocess, RanProgramHasNoStartError) {
    ProcessOptions options;
    options.throw_if_not_started = false;
    ProcessResult r = run_process({"sh", "-c", "exit 127"}, options);
    EXPECT_EQ(r.exit_status, 127);
    EXPECT_EQ(r.start_error, "");
}

TEST(Subprocess, AGrandchildHoldingThePipeDoesNotKeepTheCallerWaiting) {
    const auto start = Clock::now();
    ProcessResult r = run_process({"sh", "-c", "sleep 30 & echo $!; echo hi"});
    const double took = seconds_since(start);
    EXPECT_EQ(r.exit_status, 0);
    const size_t nl = r.output.find('\n');
    ASSERT_NE(nl, std::string::npos) << r.output;
    const pid_t grandchild = static_cast<pid_t>(std::atol(r.output.substr(0, nl).c_str()));
    if (grandchild > 0) kill(grandchild, SIGKILL);
    EXPECT_EQ(r.output.substr(nl + 1), "hi\n");
    EXPECT_LT(took, 5.0) << "waited for the grandchild";
}

TEST(Subprocess, AllOfTheChildsOutputIsReadWhenAGrandchildHoldsThePipe) {
    // More than a pipe's buffer: the child blocks on writing until the caller reads, and the
    // last of it is still in the pipe when the child exits.
    ProcessResult r = run_process({"sh", "-c", "sleep 30 & echo $!; head -c 300000 /dev/zero | tr '\\0' x; echo"});
    const size_t nl = r.output.find('\n');
    ASSERT_NE(nl, std::string::npos);
    const pid_t grandchild = static_cast<pid_t>(std::atol(r.output.substr(0, nl).c_str()));
    if (grandchild > 0) kill(grandchild, SIGKILL);
    EXPECT_EQ(r.output.size() - nl - 1, 300001u);
    EXPECT_EQ(r.output.back(), '\n');
}

TEST(Subprocess, TheChildSeesDefaultSignalsThoughTheCallerIgnoresThem) {
    struct sigaction old_pipe {}, old_int {}, ignore {};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ignore, &old_pipe);
    sigaction(SIGINT, &ignore, &old_int);
    sigset_t usr1, old_mask;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, &old_mask);

    const unsigned long long ignored = child_signal_mask("SigIgn", {});
    const unsigned long long blocked = child_signal_mask("SigBlk", {});
    ProcessOptions keep;
    keep.reset_signals = false;
    const unsigned long long ignored_kept = child_signal_mask("SigIgn", keep);
    const unsigned long long blocked_kept = child_signal_mask("SigBlk", keep);

    pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    sigaction(SIGPIPE, &old_pipe, nullptr);
    sigaction(SIGINT, &old_int, nullptr);

    EXPECT_FALSE(has_signal(ignored, SIGPIPE)) << std::hex << ignored;
    EXPECT_FALSE(has_signal(ignored, SIGINT)) << std::hex << ignored;
    EXPECT_FALSE(has_signal(blocked, SIGUSR1)) << std::hex << blocked;
    // Without the reset they are inherited: the checks above do see the caller's state.
    EXPECT_TRUE(has_signal(ignored_kept, SIGPIPE)) << std::hex << ignored_kept;
    EXPECT_TRUE(has_signal(blocked_kept, SIGUSR1)) << std::hex << blocked_kept;
}

TEST(Subprocess, PassesTheEnvironmentWithExtraVariablesReplacingOldOnes) {
    setenv("CORTEX_SUBPROCESS_INHERITED", "kept", 1);
    setenv("CORTEX_SUBPROCESS_REPLACED", "old", 1);
    ProcessOptions options;
    options.extra_env = {{"CORTEX_SUBPROCESS_REPLACED", "new"}, {"CORTEX_SUBPROCESS_NEW", "a b $HOME;*"}};
    ProcessResult r = run_process({"env"}, options);
    unsetenv("CORTEX_SUBPROCESS_INHERITED");
    unsetenv("CORTEX_SUBPROCESS_REPLACED");
    EXPECT_NE(r.output.find("\nCORTEX_SUBPROCESS_INHERITED=kept\n"), std::string::npos);
    EXPECT_NE(r.output.find("\nCORTEX_SUBPROCESS_REPLACED=new\n"), std::string::npos);
    EXPECT_EQ(r.output.find("CORTEX_SUBPROCESS_REPLACED=old"), std::string::npos);
    EXPECT_NE(r.output.find("\nCORTEX_SUBPROCESS_NEW=a b $HOME;*\n"), std::string::npos);

    // The short form, as the package tools call it.
    EXPECT_EQ(run_process({"printenv", "CORTEX_SUBPROCESS_X"}, {{"CORTEX_SUBPROCESS_X", "1"}}).output, "1\n");
}

TEST(Subprocess, ArgumentsReachTheProgramLiterallyWithoutAShell) {
    ScratchDir dir;
    const std::string marker = dir.path + "/touched";
    const std::vector<std::string> args = {"$(touch " + marker + ")", "`touch " + marker + "`", "; touch " + marker,
                                           "*", "a b", "'q'", ""};
    std::vector<std::string> argv = {"printf", "[%s]\\n"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult r = run_process(argv);
    std::string expected;
    for (const std::string & a : args) expected += "[" + a + "]\n";
    EXPECT_EQ(r.output, expected);
    struct stat st {};
    EXPECT_NE(stat(marker.c_str(), &st), 0) << "an argument was run by a shell";
}

TEST(Subprocess, AnExceptionFromOnLineReapsTheChild) {
    ProcessOptions options;
    options.on_line = [](std::string_view) { throw std::runtime_error("stop"); };
    const auto start = Clock::now();
    // `yes` writes for ever; once the caller closes the pipe it dies of SIGPIPE.
    EXPECT_THROW(run_process({"yes"}, options), std::runtime_error);
    EXPECT_LT(seconds_since(start), 5.0);
}

TEST(Subprocess, ProgramOnPath) {
    EXPECT_TRUE(cortex::program_on_path("sh"));
    EXPECT_TRUE(cortex::program_on_path("/bin/sh"));
    EXPECT_FALSE(cortex::program_on_path("cortex-no-such-program-here"));
}
