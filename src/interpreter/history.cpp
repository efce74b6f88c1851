// The history of executed plans in SQLite ($CORTEX_HOME/history.db), and the plan that rolls one
// back from its recorded package states.
#include "interpreter/history.h"


#include <algorithm>
#include <ctime>
#include <map>
#include <set>

#include "core/file_util.h"
#include "core/sqlite_handle.h"
#include "cortex/error.h"
#include "interpreter/apt_simulation.h"

namespace cortex::interpreter {
namespace {

// The schema this code writes. A database with a higher user_version came from a newer Cortex:
// we refuse it rather than guess at its columns. Migrations from older versions go in open_db().
constexpr int kSchemaVersion = 1;


std::string move_away_hint(const std::string & path) {
    return "move it away (mv " + path + " " + path +
           ".bad) and Cortex starts a new history; the old file is left as is";
}

std::string now_iso8601_utc() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

nlohmann::json states_to_json(const std::vector<InstalledPackage> & states) {
    nlohmann::json out = nlohmann::json::array();
    for (const InstalledPackage & p : states) {
        out.push_back({{"name", p.name}, {"architecture", p.architecture}, {"version", p.version}});
    }
    return out;
}

std::vector<InstalledPackage> states_from_json(const nlohmann::json & j) {
    std::vector<InstalledPackage> out;
    for (const nlohmann::json & p : j) {
        out.push_back({p.at("name").get<std::string>(), p.value("architecture", std::string()),
                       p.value("version", std::string())});
    }
    return out;
}

}  // namespace

struct History::Impl {
    std::string path;
    SqliteDb db;

    // Every SQLite failure becomes Error(kIo) naming the file; "busy" past the timeout is kBusy, and
    // "not a database"/"corrupt" says how to get going again without destroying the old file.
    [[noreturn]] void fail(int rc, const std::string & what) const {
        std::string detail = db ? sqlite3_errmsg(db.get()) : sqlite3_errstr(rc);
        int primary = rc & 0xff;
        if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
            throw Error(ErrorCode::kBusy,
                        "the history database " + path + " is locked by another process (" + what + ")",
                        "another cortex is writing its history; retry when it has finished");
        }
        if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT) {
            throw Error(ErrorCode::kIo,
                        "the history database " + path + " is damaged or not a SQLite database (" + detail + ")",
                        move_away_hint(path));
        }
        if (primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN || primary == SQLITE_PERM ||
            primary == SQLITE_IOERR || primary == SQLITE_FULL) {
            throw Error(ErrorCode::kIo, "cannot " + what + " the history database " + path + ": " + detail,
                        primary == SQLITE_FULL ? "free some disk space and retry"
                                               : "check that the directory exists and is writable, or set CORTEX_HOME");
        }
        throw Error(ErrorCode::kIo, "history database " + path + ": " + what + " failed: " + detail,
                    move_away_hint(path));
    }

    void exec(const char * sql, const std::string & what) {
        int rc = sqlite3_exec(db.get(), sql, nullptr, nullptr, nullptr);
        if (rc != SQLITE_OK) fail(rc, what);
    }

    SqliteStatement prepare(const char * sql) const {
        sqlite3_stmt * s = nullptr;
        int rc = sqlite3_prepare_v2(db.get(), sql, -1, &s, nullptr);
        if (rc != SQLITE_OK) fail(rc, "read");
        return SqliteStatement(s);
    }

    int user_version() const {
        SqliteStatement s = prepare("PRAGMA user_version");
        int rc = sqlite3_step(s.get());
        if (rc != SQLITE_ROW) fail(rc, "read");
        return sqlite3_column_int(s.get(), 0);
    }

    void open_db(const std::string & home) {
        path = home + "/history.db";
        try {
            make_dirs(home, 0700);
        } catch (const Error & e) {
            throw Error(ErrorCode::kIo, "cannot create the history database " + path + ": " + e.message(),
                        "check that " + home + " is a writable directory, or set CORTEX_HOME");
        }
        sqlite3 * raw = nullptr;
        int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                                 nullptr);
        db.reset(raw);  // sqlite3_open_v2 hands out a handle even on failure; it must be closed
        if (rc != SQLITE_OK) fail(rc, "open");
        // SQLite silently falls back to read-only for a write-protected file; say so now rather
        // than after a package was installed and could not be recorded.
        if (sqlite3_db_readonly(db.get(), "main") == 1) {
            throw Error(ErrorCode::kIo, "the history database " + path + " is read-only",
                        "make it writable by this user, or set CORTEX_HOME to a directory of your own");
        }
        // Two cortex processes (an --execute and a `cortex history`) may use the file at once:
        // wait for each other's locks rather than failing with "database is locked".
        sqlite3_busy_timeout(db.get(), 10000);

        // The first read is where a file that is not a database shows itself (SQLITE_NOTADB);
        // nothing has been written yet, so a damaged file is left exactly as it was.
        int version = user_version();
        if (version > kSchemaVersion) {
            throw Error(ErrorCode::kIo,
                        "the history database " + path + " has schema version " + std::to_string(version) +
                            ", newer than this Cortex understands (" + std::to_string(kSchemaVersion) + ")",
                        "use the newer Cortex that wrote it, or " + move_away_hint(path));
        }

        // WAL lets readers go on while a writer commits. It cannot be used everywhere (e.g. some
        // network file systems); the rollback journal plus the busy timeout is then good enough.
        sqlite3_exec(db.get(), "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);

        if (version < kSchemaVersion) {
            // IMMEDIATE takes the write lock first, so two processes creating the schema at the
            // same time serialize; the version is read again inside the transaction for that reason.
            exec("BEGIN IMMEDIATE", "write");
            try {
                if (user_version() < 1) {
                    // IF NOT EXISTS: never replace a table that holds someone's history.
                    exec(
                        "CREATE TABLE IF NOT EXISTS executions ("
                        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                        " time TEXT NOT NULL,"
                        " command TEXT NOT NULL,"
                        " plan TEXT NOT NULL,"
                        " before_state TEXT NOT NULL,"
                        " after_state TEXT NOT NULL,"
                        " exit_status INTEGER NOT NULL,"
                        " log_tail TEXT NOT NULL,"
                        " rolled_back_by INTEGER)",
                        "create");
                    exec("PRAGMA user_version = 1", "write");
                }
                exec("COMMIT", "write");
            } catch (...) {
                sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
                throw;
            }
        }
    }

    HistoryEntry row_to_entry(sqlite3_stmt * s) const {
        HistoryEntry e;
        e.id = sqlite3_column_int64(s, 0);
        auto text = [&](int col) {
            const unsigned char * t = sqlite3_column_text(s, col);
            return t ? std::string(reinterpret_cast<const char *>(t)) : std::string();
        };
        e.time = text(1);
        e.command = text(2);
        try {
            e.plan = Plan::from_json(nlohmann::json::parse(text(3)));
            e.before = states_from_json(nlohmann::json::parse(text(4)));
            e.after = states_from_json(nlohmann::json::parse(text(5)));
        } catch (const std::exception & ex) {
            throw Error(ErrorCode::kIo,
                        "history entry " + std::to_string(e.id) + " in " + path + " is damaged: " + ex.what(),
                        move_away_hint(path));
        }
        e.exit_status = sqlite3_column_int(s, 6);
        e.log_tail = text(7);
        if (sqlite3_column_type(s, 8) != SQLITE_NULL) e.rolled_back_by = sqlite3_column_int64(s, 8);
        return e;
    }
};

static const char * kSelectColumns =
    "SELECT id, time, command, plan, before_state, after_state, exit_status, log_tail, rolled_back_by "
    "FROM executions ";

History::History(const std::string & home) : impl_(std::make_unique<Impl>()) {
    impl_->open_db(home);
}

History::~History() = default;

int64_t History::record(const HistoryEntry & entry) {
    // RETURNING gives this statement's id even when another thread uses the same connection.
    SqliteStatement s = impl_->prepare(
        "INSERT INTO executions (time, command, plan, before_state, after_state, exit_status, log_tail, "
        "rolled_back_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id");
    std::string time = entry.time.empty() ? now_iso8601_utc() : entry.time;
    std::string plan = entry.plan.to_json().dump();
    std::string before = states_to_json(entry.before).dump();
    std::string after = states_to_json(entry.after).dump();
    sqlite3_bind_text(s.get(), 1, time.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 2, entry.command.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 3, plan.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 4, before.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 5, after.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s.get(), 6, entry.exit_status);
    sqlite3_bind_text(s.get(), 7, entry.log_tail.c_str(), -1, SQLITE_TRANSIENT);
    if (entry.rolled_back_by) {
        sqlite3_bind_int64(s.get(), 8, *entry.rolled_back_by);
    } else {
        sqlite3_bind_null(s.get(), 8);
    }
    int rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW) impl_->fail(rc, "write");
    int64_t id = sqlite3_column_int64(s.get(), 0);
    rc = sqlite3_step(s.get());
    if (rc != SQLITE_DONE) impl_->fail(rc, "write");
    return id;
}

std::vector<HistoryEntry> History::list(int limit) const {
    SqliteStatement s = impl_->prepare((std::string(kSelectColumns) + "ORDER BY id DESC LIMIT ?").c_str());
    sqlite3_bind_int(s.get(), 1, limit > 0 ? limit : -1);  // LIMIT -1: no limit
    std::vector<HistoryEntry> out;
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(impl_->row_to_entry(s.get()));
    if (rc != SQLITE_DONE) impl_->fail(rc, "read");
    return out;
}

std::optional<HistoryEntry> History::get(int64_t id) const {
    SqliteStatement s = impl_->prepare((std::string(kSelectColumns) + "WHERE id = ?").c_str());
    sqlite3_bind_int64(s.get(), 1, id);
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) impl_->fail(rc, "read");
    return impl_->row_to_entry(s.get());
}

void History::mark_rolled_back(int64_t id, int64_t by) {
    // Only an entry not rolled back yet: two rollbacks of one entry racing each other must not
    // both succeed silently.
    SqliteStatement s = impl_->prepare("UPDATE executions SET rolled_back_by = ? WHERE id = ? AND rolled_back_by IS NULL");
    sqlite3_bind_int64(s.get(), 1, by);
    sqlite3_bind_int64(s.get(), 2, id);
    int rc = sqlite3_step(s.get());
    if (rc != SQLITE_DONE) impl_->fail(rc, "write");
    if (sqlite3_changes(impl_->db.get()) == 1) return;
    std::optional<HistoryEntry> e = get(id);
    if (!e) {
        throw Error(ErrorCode::kNotFound, "no history entry " + std::to_string(id),
                    "`cortex history` lists the recorded entries");
    }
    throw Error(ErrorCode::kInvalidArgument,
                "history entry " + std::to_string(id) + " was already rolled back by entry " +
                    std::to_string(*e->rolled_back_by),
                "`cortex history show " + std::to_string(*e->rolled_back_by) + "` shows that rollback");
}

namespace {

// One package's state change in a recorded execution; the key is name plus architecture so that a
// multi-arch package installed for two architectures is two rows.
struct StateChange {
    std::string name;
    std::string architecture;
    std::string before;  // empty: not installed
    std::string after;
};

std::vector<StateChange> state_changes(const HistoryEntry & entry) {
    std::map<std::pair<std::string, std::string>, StateChange> by_key;
    std::vector<std::pair<std::string, std::string>> order;
    auto slot = [&](const InstalledPackage & p) -> StateChange & {
        auto key = std::make_pair(p.name, p.architecture);
        auto it = by_key.find(key);
        if (it == by_key.end()) {
            order.push_back(key);
            it = by_key.emplace(key, StateChange{p.name, p.architecture, "", ""}).first;
        }
        return it->second;
    };
    for (const InstalledPackage & p : entry.before) slot(p).before = p.version;
    for (const InstalledPackage & p : entry.after) slot(p).after = p.version;
    // An absent package may be recorded with an empty architecture on one side and the real one on
    // the other; fold such a row into the row of the same name that has an architecture.
    std::vector<StateChange> out;
    std::set<std::string> names_with_arch;
    for (const auto & key : order) {
        if (!key.second.empty()) names_with_arch.insert(key.first);
    }
    for (const auto & key : order) {
        const StateChange & c = by_key[key];
        if (key.second.empty() && names_with_arch.count(key.first) && c.before.empty() && c.after.empty()) continue;
        if (c.before != c.after) out.push_back(c);
    }
    // Keep the order in which names were first recorded, whichever of their rows survived.
    std::map<std::string, size_t> first_seen;
    for (const auto & key : order) first_seen.emplace(key.first, first_seen.size());
    std::stable_sort(out.begin(), out.end(), [&](const StateChange & a, const StateChange & b) {
        return first_seen[a.name] < first_seen[b.name];
    });
    return out;
}

}  // namespace

Plan rollback_plan(const HistoryEntry & entry) {
    const std::string id = std::to_string(entry.id);
    if (entry.rolled_back_by) {
        throw Error(
            ErrorCode::kInvalidArgument,
            "history entry " + id + " was already rolled back by entry " + std::to_string(*entry.rolled_back_by),
            "to redo it, roll back entry " + std::to_string(*entry.rolled_back_by) + " instead");
    }
    std::vector<StateChange> changes = state_changes(entry);
    if (changes.empty()) {
        if (entry.exit_status != 0) {
            throw Error(ErrorCode::kInvalidArgument,
                        "history entry " + id + " failed (apt exit status " + std::to_string(entry.exit_status) +
                            ") and changed no package",
                        "there is nothing to roll back; `cortex history show " + id + "` shows apt's output");
        }
        throw Error(ErrorCode::kInvalidArgument, "history entry " + id + " changed no package",
                    "there is nothing to roll back; `cortex history show " + id + "` shows what it did");
    }

    // A name installed for two architectures needs ":arch" to say which one.
    std::map<std::string, int> arch_count;
    for (const StateChange & c : changes) arch_count[c.name]++;
    auto apt_name = [&](const StateChange & c) {
        return arch_count[c.name] > 1 && !c.architecture.empty() ? c.name + ":" + c.architecture : c.name;
    };

    Plan plan;
    plan.request = "rollback " + id;
    plan.chosen_by = "history";
    plan.reason = "undoes history entry " + id + (entry.command.empty() ? "" : " (" + entry.command + ")") +
                  " from the package states recorded before and after it";
    std::vector<std::string> to_remove;
    std::vector<std::string> to_install;  // "name=oldversion"
    for (const StateChange & c : changes) {
        PackageChange pc;
        pc.name = c.name;
        pc.architecture = c.architecture;
        pc.old_version = c.after;  // the state now is the state after the entry
        pc.new_version = c.before;
        pc.requested = true;
        if (c.before.empty()) {
            pc.kind = PackageChange::Kind::kRemove;
            to_remove.push_back(apt_name(c));
        } else {
            // Absent -> reinstall; present at another version -> go back to the old one. Which of
            // the two versions is newer is for apt to decide; the label only guides the display.
            pc.kind = c.after.empty() ? PackageChange::Kind::kInstall : PackageChange::Kind::kDowngrade;
            to_install.push_back(apt_name(c) + "=" + c.before);
        }
        plan.changes.push_back(pc);
    }
    // Removals first: a package the entry installed may depend on a library it upgraded, and
    // going back to the old library first would need apt to remove it, which install refuses.
    if (!to_remove.empty()) plan.commands.push_back(apt_command(Operation::kRemove, to_remove));
    if (!to_install.empty()) plan.commands.push_back(apt_command(Operation::kInstall, to_install));
    plan.operation = to_remove.empty() ? Operation::kInstall : Operation::kRemove;
    plan.packages = to_remove.empty() ? to_install : to_remove;
    if (!to_remove.empty() && !to_install.empty()) {
        std::string list;
        for (const std::string & p : to_install) list += (list.empty() ? "" : " ") + p;
        plan.notes.push_back("after the removal, installs the old versions again: " + list);
    }
    if (!to_install.empty()) {
        plan.notes.push_back(
            "old versions come from the package index; one that is no longer there cannot be installed again");
    }
    if (entry.exit_status != 0) {
        plan.notes.push_back("entry " + id + " failed part-way (apt exit status " + std::to_string(entry.exit_status) +
                             "); this undoes the changes it made before failing");
    }
    return plan;
}

}  // namespace cortex::interpreter
