// The HTTP server's threads (src/http/worker_pool.h): started as connections need them, the most
// recently idle one reused, so that clients that reconnect do not warm thread after thread.
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "http/http_server.h"
#include "http/worker_pool.h"

using cortex::http::WorkerPool;
using namespace std::chrono_literals;

namespace {

// Waits up to 5 s for `done` to hold, checking every millisecond.
template <typename F>
bool eventually(F done) {
    for (int i = 0; i < 5000; ++i) {
        if (done()) return true;
        std::this_thread::sleep_for(1ms);
    }
    return done();
}

int process_threads() {
    int n = 0;
    DIR * d = opendir("/proc/self/task");
    while (d && readdir(d)) ++n;
    if (d) closedir(d);
    return n - 2;  // "." and ".."
}

int connect_loopback(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// GET / on a new connection ("Connection: close"); returns the status line, "" on failure or
// after 5 s.
std::string get_root(int port) {
    const int fd = connect_loopback(port);
    if (fd < 0) return "";
    const std::string req = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string got;
    char buf[4096];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0) break;
        const ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    return got.substr(0, got.find("\r\n"));
}

}  // namespace

TEST(WorkerPool, SequentialTasksStayOnTheWarmThread) {
    WorkerPool pool(80);
    std::mutex m;
    std::set<std::thread::id> ids;
    for (int i = 0; i < 300; ++i) {
        pool.enqueue([&] {
            std::lock_guard<std::mutex> lock(m);
            ids.insert(std::this_thread::get_id());
        });
        // Once the task has run and its thread waits again, the next one must go to that thread.
        ASSERT_TRUE(eventually([&] { return pool.threads() > 0 && pool.idle_threads() == pool.threads(); }));
    }
    // httplib::ThreadPool, woken in turn, ran these on all of its 80 threads.
    EXPECT_EQ(ids.size(), 1u);
    EXPECT_EQ(pool.threads(), 1u);
}

TEST(WorkerPool, ConcurrentTasksGetThreadsUpToTheLimitThenWait) {
    WorkerPool pool(4);
    std::mutex m;
    std::condition_variable cv;
    bool release = false;
    std::atomic<int> started{0}, finished{0};
    for (int i = 0; i < 7; ++i) {
        pool.enqueue([&] {
            ++started;
            std::unique_lock<std::mutex> lock(m);
            cv.wait(lock, [&] { return release; });
            ++finished;
        });
    }
    ASSERT_TRUE(eventually([&] { return started == 4; }));
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(started, 4) << "more tasks ran at once than the pool has threads";
    EXPECT_EQ(pool.threads(), 4u);
    {
        std::lock_guard<std::mutex> lock(m);
        release = true;
    }
    cv.notify_all();
    ASSERT_TRUE(eventually([&] { return finished == 7; })) << "queued tasks did not run when threads freed up";
    EXPECT_EQ(pool.threads(), 4u);
}

TEST(WorkerPool, ShutdownFinishesQueuedTasksAndDropsLaterOnes) {
    std::atomic<int> ran{0};
    WorkerPool pool(1);
    std::atomic<bool> go{false};
    pool.enqueue([&] {
        while (!go) std::this_thread::sleep_for(1ms);
        ++ran;
    });
    for (int i = 0; i < 3; ++i) pool.enqueue([&] { ++ran; });
    std::thread stopper([&] { pool.shutdown(); });
    std::this_thread::sleep_for(20ms);
    go = true;
    stopper.join();
    EXPECT_EQ(ran, 4);
    pool.enqueue([&] { ++ran; });
    pool.shutdown();
    EXPECT_EQ(ran, 4);
}

// The daemon's HTTP server as it runs: one connection after another keeps to a thread or two,
// and connections held open at once still get a thread each.
TEST(HttpServerThreads, FollowTheConnectionsNotTheLimit) {
    cortex::http::HttpOptions options;
    options.port = 0;
    options.max_requests = 64;  // the default: up to 80 threads
    cortex::http::Backend backend{[] { return nullptr; }, [] { return std::string(); }, ""};
    const int before = process_threads();
    cortex::http::HttpServer server(options, backend);
    for (int i = 0; i < 100; ++i) ASSERT_EQ(get_root(server.port()), "HTTP/1.1 200 OK") << "request " << i;
    // The listening thread and a worker or two: a connection may come before the last one's
    // thread is back from closing it. (httplib::ThreadPool: 81.)
    EXPECT_LE(process_threads() - before, 8) << "sequential connections spread over many threads";

    // 20 connections that send nothing hold a thread each; a 21st is still answered.
    std::vector<int> idle;
    for (int i = 0; i < 20; ++i) {
        idle.push_back(connect_loopback(server.port()));
        ASSERT_GE(idle.back(), 0);
    }
    EXPECT_EQ(get_root(server.port()), "HTTP/1.1 200 OK");
    EXPECT_GE(process_threads() - before, 22);
    for (int fd : idle) close(fd);
}
