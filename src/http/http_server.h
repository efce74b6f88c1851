// The daemon's HTTP API: Ollama's /api/* and OpenAI's /v1/* on the preload daemon's own
// scheduler (docs/HTTP.md). Off unless cortex-preload gets --http or the "http" setting.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace cortex::preload {
class Scheduler;
}

namespace cortex::http {

struct HttpOptions {
    std::string host = "127.0.0.1";
    int port = 11434;                  // 0 = any free port (see HttpServer::port())
    std::string token;                 // non-empty: every route but /health needs "Bearer <token>"
    std::string cors_origin;           // empty = no CORS headers; "*" or one origin
    size_t max_body_bytes = 8u << 20;  // a larger request body is answered 413
    int max_requests = 64;             // generation requests at once; more are answered 429/503
    int read_timeout_s = 10;           // a client that stops sending is dropped after this
};

// What the daemon serves, asked anew for every request (a reload swaps the scheduler).
struct Backend {
    std::function<std::shared_ptr<preload::Scheduler>()> scheduler;  // null: no model loaded
    std::function<std::string()> model_name;                         // what it was asked for by
    std::string models_dir;                                          // /api/pull and /api/tags
};

class HttpServer {
  public:
    // Binds host:port and starts serving on its own threads. Throws Error(kIo) when the
    // address cannot be bound (in use, not local).
    HttpServer(HttpOptions options, Backend backend);
    // Stops accepting and ends the connections; generation in flight is cancelled.
    ~HttpServer();
    HttpServer(const HttpServer &) = delete;
    HttpServer & operator=(const HttpServer &) = delete;

    int port() const;  // the bound port

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

// Parses "HOST:PORT", "[V6]:PORT" or "PORT" (host 127.0.0.1). Throws Error(kInvalidArgument).
void parse_address(const std::string & text, std::string & host, int & port);
// 127.0.0.0/8, ::1 and "localhost".
bool is_loopback(const std::string & host);

}  // namespace cortex::http
