// Ollama's manifests, read apart from the walk over its store so that they can be tested and
// fuzzed on their own (list_ollama_models() in cortex/models.h is what callers use).
#pragma once

#include <string>
#include <vector>

#include "cortex/models.h"

namespace cortex::models {

// A manifest's path under manifests/ ("host/namespace/name/tag") -> the name Ollama shows
// ("name:tag" for the default registry's library); empty for any other shape.
std::string ollama_manifest_name(const std::string & rel);

// The GGUF layers (media type application/vnd.ollama.image.model, digest "sha256:<hex>") of a
// manifest's `text`, as models called `name` whose blobs lie in `dir`/blobs. A manifest that is
// not JSON or has no such layer yields none; nothing throws.
std::vector<OllamaModel> models_from_ollama_manifest(const std::string & name, const std::string & text,
                                                     const std::string & dir);

}  // namespace cortex::models
