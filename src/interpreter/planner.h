// From a request in plain words to a validated, simulated Plan.
//
//   request -> normalised words -> exact names / intents / near names  (no model needed)
//                               -> otherwise: index search -> model picks among the candidates
//                                  (JSON schema, names limited to the candidates) -> validate
//           -> apt's simulation -> sizes, services, refusals -> Plan
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "interpreter/package_index.h"
#include "interpreter/plan.h"
#include "interpreter/provider.h"

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

    // Throws Error: kInvalidArgument (empty request; a refused plan, with the reason),
    // kNotFound (nothing matches; suggestions in the hint), and provider errors.
    Plan plan(Operation op, const std::string & request);

    // Simulates an already chosen package list (rollback, or names given on the command line).
    Plan plan_packages(Operation op, const std::string & request, const std::vector<std::string> & packages,
                       const std::string & chosen_by, const std::string & reason);

    // Runs apt's simulation of p.commands and fills p.changes, sizes and services; throws
    // Error(kInvalidArgument) for a plan that removes essential packages or unnamed dependents.
    void simulate_plan(Plan & p);

  private:
    struct Choice {
        std::vector<std::string> packages;
        std::string chosen_by;
        std::string reason;
        std::vector<std::string> notes;
    };
    Choice choose(Operation op, const std::string & request);
    Choice ask_model(Operation op, const std::string & request, const std::vector<SearchHit> & candidates);
    void complete_plan(Plan & plan);

    const PackageIndex & index_;
    PlannerOptions options_;
};

}  // namespace cortex::interpreter
