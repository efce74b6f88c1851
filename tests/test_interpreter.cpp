// The interpreter: deb822 and apt output parsing, Debian version order, the package index
// (fixture lists and this machine's real apt lists), the planner with and without a model, and
// apt's real simulation of the plans.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cortex/config.h"
#include "interpreter/apt_metadata.h"
#include "interpreter/apt_simulation.h"
#include "interpreter/deb822.h"
#include "interpreter/equivalents.h"
#include "interpreter/package_index.h"
#include "interpreter/package_ranking.h"
#include "interpreter/planner.h"
#include "interpreter/provider.h"
#include "interpreter/request_syntax.h"
#include "test_support.h"

using namespace cortex;
using namespace cortex::interpreter;
using cortex::test::expect_error;
using cortex::test::TempDir;

namespace {

std::string fixture(const std::string & name) {
    return std::string(CORTEX_FIXTURES_DIR) + "/apt/" + name;
}

std::vector<std::string> names_of(const std::vector<SearchHit> & hits) {
    std::vector<std::string> out;
    for (const SearchHit & h : hits) out.push_back(h.package.name);
    return out;
}

bool has_change(const Plan & p, const std::string & name, PackageChange::Kind kind) {
    for (const PackageChange & c : p.changes) {
        if (c.name == name && c.kind == kind) return true;
    }
    return false;
}

// An index of the fixture lists in a fresh cache directory.
std::unique_ptr<PackageIndex> fixture_index(const TempDir & dir, const std::string & list = fixture("Packages")) {
    IndexOptions o;
    o.cache_dir = dir.path();
    o.package_lists = {list};
    o.dpkg_status = fixture("status");
    o.architecture = "amd64";
    return PackageIndex::open(o);
}

// The machine's own index, built once for the whole test program in its own cache.
const PackageIndex & machine_index() {
    static TempDir dir;
    static std::unique_ptr<PackageIndex> index = [] {
        IndexOptions o;
        o.cache_dir = dir.path();
        return PackageIndex::open(o);
    }();
    return *index;
}

}  // namespace

TEST(Deb822, FieldsContinuationLinesAndBadLines) {
    std::vector<Deb822Record> records;
    std::vector<std::string> descriptions;
    for_each_deb822_record(
        "Package: a\r\nDescription: one\n two\n .\n three\nno colon here\n\n\n"
        "# a comment\nPackage: b\nversion:  2.0 \n",
        [&](const Deb822Record & r) {
            records.push_back(r);
            descriptions.emplace_back(r.get("Description"));
        });
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[0].get("Package"), "a");
    EXPECT_EQ(descriptions[0], "one\n two\n .\n three");
    EXPECT_EQ(records[1].get("Version"), "2.0");  // names are case-insensitive, values trimmed
    EXPECT_EQ(records[1].get("Missing"), "");
    int count = 0;
    for_each_deb822_record("", [&](const Deb822Record &) { ++count; });
    for_each_deb822_record(std::string("\0\xff\n:\n \n", 7), [&](const Deb822Record &) { ++count; });
    EXPECT_LE(count, 1);  // garbage yields at most an empty-keyed record, never a crash
}

TEST(DebianVersions, PolicyOrder) {
    EXPECT_LT(compare_debian_versions("1.0", "1.0-1"), 0);
    EXPECT_LT(compare_debian_versions("1.0~rc1", "1.0"), 0);
    EXPECT_GT(compare_debian_versions("1:0.9", "2.0"), 0);
    EXPECT_GT(compare_debian_versions("1.22.1-9+deb12u11", "1.22.1-9+deb12u2"), 0);
    EXPECT_GT(compare_debian_versions("1.0+b1", "1.0"), 0);
    EXPECT_EQ(compare_debian_versions("1.0-1", "1.0-1"), 0);
    EXPECT_EQ(compare_debian_versions("0:1.0", "1.0"), 0);
    EXPECT_LT(compare_debian_versions("2.36-9", "2.36-9+deb12u4"), 0);
    EXPECT_GT(compare_debian_versions("1.10", "1.9"), 0);
}

TEST(AptSimulation, ParsesInstallUpgradeRemoveAndForeignArchitectures) {
    std::vector<PackageChange> c = parse_simulation(cortex::test::read_file(fixture("simulation-install.txt")));
    ASSERT_EQ(c.size(), 7u);
    EXPECT_EQ(c[0].name, "libc6");
    EXPECT_EQ(c[0].kind, PackageChange::Kind::kUpgrade);
    EXPECT_EQ(c[0].old_version, "2.36-9");
    EXPECT_EQ(c[0].new_version, "2.36-9+deb12u4");
    EXPECT_EQ(c[1].name, "nginx-common");
    EXPECT_EQ(c[1].kind, PackageChange::Kind::kInstall);
    EXPECT_EQ(c[1].architecture, "all");
    EXPECT_EQ(c[3].name, "libfoo");
    EXPECT_EQ(c[3].architecture, "i386");
    EXPECT_EQ(c[4].kind, PackageChange::Kind::kReinstall);
    EXPECT_EQ(c[5].kind, PackageChange::Kind::kRemove);
    EXPECT_EQ(c[5].old_version, "0.9-1");
    EXPECT_EQ(c[6].name, "other");
    EXPECT_EQ(c[6].architecture, "i386");
    EXPECT_TRUE(parse_simulation("").empty());
    EXPECT_TRUE(parse_simulation("Inst\nRemv\nInst x (\n").size() <= 1);
    // fuzz/corpus/apt_simulation/regression-empty-name: a name that is all architecture
    // (":12.5/.3libc6" here) made a change without a package.
    EXPECT_TRUE(parse_simulation("Inst :12.5/.3libc6 [2.36-9] (2.36-9+deb12u4 Debian:12.5/stable [amd64]) []\n"
                                 "Remv :i386 [1.0]\n")
                    .empty());
}

TEST(AptSimulation, CommandsAreFixedTemplatesWithCheckedNames) {
    std::vector<std::string> argv =
        apt_command(Operation::kInstall, {"nginx", "g++", "docker.io", "libc6:i386", "hello=2.10-3"});
    EXPECT_EQ(argv[0], "apt-get");
    EXPECT_EQ(argv[1], "install");
    EXPECT_NE(std::find(argv.begin(), argv.end(), "--no-remove"), argv.end());
    EXPECT_EQ(command_packages(argv),
              (std::vector<std::string>{"nginx", "g++", "docker.io", "libc6:i386", "hello=2.10-3"}));
    // A named version may be a downgrade (a rollback's always may): apt-get -y needs to be told.
    EXPECT_NE(std::find(argv.begin(), argv.end(), "--allow-downgrades"), argv.end());
    argv = apt_command(Operation::kInstall, {"nginx"});
    EXPECT_EQ(std::find(argv.begin(), argv.end(), "--allow-downgrades"), argv.end());
    argv = apt_command(Operation::kUpgrade, {});
    EXPECT_EQ(argv[1], "upgrade");
    EXPECT_TRUE(command_packages(argv).empty());
    argv = apt_command(Operation::kUpgrade, {"jq"});
    EXPECT_EQ(argv[1], "install");
    EXPECT_NE(std::find(argv.begin(), argv.end(), "--only-upgrade"), argv.end());
    EXPECT_EQ(command_packages(apt_command(Operation::kInstall, {"nginx/bookworm", "/tmp/x y.deb"})),
              (std::vector<std::string>{"nginx/bookworm", "/tmp/x y.deb"}));
    expect_error(ErrorCode::kInvalidArgument, [] { apt_command(Operation::kInstall, {"./relative.deb"}); });
    expect_error(ErrorCode::kInvalidArgument, [] { apt_command(Operation::kInstall, {"/tmp/x\n.deb"}); });
    EXPECT_EQ(apt_command(Operation::kRemove, {"nginx"}),
              (std::vector<std::string>{"apt-get", "remove", "-y", "-q", "nginx"}));
    // Nothing that apt could read as an option, and nothing a shell would care about (there is none).
    for (const char * bad :
         {"-o", "--allow-remove-essential", "a", "Nginx", "nginx;rm -rf /", "$(reboot)", "x y", ""}) {
        expect_error(ErrorCode::kInvalidArgument, [&] { apt_command(Operation::kInstall, {bad}); });
    }
    expect_error(ErrorCode::kInvalidArgument, [&] { apt_command(Operation::kInstall, {}); });
}

TEST(Planner, NormalisesRequests) {
    EXPECT_EQ(normalise_request("Please install a Web Server."), (std::vector<std::string>{"web", "server"}));
    EXPECT_EQ(normalise_request("set up a python dev box"), (std::vector<std::string>{"python", "dev", "box"}));
    EXPECT_EQ(normalise_request("nginx, git and g++"), (std::vector<std::string>{"nginx", "git", "g++"}));
    EXPECT_EQ(normalise_request("docker.io"), (std::vector<std::string>{"docker.io"}));
    EXPECT_TRUE(normalise_request("please install the").empty());
    EXPECT_TRUE(normalise_request("\"*:^()").empty());
}

TEST(PackageIndex, FixtureListsWithInstalledStates) {
    TempDir dir;
    auto index = fixture_index(dir);
    EXPECT_TRUE(index->rebuilt());
    EXPECT_EQ(index->size(), 5u);  // nginx (two versions), nginx-doc, apache2, evince, bash; not arm64
    std::optional<PackageRecord> nginx = index->find("nginx");
    ASSERT_TRUE(nginx);
    EXPECT_EQ(nginx->version, "1.22.1-9+deb12u1");  // the highest of the two
    EXPECT_EQ(nginx->summary, "small, powerful, scalable web/proxy server");
    EXPECT_EQ(nginx->installed_bytes, 1338u * 1024);
    EXPECT_EQ(nginx->download_bytes, 532500u);
    EXPECT_TRUE(nginx->installed_version.empty());
    ASSERT_TRUE(index->find_version("nginx", "1.22.1-9"));
    EXPECT_EQ(index->find_version("nginx", "1.22.1-9")->download_bytes, 532468u);
    EXPECT_FALSE(index->find("zathura-arm"));
    EXPECT_FALSE(index->find(""));
    std::optional<PackageRecord> bash = index->find("bash");
    ASSERT_TRUE(bash);
    EXPECT_TRUE(bash->essential);
    EXPECT_EQ(bash->installed_version, "5.2.15-2+b2");
    EXPECT_TRUE(index->find("apache2")->installed_version.empty());  // config-files only
    EXPECT_TRUE(index->find("evince")->installed_version.empty());   // half-installed
}

TEST(PackageIndex, CacheIsReusedAndRebuiltWhenListsChange) {
    TempDir dir;
    const std::string list = dir.file("Packages");
    cortex::test::write_file(list, cortex::test::read_file(fixture("Packages")));
    EXPECT_TRUE(fixture_index(dir, list)->rebuilt());
    EXPECT_FALSE(fixture_index(dir, list)->rebuilt());
    // apt update rewrote the list: a new package appears.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    cortex::test::write_file(list,
                             cortex::test::read_file(fixture("Packages")) +
                                 "\nPackage: jq\nVersion: 1.6\nArchitecture: amd64\nDescription: JSON processor\n");
    auto index = fixture_index(dir, list);
    EXPECT_TRUE(index->rebuilt());
    EXPECT_TRUE(index->find("jq"));
    // A damaged cache file is rebuilt, not trusted.
    cortex::test::write_file(index->path(), "not a database at all");
    auto again = fixture_index(dir, list);
    EXPECT_TRUE(again->rebuilt());
    EXPECT_TRUE(again->find("jq"));
    EXPECT_FALSE(std::filesystem::exists(again->path() + ".tmp." + std::to_string(getpid())));
}

TEST(PackageIndex, BadListsAndPlaces) {
    TempDir dir;
    IndexOptions o;
    o.cache_dir = dir.path();
    o.lists_dir = dir.file("no-lists");
    o.architecture = "amd64";
    o.dpkg_status = fixture("status");
    expect_error(ErrorCode::kNotFound, [&] { PackageIndex::open(o); });  // hint: apt-get update
    o.package_lists = {dir.file("missing_Packages")};
    expect_error(ErrorCode::kNotFound, [&] { PackageIndex::open(o); });
    o.package_lists = {fixture("Packages")};
    o.dpkg_status = dir.file("no-status");
    expect_error(ErrorCode::kIo, [&] { PackageIndex::open(o); });
    // Binary garbage as a list indexes nothing and does not crash.
    cortex::test::write_file(dir.file("garbage_Packages"), std::string("\x00\x01Package\xff:\n\n\x7f", 13));
    o.package_lists = {dir.file("garbage_Packages")};
    o.dpkg_status = fixture("status");
    EXPECT_EQ(PackageIndex::open(o)->size(), 0u);
}

TEST(PackageIndex, SearchRanksNamesTyposAndText) {
    TempDir dir;
    auto index = fixture_index(dir);
    std::vector<SearchHit> hits = index->search("nginx", 3);
    ASSERT_FALSE(hits.empty());
    EXPECT_EQ(hits[0].package.name, "nginx");
    EXPECT_EQ(hits[0].match, "exact name");
    hits = index->search("ngnix", 3);
    ASSERT_FALSE(hits.empty());
    EXPECT_EQ(hits[0].package.name, "nginx");
    EXPECT_EQ(hits[0].match, "similar name");
    hits = index->search("pdf viewer", 3);
    ASSERT_FALSE(hits.empty());
    EXPECT_EQ(hits[0].package.name, "evince");
    hits = index->search("http server", 5);
    EXPECT_NE(std::find(names_of(hits).begin(), names_of(hits).end(), "apache2"), names_of(hits).end());
    // The -doc package ranks below the server it documents.
    std::vector<std::string> web = names_of(index->search("web proxy server", 5));
    ASSERT_GE(web.size(), 2u);
    EXPECT_EQ(web[0], "nginx");
    // FTS5 syntax and garbage in a query are just words (or nothing).
    for (const char * q : {"\"", "*", "NEAR(a b)", "a:b", "^x", "AND OR NOT", "", "   ", "\xff\xfe", "nginx\"*"}) {
        EXPECT_NO_THROW(index->search(q, 5)) << q;
    }
    EXPECT_TRUE(index->search("nginx", 0).empty());
    EXPECT_EQ(index->similar_names("ngnix", 1), (std::vector<std::string>{"nginx"}));
}

// ---- this machine's real apt index ----

TEST(MachineIndex, ExactTypoAndSynonymRequests) {
    const PackageIndex & index = machine_index();
    EXPECT_GT(index.size(), 1000u);
    PlannerOptions o;
    o.simulate = false;
    Planner planner(index, o);
    struct Case {
        const char * request;
        std::vector<std::string> packages;
        const char * chosen_by;
    };
    for (const Case & c : std::vector<Case>{
             {"nginx", {"nginx"}, "exact name"},
             {"ngnix", {"nginx"}, "similar name"},
             {"a web server", {"nginx"}, "intent"},
             {"install docker", {"docker.io"}, "intent"},
             {"python dev tools", {"python3-dev", "python3-pip", "python3-venv"}, "intent"},
             {"set up a python dev box", {"python3-dev", "python3-pip", "python3-venv"}, "intent"},
             {"pdf viewer", {"evince"}, "intent"},
             {"git curl jq", {"git", "curl", "jq"}, "exact name"},
             {"docker compose", {"docker-compose"}, "intent"},
         }) {
        Plan p = planner.plan(Operation::kInstall, c.request);
        EXPECT_EQ(p.packages, c.packages) << c.request;
        EXPECT_EQ(p.chosen_by, c.chosen_by) << c.request;
        EXPECT_FALSE(p.reason.empty());
    }
}

TEST(MachineIndex, IntentPackagesExistInTheIndex) {
    // data/intents.json must only name real packages of this distribution.
    const PackageIndex & index = machine_index();
    PlannerOptions o;
    o.simulate = false;
    Planner planner(index, o);
    for (const char * request :
         {"web server", "docker", "pdf viewer", "python dev tools", "java", "database", "ssh server", "video player",
          "web browser", "image editor", "office", "rust", "firewall", "latex"}) {
        EXPECT_NO_THROW(planner.plan(Operation::kInstall, request)) << request;
    }
}

TEST(MachineIndex, FreeTextWithoutAModelUsesTheIndexAndSaysSo) {
    PlannerOptions o;
    o.simulate = false;
    o.no_model_reason = "no model is set";
    Planner planner(machine_index(), o);
    Plan p = planner.plan(Operation::kInstall, "something to edit markdown with live preview");
    ASSERT_EQ(p.packages.size(), 1u);
    EXPECT_EQ(p.chosen_by, "package index");
    bool said = false;
    for (const std::string & n : p.notes) said |= n.find("no model is set") != std::string::npos;
    EXPECT_TRUE(said);
    // The chosen package's description is about markdown.
    std::optional<PackageRecord> r = machine_index().find(p.packages[0]);
    ASSERT_TRUE(r);
}

TEST(MachineIndex, BadRequests) {
    PlannerOptions o;
    o.simulate = false;
    Planner planner(machine_index(), o);
    expect_error(ErrorCode::kInvalidArgument, [&] { planner.plan(Operation::kInstall, ""); });
    expect_error(ErrorCode::kInvalidArgument, [&] { planner.plan(Operation::kInstall, "please install the"); });
    // Nonsense is no error but an honest "no confident match": nothing planned.
    Plan nonsense = planner.plan(Operation::kInstall, "qwzxvkjq");
    EXPECT_TRUE(nonsense.no_confident_match);
    EXPECT_TRUE(nonsense.packages.empty());
    EXPECT_TRUE(nonsense.commands.empty());
    Error e = expect_error(ErrorCode::kNotFound,
                           [&] { planner.plan_packages(Operation::kInstall, "x", {"nginxx"}, "flag", ""); });
    EXPECT_NE(e.hint().find("nginx"), std::string::npos);  // did you mean
    // Control characters, huge and binary requests end in a clear error or a plan, never a crash.
    for (const std::string & r :
         {std::string(100000, 'a'), std::string("\x01\x02\x03"), std::string("nginx\0evil", 10)}) {
        Error err = expect_error(ErrorCode::kInvalidArgument, [&] { planner.plan(Operation::kInstall, r); });
        EXPECT_FALSE(err.hint().empty());
    }
}

TEST(MachineSimulation, InstallPlanHasDependenciesSizesServicesAndCommands) {
    PlannerOptions o;
    Planner planner(machine_index(), o);
    const bool installed = !machine_index().find("nginx")->installed_version.empty();
    if (installed) GTEST_SKIP() << "nginx is installed on this machine";
    Plan p = planner.plan(Operation::kInstall, "nginx");
    EXPECT_TRUE(has_change(p, "nginx", PackageChange::Kind::kInstall));
    EXPECT_TRUE(has_change(p, "nginx-common", PackageChange::Kind::kInstall));
    for (const PackageChange & c : p.changes) {
        EXPECT_EQ(c.requested, c.name == "nginx") << c.name;
        if (c.kind == PackageChange::Kind::kInstall) EXPECT_GT(c.download_bytes, 0u) << c.name;
    }
    EXPECT_GT(p.download_bytes, 100000u);
    EXPECT_GT(p.disk_delta_bytes, 0);
    EXPECT_EQ(p.services, (std::vector<std::string>{"nginx.service"}));
    ASSERT_EQ(p.commands.size(), 1u);
    EXPECT_EQ(command_packages(p.commands[0]), (std::vector<std::string>{"nginx"}));
    // The plan survives JSON both ways (history stores it so).
    Plan back = Plan::from_json(p.to_json());
    EXPECT_EQ(back.to_json(), p.to_json());
    EXPECT_NE(p.to_text().find("nginx.service"), std::string::npos);
    expect_error(ErrorCode::kInvalidArgument, [] { Plan::from_json(nlohmann::json::object()); });
    expect_error(ErrorCode::kInvalidArgument, [] { Plan::from_json(nlohmann::json::parse(R"({"operation": 3})")); });
}

TEST(MachineSimulation, AlreadyInstalledAndNotInstalled) {
    Planner planner(machine_index(), {});
    const PackageRecord dpkg = *machine_index().find("dpkg");  // always installed on Debian
    Plan p = planner.plan(Operation::kInstall, "dpkg");
    if (compare_debian_versions(dpkg.version, dpkg.installed_version) > 0) {
        // Installed but upgradable: the plan is the upgrade, and says so.
        ASSERT_FALSE(p.empty());
        EXPECT_TRUE(std::any_of(p.changes.begin(), p.changes.end(), [](const PackageChange & c) {
            return c.name == "dpkg" && c.kind == PackageChange::Kind::kUpgrade;
        }));
        EXPECT_NE(p.to_text().find(dpkg.installed_version + " -> " + dpkg.version), std::string::npos) << p.to_text();
    } else {
        EXPECT_TRUE(p.empty());
        EXPECT_EQ(p.already_done, (std::vector<std::string>{"dpkg"}));
        EXPECT_TRUE(p.commands.empty());
    }
    if (machine_index().find("nginx")->installed_version.empty()) {
        Plan r = planner.plan(Operation::kRemove, "nginx");
        EXPECT_TRUE(r.empty());
        EXPECT_EQ(r.already_done, (std::vector<std::string>{"nginx"}));
    }
}

TEST(MachineSimulation, EssentialAndWideRemovalsAreRefused) {
    Planner planner(machine_index(), {});
    Error e = expect_error(ErrorCode::kInvalidArgument, [&] { planner.plan(Operation::kRemove, "bash"); });
    EXPECT_NE(e.message().find("essential"), std::string::npos);
    // libc6 is not Essential itself, but everything depends on it: apt's own resolver fails and
    // the refusal says so.
    e = expect_error(ErrorCode::kInvalidArgument, [&] { planner.plan(Operation::kRemove, "libc6"); });
    EXPECT_NE(e.message().find("refused"), std::string::npos);
    // Removing a library that installed programs need would take them with it: refused, and the
    // hint names them. libcurl4 is needed by curl, which the set-up installs.
    if (!machine_index().find("curl")->installed_version.empty() &&
        !machine_index().find("libcurl4")->installed_version.empty()) {
        e = expect_error(ErrorCode::kInvalidArgument, [&] { planner.plan(Operation::kRemove, "libcurl4"); });
        EXPECT_NE(e.message().find("you did not name"), std::string::npos) << e.message();
        EXPECT_NE(e.hint().find("curl"), std::string::npos);
    }
}

// ---- the model path: random weights, yet the grammar keeps the plan inside the candidates ----

TEST(ModelPlanning, GeneratedModelPicksOnlyCandidates) {
    TempDir home;
    for (const char * v :
         {"CORTEX_PROVIDER", "LLAMACPP_MODEL", "CORTEX_PRELOAD_SOCKET", "CORTEX_HOME", "XDG_RUNTIME_DIR"})
        unsetenv(v);
    setenv("CORTEX_PRELOAD", "off", 1);
    Settings settings = Settings::load({{"model", cortex::test::model_path("tiny-qwen2")},
                                        {"n_ctx", "2048"},
                                        {"n_threads", "2"},
                                        {"preload_socket", home.file("none.sock")}},
                                       home.path());
    std::string why;
    ASSERT_TRUE(provider_available(settings, &why)) << why;
    std::unique_ptr<Provider> provider = open_provider(settings);
    PlannerOptions o;
    o.provider = provider.get();
    o.simulate = false;
    Planner planner(machine_index(), o);
    for (const char * request : {"something to edit markdown with live preview", "a tool to watch network traffic",
                                 "software to cut my holiday video clips", "asdf qwerty zxcv"}) {
        Plan p = planner.plan(Operation::kInstall, request);
        // The model was asked, in this process: a random-weight model picks a candidate or "none".
        EXPECT_TRUE(p.chosen_by.starts_with("model ") || p.chosen_by.starts_with("package index, after model "))
            << request << ": " << p.chosen_by;
        EXPECT_NE(p.chosen_by.find("in-process"), std::string::npos) << p.chosen_by;
        if (p.no_confident_match) {
            EXPECT_TRUE(p.packages.empty());
            EXPECT_TRUE(p.commands.empty());
        } else {
            ASSERT_FALSE(p.packages.empty()) << request;
            for (const std::string & name : p.packages) EXPECT_TRUE(machine_index().find(name)) << name;
            // A model's pick is never confident enough to run unasked.
            EXPECT_LT(p.confidence, kExecuteConfidence);
            EXPECT_GE(p.confidence, kPlanConfidence);
        }
    }
    unsetenv("CORTEX_PRELOAD");
}

// ---- apt's syntax ----

TEST(RequestSyntax, ParsesEveryFormAptAccepts) {
    auto spec = [](const std::string & text) {
        std::vector<RequestToken> t = parse_request_tokens(text);
        EXPECT_EQ(t.size(), 1u) << text;
        EXPECT_TRUE(t[0].spec) << text;
        return *t[0].spec;
    };
    PackageSpec s = spec("nginx=1.22.1-9+deb12u12");
    EXPECT_EQ(s.kind, PackageSpec::Kind::kVersion);
    EXPECT_EQ(s.name, "nginx");
    EXPECT_EQ(s.version, "1.22.1-9+deb12u12");
    EXPECT_EQ(s.apt_argument(), "nginx=1.22.1-9+deb12u12");
    s = spec("git=1:2.39.5-0+deb12u3");  // an epoch
    EXPECT_EQ(s.version, "1:2.39.5-0+deb12u3");
    s = spec("nginx/bookworm-security");
    EXPECT_EQ(s.kind, PackageSpec::Kind::kRelease);
    EXPECT_EQ(s.release, "bookworm-security");
    s = spec("Nginx:AMD64");
    EXPECT_EQ(s.name, "nginx");
    EXPECT_EQ(s.arch, "amd64");
    EXPECT_EQ(s.apt_argument(), "nginx:amd64");
    s = spec("libc6:amd64=2.36-9");
    EXPECT_EQ(s.apt_argument(), "libc6:amd64=2.36-9");
    s = spec("./foo.deb");
    EXPECT_EQ(s.kind, PackageSpec::Kind::kLocalDeb);
    EXPECT_EQ(spec("/tmp/x.deb").kind, PackageSpec::Kind::kLocalDeb);
    // Several names, commas and separators; plain words carry no spec.
    std::vector<RequestToken> t = parse_request_tokens("vim, tmux and htop / nginx=1.2-1");
    ASSERT_EQ(t.size(), 6u);
    EXPECT_FALSE(t[0].spec);
    EXPECT_EQ(t[1].text, "tmux");
    EXPECT_FALSE(t[4].spec);  // "/" alone separates words
    EXPECT_TRUE(t[5].spec);
}

TEST(RequestSyntax, RefusesWhatAptWouldRefuse) {
    for (const char * bad : {"nginx==1", "=1.0", "nginx=", "nginx/", ":amd64", "nginx:", "nginx=abc", "nginx/b@d",
                             "NGINX_X=1", "/etc/passwd", "./configure"}) {
        Error e = expect_error(ErrorCode::kInvalidArgument, [&] { parse_request_tokens(bad); });
        EXPECT_NE(e.message().find(bad[0] == '/' || bad[0] == '.' ? "path" : bad), std::string::npos) << e.message();
        EXPECT_FALSE(e.hint().empty()) << bad;
    }
    EXPECT_TRUE(is_package_name("g++"));
    EXPECT_TRUE(is_package_name("docker.io"));
    EXPECT_FALSE(is_package_name("a"));
    EXPECT_FALSE(is_package_name("-rf"));
    EXPECT_FALSE(is_package_name("Nginx"));
}

// A real .deb, built here with dpkg-deb, and files that are no package.
TEST(RequestSyntax, InspectsLocalDebFiles) {
    TempDir dir;
    std::filesystem::create_directories(dir.file("pkg/DEBIAN"));
    {
        std::ofstream control(dir.file("pkg/DEBIAN/control"));
        control << "Package: cortex-test-hello\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Cortex <c@x>\n"
                   "Installed-Size: 1\nDescription: a package built by the tests\n";
    }
    ASSERT_EQ(std::system(("dpkg-deb --build --root-owner-group " + dir.file("pkg") + " " + dir.file("hello.deb") +
                           " >/dev/null 2>&1")
                              .c_str()),
              0);
    DebInfo info = inspect_deb(dir.file("hello.deb"));
    EXPECT_EQ(info.name, "cortex-test-hello");
    EXPECT_EQ(info.version, "1.0-1");
    EXPECT_EQ(info.architecture, "all");
    EXPECT_EQ(info.summary, "a package built by the tests");
    EXPECT_EQ(info.path, std::filesystem::canonical(dir.file("hello.deb")).string());
    expect_error(ErrorCode::kNotFound, [&] { inspect_deb(dir.file("missing.deb")); });
    {
        std::ofstream fake(dir.file("fake.deb"));
        fake << "this is no Debian package";
    }
    Error e = expect_error(ErrorCode::kInvalidArgument, [&] { inspect_deb(dir.file("fake.deb")); });
    EXPECT_NE(e.message().find("not a Debian package"), std::string::npos) << e.message();
    expect_error(ErrorCode::kInvalidArgument, [&] { inspect_deb(dir.path()); });  // a directory

    // Planned and simulated by apt like any other package; the plan names the package inside.
    Planner planner(machine_index(), {});
    Plan p = planner.plan(Operation::kInstall, dir.file("hello.deb"));
    EXPECT_EQ(p.method, "apt syntax");
    ASSERT_EQ(p.changes.size(), 1u) << p.to_text();
    EXPECT_EQ(p.changes[0].name, "cortex-test-hello");
    EXPECT_TRUE(p.changes[0].requested);
    EXPECT_EQ(command_packages(p.commands[0]), (std::vector<std::string>{info.path}));
    expect_error(ErrorCode::kInvalidArgument, [&] { planner.plan(Operation::kRemove, dir.file("hello.deb")); });
    expect_error(ErrorCode::kInvalidArgument, [&] { planner.plan(Operation::kInstall, dir.file("fake.deb")); });
}

// apt alone fails on an older nginx: nginx-common stays at its candidate. The planner pins the
// sibling to the same version, as a person would, and says so.
TEST(MachineSyntax, AnOlderVersionBringsItsSiblingsAtTheSameVersion) {
    const std::vector<PackageVersion> versions = machine_index().versions("nginx");
    const std::vector<PackageVersion> common = machine_index().versions("nginx-common");
    if (versions.size() < 2 || std::none_of(common.begin(), common.end(), [&](const PackageVersion & v) {
            return v.version == versions.back().version;
        })) {
        GTEST_SKIP() << "this index has one version of nginx";
    }
    Planner planner(machine_index(), {});
    Plan p = planner.plan(Operation::kInstall, "nginx=" + versions.back().version);
    EXPECT_EQ(p.packages, (std::vector<std::string>{"nginx=" + versions.back().version}));
    for (const PackageChange & c : p.changes) {
        if (c.name == "nginx" || c.name == "nginx-common") EXPECT_EQ(c.new_version, versions.back().version) << c.name;
    }
    ASSERT_FALSE(p.notes.empty());
    EXPECT_NE(p.notes.back().find("nginx-common=" + versions.back().version), std::string::npos) << p.notes.back();
}

TEST(MachineSyntax, VersionsReleasesAndArchitecturesAreCheckedAgainstTheIndex) {
    PlannerOptions o;
    o.simulate = false;
    Planner planner(machine_index(), o);
    const std::vector<PackageVersion> versions = machine_index().versions("nginx");
    ASSERT_FALSE(versions.empty());
    Plan p = planner.plan(Operation::kInstall, "nginx=" + versions.back().version);
    EXPECT_EQ(p.packages, (std::vector<std::string>{"nginx=" + versions.back().version}));
    EXPECT_EQ(p.method, "apt syntax");
    EXPECT_DOUBLE_EQ(p.confidence, 1.0);
    Error e = expect_error(ErrorCode::kNotFound, [&] { planner.plan(Operation::kInstall, "nginx=9.9.9"); });
    EXPECT_NE(e.message().find(versions.front().version), std::string::npos) << e.message();  // lists what exists
    ASSERT_FALSE(versions.front().releases.empty());
    p = planner.plan(Operation::kInstall, "nginx/" + versions.front().releases[0]);
    EXPECT_EQ(p.packages[0], "nginx/" + versions.front().releases[0]);
    e = expect_error(ErrorCode::kNotFound, [&] { planner.plan(Operation::kInstall, "nginx/sid"); });
    EXPECT_NE(e.message().find("no release sid"), std::string::npos) << e.message();
    p = planner.plan(Operation::kInstall, "nginx:" + machine_index().architecture() + " curl");
    EXPECT_EQ(p.packages.size(), 2u);
    expect_error(ErrorCode::kNotFound, [&] { planner.plan(Operation::kInstall, "nginx:s390x"); });
    // All or nothing: one unknown name stops the whole request.
    e = expect_error(ErrorCode::kNotFound, [&] { planner.plan(Operation::kInstall, "nginx=1.0 htopp"); });
    expect_error(ErrorCode::kInvalidArgument, [&] { planner.plan(Operation::kInstall, "nginx==1"); });
}

// ---- ranking: facets, kinds, equivalents, confidence ----

TEST(Ranking, PackageKindsAndTheWordsThatAskForThem) {
    auto record = [](std::string name, std::string section, std::string tags, std::string summary = "x") {
        PackageRecord r;
        r.name = std::move(name);
        r.section = std::move(section);
        r.tags = std::move(tags);
        r.summary = std::move(summary);
        return r;
    };
    EXPECT_EQ(package_kind(record("kdenlive", "video", "role::program, use::editing")), "program");
    EXPECT_EQ(package_kind(record("libavcodec59", "libs", "")), "library");
    EXPECT_EQ(package_kind(record("libreoffice", "editors", "")), "program");  // lib* only in library Sections
    EXPECT_EQ(package_kind(record("libssl-dev", "libdevel", "")), "library");
    EXPECT_EQ(package_kind(record("node-ytdl-core", "javascript", "")), "language module");
    EXPECT_EQ(package_kind(record("python3-yaml", "python", "")), "language module");
    EXPECT_EQ(package_kind(record("gimp-plugin-registry", "graphics", "")), "plugin");
    EXPECT_EQ(package_kind(record("nginx-doc", "doc", "")), "documentation");
    EXPECT_EQ(package_kind(record("youtube-dl", "web", "", "downloader (transitional package)")), "transitional");
    EXPECT_TRUE(request_asks_for_kind({"python", "yaml", "library"}, "language module"));
    EXPECT_FALSE(request_asks_for_kind({"video", "editor"}, "library"));
    EXPECT_TRUE(request_asks_for_kind({"anything"}, "program"));
    EXPECT_TRUE(words_match("editor", "editing"));
    EXPECT_TRUE(words_match("videos", "video"));
    EXPECT_TRUE(words_match("web", "webserver"));
    EXPECT_FALSE(words_match("go", "google"));
    EXPECT_FALSE(words_match("edit", "credit"));
    EXPECT_TRUE(is_generic_word("tool"));
    EXPECT_FALSE(is_generic_word("video"));
}

TEST(Ranking, ProgramsOutrankLibrariesAndConfidenceStaysBelowExecution) {
    const PackageRanker ranker(machine_index());
    std::vector<RankedCandidate> ranked = ranker.rank({"youtube", "video", "downloader"}, 10, false);
    ASSERT_FALSE(ranked.empty());
    EXPECT_EQ(ranked[0].kind, "program") << ranked[0].package.name;
    for (const RankedCandidate & c : ranked) {
        if (c.package.name == "node-ytdl-core") EXPECT_LT(c.score, ranked[0].score);
    }
    // Asked for, a library is no longer held back.
    ranked = ranker.rank({"python", "yaml", "library"}, 5, false);
    ASSERT_FALSE(ranked.empty());
    EXPECT_TRUE(ranked[0].package.name.starts_with("python3-")) << ranked[0].package.name;
    const double c = ranking_confidence(ranked);
    EXPECT_GT(c, 0);
    EXPECT_LT(c, kExecuteConfidence);  // a text match is never certain
    EXPECT_EQ(ranking_confidence({}), 0);
    // Packages tagged with the request's facets are found although their summary has other words.
    const std::vector<PackageRecord> tagged =
        machine_index().with_tags({"works-with::image:vector", "use::editing"}, 200);
    EXPECT_TRUE(
        std::any_of(tagged.begin(), tagged.end(), [](const PackageRecord & r) { return r.name == "inkscape"; }));
    EXPECT_TRUE(std::none_of(tagged.begin(), tagged.end(), [](const PackageRecord & r) { return r.name == "vim"; }));
}

TEST(Equivalents, EveryPackageExistsAndNamesAreMatchedAsWords) {
    for (const Product & p : products()) {
        for (const std::string & name : p.packages)
            EXPECT_TRUE(machine_index().find(name)) << p.product << ": " << name;
        for (const std::string & name : p.debian_packages) EXPECT_TRUE(machine_index().find(name)) << name;
        EXPECT_FALSE(p.names.empty());
    }
    std::optional<ProductMention> m = find_product({"video", "editor", "premiere"}, "video editor like premiere");
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->like_context);
    EXPECT_EQ(m->product->packages.front(), "kdenlive");
    m = find_product({"google", "chrome"}, "install google chrome");
    ASSERT_TRUE(m);
    EXPECT_FALSE(m->like_context);
    EXPECT_EQ(m->count, 2u);  // the longest name
    // An ordinary word counts only after "like": "a word processor" is no Microsoft Word.
    EXPECT_FALSE(find_product({"word", "processor"}, "a word processor"));
    EXPECT_TRUE(find_product({"word"}, "something like word"));
    EXPECT_FALSE(find_product({"i", "would", "nginx"}, "i would like nginx"));
}

TEST(MachinePlanning, ConfidenceAndHonestOutcomes) {
    PlannerOptions o;
    o.simulate = false;
    Planner planner(machine_index(), o);
    Plan p = planner.plan(Operation::kInstall, "nginx");
    EXPECT_EQ(p.method, "exact name");
    EXPECT_STREQ(p.confidence_label(), "high");
    p = planner.plan(Operation::kInstall, "ngnix");
    EXPECT_EQ(p.packages, (std::vector<std::string>{"nginx"}));
    EXPECT_EQ(p.method, "typo");
    EXPECT_STREQ(p.confidence_label(), "medium");  // a guess: shown, not run unasked
    p = planner.plan(Operation::kInstall, "a web server");
    EXPECT_EQ(p.method, "intent");
    EXPECT_STREQ(p.confidence_label(), "high");
    // A named package outranks the category words that describe it.
    p = planner.plan(Operation::kInstall, "lighttpd web server");
    EXPECT_EQ(p.packages, (std::vector<std::string>{"lighttpd"}));
    p = planner.plan(Operation::kInstall, "apache web server");
    EXPECT_EQ(p.packages, (std::vector<std::string>{"apache2"}));
    // A mistyped word beside a name stops the request and says which.
    Error e = expect_error(ErrorCode::kNotFound, [&] { planner.plan(Operation::kInstall, "nginx htopp"); });
    EXPECT_NE(e.message().find("htopp: no such package; did you mean htop"), std::string::npos) << e.message();
    // "like X": the free equivalent; X alone: refused, with the equivalents named.
    p = planner.plan(Operation::kInstall, "video editor like premiere");
    EXPECT_EQ(p.method, "equivalent");
    EXPECT_EQ(p.packages, (std::vector<std::string>{"kdenlive"}));
    for (const char * product : {"chrome", "zoom", "vscode"}) {
        e = expect_error(ErrorCode::kNotFound, [&] { planner.plan(Operation::kInstall, product); });
        EXPECT_NE(e.message().find("not in Debian's archive"), std::string::npos) << e.message();
        EXPECT_NE(e.hint().find("free equivalents in Debian"), std::string::npos) << e.hint();
    }
    e = expect_error(ErrorCode::kNotFound, [&] { planner.plan(Operation::kInstall, "slack"); });
    EXPECT_NE(e.hint().find("slack/"), std::string::npos) << e.hint();  // Debian's own slack, by apt syntax
    // Free text: the best candidates, at most medium confidence; nonsense: no plan.
    p = planner.plan(Operation::kInstall, "tool to download youtube videos");
    EXPECT_EQ(p.packages, (std::vector<std::string>{"yt-dlp"}));
    EXPECT_EQ(p.method, "facets + text");
    EXPECT_STREQ(p.confidence_label(), "medium");
    EXPECT_FALSE(p.candidates.empty());
    for (const char * nonsense : {"asdfgh", "lkjhg poiuyt mnbv", "a girlfriend"}) {
        p = planner.plan(Operation::kInstall, nonsense);
        EXPECT_TRUE(p.no_confident_match) << nonsense << ": " << p.to_text();
    }
    // Several needs in one request.
    p = planner.plan(Operation::kInstall, "a web browser and an email client");
    EXPECT_EQ(p.packages, (std::vector<std::string>{"firefox-esr", "thunderbird"}));
    // A negated word is excluded.
    p = planner.plan(Operation::kInstall, "containers without docker");
    for (const std::string & name : p.packages) EXPECT_EQ(name.find("docker"), std::string::npos) << name;
}

TEST(MachineSimulation, UpgradesAreShownAndPlanned) {
    Planner planner(machine_index(), {});
    Plan all = planner.plan(Operation::kUpgrade, "");
    EXPECT_EQ(all.commands.size(), 1u);
    EXPECT_EQ(all.commands[0][1], "upgrade");
    for (const PackageChange & c : all.changes) {
        EXPECT_NE(c.kind, PackageChange::Kind::kRemove) << c.name;
        if (c.kind == PackageChange::Kind::kUpgrade) {
            // Upgrades are rows of the table, with the old and the new version.
            EXPECT_NE(all.to_text().find(c.name), std::string::npos) << c.name;
        }
    }
    expect_error(ErrorCode::kInvalidArgument, [&] { planner.plan(Operation::kUpgrade, "sl"); });  // not installed
    Plan back = Plan::from_json(all.to_json());
    EXPECT_EQ(back.operation, Operation::kUpgrade);
}

// AppStream components and Translation-en files, where apt has them, feed the index and ranking.
TEST(FixtureIndex, AppStreamKeywordsAndLongDescriptions) {
    TempDir dir;
    {
        // Lists without long descriptions, as Debian's mirrors serve them today.
        std::ofstream extra(dir.file("extra_Packages"));
        extra << "Package: farmer\nVersion: 1.0\nArchitecture: all\nSection: web\nDescription: web host tool\n\n";
    }
    IndexOptions o;
    o.cache_dir = dir.path();
    o.package_lists = {fixture("Packages"), dir.file("extra_Packages")};
    o.appstream_files = {fixture("Components-amd64.yml")};
    o.translation_files = {fixture("Translation-en")};
    o.dpkg_status = fixture("status");
    o.architecture = "amd64";
    std::unique_ptr<PackageIndex> index = PackageIndex::open(o);
    const PackageRecord evince = *index->find("evince");
    EXPECT_NE(evince.appstream.find("Document Viewer"), std::string::npos) << evince.appstream;
    EXPECT_NE(evince.appstream.find("comics"), std::string::npos);
    EXPECT_EQ(evince.appstream.find("buch"), std::string::npos);  // untranslated values only
    EXPECT_NE(evince.appstream.find("Vector Graphics"), std::string::npos);
    // A keyword that no summary has finds the package, and explains the request's word.
    const PackageRanker ranker(*index);
    std::vector<RankedCandidate> ranked = ranker.rank({"comics"}, 5, false);
    ASSERT_FALSE(ranked.empty());
    EXPECT_EQ(ranked[0].package.name, "evince");
    EXPECT_DOUBLE_EQ(ranked[0].coverage, 1.0);
    ranked = ranker.rank({"load", "balancer"}, 5, false);
    ASSERT_FALSE(ranked.empty());
    EXPECT_EQ(ranked[0].package.name, "nginx");
    // The long description is searched where the Packages list has none.
    const std::vector<SearchHit> wiki = index->text_matches({"wiki"}, 5);
    ASSERT_EQ(wiki.size(), 1u);
    EXPECT_EQ(wiki[0].package.name, "farmer");
    // Changing a metadata file rebuilds the index; without the files it still works.
    o.appstream_files.clear();
    o.translation_files.clear();
    std::unique_ptr<PackageIndex> plain = PackageIndex::open(o);
    EXPECT_TRUE(plain->rebuilt());
    EXPECT_TRUE(plain->find("evince")->appstream.empty());
    // A malformed component is skipped, not fatal.
    std::map<std::string, std::string> out;
    read_appstream("---\nPackage: x\nKeywords:\n  C:\n  - one\n garbage: [\n---\n: :\n- \nPackage:\n", out);
    EXPECT_EQ(out["x"], "; one; ");
}
