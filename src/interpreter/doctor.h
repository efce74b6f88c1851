// `cortex doctor`: the troubleshooting guide as checks, each problem with the command that fixes it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cortex/config.h"

namespace cortex::interpreter {

struct DoctorCheck {
    enum Status { kOk, kWarn, kFail };
    std::string name;  // e.g. "model"
    Status status = kOk;
    std::string detail;  // what was found; may span lines
    std::string fix;     // for kWarn and kFail: what to run or set
};

// "ok", "warn", "fail".
const char * doctor_status_name(DoctorCheck::Status status);

// Runs every check for `settings`, in this order: llama.cpp backends, GPUs, RPC servers, model, preload
// daemon, settings, Ollama, apt package index, privileges. Loads no model weights (the model file
// is checked by its GGUF header) and waits at most about 2 s for Ollama. Never throws: a check
// that cannot run is a kFail that says why.
std::vector<DoctorCheck> run_doctor(const Settings & settings);

// Whether no check failed (warnings are fine): the exit status of `cortex doctor`.
bool doctor_passed(const std::vector<DoctorCheck> & checks);

// One block per check ("[ ok ] name: detail", "       fix: ..."), then a summary line.
std::string doctor_to_text(const std::vector<DoctorCheck> & checks);
// {"passed": bool, "checks": [{"name", "status", "detail", "fix"}]}
nlohmann::json doctor_to_json(const std::vector<DoctorCheck> & checks);

}  // namespace cortex::interpreter
