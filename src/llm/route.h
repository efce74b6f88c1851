// Where a generation on a llamacpp model runs: the preload daemon when it serves the model
// (CORTEX_PRELOAD=auto|off|required), else in-process. Shared by quick_* and the interpreter's
// llamacpp provider, so that both pick the same route for the same settings.
#pragma once

#include <functional>
#include <string>

#include "cortex/config.h"
#include "cortex/llm.h"
#include "cortex/preload.h"

namespace cortex::llm {

// Runs `remote` on a daemon at settings.preload_socket() when it serves `model` (same name, or
// the same file once resolved by `manager`), else `local` on manager.load_model(model,
// settings.model_config()). In auto mode a daemon that goes away mid-request (kIo) falls back
// to in-process; in required mode no daemon is Error(kNotFound). `route` (optional) receives
// "daemon" or "in-process". Throws what `remote`, `local` and loading throw.
Result run_routed(const std::string & model, const Settings & settings, ModelManager & manager,
                  const std::function<Result(preload::Client &)> & remote, const std::function<Result(Model &)> & local,
                  std::string * route = nullptr);

}  // namespace cortex::llm
