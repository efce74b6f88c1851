#include "interpreter/plan.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cortex/error.h"
#include "interpreter/deb822.h"

namespace cortex::interpreter {

const char * operation_name(Operation op) {
    switch (op) {
        case Operation::kInstall:
            return "install";
        case Operation::kRemove:
            return "remove";
        case Operation::kUpgrade:
            return "upgrade";
    }
    return "install";
}

static Operation operation_from_name(const std::string & name) {
    for (Operation op : {Operation::kInstall, Operation::kRemove, Operation::kUpgrade}) {
        if (name == operation_name(op)) return op;
    }
    throw Error(ErrorCode::kInvalidArgument, "unknown operation '" + name + "' in a recorded plan",
                "the history database may come from a newer Cortex");
}

const char * Plan::confidence_label() const {
    if (confidence >= kExecuteConfidence) return "high";
    if (confidence >= kPlanConfidence) return "medium";
    return "low";
}

const char * change_kind_name(PackageChange::Kind kind) {
    switch (kind) {
        case PackageChange::Kind::kInstall:
            return "install";
        case PackageChange::Kind::kUpgrade:
            return "upgrade";
        case PackageChange::Kind::kDowngrade:
            return "downgrade";
        case PackageChange::Kind::kReinstall:
            return "reinstall";
        case PackageChange::Kind::kRemove:
            return "remove";
    }
    return "install";
}

static PackageChange::Kind change_kind_from_name(const std::string & name) {
    for (auto k : {PackageChange::Kind::kInstall, PackageChange::Kind::kUpgrade, PackageChange::Kind::kDowngrade,
                   PackageChange::Kind::kReinstall, PackageChange::Kind::kRemove}) {
        if (name == change_kind_name(k)) return k;
    }
    throw Error(ErrorCode::kInvalidArgument, "unknown package change '" + name + "' in a recorded plan",
                "the history database may come from a newer Cortex");
}

nlohmann::json Plan::to_json() const {
    nlohmann::json changes_json = nlohmann::json::array();
    for (const PackageChange & c : changes) {
        changes_json.push_back({{"action", change_kind_name(c.kind)},
                                {"package", c.name},
                                {"architecture", c.architecture},
                                {"old_version", c.old_version},
                                {"new_version", c.new_version},
                                {"requested", c.requested},
                                {"download_bytes", c.download_bytes},
                                {"disk_delta_bytes", c.disk_delta_bytes}});
    }
    nlohmann::json candidates_json = nlohmann::json::array();
    for (const Candidate & c : candidates) {
        candidates_json.push_back({{"package", c.name}, {"summary", c.summary}, {"score", c.score}, {"kind", c.kind}});
    }
    return {{"operation", operation_name(operation)},
            {"request", request},
            {"packages", packages},
            {operation == Operation::kRemove ? "not_installed" : "already_installed", already_done},
            {"changes", changes_json},
            {"download_bytes", download_bytes},
            {"disk_delta_bytes", disk_delta_bytes},
            {"services", services},
            {"commands", commands},
            {"chosen_by", chosen_by},
            {"reason", reason},
            {"notes", notes},
            {"method", method},
            {"confidence", confidence},
            {"confidence_label", confidence_label()},
            {"candidates", candidates_json},
            {"no_confident_match", no_confident_match}};
}

std::string human_bytes(double bytes) {
    const char * units[] = {"B", "kB", "MB", "GB", "TB"};
    const bool negative = bytes < 0;
    if (negative) bytes = -bytes;
    int u = 0;
    while (bytes >= 1000 && u < 4) bytes /= 1000, ++u;
    char buf[32];
    snprintf(buf, sizeof buf, u == 0 ? "%s%.0f %s" : "%s%.1f %s", negative ? "-" : "", bytes, units[u]);
    return buf;
}

std::string Plan::to_text() const {
    std::string out;
    char line[512];
    size_t name_w = 7, version_w = 7;
    for (const PackageChange & c : changes) {
        name_w = std::max(name_w, c.name.size());
        size_t w = (c.new_version.empty() ? c.old_version : c.new_version).size();
        if (!c.old_version.empty() && !c.new_version.empty() && c.old_version != c.new_version)
            w = c.old_version.size() + 4 + c.new_version.size();
        version_w = std::max(version_w, w);
    }
    if (!changes.empty()) {
        snprintf(line, sizeof line, "  %-*s  %-9s  %-*s  %10s  %10s\n", static_cast<int>(name_w), "Package", "Action",
                 static_cast<int>(version_w), "Version", "Download", "Disk");
        out += line;
        int counts[5] = {0, 0, 0, 0, 0};
        // A desktop application can pull in hundreds of libraries; the user's own packages are
        // always shown, the first dependencies after them, the rest counted (--json has all).
        constexpr size_t kMaxRows = 30;
        size_t shown = 0, hidden = 0;
        // Changes to installed packages (upgrades, downgrades, removals) are always shown: they
        // are what a user most needs to see before saying yes.
        auto always_shown = [](const PackageChange & c) {
            return c.requested || c.kind != PackageChange::Kind::kInstall;
        };
        for (const PackageChange & c : changes) shown += always_shown(c);
        for (const PackageChange & c : changes) {
            ++counts[static_cast<int>(c.kind)];
            if (!always_shown(c) && shown >= kMaxRows) {
                ++hidden;
                continue;
            }
            shown += !always_shown(c);
            std::string version = c.new_version.empty() ? c.old_version : c.new_version;
            if (!c.old_version.empty() && !c.new_version.empty() && c.old_version != c.new_version)
                version = c.old_version + " -> " + c.new_version;
            snprintf(line, sizeof line, "  %-*s  %-9s  %-*s  %10s  %10s%s\n", static_cast<int>(name_w), c.name.c_str(),
                     change_kind_name(c.kind), static_cast<int>(version_w), version.c_str(),
                     c.download_bytes ? human_bytes(static_cast<double>(c.download_bytes)).c_str() : "-",
                     (c.disk_delta_bytes > 0 ? "+" + human_bytes(static_cast<double>(c.disk_delta_bytes))
                                             : human_bytes(static_cast<double>(c.disk_delta_bytes)))
                         .c_str(),
                     c.requested ? "" : (c.kind == PackageChange::Kind::kRemove ? "  (dependent)" : "  (dependency)"));
            out += line;
        }
        if (hidden) out += "  ... and " + std::to_string(hidden) + " more dependencies (--json lists them all)\n";
        out += "\n";
        snprintf(line, sizeof line, "  %d to install, %d to upgrade, %d to downgrade, %d to remove\n", counts[0],
                 counts[1], counts[2], counts[4]);
        out += line;
        out += "  Download " + human_bytes(static_cast<double>(download_bytes)) + ", disk space " +
               (disk_delta_bytes >= 0 ? "+" : "") + human_bytes(static_cast<double>(disk_delta_bytes)) + "\n";
    }
    auto list = [](const std::vector<std::string> & v) {
        std::string s;
        for (const std::string & x : v) s += (s.empty() ? "" : ", ") + x;
        return s;
    };
    if (!services.empty()) out += "  Services started on installation: " + list(services) + "\n";
    if (!already_done.empty()) {
        out += std::string("  ") + (operation == Operation::kRemove ? "Not installed: " : "Already installed: ") +
               list(already_done) + "\n";
    }
    for (const std::string & n : notes) out += "  Note: " + n + "\n";
    if (!commands.empty()) {
        out += "\nCommands:\n";
        for (const auto & argv : commands) {
            std::string cmd;
            for (const std::string & a : argv) cmd += (cmd.empty() ? "" : " ") + a;
            out += "  " + cmd + "\n";
        }
    }
    return out;
}

Plan Plan::from_json(const nlohmann::json & j) {
    try {
        Plan p;
        p.operation = operation_from_name(j.at("operation").get<std::string>());
        p.request = j.at("request").get<std::string>();
        p.packages = j.at("packages").get<std::vector<std::string>>();
        p.already_done = j.at(p.operation == Operation::kRemove ? "not_installed" : "already_installed")
                             .get<std::vector<std::string>>();
        for (const auto & c : j.at("changes")) {
            PackageChange change;
            change.kind = change_kind_from_name(c.at("action").get<std::string>());
            change.name = c.at("package").get<std::string>();
            change.architecture = c.at("architecture").get<std::string>();
            change.old_version = c.at("old_version").get<std::string>();
            change.new_version = c.at("new_version").get<std::string>();
            change.requested = c.at("requested").get<bool>();
            change.download_bytes = c.at("download_bytes").get<uint64_t>();
            change.disk_delta_bytes = c.at("disk_delta_bytes").get<int64_t>();
            p.changes.push_back(std::move(change));
        }
        p.download_bytes = j.at("download_bytes").get<uint64_t>();
        p.disk_delta_bytes = j.at("disk_delta_bytes").get<int64_t>();
        p.services = j.at("services").get<std::vector<std::string>>();
        p.commands = j.at("commands").get<std::vector<std::vector<std::string>>>();
        p.chosen_by = j.at("chosen_by").get<std::string>();
        p.reason = j.at("reason").get<std::string>();
        p.notes = j.at("notes").get<std::vector<std::string>>();
        // Plans recorded before confidence existed were all chosen by name or by the index.
        p.method = j.value("method", std::string("exact name"));
        p.confidence = j.value("confidence", 1.0);
        for (const auto & c : j.value("candidates", nlohmann::json::array())) {
            p.candidates.push_back({c.at("package").get<std::string>(), c.at("summary").get<std::string>(),
                                    c.at("score").get<double>(), c.at("kind").get<std::string>()});
        }
        p.no_confident_match = j.value("no_confident_match", false);
        return p;
    } catch (const nlohmann::json::exception & e) {
        throw Error(ErrorCode::kInvalidArgument, std::string("malformed plan: ") + e.what(),
                    "the history database may be damaged; `cortex history` lists what can be read");
    }
}

std::vector<InstalledPackage> read_installed_packages(const std::string & status_path) {
    std::ifstream in(status_path, std::ios::binary);
    if (!in) {
        throw Error(ErrorCode::kIo, "cannot read dpkg's status file " + status_path,
                    "Cortex plans apt actions and needs a Debian system with dpkg");
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::vector<InstalledPackage> out;
    for_each_deb822_record(buffer.str(), [&](const Deb822Record & r) {
        // "install ok installed"; "half-installed" and "config-files" packages are not installed.
        if (!r.get("Status").ends_with(" installed")) return;
        out.push_back(
            {std::string(r.get("Package")), std::string(r.get("Architecture")), std::string(r.get("Version"))});
    });
    return out;
}

}  // namespace cortex::interpreter
