// What every fuzz target shares. A parser of outside input answers bad input with a
// cortex::Error (an ApiError is one) and nothing else: any other exception that escapes, and any
// broken invariant, is a bug, so it aborts and libFuzzer keeps the input as a reproducer.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <typeinfo>

#include "cortex/error.h"

namespace cortex::fuzz {

inline std::string as_string(const uint8_t * data, size_t size) {
    return std::string(reinterpret_cast<const char *>(data), size);
}

// Aborts with `what` when `ok` is false.
inline void require(bool ok, const char * what) {
    if (!ok) {
        fprintf(stderr, "fuzz: invariant broken: %s\n", what);
        abort();
    }
}

// Runs `parse`; a cortex::Error is the expected answer to bad input, anything else aborts.
// Returns whether `parse` completed without an Error.
template <typename F>
bool accepts(F && parse) {
    try {
        parse();
        return true;
    } catch (const Error &) {
        return false;
    } catch (const std::exception & e) {
        fprintf(stderr, "fuzz: %s escaped the parser: %s\n", typeid(e).name(), e.what());
        abort();
    }
}

}  // namespace cortex::fuzz
