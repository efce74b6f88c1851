// cortex-preload: keep a model warm behind a Unix socket. run (foreground), start (background,
// waits until the model answers), stop, status.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli_common.h"
#include "core/file_util.h"
#include "cortex/config.h"
#include "cortex/llm.h"
#include "cortex/preload.h"
#include "http/http_server.h"
#include "llm/rpc.h"
#include "preload/scheduler.h"
#include "preload/server.h"

using namespace cortex;
using nlohmann::json;

namespace {

preload::Server * g_server = nullptr;

void on_signal(int) {
    if (g_server) g_server->stop();
}

// A model file truncated in place while mapped makes libllama's next read of a lost page raise
// SIGBUS. The scheduler checks the file before every decode; this covers a truncation that lands
// during one: say why in the log rather than die unexplained, and exit with a status that
// systemd's Restart=on-failure restarts. Clients see the connection drop and retry or fail.
void on_sigbus(int) {
    static const char kMessage[] =
        "cortex-preload: fatal: SIGBUS reading a mapped file: the model file was most likely truncated while in use; "
        "restore it and start the daemon again\n";
    ssize_t ignored = write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    (void)ignored;
    _exit(74);  // EX_IOERR
}

std::vector<std::string> g_argv;  // to start again as the same command after an RPC server is lost

// ggml-rpc cannot go on once a server drops mid-request, and its threads cannot be unwound, so the
// daemon answers the requests in flight with an error naming the server and replaces itself
// (same pid, same listening socket, so clients and systemd see one daemon) with a process that
// loads the model on the devices left. `cortex-preload reload` uses the server again.
void on_rpc_lost(const std::vector<std::string> & lost) {
    const std::string servers = llm::join_endpoints(lost);
    int keep_fd = -1;
    if (g_server) {
        g_server->abandon_requests(Error(ErrorCode::kNetwork, "the RPC server " + servers + " was lost in the middle of this request",
                                         "check that ggml-rpc-server still runs there; the daemon goes on without it "
                                         "(cortex-preload status), and `cortex-preload reload` uses it again once it answers"));
        keep_fd = g_server->listen_fd();
    }
    // Nothing but the listening socket crosses the exec (cpp-httplib's sockets are not CLOEXEC).
    syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
    if (keep_fd >= 0 && fcntl(keep_fd, F_SETFD, 0) == 0) setenv("CORTEX_PRELOAD_LISTEN_FD", std::to_string(keep_fd).c_str(), 1);
    setenv("CORTEX_RPC_LOST", servers.c_str(), 1);
    fprintf(stderr, "cortex-preload: going on without %s: starting again on the devices left\n", servers.c_str());
    std::vector<char *> argv;
    for (std::string & a : g_argv) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    fprintf(stderr, "cortex-preload: cannot start again: %s\n", strerror(errno));
}

// After on_rpc_lost: the device flags of the first load, without the servers that were lost, and
// the notice that status shows. A reload reads the settings whole again.
std::map<std::string, std::string> without_lost_servers(const Settings & settings, std::map<std::string, std::string> flags,
                                                        std::string & notice) {
    const char * lost_env = std::getenv("CORTEX_RPC_LOST");
    if (!lost_env) return flags;
    const std::string lost_list = lost_env;
    unsetenv("CORTEX_RPC_LOST");
    const std::vector<std::string> lost = llm::parse_rpc_servers(lost_list, true);
    std::vector<std::string> left;
    for (const std::string & e : settings.model_config().rpc_servers) {
        if (std::find(lost.begin(), lost.end(), e) == lost.end()) left.push_back(e);
    }
    flags["rpc_servers"] = llm::join_endpoints(left);
    flags["tensor_split"] = "";  // its shares were for the devices that were there
    notice = "RPC server " + lost_list + " stopped answering in the middle of a request; serving without it on " +
             (left.empty() ? "the local devices" : "the local devices and " + llm::join_endpoints(left)) +
             "; `cortex-preload reload` uses it again once it answers";
    fprintf(stderr, "cortex-preload: %s\n", notice.c_str());
    return flags;
}

// systemd's Type=notify: one datagram to $NOTIFY_SOCKET.
void notify_systemd(const std::string & state) {
    const char * path = std::getenv("NOTIFY_SOCKET");
    if (!path || !*path) return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
    sendto(fd, state.data(), state.size(), 0, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
    close(fd);
}

struct Options {
    std::string model, socket, http;
    int parallel = 4;
    int sampling_threads = -1;  // -1: the Scheduler's choice
    bool json = false;
    size_t http_max_body = 8u << 20;
    int http_max_requests = 64;
    std::string rpc, split_mode, tensor_split, main_gpu;  // multi-device settings as flags (issue #9)
};

// The multi-device flags as settings; kept for every reload, like --model's first value.
std::map<std::string, std::string> device_flags(const Options & o) {
    std::map<std::string, std::string> flags;
    if (!o.rpc.empty()) flags["rpc_servers"] = o.rpc;
    if (!o.split_mode.empty()) flags["split_mode"] = o.split_mode;
    if (!o.tensor_split.empty()) flags["tensor_split"] = o.tensor_split;
    if (!o.main_gpu.empty()) flags["main_gpu"] = o.main_gpu;
    return flags;
}

// The HTTP API when the "http" setting (or --http) asks for it. A non-loopback address must come
// from the command line: a stray CORTEX_HTTP or config.json line must never expose the model.
std::unique_ptr<http::HttpServer> start_http(const Settings & settings, const Options & o, preload::Server & server) {
    const Setting & address = settings.get("http");
    if (address.value.empty()) return nullptr;
    http::HttpOptions options;
    http::parse_address(address.value, options.host, options.port);
    if (!http::is_loopback(options.host) && address.source != SettingSource::kFlag) {
        throw Error(ErrorCode::kInvalidArgument,
                    "the http setting (" + address.origin + ") names " + options.host + ", which is not a loopback address",
                    "a non-local address must be given on the command line: cortex-preload start --http " + address.value);
    }
    options.token = settings.get("http_token").value;
    options.cors_origin = settings.get("http_cors_origin").value;
    options.max_body_bytes = o.http_max_body;
    options.max_requests = o.http_max_requests;
    http::Backend backend{[&server] { return server.current(); }, [&server] { return server.current_name(); }, settings.models_dir()};
    auto api = std::make_unique<http::HttpServer>(options, backend);
    fprintf(stderr, "cortex-preload: HTTP API (Ollama /api, OpenAI /v1) on http://%s:%d%s\n", options.host.c_str(), api->port(),
            options.token.empty() ? "" : " (bearer token required)");
    if (!http::is_loopback(options.host) && options.token.empty()) {
        fprintf(stderr, "cortex-preload: warning: %s is reachable from other machines and has no token: set CORTEX_HTTP_TOKEN\n",
                options.host.c_str());
    }
    return api;
}

int cmd_run(const Options & o) {
    std::map<std::string, std::string> flags = device_flags(o);
    if (!o.model.empty()) flags["model"] = o.model;
    if (!o.http.empty()) flags["http"] = o.http;
    const Settings settings = Settings::load(flags);
    const std::string name = settings.model();
    if (name.empty()) {
        throw Error(ErrorCode::kNotFound, "no model to preload", "pass --model NAME, or set LLAMACPP_MODEL");
    }
    const std::string socket = o.socket.empty() ? settings.preload_socket() : o.socket;
    signal(SIGBUS, on_sigbus);  // loading reads the mapping too
    llm::set_rpc_lost_handler(on_rpc_lost);
    std::string notice;
    const Settings first = Settings::load(without_lost_servers(settings, flags, notice));
    // Settings are read again on every (re)load, so that "reload" picks up edits.
    const int parallel = o.parallel, sampling_threads = o.sampling_threads;
    auto factory = [parallel, sampling_threads, first = name, devices = device_flags(o)](std::string & model) {
        const Settings now = Settings::load(devices);
        if (model.empty()) model = !now.model().empty() ? now.model() : first;
        llm::ModelManager manager(now.models_dir());
        return std::make_shared<preload::Scheduler>(manager.resolve(model), now.model_config(), parallel, sampling_threads);
    };
    llm::ModelManager manager(settings.models_dir());
    auto scheduler = std::make_shared<preload::Scheduler>(manager.resolve(name), first.model_config(), parallel, sampling_threads);
    // Socket activation: systemd passes the listening socket as fd 3; on_rpc_lost passes ours.
    int inherited = -1;
    bool own_socket = false;
    const char * listen_pid = std::getenv("LISTEN_PID");
    const char * listen_fds = std::getenv("LISTEN_FDS");
    if (const char * fd = std::getenv("CORTEX_PRELOAD_LISTEN_FD")) {
        inherited = std::atoi(fd);
        own_socket = true;
        fcntl(inherited, F_SETFD, FD_CLOEXEC);
        unsetenv("CORTEX_PRELOAD_LISTEN_FD");
    } else if (listen_pid && listen_fds && std::atoi(listen_pid) == getpid() && std::atoi(listen_fds) >= 1) {
        inherited = 3;
    }
    preload::Server server(scheduler, factory, {socket, 4u << 20, 128, name, inherited, own_socket, notice});
    g_server = &server;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "cortex-preload: %s (%s) loaded in %.0f ms, %d slots, serving on %s\n", name.c_str(), scheduler->path().c_str(),
            scheduler->load_ms(), parallel, socket.c_str());
    scheduler.reset();  // the server owns it now: a reload can free it
    std::unique_ptr<http::HttpServer> api = start_http(settings, o, server);
    notify_systemd("READY=1\nSTATUS=serving " + name);
    server.run();
    api.reset();  // after the scheduler drained: requests in flight have their answers
    notify_systemd("STOPPING=1");
    g_server = nullptr;
    return 0;
}

std::string socket_of(const Options & o) { return o.socket.empty() ? Settings::load().preload_socket() : o.socket; }

int cmd_start(const Options & o, const char * self) {
    const std::string socket = socket_of(o);
    if (auto client = preload::Client::connect(socket)) {
        preload::DaemonStatus s = client->status();
        printf("already running: pid %d serving %s on %s\n", s.pid, s.model_name.c_str(), socket.c_str());
        return 0;
    }
    const std::string log_dir = Settings::load().home() + "/logs";
    make_dirs(log_dir);
    const std::string log = log_dir + "/preload.log";
    const auto t0 = std::chrono::steady_clock::now();
    pid_t pid = fork();
    if (pid < 0) throw Error(ErrorCode::kIo, "fork failed", "check the system's process limits");
    if (pid == 0) {
        setsid();
        int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        std::vector<std::string> args = {self, "run", "--parallel", std::to_string(o.parallel), "--socket", socket};
        if (!o.model.empty()) args.insert(args.end(), {"--model", o.model});
        if (!o.http.empty()) args.insert(args.end(), {"--http", o.http});
        if (o.sampling_threads >= 0) args.insert(args.end(), {"--sampling-threads", std::to_string(o.sampling_threads)});
        for (const auto & [flag, value] : std::map<std::string, std::string>{
                 {"--rpc", o.rpc}, {"--split-mode", o.split_mode}, {"--tensor-split", o.tensor_split}, {"--main-gpu", o.main_gpu}}) {
            if (!value.empty()) args.insert(args.end(), {flag, value});
        }
        args.insert(args.end(), {"--http-max-body", std::to_string(o.http_max_body), "--http-max-requests", std::to_string(o.http_max_requests)});
        std::vector<char *> argv;
        for (auto & a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(self, argv.data());
        _exit(127);
    }
    // Ready when the socket answers; failed when the daemon exits first.
    for (int i = 0; i < 6000; ++i) {
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            std::string text;
            read_file(log, text);
            fprintf(stderr, "%s", text.c_str());
            throw Error(ErrorCode::kLoadFailed, "the preload daemon exited during start-up (log: " + log + ")",
                        "fix the error above, or run it in the foreground: cortex-preload run");
        }
        if (auto client = preload::Client::connect(socket)) {
            preload::DaemonStatus s = client->status();
            const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            if (o.json) {
                printf("%s\n", json::object({{"pid", s.pid}, {"socket", socket}, {"model", s.model_name}, {"ready_ms", ms}}).dump().c_str());
            } else {
                printf("cortex-preload: pid %d serving %s on %s (ready in %.0f ms)\n", s.pid, s.model_name.c_str(), socket.c_str(), ms);
            }
            return 0;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(pid, SIGKILL);
    throw Error(ErrorCode::kLoadFailed, "the preload daemon did not answer within 2 minutes (log: " + log + ")", "see the log");
}

int cmd_stop(const Options & o) {
    const std::string socket = socket_of(o);
    auto client = preload::Client::connect(socket);
    if (!client) {
        printf("not running (no daemon answers on %s)\n", socket.c_str());
        return 0;
    }
    const int pid = client->status().pid;
    client->shutdown();
    // Graceful first: in-flight requests finish (the daemon bounds that to 10 s).
    for (int i = 0; i < 750 && kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (kill(pid, 0) == 0) {
        kill(pid, SIGKILL);
        printf("stopped pid %d (forced after 15 s)\n", pid);
    } else {
        printf("stopped pid %d\n", pid);
    }
    return 0;
}

int cmd_reload(const Options & o) {
    const std::string socket = socket_of(o);
    auto client = preload::Client::connect(socket);
    if (!client) throw Error(ErrorCode::kNotFound, "no daemon answers on " + socket, "start it: cortex-preload start");
    std::string result = client->reload(o.model);
    json j = json::parse(result);
    if (o.json) printf("%s\n", j.dump().c_str());
    else printf("reloaded: %s (%s) in %.0f ms\n", j.value("model", "").c_str(), j.value("path", "").c_str(), j.value("load_ms", 0.0));
    return 0;
}

int cmd_status(const Options & o) {
    const std::string socket = socket_of(o);
    auto client = preload::Client::connect(socket);
    if (!client) {
        if (o.json) printf("%s\n", json::object({{"running", false}, {"socket", socket}}).dump().c_str());
        else printf("not running (no daemon answers on %s)\nstart it: cortex-preload start --model NAME\n", socket.c_str());
        return 3;  // as systemctl status does for a stopped unit
    }
    preload::DaemonStatus s = client->status();
    json j = json::parse(s.json);
    j["running"] = true;
    if (o.json) {
        printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    printf("running: pid %d, up %.0f s, socket %s, %d clients, %.1f MB resident\n", s.pid, s.uptime_s, s.socket.c_str(),
           j.value("clients", 0), j.value("resident_bytes", 0.0) / 1e6);
    if (j.contains("notice")) printf("notice: %s\n", j.value("notice", "").c_str());
    for (const auto & m : j["models"]) {
        printf("model %s: %s (%s)\n  n_ctx %d per slot, %d slots (%d active, %d queued), GPU layers %d, KV cache %.1f MB\n"
               "  %llu requests, %llu tokens, recent %.1f tokens/s\n",
               m.value("name", "").c_str(), m.value("path", "").c_str(), m.value("description", "").c_str(), m.value("n_ctx", 0),
               m.value("slots", 0), m.value("active", 0), m.value("queued", 0), m.value("n_gpu_layers", 0),
               m.value("kv_cache_bytes", 0.0) / 1e6, static_cast<unsigned long long>(m.value("requests_served", 0ull)),
               static_cast<unsigned long long>(m.value("tokens_generated", 0ull)), m.value("recent_tokens_per_second", 0.0));
    }
    return 0;
}

}  // namespace

int main(int argc, char ** argv) {
    CLI::App app{"cortex-preload: keep a model warm for instant requests"};
    app.require_subcommand(1);
    Options o;
    auto add_common = [&](CLI::App * sub, bool model) {
        sub->add_option("--socket", o.socket, "socket path (default: the preload_socket setting)");
        if (model) {
            sub->add_option("--model", o.model, "model name or path (default: the model setting)");
            sub->add_option("--parallel", o.parallel, "requests served at once")->check(CLI::Range(1, 64));
            sub->add_option("--sampling-threads", o.sampling_threads,
                            "threads that pick tokens alongside the scheduler (default: 3 when a GPU decodes, 0 on the CPU)")
                ->check(CLI::Range(0, 16));
            sub->add_option("--http", o.http, "also serve Ollama's and OpenAI's HTTP API on PORT or HOST:PORT (loopback unless a host is named)");
            sub->add_option("--http-max-body", o.http_max_body, "largest HTTP request body in bytes (413 beyond)")->check(CLI::Range(1024, 1 << 30));
            sub->add_option("--http-max-requests", o.http_max_requests, "HTTP generation requests at once (429/503 beyond)")->check(CLI::Range(1, 4096));
            sub->add_option("--rpc", o.rpc, "ggml-rpc-server HOST:PORT list whose devices take part (LLAMACPP_RPC_SERVERS)");
            sub->add_option("--split-mode", o.split_mode, "layer, row or none: how the model spreads over devices (LLAMACPP_SPLIT_MODE)");
            sub->add_option("--tensor-split", o.tensor_split, "share of each device, e.g. 3,1 (LLAMACPP_TENSOR_SPLIT)");
            sub->add_option("--main-gpu", o.main_gpu, "device index for --split-mode none (LLAMACPP_MAIN_GPU)");
        }
        sub->add_flag("--json", o.json, "print JSON");
    };
    CLI::App * run = app.add_subcommand("run", "serve in the foreground (for service managers)");
    CLI::App * start = app.add_subcommand("start", "start in the background and wait until ready");
    CLI::App * stop = app.add_subcommand("stop", "finish in-flight requests and exit");
    CLI::App * status = app.add_subcommand("status", "what the daemon serves and how it does");
    CLI::App * reload = app.add_subcommand("reload", "re-read the settings and load the model again (or --model another)");
    add_common(run, true);
    add_common(start, true);
    add_common(stop, false);
    add_common(status, false);
    add_common(reload, false);
    reload->add_option("--model", o.model, "load this model instead");
    CLI11_PARSE(app, argc, argv);
    g_argv.assign(argv, argv + argc);

    std::string self(4096, '\0');
    ssize_t n = readlink("/proc/self/exe", self.data(), self.size() - 1);
    self.resize(n > 0 ? static_cast<size_t>(n) : 0);
    if (self.empty()) self = argv[0];
    return cortex::cli::run_guarded(o.json, [&] {
        if (run->parsed()) return cmd_run(o);
        if (start->parsed()) return cmd_start(o, self.c_str());
        if (stop->parsed()) return cmd_stop(o);
        if (reload->parsed()) return cmd_reload(o);
        return cmd_status(o);
    });
}
