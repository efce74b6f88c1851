// The daemon's client: one request line out, streamed lines back, the final Result.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "cortex/config.h"
#include "cortex/preload.h"
#include "protocol.h"

namespace cortex::preload {

using nlohmann::json;

struct Client::Impl {
    int fd = -1;
    std::string buffer;
    std::string expected_path;  // sent with model requests; empty = none

    json request(const char * op) const {
        json req = {{"v", kProtocolVersion}, {"op", op}};
        if (!expected_path.empty()) req["model_path"] = expected_path;
        return req;
    }

    // One request, one answer line.
    json call(const json & req) {
        send_line(req);
        json j = read_line();
        if (j.contains("error")) throw error_from_json(j["error"]);
        return j;
    }

    void send_line(const json & j) {
        const std::string line = j.dump() + "\n";
        size_t done = 0;
        while (done < line.size()) {
            ssize_t n = send(fd, line.data() + done, line.size() - done, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) throw lost();
            done += static_cast<size_t>(n);
        }
    }

    json read_line() {
        for (;;) {
            size_t nl = buffer.find('\n');
            if (nl != std::string::npos) {
                json j = json::parse(buffer.substr(0, nl), nullptr, false);
                buffer.erase(0, nl + 1);
                if (j.is_discarded() || !j.is_object()) throw Error(ErrorCode::kInternal, "the preload daemon sent a malformed line", "please report this bug");
                return j;
            }
            char chunk[65536];
            ssize_t n = recv(fd, chunk, sizeof chunk, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) throw lost();
            buffer.append(chunk, static_cast<size_t>(n));
        }
    }

    static Error lost() {
        return Error(ErrorCode::kIo, "the connection to the preload daemon was lost (did it stop or crash?)",
                     "see: cortex-preload status; or set CORTEX_PRELOAD=off to run in-process");
    }

    llm::Result generate(json req, const llm::TokenCallback & on_token) {
        req["v"] = kProtocolVersion;
        req["stream"] = static_cast<bool>(on_token);
        if (!expected_path.empty()) req["model_path"] = expected_path;
        send_line(req);
        bool cancel_sent = false;
        size_t streamed = 0;
        for (;;) {
            json j = read_line();
            if (j.contains("error")) throw error_from_json(j["error"]);
            if (j.contains("token")) {
                if (cancel_sent) continue;
                const std::string & piece = j["token"].get_ref<const std::string &>();
                streamed += piece.size();
                if (on_token && !on_token(piece)) {
                    send_line({{"v", kProtocolVersion}, {"op", "cancel"}});
                    cancel_sent = true;
                }
                continue;
            }
            if (j.value("done", false)) {
                llm::Result r = result_from_json(j["result"]);
                // The daemon went on until the cancel reached it; in-process the content ends
                // with the piece whose callback said stop.
                if (cancel_sent && r.content.size() > streamed) r.content.resize(streamed);
                return r;
            }
        }
    }
};

Client::Client(int fd) : impl_(std::make_unique<Impl>()) { impl_->fd = fd; }

Client::~Client() {
    if (impl_->fd >= 0) close(impl_->fd);
}

std::unique_ptr<Client> Client::connect(const std::string & socket_path) {
    const std::string path = socket_path.empty() ? Settings::load().preload_socket() : socket_path;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        close(fd);
        return nullptr;
    }
    strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
        close(fd);
        return nullptr;
    }
    return std::unique_ptr<Client>(new Client(fd));
}

DaemonStatus Client::status() {
    impl_->send_line({{"v", kProtocolVersion}, {"op", "status"}});
    json j = impl_->read_line();
    if (j.contains("error")) throw error_from_json(j["error"]);
    const json & s = j["status"];
    DaemonStatus out;
    out.pid = s.value("pid", 0);
    out.socket = s.value("socket", "");
    out.uptime_s = s.value("uptime_s", 0.0);
    if (s.contains("models") && !s["models"].empty()) {
        const json & m = s["models"][0];
        out.model_name = m.value("name", "");
        out.model_path = m.value("path", "");
        out.n_ctx = m.value("n_ctx", 0);
        out.n_gpu_layers = m.value("n_gpu_layers", 0);
        out.slots = m.value("slots", 0);
        ModelInfo & i = out.info;
        i.architecture = m.value("architecture", "");
        i.description = m.value("description", "");
        i.n_ctx = m.value("n_ctx_slot", 0);
        i.n_ctx_train = m.value("n_ctx_train", 0);
        i.n_vocab = m.value("n_vocab", 0);
        i.n_params = m.value("n_params", uint64_t{0});
        i.size_bytes = m.value("size_bytes", uint64_t{0});
        i.has_chat_template = m.value("has_chat_template", false);
        i.load_ms = m.value("load_ms", 0.0);
    }
    out.json = s.dump();
    return out;
}

llm::Result Client::complete(const std::string & prompt, const llm::GenerationConfig & config, const llm::TokenCallback & on_token) {
    json req = {{"op", "complete"}, {"prompt", prompt}};
    config_to_json(config, req);
    return impl_->generate(req, on_token);
}

llm::Result Client::chat(const std::vector<llm::Message> & messages, const llm::GenerationConfig & config,
                         const llm::TokenCallback & on_token) {
    json req = {{"op", "chat"}, {"messages", messages_to_json(messages)}};
    config_to_json(config, req);
    return impl_->generate(req, on_token);
}

llm::Result Client::complete(const std::vector<llm::Token> & prompt, const llm::GenerationConfig & config,
                             const llm::TokenCallback & on_token) {
    json req = {{"op", "complete"}, {"prompt", prompt}};
    config_to_json(config, req);
    return impl_->generate(req, on_token);
}

std::vector<llm::Token> Client::tokenize(const std::string & text, bool add_special, bool parse_special) {
    json req = impl_->request("tokenize");
    req["text"] = text;
    if (!add_special) req["add_special"] = false;
    if (!parse_special) req["parse_special"] = false;
    return impl_->call(req)["tokens"].get<std::vector<llm::Token>>();
}

std::string Client::detokenize(const std::vector<llm::Token> & tokens, bool render_special) {
    json req = impl_->request("detokenize");
    req["tokens"] = tokens;
    if (render_special) req["render_special"] = true;
    return impl_->call(req)["text"].get<std::string>();
}

std::string Client::apply_chat_template(const std::vector<llm::Message> & messages, bool add_generation_prompt) {
    json req = impl_->request("apply_chat_template");
    req["messages"] = messages_to_json(messages);
    if (!add_generation_prompt) req["add_generation_prompt"] = false;
    return impl_->call(req)["text"].get<std::string>();
}

void Client::expect_model(const std::string & path) { impl_->expected_path = path; }

std::string Client::reload(const std::string & model) {
    json req = {{"v", kProtocolVersion}, {"op", model.empty() ? "reload" : "load"}};
    if (!model.empty()) req["model"] = model;
    impl_->send_line(req);
    json j = impl_->read_line();
    if (j.contains("error")) throw error_from_json(j["error"]);
    return j.dump();
}

void Client::shutdown() {
    impl_->send_line({{"v", kProtocolVersion}, {"op", "shutdown"}});
    json j = impl_->read_line();
    if (j.contains("error")) throw error_from_json(j["error"]);
}

std::string preload_mode() {
    const char * env = std::getenv("CORTEX_PRELOAD");
    const std::string mode = env && *env ? env : "auto";
    if (mode != "auto" && mode != "off" && mode != "required") {
        throw Error(ErrorCode::kInvalidArgument, "CORTEX_PRELOAD='" + mode + "' is not auto, off or required", "unset it for auto");
    }
    return mode;
}

}  // namespace cortex::preload
