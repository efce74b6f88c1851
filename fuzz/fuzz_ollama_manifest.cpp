// Ollama's store: a manifest's path under manifests/ (the input's first line) and the manifest
// (the rest), as list_ollama_models() reads them. A model found must name a blob inside blobs/.
#include "fuzz_common.h"
#include "models/ollama_manifest.h"

using namespace cortex;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::string input = fuzz::as_string(data, size);
    const size_t nl = input.find('\n');
    const std::string rel = input.substr(0, nl);
    const std::string manifest = nl == std::string::npos ? std::string() : input.substr(nl + 1);

    std::string name;
    fuzz::require(fuzz::accepts([&] { name = models::ollama_manifest_name(rel); }), "ollama_manifest_name() threw");
    if (name.empty()) name = "fuzz:latest";
    const std::string dir = "/home/u/.ollama/models";
    std::vector<models::OllamaModel> found;
    fuzz::require(fuzz::accepts([&] { found = models::models_from_ollama_manifest(name, manifest, dir); }),
                  "a manifest made models_from_ollama_manifest() throw");
    for (const models::OllamaModel & m : found) {
        fuzz::require(m.name == name, "a model under another name");
        fuzz::require(m.digest.size() == 64 && m.digest.find_first_not_of("0123456789abcdef") == std::string::npos,
                      "a digest that is not 64 hex digits");
        fuzz::require(m.blob == dir + "/blobs/sha256-" + m.digest, "a blob path outside blobs/");
    }
    return 0;
}
