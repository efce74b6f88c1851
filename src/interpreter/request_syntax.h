// apt's own request syntax, read as apt-get reads it: "pkg", "pkg=VERSION", "pkg/RELEASE",
// "pkg:ARCH" (combinable as "pkg:ARCH=VERSION") and paths to local .deb files. Everything else in
// a request is plain words for the planner.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cortex::interpreter {

struct PackageSpec {
    enum class Kind { kName, kVersion, kRelease, kLocalDeb };
    Kind kind = Kind::kName;
    std::string name;     // lower case; for kLocalDeb, the name dpkg-deb reads from the file
    std::string arch;     // from ":ARCH", empty when none
    std::string version;  // from "=VERSION"
    std::string release;  // from "/RELEASE"
    std::string path;     // kLocalDeb: the absolute path
    std::string text;     // the token as the user typed it

    // The argument apt-get gets: "nginx:amd64=1.22.1-9", "nginx/bookworm" or "/abs/path.deb".
    std::string apt_argument() const;
};

struct RequestToken {
    std::string text;                 // as typed, without separating commas
    std::optional<PackageSpec> spec;  // set when the token is in apt's syntax
};

// Splits `request` at white space and commas; tokens in apt's syntax get a spec. Throws
// Error(kInvalidArgument) for a token in apt's syntax that apt would not accept either
// ("nginx==1", "=1.0", "nginx=", "nginx/", ":amd64", "nginx:"), and for a path that is not a .deb.
std::vector<RequestToken> parse_request_tokens(const std::string & request);

// Whether `s` is a valid Debian package name (policy 5.6.1: lower case letters, digits, '+',
// '-', '.', at least two characters, starting with a letter or digit).
bool is_package_name(const std::string & s);

// What dpkg-deb reads from a local package file.
struct DebInfo {
    std::string path;  // absolute, symbolic links resolved
    std::string name;
    std::string version;
    std::string architecture;
    std::string summary;
    uint64_t installed_bytes = 0;
};

// Inspects `path` with `dpkg-deb -f`. Throws Error(kNotFound) when the file does not exist,
// Error(kInvalidArgument) when it is not a Debian package (dpkg-deb's own message included).
DebInfo inspect_deb(const std::string & path);

}  // namespace cortex::interpreter
