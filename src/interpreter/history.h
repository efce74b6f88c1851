// The history of executed plans, in SQLite under $CORTEX_HOME, and rollback of a recorded plan.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "interpreter/plan.h"

namespace cortex::interpreter {

struct HistoryEntry {
    int64_t id = 0;
    std::string time;       // ISO 8601 UTC
    std::string command;    // e.g. "install nginx" or "rollback 3"
    Plan plan;
    std::vector<InstalledPackage> before;  // states of the plan's packages before execution
    std::vector<InstalledPackage> after;   // ... and after (version empty = not installed)
    int exit_status = 0;    // apt's exit status
    std::string log_tail;   // the end of apt's output
    std::optional<int64_t> rolled_back_by;
};

class History {
  public:
    // Opens (creating) $home/history.db. Throws Error(kIo) naming the file when it cannot.
    explicit History(const std::string & home);
    ~History();
    History(const History &) = delete;
    History & operator=(const History &) = delete;

    int64_t record(const HistoryEntry & entry);  // returns the new id
    std::vector<HistoryEntry> list(int limit) const;  // newest first
    std::optional<HistoryEntry> get(int64_t id) const;
    void mark_rolled_back(int64_t id, int64_t by);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The plan that undoes `entry`: packages it installed are removed, packages it removed are
// installed again at their recorded version, upgrades go back to the old version. Throws
// Error(kInvalidArgument) when the entry was not executed successfully or is already rolled back.
Plan rollback_plan(const HistoryEntry & entry);

}  // namespace cortex::interpreter
