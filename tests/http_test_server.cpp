// The fault-injecting HTTP server of the download tests.
#include "http_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

namespace cortex::test {

int unused_loopback_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
}
namespace {

bool send_all(int fd, const char * data, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        data += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

std::string header_value(const std::string & head, const std::string & name) {
    std::string lower_head = head;
    for (char & c : lower_head) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    size_t at = lower_head.find("\r\n" + name + ":");
    if (at == std::string::npos) return "";
    size_t start = at + name.size() + 3;
    size_t end = head.find("\r\n", start);
    std::string v = head.substr(start, end - start);
    while (!v.empty() && v[0] == ' ') v.erase(0, 1);
    return v;
}

}  // namespace

HttpTestServer::HttpTestServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 || listen(listen_fd_, 64) != 0) {
        throw std::runtime_error("test server: cannot listen on 127.0.0.1");
    }
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
}

HttpTestServer::~HttpTestServer() {
    stopping_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    close(listen_fd_);
    acceptor_.join();
    std::vector<std::thread> workers;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        workers.swap(workers_);
    }
    for (auto & w : workers) w.join();
}

void HttpTestServer::set_file(const std::string & path, File file) {
    std::lock_guard<std::mutex> lock(mutex_);
    files_[path] = std::move(file);
}

int HttpTestServer::requests(const std::string & path) {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_[path];
}

std::vector<std::string> HttpTestServer::range_headers(const std::string & path) {
    std::lock_guard<std::mutex> lock(mutex_);
    return ranges_[path];
}

void HttpTestServer::accept_loop() {
    while (!stopping_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::lock_guard<std::mutex> lock(mutex_);
        workers_.emplace_back([this, fd] {
            handle(fd);
            close(fd);
        });
    }
}

void HttpTestServer::handle(int fd) {
    std::string head;
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0) return;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return;
        head.append(buf, static_cast<size_t>(n));
    }
    const size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
    const std::string path = head.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string range = header_value(head, "range");
    const std::string auth = header_value(head, "authorization");

    File file;
    bool known = false;
    int request_no = 0;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        request_no = requests_[path]++;
        ranges_[path].push_back(range);
        auto it = files_.find(path);
        if (it != files_.end()) {
            file = it->second;
            known = true;
        }
    }
    auto reply_status = [&](int status, const char * reason) {
        std::string body = std::string("{\"error\":\"") + reason + "\"}";
        std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
        send_all(fd, r.data(), r.size());
    };
    if (!known) return reply_status(404, "Not Found");
    if (!file.require_token.empty() && auth != "Bearer " + file.require_token) return reply_status(401, "Unauthorized");
    if (file.status != 200) return reply_status(file.status, file.status == 403 ? "Forbidden" : "Error");
    if (request_no < file.fail_first) return reply_status(500, "Internal Server Error");

    uint64_t size = file.body.size();
    int disk_fd = -1;
    if (!file.disk_path.empty()) {
        disk_fd = open(file.disk_path.c_str(), O_RDONLY | O_CLOEXEC);
        struct stat st {};
        fstat(disk_fd, &st);
        size = static_cast<uint64_t>(st.st_size);
    }
    uint64_t start = 0;
    bool partial = false;
    if (!range.empty() && !file.ignore_range && range.rfind("bytes=", 0) == 0) {
        start = std::strtoull(range.c_str() + 6, nullptr, 10);
        partial = true;
        if (start >= size) {
            if (disk_fd >= 0) close(disk_fd);
            std::string r = "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */" + std::to_string(size) +
                            "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            send_all(fd, r.data(), r.size());
            return;
        }
    }
    std::string r = std::string(partial ? "HTTP/1.1 206 Partial Content" : "HTTP/1.1 200 OK") +
                    "\r\nContent-Type: application/octet-stream\r\nContent-Length: " + std::to_string(size - start) +
                    "\r\nAccept-Ranges: bytes\r\nConnection: close\r\n";
    if (partial) r += "Content-Range: bytes " + std::to_string(start) + "-" + std::to_string(size - 1) + "/" + std::to_string(size) + "\r\n";
    if (!file.linked_etag.empty()) r += "X-Linked-Etag: \"" + file.linked_etag + "\"\r\n";
    r += "\r\n";
    if (!send_all(fd, r.data(), r.size())) return;

    uint64_t end = size;
    bool cut = false;
    if (request_no < static_cast<int>(file.cut_at.size()) && file.cut_at[request_no] > start && file.cut_at[request_no] < size) {
        end = file.cut_at[request_no];
        cut = true;
    }
    const uint64_t corrupt_at = size / 2;
    uint64_t pos = start;
    while (pos < end && !stopping_) {
        uint64_t chunk = std::min<uint64_t>(end - pos, file.bytes_per_ms > 0 ? file.bytes_per_ms : 1u << 20);
        bool ok;
        if (disk_fd >= 0) {
            off_t off = static_cast<off_t>(pos);
            ssize_t n = sendfile(fd, disk_fd, &off, chunk);
            ok = n > 0;
            if (ok) chunk = static_cast<uint64_t>(n);
        } else if (file.corrupt && corrupt_at >= pos && corrupt_at < pos + chunk) {
            std::string piece = file.body.substr(pos, chunk);
            piece[corrupt_at - pos] ^= 0x5A;
            ok = send_all(fd, piece.data(), piece.size());
        } else {
            ok = send_all(fd, file.body.data() + pos, chunk);
        }
        if (!ok) break;
        pos += chunk;
        if (file.bytes_per_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (cut && file.stall_ms > 0) {
        for (int waited = 0; waited < file.stall_ms && !stopping_; waited += 50) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (disk_fd >= 0) close(disk_fd);
}

}  // namespace cortex::test
