#include "interpreter/package_ranking.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace cortex::interpreter {

extern const char * const kBuiltinFacetsJson;  // generated from data/facets.json

namespace {

struct KindRule {
    std::string kind;
    std::vector<std::string> name_patterns;  // "lib*", "*-dev", "*-mod-*"
    std::set<std::string> sections;
    std::set<std::string> roles;
    std::set<std::string> asked_by;
};

struct FacetTable {
    std::map<std::string, std::vector<std::string>> facets;  // word -> tags ("sound::" is a prefix)
    std::set<std::string> generic;
    std::vector<KindRule> kinds;
};

const FacetTable & facet_table() {
    static const FacetTable table = [] {
        FacetTable t;
        const nlohmann::json j = nlohmann::json::parse(kBuiltinFacetsJson);
        t.facets = j.at("facets").get<std::map<std::string, std::vector<std::string>>>();
        for (const auto & g : j.at("generic")) t.generic.insert(g.get<std::string>());
        for (const auto & k : j.at("kinds")) {
            KindRule rule;
            rule.kind = k.at("kind").get<std::string>();
            rule.name_patterns = k.at("names").get<std::vector<std::string>>();
            for (const auto & s : k.at("sections")) rule.sections.insert(s.get<std::string>());
            for (const auto & r : k.at("roles")) rule.roles.insert(r.get<std::string>());
            for (const auto & a : k.at("asked_by")) rule.asked_by.insert(a.get<std::string>());
            t.kinds.push_back(std::move(rule));
        }
        return t;
    }();
    return table;
}

// "lib*", "*-dev", "*-mod-*" or a plain name.
bool matches_pattern(const std::string & name, const std::string & pattern) {
    const bool head = pattern.starts_with("*"), tail = pattern.ends_with("*");
    const std::string core = pattern.substr(head ? 1 : 0, pattern.size() - (head ? 1 : 0) - (tail ? 1 : 0));
    if (head && tail) return name.find(core) != std::string::npos && !name.starts_with(core) && !name.ends_with(core);
    if (head) return name.size() > core.size() && name.ends_with(core);
    if (tail) return name.size() > core.size() && name.starts_with(core);
    return name == core;
}

// A light English stemmer: enough to see "editors", "editing" and "editor" as one word.
std::string stem(std::string w) {
    for (int round = 0; round < 2; ++round) {
        const std::string before = w;
        if (w.size() > 4 && w.ends_with("ies")) {
            w.replace(w.size() - 3, 3, "y");
        } else if (w.size() > 4 && w.ends_with("sses")) {
            w.resize(w.size() - 2);
        } else if (w.size() > 3 && w.ends_with("s") && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is")) {
            w.pop_back();
        }
        for (const char * suffix : {"ing", "ers", "er", "or", "ed", "ions", "ion", "ment"}) {
            const size_t n = strlen(suffix);
            if (w.size() >= n + 3 && w.ends_with(suffix)) {
                w.resize(w.size() - n);
                break;
            }
        }
        if (w.size() > 4 && w.ends_with("e")) w.pop_back();
        if (w == before) break;
    }
    return w;
}

std::vector<std::string> text_words(const std::string & text) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : text) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (isalnum(u) || c == '+') {
            cur += static_cast<char>(tolower(u));
        } else if (!cur.empty()) {
            out.push_back(std::move(cur));
            cur.clear();
        }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

// Tag families whose values say what a package is for; implemented-in::python says nothing of
// what a person wants from it, and uitoolkit, suite and the like even less.
bool meaningful_tag(const std::string & tag) {
    for (const char * facet : {"use::", "works-with::", "works-with-format::", "network::", "web::", "mail::",
                               "admin::", "devel::", "game::", "hardware::", "sound::", "security::", "field::",
                               "office::", "protocol::", "interface::", "junior::", "accessibility::"}) {
        if (tag.starts_with(facet)) return tag.find("TODO") == std::string::npos;
    }
    return false;
}

std::vector<std::string> split_tags(const std::string & tags) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < tags.size()) {
        size_t end = tags.find(',', pos);
        if (end == std::string::npos) end = tags.size();
        size_t b = tags.find_first_not_of(' ', pos);
        size_t e = tags.find_last_not_of(' ', end - 1);
        if (b != std::string::npos && b < end && e >= b) out.push_back(tags.substr(b, e - b + 1));
        pos = end + 1;
    }
    return out;
}

bool has_tag(const std::vector<std::string> & tags, const std::string & wanted) {
    for (const std::string & t : tags) {
        if (wanted.ends_with("::") ? t.starts_with(wanted) : t == wanted) return true;
    }
    return false;
}

// The words a package is described by: its name's parts, its summary, its Section and the
// values of its meaningful tags.
struct PackageText {
    std::vector<std::string> name_words;
    std::vector<std::string> words;      // summary and Section
    std::vector<std::string> tag_words;  // the values of its meaningful tags
    std::vector<std::string> tags;
};

PackageText package_text(const PackageRecord & r) {
    PackageText t;
    t.tags = split_tags(r.tags);
    for (std::string w : text_words(r.name)) {
        t.name_words.push_back(w);
        // "python3" -> "python", "7zip" -> "zip", "mp3gain" keeps itself.
        std::string letters = w;
        while (!letters.empty() && isdigit(static_cast<unsigned char>(letters.back()))) letters.pop_back();
        size_t lead = 0;
        while (lead < letters.size() && isdigit(static_cast<unsigned char>(letters[lead]))) ++lead;
        letters = letters.substr(lead);
        if (letters.size() >= 2 && letters != w) t.name_words.push_back(letters);
    }
    t.words = text_words(r.summary);
    for (const std::string & w : text_words(r.appstream)) t.words.push_back(w);  // AppStream name, keywords, categories
    const std::string section = r.section.substr(r.section.rfind('/') + 1);
    for (const std::string & w : text_words(section)) t.words.push_back(w);
    for (const std::string & tag : t.tags) {
        if (!meaningful_tag(tag)) continue;
        for (const std::string & w : text_words(tag.substr(tag.find("::") + 2))) t.tag_words.push_back(w);
    }
    return t;
}

}  // namespace

// The same as words_match() with both stems already made (the ranking's hot loop).
static bool stems_match(const std::string & word, const std::string & a, const std::string & text_word,
                        const std::string & b) {
    if (word == text_word || a == b) return true;
    const std::string & shorter = a.size() <= b.size() ? a : b;
    const std::string & longer = a.size() <= b.size() ? b : a;
    // "web" ~ "webserver", "download" ~ "downloader"; never "go" ~ "google".
    return shorter.size() >= 3 && longer.starts_with(shorter) && longer.size() <= shorter.size() + 7 &&
           (shorter.size() >= 4 || longer.size() >= 6);
}

bool words_match(const std::string & word, const std::string & text_word) {
    return stems_match(word, stem(word), text_word, stem(text_word));
}

bool is_facet_word(const std::string & word) {
    return facet_table().facets.count(word) > 0;
}

bool is_generic_word(const std::string & word) {
    return facet_table().generic.count(word) > 0;
}

std::vector<std::string> content_words(const std::vector<std::string> & words) {
    std::vector<std::string> out;
    for (const std::string & w : words) {
        if (!is_generic_word(w) && std::find(out.begin(), out.end(), w) == out.end()) out.push_back(w);
    }
    return out;
}

std::string package_kind(const PackageRecord & r) {
    const std::vector<std::string> tags = split_tags(r.tags);
    if (r.summary.find("transitional") != std::string::npos || r.summary.find("dummy package") != std::string::npos)
        return "transitional";
    const std::string section = r.section.substr(r.section.rfind('/') + 1);
    const bool program = has_tag(tags, "role::program");
    for (const KindRule & rule : facet_table().kinds) {
        bool hit = false;
        for (const std::string & role : rule.roles) hit = hit || has_tag(tags, role);
        // A package tagged as a program is one, whatever its name looks like (libreoffice); a
        // blend's collection ("games-chess") is a collection even when tagged so.
        if (!program || rule.kind == "collection") {
            for (const std::string & p : rule.name_patterns) {
                // "lib*:libs,perl": the pattern holds only in those Sections (libreoffice is no library).
                const size_t colon = p.find(':');
                if (colon != std::string::npos &&
                    ("," + p.substr(colon + 1) + ",").find("," + section + ",") == std::string::npos)
                    continue;
                hit = hit || matches_pattern(r.name, p.substr(0, colon));
            }
            hit = hit || rule.sections.count(section) > 0;
        }
        if (hit) return rule.kind;
    }
    return "program";
}

bool request_asks_for_kind(const std::vector<std::string> & words, const std::string & kind) {
    if (kind == "program") return true;
    for (const KindRule & rule : facet_table().kinds) {
        if (rule.kind != kind) continue;
        for (const std::string & w : words) {
            if (rule.asked_by.count(w)) return true;
        }
    }
    return false;
}

RankedCandidate PackageRanker::assess(const PackageRecord & r, const std::vector<std::string> & words) const {
    RankedCandidate c;
    c.package = r;
    c.kind = package_kind(r);
    c.kind_asked = request_asks_for_kind(words, c.kind);
    const std::vector<std::string> content = content_words(words);
    const PackageText text = package_text(r);
    const FacetTable & facets = facet_table();
    double name_bonus = 0, explained_weight = 0;
    int facet_words = 0, facet_hits = 0;
    auto stems = [](const std::vector<std::string> & v) {
        std::vector<std::string> out;
        out.reserve(v.size());
        for (const std::string & w : v) out.push_back(stem(w));
        return out;
    };
    const std::vector<std::string> name_stems = stems(text.name_words), word_stems = stems(text.words),
                                   tag_stems = stems(text.tag_words);
    for (const std::string & w : content) {
        bool explained = false;
        bool tag_only = false;
        const std::string ws = stem(w);
        for (size_t i = 0; i < text.name_words.size(); ++i) {
            if (stems_match(w, ws, text.name_words[i], name_stems[i])) {
                explained = true;
                name_bonus = std::max(name_bonus, w == r.name ? 0.6 : 0.15);
            }
        }
        for (size_t i = 0; i < text.words.size() && !explained; ++i)
            explained = stems_match(w, ws, text.words[i], word_stems[i]);
        for (size_t i = 0; i < text.tag_words.size() && !explained && !tag_only; ++i)
            tag_only = stems_match(w, ws, text.tag_words[i], tag_stems[i]);
        if (auto f = facets.facets.find(w); f != facets.facets.end()) {
            ++facet_words;
            bool tagged = false;
            for (const std::string & tag : f->second) tagged = tagged || has_tag(text.tags, tag);
            facet_hits += tagged;
            c.facet_explained = c.facet_explained || tagged;
            tag_only = tag_only || (!explained && tagged);
        }
        explained = explained || tag_only;
        if (explained) {
            c.explained.push_back(w);
            // A tag says less than the package's own words: "screenshot" is not explained by
            // works-with::image as well as by a summary that says "screenshot".
            explained_weight += tag_only ? 0.5 : 1.0;
        }
    }
    c.coverage = content.empty() ? 0 : explained_weight / content.size();
    // Tags agree with the request's facets; a package nobody tagged is neither helped nor hurt.
    const double facet_fit =
        facet_words == 0 ? 0.5 : (text.tags.empty() ? 0.35 : static_cast<double>(facet_hits) / facet_words);
    const double popularity = std::log1p(static_cast<double>(r.reverse_dependencies)) / std::log1p(2000.0);
    // What the package's own words explain counts most; tags and how central it is in the
    // archive decide between packages that explain the request equally well.
    double score = 2.0 * c.coverage + 0.3 * facet_fit + 0.6 * std::min(1.0, popularity) + name_bonus;
    if (has_tag(text.tags, "role::program")) score += 0.1;
    if (has_tag(text.tags, "scope::application")) score += 0.05;
    if (r.priority == "required" || r.priority == "important" || r.priority == "standard") score += 0.05;
    if (c.kind == "transitional") {
        score *= 0.1;
    } else if (!c.kind_asked) {
        score *= 0.4;
    }
    c.score = score;
    return c;
}

std::vector<RankedCandidate> PackageRanker::rank(const std::vector<std::string> & words, int limit, bool installed_only,
                                                 const std::vector<PackageRecord> & extra) const {
    const std::vector<std::string> content = content_words(words);
    std::vector<RankedCandidate> ranked;
    std::set<std::string> seen;
    auto consider = [&](const PackageRecord & r, double text_score) {
        if (installed_only && r.installed_version.empty()) return;
        if (!seen.insert(r.name).second) return;
        RankedCandidate c = assess(r, words);
        c.score += text_score;
        ranked.push_back(std::move(c));
    };
    for (const PackageRecord & r : extra) consider(r, 0.2);
    if (!content.empty()) {
        std::vector<SearchHit> hits = index_.text_matches(content, 200);
        double best = 0;
        for (const SearchHit & h : hits) best = std::max(best, h.score);
        for (const SearchHit & h : hits) consider(h.package, best > 0 ? 0.15 * h.score / best : 0);
        // Packages tagged with every facet the request names, though their summaries use other words.
        std::vector<std::string> tags;
        for (const std::string & w : content) {
            auto f = facet_table().facets.find(w);
            if (f != facet_table().facets.end() && !f->second.front().ends_with("::") &&
                std::find(tags.begin(), tags.end(), f->second.front()) == tags.end())
                tags.push_back(f->second.front());
        }
        if (tags.size() > 3) tags.resize(3);
        if (!tags.empty() && (tags.size() >= 2 || content.size() == 1)) {
            for (const PackageRecord & r : index_.with_tags(tags, 80)) consider(r, 0);
        }
    }
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const RankedCandidate & a, const RankedCandidate & b) { return a.score > b.score; });
    if (static_cast<int>(ranked.size()) > limit) ranked.resize(limit);
    return ranked;
}

double ranking_confidence(const std::vector<RankedCandidate> & ranked) {
    if (ranked.empty()) return 0;
    const RankedCandidate & top = ranked.front();
    double confidence = 0.2 + 0.6 * top.coverage;
    if (top.kind == "transitional")
        confidence *= 0.3;
    else if (!top.kind_asked)
        confidence *= 0.6;
    return std::min(confidence, 0.79);
}

}  // namespace cortex::interpreter
