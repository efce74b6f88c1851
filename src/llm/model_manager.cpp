// ModelManager: name resolution ($CORTEX_HOME/models) and a thread-safe cache of loaded models.
#include <dirent.h>
#include <sys/stat.h>

#include <cstdlib>
#include <future>
#include <map>
#include <mutex>

#include "core/file_util.h"
#include "cortex/config.h"
#include "cortex/llm.h"
#include "cortex/models.h"
#include "model_impl.h"

namespace cortex::llm {
namespace {

bool ends_with(const std::string & s, const std::string & suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<std::string> gguf_files_in(const std::string & dir) {
    std::vector<std::string> files;
    std::unique_ptr<DIR, int (*)(DIR *)> d(opendir(dir.c_str()), closedir);
    if (!d) return files;
    while (dirent * e = readdir(d.get())) {
        std::string name = e->d_name;
        if (ends_with(name, ".gguf") && is_regular_file(dir + "/" + name)) files.push_back(dir + "/" + name);
    }
    return files;
}


}  // namespace

std::string cortex_home() {
    if (const char * home = std::getenv("CORTEX_HOME"); home && *home) return home;
    const char * user_home = std::getenv("HOME");
    return std::string(user_home && *user_home ? user_home : ".") + "/.cortex";
}

std::string default_model_name() {
    std::string name = Settings::load().model();
    if (!name.empty()) return name;
    throw Error(ErrorCode::kNotFound, "no default model: LLAMACPP_MODEL is not set",
                "set LLAMACPP_MODEL (or: cortex config set model NAME) to a model name or .gguf path, or pass the model explicitly");
}

struct ModelManager::State {
    std::string models_dir;
    mutable std::mutex mutex;
    struct Entry {
        std::string path;
        ModelConfig config;
        std::shared_future<std::shared_ptr<Model>> model;
    };
    // Keyed by canonical path; one entry per distinct ModelConfig.
    std::multimap<std::string, Entry> entries;
};

ModelManager::ModelManager(std::string models_dir) : state_(std::make_unique<State>()) {
    state_->models_dir = models_dir.empty() ? Settings::load().models_dir() : std::move(models_dir);
}

ModelManager::~ModelManager() = default;

const std::string & ModelManager::models_dir() const { return state_->models_dir; }

std::string ModelManager::resolve(const std::string & name_or_path) const {
    if (name_or_path.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "no model name given", "pass a model name (e.g. qwen2.5-7b) or a .gguf path");
    }
    // A path that exists is taken as it is, so that a directory or a bad file gets its own
    // clear error from the loader rather than "not found".
    if (path_exists(name_or_path)) return name_or_path;
    const bool looks_like_path = name_or_path.find('/') != std::string::npos || ends_with(name_or_path, ".gguf");
    const std::string file = state_->models_dir + "/" + name_or_path + ".gguf";
    const std::string dir = state_->models_dir + "/" + name_or_path;
    std::string looked = "'" + name_or_path + "'";
    std::string download_name = name_or_path;
    if (!looks_like_path) {
        if (is_regular_file(file)) return file;
        std::vector<std::string> in_dir = gguf_files_in(dir);
        if (in_dir.size() == 1) return in_dir[0];
        if (in_dir.size() > 1) {
            throw Error(ErrorCode::kInvalidArgument, "'" + dir + "' holds " + std::to_string(in_dir.size()) + " .gguf files",
                        "pass the path of the one to load");
        }
        looked += ", '" + file + "', '" + dir + "/*.gguf'";
        // An Ollama-style name (qwen2.5:7b) or alias means the catalog model of that name...
        if (const models::CatalogEntry * entry = models::Catalog::get().find(name_or_path)) {
            download_name = entry->name;
            const std::string canonical_file = state_->models_dir + "/" + entry->name + ".gguf";
            if (is_regular_file(canonical_file)) return canonical_file;
            if (entry->name != name_or_path) looked += ", '" + canonical_file + "'";
        }
        // ...and a model that Ollama already has is used where it lies.
        models::OllamaModel ollama;
        if (models::find_ollama_model(name_or_path, ollama)) return ollama.blob;
        looked += " and Ollama's store (" + models::ollama_models_dir() + ")";
    }
    throw Error(ErrorCode::kNotFound, "model '" + name_or_path + "' not found (looked at " + looked + ")",
                "download it (cortex-model download " + download_name + "), or pass the path of a .gguf file");
}

std::shared_ptr<Model> ModelManager::load_model(const std::string & name_or_path, const ModelConfig & config) {
    const std::string path = resolve(name_or_path);
    const std::string key = canonical_path(path);

    std::promise<std::shared_ptr<Model>> promise;
    std::shared_future<std::shared_ptr<Model>> existing;
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        auto range = state_->entries.equal_range(key);
        for (auto it = range.first; it != range.second && !existing.valid(); ++it) {
            if (it->second.config == config) existing = it->second.model;
        }
        if (!existing.valid()) state_->entries.emplace(key, State::Entry{path, config, promise.get_future().share()});
    }
    // Loaded, or being loaded by another thread: wait for it outside the lock.
    if (existing.valid()) return existing.get();

    try {
        // A daemon that serves this file answers as the model loaded here would, without loading.
        std::shared_ptr<Model> model = attach_remote_model(name_or_path, path, key, config);
        if (model) {
            promise.set_value(model);
            return model;
        }
        try {
            model = Model::load(path, config);
        } catch (const Error & e) {
            // A damaged store model: say exactly which download repairs it.
            const models::CatalogEntry * entry = models::Catalog::get().find(name_or_path);
            std::string hint = e.hint();
            size_t at = hint.find("download NAME");
            if (e.code() == ErrorCode::kInvalidModel && entry && at != std::string::npos) {
                hint.replace(at, 13, "download " + entry->name);
                throw Error(e.code(), e.message(), hint);
            }
            throw;
        }
        promise.set_value(model);
        return model;
    } catch (...) {
        promise.set_exception(std::current_exception());
        std::lock_guard<std::mutex> lock(state_->mutex);
        auto range = state_->entries.equal_range(key);
        for (auto it = range.first; it != range.second; ++it) {
            if (it->second.config == config) {
                state_->entries.erase(it);
                break;
            }
        }
        throw;
    }
}

bool ModelManager::unload(const std::string & name_or_path) {
    std::string key;
    try {
        key = canonical_path(resolve(name_or_path));
    } catch (const Error &) {
        return false;
    }
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->entries.erase(key) > 0;
}

void ModelManager::unload_all() {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->entries.clear();
}

std::vector<std::string> ModelManager::loaded() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    std::vector<std::string> paths;
    for (const auto & [key, entry] : state_->entries) {
        if (entry.model.wait_for(std::chrono::seconds(0)) == std::future_status::ready) paths.push_back(entry.path);
    }
    return paths;
}

}  // namespace cortex::llm
