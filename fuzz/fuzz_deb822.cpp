// apt's Packages lists and dpkg's status file (deb822): records, fields, continuation lines;
// and the Debian version order of the versions found.
#include <string_view>

#include "fuzz_common.h"
#include "interpreter/deb822.h"
#include "interpreter/package_index.h"

using namespace cortex;
using namespace cortex::interpreter;

namespace {

int sign(int v) {
    return (v > 0) - (v < 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::string_view text(reinterpret_cast<const char *>(data), size);
    std::vector<std::string> versions;
    size_t bytes = 0;
    fuzz::require(fuzz::accepts([&] {
                      for_each_deb822_record(text, [&](const Deb822Record & r) {
                          for (const auto & [key, value] : r.fields) {
                              // Every view lies inside the text (ASan checks the reads too).
                              fuzz::require(key.data() >= text.data() && key.data() + key.size() <= text.data() + size,
                                            "a field name outside the text");
                              fuzz::require(value.empty() || (value.data() >= text.data() &&
                                                              value.data() + value.size() <= text.data() + size),
                                            "a field value outside the text");
                              bytes += key.size() + value.size();
                          }
                          if (versions.size() < 8) versions.emplace_back(r.get("Version"));
                      });
                  }),
                  "for_each_deb822_record() threw");
    fuzz::require(bytes <= size, "fields overlap");
    // dpkg's order is a total order: antisymmetric and reflexive.
    for (const std::string & a : versions) {
        fuzz::require(compare_debian_versions(a, a) == 0, "a version differs from itself");
        for (const std::string & b : versions) {
            fuzz::require(sign(compare_debian_versions(a, b)) == -sign(compare_debian_versions(b, a)),
                          "the version order is not antisymmetric");
        }
    }
    return 0;
}
