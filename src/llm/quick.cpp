// quick_complete() and quick_chat(): one-shot generation that uses the preload daemon when it
// serves the model (CORTEX_PRELOAD=auto|off|required), else a process-wide ModelManager that
// follows the Cortex settings (models directory, context, GPU layers, threads).
#include <cstdlib>
#include <functional>
#include <memory>

#include "core/file_util.h"
#include "cortex/config.h"
#include "cortex/llm.h"
#include "cortex/preload.h"
#include "route.h"

namespace cortex::llm {

Result run_routed(const std::string & model, const Settings & settings, ModelManager & manager,
                  const std::function<Result(preload::Client &)> & remote,
                  const std::function<Result(Model &)> & local, std::string * route) {
    const std::string mode = preload::preload_mode();
    if (mode != "off") {
        if (auto client = preload::Client::connect(settings.preload_socket())) {
            preload::DaemonStatus status = client->status();
            std::string path;
            try {
                path = manager.resolve(model);
            } catch (const Error &) {
            }
            if (status.model_name == model || (!path.empty() && canonical_path(path) == canonical_path(status.model_path))) {
                try {
                    if (route) *route = "daemon";
                    return remote(*client);
                } catch (const Error & e) {
                    // The daemon went away mid-request: in auto mode the answer comes from here.
                    if (mode == "required" || e.code() != ErrorCode::kIo) throw;
                }
            }
        }
        if (mode == "required") {
            throw Error(ErrorCode::kNotFound, "no preload daemon serves '" + model + "' on " + settings.preload_socket(),
                        "start one: cortex-preload start --model " + model + " (or unset CORTEX_PRELOAD)");
        }
    }
    if (route) *route = "in-process";
    return local(*manager.load_model(model, settings.model_config()));
}

namespace {

Result run(const std::string & model, const std::function<Result(preload::Client &)> & remote,
           const std::function<Result(Model &)> & local) {
    const Settings settings = Settings::load();
    // Never destroyed: models may still be in use by other static objects at exit.
    static ModelManager * manager = new ModelManager(settings.models_dir());
    // default_model_name() reads the settings again, so only for its error.
    const std::string name = !model.empty() ? model : !settings.model().empty() ? settings.model() : default_model_name();
    return run_routed(name, settings, *manager, remote, local);
}

}  // namespace

Result quick_complete(const std::string & prompt, const GenerationConfig & config, const std::string & model) {
    return run(
        model, [&](preload::Client & c) { return c.complete(prompt, config); },
        [&](Model & m) { return m.complete(prompt, config); });
}

Result quick_chat(const std::string & message, const GenerationConfig & config, const std::string & model) {
    return run(
        model, [&](preload::Client & c) { return c.chat({{"user", message}}, config); },
        [&](Model & m) { return m.chat({{"user", message}}, config); });
}

}  // namespace cortex::llm
