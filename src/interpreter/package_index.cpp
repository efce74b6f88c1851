#include "interpreter/package_index.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "core/file_util.h"
#include "core/sqlite_handle.h"
#include "core/string_util.h"
#include "core/subprocess.h"
#include "cortex/error.h"
#include "cortex/llm.h"
#include "interpreter/apt_metadata.h"
#include "interpreter/deb822.h"
#include "interpreter/plan.h"

namespace cortex::interpreter {

// Bump when the tables change: an old cache is then rebuilt instead of misread.
static constexpr const char * kSchema = "cortex-apt-index-8";

// ---- Debian version order (Debian policy 5.6.12) ----

static int order(char c) {
    if (isdigit(static_cast<unsigned char>(c))) return 0;
    if (isalpha(static_cast<unsigned char>(c))) return c;
    if (c == '~') return -1;
    if (c) return c + 256;
    return 0;
}

static int compare_fragment(std::string_view a, std::string_view b) {
    size_t i = 0, j = 0;
    while (i < a.size() || j < b.size()) {
        int first_diff = 0;
        while ((i < a.size() && !isdigit(static_cast<unsigned char>(a[i]))) ||
               (j < b.size() && !isdigit(static_cast<unsigned char>(b[j])))) {
            int ac = i < a.size() ? order(a[i]) : 0;
            int bc = j < b.size() ? order(b[j]) : 0;
            if (ac != bc) return ac - bc;
            ++i, ++j;
        }
        while (i < a.size() && a[i] == '0') ++i;
        while (j < b.size() && b[j] == '0') ++j;
        while (i < a.size() && isdigit(static_cast<unsigned char>(a[i])) && j < b.size() &&
               isdigit(static_cast<unsigned char>(b[j]))) {
            if (!first_diff) first_diff = a[i] - b[j];
            ++i, ++j;
        }
        if (i < a.size() && isdigit(static_cast<unsigned char>(a[i]))) return 1;
        if (j < b.size() && isdigit(static_cast<unsigned char>(b[j]))) return -1;
        if (first_diff) return first_diff;
    }
    return 0;
}

int compare_debian_versions(std::string_view a, std::string_view b) {
    auto split = [](std::string_view v, long & epoch, std::string_view & upstream, std::string_view & revision) {
        epoch = 0;
        if (size_t colon = v.find(':'); colon != std::string_view::npos) {
            epoch = std::strtol(std::string(v.substr(0, colon)).c_str(), nullptr, 10);
            v.remove_prefix(colon + 1);
        }
        size_t dash = v.rfind('-');
        upstream = dash == std::string_view::npos ? v : v.substr(0, dash);
        revision = dash == std::string_view::npos ? std::string_view() : v.substr(dash + 1);
    };
    long ea, eb;
    std::string_view ua, ub, ra, rb;
    split(a, ea, ua, ra);
    split(b, eb, ub, rb);
    if (ea != eb) return ea < eb ? -1 : 1;
    if (int c = compare_fragment(ua, ub)) return c;
    return compare_fragment(ra, rb);
}

// ---- SQLite helpers ----

static Error db_error(sqlite3 * db, const std::string & path, const std::string & what) {
    return Error(ErrorCode::kIo, what + " in the package index cache " + path + ": " + sqlite3_errmsg(db),
                 "delete " + path + "; Cortex rebuilds it from apt's lists");
}

static void exec(sqlite3 * db, const std::string & path, const char * sql) {
    char * msg = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
        std::string m = msg ? msg : "unknown error";
        sqlite3_free(msg);
        throw Error(ErrorCode::kIo, "SQLite failed in the package index cache " + path + ": " + m,
                    "delete " + path + "; Cortex rebuilds it from apt's lists");
    }
}

static SqliteStatement prepare(sqlite3 * db, const std::string & path, const char * sql) {
    sqlite3_stmt * s = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) throw db_error(db, path, "a query failed");
    return SqliteStatement(s);
}

static std::string column_text(sqlite3_stmt * s, int i) {
    const unsigned char * t = sqlite3_column_text(s, i);
    return t ? reinterpret_cast<const char *>(t) : "";
}

// ---- apt's lists ----

static std::string native_architecture() {
    ProcessResult r = run_process({"dpkg", "--print-architecture"});
    std::string arch = trim(r.output);
    if (r.exit_status != 0 || arch.empty()) {
        throw Error(ErrorCode::kIo, "dpkg --print-architecture failed", "Cortex needs a Debian system with dpkg");
    }
    return arch;
}

// apt keeps one Packages file per source, suite, component and architecture in its lists
// directory, compressed as apt chose. Reading the directory costs microseconds where
// `apt-get indextargets` costs most of a second.
static std::vector<std::string> apt_package_lists(const std::string & dir) {
    std::vector<std::string> lists;
    if (DIR * d = opendir(dir.c_str())) {
        while (dirent * e = readdir(d)) {
            std::string_view name = e->d_name;
            size_t at = name.find("_Packages");
            if (at == std::string_view::npos || name.find(".diff") != std::string_view::npos) continue;
            std::string_view ext = name.substr(at + 9);
            if (ext.empty() || ext == ".lz4" || ext == ".xz" || ext == ".gz" || ext == ".zst" || ext == ".bz2") {
                lists.push_back(dir + "/" + std::string(name));
            }
        }
        closedir(d);
    }
    std::sort(lists.begin(), lists.end());
    if (lists.empty()) {
        throw Error(ErrorCode::kNotFound, "apt has no package lists in " + dir,
                    "run `sudo apt-get update` to download them");
    }
    return lists;
}

static std::string read_list(const std::string & path) {
    std::string text;
    const bool compressed = !path.ends_with("Packages") && path.rfind('.') > path.rfind('/');
    if (compressed) {
        // apt's own helper knows every compression apt uses.
        ProcessResult r = run_process({"/usr/lib/apt/apt-helper", "cat-file", path});
        if (r.exit_status != 0)
            throw Error(ErrorCode::kIo, "cannot read apt list " + path, "run `sudo apt-get update`");
        return std::move(r.output);
    }
    if (!read_file(path, text))
        throw Error(ErrorCode::kNotFound, "package list " + path + " does not exist", "run `sudo apt-get update`");
    return text;
}

// The releases a list belongs to: the Suite and Codename of the Release file beside it
// ("deb.debian.org_debian_dists_bookworm_InRelease" for "..._dists_bookworm_main_binary-amd64_
// Packages.lz4"), as `apt-get install pkg/RELEASE` accepts either. Empty when there is none.
static std::vector<std::string> list_releases(const std::string & list) {
    const size_t slash = list.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : list.substr(0, slash);
    const std::string name = list.substr(slash == std::string::npos ? 0 : slash + 1);
    std::vector<std::string> out;
    for (const char * release_file : {"InRelease", "Release"}) {
        // The list's name minus its "<component>_binary-<arch>_Packages" tail is the release's prefix.
        for (size_t cut = name.rfind('_'); cut != std::string::npos && cut > 0; cut = name.rfind('_', cut - 1)) {
            std::string text;
            if (!read_file(dir + "/" + name.substr(0, cut + 1) + release_file, text)) continue;
            size_t pos = 0;
            while (pos < text.size()) {
                size_t end = text.find('\n', pos);
                if (end == std::string::npos) end = text.size();
                std::string_view line(text.data() + pos, end - pos);
                if (line.empty() && !out.empty()) break;  // the end of the Release header
                for (std::string_view field : {"Suite: ", "Codename: "}) {
                    if (line.starts_with(field)) {
                        std::string value = trim(std::string(line.substr(field.size())));
                        if (!value.empty() && std::find(out.begin(), out.end(), value) == out.end())
                            out.push_back(value);
                    }
                }
                pos = end + 1;
            }
            return out;
        }
    }
    return out;
}

// The package names a relationship field names ("a (>= 1) | b, c:any" -> a, b, c).
static void for_each_related_name(std::string_view field, const std::function<void(std::string_view)> & on_name) {
    size_t pos = 0;
    while (pos < field.size()) {
        size_t end = field.find_first_of(",|", pos);
        if (end == std::string_view::npos) end = field.size();
        std::string_view item = field.substr(pos, end - pos);
        const size_t b = item.find_first_not_of(" \t\n");
        if (b != std::string_view::npos) {
            item.remove_prefix(b);
            item = item.substr(0, item.find_first_of(" \t\n(:["));
            if (!item.empty()) on_name(item);
        }
        pos = end + 1;
    }
}

static std::string cache_key(const std::vector<std::string> & lists, const std::string & arch) {
    std::string key = std::string(kSchema) + " " + arch;
    for (const std::string & path : lists) {
        struct stat st {};
        if (stat(path.c_str(), &st) != 0) continue;
        key += "\n" + path + " " + std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
               std::to_string(st.st_mtim.tv_nsec);
    }
    return key;
}

// ---- the index ----

struct PackageIndex::Impl {
    SqliteDb db;
    std::string path;
    std::string arch;
    bool rebuilt = false;
    double build_ms = 0;
    size_t size = 0;
    std::unordered_map<std::string, std::string> installed;  // name -> version
    mutable std::vector<std::string> names;                  // loaded on first typo search

    PackageRecord record_from_row(sqlite3_stmt * s) const {
        PackageRecord r;
        r.name = column_text(s, 0);
        r.version = column_text(s, 1);
        r.architecture = column_text(s, 2);
        r.section = column_text(s, 3);
        r.priority = column_text(s, 4);
        r.summary = column_text(s, 5);
        r.download_bytes = static_cast<uint64_t>(sqlite3_column_int64(s, 6));
        r.installed_bytes = static_cast<uint64_t>(sqlite3_column_int64(s, 7));
        r.essential = sqlite3_column_int(s, 8) != 0;
        r.tags = column_text(s, 9);
        r.reverse_dependencies = sqlite3_column_int(s, 10);
        r.appstream = column_text(s, 11);
        if (auto it = installed.find(r.name); it != installed.end()) r.installed_version = it->second;
        return r;
    }
};

static constexpr const char * kRecordColumns =
    "p.name, p.version, p.arch, p.section, p.priority, p.summary, p.size, p.isize, p.essential, p.tags, p.rdeps, "
    "p.appstream";
static constexpr int kRecordColumnCount = 12;

static void build_cache(const std::string & path, const std::vector<std::string> & lists, const std::string & arch,
                        const std::string & key, const std::vector<std::string> & appstream,
                        const std::vector<std::string> & translations) {
    const std::string tmp = path + ".tmp." + std::to_string(getpid());
    unlink(tmp.c_str());
    sqlite3 * raw = nullptr;
    if (sqlite3_open(tmp.c_str(), &raw) != SQLITE_OK) {
        SqliteDb guard(raw);
        throw db_error(raw, tmp, "cannot create the cache");
    }
    SqliteDb db(raw);
    exec(db.get(), tmp,
         "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN;"
         "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
         "CREATE TABLE packages(id INTEGER PRIMARY KEY, name TEXT, version TEXT, arch TEXT, section TEXT,"
         " priority TEXT, summary TEXT, size INTEGER, isize INTEGER, essential INTEGER, best INTEGER,"
         " tags TEXT, rdeps INTEGER, releases TEXT, appstream TEXT);"
         "CREATE TABLE tags(tag TEXT, id INTEGER, rdeps INTEGER);"
         "CREATE TABLE provides(virtual TEXT, id INTEGER);"
         "CREATE VIRTUAL TABLE fts USING fts5(name, summary, description, content='', tokenize='porter unicode61');");
    SqliteStatement insert =
        prepare(db.get(), tmp,
                "INSERT INTO packages(name, version, arch, section, priority, summary, size, isize, "
                "essential, best, tags, rdeps, releases) VALUES(?,?,?,?,?,?,?,?,?,0,?,0,?)");
    struct Best {
        int64_t id;
        std::string version;
        std::string summary;
        std::string description;
        std::string tags;
        std::string section;
        std::vector<std::string> provides;
        std::vector<std::string> related;  // the names its Depends, Recommends, Suggests name
    };
    std::unordered_map<std::string, Best> best;
    // The security and updates lists carry no Tag fields: a newer version there keeps the tags
    // of the version in the main list.
    std::unordered_map<std::string, std::string> tags_of;
    for (const std::string & list : lists) {
        const std::string text = read_list(list);
        std::string releases;
        for (const std::string & r : list_releases(list)) releases += (releases.empty() ? "" : " ") + r;
        for_each_deb822_record(text, [&](const Deb822Record & r) {
            std::string_view name = r.get("Package"), version = r.get("Version"), a = r.get("Architecture");
            if (name.empty() || version.empty() || (a != arch && a != "all")) return;
            std::string_view description = r.get("Description");
            std::string_view summary = description.substr(0, description.find('\n'));
            std::string tags(r.get("Tag"));
            for (char & c : tags) c = c == '\n' ? ' ' : c;
            auto bind = [&](int i, std::string_view v) {
                sqlite3_bind_text(insert.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
            };
            bind(1, name);
            bind(2, version);
            bind(3, a);
            bind(4, r.get("Section"));
            bind(5, r.get("Priority"));
            bind(6, summary);
            sqlite3_bind_int64(insert.get(), 7, std::strtoll(std::string(r.get("Size")).c_str(), nullptr, 10));
            sqlite3_bind_int64(insert.get(), 8,
                               1024 * std::strtoll(std::string(r.get("Installed-Size")).c_str(), nullptr, 10));
            sqlite3_bind_int(insert.get(), 9, r.get("Essential") == "yes");
            bind(10, tags);
            bind(11, releases);
            if (!tags.empty()) tags_of[std::string(name)] = tags;
            if (sqlite3_step(insert.get()) != SQLITE_DONE) throw db_error(db.get(), tmp, "an insert failed");
            sqlite3_reset(insert.get());
            const int64_t id = sqlite3_last_insert_rowid(db.get());
            auto [it, fresh] = best.try_emplace(std::string(name));
            if (fresh || compare_debian_versions(version, it->second.version) > 0) {
                Best & b = it->second;
                b = {id,
                     std::string(version),
                     std::string(summary),
                     std::string(description.substr(std::min(description.size(), summary.size()))),
                     std::move(tags),
                     std::string(r.get("Section")),
                     {},
                     {}};
                for_each_related_name(r.get("Provides"), [&](std::string_view v) { b.provides.emplace_back(v); });
                for (const char * field : {"Depends", "Pre-Depends", "Recommends", "Suggests"}) {
                    for_each_related_name(r.get(field), [&](std::string_view v) {
                        if (v != name) b.related.emplace_back(v);
                    });
                }
            }
        });
    }
    // How many packages point at each name: the archive's own measure of how central a package is,
    // the nearest thing to popularity that apt's lists hold.
    // A dependency on a virtual package ("mail-transport-agent", "java-runtime") counts for each
    // package that provides it.
    std::unordered_map<std::string, std::vector<std::string>> providers;
    for (const auto & [name, b] : best) {
        for (const std::string & v : b.provides) providers[v].push_back(name);
    }
    std::unordered_map<std::string, int> pointed_at;
    for (auto & [name, b] : best) {
        std::sort(b.related.begin(), b.related.end());
        b.related.erase(std::unique(b.related.begin(), b.related.end()), b.related.end());
        std::set<std::string> targets(b.related.begin(), b.related.end());
        for (const std::string & target : b.related) {
            if (auto it = providers.find(target); it != providers.end())
                targets.insert(it->second.begin(), it->second.end());
        }
        targets.erase(name);
        // Tasks and metapackages ("task-gnome-desktop", "kde-standard") are the archive's own
        // choice of what a system should have: their word counts five times.
        const bool curated = name.starts_with("task-") || b.section.ends_with("metapackages") ||
                             b.tags.find("role::metapackage") != std::string::npos;
        for (const std::string & target : targets) pointed_at[target] += curated ? 5 : 1;
        b.related.clear();
    }
    for (auto & [name, b] : best) {
        if (auto t = tags_of.find(name); b.tags.empty() && t != tags_of.end()) b.tags = t->second;
    }
    // What software centres search (AppStream) and full descriptions, where apt has them.
    std::map<std::string, std::string> appstream_of, long_description_of;
    for (const std::string & file : appstream) read_appstream(read_list(file), appstream_of);
    for (const std::string & file : translations) read_translations(read_list(file), long_description_of);
    SqliteStatement mark =
        prepare(db.get(), tmp, "UPDATE packages SET best = 1, rdeps = ?, tags = ?, appstream = ? WHERE id = ?");
    SqliteStatement fts = prepare(db.get(), tmp, "INSERT INTO fts(rowid, name, summary, description) VALUES(?,?,?,?)");
    SqliteStatement tag = prepare(db.get(), tmp, "INSERT INTO tags(tag, id, rdeps) VALUES(?,?,?)");
    SqliteStatement provide = prepare(db.get(), tmp, "INSERT INTO provides(virtual, id) VALUES(?,?)");
    auto step = [&](SqliteStatement & st) {
        if (sqlite3_step(st.get()) != SQLITE_DONE) throw db_error(db.get(), tmp, "an insert failed");
        sqlite3_reset(st.get());
    };
    for (const auto & [name, b] : best) {
        auto rd = pointed_at.find(name);
        sqlite3_bind_int(mark.get(), 1, rd == pointed_at.end() ? 0 : rd->second);
        sqlite3_bind_text(mark.get(), 2, b.tags.c_str(), -1, SQLITE_TRANSIENT);
        const auto as = appstream_of.find(name);
        const std::string app = as == appstream_of.end() ? "" : as->second;
        sqlite3_bind_text(mark.get(), 3, app.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(mark.get(), 4, b.id);
        step(mark);
        std::string description = b.description;
        if (auto ld = long_description_of.find(name); description.empty() && ld != long_description_of.end())
            description = ld->second;
        if (!app.empty()) description += "\n" + app;
        // The tokenizer splits names at '-' and '.', so the words of a name ("dev" of
        // python3-dev, "compose" of docker-compose) match like description words.
        sqlite3_bind_int64(fts.get(), 1, b.id);
        sqlite3_bind_text(fts.get(), 2, name.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(fts.get(), 3, b.summary.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(fts.get(), 4, description.c_str(), -1, SQLITE_TRANSIENT);
        step(fts);
        size_t pos = 0;
        while (pos < b.tags.size()) {
            size_t end = b.tags.find(',', pos);
            if (end == std::string::npos) end = b.tags.size();
            const std::string t = trim(b.tags.substr(pos, end - pos));
            if (!t.empty()) {
                sqlite3_bind_text(tag.get(), 1, t.c_str(), -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(tag.get(), 2, b.id);
                sqlite3_bind_int(tag.get(), 3, rd == pointed_at.end() ? 0 : rd->second);
                step(tag);
            }
            pos = end + 1;
        }
        for (const std::string & v : b.provides) {
            sqlite3_bind_text(provide.get(), 1, v.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(provide.get(), 2, b.id);
            step(provide);
        }
    }
    exec(db.get(), tmp,
         "CREATE INDEX packages_name ON packages(name, best);"
         "CREATE INDEX tags_by_rdeps ON tags(tag, rdeps DESC);"
         "CREATE UNIQUE INDEX tags_tag_id ON tags(tag, id);"
         "CREATE INDEX provides_virtual ON provides(virtual);");
    SqliteStatement meta = prepare(db.get(), tmp, "INSERT INTO meta(key, value) VALUES('key', ?), ('count', ?)");
    sqlite3_bind_text(meta.get(), 1, key.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(meta.get(), 2, static_cast<int64_t>(best.size()));
    if (sqlite3_step(meta.get()) != SQLITE_DONE) throw db_error(db.get(), tmp, "an insert failed");
    exec(db.get(), tmp, "COMMIT;");
    insert.reset();
    mark.reset();
    fts.reset();
    tag.reset();
    provide.reset();
    meta.reset();
    db.reset();
    // Readers see the old cache or the new one, never half of one.
    if (rename(tmp.c_str(), path.c_str()) != 0) {
        unlink(tmp.c_str());
        throw Error(ErrorCode::kIo, "cannot write the package index cache " + path,
                    "check the permissions of its directory");
    }
}

static SqliteDb open_readonly(const std::string & path) {
    sqlite3 * raw = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
    SqliteDb db(raw);
    if (rc != SQLITE_OK) return nullptr;
    return db;
}

static std::string stored_key(sqlite3 * db, size_t * count) {
    sqlite3_stmt * raw = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT key, value FROM meta", -1, &raw, nullptr) != SQLITE_OK) return "";
    SqliteStatement s(raw);
    std::string key;
    while (sqlite3_step(s.get()) == SQLITE_ROW) {
        std::string k = column_text(s.get(), 0);
        if (k == "key") key = column_text(s.get(), 1);
        if (k == "count") *count = static_cast<size_t>(sqlite3_column_int64(s.get(), 1));
    }
    return key;
}

std::unique_ptr<PackageIndex> PackageIndex::open(const IndexOptions & options) {
    auto impl = std::make_unique<Impl>();
    impl->arch = options.architecture.empty() ? native_architecture() : options.architecture;
    const std::vector<std::string> lists =
        options.package_lists.empty() ? apt_package_lists(options.lists_dir) : options.package_lists;
    const std::string dir = options.cache_dir.empty() ? llm::cortex_home() + "/cache" : options.cache_dir;
    make_dirs(dir);
    impl->path = dir + "/apt-index.db";
    std::vector<std::string> appstream = options.appstream_files, translations = options.translation_files;
    if (options.package_lists.empty()) {
        appstream = appstream_files(options.lists_dir, impl->arch);
        translations = translation_files(options.lists_dir);
    }
    std::vector<std::string> sources = lists;
    sources.insert(sources.end(), appstream.begin(), appstream.end());
    sources.insert(sources.end(), translations.begin(), translations.end());
    const std::string key = cache_key(sources, impl->arch);

    impl->db = open_readonly(impl->path);
    if (!impl->db || stored_key(impl->db.get(), &impl->size) != key) {
        impl->db.reset();
        const auto start = std::chrono::steady_clock::now();
        build_cache(impl->path, lists, impl->arch, key, appstream, translations);
        impl->build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        impl->rebuilt = true;
        impl->db = open_readonly(impl->path);
        if (!impl->db || stored_key(impl->db.get(), &impl->size) != key) {
            throw Error(ErrorCode::kIo, "cannot read the package index cache " + impl->path + " just built",
                        "delete it and try again; check free disk space");
        }
    }
    for (const InstalledPackage & p : read_installed_packages(options.dpkg_status)) {
        if (p.architecture == impl->arch || p.architecture == "all") impl->installed[p.name] = p.version;
    }
    return std::unique_ptr<PackageIndex>(new PackageIndex(std::move(impl)));
}

PackageIndex::PackageIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PackageIndex::~PackageIndex() = default;

size_t PackageIndex::size() const {
    return impl_->size;
}
bool PackageIndex::rebuilt() const {
    return impl_->rebuilt;
}
double PackageIndex::build_ms() const {
    return impl_->build_ms;
}
const std::string & PackageIndex::path() const {
    return impl_->path;
}
const std::string & PackageIndex::architecture() const {
    return impl_->arch;
}

std::optional<PackageRecord> PackageIndex::find(std::string_view name) const {
    static const std::string sql =
        std::string("SELECT ") + kRecordColumns + " FROM packages p WHERE p.name = ? AND p.best = 1";
    SqliteStatement s = prepare(impl_->db.get(), impl_->path, sql.c_str());
    sqlite3_bind_text(s.get(), 1, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
    return impl_->record_from_row(s.get());
}

std::optional<PackageRecord> PackageIndex::find_version(std::string_view name, std::string_view version) const {
    static const std::string sql =
        std::string("SELECT ") + kRecordColumns + " FROM packages p WHERE p.name = ? AND p.version = ?";
    SqliteStatement s = prepare(impl_->db.get(), impl_->path, sql.c_str());
    sqlite3_bind_text(s.get(), 1, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 2, version.data(), static_cast<int>(version.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
    return impl_->record_from_row(s.get());
}

// Optimal string alignment distance (Levenshtein plus adjacent transpositions: "ngnix"),
// giving up early beyond `limit`.
static int edit_distance(std::string_view a, std::string_view b, int limit) {
    const int n = static_cast<int>(a.size()), m = static_cast<int>(b.size());
    if (std::abs(n - m) > limit) return limit + 1;
    std::vector<int> prev2(m + 1), prev(m + 1), cur(m + 1);
    for (int j = 0; j <= m; ++j) prev[j] = j;
    for (int i = 1; i <= n; ++i) {
        cur[0] = i;
        int row_min = cur[0];
        for (int j = 1; j <= m; ++j) {
            const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                cur[j] = std::min(cur[j], prev2[j - 2] + 1);
            row_min = std::min(row_min, cur[j]);
        }
        if (row_min > limit) return limit + 1;
        std::swap(prev2, prev);
        std::swap(prev, cur);
    }
    return prev[m];
}

std::vector<std::string> PackageIndex::similar_names(std::string_view word, int max_distance) const {
    if (impl_->names.empty()) {
        SqliteStatement s = prepare(impl_->db.get(), impl_->path, "SELECT name FROM packages WHERE best = 1");
        while (sqlite3_step(s.get()) == SQLITE_ROW) impl_->names.push_back(column_text(s.get(), 0));
    }
    std::vector<std::pair<int, const std::string *>> found;
    for (const std::string & name : impl_->names) {
        int d = edit_distance(word, name, max_distance);
        if (d <= max_distance && d > 0) found.emplace_back(d, &name);
    }
    std::sort(found.begin(), found.end(), [](const auto & x, const auto & y) {
        if (x.first != y.first) return x.first < y.first;
        if (x.second->size() != y.second->size()) return x.second->size() < y.second->size();
        return *x.second < *y.second;
    });
    std::vector<std::string> out;
    for (const auto & f : found) out.push_back(*f.second);
    return out;
}

// Words of a query as FTS5 terms: lower case, letters and digits only (FTS5 syntax characters
// such as '"', '*', ':' or '^' can never reach the MATCH expression).
static std::vector<std::string> query_terms(std::string_view query) {
    std::vector<std::string> terms;
    std::string cur;
    for (char c : query) {
        unsigned char u = static_cast<unsigned char>(c);
        if (isalnum(u)) {
            cur += static_cast<char>(tolower(u));
        } else if (!cur.empty()) {
            terms.push_back(std::move(cur));
            cur.clear();
        }
    }
    if (!cur.empty()) terms.push_back(std::move(cur));
    return terms;
}

std::vector<SearchHit> PackageIndex::search(std::string_view query, int limit) const {
    std::vector<SearchHit> hits;
    auto seen = [&](const std::string & name) {
        return std::any_of(hits.begin(), hits.end(), [&](const SearchHit & h) { return h.package.name == name; });
    };
    const std::string q = to_lower(trim(std::string(query)));
    if (q.empty() || limit <= 0) return hits;
    if (auto exact = find(q)) hits.push_back({*exact, 1000, "exact name"});
    // A single word that is no package is most likely a typo of one.
    if (hits.empty() && q.find(' ') == std::string::npos && q.size() >= 3) {
        const int max_distance = q.size() <= 4 ? 1 : 2;
        for (const std::string & name : similar_names(q, max_distance)) {
            if (auto r = find(name))
                hits.push_back({*r, 500.0 - edit_distance(q, name, max_distance) * 100, "similar name"});
            if (static_cast<int>(hits.size()) >= 3) break;
        }
    }
    const std::vector<std::string> terms = query_terms(q);
    if (terms.empty()) return hits;
    std::vector<SearchHit> ranked = text_matches(terms, 200);
    for (SearchHit & h : ranked) {
        // What BM25 cannot know: debug symbols, docs and libraries are rarely what a person
        // asks for by description; dummy transitional packages never are.
        const PackageRecord & r = h.package;
        const std::string & n = r.name;
        const bool asks_lib = std::find(terms.begin(), terms.end(), "library") != terms.end() ||
                              std::find(terms.begin(), terms.end(), "lib") != terms.end();
        if (n.ends_with("-dbg") || n.ends_with("-dbgsym") || n.ends_with("-doc")) h.score *= 0.3;
        if (!asks_lib && n.starts_with("lib")) h.score *= 0.5;
        if (r.summary.find("transitional") != std::string::npos || r.summary.find("dummy") != std::string::npos)
            h.score *= 0.2;
        for (const std::string & t : terms) {
            if (n == t) h.score *= 2.0;
        }
        if (r.priority == "required" || r.priority == "important" || r.priority == "standard") h.score *= 1.2;
    }
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const SearchHit & a, const SearchHit & b) { return a.score > b.score; });
    for (SearchHit & h : ranked) {
        if (static_cast<int>(hits.size()) >= limit) break;
        if (!seen(h.package.name)) hits.push_back(std::move(h));
    }
    if (static_cast<int>(hits.size()) > limit) hits.resize(limit);
    return hits;
}

std::vector<SearchHit> PackageIndex::text_matches(const std::vector<std::string> & words, int limit) const {
    std::vector<SearchHit> out;
    std::string match;
    for (const std::string & w : words) {
        for (const std::string & t : query_terms(w)) match += (match.empty() ? "\"" : " OR \"") + t + "\"";
    }
    if (match.empty() || limit <= 0) return out;
    static const std::string sql = std::string("SELECT ") + kRecordColumns +
                                   ", bm25(fts, 10.0, 4.0, 1.0) AS rank FROM fts JOIN packages p ON p.id = fts.rowid "
                                   "WHERE fts MATCH ? ORDER BY rank LIMIT ?";
    SqliteStatement s = prepare(impl_->db.get(), impl_->path, sql.c_str());
    sqlite3_bind_text(s.get(), 1, match.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s.get(), 2, limit);
    while (sqlite3_step(s.get()) == SQLITE_ROW) {
        PackageRecord r = impl_->record_from_row(s.get());
        const double score = -sqlite3_column_double(s.get(), kRecordColumnCount);  // bm25: lower is better
        out.push_back({std::move(r), score, "description"});
    }
    return out;
}

std::vector<PackageRecord> PackageIndex::with_name_prefix(std::string_view prefix, int limit) const {
    return names_between(std::string(prefix), std::string(prefix) + "\x7f", limit);
}

std::vector<PackageRecord> PackageIndex::names_between(const std::string & low, const std::string & high,
                                                       int limit) const {
    static const std::string sql =
        std::string("SELECT ") + kRecordColumns +
        " FROM packages p WHERE p.name >= ? AND p.name < ? AND p.best = 1 ORDER BY p.name LIMIT ?";
    SqliteStatement s = prepare(impl_->db.get(), impl_->path, sql.c_str());
    sqlite3_bind_text(s.get(), 1, low.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 2, high.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s.get(), 3, limit);
    std::vector<PackageRecord> out;
    while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(impl_->record_from_row(s.get()));
    return out;
}

std::vector<PackageVersion> PackageIndex::versions(std::string_view name) const {
    SqliteStatement s = prepare(impl_->db.get(), impl_->path, "SELECT version, releases FROM packages WHERE name = ?");
    sqlite3_bind_text(s.get(), 1, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
    std::vector<PackageVersion> out;
    while (sqlite3_step(s.get()) == SQLITE_ROW) {
        const std::string version = column_text(s.get(), 0);
        auto it = std::find_if(out.begin(), out.end(), [&](const PackageVersion & v) { return v.version == version; });
        if (it == out.end()) it = out.insert(out.end(), {version, {}});
        std::istringstream releases(column_text(s.get(), 1));
        for (std::string r; releases >> r;) {
            if (std::find(it->releases.begin(), it->releases.end(), r) == it->releases.end()) it->releases.push_back(r);
        }
    }
    std::sort(out.begin(), out.end(), [](const PackageVersion & a, const PackageVersion & b) {
        return compare_debian_versions(a.version, b.version) > 0;
    });
    return out;
}

std::vector<std::string> PackageIndex::providers(std::string_view virtual_name) const {
    SqliteStatement s = prepare(impl_->db.get(), impl_->path,
                                "SELECT p.name FROM provides v JOIN packages p ON p.id = v.id WHERE v.virtual = ? "
                                "ORDER BY p.rdeps DESC, p.name");
    sqlite3_bind_text(s.get(), 1, virtual_name.data(), static_cast<int>(virtual_name.size()), SQLITE_TRANSIENT);
    std::vector<std::string> out;
    while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(column_text(s.get(), 0));
    return out;
}

std::vector<std::string> PackageIndex::releases() const {
    SqliteStatement s = prepare(impl_->db.get(), impl_->path, "SELECT DISTINCT releases FROM packages");
    std::set<std::string> all;
    while (sqlite3_step(s.get()) == SQLITE_ROW) {
        std::istringstream releases(column_text(s.get(), 0));
        for (std::string r; releases >> r;) all.insert(r);
    }
    return {all.begin(), all.end()};
}

std::vector<PackageRecord> PackageIndex::with_tags(const std::vector<std::string> & tags, int limit) const {
    std::vector<PackageRecord> out;
    if (tags.empty() || limit <= 0) return out;
    // The first tag's packages, most depended-on first (an index range), kept when they carry
    // the other tags too (one index lookup each): no sort of the whole tag.
    std::string sql =
        std::string("SELECT ") + kRecordColumns + " FROM tags t JOIN packages p ON p.id = t.id WHERE t.tag = ?";
    for (size_t i = 1; i < tags.size(); ++i)
        sql += " AND EXISTS (SELECT 1 FROM tags o WHERE o.tag = ? AND o.id = t.id)";
    sql += " ORDER BY t.rdeps DESC LIMIT ?";
    SqliteStatement s = prepare(impl_->db.get(), impl_->path, sql.c_str());
    int i = 1;
    for (const std::string & t : tags) sqlite3_bind_text(s.get(), i++, t.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s.get(), i, limit);
    while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(impl_->record_from_row(s.get()));
    return out;
}

bool PackageIndex::is_vocabulary_word(std::string_view word) const {
    const std::vector<std::string> terms = query_terms(word);
    if (terms.size() != 1) return false;
    SqliteStatement s = prepare(impl_->db.get(), impl_->path, "SELECT rowid FROM fts WHERE fts MATCH ? LIMIT 1");
    const std::string match = "{summary description} : \"" + terms[0] + "\"";
    sqlite3_bind_text(s.get(), 1, match.c_str(), -1, SQLITE_TRANSIENT);
    return sqlite3_step(s.get()) == SQLITE_ROW;
}

int PackageIndex::summary_mentions(std::string_view word, int limit) const {
    const std::vector<std::string> terms = query_terms(word);
    if (terms.size() != 1) return 0;
    SqliteStatement s = prepare(impl_->db.get(), impl_->path,
                                "SELECT count(*) FROM (SELECT p.name FROM fts JOIN packages p ON p.id = fts.rowid "
                                "WHERE fts MATCH ? AND instr(p.name, ?) = 0 LIMIT ?)");
    const std::string match = "{summary description} : \"" + terms[0] + "\"";
    sqlite3_bind_text(s.get(), 1, match.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 2, terms[0].c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s.get(), 3, limit);
    return sqlite3_step(s.get()) == SQLITE_ROW ? sqlite3_column_int(s.get(), 0) : 0;
}

}  // namespace cortex::interpreter
