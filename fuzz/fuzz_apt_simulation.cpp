// The output of `apt-get -s` (Inst/Remv lines) as the planner reads it into package changes.
#include "fuzz_common.h"
#include "interpreter/apt_simulation.h"

using namespace cortex;
using namespace cortex::interpreter;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    std::vector<PackageChange> changes;
    fuzz::require(fuzz::accepts([&] { changes = parse_simulation(fuzz::as_string(data, size)); }),
                  "parse_simulation() threw");
    for (const PackageChange & c : changes) {
        fuzz::require(!c.name.empty() && c.name.find(':') == std::string::npos,
                      "a change without a plain package name");
        fuzz::require(c.kind != PackageChange::Kind::kRemove || c.new_version.empty(), "a removal with a new version");
    }
    return 0;
}
