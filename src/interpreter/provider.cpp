// The router: open_provider() picks llamacpp (preload daemon, else in-process) or Ollama from the
// settings; the llamacpp provider lives here, Ollama's in ollama_provider.cpp.
#include "interpreter/provider.h"

#include <chrono>

#include "interpreter/ollama_provider.h"
#include "llm/route.h"

namespace cortex::interpreter {
namespace {

using Clock = std::chrono::steady_clock;

std::string no_model_hint() {
    return "download one: cortex-model download recommended, then cortex config set model NAME (or set LLAMACPP_MODEL)";
}

// The model the llamacpp provider runs: the model setting, else the one a running daemon serves
// (so that a daemon started with --model works without a setting). Empty when neither.
std::string llamacpp_model(const Settings & settings, const std::string & mode) {
    if (!settings.model().empty()) return settings.model();
    if (mode == "off") return "";
    if (auto client = preload::Client::connect(settings.preload_socket())) {
        try {
            return client->status().model_name;
        } catch (const Error &) {
            // A daemon that cannot say what it serves is no daemon for us.
        }
    }
    return "";
}

class LlamaCppProvider : public Provider {
  public:
    explicit LlamaCppProvider(Settings settings) : settings_(std::move(settings)) {}

    std::string name() const override { return "llamacpp"; }

    ProviderReply chat(const ProviderRequest & request) override {
        if (request.cancel && request.cancel->load()) throw cancelled();
        const std::string mode = preload::preload_mode();
        const std::string model = llamacpp_model(settings_, mode);
        if (model.empty())
            throw Error(ErrorCode::kNotFound, "no model is set for the llamacpp provider", no_model_hint());
        // Created here, not in open_provider(): opening stays cheap, and a second chat() reuses
        // the model this manager loaded.
        if (!manager_) manager_ = std::make_unique<llm::ModelManager>(settings_.models_dir());

        llm::GenerationConfig gen;
        gen.max_tokens = request.max_tokens;
        gen.temperature = request.temperature;
        gen.json_schema = request.json_schema;
        if (request.temperature <= 0) gen.seed = 0;  // greedy anyway; a fixed seed keeps runs identical

        // The only place to stop libllama or the daemon is between tokens: the callback checks
        // the cancel flag and the deadline there and asks generation to stop.
        const Clock::time_point deadline =
            Clock::now() + std::chrono::milliseconds(static_cast<long>(request.timeout_s * 1000));
        bool user_cancelled = false;
        bool timed_out = false;
        bool streamed = false;
        llm::TokenCallback on_token = [&](std::string_view piece) {
            if (request.cancel && request.cancel->load()) {
                user_cancelled = true;
                return false;
            }
            if (request.timeout_s > 0 && Clock::now() > deadline) {
                timed_out = true;
                return false;
            }
            streamed = true;
            if (request.on_token && !request.on_token(piece)) {
                user_cancelled = true;
                return false;
            }
            return true;
        };

        ProviderReply reply;
        reply.model = model;
        auto remote = [&](preload::Client & c) {
            try {
                return c.chat(request.messages, gen, on_token);
            } catch (const Error & e) {
                // run_routed() answers again in-process when the daemon is lost (kIo); once part of
                // the answer went to the caller, a second answer would follow half of the first.
                if (e.code() != ErrorCode::kIo || !streamed) throw;
                throw Error(ErrorCode::kNetwork, "the preload daemon went away in the middle of the answer",
                            "run the command again (it loads the model in-process while no daemon runs); see: "
                            "cortex-preload status");
            }
        };
        auto local = [&](llm::Model & m) { return m.chat(request.messages, gen, on_token); };
        reply.result = llm::run_routed(model, settings_, *manager_, remote, local, &reply.route);
        if (user_cancelled) throw cancelled();
        if (timed_out) {
            throw Error(
                ErrorCode::kCancelled,
                "the model did not finish within " + std::to_string(static_cast<int>(request.timeout_s)) + " s (" +
                    reply.route + ")",
                "try again with a smaller model (cortex-model recommend), or keep it warm: cortex-preload start");
        }
        reply.content = reply.result.content;
        reply.truncated = reply.result.finish_reason == llm::FinishReason::kLength;
        return reply;
    }

  private:
    static Error cancelled() {
        return Error(ErrorCode::kCancelled, "cancelled: generation was stopped",
                     "nothing was changed; run the command again to retry");
    }

    Settings settings_;
    std::unique_ptr<llm::ModelManager> manager_;
};

}  // namespace

std::unique_ptr<Provider> open_provider(const Settings & settings) {
    const std::string & name = settings.provider();
    if (name == "llamacpp") return std::make_unique<LlamaCppProvider>(settings);
    if (name == "ollama") return open_ollama_provider(settings.ollama_host(), settings.ollama_model());
    throw Error(ErrorCode::kInvalidArgument, "unknown provider '" + name + "'",
                "set CORTEX_PROVIDER to llamacpp or ollama");
}

bool provider_available(const Settings & settings, std::string * why_not) {
    auto fail = [&](const std::string & why) {
        if (why_not) *why_not = why;
        return false;
    };
    try {
        if (settings.provider() == "ollama") {
            const std::string & model = settings.ollama_model();
            if (model.empty()) return fail("no Ollama model is set: set OLLAMA_MODEL to one that `ollama list` shows");
            if (!ollama_has_model(ollama_list_models(settings.ollama_host()), model)) {
                return fail("Ollama at " + ollama_base_url(settings.ollama_host()) + " has no model '" + model +
                            "': ollama pull " + model);
            }
            return true;
        }
        if (settings.provider() != "llamacpp")
            return fail("unknown provider '" + settings.provider() + "': set CORTEX_PROVIDER to llamacpp or ollama");
        const std::string mode = preload::preload_mode();
        const std::string model = llamacpp_model(settings, mode);
        if (model.empty()) return fail("no model is set: " + no_model_hint());
        if (mode != "off") {
            if (auto client = preload::Client::connect(settings.preload_socket())) {
                if (client->status().model_name == model) return true;
            }
        }
        if (mode == "required")
            return fail("no preload daemon serves '" + model + "': cortex-preload start --model " + model);
        llm::ModelManager(settings.models_dir()).resolve(model);
        return true;
    } catch (const Error & e) {
        return fail(e.message() + (e.hint().empty() ? "" : ": " + e.hint()));
    }
}

}  // namespace cortex::interpreter
