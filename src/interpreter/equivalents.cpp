#include "interpreter/equivalents.h"

#include <nlohmann/json.hpp>

#include "core/string_util.h"

namespace cortex::interpreter {

extern const char * const kBuiltinEquivalentsJson;  // generated from data/equivalents.json

const std::vector<Product> & products() {
    static const std::vector<Product> table = [] {
        std::vector<Product> out;
        const nlohmann::json j = nlohmann::json::parse(kBuiltinEquivalentsJson);
        for (const auto & p : j.at("products")) {
            Product product;
            product.names = p.at("names").get<std::vector<std::string>>();
            product.product = p.at("product").get<std::string>();
            product.what = p.at("what").get<std::string>();
            product.packages = p.at("packages").get<std::vector<std::string>>();
            if (p.contains("debian_packages"))
                product.debian_packages = p.at("debian_packages").get<std::vector<std::string>>();
            out.push_back(std::move(product));
        }
        return out;
    }();
    return table;
}

// Whether the request asks for something like a product rather than the product itself. "I would
// like X" is a wish, not a comparison.
static bool asks_for_likeness(const std::string & request) {
    const std::string r = " " + to_lower(request) + " ";
    for (const char * marker :
         {"alternative", "replacement", "replace ", "equivalent", "similar", "instead of", " clone", "substitute",
          " for linux", " on linux", " version of", "open source ", "open-source ", "free "}) {
        if (r.find(marker) != std::string::npos) return true;
    }
    for (size_t at = r.find(" like "); at != std::string::npos; at = r.find(" like ", at + 1)) {
        const std::string before = r.substr(0, at);
        if (!(before.ends_with(" would") || before.ends_with("'d") || before.ends_with(" i") ||
              before.ends_with(" we") || before.ends_with(" you")))
            return true;
    }
    return false;
}

std::optional<ProductMention> find_product(const std::vector<std::string> & words, const std::string & request) {
    const bool like = asks_for_likeness(request);
    std::optional<ProductMention> best;
    for (const Product & p : products()) {
        for (std::string name : p.names) {
            const bool context_only = name.starts_with("~");
            if (context_only) {
                if (!like) continue;
                name = name.substr(1);
            }
            std::vector<std::string> name_words;
            std::string cur;
            for (char c : name + " ") {
                if (c == ' ') {
                    if (!cur.empty()) name_words.push_back(cur);
                    cur.clear();
                } else {
                    cur += c;
                }
            }
            for (size_t i = 0; i + name_words.size() <= words.size(); ++i) {
                if (!std::equal(name_words.begin(), name_words.end(), words.begin() + static_cast<long>(i))) continue;
                if (!best || name_words.size() > best->count) best = ProductMention{&p, i, name_words.size(), like};
            }
        }
    }
    return best;
}

}  // namespace cortex::interpreter
