// The package index of this machine: every package apt can install (from apt's lists) and
// every installed one (dpkg's status), searchable by name, near-name and full text (SQLite FTS5,
// BM25). Cached on disk and rebuilt only when apt's lists change.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cortex::interpreter {

struct PackageRecord {
    std::string name;
    std::string version;       // the highest version in the lists
    std::string architecture;  // the native one or "all"
    std::string section;
    std::string priority;
    std::string summary;  // the first line of Description
    uint64_t download_bytes = 0;
    uint64_t installed_bytes = 0;
    bool essential = false;
    std::string installed_version;  // empty when not installed
    std::string tags;               // debtags ("role::program, use::editing, ..."), often empty
    std::string appstream;          // AppStream name; keywords; categories, when apt has them
    int reverse_dependencies = 0;   // packages that depend on, recommend or suggest this one
};

// One version of a package in apt's lists, with the releases (suite and codename of each list,
// e.g. "bookworm", "stable") that carry it.
struct PackageVersion {
    std::string version;
    std::vector<std::string> releases;
};

struct SearchHit {
    PackageRecord package;
    double score = 0;   // higher is better
    std::string match;  // "exact name", "similar name", "intent" or "description"
};

struct IndexOptions {
    std::string cache_dir;                   // empty: $CORTEX_HOME/cache
    std::vector<std::string> package_lists;  // empty: every *_Packages* file of lists_dir
    std::string lists_dir = "/var/lib/apt/lists";
    std::string dpkg_status = "/var/lib/dpkg/status";
    std::string architecture;  // empty: dpkg --print-architecture
    // AppStream (DEP-11) components and Translation-en files. With package_lists empty: those
    // of lists_dir (none is fine); otherwise only these.
    std::vector<std::string> appstream_files;
    std::vector<std::string> translation_files;
};

class PackageIndex {
  public:
    // Opens the cached index, building it first when apt's lists changed since. Throws
    // Error(kNotFound) when there are no package lists (hint: apt-get update), Error(kIo).
    static std::unique_ptr<PackageIndex> open(const IndexOptions & options = {});
    ~PackageIndex();

    // The package `name` (of this architecture or "all"), with its installed version.
    std::optional<PackageRecord> find(std::string_view name) const;
    // Some version of `name` with exactly `version` exists (for sizes of apt's choice).
    std::optional<PackageRecord> find_version(std::string_view name, std::string_view version) const;
    // The best matches for free text, best first: an exact name, then names within a small edit
    // distance (typos), then BM25 over names, summaries and descriptions.
    std::vector<SearchHit> search(std::string_view query, int limit = 10) const;
    // Full-text matches of any of `words` over names and summaries, by BM25 (score: higher is
    // better), no other judgement applied.
    std::vector<SearchHit> text_matches(const std::vector<std::string> & words, int limit) const;
    // Package names within edit distance `max_distance` of `word`, nearest first.
    std::vector<std::string> similar_names(std::string_view word, int max_distance) const;
    // The packages whose names start with `prefix`, by name, at most `limit`.
    std::vector<PackageRecord> with_name_prefix(std::string_view prefix, int limit) const;
    // The packages whose names sort in [low, high), by name, at most `limit`.
    std::vector<PackageRecord> names_between(const std::string & low, const std::string & high, int limit) const;
    // Every version of `name` in the lists, highest first; empty when there is no such package.
    std::vector<PackageVersion> versions(std::string_view name) const;
    // The packages that declare `Provides: virtual_name`, by name.
    std::vector<std::string> providers(std::string_view virtual_name) const;
    // Every release (suite or codename) that some list belongs to, sorted.
    std::vector<std::string> releases() const;
    // Packages carrying every one of `tags` (debtags), at most `limit`, most depended-on first.
    std::vector<PackageRecord> with_tags(const std::vector<std::string> & tags, int limit) const;
    // Whether `word` occurs in some package's summary (as FTS5's porter stemmer sees it): an
    // ordinary word of the archive's vocabulary rather than a mistyped package name.
    bool is_vocabulary_word(std::string_view word) const;
    // How many packages mention `word` in their summary without having it in their name: a name
    // that many other packages use as an ordinary word ("webcam", "screen") may not be meant as
    // a name. Counts up to `limit`.
    int summary_mentions(std::string_view word, int limit) const;

    size_t size() const;               // packages indexed
    bool rebuilt() const;              // this open() rebuilt the cache
    double build_ms() const;           // how long that took
    const std::string & path() const;  // the cache file
    const std::string & architecture() const;

    struct Impl;

  private:
    explicit PackageIndex(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Debian version order (dpkg --compare-versions): <0, 0, >0.
int compare_debian_versions(std::string_view a, std::string_view b);

}  // namespace cortex::interpreter
