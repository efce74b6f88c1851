// Verified, resumable downloads over libcurl: .part + Range, SHA-256 while streaming, a lock
// between processes, retries with backoff, atomic rename into place.
#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <memory>
#include <thread>

#include "core/file_util.h"
#include "core/string_util.h"
#include "cortex/models.h"

namespace cortex::models {
namespace {

using Clock = std::chrono::steady_clock;

struct EvpDeleter {
    void operator()(EVP_MD_CTX * ctx) const { EVP_MD_CTX_free(ctx); }
};
using EvpPtr = std::unique_ptr<EVP_MD_CTX, EvpDeleter>;

EvpPtr new_sha256() {
    EvpPtr ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
        throw Error(ErrorCode::kInternal, "OpenSSL could not start a SHA-256", "check the OpenSSL installation");
    }
    return ctx;
}

std::string hex_digest(EVP_MD_CTX * ctx) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    static const char * kHex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
        out += kHex[md[i] >> 4];
        out += kHex[md[i] & 15];
    }
    return out;
}

// Feeds a file's first `limit` bytes into `ctx`.
void hash_file_into(const std::string & path, uint64_t limit, EVP_MD_CTX * ctx) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(ErrorCode::kIo, "cannot read '" + path + "': " + strerror(errno), "check its permissions");
    std::vector<char> buf(1 << 20);
    uint64_t done = 0;
    while (done < limit) {
        ssize_t n = read(fd, buf.data(), std::min<uint64_t>(buf.size(), limit - done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(n));
        done += static_cast<uint64_t>(n);
    }
    close(fd);
}

bool is_sha256_hex(const std::string & s) {
    if (s.size() != 64) return false;
    for (char c : s) {
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    }
    return true;
}

// Hashes a file that is being written, following the writer from another thread: the
// transfer never waits for SHA-256, and the bytes are read back from the page cache.
class BackgroundHasher {
  public:
    explicit BackgroundHasher(const std::string & path) : sha_(new_sha256()) {
        fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) throw Error(ErrorCode::kIo, "cannot read '" + path + "': " + strerror(errno), "check the models directory");
        worker_ = std::thread([this] { run(); });
    }
    ~BackgroundHasher() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        cv_.notify_all();
        worker_.join();
        close(fd_);
    }
    BackgroundHasher(const BackgroundHasher &) = delete;
    BackgroundHasher & operator=(const BackgroundHasher &) = delete;

    // The first `available` bytes of the file are final.
    void publish(uint64_t available) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            available_ = available;
        }
        cv_.notify_all();
    }
    // The file was truncated: hash from the start again.
    void restart() {
        std::unique_lock<std::mutex> lock(mutex_);
        restart_ = true;
        available_ = 0;
        cv_.notify_all();
        cv_.wait(lock, [this] { return !restart_ || failed_; });
    }
    // Waits until the first `total` bytes are hashed; returns the hex digest.
    std::string finish(uint64_t total) {
        publish(total);
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return (hashed_ >= total && !restart_) || failed_; });
        if (failed_) throw Error(ErrorCode::kIo, "cannot read back the downloaded file to hash it: " + fail_detail_, "check the disk");
        return hex_digest(sha_.get());
    }

  private:
    void run() {
        std::vector<char> buf(4 << 20);
        int eof_retries = 0;
        std::unique_lock<std::mutex> lock(mutex_);
        while (true) {
            cv_.wait(lock, [this] { return stop_ || restart_ || available_ > hashed_; });
            if (stop_) return;
            if (restart_) {
                EVP_DigestInit_ex(sha_.get(), EVP_sha256(), nullptr);
                hashed_ = 0;
                restart_ = false;
                cv_.notify_all();
                continue;
            }
            const uint64_t from = hashed_, n = std::min<uint64_t>(available_ - hashed_, buf.size());
            lock.unlock();
            ssize_t got = pread(fd_, buf.data(), n, static_cast<off_t>(from));
            if (got > 0) EVP_DigestUpdate(sha_.get(), buf.data(), static_cast<size_t>(got));
            lock.lock();
            if (got == 0 && !restart_ && ++eof_retries < 50) {
                // Published but not readable yet (a truncate and rewrite racing this read):
                // wait for the writer rather than fail.
                cv_.wait_for(lock, std::chrono::milliseconds(100));
                continue;
            }
            if (got > 0) eof_retries = 0;
            if (got <= 0 && !restart_) {
                failed_ = true;
                fail_detail_ = got == 0 ? "end of file at " + std::to_string(from) + " of " + std::to_string(available_)
                                        : std::string(strerror(errno));
                cv_.notify_all();
                return;
            }
            if (!restart_) hashed_ = from + static_cast<uint64_t>(got);
            cv_.notify_all();
        }
    }

    EvpPtr sha_;
    int fd_ = -1;
    std::thread worker_;
    std::mutex mutex_;
    std::condition_variable cv_;
    uint64_t available_ = 0, hashed_ = 0;
    bool stop_ = false, restart_ = false, failed_ = false;
    std::string fail_detail_;
};

struct CurlDeleter {
    void operator()(CURL * c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
    void operator()(curl_slist * l) const { curl_slist_free_all(l); }
};

// The state of one HTTP attempt, shared with libcurl's callbacks.
struct Transfer {
    int fd = -1;
    BackgroundHasher * hasher = nullptr;
    uint64_t offset = 0;        // bytes of the .part before this attempt
    uint64_t written = 0;       // bytes written in this attempt
    long status = 0;            // of the final response
    bool status_seen = false;   // body bytes of the final response started
    bool restart = false;       // server ignored Range: the .part was truncated
    bool range_requested = false;
    uint64_t content_length = 0;
    std::string server_digest;  // X-Linked-Etag / ETag holding a sha256
    int write_errno = 0;
    bool cancelled = false;
    const DownloadOptions * options = nullptr;
    uint64_t total = 0;
    Clock::time_point last_report;
    Clock::time_point started;
    CURL * curl = nullptr;
};

size_t on_header(char * data, size_t size, size_t n, void * user) {
    auto * t = static_cast<Transfer *>(user);
    std::string line(data, size * n);
    std::string l = to_lower(line);
    if (l.rfind("http/", 0) == 0) {
        // A new response (redirects come first): only the last one's headers matter.
        t->content_length = 0;
        size_t sp = line.find(' ');
        t->status = sp == std::string::npos ? 0 : std::atol(line.c_str() + sp + 1);
    } else if (l.rfind("content-length:", 0) == 0) {
        t->content_length = std::strtoull(line.c_str() + 15, nullptr, 10);
    } else if (l.rfind("x-linked-etag:", 0) == 0 || l.rfind("etag:", 0) == 0) {
        std::string v = line.substr(line.find(':') + 1);
        std::string digest;
        for (char c : v) {
            if (std::isxdigit(static_cast<unsigned char>(c))) digest += c;
        }
        // Hugging Face publishes an LFS file's SHA-256 as X-Linked-Etag; an ETag that is 64 hex
        // digits is the same thing on mirrors.
        if (is_sha256_hex(digest) && (l.rfind("x-linked-etag:", 0) == 0 || t->server_digest.empty())) {
            t->server_digest = to_lower(digest);
        }
    }
    return size * n;
}

size_t on_body(char * data, size_t size, size_t n, void * user) {
    auto * t = static_cast<Transfer *>(user);
    const size_t len = size * n;
    if (t->options->cancel && t->options->cancel->load()) {
        t->cancelled = true;
        return 0;
    }
    if (!t->status_seen) {
        t->status_seen = true;
        if (t->status == 200 && t->range_requested && t->offset > 0) {
            // The server sent the whole file instead of the rest: start the .part over.
            if (ftruncate(t->fd, 0) != 0 || lseek(t->fd, 0, SEEK_SET) != 0) {
                t->write_errno = errno;
                return 0;
            }
            t->hasher->restart();
            t->offset = 0;
            t->restart = true;
        } else if (t->status != 200 && t->status != 206) {
            return len;  // an error page: not written, the status says what happened
        }
    }
    if (t->status != 200 && t->status != 206) return len;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(t->fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            t->write_errno = w < 0 ? errno : EIO;
            return 0;
        }
        done += static_cast<size_t>(w);
    }
    t->written += len;
    t->hasher->publish(t->offset + t->written);
    if (t->options->on_progress) {
        auto now = Clock::now();
        if (now - t->last_report >= std::chrono::milliseconds(100)) {
            t->last_report = now;
            double secs = std::chrono::duration<double>(now - t->started).count();
            DownloadProgress p;
            p.done = t->offset + t->written;
            p.total = t->total;
            p.resumed = t->offset;
            p.bytes_per_second = secs > 0 ? t->written / secs : 0;
            t->options->on_progress(p);
        }
    }
    return len;
}

std::string status_message(long status, const std::string & url) {
    switch (status) {
        case 401:
        case 403:
            return "the server refused access to " + url + " (HTTP " + std::to_string(status) + ")";
        case 404: return url + " does not exist on the server (HTTP 404)";
        default: return "the server answered HTTP " + std::to_string(status) + " for " + url;
    }
}

bool transient_status(long status) { return status == 408 || status == 429 || status >= 500; }

// An exclusive lock on `path`, waiting for another holder; released on destruction.
class FileLock {
  public:
    explicit FileLock(const std::string & path) {
        fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) throw Error(ErrorCode::kIo, "cannot create lock '" + path + "': " + strerror(errno), "check permissions");
        if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            fprintf(stderr, "waiting for another download of the same file to finish...\n");
            while (flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
            }
        }
    }
    ~FileLock() {
        if (fd_ >= 0) close(fd_);
    }
    FileLock(const FileLock &) = delete;
    FileLock & operator=(const FileLock &) = delete;

  private:
    int fd_ = -1;
};

}  // namespace

uint64_t free_bytes(const std::string & dir) {
    if (const char * fake = std::getenv("CORTEX_TEST_FREE_BYTES")) return std::strtoull(fake, nullptr, 10);
    struct statvfs vfs {};
    if (statvfs(dir.c_str(), &vfs) != 0) return UINT64_MAX;
    return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

std::string sha256_file(const std::string & path) {
    EvpPtr sha = new_sha256();
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) throw Error(ErrorCode::kNotFound, "'" + path + "' does not exist", "check the path");
    hash_file_into(path, static_cast<uint64_t>(st.st_size), sha.get());
    return hex_digest(sha.get());
}

DownloadResult download_file(const std::string & url, const std::string & dest, const DownloadOptions & opt) {
    static const bool curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    if (!curl_ready) throw Error(ErrorCode::kInternal, "libcurl failed to initialise", "check the libcurl installation");
    const std::string dir = dest.substr(0, dest.find_last_of('/'));
    make_dirs(dir);
    const std::string part = dest + ".part";
    FileLock lock(dest + ".lock");

    DownloadResult result;
    const std::string expected = to_lower(opt.expected_sha256);
    // Another process may have finished it while we waited for the lock.
    if (is_regular_file(dest) && opt.expected_size > 0 && !expected.empty()) {
        struct stat st {};
        stat(dest.c_str(), &st);
        if (static_cast<uint64_t>(st.st_size) == opt.expected_size && sha256_file(dest) == expected) {
            result.sha256 = expected;
            result.digest_source = "catalog";
            result.bytes = opt.expected_size;
            return result;
        }
    }

    // Room for what is still missing (and some to spare), checked before anything is written.
    struct stat part_st {};
    const uint64_t part_size = stat(part.c_str(), &part_st) == 0 ? static_cast<uint64_t>(part_st.st_size) : 0;
    if (opt.expected_size > part_size) {
        constexpr uint64_t kSpare = 64u << 20;  // left to the rest of the system
        const uint64_t needed = opt.expected_size - part_size, free = free_bytes(dir);
        if (needed + kSpare > free) {
            throw Error(ErrorCode::kIo,
                        "not enough disk space in " + dir + ": " + std::to_string((needed + kSpare + (1u << 20) - 1) >> 20) +
                            " MiB needed (the file and 64 MiB to spare), " + std::to_string(free >> 20) + " MiB free",
                        "free some space, or point CORTEX_MODELS_DIR at a larger disk");
        }
    }

    int fd = open(part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw Error(ErrorCode::kIo, "cannot create '" + part + "': " + strerror(errno), "check the models directory");
    struct FdCloser {
        int fd;
        ~FdCloser() { close(fd); }
    } closer{fd};

    struct stat st {};
    fstat(fd, &st);
    uint64_t have = static_cast<uint64_t>(st.st_size);
    if (opt.expected_size > 0 && have > opt.expected_size) {
        if (ftruncate(fd, 0) != 0) throw Error(ErrorCode::kIo, "cannot truncate '" + part + "'", "remove it by hand");
        have = 0;
    }
    // What an earlier run left is hashed while the rest arrives.
    BackgroundHasher hasher(part);
    hasher.publish(have);
    result.resumed_from = have;

    std::string server_digest;
    long last_status = 0;
    std::string last_error;
    int delay_ms = opt.retry_delay_ms;
    bool complete = false;
    // max_attempts bounds failures in a row that brought no new bytes; an attempt that made
    // progress resets the count and the backoff (a flaky link still gets the file).
    int failures_in_a_row = 0;
    while (!complete && failures_in_a_row < opt.max_attempts) {
        ++result.attempts;
        if (lseek(fd, static_cast<off_t>(have), SEEK_SET) < 0) throw Error(ErrorCode::kIo, "cannot seek in '" + part + "'", "remove it");
        if (opt.expected_size > 0 && have == opt.expected_size) {
            complete = true;
            break;
        }
        Transfer t;
        t.fd = fd;
        t.hasher = &hasher;
        t.offset = have;
        t.options = &opt;
        t.total = opt.expected_size;
        t.started = t.last_report = Clock::now();

        std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
        std::unique_ptr<curl_slist, SlistDeleter> headers;
        if (!opt.bearer_token.empty()) {
            headers.reset(curl_slist_append(nullptr, ("Authorization: Bearer " + opt.bearer_token).c_str()));
        }
        curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
        curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(curl.get(), CURLOPT_MAXREDIRS, 10L);
        curl_easy_setopt(curl.get(), CURLOPT_USERAGENT, "cortex-model/0.1");
        curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, 30L);
        curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_TIME, static_cast<long>(opt.stall_seconds));
        curl_easy_setopt(curl.get(), CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(curl.get(), CURLOPT_HEADERDATA, &t);
        curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &t);
        curl_easy_setopt(curl.get(), CURLOPT_BUFFERSIZE, 512L * 1024);
        if (headers) curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get());
        if (have > 0) {
            curl_easy_setopt(curl.get(), CURLOPT_RANGE, (std::to_string(have) + "-").c_str());
            t.range_requested = true;
        }
        t.curl = curl.get();
        CURLcode rc = curl_easy_perform(curl.get());
        have = t.offset + t.written;
        if (!t.server_digest.empty()) server_digest = t.server_digest;
        last_status = t.status;
        if (t.restart) result.resumed_from = 0;

        if (t.cancelled) {
            fsync(fd);
            throw Error(ErrorCode::kCancelled,
                        "download interrupted at " + std::to_string(have >> 20) + " MiB; the partial file " + part + " is kept",
                        "run the same command again to resume");
        }
        if (t.write_errno != 0) {
            throw Error(ErrorCode::kIo, "cannot write '" + part + "': " + strerror(t.write_errno),
                        t.write_errno == ENOSPC ? "the disk is full: free some space and run the command again to resume"
                                                : "check the models directory");
        }
        if (rc == CURLE_OK && (t.status == 200 || t.status == 206)) {
            if (opt.expected_size == 0 || have == opt.expected_size) {
                complete = true;
                break;
            }
            last_error = "the server sent " + std::to_string(have) + " bytes, the catalog says " + std::to_string(opt.expected_size);
            if (have > opt.expected_size) break;
        } else if (rc == CURLE_OK && t.status == 416 && opt.expected_size > 0 && have == opt.expected_size) {
            complete = true;
            break;
        } else if (rc == CURLE_OK && t.status == 416) {
            // The .part does not match the file any more: start over.
            hasher.restart();
            if (ftruncate(fd, 0) != 0) throw Error(ErrorCode::kIo, "cannot truncate '" + part + "'", "remove it by hand");
            have = 0;
            result.resumed_from = 0;
            last_error = "the server could not resume the partial file";
        } else if (rc == CURLE_OK && !transient_status(t.status)) {
            std::string hint = "check the model name and the mirror (CORTEX_MODEL_BASE_URL)";
            if (t.status == 401 || t.status == 403) {
                hint = opt.bearer_token.empty()
                           ? "this model is gated: accept its license on huggingface.co, then set HF_TOKEN to an access token"
                           : "HF_TOKEN was sent but refused: check the token and that you accepted the model's license";
            }
            throw Error(ErrorCode::kNetwork, status_message(t.status, url), hint);
        } else if (rc != CURLE_OK) {
            last_error = curl_easy_strerror(rc);
            if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT) {
                throw Error(ErrorCode::kNetwork, "bad download URL " + url + ": " + last_error, "check CORTEX_MODEL_BASE_URL");
            }
        } else {
            last_error = status_message(t.status, url);
        }
        if (t.written > 0) {
            failures_in_a_row = 0;
            delay_ms = opt.retry_delay_ms;
        }
        if (++failures_in_a_row < opt.max_attempts) {
            std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
            delay_ms = std::min(delay_ms * 2, 30000);
        }
    }
    if (!complete) {
        fsync(fd);
        throw Error(ErrorCode::kNetwork,
                    "download of " + url + " failed after " + std::to_string(result.attempts) + " attempts: " + last_error +
                        (last_status ? " (last HTTP status " + std::to_string(last_status) + ")" : ""),
                    "check the network and run the command again: it resumes from " + std::to_string(have >> 20) + " MiB");
    }
    if (fsync(fd) != 0) throw Error(ErrorCode::kIo, "cannot flush '" + part + "': " + strerror(errno), "check the disk");

    result.sha256 = hasher.finish(have);
    result.bytes = have;
    std::string want = expected;
    result.digest_source = "catalog";
    if (want.empty() && !server_digest.empty()) {
        want = server_digest;
        result.digest_source = "server";
    }
    if (want.empty()) result.digest_source = "none";
    if (!want.empty() && result.sha256 != want) {
        unlink(part.c_str());
        throw Error(ErrorCode::kChecksumMismatch,
                    "the download of " + url + " is corrupt: SHA-256 " + result.sha256 + ", expected " + want +
                        " (from the " + result.digest_source + "); nothing was installed",
                    "run the command again; if it keeps failing, the mirror serves a different file");
    }
    if (rename(part.c_str(), dest.c_str()) != 0) {
        throw Error(ErrorCode::kIo, "cannot move '" + part + "' to '" + dest + "': " + strerror(errno), "check the models directory");
    }
    return result;
}

}  // namespace cortex::models
