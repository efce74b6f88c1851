// What every Cortex command-line tool shares: error reporting at the boundary.
#pragma once

#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>

#include "cortex/error.h"

namespace cortex::cli {

// Runs `body`; a cortex::Error becomes "error: ..." and "hint: ..." on stderr (or a JSON
// object on stdout with `json`) and exit status 1, or 130 when the user interrupted.
inline int run_guarded(bool json, const std::function<int()> & body) {
    try {
        return body();
    } catch (const Error & e) {
        if (json) {
            nlohmann::json j = {{"error", {{"code", error_code_name(e.code())}, {"message", e.message()}, {"hint", e.hint()}}}};
            printf("%s\n", j.dump().c_str());
        } else {
            fprintf(stderr, "error: %s\n", e.message().c_str());
            if (!e.hint().empty()) fprintf(stderr, "hint: %s\n", e.hint().c_str());
        }
        return e.code() == ErrorCode::kCancelled ? 130 : 1;
    } catch (const std::exception & e) {
        fprintf(stderr, "error: internal error: %s\nhint: please report this bug\n", e.what());
        return 1;
    }
}

}  // namespace cortex::cli
