// A real HTTP/1.1 server on 127.0.0.1 for download tests and benchmarks, with the faults a
// download must survive: cut connections, ignored Range, wrong bytes, error statuses, stalls.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cortex::test {

// A TCP port on 127.0.0.1 that nothing listens on at the moment of the call.
int unused_loopback_port();

class HttpTestServer {
  public:
    struct File {
        std::string body;               // served from memory...
        std::string disk_path;          // ...or from this file (large benchmarks)
        int status = 200;               // anything else is sent instead of the file
        int fail_first = 0;             // the first N requests get 500
        bool ignore_range = false;      // always answer 200 with the whole file
        std::vector<uint64_t> cut_at;   // response i closes the connection at file offset cut_at[i]
        int stall_ms = 0;               // instead of closing at a cut, stall this long first
        bool corrupt = false;           // one byte in the middle is wrong
        std::string linked_etag;        // sent as X-Linked-Etag (Hugging Face's SHA-256 header)
        std::string require_token;      // answer 401 unless "Authorization: Bearer <token>"
        int bytes_per_ms = 0;           // throttle (0 = as fast as possible)
    };

    HttpTestServer();
    ~HttpTestServer();
    HttpTestServer(const HttpTestServer &) = delete;
    HttpTestServer & operator=(const HttpTestServer &) = delete;

    int port() const { return port_; }
    std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    void set_file(const std::string & path, File file);
    int requests(const std::string & path);
    std::vector<std::string> range_headers(const std::string & path);

  private:
    void accept_loop();
    void handle(int fd);

    int listen_fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread acceptor_;
    std::mutex mutex_;
    std::vector<std::thread> workers_;
    std::map<std::string, File> files_;
    std::map<std::string, int> requests_;
    std::map<std::string, std::vector<std::string>> ranges_;
};

}  // namespace cortex::test
