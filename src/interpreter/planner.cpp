#include "interpreter/planner.h"

#include <algorithm>
#include <set>

#include "core/string_util.h"
#include "cortex/error.h"
#include "interpreter/apt_simulation.h"

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
    "Choose, from the candidate Debian packages listed, the fewest packages that fulfil the request "
    "(usually one). Prefer the main application over plugins, libraries, documentation or debug "
    "packages. Answer only with JSON: {\"packages\": [names], \"reason\": \"one short sentence\"}.";

}  // namespace

std::vector<std::string> normalise_request(const std::string & request) {
    static const std::set<std::string> filler = {
        "please", "install", "remove", "uninstall", "purge",    "delete",   "a",         "an",    "the",     "me",
        "my",     "some",    "i",      "want",      "need",     "would",    "like",      "to",    "get",     "set",
        "up",     "setup",   "add",    "new",       "package",  "packages", "and",       "also",  "can",     "you",
        "for",    "on",      "this",   "machine",   "computer", "system",   "something", "thing", "software"};
    std::vector<std::string> words;
    std::string cur;
    auto flush = [&] {
        if (!cur.empty() && !filler.count(cur)) words.push_back(cur);
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

Planner::Planner(const PackageIndex & index, PlannerOptions options) : index_(index), options_(options) {}

Planner::Choice Planner::choose(Operation op, const std::string & request) {
    const std::vector<std::string> words = normalise_request(request);
    if (words.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "the request '" + request + "' names nothing to " + operation_name(op),
                    std::string("say what you want, e.g. `cortex ") + operation_name(op) + " nginx` or `cortex " +
                        operation_name(op) + " \"a pdf viewer\"`");
    }
    const std::string phrase = join(words, " ");
    // 1. The request is exactly a known need ("docker", "web server", "python dev tools").
    for (const Intent & intent : intent_table().intents) {
        if (contains(intent.phrases, phrase)) {
            Choice c{intent.packages, "intent", intent.reason, {}};
            if (!intent.alternatives.empty()) c.notes.push_back("alternatives: " + join(intent.alternatives, ", "));
            return c;
        }
    }
    // 2. Every word is a package name ("nginx", "git curl jq").
    std::vector<std::string> names;
    for (const std::string & w : words) {
        if (index_.find(w)) names.push_back(w);
    }
    if (names.size() == words.size()) {
        std::vector<std::string> unique;
        for (const std::string & n : names) {
            if (!contains(unique, n)) unique.push_back(n);
        }
        return {unique, "exact name", "requested by name", {}};
    }
    // 3. The words joined are a package name ("docker compose" -> docker-compose).
    if (words.size() > 1 && index_.find(join(words, "-"))) {
        return {{join(words, "-")}, "exact name", "requested by name", {}};
    }
    // 4. One word, a typo of exactly one nearest name ("ngnix"); a tie goes to the search.
    if (words.size() == 1 && words[0].size() >= 3) {
        std::vector<std::string> nearest = index_.similar_names(words[0], 1);
        if (nearest.empty() && words[0].size() > 4) nearest = index_.similar_names(words[0], 2);
        if (nearest.size() == 1) {
            return {nearest,
                    "similar name",
                    "closest package name to '" + words[0] + "'",
                    {"'" + words[0] + "' is not a package; using '" + nearest[0] + "', the closest name"}};
        }
    }
    // 5. Free text: search the index, with the packages of intents named inside the request first.
    std::vector<SearchHit> candidates;
    auto add = [&](SearchHit hit) {
        if (op == Operation::kRemove && hit.package.installed_version.empty()) return;  // only installed ones can go
        for (const SearchHit & h : candidates) {
            if (h.package.name == hit.package.name) return;
        }
        if (static_cast<int>(candidates.size()) < options_.max_candidates) candidates.push_back(std::move(hit));
    };
    for (const Intent & intent : intent_table().intents) {
        for (const std::string & p : intent.phrases) {
            if (p.find(' ') == std::string::npos && p.size() < 4)
                continue;  // "go", "tex": too easily part of other words' meaning
            if (!contains_phrase(words, normalise_request(p))) continue;
            for (const std::string & name : intent.packages) {
                if (auto r = index_.find(name)) add({*r, 900, "intent"});
            }
            for (const std::string & name : intent.alternatives) {
                if (auto r = index_.find(name)) add({*r, 800, "intent"});
            }
            break;
        }
    }
    for (SearchHit & h : index_.search(phrase, options_.max_candidates * 3)) add(std::move(h));
    if (candidates.empty()) {
        std::string hint = op == Operation::kRemove ? "nothing installed matches; `dpkg -l` lists what is installed"
                                                    : "try other words, or search with `apt-cache search <word>`";
        throw Error(ErrorCode::kNotFound, "no package matches '" + request + "'", hint);
    }
    if (options_.provider) return ask_model(op, request, candidates);
    Choice c{{candidates[0].package.name},
             "package index",
             "best match in the package index: " + candidates[0].package.summary,
             {}};
    c.notes.push_back(
        "no language model was asked" +
        (options_.no_model_reason.empty() ? std::string(" (--no-model)") : ": " + options_.no_model_reason) +
        "; the package index alone chose");
    std::vector<std::string> others;
    for (size_t i = 1; i < candidates.size() && i < 5; ++i) others.push_back(candidates[i].package.name);
    if (!others.empty()) c.notes.push_back("other matches: " + join(others, ", "));
    return c;
}

Planner::Choice Planner::ask_model(Operation op, const std::string & request,
                                   const std::vector<SearchHit> & candidates) {
    nlohmann::json names = nlohmann::json::array();
    std::string listing;
    for (const SearchHit & h : candidates) {
        names.push_back(h.package.name);
        listing += "- " + h.package.name + ": " + h.package.summary +
                   (h.package.installed_version.empty() ? "" : " (installed)") + "\n";
    }
    // The grammar built from this schema lets the model name candidates only, so even a weak
    // model yields a plan of real packages; the reason is bounded so that generation ends.
    const nlohmann::json schema = {
        {"type", "object"},
        {"properties",
         {{"packages",
           {{"type", "array"}, {"items", {{"type", "string"}, {"enum", names}}}, {"minItems", 1}, {"maxItems", 4}}},
          {"reason", {{"type", "string"}, {"maxLength", 160}}}}},
        {"required", {"packages", "reason"}},
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
    const std::vector<std::string> allowed = names.get<std::vector<std::string>>();
    std::vector<std::string> packages;
    std::string reason;
    try {
        const nlohmann::json answer = nlohmann::json::parse(reply.content);
        for (const auto & p : answer.at("packages")) {
            const std::string name = p.get<std::string>();
            // The grammar guarantees this for llama.cpp; Ollama's `format` is a request, not a guarantee.
            if (contains(allowed, name) && !contains(packages, name)) packages.push_back(name);
        }
        reason = trim(answer.at("reason").get<std::string>());
    } catch (const nlohmann::json::exception &) {
        packages.clear();
    }
    if (packages.empty()) {
        Choice c{{candidates[0].package.name},
                 "package index",
                 "best match in the package index: " + candidates[0].package.summary,
                 {}};
        c.notes.push_back("the model's answer was " + std::string(reply.truncated ? "cut off" : "not a valid plan") +
                          "; the package index chose instead");
        return c;
    }
    return {packages, chosen_by, reason.empty() ? "chosen by the model" : reason, {}};
}

Plan Planner::plan(Operation op, const std::string & request) {
    Choice c = choose(op, request);
    Plan p = plan_packages(op, request, c.packages, c.chosen_by, c.reason);
    p.notes.insert(p.notes.begin(), c.notes.begin(), c.notes.end());
    return p;
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
        const std::string name = spec.substr(0, spec.find_first_of("=:"));
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
        p.packages.push_back(spec);
        const bool installed = !r->installed_version.empty();
        const bool pinned = spec.find('=') != std::string::npos;
        if (op == Operation::kInstall ? (installed && !pinned) : !installed) {
            p.already_done.push_back(name);
        } else {
            to_change.push_back(spec);
        }
    }
    if (to_change.empty()) {
        p.notes.push_back(op == Operation::kInstall ? "everything asked for is already installed"
                                                    : "nothing asked for is installed");
        return p;
    }
    p.commands.push_back(apt_command(op, to_change));
    if (options_.simulate) simulate_plan(p);
    return p;
}

void Planner::simulate_plan(Plan & p) {
    std::vector<PackageChange> changes;
    for (const std::vector<std::string> & argv : p.commands) {
        // argv is {"apt-get", "install"|"remove", options..., packages...}, from apt_command().
        if (argv.size() < 2 || (argv[1] != "install" && argv[1] != "remove")) {
            throw Error(ErrorCode::kInvalidArgument, "a plan command is not an apt install or remove",
                        "the plan is damaged");
        }
        const std::vector<std::string> packages = command_packages(argv);
        Simulation s = simulate(argv[1] == "install" ? Operation::kInstall : Operation::kRemove, packages);
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
        for (const std::string & spec : command_packages(argv))
            requested.insert(spec.substr(0, spec.find_first_of("=:")));
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
