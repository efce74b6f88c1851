// A package plan: what `cortex install|remove` would do, as data. Plans are built from the real
// package index and apt's own simulation, never from shell text; the commands are argv vectors.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cortex::interpreter {

enum class Operation { kInstall, kRemove, kUpgrade };

// "install" / "remove" / "upgrade".
const char * operation_name(Operation op);

// One package transition of apt's simulated transaction.
struct PackageChange {
    enum class Kind { kInstall, kUpgrade, kDowngrade, kReinstall, kRemove };
    Kind kind = Kind::kInstall;
    std::string name;
    std::string architecture;
    std::string old_version;  // empty for a new install
    std::string new_version;  // empty for a removal
    bool requested = false;   // the user's package; otherwise a dependency or a dependent
    uint64_t download_bytes = 0;
    int64_t disk_delta_bytes = 0;  // installed size after minus before
};

// "install", "upgrade", "downgrade", "reinstall", "remove".
const char * change_kind_name(PackageChange::Kind kind);

// A package the planner considered, for people (the best few when it is unsure) and for the
// evaluation bench (recall of the right package among them).
struct Candidate {
    std::string name;
    std::string summary;
    double score = 0;
    std::string kind;  // "program", "library", ...
};

// Confidence at or above which a plan may run with --execute without the user naming the package.
inline constexpr double kExecuteConfidence = 0.8;
// Below this a free-text request gets "no confident match" instead of a plan.
inline constexpr double kPlanConfidence = 0.55;

struct Plan {
    Operation operation = Operation::kInstall;
    std::string request;                    // the words the user typed
    std::vector<std::string> packages;      // the packages chosen for the request
    std::vector<std::string> already_done;  // install: already installed; remove: not installed
    std::vector<PackageChange> changes;     // apt's transaction, in apt's order
    uint64_t download_bytes = 0;
    int64_t disk_delta_bytes = 0;
    std::vector<std::string> services;               // systemd units the packages are known to ship
    std::vector<std::vector<std::string>> commands;  // argv of each command --execute runs
    std::string chosen_by;                           // "exact name", "package index", "model <name> (<how>)"
    std::string reason;                              // one line: why these packages
    std::vector<std::string> notes;                  // anything the user should know
    // How the packages were chosen: "apt syntax", "exact name", "typo", "intent", "equivalent",
    // "facets + text", "model" or "history"; and how sure that is (0..1, see kExecuteConfidence).
    std::string method = "exact name";
    double confidence = 1.0;
    std::vector<Candidate> candidates;  // the best candidates considered, best first (free text only)
    // Nothing was planned: no candidate fits the request well enough (candidates has the best).
    bool no_confident_match = false;

    bool empty() const { return changes.empty(); }
    // "high", "medium" or "low".
    const char * confidence_label() const;
    nlohmann::json to_json() const;
    // For people: the table of changes, totals, services and the commands.
    std::string to_text() const;
    static Plan from_json(const nlohmann::json & j);  // throws Error(kInvalidArgument)
};

// "641 kB", "1.6 MB" (powers of 1000, as apt prints them).
std::string human_bytes(double bytes);

// The installed version of every package (name:arch -> version) from /var/lib/dpkg/status, or
// from `status_path` in tests. Names of the native architecture and "all" appear without ":arch".
struct InstalledPackage {
    std::string name;
    std::string architecture;
    std::string version;
};
std::vector<InstalledPackage> read_installed_packages(const std::string & status_path = "/var/lib/dpkg/status");

}  // namespace cortex::interpreter
