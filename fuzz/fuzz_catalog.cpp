// The model catalog (data/catalog.json, or $CORTEX_CATALOG): Catalog::parse and lookups.
#include "cortex/models.h"
#include "fuzz_common.h"

using namespace cortex;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    models::Catalog catalog;
    if (!fuzz::accepts([&] { catalog = models::Catalog::parse(fuzz::as_string(data, size), "catalog.json"); }))
        return 0;
    for (const models::CatalogEntry & e : catalog.entries()) {
        fuzz::require(!e.name.empty() && e.name.find('/') == std::string::npos,
                      "a catalog name that is not a plain name");
        fuzz::require(e.sha256.empty() || e.sha256.size() == 64, "a sha256 that is not 64 digits");
        const models::CatalogEntry * found = catalog.find(e.name);
        fuzz::require(found != nullptr, "an entry not found by its own name");
        for (const std::string & alias : e.aliases) catalog.find(alias);
        const std::string url = e.url("https://huggingface.co/");
        fuzz::require(url.rfind("https://huggingface.co/", 0) == 0, "a download URL off its base");
    }
    return 0;
}
