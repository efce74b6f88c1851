// Ranking packages for a request in plain words, from what apt's lists already hold: names,
// summaries, Section, debtags (data/facets.json maps request words to tags), how many packages
// depend on each one, and what kind of package it is (a program, or a library, language module,
// plugin, documentation or data that people rarely mean by a description).
#pragma once

#include <string>
#include <vector>

#include "interpreter/package_index.h"

namespace cortex::interpreter {

struct RankedCandidate {
    PackageRecord package;
    double score = 0;                    // the ranking order; only comparable within one request
    double coverage = 0;                 // share of the request's content words the package explains
    std::string kind;                    // "program", "library", "language module", "plugin", ...
    bool kind_asked = true;              // the request asks for this kind (always for programs)
    std::vector<std::string> explained;  // the request words it explains
    bool facet_explained = false;        // some word was explained by its facet's tags (data/facets.json)
};

// Words that name no need of their own ("tool", "app", "lightweight"), from data/facets.json.
bool is_generic_word(const std::string & word);

// Whether data/facets.json maps `word` to debtags ("editor", "video").
bool is_facet_word(const std::string & word);

// `words` without generic words.
std::vector<std::string> content_words(const std::vector<std::string> & words);

// "library", "plugin", ..., or "program": what `r` is, by name pattern, Section and debtags.
std::string package_kind(const PackageRecord & r);

// Whether `words` ask for packages of `kind` ("python module" asks for a language module).
bool request_asks_for_kind(const std::vector<std::string> & words, const std::string & kind);

// Whether `word` and a word of a package's text mean the same (plural, -er/-ing forms, prefixes:
// "editor" ~ "editing", "web" ~ "webserver").
bool words_match(const std::string & word, const std::string & text_word);

class PackageRanker {
  public:
    explicit PackageRanker(const PackageIndex & index) : index_(index) {}

    // The best candidates for `words` (normalised request words), best first, at most `limit`.
    // `extra` joins the pool whatever the text search finds (packages of needs named inside the
    // request). With `installed_only`, only installed packages are candidates (for removals).
    std::vector<RankedCandidate> rank(const std::vector<std::string> & words, int limit, bool installed_only,
                                      const std::vector<PackageRecord> & extra = {}) const;

    // How well `r` fits `words`, without a text search score.
    RankedCandidate assess(const PackageRecord & r, const std::vector<std::string> & words) const;

  private:
    const PackageIndex & index_;
};

// How sure a choice from ranked candidates is, 0..1: the share of the request the top candidate
// explains, lowered when it is a kind of package the request did not ask for. A text match is
// never certain, so this stays below the confidence needed to run a plan unasked.
double ranking_confidence(const std::vector<RankedCandidate> & ranked);

}  // namespace cortex::interpreter
