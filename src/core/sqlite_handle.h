// RAII for SQLite handles: the connection and its prepared statements.
#pragma once

#include <sqlite3.h>

#include <memory>

namespace cortex {

struct SqliteClose {
    // _v2: a statement still alive (a bug elsewhere) defers the close instead of failing it.
    void operator()(sqlite3 * db) const { sqlite3_close_v2(db); }
};
struct SqliteFinalize {
    void operator()(sqlite3_stmt * s) const { sqlite3_finalize(s); }
};
using SqliteDb = std::unique_ptr<sqlite3, SqliteClose>;
using SqliteStatement = std::unique_ptr<sqlite3_stmt, SqliteFinalize>;

}  // namespace cortex
