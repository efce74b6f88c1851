// The interpreter: deb822 and apt output parsing, Debian version order, the package index
// (fixture lists and this machine's real apt lists), the planner with and without a model, and
// apt's real simulation of the plans.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "cortex/config.h"
#include "interpreter/apt_simulation.h"
#include "interpreter/deb822.h"
#include "interpreter/package_index.h"
#include "interpreter/planner.h"
#include "interpreter/provider.h"
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
    expect_error(ErrorCode::kNotFound, [&] { planner.plan(Operation::kInstall, "qwzxvkjq"); });
    Error e = expect_error(ErrorCode::kNotFound,
                           [&] { planner.plan_packages(Operation::kInstall, "x", {"nginxx"}, "flag", ""); });
    EXPECT_NE(e.hint().find("nginx"), std::string::npos);  // did you mean
    // Control characters, huge and binary requests end in a clear error or a plan, never a crash.
    for (const std::string & r :
         {std::string(100000, 'a'), std::string("\x01\x02\x03"), std::string("nginx\0evil", 10)}) {
        try {
            planner.plan(Operation::kInstall, r);
        } catch (const Error & err) {
            EXPECT_FALSE(err.hint().empty());
        }
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
    Plan p = planner.plan(Operation::kInstall, "dpkg");  // always installed on Debian
    EXPECT_TRUE(p.empty());
    EXPECT_EQ(p.already_done, (std::vector<std::string>{"dpkg"}));
    EXPECT_TRUE(p.commands.empty());
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
    for (const char * request : {"something to edit markdown with live preview", "a tool to watch network traffic"}) {
        Plan p = planner.plan(Operation::kInstall, request);
        ASSERT_FALSE(p.packages.empty()) << request;
        for (const std::string & name : p.packages) EXPECT_TRUE(machine_index().find(name)) << name;
        // Either the model's valid answer, or (when its reason ran past max_tokens) the index's.
        EXPECT_TRUE(p.chosen_by.starts_with("model ") || p.chosen_by == "package index") << p.chosen_by;
        if (p.chosen_by.starts_with("model ")) EXPECT_NE(p.chosen_by.find("in-process"), std::string::npos);
    }
    unsetenv("CORTEX_PRELOAD");
}
