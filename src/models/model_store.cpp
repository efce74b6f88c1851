// The models directory and the records (NAME.gguf.json) beside its files.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/file_util.h"
#include "cortex/models.h"

namespace cortex::models {

ModelStore::ModelStore(std::string dir) : dir_(std::move(dir)) {}

bool ModelStore::find(const std::string & name, InstalledModel & out) const {
    const std::string p = path(name);
    struct stat st {};
    if (stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
    out = InstalledModel{};
    out.name = name;
    out.path = p;
    out.size = static_cast<uint64_t>(st.st_size);
    out.source = "file";
    std::string text;
    if (read_file(p + ".json", text)) {
        nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
        if (j.is_object()) {
            out.source = j.value("source", "file");
            out.sha256 = j.value("sha256", "");
            out.origin = j.value("origin", "");
        }
    }
    return true;
}

std::vector<InstalledModel> ModelStore::list() const {
    std::vector<InstalledModel> out;
    std::unique_ptr<DIR, int (*)(DIR *)> d(opendir(dir_.c_str()), closedir);
    while (dirent * e = d ? readdir(d.get()) : nullptr) {
        std::string file = e->d_name;
        if (file.size() <= 5 || file.compare(file.size() - 5, 5, ".gguf") != 0) continue;
        InstalledModel m;
        if (find(file.substr(0, file.size() - 5), m)) out.push_back(m);
    }
    std::sort(out.begin(), out.end(), [](const InstalledModel & a, const InstalledModel & b) { return a.name < b.name; });
    return out;
}

void ModelStore::record(const InstalledModel & m) const {
    nlohmann::json j = {{"source", m.source}, {"sha256", m.sha256}, {"origin", m.origin}, {"size", m.size}};
    write_file_atomic(path(m.name) + ".json", j.dump(2) + "\n");
}

bool ModelStore::remove(const std::string & name) const {
    bool any = false;
    for (const std::string & suffix : {".gguf", ".gguf.json", ".gguf.part", ".gguf.lock"}) {
        if (unlink((dir_ + "/" + name + suffix).c_str()) == 0) any = true;
    }
    return any;
}

}  // namespace cortex::models
