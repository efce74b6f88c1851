// Reuse of Ollama's store: listing, verified import by link, and direct resolution of names.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cortex/llm.h"
#include "cortex/models.h"
#include "test_support.h"

using namespace cortex;
using namespace cortex::models;
using cortex::test::TempDir;

namespace {

// Lays out an Ollama store (manifests + blobs) holding `model_file` as NAME:TAG.
std::string add_ollama_model(const std::string & store, const std::string & ns_path, const std::string & model_file) {
    const std::string digest = sha256_file(model_file);
    std::filesystem::create_directories(store + "/blobs");
    std::filesystem::copy_file(model_file, store + "/blobs/sha256-" + digest, std::filesystem::copy_options::overwrite_existing);
    const std::string manifest = store + "/manifests/" + ns_path;
    std::filesystem::create_directories(std::filesystem::path(manifest).parent_path());
    nlohmann::json j = {{"schemaVersion", 2},
                        {"mediaType", "application/vnd.docker.distribution.manifest.v2+json"},
                        {"config", {{"mediaType", "application/vnd.docker.container.image.v1+json"}, {"digest", "sha256:00"}, {"size", 10}}},
                        {"layers",
                         {{{"mediaType", "application/vnd.ollama.image.model"}, {"digest", "sha256:" + digest},
                           {"size", std::filesystem::file_size(model_file)}},
                          {{"mediaType", "application/vnd.ollama.image.template"}, {"digest", "sha256:11"}, {"size", 5}}}}};
    cortex::test::write_file(manifest, j.dump());
    return digest;
}

llm::ModelConfig small() {
    llm::ModelConfig c;
    c.n_ctx = 256;
    c.n_threads = 1;
    return c;
}

}  // namespace

TEST(Ollama, ListsModelsOfTheStore) {
    TempDir store;
    add_ollama_model(store.path(), "registry.ollama.ai/library/llama3.2/3b", cortex::test::model_path("tiny-llama-bpe"));
    add_ollama_model(store.path(), "registry.ollama.ai/someone/custom/v1", cortex::test::model_path("tiny-qwen2"));
    cortex::test::write_file(store.file("manifests/registry.ollama.ai/library/broken/latest"), "{not json");
    std::vector<OllamaModel> models = list_ollama_models(store.path());
    ASSERT_EQ(models.size(), 2u);
    std::set<std::string> names = {models[0].name, models[1].name};
    EXPECT_TRUE(names.count("llama3.2:3b"));
    EXPECT_TRUE(names.count("registry.ollama.ai/someone/custom:v1"));
    OllamaModel m;
    EXPECT_TRUE(find_ollama_model("llama3.2:3b", m, store.path()));
    EXPECT_FALSE(find_ollama_model("llama3.2", m, store.path())) << "llama3.2 means llama3.2:latest";
    EXPECT_TRUE(list_ollama_models(store.file("nothing-here")).empty());
}

// fuzz/corpus/ollama_manifest/regression-*: a model layer whose digest is not a SHA-256 (65
// digits here; "../x" would point outside blobs/) was listed, and a field of the wrong type
// threw nlohmann::json's type_error out of list_ollama_models().
TEST(Ollama, ManifestsWithBadLayersAreSkipped) {
    TempDir store;
    const std::string good = std::string(64, 'a');
    auto manifest = [&](const std::string & name, const std::string & layers) {
        cortex::test::write_file(store.file("manifests/registry.ollama.ai/library/" + name + "/latest"),
                                 R"({"schemaVersion":2,"layers":)" + layers + "}");
    };
    manifest(
        "long",
        R"([{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:0123456789abcdef0123456789ab2cdef0123456789abcdef0123456789abcdef","size":4683073184}])");
    manifest("dots",
             R"([{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:../../../../etc/passwd"}])");
    manifest("types", R"([{"mediaType":7,"digest":"sha256:)" + good +
                          R"("},{"mediaType":"application/vnd.ollama.image.model","digest":["x"]}])");
    manifest("size",
             R"([{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:)" + good + R"(","size":"big"}])");
    std::vector<OllamaModel> models;
    ASSERT_NO_THROW(models = list_ollama_models(store.path()));
    ASSERT_EQ(models.size(), 1u);
    EXPECT_EQ(models[0].name, "size:latest");
    EXPECT_EQ(models[0].digest, good);
    EXPECT_EQ(models[0].size, 0u) << "a size that is not a number is unknown";
}

TEST(Ollama, ImportLinksWithoutCopyingAfterVerifying) {
    TempDir store, home;
    add_ollama_model(store.path(), "registry.ollama.ai/library/llama3.2/3b", cortex::test::model_path("tiny-llama-bpe"));
    OllamaModel m;
    ASSERT_TRUE(find_ollama_model("llama3.2:3b", m, store.path()));
    EXPECT_EQ(store_name_for_ollama(m.name), "llama3.2-3b");
    const std::string path = import_ollama_model(m, home.file("models"), "llama3.2-3b");
    struct stat a {}, b {};
    stat(path.c_str(), &a);
    stat(m.blob.c_str(), &b);
    EXPECT_EQ(a.st_ino, b.st_ino) << "a hard link, not a copy";
    llm::ModelManager manager(home.file("models"));
    EXPECT_EQ(manager.load_model("llama3.2-3b", small())->architecture(), "llama");
    EXPECT_EQ(manager.resolve("llama3.2:3b"), path) << "the Ollama name finds the imported model";
}

TEST(Ollama, CorruptBlobIsRefused) {
    TempDir store, home;
    const std::string digest = add_ollama_model(store.path(), "registry.ollama.ai/library/qwen2.5/7b", cortex::test::model_path("tiny-qwen2"));
    const std::string blob = store.file("blobs/sha256-" + digest);
    std::string bytes = cortex::test::read_file(blob);
    bytes[bytes.size() / 2] ^= 1;
    cortex::test::write_file(blob, bytes);
    OllamaModel m;
    ASSERT_TRUE(find_ollama_model("qwen2.5:7b", m, store.path()));
    try {
        import_ollama_model(m, home.file("models"), "qwen2.5-7b");
        FAIL() << "no error";
    } catch (const Error & e) {
        EXPECT_EQ(e.code(), ErrorCode::kChecksumMismatch);
        EXPECT_NE(e.hint().find("ollama pull qwen2.5:7b"), std::string::npos);
    }
    EXPECT_FALSE(cortex::test::file_exists(home.file("models/qwen2.5-7b.gguf")));
}

TEST(Ollama, LlamacppModelNameResolvesToOllamasStore) {
    TempDir store, home;
    add_ollama_model(store.path(), "registry.ollama.ai/library/llama3.2/latest", cortex::test::model_path("tiny-llama-bpe"));
    setenv("OLLAMA_MODELS", store.path().c_str(), 1);
    llm::ModelManager manager(home.file("models"));
    const std::string path = manager.resolve("llama3.2");
    EXPECT_NE(path.find(store.path() + "/blobs/sha256-"), std::string::npos) << path;
    EXPECT_EQ(manager.load_model("llama3.2", small())->architecture(), "llama");
    // A model in Cortex's own store comes first.
    std::filesystem::create_directories(home.file("models"));
    std::filesystem::copy_file(cortex::test::model_path("tiny-qwen2"), home.file("models/llama3.2-3b.gguf"));
    EXPECT_EQ(manager.resolve("llama3.2"), home.file("models/llama3.2-3b.gguf"));
    unsetenv("OLLAMA_MODELS");
}
