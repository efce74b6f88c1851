// Deb822 records (apt's Packages lists, dpkg's status file): "Field: value" lines, continuation
// lines starting with a space, records separated by blank lines. Zero-copy: views into the text.
#pragma once

#include <functional>
#include <string_view>
#include <utility>
#include <vector>

namespace cortex::interpreter {

struct Deb822Record {
    std::vector<std::pair<std::string_view, std::string_view>> fields;
    // The value of `field` (continuation lines included, newlines kept); empty when absent.
    std::string_view get(std::string_view field) const;
};

// Calls `on_record` for each record of `text`. Malformed lines (no colon) are skipped: the
// files come from apt and dpkg, and one bad line must not hide the rest of the index.
void for_each_deb822_record(std::string_view text, const std::function<void(const Deb822Record &)> & on_record);

}  // namespace cortex::interpreter
