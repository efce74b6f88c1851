// The catalog's content and parser, hardware detection from recorded vendor-tool output, and the
// recommendation table.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <set>

#include "cortex/models.h"
#include "test_support.h"

using namespace cortex;
using namespace cortex::models;
using cortex::test::TempDir;

namespace {

// A stand-in vendor tool that prints a recorded fixture.
std::string fake_tool(const TempDir & dir, const std::string & fixture) {
    const std::string script = dir.file("tool-" + fixture);
    cortex::test::write_file(script, "#!/bin/sh\ncat '" + std::string(CORTEX_FIXTURES_DIR) + "/" + fixture + "'\n");
    chmod(script.c_str(), 0755);
    return script;
}

HardwareInfo detect_with(const std::string & nvidia, const std::string & rocm) {
    setenv("CORTEX_NVIDIA_SMI", nvidia.c_str(), 1);
    setenv("CORTEX_ROCM_SMI", rocm.c_str(), 1);
    HardwareInfo hw = detect_hardware();
    unsetenv("CORTEX_NVIDIA_SMI");
    unsetenv("CORTEX_ROCM_SMI");
    return hw;
}

}  // namespace

TEST(Catalog, HoldsEveryModelOfTheGuideWithRealSizes) {
    const Catalog & c = Catalog::get();
    const std::map<std::string, double> guide_gb = {
        {"qwen2.5-0.5b", 0.49}, {"qwen2.5-1.5b", 1.1}, {"llama3.2-1b", 0.8}, {"phi3-mini", 2.4}, {"llama3.2-3b", 2.0},
        {"qwen2.5-7b", 4.7},    {"mistral-7b", 4.4},   {"codellama-7b", 4.1}, {"deepseek-coder-6.7b", 4.1}, {"qwen2.5-14b", 9.0}};
    EXPECT_EQ(c.entries().size(), guide_gb.size());
    for (const auto & [name, gb] : guide_gb) {
        const CatalogEntry * e = c.find(name);
        ASSERT_NE(e, nullptr) << name;
        EXPECT_NEAR(e->size / 1e9, gb, 0.06) << name;
        EXPECT_EQ(e->sha256.size(), 64u) << name;
        EXPECT_FALSE(e->repo.empty());
        EXPECT_NE(e->file.find(".gguf"), std::string::npos);
        EXPECT_GT(e->context_length, 0);
        EXPECT_GT(e->memory_gb, e->size / 1e9);
        EXPECT_TRUE(e->tier == "small" || e->tier == "medium" || e->tier == "code") << name;
    }
}

TEST(Catalog, FindsOllamaNamesAndAliases) {
    const Catalog & c = Catalog::get();
    EXPECT_EQ(c.find("qwen2.5:7b")->name, "qwen2.5-7b");
    EXPECT_EQ(c.find("llama3.2")->name, "llama3.2-3b");  // Ollama's default tag
    EXPECT_EQ(c.find("LLAMA3.2:1B")->name, "llama3.2-1b");
    EXPECT_EQ(c.find("phi3:mini")->name, "phi3-mini");
    EXPECT_EQ(c.find("nonexistent"), nullptr);
    EXPECT_EQ(c.find("qwen2.5-7b")->url("https://mirror.example/"),
              "https://mirror.example/bartowski/Qwen2.5-7B-Instruct-GGUF/resolve/main/Qwen2.5-7B-Instruct-Q4_K_M.gguf");
    std::set<std::string> seen;
    for (const auto & e : c.entries()) {
        for (const auto & a : e.aliases) EXPECT_TRUE(seen.insert(a).second) << "alias " << a << " used twice";
    }
}

TEST(Catalog, BadCatalogFilesAreClearErrors) {
    for (const char * text :
         {"", "{", "[]", "{\"models\": 3}", "{\"models\": [{\"name\": \"x\"}]}",
          "{\"models\": [{\"name\": \"a/b\", \"repo\": \"r\", \"file\": \"f\", \"size\": 1}]}",
          "{\"models\": [{\"name\": \"x\", \"repo\": \"r\", \"file\": \"f\", \"size\": 1, \"sha256\": \"abc\"}]}",
          "{\"models\": [{\"name\": \"x\", \"repo\": \"r\", \"file\": \"f\", \"size\": 1},"
          " {\"name\": \"x\", \"repo\": \"r\", \"file\": \"f\", \"size\": 1}]}",
          // fuzz/corpus/catalog/regression-number-overflow: a number beyond a double
          // is nlohmann's out_of_range, not a parse_error, and escaped the parser.
          "{\"models\": [{\"name\": \"x\", \"repo\": \"r\", \"file\": \"f\", \"size\": 8e764087}]}",
          // fuzz/corpus/catalog/regression-float-size: numbers nlohmann converts unchecked
          // (1.2e22 into a uint64_t is undefined behaviour) or wraps (-1).
          "{\"models\": [{\"name\": \"x\", \"repo\": \"r\", \"file\": \"f\", \"size\": 12184467440737095516150.5}]}",
          "{\"models\": [{\"name\": \"x\", \"repo\": \"r\", \"file\": \"f\", \"size\": -1}]}",
          "{\"models\": [{\"name\": \"x\", \"repo\": \"r\", \"file\": \"f\", \"size\": 1, \"context_length\": 1e30}]}",
          "{\"models\": [{\"name\": \"x\", \"repo\": \"r\", \"file\": \"f\", \"size\": 1, \"context_length\": "
          "4294967296}]}"}) {
        try {
            Catalog::parse(text, "test-catalog.json");
            ADD_FAILURE() << "accepted: " << text;
        } catch (const Error & e) {
            EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
            EXPECT_NE(e.message().find("test-catalog.json"), std::string::npos);
        }
    }
}

TEST(Hardware, ParsesVendorToolOutput) {
    auto one = parse_nvidia_smi(cortex::test::read_file(std::string(CORTEX_FIXTURES_DIR) + "/nvidia-smi-rtx3060-12gb.csv"));
    ASSERT_EQ(one.size(), 1u);
    EXPECT_EQ(one[0].name, "NVIDIA GeForce RTX 3060");
    EXPECT_EQ(one[0].vram_bytes, 12288ull << 20);
    EXPECT_EQ(one[0].free_bytes, 11937ull << 20);
    EXPECT_EQ(parse_nvidia_smi(cortex::test::read_file(std::string(CORTEX_FIXTURES_DIR) + "/nvidia-smi-two-cards.csv")).size(), 2u);
    EXPECT_TRUE(parse_nvidia_smi("").empty());
    EXPECT_TRUE(parse_nvidia_smi("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.").empty());
    auto amd = parse_rocm_smi(cortex::test::read_file(std::string(CORTEX_FIXTURES_DIR) + "/rocm-smi-rx7900xtx.json"));
    ASSERT_EQ(amd.size(), 1u);
    EXPECT_EQ(amd[0].vendor, "amd");
    EXPECT_EQ(amd[0].vram_bytes, 25753026560ull);
    EXPECT_NE(amd[0].name.find("7900"), std::string::npos);
    EXPECT_TRUE(parse_rocm_smi("not json").empty());
}

TEST(Hardware, DetectsThisMachine) {
    HardwareInfo hw = detect_with("/nonexistent/nvidia-smi", "/nonexistent/rocm-smi");
    EXPECT_GT(hw.logical_cores, 0);
    EXPECT_GT(hw.physical_cores, 0);
    EXPECT_GT(hw.ram_bytes, 1ull << 30);
    EXPECT_FALSE(hw.cpu_model.empty());
    EXPECT_NE(std::find(hw.backends.begin(), hw.backends.end(), "CPU"), hw.backends.end());
    EXPECT_TRUE(hw.gpus.empty());
}

TEST(Recommend, FollowsTheGuideTableOnEachCard) {
    TempDir dir;
    struct Case {
        const char * fixture;
        const char * model;
        int n_ctx;
    };
    for (const Case & c : {Case{"nvidia-smi-gtx1650-4gb.csv", "llama3.2-1b", 4096}, Case{"nvidia-smi-rtx3070-8gb.csv", "qwen2.5-7b", 4096},
                           Case{"nvidia-smi-rtx3060-12gb.csv", "qwen2.5-7b", 8192}, Case{"nvidia-smi-rtx4090-24gb.csv", "qwen2.5-14b", 8192},
                           Case{"nvidia-smi-h100-80gb.csv", "qwen2.5-14b", 8192}, Case{"nvidia-smi-h200-141gb.csv", "qwen2.5-14b", 8192},
                           Case{"nvidia-smi-two-cards.csv", "qwen2.5-14b", 8192} /* 12 + 4 GB: split by layer */}) {
        HardwareInfo hw = detect_with(fake_tool(dir, c.fixture), "/nonexistent");
        ASSERT_FALSE(hw.gpus.empty()) << c.fixture;
        Recommendation r = recommend(hw, Catalog::get());
        EXPECT_EQ(r.model->name, c.model) << c.fixture;
        EXPECT_EQ(r.n_ctx, c.n_ctx) << c.fixture;
        EXPECT_EQ(r.n_gpu_layers, -1) << c.fixture;
        EXPECT_NE(r.reason.find(hw.gpus[0].name), std::string::npos) << r.reason;
    }
    HardwareInfo amd = detect_with("/nonexistent", fake_tool(dir, "rocm-smi-rx7900xtx.json"));
    EXPECT_EQ(recommend(amd, Catalog::get()).model->name, "qwen2.5-14b");
}

TEST(Recommend, CpuOnlyByRamAndCores) {
    HardwareInfo hw;
    hw.physical_cores = 4;
    struct Case {
        double ram_gb;
        int cores;
        const char * model;
    };
    for (const Case & c : {Case{2, 2, "qwen2.5-0.5b"}, Case{4, 4, "qwen2.5-1.5b"}, Case{8, 4, "llama3.2-3b"}, Case{16, 4, "llama3.2-3b"},
                           Case{32, 8, "qwen2.5-7b"}}) {
        hw.ram_bytes = static_cast<uint64_t>(c.ram_gb * (1ull << 30));
        hw.physical_cores = c.cores;
        Recommendation r = recommend(hw, Catalog::get());
        EXPECT_EQ(r.model->name, c.model) << c.ram_gb << " GB";
        EXPECT_EQ(r.n_gpu_layers, 0);
        EXPECT_EQ(r.n_threads, c.cores);
        EXPECT_NE(r.reason.find("no GPU found"), std::string::npos);
    }
    hw.gpus.push_back({"nvidia", "NVIDIA GeForce GT 1030", 2048ull << 20, 0});
    Recommendation small_gpu = recommend(hw, Catalog::get());
    EXPECT_EQ(small_gpu.n_gpu_layers, 0);
    EXPECT_NE(small_gpu.reason.find("under 4 GB"), std::string::npos);
}
