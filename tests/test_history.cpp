// History in SQLite, rollback plans and the executor, against real SQLite files, a fake dpkg status
// file and (as root) a real apt that installs and removes Debian's tiny `hello` package.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <regex>
#include <set>
#include <thread>

#include "interpreter/apt_simulation.h"
#include "interpreter/executor.h"
#include "interpreter/history.h"
#include "test_support.h"

using namespace cortex;
using namespace cortex::interpreter;
using cortex::test::expect_error;
using cortex::test::TempDir;

namespace {

HistoryEntry sample_entry(const std::string & request, int exit_status = 0) {
    HistoryEntry e;
    e.command = "install " + request;
    e.plan.request = request;
    e.plan.packages = {request};
    e.plan.chosen_by = "exact name";
    PackageChange c;
    c.name = request;
    c.architecture = "amd64";
    c.new_version = "1.0-1";
    c.requested = true;
    e.plan.changes = {c};
    e.plan.commands = {apt_command(Operation::kInstall, {request})};
    e.before = {{request, "amd64", ""}};
    e.after = {{request, "amd64", exit_status == 0 ? "1.0-1" : ""}};
    e.exit_status = exit_status;
    e.log_tail = "Setting up " + request + " (1.0-1) ...\n";
    return e;
}

std::string installed_version(const std::string & name) {
    for (const InstalledPackage & p : read_installed_packages()) {
        if (p.name == name) return p.version;
    }
    return "";
}

std::string version_in(const std::vector<InstalledPackage> & states, const std::string & name) {
    for (const InstalledPackage & p : states) {
        if (p.name == name) return p.version;
    }
    return "<absent from the states>";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// History

TEST(History, RecordListGetAndMarkRolledBack) {
    TempDir home;
    int64_t a, b, c;
    {
        History h(home.path());
        a = h.record(sample_entry("hello"));
        b = h.record(sample_entry("cowsay", 100));
        c = h.record(sample_entry("sl"));
        EXPECT_LT(a, b);
        EXPECT_LT(b, c);
    }
    // A second open of the same file keeps everything (no DROP, no re-creation).
    History h(home.path());
    std::vector<HistoryEntry> all = h.list(0);
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].id, c);  // newest first
    EXPECT_EQ(all[2].id, a);
    std::vector<HistoryEntry> two = h.list(2);
    ASSERT_EQ(two.size(), 2u);
    EXPECT_EQ(two[0].id, c);
    EXPECT_EQ(two[1].id, b);

    std::optional<HistoryEntry> e = h.get(b);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->command, "install cowsay");
    EXPECT_EQ(e->plan.request, "cowsay");
    EXPECT_EQ(e->plan.chosen_by, "exact name");
    ASSERT_EQ(e->plan.commands.size(), 1u);
    EXPECT_EQ(e->plan.commands[0], apt_command(Operation::kInstall, {"cowsay"}));
    ASSERT_EQ(e->plan.changes.size(), 1u);
    EXPECT_EQ(e->plan.changes[0].new_version, "1.0-1");
    EXPECT_EQ(e->exit_status, 100);
    EXPECT_EQ(e->log_tail, "Setting up cowsay (1.0-1) ...\n");
    ASSERT_EQ(e->before.size(), 1u);
    EXPECT_EQ(e->before[0].architecture, "amd64");
    EXPECT_EQ(e->before[0].version, "");
    EXPECT_FALSE(e->rolled_back_by);
    EXPECT_TRUE(std::regex_match(e->time, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << e->time;
    EXPECT_FALSE(h.get(9999));

    h.mark_rolled_back(a, c);
    EXPECT_EQ(h.get(a)->rolled_back_by, c);
    Error twice = expect_error(ErrorCode::kInvalidArgument, [&] { h.mark_rolled_back(a, b); });
    EXPECT_NE(twice.message().find("already rolled back"), std::string::npos);
    EXPECT_EQ(h.get(a)->rolled_back_by, c);  // unchanged by the refused second mark
    expect_error(ErrorCode::kNotFound, [&] { h.mark_rolled_back(9999, c); });
}

TEST(History, KeepsAGivenTime) {
    TempDir home;
    History h(home.path());
    HistoryEntry e = sample_entry("hello");
    e.time = "2024-01-02T03:04:05Z";
    EXPECT_EQ(h.get(h.record(e))->time, "2024-01-02T03:04:05Z");
}

TEST(History, TwoProcessesWriteAtOnce) {
    TempDir home;
    { History create(home.path()); }  // both children also race on opening; covered below
    constexpr int kPerProcess = 40;
    std::vector<pid_t> children;
    for (int p = 0; p < 2; p++) {
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            int rc = 0;
            try {
                History h(home.path());
                for (int i = 0; i < kPerProcess; i++) h.record(sample_entry(p == 0 ? "hello" : "cowsay"));
            } catch (const std::exception & ex) {
                fprintf(stderr, "child %d: %s\n", p, ex.what());
                rc = 1;
            }
            _exit(rc);
        }
        children.push_back(pid);
    }
    for (pid_t pid : children) {
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a writer failed";
    }
    History h(home.path());
    std::vector<HistoryEntry> all = h.list(0);
    EXPECT_EQ(all.size(), 2u * kPerProcess);
    std::set<int64_t> ids;
    for (const HistoryEntry & e : all) ids.insert(e.id);
    EXPECT_EQ(ids.size(), all.size());
}

TEST(History, TwoThreadsOpenAndWriteAtOnce) {
    TempDir home;
    std::atomic<int> failures{0};
    auto writer = [&] {
        try {
            History h(home.path());  // both threads may create the schema at the same moment
            for (int i = 0; i < 25; i++) h.record(sample_entry("hello"));
        } catch (const std::exception & ex) {
            ADD_FAILURE() << ex.what();
            failures++;
        }
    };
    std::thread t1(writer), t2(writer);
    t1.join();
    t2.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(History(home.path()).list(0).size(), 50u);
}

TEST(History, CorruptFileIsAnIoErrorAndIsLeftAlone) {
    TempDir home;
    std::string garbage;
    for (int i = 0; i < 512; i++) garbage += "this is not a sqlite database.\n";
    test::write_file(home.file("history.db"), garbage);
    Error e = expect_error(ErrorCode::kIo, [&] { History h(home.path()); });
    EXPECT_NE(e.message().find(home.file("history.db")), std::string::npos) << e.message();
    EXPECT_NE(e.hint().find("move it away"), std::string::npos) << e.hint();
    EXPECT_EQ(test::read_file(home.file("history.db")), garbage);
}

TEST(History, UnusableHomeIsAnIoError) {
    TempDir dir;
    test::write_file(dir.file("a-file"), "x");
    // A home below a regular file cannot be created, not even by root.
    Error below = expect_error(ErrorCode::kIo, [&] { History h(dir.file("a-file/cortex")); });
    EXPECT_NE(below.message().find("history.db"), std::string::npos) << below.message();
    // A home that is itself a file.
    Error file = expect_error(ErrorCode::kIo, [&] { History h(dir.file("a-file")); });
    EXPECT_NE(file.message().find("history.db"), std::string::npos) << file.message();
    if (geteuid() != 0) {  // root ignores permission bits
        std::string ro = dir.file("read-only");
        mkdir(ro.c_str(), 0500);
        expect_error(ErrorCode::kIo, [&] { History h(ro); });
        chmod(ro.c_str(), 0700);
    }
}

TEST(History, NewerSchemaIsRefused) {
    TempDir home;
    { History h(home.path()); }
    sqlite3 * db = nullptr;
    ASSERT_EQ(sqlite3_open(home.file("history.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 7", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    Error e = expect_error(ErrorCode::kIo, [&] { History h(home.path()); });
    EXPECT_NE(e.message().find("newer"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("7"), std::string::npos) << e.message();
}

// ---------------------------------------------------------------------------------------------
// rollback_plan

TEST(Rollback, OfAnInstallRemovesWhatItInstalled) {
    HistoryEntry e = sample_entry("hello");
    e.id = 7;
    e.before = {{"hello", "amd64", ""}, {"libfoo1", "amd64", ""}, {"libc6", "amd64", "2.36-9"}};
    e.after = {{"hello", "amd64", "2.10-3"}, {"libfoo1", "amd64", "1.2"}, {"libc6", "amd64", "2.36-9"}};
    Plan p = rollback_plan(e);
    EXPECT_EQ(p.request, "rollback 7");
    EXPECT_EQ(p.chosen_by, "history");
    EXPECT_EQ(p.operation, Operation::kRemove);
    EXPECT_EQ(p.packages, (std::vector<std::string>{"hello", "libfoo1"}));
    ASSERT_EQ(p.commands.size(), 1u);
    EXPECT_EQ(p.commands[0], apt_command(Operation::kRemove, {"hello", "libfoo1"}));
    ASSERT_EQ(p.changes.size(), 2u);
    EXPECT_EQ(p.changes[0].kind, PackageChange::Kind::kRemove);
    EXPECT_EQ(p.changes[0].old_version, "2.10-3");
}

TEST(Rollback, OfARemoveInstallsTheOldVersionAgain) {
    HistoryEntry e;
    e.id = 3;
    e.command = "remove nginx";
    e.plan.operation = Operation::kRemove;
    e.before = {{"nginx", "amd64", "1.22.1-9"}, {"nginx-common", "all", "1.22.1-9"}};
    e.after = {{"nginx", "amd64", ""}, {"nginx-common", "all", ""}};
    Plan p = rollback_plan(e);
    EXPECT_EQ(p.operation, Operation::kInstall);
    ASSERT_EQ(p.commands.size(), 1u);
    EXPECT_EQ(p.commands[0], apt_command(Operation::kInstall, {"nginx=1.22.1-9", "nginx-common=1.22.1-9"}));
    EXPECT_EQ(p.changes[0].kind, PackageChange::Kind::kInstall);
    EXPECT_EQ(p.changes[0].new_version, "1.22.1-9");
}

TEST(Rollback, OfAnUpgradeRemovesFirstThenGoesBackToTheOldVersion) {
    HistoryEntry e;
    e.id = 4;
    // The absent package recorded without an architecture before, with one after.
    e.before = {{"newtool", "", ""}, {"libc6", "amd64", "2.36-9"}};
    e.after = {{"newtool", "amd64", "3.0"}, {"libc6", "amd64", "2.36-9+deb12u4"}};
    Plan p = rollback_plan(e);
    ASSERT_EQ(p.commands.size(), 2u);
    EXPECT_EQ(p.commands[0], apt_command(Operation::kRemove, {"newtool"}));
    EXPECT_EQ(p.commands[1], apt_command(Operation::kInstall, {"libc6=2.36-9"}));
    ASSERT_EQ(p.changes.size(), 2u);
    EXPECT_EQ(p.changes[1].kind, PackageChange::Kind::kDowngrade);
    EXPECT_FALSE(p.notes.empty());
}

TEST(Rollback, MultiArchNamesTheArchitecture) {
    HistoryEntry e;
    e.id = 5;
    e.before = {{"libx1", "amd64", ""}, {"libx1", "i386", ""}};
    e.after = {{"libx1", "amd64", "1.0"}, {"libx1", "i386", "1.0"}};
    Plan p = rollback_plan(e);
    ASSERT_EQ(p.commands.size(), 1u);
    EXPECT_EQ(p.commands[0], apt_command(Operation::kRemove, {"libx1:amd64", "libx1:i386"}));
}

TEST(Rollback, OfAPartlyFailedEntryUndoesWhatChanged) {
    HistoryEntry e = sample_entry("hello");
    e.id = 6;
    e.exit_status = 100;
    Plan p = rollback_plan(e);
    EXPECT_EQ(p.commands.size(), 1u);
    bool noted = false;
    for (const std::string & n : p.notes) noted |= n.find("failed part-way") != std::string::npos;
    EXPECT_TRUE(noted);
}

TEST(Rollback, Refusals) {
    HistoryEntry failed = sample_entry("hello", 100);  // after == before
    failed.id = 1;
    Error e1 = expect_error(ErrorCode::kInvalidArgument, [&] { rollback_plan(failed); });
    EXPECT_NE(e1.message().find("failed"), std::string::npos) << e1.message();

    HistoryEntry done = sample_entry("hello");
    done.id = 2;
    done.rolled_back_by = 9;
    Error e2 = expect_error(ErrorCode::kInvalidArgument, [&] { rollback_plan(done); });
    EXPECT_NE(e2.message().find("already rolled back by entry 9"), std::string::npos) << e2.message();

    HistoryEntry nothing = sample_entry("hello");
    nothing.id = 3;
    nothing.after = nothing.before;
    Error e3 = expect_error(ErrorCode::kInvalidArgument, [&] { rollback_plan(nothing); });
    EXPECT_NE(e3.message().find("changed no package"), std::string::npos) << e3.message();
}

// ---------------------------------------------------------------------------------------------
// Executor: state capture, refusals, failure messages

TEST(Executor, PackageStatesFromADpkgStatusFile) {
    TempDir dir;
    test::write_file(dir.file("status"),
                     "Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.10-3\n\n"
                     "Package: oldconf\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\n"
                     "Package: libx1\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.5\n\n"
                     "Package: libx1\nStatus: install ok installed\nArchitecture: i386\nVersion: 1.5\n\n"
                     "Package: unrelated\nStatus: install ok installed\nArchitecture: all\nVersion: 9\n");
    Plan plan;
    PackageChange c;
    c.name = "hello";
    c.architecture = "amd64";
    plan.changes.push_back(c);
    c.name = "oldconf";
    plan.changes.push_back(c);
    c.name = "libx1";
    plan.changes.push_back(c);
    plan.packages = {"hello", "newpkg=2.0", "other:i386"};
    std::vector<InstalledPackage> s = package_states(plan, dir.file("status"));
    ASSERT_EQ(s.size(), 6u);
    EXPECT_EQ(s[0].name, "hello");
    EXPECT_EQ(s[0].version, "2.10-3");
    EXPECT_EQ(s[1].name, "oldconf");  // config-files only: not installed
    EXPECT_EQ(s[1].version, "");
    EXPECT_EQ(s[1].architecture, "amd64");
    EXPECT_EQ(s[2].name, "libx1");
    EXPECT_EQ(s[3].name, "libx1");
    EXPECT_EQ(s[3].architecture, "i386");
    EXPECT_EQ(s[4].name, "newpkg");
    EXPECT_EQ(s[4].version, "");
    EXPECT_EQ(s[5].name, "other");

    expect_error(ErrorCode::kIo, [&] { package_states(plan, dir.file("missing")); });
}

TEST(Executor, RefusesProgramsOtherThanApt) {
    Plan plan;
    plan.commands = {{"sh", "-c", "touch /tmp/cortex-pwned"}};
    expect_error(ErrorCode::kInvalidArgument, [&] { execute_plan(plan); });
    plan.commands = {{}};
    expect_error(ErrorCode::kInvalidArgument, [&] { execute_plan(plan); });
}

TEST(Executor, CancelledBeforeTheFirstCommandRunsNothing) {
    TempDir dir;
    test::write_file(dir.file("status"),
                     "Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n");
    Plan plan;
    plan.packages = {"hello"};
    plan.commands = {apt_command(Operation::kRemove, {"hello"})};
    std::atomic<bool> cancel{true};
    ExecuteOptions options;
    options.cancel = &cancel;
    options.dpkg_status = dir.file("status");
    if (geteuid() != 0 && access("/usr/bin/sudo", X_OK) != 0) GTEST_SKIP() << "not root and no sudo";
    ExecuteResult r = execute_plan(plan, options);
    EXPECT_TRUE(r.cancelled);
    EXPECT_EQ(r.commands_run, 0);
    EXPECT_EQ(r.exit_status, 130);
    EXPECT_EQ(r.before.size(), 1u);
    EXPECT_EQ(version_in(r.after, "hello"), "1");
}

TEST(Executor, DescribesAptFailures) {
    EXPECT_EQ(describe_apt_failure("Reading package lists...\nE: Could not get lock /var/lib/dpkg/lock-frontend. "
                                   "It is held by process 4242 (apt-get)\nE: Unable to acquire the dpkg frontend "
                                   "lock (/var/lib/dpkg/lock-frontend), is another process using it?\n"),
              "another package manager is running (pid 4242, apt-get); wait for it to finish and retry");
    EXPECT_EQ(describe_apt_failure("Reading package lists...\nE: Unable to locate package cortex-x\n"),
              "Unable to locate package cortex-x");
    EXPECT_EQ(describe_apt_failure("all fine\n"), "");
}

// ---------------------------------------------------------------------------------------------
// Executor against the real apt (root only)

class RealApt : public ::testing::Test {
  protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "installs a real Debian package: run as root";
        if (access("/usr/bin/apt-get", X_OK) != 0) GTEST_SKIP() << "no apt-get on this system";
    }
};

TEST_F(RealApt, FailedCommandKeepsAptsErrorAndChangesNothing) {
    Plan plan;
    plan.packages = {"cortex-no-such-package"};
    plan.commands = {apt_command(Operation::kInstall, {"cortex-no-such-package"})};
    std::vector<std::string> lines;
    ExecuteOptions options;
    options.on_output = [&](std::string_view l) { lines.emplace_back(l); };
    ExecuteResult r = execute_plan(plan, options);
    EXPECT_NE(r.exit_status, 0);
    EXPECT_EQ(r.commands_run, 1);
    EXPECT_NE(r.log_tail.find("Unable to locate package cortex-no-such-package"), std::string::npos) << r.log_tail;
    EXPECT_NE(r.message.find("Unable to locate package"), std::string::npos) << r.message;
    EXPECT_FALSE(lines.empty());
    ASSERT_EQ(r.before.size(), 1u);
    EXPECT_EQ(r.before[0].version, "");
    EXPECT_EQ(r.after[0].version, "");
}

TEST_F(RealApt, AnotherPackageManagerHoldingTheLockIsNamed) {
    // Hold dpkg's frontend lock the way apt does (an fcntl write lock); the apt we start is another
    // process and must fail, naming this one.
    int fd = open("/var/lib/dpkg/lock-frontend", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    ASSERT_GE(fd, 0);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        close(fd);
        GTEST_SKIP() << "another package manager holds the lock right now";
    }
    Plan plan;
    plan.packages = {"hello"};
    plan.commands = {apt_command(Operation::kInstall, {"hello"})};
    ExecuteResult r = execute_plan(plan);
    close(fd);
    EXPECT_EQ(r.exit_status, 100);
    EXPECT_NE(r.message.find("another package manager is running (pid " + std::to_string(getpid())), std::string::npos)
        << r.message << "\n"
        << r.log_tail;
    EXPECT_EQ(version_in(r.after, "hello"), "");
}

TEST_F(RealApt, InstallHelloThenRollBack) {
    // A previous run that stopped half-way may have left hello installed.
    if (!installed_version("hello").empty()) {
        Plan cleanup;
        cleanup.commands = {apt_command(Operation::kRemove, {"hello"})};
        ASSERT_EQ(execute_plan(cleanup).exit_status, 0);
    }
    ASSERT_EQ(installed_version("hello"), "");

    TempDir home;
    History history(home.path());
    Plan plan;
    plan.operation = Operation::kInstall;
    plan.request = "hello";
    plan.packages = {"hello"};
    plan.chosen_by = "exact name";
    plan.commands = {apt_command(Operation::kInstall, {"hello"})};
    int lines = 0;
    ExecuteOptions options;
    options.on_output = [&](std::string_view) { lines++; };
    ExecuteResult r = execute_plan(plan, options);
    ASSERT_EQ(r.exit_status, 0) << r.message << "\n" << r.log_tail;
    EXPECT_GT(lines, 0);
    EXPECT_NE(r.log_tail.find("hello"), std::string::npos) << r.log_tail;
    EXPECT_EQ(version_in(r.before, "hello"), "");
    std::string version = version_in(r.after, "hello");
    EXPECT_FALSE(version.empty());
    EXPECT_EQ(installed_version("hello"), version);

    HistoryEntry entry;
    entry.command = "install hello";
    entry.plan = plan;
    entry.before = r.before;
    entry.after = r.after;
    entry.exit_status = r.exit_status;
    entry.log_tail = r.log_tail;
    int64_t id = history.record(entry);

    Plan undo = rollback_plan(*history.get(id));
    ASSERT_EQ(undo.commands.size(), 1u);
    EXPECT_EQ(undo.commands[0], apt_command(Operation::kRemove, {"hello"}));
    ExecuteResult ur = execute_plan(undo);
    ASSERT_EQ(ur.exit_status, 0) << ur.message << "\n" << ur.log_tail;
    EXPECT_EQ(version_in(ur.before, "hello"), version);
    EXPECT_EQ(version_in(ur.after, "hello"), "");
    EXPECT_EQ(installed_version("hello"), "");

    HistoryEntry undo_entry;
    undo_entry.command = "rollback " + std::to_string(id);
    undo_entry.plan = undo;
    undo_entry.before = ur.before;
    undo_entry.after = ur.after;
    int64_t undo_id = history.record(undo_entry);
    history.mark_rolled_back(id, undo_id);
    expect_error(ErrorCode::kInvalidArgument, [&] { rollback_plan(*history.get(id)); });
}
