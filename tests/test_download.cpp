// download_file() against a real HTTP server on 127.0.0.1 that cuts, stalls, lies and refuses.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <random>
#include <thread>

#include "cortex/llm.h"
#include "cortex/models.h"
#include "http_test_server.h"
#include "test_support.h"

using namespace cortex;
using namespace cortex::models;
using cortex::test::HttpTestServer;
using cortex::test::expect_error;
using cortex::test::TempDir;

namespace {

std::string random_bytes(size_t n, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::string s(n, '\0');
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = rng();
        memcpy(&s[i], &v, std::min<size_t>(8, n - i));
    }
    return s;
}

std::string sha256_of(const std::string & bytes) {
    TempDir d;
    cortex::test::write_file(d.file("x"), bytes);
    return sha256_file(d.file("x"));
}

DownloadOptions fast_options(const std::string & body) {
    DownloadOptions o;
    o.expected_size = body.size();
    o.expected_sha256 = sha256_of(body);
    o.retry_delay_ms = 10;
    o.stall_seconds = 1;
    return o;
}

uint64_t file_size(const std::string & path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

TEST(Download, WholeFileVerifiedAndLoadable) {
    HttpTestServer server;
    const std::string model = cortex::test::read_file(cortex::test::model_path("tiny-qwen2"));
    server.set_file("/m.gguf", {.body = model});
    TempDir dir;
    DownloadOptions o = fast_options(model);
    int progress_calls = 0;
    o.on_progress = [&](const DownloadProgress & p) {
        ++progress_calls;
        EXPECT_LE(p.done, p.total);
    };
    DownloadResult r = download_file(server.base_url() + "/m.gguf", dir.file("models/m.gguf"), o);
    EXPECT_EQ(r.sha256, o.expected_sha256);
    EXPECT_EQ(r.digest_source, "catalog");
    EXPECT_EQ(r.bytes, model.size());
    EXPECT_EQ(r.resumed_from, 0u);
    EXPECT_FALSE(cortex::test::file_exists(dir.file("models/m.gguf.part")));
    EXPECT_EQ(cortex::test::read_file(dir.file("models/m.gguf")), model);
    // What was downloaded is a model the library loads.
    llm::ModelManager manager(dir.file("models"));
    llm::ModelConfig c;
    c.n_ctx = 256;
    c.n_threads = 1;
    EXPECT_EQ(manager.load_model("m", c)->architecture(), "qwen2");
}

TEST(Download, ResumesAfterACutWithRange) {
    HttpTestServer server;
    const std::string body = random_bytes(3 << 20, 1);
    server.set_file("/f", {.body = body, .cut_at = {1234567}});
    TempDir dir;
    DownloadResult r = download_file(server.base_url() + "/f", dir.file("f"), fast_options(body));
    EXPECT_EQ(r.sha256, sha256_of(body));
    EXPECT_EQ(r.attempts, 2);
    auto ranges = server.range_headers("/f");
    ASSERT_EQ(ranges.size(), 2u);
    EXPECT_EQ(ranges[0], "");
    EXPECT_EQ(ranges[1], "bytes=1234567-");
    EXPECT_EQ(cortex::test::read_file(dir.file("f")), body);
}

TEST(Download, SurvivesTwentyCutsAtRandomPoints) {
    HttpTestServer server;
    const std::string body = random_bytes(4 << 20, 2);
    std::mt19937 rng(9);
    std::vector<uint64_t> cuts;
    uint64_t at = 0;
    for (int i = 0; i < 20; ++i) cuts.push_back(at += 1 + rng() % (body.size() / 25));
    server.set_file("/f", {.body = body, .cut_at = cuts});
    TempDir dir;
    DownloadOptions o = fast_options(body);
    o.max_attempts = 25;
    o.retry_delay_ms = 1;
    DownloadResult r = download_file(server.base_url() + "/f", dir.file("f"), o);
    EXPECT_EQ(r.attempts, 21);
    EXPECT_EQ(r.sha256, sha256_of(body));
}

TEST(Download, ResumesAPartLeftByAnEarlierRun) {
    HttpTestServer server;
    const std::string body = random_bytes(1 << 20, 3);
    server.set_file("/f", {.body = body});
    TempDir dir;
    cortex::test::write_file(dir.file("f.part"), body.substr(0, 300000));
    DownloadResult r = download_file(server.base_url() + "/f", dir.file("f"), fast_options(body));
    EXPECT_EQ(r.resumed_from, 300000u);
    EXPECT_EQ(server.range_headers("/f").at(0), "bytes=300000-");
    EXPECT_EQ(cortex::test::read_file(dir.file("f")), body);
}

TEST(Download, RestartsCleanlyWhenTheServerIgnoresRange) {
    HttpTestServer server;
    const std::string body = random_bytes(1 << 20, 4);
    server.set_file("/f", {.body = body, .ignore_range = true});
    TempDir dir;
    cortex::test::write_file(dir.file("f.part"), body.substr(0, 500000));
    DownloadResult r = download_file(server.base_url() + "/f", dir.file("f"), fast_options(body));
    EXPECT_EQ(r.resumed_from, 0u);
    EXPECT_EQ(cortex::test::read_file(dir.file("f")), body);
}

TEST(Download, StalePartLongerThanTheFileStartsOver) {
    HttpTestServer server;
    const std::string body = random_bytes(100000, 5);
    server.set_file("/f", {.body = body});
    TempDir dir;
    cortex::test::write_file(dir.file("f.part"), random_bytes(200000, 6));
    download_file(server.base_url() + "/f", dir.file("f"), fast_options(body));
    EXPECT_EQ(cortex::test::read_file(dir.file("f")), body);
}

TEST(Download, ChecksumMismatchInstallsNothing) {
    HttpTestServer server;
    const std::string body = random_bytes(1 << 20, 7);
    server.set_file("/f", {.body = body, .corrupt = true});
    TempDir dir;
    Error e = expect_error(ErrorCode::kChecksumMismatch, [&] { download_file(server.base_url() + "/f", dir.file("f"), fast_options(body)); });
    EXPECT_NE(e.message().find("nothing was installed"), std::string::npos);
    EXPECT_FALSE(cortex::test::file_exists(dir.file("f")));
    EXPECT_FALSE(cortex::test::file_exists(dir.file("f.part")));
}

TEST(Download, ServerPublishedDigestIsCheckedAndRecorded) {
    HttpTestServer server;
    const std::string body = random_bytes(200000, 8);
    server.set_file("/good", {.body = body, .linked_etag = sha256_of(body)});
    server.set_file("/bad", {.body = body, .linked_etag = std::string(64, 'a')});
    TempDir dir;
    DownloadOptions o = fast_options(body);
    o.expected_sha256.clear();
    DownloadResult r = download_file(server.base_url() + "/good", dir.file("good"), o);
    EXPECT_EQ(r.digest_source, "server");
    EXPECT_EQ(r.sha256, sha256_of(body));
    expect_error(ErrorCode::kChecksumMismatch, [&] { download_file(server.base_url() + "/bad", dir.file("bad"), o); });
    EXPECT_FALSE(cortex::test::file_exists(dir.file("bad")));
}

TEST(Download, HttpErrorsSayWhatHappened) {
    HttpTestServer server;
    server.set_file("/gated", {.body = "x", .require_token = "secret"});
    server.set_file("/forbidden", {.body = "x", .status = 403});
    TempDir dir;
    DownloadOptions o;
    o.retry_delay_ms = 1;
    Error e404 = expect_error(ErrorCode::kNetwork, [&] { download_file(server.base_url() + "/missing", dir.file("a"), o); });
    EXPECT_NE(e404.message().find("404"), std::string::npos);
    EXPECT_EQ(server.requests("/missing"), 1) << "a 404 is not retried";
    Error e401 = expect_error(ErrorCode::kNetwork, [&] { download_file(server.base_url() + "/gated", dir.file("b"), o); });
    EXPECT_NE(e401.hint().find("HF_TOKEN"), std::string::npos);
    o.bearer_token = "wrong";
    Error wrong = expect_error(ErrorCode::kNetwork, [&] { download_file(server.base_url() + "/gated", dir.file("b"), o); });
    EXPECT_NE(wrong.hint().find("refused"), std::string::npos);
    o.bearer_token = "secret";
    EXPECT_NO_THROW(download_file(server.base_url() + "/gated", dir.file("b"), o));
    expect_error(ErrorCode::kNetwork, [&] { download_file(server.base_url() + "/forbidden", dir.file("c"), o); });
    expect_error(ErrorCode::kNetwork, [&] { download_file("http://127.0.0.1:1/nothing-listens", dir.file("d"), o); });
}

TEST(Download, RetriesTransientFailures) {
    HttpTestServer server;
    const std::string body = random_bytes(100000, 9);
    server.set_file("/flaky", {.body = body, .fail_first = 2});
    server.set_file("/down", {.body = body, .fail_first = 1000});
    TempDir dir;
    DownloadResult r = download_file(server.base_url() + "/flaky", dir.file("f"), fast_options(body));
    EXPECT_EQ(r.attempts, 3);
    DownloadOptions o = fast_options(body);
    o.max_attempts = 3;
    Error e = expect_error(ErrorCode::kNetwork, [&] { download_file(server.base_url() + "/down", dir.file("g"), o); });
    EXPECT_NE(e.message().find("after 3 attempts"), std::string::npos);
    EXPECT_EQ(server.requests("/down"), 3);
}

TEST(Download, AStalledTransferIsRetried) {
    HttpTestServer server;
    const std::string body = random_bytes(2 << 20, 10);
    server.set_file("/f", {.body = body, .cut_at = {500000}, .stall_ms = 4000});
    TempDir dir;
    DownloadResult r = download_file(server.base_url() + "/f", dir.file("f"), fast_options(body));
    EXPECT_EQ(r.attempts, 2);
    EXPECT_EQ(cortex::test::read_file(dir.file("f")), body);
}

TEST(Download, NotEnoughDiskSpaceWritesNothing) {
    HttpTestServer server;
    const std::string body = random_bytes(100000, 11);
    server.set_file("/f", {.body = body});
    TempDir dir;
    setenv("CORTEX_TEST_FREE_BYTES", "1000", 1);
    Error e = expect_error(ErrorCode::kIo, [&] { download_file(server.base_url() + "/f", dir.file("f"), fast_options(body)); });
    unsetenv("CORTEX_TEST_FREE_BYTES");
    EXPECT_NE(e.message().find("not enough disk space"), std::string::npos);
    EXPECT_FALSE(cortex::test::file_exists(dir.file("f.part")));
    EXPECT_EQ(server.requests("/f"), 0);
}

TEST(Download, CancelKeepsThePartForResume) {
    HttpTestServer server;
    const std::string body = random_bytes(8 << 20, 12);
    server.set_file("/f", {.body = body, .bytes_per_ms = 65536});
    TempDir dir;
    std::atomic<bool> cancel{false};
    DownloadOptions o = fast_options(body);
    o.cancel = &cancel;
    o.on_progress = [&](const DownloadProgress & p) {
        if (p.done > (1u << 20)) cancel = true;
    };
    expect_error(ErrorCode::kCancelled, [&] { download_file(server.base_url() + "/f", dir.file("f"), o); });
    const uint64_t kept = file_size(dir.file("f.part"));
    EXPECT_GT(kept, 1u << 20);
    EXPECT_FALSE(cortex::test::file_exists(dir.file("f")));
    DownloadResult r = download_file(server.base_url() + "/f", dir.file("f"), fast_options(body));
    EXPECT_EQ(r.resumed_from, kept);
    EXPECT_EQ(cortex::test::read_file(dir.file("f")), body);
}

TEST(Download, TwoConcurrentDownloadsOfOneFileDoNotCorruptIt) {
    HttpTestServer server;
    const std::string body = random_bytes(6 << 20, 13);
    server.set_file("/f", {.body = body, .bytes_per_ms = 1 << 17});
    TempDir dir;
    std::vector<std::thread> threads;
    std::vector<std::string> digests(2);
    for (int i = 0; i < 2; ++i) {
        threads.emplace_back([&, i] { digests[i] = download_file(server.base_url() + "/f", dir.file("f"), fast_options(body)).sha256; });
    }
    for (auto & t : threads) t.join();
    EXPECT_EQ(digests[0], sha256_of(body));
    EXPECT_EQ(digests[1], sha256_of(body));
    EXPECT_EQ(cortex::test::read_file(dir.file("f")), body);
    EXPECT_EQ(server.requests("/f"), 1) << "the second waited for the first and found the file complete";
}

// The disk fills up for real in the middle of a transfer (another writer takes the space): a
// clear error, nothing installed, the part kept; once space is freed the run resumes and the
// file is whole.
TEST(Download, DiskFullMidTransferKeepsThePartAndResumes) {
    cortex::test::SmallDisk disk(72 << 20);  // the file and the 64 MiB the download leaves free
    if (!disk.ok()) GTEST_SKIP() << "needs root to mount a small tmpfs";
    HttpTestServer server;
    const std::string body = random_bytes(4 << 20, 14);
    server.set_file("/f", {.body = body, .bytes_per_ms = 1 << 13});  // slow enough to fill the disk mid-way
    DownloadOptions o = fast_options(body);
    bool filled = false;
    o.on_progress = [&](const DownloadProgress & p) {
        if (!filled && p.done > (1u << 20)) {
            filled = true;
            disk.fill("other-writer");
        }
    };
    Error e = expect_error(ErrorCode::kIo, [&] { download_file(server.base_url() + "/f", disk.file("f"), o); });
    EXPECT_NE(e.hint().find("disk is full"), std::string::npos) << e.message() << " / " << e.hint();
    EXPECT_FALSE(cortex::test::file_exists(disk.file("f")));
    const uint64_t kept = file_size(disk.file("f.part"));
    EXPECT_GT(kept, 1u << 20);
    EXPECT_EQ(cortex::test::read_file(disk.file("f.part")), body.substr(0, kept)) << "the part holds only good bytes";

    std::filesystem::remove(disk.file("other-writer"));
    DownloadResult r = download_file(server.base_url() + "/f", disk.file("f"), fast_options(body));
    EXPECT_EQ(r.resumed_from, kept);
    EXPECT_EQ(cortex::test::read_file(disk.file("f")), body);
    EXPECT_FALSE(cortex::test::file_exists(disk.file("f.part")));
}
