#include "interpreter/planner.h"

#include <algorithm>
#include <cstring>
#include <regex>
#include <set>

#include "core/string_util.h"
#include "cortex/error.h"
#include "interpreter/apt_simulation.h"
#include "interpreter/equivalents.h"

namespace cortex::interpreter {

extern const char * const kBuiltinIntentsJson;  // generated from data/intents.json

namespace {

struct Intent {
    std::vector<std::string> phrases;
    std::vector<std::string> packages;
    std::vector<std::string> alternatives;
    std::string reason;
};

struct IntentTable {
    std::vector<Intent> intents;
    std::map<std::string, std::vector<std::string>> services;
};

const IntentTable & intent_table() {
    static const IntentTable table = [] {
        IntentTable t;
        const nlohmann::json j = nlohmann::json::parse(kBuiltinIntentsJson);
        for (const auto & i : j.at("intents")) {
            t.intents.push_back(
                {i.at("phrases").get<std::vector<std::string>>(), i.at("packages").get<std::vector<std::string>>(),
                 i.at("alternatives").get<std::vector<std::string>>(), i.at("reason").get<std::string>()});
        }
        t.services = j.at("services").get<std::map<std::string, std::vector<std::string>>>();
        return t;
    }();
    return table;
}

std::string join(const std::vector<std::string> & v, const char * sep) {
    std::string out;
    for (const std::string & s : v) out += (out.empty() ? "" : sep) + s;
    return out;
}

bool contains(const std::vector<std::string> & v, const std::string & s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

// Whether `words` holds `phrase_words` as consecutive words.
bool contains_phrase(const std::vector<std::string> & words, const std::vector<std::string> & phrase_words) {
    if (phrase_words.empty() || phrase_words.size() > words.size()) return false;
    return std::search(words.begin(), words.end(), phrase_words.begin(), phrase_words.end()) != words.end();
}

const char * kSystemPrompt =
    "You are the package planner of Cortex on Debian. The user asks for software in plain words. "
    "Choose, from the candidate Debian packages listed (name: summary [what it is]), the one package "
    "that best fulfils the request. Prefer the main application over plugins, libraries, documentation "
    "or debug packages. If none of the candidates fits, answer \"none\". Answer only with JSON: "
    "{\"package\": name or \"none\", \"reason\": \"one short sentence\"}.";

constexpr size_t kMaxRequestBytes = 4096;

// The request as typed must be text a person could have typed: no control bytes, bounded.
void check_request_text(const std::string & request) {
    if (request.size() > kMaxRequestBytes) {
        throw Error(ErrorCode::kInvalidArgument,
                    "the request is " + std::to_string(request.size()) + " bytes long; at most " +
                        std::to_string(kMaxRequestBytes) + " are accepted",
                    "say what you want in a few words or package names");
    }
    for (char c : request) {
        const unsigned char u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || u == 0x7f) {
            throw Error(ErrorCode::kInvalidArgument, "the request contains control characters",
                        "type the request as plain text, e.g. cortex install nginx");
        }
    }
}

// Parts of a request joined by "and", ",", "+", "&" or "plus": several needs in one request.
std::vector<std::string> split_needs(const std::string & request) {
    std::string text = " " + to_lower(request) + " ";
    for (const char * sep : {",", ";", " + ", " & ", " and ", " plus ", " also "}) {
        for (size_t at = text.find(sep); at != std::string::npos; at = text.find(sep)) {
            text.replace(at, strlen(sep), " | ");
        }
    }
    std::vector<std::string> parts;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t end = text.find('|', pos);
        if (end == std::string::npos) end = text.size();
        const std::string part = trim(text.substr(pos, end - pos));
        if (!part.empty()) parts.push_back(part);
        pos = end + 1;
    }
    return parts;
}

// How many edits a mistyped name may have: one in short words, where two already reach a
// different word ("pizza" is no typo of "pigz"), two from six letters on.
int typo_distance(const std::string & word) {
    return word.size() >= 6 ? 2 : 1;
}

std::vector<Candidate> to_candidates(const std::vector<RankedCandidate> & ranked, size_t n) {
    std::vector<Candidate> out;
    for (size_t i = 0; i < ranked.size() && i < n; ++i) {
        out.push_back({ranked[i].package.name, ranked[i].package.summary, ranked[i].score, ranked[i].kind});
    }
    return out;
}

// The debtags worth showing a model: what a package is for, not how it is built.
std::string short_tags(const std::string & tags) {
    std::string out;
    size_t pos = 0;
    while (pos < tags.size()) {
        size_t end = tags.find(',', pos);
        if (end == std::string::npos) end = tags.size();
        const std::string t = trim(tags.substr(pos, end - pos));
        if (t.starts_with("role::") || t.starts_with("use::") || t.starts_with("works-with::") ||
            t.starts_with("interface::"))
            out += (out.empty() ? "" : ", ") + t.substr(t.find("::") + 2);
        pos = end + 1;
    }
    return out;
}

}  // namespace

std::vector<std::string> normalise_request(const std::string & request) {
    static const std::set<std::string> filler = {
        "please",  "install",  "remove",  "uninstall", "purge", "delete",   "a",       "an",  "the", "me", "my",
        "some",    "i",        "want",    "need",      "would", "like",     "to",      "get", "set", "up", "setup",
        "add",     "new",      "package", "packages",  "and",   "also",     "can",     "you", "for", "on", "this",
        "machine", "computer", "system",  "something", "thing", "software", "upgrade", "plus"};
    std::vector<std::string> words;
    std::string cur;
    auto flush = [&] {
        // A word of punctuation alone ("+", "-") names nothing.
        const bool has_alnum =
            std::any_of(cur.begin(), cur.end(), [](char c) { return isalnum(static_cast<unsigned char>(c)); });
        if (has_alnum && !filler.count(cur)) words.push_back(cur);
        cur.clear();
    };
    for (char c : request) {
        unsigned char u = static_cast<unsigned char>(c);
        // Package names keep '+', '-' and '.' ("g++", "docker.io"); a trailing '.' ends a sentence.
        if (isalnum(u) || c == '+' || c == '-' || c == '.') {
            cur += static_cast<char>(tolower(u));
        } else {
            while (!cur.empty() && (cur.back() == '.' || cur.back() == '-')) cur.pop_back();
            flush();
        }
    }
    while (!cur.empty() && (cur.back() == '.' || cur.back() == '-')) cur.pop_back();
    flush();
    return words;
}

// The request's words, lower case, filler kept (for the words around a negation).
std::vector<std::string> normalise_request_keep_all(const std::string & request) {
    std::vector<std::string> words;
    std::string cur;
    for (char c : request + " ") {
        const unsigned char u = static_cast<unsigned char>(c);
        if (isalnum(u) || c == '+' || c == '-' || c == '.' || c == '\'') {
            cur += static_cast<char>(tolower(u));
        } else if (!cur.empty()) {
            while (!cur.empty() && (cur.back() == '.' || cur.back() == '-')) cur.pop_back();
            if (!cur.empty()) words.push_back(cur);
            cur.clear();
        }
    }
    return words;
}

Planner::Planner(const PackageIndex & index, PlannerOptions options) : index_(index), options_(options) {}

// Whether the request negated one of `packages` ("containers without docker": docker.io).
bool Planner::excludes_any(const std::vector<std::string> & packages) const {
    for (const std::string & p : packages) {
        for (const std::string & x : excluded_) {
            if (p == x || p.starts_with(x + ".") || p.starts_with(x + "-")) return true;
        }
    }
    return false;
}

// A word that names a package: exactly, with the version Debian adds to the name ("apache" ->
// apache2, "tomcat" -> tomcat10, "lua" -> the newest luaX.Y), as a virtual package with a single
// provider, or as the one program of an edition suffix ("firefox" -> firefox-esr).
std::optional<std::string> Planner::resolve_name(const std::string & word, bool * guessed) const {
    if (guessed) *guessed = false;
    if (!is_package_name(word)) return std::nullopt;
    if (index_.find(word)) return word;
    if (!isdigit(static_cast<unsigned char>(word.back()))) {
        std::string newest, newest_suffix;
        {
            // "word0" up to "word:" are the names "word" followed by a digit (':' follows '9').
            for (const PackageRecord & r : index_.names_between(word + "0", word + ":", 100)) {
                const std::string suffix = r.name.substr(word.size());
                if (suffix.find_first_not_of("0123456789.") != std::string::npos || package_kind(r) != "program")
                    continue;
                if (newest.empty() || compare_debian_versions(suffix, newest_suffix) > 0) {
                    newest = r.name;
                    newest_suffix = suffix;
                }
            }
        }
        if (!newest.empty()) return newest;
    }
    // A virtual name ("webmail") can be a category as much as a name: a guess.
    if (guessed) *guessed = true;
    const std::vector<std::string> providers = index_.providers(word);
    if (providers.size() == 1) return providers[0];
    static const std::set<std::string> editions = {"esr", "gtk", "gtk3", "gtk4", "qt",
                                                   "qt5", "qt6", "bin",  "nox",  "x11"};
    std::vector<std::string> programs;
    for (const std::string & edition : editions) {
        std::optional<PackageRecord> r = index_.find(word + "-" + edition);
        if (r && package_kind(*r) == "program") programs.push_back(r->name);
    }
    if (programs.size() == 1) return programs[0];
    return std::nullopt;
}

Planner::Choice Planner::choose(Operation op, const std::string & request) {
    check_request_text(request);
    const std::vector<RequestToken> tokens = parse_request_tokens(request);
    for (const RequestToken & t : tokens) {
        if (t.spec) return choose_specs(op, tokens);
    }
    // "containers without docker": what follows a negation is excluded, not asked for.
    excluded_.clear();
    std::vector<std::string> raw = normalise_request_keep_all(request);
    for (size_t i = 0; i + 1 < raw.size(); ++i) {
        static const std::set<std::string> negations = {"without", "not", "except", "excluding", "besides", "no"};
        const bool instead = raw[i] == "instead" && i + 2 < raw.size() && raw[i + 1] == "of";
        if (!negations.count(raw[i]) && !instead) continue;
        size_t j = i + (instead ? 2 : 1);
        while (j < raw.size() && (raw[j] == "a" || raw[j] == "an" || raw[j] == "the" || raw[j] == "using")) ++j;
        if (j < raw.size()) excluded_.insert(raw[j]);
    }
    std::vector<std::string> words;
    for (const std::string & w : normalise_request(request)) {
        if (!excluded_.count(w)) words.push_back(w);
    }
    if (words.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "the request '" + request + "' names nothing to " + operation_name(op),
                    std::string("say what you want, e.g. `cortex ") + operation_name(op) + " nginx` or `cortex " +
                        operation_name(op) + " \"a pdf viewer\"`");
    }
    return choose_words(op, request, words, true);
}

// apt's syntax: every token is a package (a version, release or architecture of one, or a local
// .deb) and each is checked against the index before apt sees it. All or nothing.
Planner::Choice Planner::choose_specs(Operation op, const std::vector<RequestToken> & tokens) {
    Choice c;
    c.method = "apt syntax";
    c.chosen_by = "apt syntax";
    c.reason = "requested in apt's own syntax";
    for (const RequestToken & t : tokens) {
        PackageSpec spec;
        if (t.spec) {
            spec = *t.spec;
        } else {
            const std::vector<std::string> w = normalise_request(t.text);
            if (w.empty()) continue;  // "please", "install"
            spec.name = w[0];
            spec.text = t.text;
        }
        if (spec.kind == PackageSpec::Kind::kLocalDeb) {
            if (op != Operation::kInstall) {
                throw Error(ErrorCode::kInvalidArgument, "a .deb file can only be installed",
                            std::string("to ") + operation_name(op) + " the package it holds, name the package");
            }
            const DebInfo info = inspect_deb(spec.path);
            local_debs_[info.path] = info.name;
            c.packages.push_back(info.path);
            c.notes.push_back(spec.text + " holds " + info.name + " " + info.version + " (" + info.architecture +
                              "): " + info.summary);
            continue;
        }
        if (!index_.find(spec.name)) {
            std::vector<std::string> similar = index_.similar_names(spec.name, 2);
            if (similar.size() > 5) similar.resize(5);
            throw Error(ErrorCode::kNotFound, spec.name + ": no such package for " + index_.architecture(),
                        similar.empty() ? "search with `apt-cache search <word>`, or run `sudo apt-get update`"
                                        : "did you mean " + join(similar, ", ") + "?");
        }
        if (!spec.arch.empty() && spec.arch != index_.architecture() && spec.arch != "all" && spec.arch != "any") {
            throw Error(
                ErrorCode::kNotFound,
                spec.text + ": the architecture " + spec.arch + " is not this system's (" + index_.architecture() + ")",
                "foreign architectures need `sudo dpkg --add-architecture " + spec.arch +
                    "` and `sudo apt-get update` first");
        }
        if (spec.kind == PackageSpec::Kind::kVersion || spec.kind == PackageSpec::Kind::kRelease) {
            const std::vector<PackageVersion> versions = index_.versions(spec.name);
            std::vector<std::string> listing;
            bool found = false;
            for (const PackageVersion & v : versions) {
                listing.push_back(v.version + (v.releases.empty() ? "" : " (" + join(v.releases, ", ") + ")"));
                if (spec.kind == PackageSpec::Kind::kVersion && v.version == spec.version) found = true;
                if (spec.kind == PackageSpec::Kind::kRelease && contains(v.releases, spec.release)) found = true;
            }
            if (!found) {
                const bool version = spec.kind == PackageSpec::Kind::kVersion;
                throw Error(ErrorCode::kNotFound,
                            spec.name + " has no " + (version ? "version " + spec.version : "release " + spec.release) +
                                " in apt's lists; it has: " + join(listing, "; "),
                            version ? "name one of those versions, e.g. cortex " + std::string(operation_name(op)) +
                                          " " + spec.name + "=" + versions.front().version
                                    : "name one of those releases, or add the release to apt's sources and run "
                                      "`sudo apt-get update`");
            }
        }
        const std::string arg = spec.apt_argument();
        if (!contains(c.packages, arg)) c.packages.push_back(arg);
    }
    if (c.packages.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "the request names no package", "e.g. cortex install nginx=VERSION");
    }
    return c;
}

// Several needs in one request ("a web browser and an email client"), each chosen on its own;
// nothing when a part cannot be planned with confidence.
std::optional<Planner::Choice> Planner::choose_parts(Operation op, const std::string & request) {
    const std::vector<std::string> parts = split_needs(request);
    if (parts.size() < 2) return std::nullopt;
    Choice all;
    all.method.clear();
    for (const std::string & part : parts) {
        const std::vector<std::string> words = normalise_request(part);
        if (words.empty()) continue;
        Choice one;
        try {
            one = choose_words(op, part, words, false);
        } catch (const Error &) {
            return std::nullopt;
        }
        if (one.no_confident_match || one.confidence < kPlanConfidence) return std::nullopt;
        for (const std::string & pkg : one.packages) {
            if (!contains(all.packages, pkg)) all.packages.push_back(pkg);
        }
        all.notes.insert(all.notes.end(), one.notes.begin(), one.notes.end());
        all.confidence = all.method.empty() ? one.confidence : std::min(all.confidence, one.confidence);
        all.reason += (all.reason.empty() ? "" : "; ") + part + ": " + one.reason;
        all.method = all.method.empty() || all.method == one.method ? one.method : "several";
    }
    if (all.packages.empty()) return std::nullopt;
    all.chosen_by = all.method;
    return all;
}

Planner::Choice Planner::choose_words(Operation op, const std::string & request, const std::vector<std::string> & words,
                                      bool allow_parts) {
    const std::string phrase = join(words, " ");
    // 1. The request is exactly a known need ("docker", "web server", "python dev tools").
    for (const Intent & intent : intent_table().intents) {
        if (contains(intent.phrases, phrase) && !excludes_any(intent.packages)) {
            Choice c{intent.packages, "intent", intent.reason, {}, "intent", 0.95, {}, false};
            if (!intent.alternatives.empty()) c.notes.push_back("alternatives: " + join(intent.alternatives, ", "));
            return c;
        }
    }
    // 2. A product that Debian does not carry: "like X" plans its free equivalent; X alone is
    // refused with the equivalents named, never a lookalike name ("chrome" is no "chroma").
    if (std::optional<ProductMention> m = find_product(words, request)) {
        std::vector<std::string> rest;
        for (size_t i = 0; i < words.size(); ++i) {
            if (i < m->first || i >= m->first + m->count) rest.push_back(words[i]);
        }
        const Product & p = *m->product;
        const bool alone = std::all_of(rest.begin(), rest.end(), [](const std::string & w) {
            return is_generic_word(w) || w == "desktop" || w == "client" || w == "official" || w == "pro" ||
                   w == "download" || w == "windows" || w == "mac";
        });
        std::vector<std::string> available;
        for (const std::string & name : p.packages) {
            if (index_.find(name)) available.push_back(name);
        }
        if (m->like_context && !available.empty()) {
            Choice c{
                {available[0]},
                "equivalent",
                p.product + " is not in Debian's archive; " + available[0] + " is a free equivalent (" + p.what + ")",
                {},
                "equivalent",
                0.9,
                {},
                false};
            if (available.size() > 1) {
                c.notes.push_back("other free equivalents: " +
                                  join(std::vector<std::string>(available.begin() + 1, available.end()), ", "));
            }
            return c;
        }
        if (alone || m->like_context) {
            std::string hint = available.empty() ? "Debian has no free equivalent that Cortex knows of"
                                                 : "free equivalents in Debian: " + join(available, ", ") +
                                                       "; e.g. cortex " + operation_name(op) + " " + available[0];
            for (const std::string & d : p.debian_packages) {
                const std::optional<PackageRecord> r = index_.find(d);
                const std::vector<PackageVersion> versions = index_.versions(d);
                if (!r || versions.empty() || versions[0].releases.empty()) continue;
                hint += "; Debian's package '" + d + "' is another program (" + r->summary +
                        "): to install it anyway, cortex install " + d + "/" + versions[0].releases[0];
            }
            throw Error(ErrorCode::kNotFound, p.product + " is not in Debian's archive (" + p.what + ")", hint);
        }
    }
    // 3. Package names, with the words around them ("lighttpd web server", "nginx htopp").
    if (words.size() > 1 && index_.find(join(words, "-"))) {  // "gnome games" -> gnome-games
        return {{join(words, "-")}, "exact name", "requested by name", {}, "exact name", 0.95, {}, false};
    }
    std::vector<std::string> names, rest, rename_notes;
    double name_confidence = 1.0;
    for (const std::string & w : words) {
        if (is_generic_word(w)) continue;
        // A word that is itself a known need means that need ("docker" -> docker.io, not
        // Debian's unrelated 'docker'; "php" beside nginx -> php-fpm too).
        const Intent * need = nullptr;
        for (const Intent & intent : intent_table().intents) {
            // A category word ("editor", "browser") says what kind, not which: it stays a word.
            if (contains(intent.phrases, w) && !is_facet_word(w) && !excludes_any(intent.packages)) need = &intent;
        }
        if (need) {
            for (const std::string & p : need->packages) {
                if (!contains(names, p)) names.push_back(p);
            }
            if (need->packages.size() != 1 || need->packages[0] != w)
                rename_notes.push_back("'" + w + "': " + join(need->packages, ", ") + " (" + need->reason + ")");
            name_confidence = std::min(name_confidence, 0.95);
            continue;
        }
        bool guessed = false;
        if (std::optional<std::string> n = resolve_name(w, &guessed)) {
            if (*n != w) {
                rename_notes.push_back("'" + w + "' is packaged as " + *n);
                name_confidence = std::min(name_confidence, guessed ? 0.75 : 0.9);
            }
            if (!contains(names, *n)) names.push_back(*n);
        } else {
            rest.push_back(w);
        }
    }
    if (!names.empty() && rest.empty()) {
        Choice c{names, "exact name", "requested by name", rename_notes, "exact name", name_confidence, {}, false};
        // "webcam app": a name that is also an everyday word of the archive, beside words like
        // "app" or "tool", may name a kind of program rather than the package: shown, not run unasked.
        const bool described_kind = std::any_of(words.begin(), words.end(), [](const std::string & w) {
            return is_generic_word(w) && (w == "app" || w == "apps" || w == "tool" || w == "tools" || w == "program" ||
                                          w == "application" || w == "software" || w == "utility");
        });
        if (described_kind && names.size() == 1 && index_.summary_mentions(names[0], 10) >= 10) {
            c.confidence = std::min(c.confidence, 0.75);
            c.notes.push_back("'" + names[0] + "' is a package, and also a word many packages use: if you meant " +
                              "a kind of program, describe it in more words");
        }
        return c;
    }
    // Words that are no package and no word of any package's description, but close to a package
    // name, are mistyped names. A request is all or nothing: beside other words they stop it.
    std::vector<std::string> mistyped;
    for (const std::string & w : rest) {
        if (w.size() < 4 || index_.is_vocabulary_word(w)) continue;
        std::vector<std::string> near = index_.similar_names(w, typo_distance(w));
        if (near.empty()) continue;
        if (near.size() > 3) near.resize(3);
        mistyped.push_back(w + ": no such package; did you mean " + join(near, ", ") + "?");
    }
    if (!mistyped.empty() && words.size() > 1) {
        throw Error(ErrorCode::kNotFound, join(mistyped, "\n"),
                    "correct the name(s) and ask again; nothing was planned");
    }
    if (!names.empty()) {
        // Words that describe the named packages (their summary, Section or tags, or a known need
        // they answer) do not change the choice: a named package outranks a category. Words that
        // do not may mean the name was an ordinary word ("screen" in "record my screen"): then
        // the whole request is ranked as text, where the named package still counts.
        const PackageRanker ranker(index_);
        std::vector<std::string> undescribed;
        for (const std::string & w : rest) {
            bool described = false;
            for (const std::string & n : names) {
                if (std::optional<PackageRecord> r = index_.find(n)) {
                    const RankedCandidate fit = ranker.assess(*r, {w});
                    described = described || fit.coverage >= 1.0 || fit.facet_explained;
                }
            }
            if (!described) undescribed.push_back(w);
        }
        for (const Intent & intent : intent_table().intents) {
            for (const std::string & p : intent.phrases) {
                const std::vector<std::string> pw = normalise_request(p);
                if (!contains_phrase(words, pw)) continue;
                for (const std::string & n : names) {
                    if (!contains(intent.packages, n) && !contains(intent.alternatives, n)) continue;
                    for (const std::string & x : pw) {
                        undescribed.erase(std::remove(undescribed.begin(), undescribed.end(), x), undescribed.end());
                    }
                }
            }
        }
        if (undescribed.empty()) {
            Choice c{names,        "exact name", "requested by name",
                     rename_notes, "exact name", std::min(0.95, name_confidence),
                     {},           false};
            c.notes.push_back("'" + join(rest, " ") + "' read as a description of " + join(names, ", "));
            return c;
        }
        if (allow_parts) {
            if (std::optional<Choice> parts = choose_parts(op, request)) return *parts;
        }
        return choose_free_text(op, request, words);
    }
    // 4. One mistyped name ("ngnix", "htpo"): the closest package name, said so. A guess.
    if (words.size() == 1 && mistyped.size() == 1) {
        const std::string & w = words[0];
        std::vector<std::string> nearest = index_.similar_names(w, 1);
        if (nearest.empty() && typo_distance(w) > 1) nearest = index_.similar_names(w, typo_distance(w));
        if (!nearest.empty()) {
            // Of the closest names, the program that most packages depend on.
            std::string best = nearest[0];
            int best_rdeps = -1;
            for (const std::string & n : nearest) {
                std::optional<PackageRecord> r = index_.find(n);
                if (r && package_kind(*r) == "program" && r->reverse_dependencies > best_rdeps) {
                    best = n;
                    best_rdeps = r->reverse_dependencies;
                }
            }
            Choice c{{best},
                     "similar name",
                     "closest package name to '" + w + "'",
                     {"'" + w + "' is not a package; using '" + best + "', the closest name"},
                     "typo",
                     nearest.size() == 1 ? 0.75 : 0.65,
                     {},
                     false};
            std::vector<std::string> others;
            for (const std::string & n : nearest) {
                if (n != best && others.size() < 4) others.push_back(n);
            }
            if (!others.empty()) c.notes.push_back("other close names: " + join(others, ", "));
            return c;
        }
    }
    // 5. Free text, or several needs joined by "and" when the whole has no good match.
    Choice whole = choose_free_text(op, request, words);
    if (allow_parts && (whole.no_confident_match || whole.confidence < kExecuteConfidence - 0.1)) {
        if (std::optional<Choice> parts = choose_parts(op, request)) return *parts;
    }
    return whole;
}

Planner::Choice Planner::choose_free_text(Operation op, const std::string & request,
                                          const std::vector<std::string> & words) {
    // Packages of known needs named inside the request ("a text editor for programmers").
    std::vector<PackageRecord> extra;
    for (const Intent & intent : intent_table().intents) {
        for (const std::string & p : intent.phrases) {
            if (p.find(' ') == std::string::npos && p.size() < 4)
                continue;  // "go", "tex": too easily part of other words' meaning
            if (!contains_phrase(words, normalise_request(p))) continue;
            for (const std::string & name : intent.packages) {
                if (auto r = index_.find(name)) extra.push_back(*r);
            }
            for (const std::string & name : intent.alternatives) {
                if (auto r = index_.find(name)) extra.push_back(*r);
            }
            break;
        }
    }
    const PackageRanker ranker(index_);
    std::vector<RankedCandidate> ranked =
        ranker.rank(words, 20 + static_cast<int>(excluded_.size()) * 5, op == Operation::kRemove, extra);
    ranked.erase(std::remove_if(ranked.begin(), ranked.end(),
                                [&](const RankedCandidate & r) {
                                    for (const std::string & x : excluded_) {
                                        if (r.package.name == x || r.package.name.starts_with(x + "-") ||
                                            r.package.name.starts_with(x + ".") || r.package.name.ends_with("-" + x))
                                            return true;
                                    }
                                    return false;
                                }),
                 ranked.end());
    if (ranked.size() > 20) ranked.resize(20);
    Choice c;
    c.method = "facets + text";
    c.chosen_by = "package index";
    c.candidates = to_candidates(ranked, 10);
    c.confidence = ranking_confidence(ranked);
    if (!ranked.empty()) {
        c.packages = {ranked[0].package.name};
        c.reason = "best match in the package index: " + ranked[0].package.summary;
        std::vector<std::string> others;
        for (size_t i = 1; i < ranked.size() && i < 5; ++i) others.push_back(ranked[i].package.name);
        if (!others.empty()) c.notes.push_back("other matches: " + join(others, ", "));
    }
    if (options_.provider && !ranked.empty()) return ask_model(op, request, ranked, c);
    if (ranked.empty() || c.confidence < kPlanConfidence) {
        c.packages.clear();
        c.notes.clear();
        c.no_confident_match = true;
        c.reason = ranked.empty() ? "no package matches" : "no package fits the request well enough";
        return c;
    }
    c.notes.push_back(
        "no language model was asked" +
        (options_.no_model_reason.empty() ? std::string(" (--no-model)") : ": " + options_.no_model_reason) +
        "; the package index alone chose");
    return c;
}

Planner::Choice Planner::ask_model(Operation op, const std::string & request,
                                   const std::vector<RankedCandidate> & ranked, Choice index_choice) {
    nlohmann::json names = nlohmann::json::array();
    std::string listing;
    for (const RankedCandidate & h : ranked) {
        names.push_back(h.package.name);
        const std::string tags = short_tags(h.package.tags);
        listing += "- " + h.package.name + ": " + h.package.summary + " [" + h.kind +
                   (tags.empty() ? "" : "; " + tags) + "]" +
                   (h.package.installed_version.empty() ? "" : " (installed)") + "\n";
    }
    names.push_back("none");
    // The grammar built from this schema lets the model name candidates only (or "none"), so
    // even a weak model yields a plan of real packages; the reason is bounded so that it ends.
    const nlohmann::json schema = {
        {"type", "object"},
        {"properties",
         {{"package", {{"type", "string"}, {"enum", names}}}, {"reason", {{"type", "string"}, {"maxLength", 48}}}}},
        {"required", {"package", "reason"}},
        {"additionalProperties", false}};
    ProviderRequest req;
    req.messages = {
        {"system", kSystemPrompt},
        {"user", std::string("Request: ") + operation_name(op) + " " + request + "\nCandidates:\n" + listing}};
    req.json_schema = schema.dump();
    req.max_tokens = 160;
    req.temperature = 0;
    req.cancel = options_.cancel;
    ProviderReply reply = options_.provider->chat(req);
    const std::string chosen_by = "model " + reply.model + " (" + reply.route + ")";
    std::string package, reason;
    try {
        const nlohmann::json answer = nlohmann::json::parse(reply.content);
        package = answer.at("package").get<std::string>();
        reason = trim(answer.at("reason").get<std::string>());
    } catch (const nlohmann::json::exception &) {
        package.clear();
    }
    Choice c = index_choice;
    c.chosen_by = chosen_by;
    c.method = "model";
    if (package == "none") {
        c.packages.clear();
        c.notes.clear();
        c.no_confident_match = true;
        c.reason = "the model found none of the candidates fitting" + (reason.empty() ? "" : ": " + reason);
        return c;
    }
    const auto picked = std::find_if(ranked.begin(), ranked.end(),
                                     [&](const RankedCandidate & r) { return r.package.name == package; });
    if (picked == ranked.end()) {
        // The grammar guarantees a candidate for llama.cpp; Ollama's `format` is a request, not a guarantee.
        c = index_choice;
        c.chosen_by = "package index, after " + chosen_by;
        c.notes.insert(c.notes.begin(), "the model's answer was " +
                                            std::string(reply.truncated ? "cut off" : "not a valid plan") +
                                            "; the package index chose instead");
    } else {
        // The model chose among candidates the index found; it is as sure as the index is of that
        // candidate, never more: a model's word alone is no reason to run a plan unasked.
        c.packages = {picked->package.name};
        c.reason = reason.empty() ? "chosen by the model" : reason;
        c.notes.clear();
        c.confidence = ranking_confidence(std::vector<RankedCandidate>(picked, picked + 1));
        if (picked != ranked.begin())
            c.notes.push_back("the package index ranked " + ranked[0].package.name + " first");
    }
    if (c.confidence < kPlanConfidence) {
        c.packages.clear();
        c.notes.clear();
        c.no_confident_match = true;
        c.reason = picked == ranked.end()
                       ? "no package fits the request well enough"
                       : "the model chose " + picked->package.name + ", which fits the request too poorly to plan";
    }
    return c;
}

Plan Planner::plan(Operation op, const std::string & request) {
    Choice c;
    if (op == Operation::kUpgrade && trim(request).empty()) {
        c = {{}, "upgrade", "every installed package that has a newer version", {}, "exact name", 1.0, {}, false};
    } else {
        c = choose(op, request);
    }
    if (c.no_confident_match) {
        Plan p;
        p.operation = op;
        p.request = request;
        p.chosen_by = c.chosen_by;
        p.reason = c.reason;
        p.method = c.method;
        p.confidence = c.confidence;
        p.candidates = c.candidates;
        p.no_confident_match = true;
        return p;
    }
    Plan p = plan_packages(op, request, c.packages, c.chosen_by, c.reason);
    p.notes.insert(p.notes.begin(), c.notes.begin(), c.notes.end());
    p.method = c.method;
    p.confidence = c.confidence;
    p.candidates = c.candidates;
    return p;
}

// The package a plan's argument names: "nginx=1.2" -> nginx, "nginx/bookworm" -> nginx, and for a
// local .deb the name inside the file.
std::string Planner::requested_name(const std::string & spec) {
    if (spec.starts_with("/")) {
        auto it = local_debs_.find(spec);
        if (it == local_debs_.end()) it = local_debs_.emplace(spec, inspect_deb(spec).name).first;
        return it->second;
    }
    return spec.substr(0, spec.find_first_of("=:/"));
}

Plan Planner::plan_packages(Operation op, const std::string & request, const std::vector<std::string> & packages,
                            const std::string & chosen_by, const std::string & reason) {
    Plan p;
    p.operation = op;
    p.request = request;
    p.chosen_by = chosen_by;
    p.reason = reason;
    std::vector<std::string> to_change;
    for (const std::string & spec : packages) {
        const std::string name = requested_name(spec);
        p.packages.push_back(spec);
        if (spec.starts_with("/")) {  // a local .deb: apt decides what installing it means
            to_change.push_back(spec);
            continue;
        }
        std::optional<PackageRecord> r = index_.find(name);
        if (!r) {
            std::vector<std::string> similar = index_.similar_names(name, 2);
            if (similar.size() > 5) similar.resize(5);
            throw Error(ErrorCode::kNotFound, "there is no package '" + name + "' for " + index_.architecture(),
                        similar.empty() ? "search with `apt-cache search <word>`, or run `sudo apt-get update`"
                                        : "did you mean: " + join(similar, ", ") + "?");
        }
        if (op == Operation::kRemove && (r->essential || r->priority == "required")) {
            throw Error(ErrorCode::kInvalidArgument,
                        "refused: " + name + " is an essential system package (" +
                            (r->essential ? "Essential: yes" : "Priority: required") +
                            "); Debian needs it to boot and to manage packages",
                        "Cortex never removes essential packages; if you are certain, use apt-get directly");
        }
        const bool installed = !r->installed_version.empty();
        const bool pinned = spec.find_first_of("=/") != std::string::npos;
        const bool newer = installed && compare_debian_versions(r->version, r->installed_version) > 0;
        if (op == Operation::kUpgrade && !installed) {
            throw Error(ErrorCode::kInvalidArgument, name + " is not installed, so there is nothing to upgrade",
                        "install it with: cortex install " + name);
        }
        if (op == Operation::kRemove ? !installed : (installed && !pinned && !newer)) {
            p.already_done.push_back(name);
        } else {
            if (op != Operation::kRemove && installed && newer && !pinned) {
                p.notes.push_back(name + " " + r->installed_version + " is installed; this upgrades it to " +
                                  r->version);
            }
            to_change.push_back(spec);
        }
    }
    if (to_change.empty() && !(op == Operation::kUpgrade && packages.empty())) {
        p.notes.push_back(op == Operation::kRemove ? "nothing asked for is installed"
                          : op == Operation::kUpgrade
                              ? "everything asked for is already the newest version"
                              : "everything asked for is already installed, at the newest version");
        return p;
    }
    p.commands.push_back(apt_command(op, to_change));
    if (options_.simulate) {
        // apt-get takes "pkg=VERSION" for pkg alone: when its sibling packages (same version,
        // strict dependency) stay at their candidate, apt gives up. Pinning those siblings to the
        // same version or release is what a person does next, so Cortex does it, and says so.
        for (int round = 0;; ++round) {
            try {
                simulate_plan(p);
                break;
            } catch (const Error & e) {
                if (round >= 3 || e.code() != ErrorCode::kInvalidArgument || op == Operation::kRemove) throw;
                std::vector<std::string> added = pin_siblings(e.message(), to_change);
                if (added.empty()) throw;
                to_change.insert(to_change.end(), added.begin(), added.end());
                p.commands = {apt_command(op, to_change)};
                p.notes.push_back("apt needs " + join(added, ", ") + " to match; pinned too");
            }
        }
    }
    if (op == Operation::kUpgrade && p.changes.empty()) p.notes.push_back("everything is up to date");
    return p;
}

// From apt's "nginx : Depends: nginx-common (= 1.22.1-9) but 1.22.1-9+deb12u2 is to be installed",
// the dependency pinned the way the user pinned the package that needs it ("=VERSION" or
// "/RELEASE"), when the index has it so. Empty when apt's complaint is of another kind.
std::vector<std::string> Planner::pin_siblings(const std::string & apt_message,
                                               const std::vector<std::string> & specs) {
    static const std::regex depends(
        R"(([a-z0-9][a-z0-9+.\-]+)(?::\S+)? : Depends: ([a-z0-9][a-z0-9+.\-]+)(?::\S+)? \(([<>=]+) ([^)]+)\))");
    std::vector<std::string> added;
    for (auto it = std::sregex_iterator(apt_message.begin(), apt_message.end(), depends); it != std::sregex_iterator();
         ++it) {
        const std::string parent = (*it)[1], child = (*it)[2];
        std::string pin;
        for (const std::string & spec : specs) {
            if (spec.starts_with("/") || requested_name(spec) != parent) continue;
            if (const size_t eq = spec.find('='); eq != std::string::npos) {
                const std::string version = spec.substr(eq + 1);
                for (const PackageVersion & v : index_.versions(child)) {
                    if (v.version == version) pin = child + "=" + version;
                }
            } else if (const size_t slash = spec.find('/'); slash != std::string::npos) {
                const std::string release = spec.substr(slash + 1);
                for (const PackageVersion & v : index_.versions(child)) {
                    if (contains(v.releases, release)) pin = child + "/" + release;
                }
            }
        }
        const bool present = std::any_of(specs.begin(), specs.end(), [&](const std::string & s) {
            return !s.starts_with("/") && requested_name(s) == child;
        });
        if (!pin.empty() && !present && !contains(added, pin)) added.push_back(pin);
    }
    return added;
}

void Planner::simulate_plan(Plan & p) {
    std::vector<PackageChange> changes;
    for (const std::vector<std::string> & argv : p.commands) {
        Simulation s = simulate_command(argv);
        changes.insert(changes.end(), s.changes.begin(), s.changes.end());
    }
    p.changes = std::move(changes);
    p.download_bytes = 0;
    p.disk_delta_bytes = 0;
    complete_plan(p);
}

// Sizes, services and the refusals apt itself would not make.
void Planner::complete_plan(Plan & p) {
    // What the user asked for is what the commands name; everything else apt added.
    std::set<std::string> requested;
    for (const auto & argv : p.commands) {
        for (const std::string & spec : command_packages(argv)) requested.insert(requested_name(spec));
    }
    std::vector<std::string> essential, extra_removals;
    std::set<std::string> services;
    for (PackageChange & c : p.changes) {
        c.requested = requested.count(c.name) > 0;
        std::optional<PackageRecord> now = index_.find(c.name);
        std::optional<PackageRecord> next =
            c.new_version.empty() ? std::nullopt : index_.find_version(c.name, c.new_version);
        std::optional<PackageRecord> old =
            c.old_version.empty() ? std::nullopt : index_.find_version(c.name, c.old_version);
        if (c.kind == PackageChange::Kind::kUpgrade && compare_debian_versions(c.new_version, c.old_version) < 0) {
            c.kind = PackageChange::Kind::kDowngrade;
        }
        if (next) c.download_bytes = next->download_bytes;
        // An installed version no longer in the lists: its size is about the current one's.
        const std::optional<PackageRecord> & before = old ? old : now;
        const int64_t old_size = c.old_version.empty() || !before ? 0 : static_cast<int64_t>(before->installed_bytes);
        const int64_t new_size = next ? static_cast<int64_t>(next->installed_bytes) : 0;
        c.disk_delta_bytes = new_size - old_size;
        p.download_bytes += c.download_bytes;
        p.disk_delta_bytes += c.disk_delta_bytes;
        if (c.kind == PackageChange::Kind::kRemove) {
            if (now && (now->essential || now->priority == "required")) essential.push_back(c.name);
            if (!c.requested) extra_removals.push_back(c.name);
        } else if (auto it = intent_table().services.find(c.name); it != intent_table().services.end()) {
            services.insert(it->second.begin(), it->second.end());
        }
    }
    p.services.assign(services.begin(), services.end());
    if (!essential.empty()) {
        throw Error(ErrorCode::kInvalidArgument,
                    "refused: this would remove essential system package(s): " + join(essential, ", ") +
                        "; Debian needs them to boot and to manage packages",
                    "Cortex never removes essential packages; if you are certain, use apt-get directly");
    }
    if (!extra_removals.empty()) {
        throw Error(
            ErrorCode::kInvalidArgument,
            "refused: removing " + join(p.packages, ", ") + " would also remove " +
                std::to_string(extra_removals.size()) + " package(s) you did not name: " + join(extra_removals, ", "),
            "if you mean it, name them all: cortex remove " + join(p.packages, " ") + " " + join(extra_removals, " "));
    }
}

}  // namespace cortex::interpreter
