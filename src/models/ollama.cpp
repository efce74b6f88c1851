// Ollama's store: manifests/<host>/<namespace>/<name>/<tag> point at blobs/sha256-<hex>; the
// layer of media type application/vnd.ollama.image.model is a GGUF file that Cortex can load.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/file_util.h"
#include "cortex/models.h"
#include "models/ollama_manifest.h"

namespace cortex::models {
namespace {

constexpr const char * kModelMediaType = "application/vnd.ollama.image.model";
constexpr const char * kDefaultRegistry = "registry.ollama.ai";

void walk(const std::string & dir, const std::string & rel, const std::function<void(const std::string &, const std::string &)> & on_file) {
    std::unique_ptr<DIR, int (*)(DIR *)> d(opendir(dir.c_str()), closedir);
    if (!d) return;
    while (dirent * e = readdir(d.get())) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        std::string path = dir + "/" + name, r = rel.empty() ? name : rel + "/" + name;
        struct stat st {};
        if (stat(path.c_str(), &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) walk(path, r, on_file);
        else if (S_ISREG(st.st_mode)) on_file(path, r);
    }
}

}  // namespace

std::string ollama_manifest_name(const std::string & rel) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t slash; (slash = rel.find('/', start)) != std::string::npos; start = slash + 1) parts.push_back(rel.substr(start, slash - start));
    parts.push_back(rel.substr(start));
    if (parts.size() != 4) return "";
    if (parts[0] == kDefaultRegistry && parts[1] == "library") return parts[2] + ":" + parts[3];
    return parts[0] + "/" + parts[1] + "/" + parts[2] + ":" + parts[3];
}

std::string ollama_models_dir() {
    const char * env = std::getenv("OLLAMA_MODELS");
    if (env && *env) return env;
    const char * home = std::getenv("HOME");
    return std::string(home && *home ? home : ".") + "/.ollama/models";
}

std::vector<OllamaModel> list_ollama_models(const std::string & dir_arg) {
    const std::string dir = dir_arg.empty() ? ollama_models_dir() : dir_arg;
    std::vector<OllamaModel> models;
    walk(dir + "/manifests", "", [&](const std::string & path, const std::string & rel) {
        std::string name = ollama_manifest_name(rel), text;
        if (name.empty() || !read_file(path, text)) return;
        for (OllamaModel & m : models_from_ollama_manifest(name, text, dir)) models.push_back(std::move(m));
    });
    return models;
}

std::vector<OllamaModel> models_from_ollama_manifest(const std::string & name, const std::string & text,
                                                     const std::string & dir) {
    std::vector<OllamaModel> models;
    const nlohmann::json manifest = nlohmann::json::parse(text, nullptr, false);
    if (!manifest.is_object() || !manifest.contains("layers") || !manifest["layers"].is_array()) return models;
    // Fields of the wrong type are skipped like missing ones (json::value() would throw), and
    // the digest must be a SHA-256: it becomes a path under blobs/.
    auto string_field = [](const nlohmann::json & layer, const char * name) {
        auto it = layer.find(name);
        return it != layer.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    for (const auto & layer : manifest["layers"]) {
        if (!layer.is_object() || string_field(layer, "mediaType") != kModelMediaType) continue;
        const std::string digest = string_field(layer, "digest");
        if (digest.size() != 7 + 64 || digest.rfind("sha256:", 0) != 0 ||
            digest.find_first_not_of("0123456789abcdef", 7) != std::string::npos) {
            continue;
        }
        OllamaModel m;
        m.name = name;
        m.digest = digest.substr(7);
        m.blob = dir + "/blobs/sha256-" + m.digest;
        auto size = layer.find("size");
        m.size = size != layer.end() && size->is_number_unsigned() ? size->get<uint64_t>() : 0;
        models.push_back(m);
    }
    return models;
}

bool find_ollama_model(const std::string & name, OllamaModel & out, const std::string & dir) {
    const std::string want = name.find(':') == std::string::npos ? name + ":latest" : name;
    for (const OllamaModel & m : list_ollama_models(dir)) {
        if (m.name == want && is_regular_file(m.blob)) {
            out = m;
            return true;
        }
    }
    return false;
}

std::string store_name_for_ollama(const std::string & ollama_name) {
    std::string out;
    for (char c : ollama_name) out += (c == ':' || c == '/') ? '-' : c;
    return out;
}

std::string import_ollama_model(const OllamaModel & model, const std::string & models_dir, const std::string & store_name) {
    if (!is_regular_file(model.blob)) {
        throw Error(ErrorCode::kNotFound, "Ollama's blob " + model.blob + " for " + model.name + " is missing",
                    "pull it again with: ollama pull " + model.name);
    }
    const std::string actual = sha256_file(model.blob);
    if (actual != model.digest) {
        throw Error(ErrorCode::kChecksumMismatch,
                    "Ollama's blob for " + model.name + " is corrupt: SHA-256 " + actual + ", its manifest says " + model.digest,
                    "pull it again with: ollama pull " + model.name);
    }
    make_dirs(models_dir);
    const std::string dest = models_dir + "/" + store_name + ".gguf";
    const std::string tmp = dest + ".link." + std::to_string(getpid());
    unlink(tmp.c_str());
    if (link(model.blob.c_str(), tmp.c_str()) != 0 && symlink(model.blob.c_str(), tmp.c_str()) != 0) {
        throw Error(ErrorCode::kIo, "cannot link " + model.blob + " into " + models_dir + ": " + strerror(errno),
                    "check the permissions of the models directory");
    }
    if (rename(tmp.c_str(), dest.c_str()) != 0) {
        unlink(tmp.c_str());
        throw Error(ErrorCode::kIo, "cannot create " + dest + ": " + strerror(errno), "check the models directory");
    }
    return dest;
}

}  // namespace cortex::models
