// quick_complete() and quick_chat(): one-shot generation on a process-wide ModelManager that
// follows the Cortex settings (models directory, model, context, GPU layers, threads).
#include "cortex/config.h"
#include "cortex/llm.h"

namespace cortex::llm {
namespace {

std::shared_ptr<Model> load_named(const std::string & model) {
    const Settings settings = Settings::load();
    // Never destroyed: models may still be in use by other static objects at exit.
    static ModelManager * manager = new ModelManager(settings.models_dir());
    return manager->load_model(model.empty() ? default_model_name() : model, settings.model_config());
}

}  // namespace

Result quick_complete(const std::string & prompt, const GenerationConfig & config, const std::string & model) {
    return load_named(model)->complete(prompt, config);
}

Result quick_chat(const std::string & message, const GenerationConfig & config, const std::string & model) {
    return load_named(model)->chat({{"user", message}}, config);
}

}  // namespace cortex::llm
