// A Model whose calls run on the preload daemon, which already holds the same file loaded: the
// daemon's greedy output is the in-process output token for token, so only the speed differs.
// When the daemon goes away before an answer has started, the call (and every later one) runs
// on the model loaded here instead (CORTEX_PRELOAD=auto).
#include <atomic>
#include <exception>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>

#include "core/file_util.h"
#include "cortex/config.h"
#include "cortex/preload.h"
#include "model_impl.h"

namespace cortex::llm {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Idle connections kept per Model: each one holds a thread of the daemon, which serves at most
// 128 clients, so a Model keeps only what a few concurrent callers need.
constexpr size_t kMaxIdleConnections = 4;

class RemoteModel final : public Model::Impl {
  public:
    RemoteModel(std::string socket, bool required, std::string daemon_path, const preload::ModelInfo & info,
                std::unique_ptr<preload::Client> client, double attach_ms)
        : socket_(std::move(socket)),
          required_(required),
          daemon_path_(std::move(daemon_path)),
          info_(info),
          attach_ms_(attach_ms) {
        idle_.push_back(std::move(client));
    }

    Result complete(const std::string & prompt, const GenerationConfig & config,
                    const TokenCallback & on_token) override {
        return generate([&](preload::Client & c, const GenerationConfig & g,
                            const TokenCallback & cb) { return c.complete(prompt, g, cb); },
                        [&](Model & m) { return m.complete(prompt, config, on_token); }, config, on_token);
    }

    Result complete(const std::vector<Token> & prompt, const GenerationConfig & config,
                    const TokenCallback & on_token) override {
        return generate([&](preload::Client & c, const GenerationConfig & g,
                            const TokenCallback & cb) { return c.complete(prompt, g, cb); },
                        [&](Model & m) { return m.complete(prompt, config, on_token); }, config, on_token);
    }

    Result chat(const std::vector<Message> & messages, const GenerationConfig & config,
                const TokenCallback & on_token) override {
        return generate([&](preload::Client & c, const GenerationConfig & g,
                            const TokenCallback & cb) { return c.chat(messages, g, cb); },
                        [&](Model & m) { return m.chat(messages, config, on_token); }, config, on_token);
    }

    std::string apply_chat_template(const std::vector<Message> & messages, bool add_generation_prompt) override {
        return route<std::string>(
            [&](preload::Client & c) { return c.apply_chat_template(messages, add_generation_prompt); },
            [&](Model & m) { return m.apply_chat_template(messages, add_generation_prompt); }, nullptr);
    }

    std::vector<Token> tokenize(std::string_view text, bool add_special, bool parse_special) override {
        const std::string s(text);
        return route<std::vector<Token>>([&](preload::Client & c) { return c.tokenize(s, add_special, parse_special); },
                                         [&](Model & m) { return m.tokenize(s, add_special, parse_special); }, nullptr);
    }

    std::string detokenize(const std::vector<Token> & tokens, bool render_special) override {
        return route<std::string>([&](preload::Client & c) { return c.detokenize(tokens, render_special); },
                                  [&](Model & m) { return m.detokenize(tokens, render_special); }, nullptr);
    }

    // The daemon's slots are shared with other clients, so rather than wiping them the next
    // request skips the prompt cache, which is what a caller can observe of a cleared cache.
    void clear_cache() override {
        if (std::shared_ptr<Model> m = local()) return m->clear_cache();
        skip_cache_next_ = true;
    }

    std::string architecture() const override { return info_.architecture; }
    std::string description() const override { return info_.description; }
    int n_ctx() const override { return info_.n_ctx; }
    int n_ctx_train() const override { return info_.n_ctx_train; }
    int n_vocab() const override { return info_.n_vocab; }
    uint64_t n_params() const override { return info_.n_params; }
    uint64_t size_bytes() const override { return info_.size_bytes; }
    bool has_chat_template() const override { return info_.has_chat_template; }
    double load_ms() const override {
        std::shared_ptr<Model> m = local();
        return m ? m->load_ms() : attach_ms_;
    }

  private:
    using RemoteGenerate = std::function<Result(preload::Client &, const GenerationConfig &, const TokenCallback &)>;

    Result generate(const RemoteGenerate & remote, const std::function<Result(Model &)> & local_call,
                    const GenerationConfig & config, const TokenCallback & on_token) {
        const auto t0 = Clock::now();
        GenerationConfig g = config;
        if (skip_cache_next_.exchange(false)) g.cache_prompt = false;
        bool streamed = false;
        // What the caller's callback throws is theirs, not a daemon failure: the request is
        // cancelled, its answer read to the end (the connection stays usable), then it is
        // rethrown as in-process.
        std::exception_ptr callback_error;
        TokenCallback cb;
        if (on_token) {
            cb = [&](std::string_view piece) {
                streamed = true;
                try {
                    return on_token(piece);
                } catch (...) {
                    callback_error = std::current_exception();
                    return false;
                }
            };
        }
        bool ran_remote = false;
        Result r = route<Result>(
            [&](preload::Client & c) {
                Result out = remote(c, g, cb);
                ran_remote = true;
                return out;
            },
            local_call, &streamed);
        if (callback_error) std::rethrow_exception(callback_error);
        if (ran_remote) {
            // As in-process: the load time of this Model, the whole call as the caller saw it.
            r.load_ms = attach_ms_;
            r.total_ms = ms_since(t0);
        }
        return r;
    }

    // Runs `remote` on a connection to the daemon, else `local_call` on the model loaded here.
    // `streamed` (generation only) says whether the caller got part of an answer already.
    template <typename T>
    T route(const std::function<T(preload::Client &)> & remote, const std::function<T(Model &)> & local_call,
            const bool * streamed) {
        if (std::shared_ptr<Model> m = local()) return local_call(*m);
        std::optional<Error> lost;
        for (int attempt = 0; attempt < 2; ++attempt) {
            bool reused = false;
            std::unique_ptr<preload::Client> c = take(reused);
            if (!c) break;
            try {
                T out = remote(*c);
                give_back(std::move(c));
                return out;
            } catch (const Error & e) {
                // kIo: the connection broke; kNotFound: the daemon serves another model now (or
                // none). Anything else is this request's own error, as in-process.
                if (e.code() != ErrorCode::kIo && e.code() != ErrorCode::kNotFound) {
                    if (e.code() != ErrorCode::kBusy && e.code() != ErrorCode::kInternal) give_back(std::move(c));
                    throw;
                }
                if (streamed && *streamed) {
                    throw Error(ErrorCode::kNetwork, "the preload daemon went away in the middle of the answer",
                                "run the request again (it runs in-process while no daemon serves the model); see: "
                                "cortex-preload status");
                }
                lost = e;
                // A kept connection may be to a daemon restarted since: try one fresh one.
                if (!(e.code() == ErrorCode::kIo && reused)) break;
            }
        }
        if (required_) {
            if (lost) throw *lost;
            throw Error(ErrorCode::kNotFound, "no preload daemon answers on " + socket_ + " any more",
                        "start one: cortex-preload start --model " + path + " (or unset CORTEX_PRELOAD)");
        }
        return local_call(*load_local());
    }

    std::unique_ptr<preload::Client> take(bool & reused) {
        {
            std::lock_guard<std::mutex> lock(pool_mutex_);
            if (!idle_.empty()) {
                std::unique_ptr<preload::Client> c = std::move(idle_.back());
                idle_.pop_back();
                reused = true;
                return c;
            }
        }
        reused = false;
        std::unique_ptr<preload::Client> c = preload::Client::connect(socket_);
        if (c) c->expect_model(daemon_path_);
        return c;
    }

    void give_back(std::unique_ptr<preload::Client> c) {
        std::lock_guard<std::mutex> lock(pool_mutex_);
        if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(c));
    }

    std::shared_ptr<Model> local() const {
        std::lock_guard<std::mutex> lock(local_mutex_);
        return local_;
    }

    // Once the daemon is gone the model is loaded here and stays: the load is paid for, and a
    // daemon started later may serve something else.
    std::shared_ptr<Model> load_local() {
        std::lock_guard<std::mutex> lock(local_mutex_);
        if (!local_) local_ = Model::load(path, config);
        {
            std::lock_guard<std::mutex> pool_lock(pool_mutex_);
            idle_.clear();
        }
        return local_;
    }

    const std::string socket_;
    const bool required_;
    const std::string daemon_path_;  // the daemon's own spelling of the file, sent with requests
    const preload::ModelInfo info_;
    const double attach_ms_;
    std::atomic<bool> skip_cache_next_{false};

    std::mutex pool_mutex_;
    std::vector<std::unique_ptr<preload::Client>> idle_;
    mutable std::mutex local_mutex_;
    std::shared_ptr<Model> local_;
};

}  // namespace

std::shared_ptr<Model> attach_remote_model(const std::string & name, const std::string & path, const std::string & key,
                                           const ModelConfig & config) {
    const std::string mode = preload::preload_mode();
    if (mode == "off") return nullptr;
    const bool required = mode == "required";
    const auto t0 = Clock::now();
    const std::string socket = Settings::load().preload_socket();
    std::string why = "no preload daemon answers on " + socket;
    if (std::unique_ptr<preload::Client> client = preload::Client::connect(socket)) {
        std::optional<preload::DaemonStatus> status;
        try {
            status = client->status();
        } catch (const Error & e) {
            // A daemon that cannot answer its status (stopping, busy) serves nobody right now.
            if (required) throw;
            why = "the preload daemon on " + socket + " did not answer: " + e.message();
        }
        if (status) {
            if (status->model_path.empty() || canonical_path(status->model_path) != key) {
                why = "the preload daemon on " + socket + " serves " +
                      (status->model_path.empty() ? std::string("no model") : "'" + status->model_path + "'");
            } else if (status->n_ctx != config.n_ctx) {
                why = "the preload daemon on " + socket + " serves it with n_ctx " + std::to_string(status->n_ctx) +
                      ", not " + std::to_string(config.n_ctx);
            } else if (status->info.n_vocab <= 0) {
                why = "the preload daemon on " + socket + " is too old to stand in for a loaded model";
            } else {
                client->expect_model(status->model_path);
                auto impl = std::make_unique<RemoteModel>(socket, required, status->model_path, status->info,
                                                          std::move(client), ms_since(t0));
                impl->path = path;
                impl->config = config;
                return make_model(std::move(impl));
            }
        }
    }
    if (required) {
        throw Error(ErrorCode::kNotFound, "CORTEX_PRELOAD=required but " + why + " for '" + name + "' (" + path + ")",
                    "start one: LLAMACPP_N_CTX=" + std::to_string(config.n_ctx) + " cortex-preload start --model " +
                        name + " (or unset CORTEX_PRELOAD to load in-process)");
    }
    return nullptr;
}

}  // namespace cortex::llm
