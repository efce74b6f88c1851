// A package plan: what `cortex install|remove` would do, as data. Plans are built from the real
// package index and apt's own simulation, never from shell text; the commands are argv vectors.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cortex::interpreter {

enum class Operation { kInstall, kRemove };

// "install" / "remove".
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

    bool empty() const { return changes.empty(); }
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
