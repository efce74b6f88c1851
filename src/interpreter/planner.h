// From a request in plain words to a validated, simulated Plan.
//
//   request -> apt's syntax (pkg=VER, pkg/REL, pkg:ARCH, ./x.deb)          confidence 1
//           -> a known need ("web server")                                   high
//           -> "like <product>" / a product not in Debian                   high / refused
//           -> package names (+ words describing them; mistyped words refused) high
//           -> mistyped names ("ngnix")                                      medium
//           -> free text: ranked candidates (facets, text, kind), the model may pick
//              among them or answer "none"                                   medium, or
//                                                                            "no confident match"
//           -> apt's simulation -> sizes, services, refusals -> Plan
#pragma once

#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "interpreter/package_index.h"
#include "interpreter/package_ranking.h"
#include "interpreter/plan.h"
#include "interpreter/provider.h"
#include "interpreter/request_syntax.h"

namespace cortex::interpreter {

// The request's meaningful words: lower case, without filler ("install", "please", "a", ...).
std::vector<std::string> normalise_request(const std::string & request);

struct PlannerOptions {
    Provider * provider = nullptr;  // null: the index alone decides...
    std::string no_model_reason;    // ...and this says why, and how to get a model
    int max_candidates = 12;
    const std::atomic<bool> * cancel = nullptr;
    bool simulate = true;  // false: skip apt (for rollback plans built from history)
};

class Planner {
  public:
    Planner(const PackageIndex & index, PlannerOptions options);

    // Throws Error: kInvalidArgument (empty, oversized or malformed request; a refused plan, with
    // the reason), kNotFound (a named package, version, release or file that does not exist;
    // suggestions in the hint), and provider errors. A free-text request that nothing fits well
    // enough is no error: the Plan has no_confident_match set and the best candidates.
    Plan plan(Operation op, const std::string & request);

    // Simulates an already chosen package list (rollback, or names given on the command line).
    Plan plan_packages(Operation op, const std::string & request, const std::vector<std::string> & packages,
                       const std::string & chosen_by, const std::string & reason);

    // Runs apt's simulation of p.commands and fills p.changes, sizes and services; throws
    // Error(kInvalidArgument) for a plan that removes essential packages or unnamed dependents.
    void simulate_plan(Plan & p);

  private:
    struct Choice {
        std::vector<std::string> packages;  // apt arguments
        std::string chosen_by;
        std::string reason;
        std::vector<std::string> notes;
        std::string method = "exact name";
        double confidence = 1.0;
        std::vector<Candidate> candidates;
        bool no_confident_match = false;
    };
    Choice choose(Operation op, const std::string & request);
    Choice choose_specs(Operation op, const std::vector<RequestToken> & tokens);
    Choice choose_words(Operation op, const std::string & request, const std::vector<std::string> & words,
                        bool allow_parts);
    std::optional<Choice> choose_parts(Operation op, const std::string & request);
    Choice choose_free_text(Operation op, const std::string & request, const std::vector<std::string> & words);
    Choice ask_model(Operation op, const std::string & request, const std::vector<RankedCandidate> & ranked,
                     Choice index_choice);
    std::optional<std::string> resolve_name(const std::string & word, bool * guessed = nullptr) const;
    std::string requested_name(const std::string & spec);
    bool excludes_any(const std::vector<std::string> & packages) const;
    std::vector<std::string> pin_siblings(const std::string & apt_message, const std::vector<std::string> & specs);
    void complete_plan(Plan & plan);

    const PackageIndex & index_;
    PlannerOptions options_;
    std::map<std::string, std::string> local_debs_;  // path -> package name, from dpkg-deb
    std::set<std::string> excluded_;                 // words the request negates ("without docker")
};

}  // namespace cortex::interpreter
