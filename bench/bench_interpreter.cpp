// cortex-bench-interpreter: how fast a request becomes a plan, against apt's own tools in the
// same run. Choosing packages (no model) vs `apt-cache search`; a whole `cortex install
// --dry-run` vs the `apt-get -s` it contains (apt's irreducible cost).
//
//   cortex-bench-interpreter [runs]     (default 7; medians are reported)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/subprocess.h"
#include "cortex/error.h"
#include "interpreter/package_index.h"
#include "interpreter/planner.h"

using namespace cortex;
using namespace cortex::interpreter;
using Clock = std::chrono::steady_clock;

namespace {

template <typename F>
double median_ms(int runs, F && f) {
    std::vector<double> t;
    for (int i = 0; i < runs; ++i) {
        auto t0 = Clock::now();
        f();
        t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

void run_quiet(const std::vector<std::string> & argv) {
    ProcessResult r = run_process(argv);
    if (r.exit_status != 0) {
        fprintf(stderr, "%s failed (%d): %s\n", argv[0].c_str(), r.exit_status, r.output.c_str());
        exit(1);
    }
}

}  // namespace

int main(int argc, char ** argv) {
    const int runs = argc > 1 ? std::max(1, atoi(argv[1])) : 7;
    try {
        auto t0 = Clock::now();
        std::unique_ptr<PackageIndex> index = PackageIndex::open();
        const double open_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        printf("package index: %zu packages, %s in %.0f ms\n", index->size(),
               index->rebuilt() ? "built" : "opened from cache", open_ms);
        const double reopen_ms = median_ms(runs, [] { PackageIndex::open(); });
        printf("  reopen (cached): %.1f ms\n\n", reopen_ms);

        PlannerOptions options;
        options.simulate = false;
        options.no_model_reason = "benchmark";
        Planner planner(*index, options);
        struct Case {
            const char * request;
            std::vector<std::string> apt_cache;  // the nearest thing apt offers
        };
        const std::vector<Case> cases = {
            {"nginx", {"apt-cache", "search", "--names-only", "^nginx$"}},
            {"ngnix", {"apt-cache", "search", "--names-only", "ngnix"}},
            {"a web server", {"apt-cache", "search", "web", "server"}},
            {"git curl jq", {"apt-cache", "search", "--names-only", "^(git|curl|jq)$"}},
            {"something to edit markdown with live preview", {"apt-cache", "search", "markdown", "live", "preview"}},
        };
        printf("%-48s %12s %14s %8s  %s\n", "request (choosing packages, no model)", "cortex ms", "apt-cache ms",
               "ratio", "chosen");
        for (const Case & c : cases) {
            Plan p;
            const double ours = median_ms(runs, [&] { p = planner.plan(Operation::kInstall, c.request); });
            const double apt = median_ms(runs, [&] { run_quiet(c.apt_cache); });
            std::string chosen;
            for (const std::string & name : p.packages) chosen += (chosen.empty() ? "" : " ") + name;
            printf("%-48s %12.1f %14.1f %7.1fx  %s (%s)\n", c.request, ours, apt, apt / ours, chosen.c_str(),
                   p.chosen_by.c_str());
        }

        // The whole dry run, as a user runs it, against apt's simulation alone.
        const char * cortex_bin = CORTEX_BIN;
        const double apt_s = median_ms(runs, [] { run_quiet({"apt-get", "-s", "install", "nginx"}); });
        const double dry = median_ms(runs, [&] {
            run_quiet({cortex_bin, "install", "nginx", "--dry-run", "--no-model"});
        });
        printf("\n%-48s %12.1f ms\n%-48s %12.1f ms\n%-48s %12.2fx\n", "cortex install nginx --dry-run (end to end)",
               dry, "apt-get -s install nginx (apt's own config)", apt_s, "ratio (cortex / apt-get -s)", dry / apt_s);
    } catch (const Error & e) {
        fprintf(stderr, "error: %s\nhint: %s\n", e.message().c_str(), e.hint().c_str());
        return 1;
    }
    return 0;
}
