// Small string helpers shared by the library.
#pragma once

#include <string>

namespace cortex {

// `s` without leading and trailing characters of `chars`.
inline std::string trim(const std::string & s, const char * chars = " \t\r\n") {
    const size_t b = s.find_first_not_of(chars);
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(chars) - b + 1);
}

// ASCII lower case.
inline std::string to_lower(std::string s) {
    for (char & c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return s;
}

}  // namespace cortex
