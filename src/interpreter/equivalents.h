// Well-known products that Debian's archive does not carry (Photoshop, Chrome, Zoom, ...) and
// their free equivalents in Debian (data/equivalents.json): "like X" plans an equivalent, and a
// request for X alone says that X is not in Debian and names what is.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace cortex::interpreter {

struct Product {
    std::vector<std::string> names;            // as people write it; "~word" only after "like" and the like
    std::string product;                       // "Adobe Photoshop"
    std::string what;                          // "a raster image editor"
    std::vector<std::string> packages;         // Debian's equivalents, best first; may be empty
    std::vector<std::string> debian_packages;  // Debian packages of the same name that are other programs
};

// Every product of the table.
const std::vector<Product> & products();

struct ProductMention {
    const Product * product = nullptr;
    size_t first = 0;           // index of its first word in the request's words
    size_t count = 0;           // how many words its name takes
    bool like_context = false;  // "like X", "alternative to X", "X replacement", "X for linux"
};

// The product that `words` (normalised request words) name, the longest name first; `request` is
// the text as typed, for the words ("like", "alternative") that normalising drops.
std::optional<ProductMention> find_product(const std::vector<std::string> & words, const std::string & request);

}  // namespace cortex::interpreter
