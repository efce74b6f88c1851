// The model catalog: data/catalog.json, compiled in (or $CORTEX_CATALOG), parsed and checked.
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/file_util.h"
#include "core/string_util.h"
#include "cortex/models.h"

namespace cortex::models {

extern const char * const kBuiltinCatalogJson;  // generated from data/catalog.json

namespace {

}  // namespace

std::string CatalogEntry::url(const std::string & base_url) const {
    std::string base = base_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base + "/" + repo + "/resolve/main/" + file;
}

std::string model_base_url() {
    const char * env = std::getenv("CORTEX_MODEL_BASE_URL");
    return env && *env ? env : "https://huggingface.co";
}

Catalog Catalog::parse(const std::string & text, const std::string & origin) {
    auto bad = [&](const std::string & what) {
        throw Error(ErrorCode::kInvalidArgument, origin + ": " + what, "fix the catalog file, or unset CORTEX_CATALOG");
    };
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error & e) {
        bad("not valid JSON (byte " + std::to_string(e.byte) + ")");
    } catch (const nlohmann::json::exception & e) {  // out_of_range: a number such as 1e400
        bad(std::string("not valid JSON: ") + e.what());
    }
    if (!doc.is_object() || !doc.contains("models") || !doc["models"].is_array()) bad("needs an object with a \"models\" array");
    Catalog catalog;
    for (const auto & m : doc["models"]) {
        CatalogEntry e;
        try {
            e.name = m.at("name").get<std::string>();
            e.aliases = m.value("aliases", std::vector<std::string>{});
            e.family = m.value("family", "");
            e.tier = m.value("tier", "");
            e.params = m.value("params", "");
            e.repo = m.at("repo").get<std::string>();
            e.file = m.at("file").get<std::string>();
            e.quantization = m.value("quantization", "");
            // nlohmann converts numbers unchecked (1e22 into a uint64_t is undefined behaviour):
            // the whole numbers are checked here.
            const nlohmann::json & size = m.at("size");
            if (!size.is_number_unsigned()) bad(e.name + ": size must be a whole number of bytes");
            e.size = size.get<uint64_t>();
            e.sha256 = to_lower(m.value("sha256", ""));
            auto ctx = m.find("context_length");
            if (ctx != m.end() && !(ctx->is_number_unsigned() && ctx->get<uint64_t>() <= INT_MAX)) {
                bad(e.name + ": context_length must be a whole number of tokens");
            }
            e.context_length = m.value("context_length", 0);
            e.memory_gb = m.value("memory_gb", 0.0);
            e.best_for = m.value("best_for", "");
        } catch (const nlohmann::json::exception & ex) {
            bad("a model entry is incomplete: " + std::string(ex.what()));
        }
        if (e.name.empty() || e.name.find('/') != std::string::npos) bad("model name '" + e.name + "' is not a plain name");
        if (!e.sha256.empty() && e.sha256.size() != 64) bad(e.name + ": sha256 must be 64 hex digits");
        if (catalog.find(e.name)) bad("model '" + e.name + "' appears twice");
        catalog.entries_.push_back(std::move(e));
    }
    return catalog;
}

const Catalog & Catalog::get() {
    static const Catalog catalog = [] {
        const char * path = std::getenv("CORTEX_CATALOG");
        if (path && *path) {
            std::string text;
            if (!read_file(path, text)) {
                throw Error(ErrorCode::kNotFound, "CORTEX_CATALOG=" + std::string(path) + " does not exist", "unset it to use the built-in catalog");
            }
            return parse(text, path);
        }
        return parse(kBuiltinCatalogJson, "built-in catalog");
    }();
    return catalog;
}

const CatalogEntry * Catalog::find(const std::string & name_or_alias) const {
    const std::string want = to_lower(name_or_alias);
    for (const CatalogEntry & e : entries_) {
        if (to_lower(e.name) == want) return &e;
    }
    for (const CatalogEntry & e : entries_) {
        for (const std::string & a : e.aliases) {
            if (to_lower(a) == want) return &e;
        }
    }
    return nullptr;
}

}  // namespace cortex::models
