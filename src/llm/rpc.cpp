// The ggml RPC backend (llama.cpp's `ggml-rpc-server` on other machines) behind Cortex's checks.
//
// ggml-rpc ends the process (GGML_ABORT) when it cannot connect to a server or when a server drops
// the connection, and it blocks forever on a server that accepts but never answers. So a server
// is probed with a handshake of our own, with timeouts, before libllama ever connects to it; and
// an abort that still comes from ggml-rpc (a server lost mid-request) is turned into a clear
// message that names the server before the process ends: ggml-rpc has no way to recover a
// connection, and its dispatcher thread cannot be unwound, so ending is the only safe outcome.
#include "rpc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "backend.h"
#include "ggml-rpc.h"
#include "ggml.h"

namespace cortex::llm {
namespace {

// The handshake of ggml-rpc (ggml/src/ggml-rpc/ggml-rpc.cpp): | cmd (1 byte) | size (8 bytes) |
// payload |, answered by | size (8 bytes) | payload |. HELLO is 14 in every protocol version.
constexpr uint8_t kRpcCmdHello = 14;
constexpr size_t kConnCapsSize = 24;  // RPC_CONN_CAPS_SIZE of ggml-rpc's transport.h
struct HelloResponse {
    uint8_t major, minor, patch, padding;
    uint8_t conn_caps[kConnCapsSize];
};

// Exit status of a process whose RPC server went away mid-request (EX_TEMPFAIL).
constexpr int kRpcLostExitStatus = 75;

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) close(fd);
    }
    Fd(const Fd &) = delete;
    Fd & operator=(const Fd &) = delete;
};

void split_endpoint(const std::string & endpoint, std::string & host, int & port) {
    const size_t colon = endpoint.rfind(':');
    host = endpoint.substr(0, colon);
    port = std::atoi(endpoint.c_str() + colon + 1);
}

bool wait_fd(int fd, short events, int timeout_ms) {
    pollfd p{fd, events, 0};
    int rc;
    do {
        rc = poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    return rc > 0;
}

// A TCP connection to `endpoint` within `timeout_ms`; -1 with `why` set when there is none.
int connect_with_timeout(const std::string & endpoint, int timeout_ms, std::string & why) {
    std::string host;
    int port = 0;
    split_endpoint(endpoint, host, port);
    addrinfo hints{};
    hints.ai_family = AF_INET;  // ggml-rpc connects over IPv4 only
    hints.ai_socktype = SOCK_STREAM;
    addrinfo * res = nullptr;
    if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); rc != 0 || !res) {
        why = std::string("cannot resolve '") + host + "': " + gai_strerror(rc);
        return -1;
    }
    std::unique_ptr<addrinfo, void (*)(addrinfo *)> guard(res, freeaddrinfo);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        why = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    Fd sock(fd);
    if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            why = std::strerror(errno);
            return -1;
        }
        if (!wait_fd(fd, POLLOUT, timeout_ms)) {
            why = "no answer within " + std::to_string(timeout_ms) + " ms";
            return -1;
        }
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            why = std::strerror(err);
            return -1;
        }
    }
    sock.fd = -1;
    return fd;
}

bool send_all(int fd, const void * data, size_t size, int timeout_ms) {
    const char * p = static_cast<const char *>(data);
    while (size > 0) {
        if (!wait_fd(fd, POLLOUT, timeout_ms)) return false;
        ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return false;
        p += n;
        size -= static_cast<size_t>(n);
    }
    return true;
}

bool recv_all(int fd, void * data, size_t size, int timeout_ms) {
    char * p = static_cast<char *>(data);
    while (size > 0) {
        if (!wait_fd(fd, POLLIN, timeout_ms)) return false;
        ssize_t n = recv(fd, p, size, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return false;
        p += n;
        size -= static_cast<size_t>(n);
    }
    return true;
}

Error unreachable(const std::string & endpoint, const std::string & why) {
    return Error(ErrorCode::kNetwork, "RPC server " + endpoint + " is not usable: " + why,
                 "start it there with `ggml-rpc-server -H HOST -p PORT` (from llama.cpp's build: "
                 "build/llama.cpp/<backend>/install/bin), or remove it from LLAMACPP_RPC_SERVERS / --rpc");
}

// The IPv4 "address:port" forms of `endpoint` (ggml-rpc connects over IPv4 only).
std::vector<std::string> endpoint_addresses(const std::string & endpoint) {
    std::string host;
    int port = 0;
    split_endpoint(endpoint, host, port);
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo * res = nullptr;
    std::vector<std::string> out;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) return out;
    for (addrinfo * a = res; a; a = a->ai_next) {
        char ip[INET_ADDRSTRLEN] = {};
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(a->ai_addr)->sin_addr, ip, sizeof ip);
        out.push_back(std::string(ip) + ":" + std::to_string(port));
    }
    freeaddrinfo(res);
    return out;
}

// ggml-rpc's connections: the TCP sockets of this process whose peer is one of `endpoints`,
// with the endpoint each one talks to.
std::vector<std::pair<int, std::string>> rpc_connections(const std::vector<std::string> & endpoints) {
    std::vector<std::pair<std::string, std::string>> addresses;  // address -> endpoint
    for (const std::string & e : endpoints) {
        for (const std::string & a : endpoint_addresses(e)) addresses.emplace_back(a, e);
    }
    std::vector<std::pair<int, std::string>> out;
    DIR * dir = opendir("/proc/self/fd");
    if (!dir) return out;
    while (dirent * entry = readdir(dir)) {
        const int fd = std::atoi(entry->d_name);
        sockaddr_in peer{};
        socklen_t len = sizeof peer;
        if (fd <= 2 || fd == dirfd(dir) || getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &len) != 0 ||
            peer.sin_family != AF_INET) {
            continue;
        }
        char ip[INET_ADDRSTRLEN] = {};
        inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
        const std::string address = std::string(ip) + ":" + std::to_string(ntohs(peer.sin_port));
        for (const auto & [a, e] : addresses) {
            if (a == address) out.emplace_back(fd, e);
        }
    }
    closedir(dir);
    return out;
}

// How long ggml-rpc may wait on one server: CORTEX_RPC_TIMEOUT_S, default 120 s (a long prompt
// on a slow CPU server takes seconds per command, never minutes); 0 = forever, as upstream.
int rpc_timeout_ms() {
    const char * v = std::getenv("CORTEX_RPC_TIMEOUT_S");
    if (!v || !*v) return 120 * 1000;
    return std::max(0, std::atoi(v)) * 1000;
}

// Endpoints whose devices are registered with ggml in this process, for the abort handler.
std::mutex g_mutex;
std::set<std::string> g_registered;
std::vector<std::string> g_registered_list;  // the same, for the abort handler (no allocation there)
ggml_abort_callback_t g_previous_abort = nullptr;

std::atomic<RpcLostHandler> g_rpc_lost_handler{nullptr};

// ggml's abort callback: for an abort in ggml-rpc's client code, says which server went away
// (those that now refuse a connection), then hands over to the process's RpcLostHandler or ends
// the process with kRpcLostExitStatus; any other abort goes on as before (the previous callback,
// then ggml's abort()).
void on_ggml_abort(const char * message) {
    if (message && std::strstr(message, "ggml-rpc") != nullptr) {
        std::vector<std::string> dead;
        std::vector<std::string> all;
        {
            std::unique_lock<std::mutex> lock(g_mutex, std::try_to_lock);
            all = g_registered_list;
        }
        // Twice, a moment apart: the listening socket of a server that is still exiting can take
        // one more connection after the connection it served was reset.
        for (int round = 0; round < 2; ++round) {
            if (round > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
            for (const std::string & endpoint : all) {
                if (std::find(dead.begin(), dead.end(), endpoint) != dead.end()) continue;
                std::string why;
                int fd = connect_with_timeout(endpoint, 500, why);
                if (fd >= 0)
                    close(fd);
                else
                    dead.push_back(endpoint);
            }
        }
        // A server that accepts connections but stopped answering (frozen, or a host gone without
        // a reset) is the one we sent a command to and have heard nothing from since, for the
        // whole timeout; the others of a split wait on it too, but they have answered their last.
        if (const int timeout = rpc_timeout_ms(); timeout > 0) {
            for (const auto & [fd, endpoint] : rpc_connections(all)) {
                tcp_info info{};
                socklen_t len = sizeof info;
                if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) continue;
                const bool awaiting = info.tcpi_last_data_sent < info.tcpi_last_data_recv;
                const bool silent = info.tcpi_last_data_recv + 1000u >= static_cast<unsigned>(timeout);
                if (awaiting && silent && std::find(dead.begin(), dead.end(), endpoint) == dead.end())
                    dead.push_back(endpoint);
            }
        }
        const std::vector<std::string> & named = dead.empty() ? all : dead;
        std::string servers;
        for (const std::string & e : named) servers += (servers.empty() ? "" : ", ") + e;
        if (servers.empty()) servers = "(unknown)";
        const RpcLostHandler handler = g_rpc_lost_handler.load();
        fprintf(stderr, "error: the RPC connection to %s%s was lost in the middle of a request (ggml-rpc: %s)\n",
                dead.empty() && named.size() > 1 ? "one of " : "", servers.c_str(), message);
        if (handler) {
            fflush(stderr);
            handler(named);
        }
        fprintf(stderr,
                "hint: check that ggml-rpc-server still runs there and the network between; ggml-rpc cannot recover a "
                "lost connection inside a process, so this process ends (status %d); restart it, or remove the server "
                "from LLAMACPP_RPC_SERVERS / --rpc to run locally\n",
                kRpcLostExitStatus);
        fflush(stderr);
        _exit(kRpcLostExitStatus);
    }
    if (g_previous_abort)
        g_previous_abort(message);
    else if (message)
        fprintf(stderr, "%s\n", message);
}

bool any_registered() {
    std::lock_guard<std::mutex> lock(g_mutex);
    return !g_registered.empty();
}

bool is_rpc_device(ggml_backend_dev_t dev) {
    return std::strcmp(ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev)), "RPC") == 0;
}

}  // namespace

void set_rpc_lost_handler(RpcLostHandler handler) {
    g_rpc_lost_handler = handler;
}

void limit_rpc_waits(const std::vector<std::string> & endpoints) {
    const int timeout = rpc_timeout_ms();
    if (timeout <= 0) return;
    const timeval tv{timeout / 1000, (timeout % 1000) * 1000};
    for (const auto & [fd, endpoint] : rpc_connections(endpoints)) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
}

void probe_rpc_server(const std::string & endpoint, int timeout_ms) {
    std::string why;
    const int fd = connect_with_timeout(endpoint, timeout_ms, why);
    if (fd < 0) throw unreachable(endpoint, why);
    Fd sock(fd);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint8_t request[1 + 8 + kConnCapsSize] = {};
    request[0] = kRpcCmdHello;
    const uint64_t size = kConnCapsSize;  // zero capabilities: plain TCP, no transport upgrade
    std::memcpy(request + 1, &size, sizeof size);
    uint64_t answer_size = 0;
    HelloResponse answer{};
    if (!send_all(fd, request, sizeof request, timeout_ms) ||
        !recv_all(fd, &answer_size, sizeof answer_size, timeout_ms)) {
        throw unreachable(
            endpoint,
            "it accepts connections but does not answer the RPC handshake within " + std::to_string(timeout_ms) +
                " ms (an ggml-rpc-server serves one client at a time: is another process using it? or is this "
                "port another service?)");
    }
    if (answer_size != sizeof answer || !recv_all(fd, &answer, sizeof answer, timeout_ms)) {
        throw unreachable(endpoint, "it does not speak the RPC protocol of this llama.cpp build (handshake answer of " +
                                        std::to_string(answer_size) + " bytes)");
    }
    if (answer.major != RPC_PROTO_MAJOR_VERSION || answer.minor > RPC_PROTO_MINOR_VERSION) {
        throw unreachable(endpoint, "it speaks RPC protocol " + std::to_string(answer.major) + "." +
                                        std::to_string(answer.minor) + "." + std::to_string(answer.patch) +
                                        ", this build " + std::to_string(RPC_PROTO_MAJOR_VERSION) + "." +
                                        std::to_string(RPC_PROTO_MINOR_VERSION) +
                                        ".x: run the same llama.cpp version on both sides");
    }
}

std::vector<ggml_backend_dev_t> rpc_server_devices(const std::vector<std::string> & endpoints) {
    std::vector<ggml_backend_dev_t> devices;
    if (endpoints.empty()) return devices;
    ensure_backend();
    ggml_backend_reg_t rpc = ggml_backend_reg_by_name("RPC");
    using AddServer = ggml_backend_reg_t (*)(const char *);
    auto add_server =
        rpc ? reinterpret_cast<AddServer>(ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_add_server"))
            : nullptr;
    if (!add_server) {
        throw Error(
            ErrorCode::kInvalidArgument,
            "this llama.cpp build has no RPC backend, so LLAMACPP_RPC_SERVERS cannot be used",
            "rebuild llama.cpp with it: scripts/build_llamacpp.sh (the RPC backend is on unless LLAMA_RPC=0), then "
            "rebuild Cortex");
    }
    static std::once_flag once;
    std::call_once(once, [] {
        g_previous_abort = ggml_set_abort_callback(on_ggml_abort);
        // ggml-rpc writes to its sockets without MSG_NOSIGNAL: a server that goes away would end
        // the process with a silent SIGPIPE instead of the message above. Only the default
        // disposition is replaced; a handler the program installed stays.
        struct sigaction current {};
        if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
    });
    for (const std::string & endpoint : endpoints) {
        bool known = false;
        {
            std::lock_guard<std::mutex> lock(g_mutex);
            known = g_registered.count(endpoint) > 0;
        }
        if (known) {
            // This process may hold a connection to it already (a loaded model), and a server
            // answers one client at a time: a handshake would wait behind ourselves. That it
            // still takes connections is what can be checked.
            std::string why;
            const int fd = connect_with_timeout(endpoint, 2000, why);
            if (fd < 0) throw unreachable(endpoint, why);
            close(fd);
        } else {
            probe_rpc_server(endpoint, 2000);
        }
        ggml_backend_reg_t reg = add_server(endpoint.c_str());
        if (!reg) throw unreachable(endpoint, "it reports no devices");
        {
            std::lock_guard<std::mutex> lock(g_mutex);
            if (g_registered.insert(endpoint).second) {
                ggml_backend_register(reg);  // so that libllama and ggml_backend_dev_get() see them
                g_registered_list.push_back(endpoint);
            }
        }
        for (size_t i = 0; i < ggml_backend_reg_dev_count(reg); ++i)
            devices.push_back(ggml_backend_reg_dev_get(reg, i));
    }
    return devices;
}

std::vector<ggml_backend_dev_t> model_devices(const ModelConfig & config) {
    std::vector<ggml_backend_dev_t> devices;
    if (config.rpc_servers.empty() && !any_registered()) return devices;
    // Checked here too: a ModelConfig may come from code rather than the settings.
    devices = rpc_server_devices(parse_rpc_servers(join_endpoints(config.rpc_servers), config.rpc_allow_remote));
    // The local part of libllama's default selection (llama_prepare_model_devices): GPUs, one
    // per device id; integrated GPUs only when there is no discrete one.
    std::vector<ggml_backend_dev_t> gpus, igpus;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        if (is_rpc_device(dev)) continue;
        const auto type = ggml_backend_dev_type(dev);
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU) {
            ggml_backend_dev_props props;
            ggml_backend_dev_get_props(dev, &props);
            bool duplicate = false;
            for (ggml_backend_dev_t other : gpus) {
                ggml_backend_dev_props other_props;
                ggml_backend_dev_get_props(other, &other_props);
                if (props.device_id && other_props.device_id &&
                    std::strcmp(props.device_id, other_props.device_id) == 0)
                    duplicate = true;
            }
            if (!duplicate) gpus.push_back(dev);
        } else if (type == GGML_BACKEND_DEVICE_TYPE_IGPU) {
            if (igpus.empty() || ggml_backend_dev_backend_reg(dev) == ggml_backend_dev_backend_reg(igpus.back()))
                igpus.push_back(dev);
        }
    }
    devices.insert(devices.end(), gpus.begin(), gpus.end());
    if (gpus.empty()) devices.insert(devices.end(), igpus.begin(), igpus.end());
    devices.push_back(nullptr);
    return devices;
}

std::vector<std::string> parse_rpc_servers(const std::string & list, bool allow_remote) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= list.size()) {
        size_t comma = list.find(',', start);
        if (comma == std::string::npos) comma = list.size();
        std::string item = list.substr(start, comma - start);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.erase(0, 1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.pop_back();
        start = comma + 1;
        if (item.empty()) {
            if (list.find_first_not_of(" \t,") == std::string::npos) break;  // "" = no servers
            throw Error(ErrorCode::kInvalidArgument, "RPC server list '" + list + "' has an empty entry",
                        "separate host:port entries with single commas, e.g. 192.168.1.20:50052,192.168.1.21:50052");
        }
        const size_t colon = item.rfind(':');
        const std::string host = colon == std::string::npos ? "" : item.substr(0, colon);
        const std::string port = colon == std::string::npos ? "" : item.substr(colon + 1);
        if (host.empty() || port.empty() || port.find_first_not_of("0123456789") != std::string::npos ||
            port.size() > 5 || std::atoi(port.c_str()) < 1 || std::atoi(port.c_str()) > 65535) {
            throw Error(ErrorCode::kInvalidArgument,
                        "RPC server '" + item + "' is not HOST:PORT with a port from 1 to 65535",
                        "e.g. 127.0.0.1:50052 (ggml-rpc-server's default port is 50052)");
        }
        if (host.find(':') != std::string::npos || host.front() == '[') {
            throw Error(ErrorCode::kInvalidArgument, "RPC server '" + item + "': ggml-rpc connects over IPv4 only",
                        "use an IPv4 address or a host name");
        }
        in_addr addr{};
        const bool loopback =
            host == "localhost" || (inet_pton(AF_INET, host.c_str(), &addr) == 1 && (ntohl(addr.s_addr) >> 24) == 127);
        if (!loopback && !allow_remote) {
            throw Error(ErrorCode::kInvalidArgument,
                        "RPC server " + item +
                            " is not on this machine, and remote RPC servers are off: the ggml RPC protocol has no "
                            "authentication or encryption, so anyone who can reach that port can use its memory and "
                            "devices, and the traffic (model weights, prompts) crosses the network in the clear",
                        "on a network you trust, allow it with LLAMACPP_RPC_ALLOW_REMOTE=1 (or `cortex config set "
                        "rpc_allow_remote 1`); otherwise reach the server through an SSH tunnel "
                        "(ssh -L 50052:localhost:50052 HOST) and use 127.0.0.1:50052");
        }
        out.push_back(item);
        if (comma == list.size()) break;
    }
    return out;
}

std::string join_endpoints(const std::vector<std::string> & endpoints) {
    std::string out;
    for (const std::string & e : endpoints) out += (out.empty() ? "" : ",") + e;
    return out;
}

std::vector<DeviceInfo> list_devices(const std::vector<std::string> & rpc_servers, bool rpc_allow_remote,
                                     std::vector<RpcServerProblem> * problems) {
    const std::vector<std::string> endpoints = parse_rpc_servers(join_endpoints(rpc_servers), rpc_allow_remote);
    ensure_backend();
    std::vector<DeviceInfo> out;
    auto describe = [](ggml_backend_dev_t dev, const std::string & endpoint) {
        DeviceInfo d;
        d.name = ggml_backend_dev_name(dev);
        d.description = ggml_backend_dev_description(dev);
        switch (ggml_backend_dev_type(dev)) {
            case GGML_BACKEND_DEVICE_TYPE_CPU:
                d.type = "cpu";
                break;
            case GGML_BACKEND_DEVICE_TYPE_GPU:
                d.type = "gpu";
                break;
            case GGML_BACKEND_DEVICE_TYPE_IGPU:
                d.type = "igpu";
                break;
            default:
                d.type = "accel";
                break;
        }
        if (!endpoint.empty()) {
            d.type = "rpc";
            d.endpoint = endpoint;
        }
        size_t free = 0, total = 0;
        ggml_backend_dev_memory(dev, &free, &total);
        d.free_bytes = free;
        d.total_bytes = total;
        return d;
    };
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        if (!is_rpc_device(dev)) out.push_back(describe(dev, ""));
    }
    for (const std::string & endpoint : endpoints) {
        try {
            for (ggml_backend_dev_t dev : rpc_server_devices({endpoint})) out.push_back(describe(dev, endpoint));
        } catch (const Error & e) {
            if (e.code() == ErrorCode::kInvalidArgument) throw;  // no RPC backend in this build
            if (problems) problems->push_back({endpoint, e});
        }
    }
    return out;
}

}  // namespace cortex::llm
