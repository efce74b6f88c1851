#include "interpreter/request_syntax.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>

#include "core/string_util.h"
#include "core/subprocess.h"
#include "cortex/error.h"

namespace cortex::interpreter {
namespace {

bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

// Debian policy 5.6.12: [epoch:]upstream[-revision], upstream starting with a digit.
bool is_version(const std::string & v) {
    if (v.empty()) return false;
    for (char c : v) {
        if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '+' && c != '~' && c != '-' && c != ':')
            return false;
    }
    const size_t colon = v.find(':');
    const size_t start = colon == std::string::npos ? 0 : colon + 1;
    return start < v.size() && isdigit(static_cast<unsigned char>(v[start]));
}

bool is_release(const std::string & r) {
    if (r.empty()) return false;
    for (char c : r) {
        if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') return false;
    }
    return true;
}

Error syntax_error(const std::string & token, const std::string & what) {
    return Error(ErrorCode::kInvalidArgument, "'" + token + "': " + what,
                 "apt's syntax is pkg, pkg=VERSION, pkg/RELEASE, pkg:ARCH or a path to a .deb file, e.g. "
                 "nginx=1.22.1-9 or ./package.deb; `apt-cache policy <pkg>` lists versions and releases");
}

bool looks_like_path(const std::string & t) {
    return t.starts_with("/") || t.starts_with("./") || t.starts_with("../") || t.starts_with("~/");
}

PackageSpec parse_spec(const std::string & token) {
    PackageSpec spec;
    spec.text = token;
    std::string rest = token;
    // pkg[:arch][=version | /release]
    const size_t eq = rest.find('=');
    const size_t slash = rest.find('/');
    if (eq != std::string::npos) {
        spec.kind = PackageSpec::Kind::kVersion;
        spec.version = rest.substr(eq + 1);
        rest.resize(eq);
        if (spec.version.empty()) throw syntax_error(token, "no version after '='");
        if (spec.version.find('=') != std::string::npos || !is_version(spec.version))
            throw syntax_error(token, "'" + spec.version + "' is not a Debian version (pkg=VERSION takes one '=')");
    } else if (slash != std::string::npos) {
        spec.kind = PackageSpec::Kind::kRelease;
        spec.release = rest.substr(slash + 1);
        rest.resize(slash);
        if (spec.release.empty()) throw syntax_error(token, "no release after '/'");
        if (!is_release(spec.release)) throw syntax_error(token, "'" + spec.release + "' is not a release name");
    }
    if (const size_t colon = rest.find(':'); colon != std::string::npos) {
        spec.arch = rest.substr(colon + 1);
        rest.resize(colon);
        if (spec.arch.empty()) throw syntax_error(token, "no architecture after ':'");
        for (char c : spec.arch) {
            if (!is_name_char(static_cast<char>(tolower(static_cast<unsigned char>(c)))) || c == '+' || c == '.')
                throw syntax_error(token, "'" + spec.arch + "' is not an architecture name");
        }
        spec.arch = to_lower(spec.arch);
    }
    if (rest.empty()) throw syntax_error(token, "no package name");
    spec.name = to_lower(rest);
    if (!is_package_name(spec.name)) throw syntax_error(token, "'" + rest + "' is not a Debian package name");
    return spec;
}

}  // namespace

bool is_package_name(const std::string & s) {
    if (s.size() < 2 || !(isalnum(static_cast<unsigned char>(s[0])))) return false;
    for (char c : s) {
        if (!is_name_char(c)) return false;
    }
    return true;
}

std::string PackageSpec::apt_argument() const {
    if (kind == Kind::kLocalDeb) return path;
    std::string a = name;
    if (!arch.empty()) a += ":" + arch;
    if (kind == Kind::kVersion) a += "=" + version;
    if (kind == Kind::kRelease) a += "/" + release;
    return a;
}

std::vector<RequestToken> parse_request_tokens(const std::string & request) {
    std::vector<RequestToken> tokens;
    std::string cur;
    auto flush = [&] {
        if (cur.empty()) return;
        RequestToken t{cur, std::nullopt};
        const bool deb = to_lower(cur).ends_with(".deb") && cur.size() > 4;
        const bool punctuation =
            std::none_of(cur.begin(), cur.end(), [](char c) { return isalnum(static_cast<unsigned char>(c)); });
        if (punctuation) {
            // "/" or "+" between words: a separator, not a package.
        } else if (deb || looks_like_path(cur)) {
            if (!deb) {
                throw Error(ErrorCode::kInvalidArgument, "'" + cur + "' is a path, but not to a .deb file",
                            "apt installs local packages from .deb files, e.g. cortex install ./package.deb");
            }
            PackageSpec spec;
            spec.kind = PackageSpec::Kind::kLocalDeb;
            spec.text = cur;
            spec.path = cur;
            t.spec = spec;
        } else if (cur.find_first_of("=/:") != std::string::npos) {
            t.spec = parse_spec(cur);
        }
        tokens.push_back(std::move(t));
        cur.clear();
    };
    for (char c : request) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',') {
            flush();
        } else {
            cur += c;
        }
    }
    flush();
    return tokens;
}

DebInfo inspect_deb(const std::string & path) {
    std::string expanded = path;
    if (expanded.starts_with("~/")) {
        const char * home = getenv("HOME");
        expanded = std::string(home ? home : "") + expanded.substr(1);
    }
    struct stat st {};
    if (stat(expanded.c_str(), &st) != 0) {
        throw Error(ErrorCode::kNotFound, "no such file: " + path,
                    "check the path; a local package is installed from its .deb file, e.g. cortex install ./x.deb");
    }
    if (!S_ISREG(st.st_mode)) {
        throw Error(ErrorCode::kInvalidArgument, path + " is not a regular file", "name the .deb file itself");
    }
    char resolved[PATH_MAX];
    if (!realpath(expanded.c_str(), resolved)) {
        throw Error(ErrorCode::kIo, "cannot resolve the path " + path, "check the permissions of its folders");
    }
    ProcessOptions options;
    options.merge_stderr = true;
    options.extra_env = {{"LC_ALL", "C"}};
    ProcessResult r = run_process(
        {"dpkg-deb", "-f", resolved, "Package", "Version", "Architecture", "Description", "Installed-Size"}, options);
    if (r.exit_status != 0) {
        throw Error(ErrorCode::kInvalidArgument, path + " is not a Debian package: " + trim(r.output),
                    "download the .deb again; `dpkg-deb --info " + path + "` shows what dpkg sees");
    }
    DebInfo info;
    size_t pos = 0;
    while (pos < r.output.size()) {
        size_t end = r.output.find('\n', pos);
        if (end == std::string::npos) end = r.output.size();
        const std::string line = r.output.substr(pos, end - pos);
        pos = end + 1;
        const size_t colon = line.find(':');
        if (colon == std::string::npos || line.starts_with(" ")) continue;
        const std::string key = line.substr(0, colon), value = trim(line.substr(colon + 1));
        if (key == "Package") info.name = value;
        if (key == "Version") info.version = value;
        if (key == "Architecture") info.architecture = value;
        if (key == "Description") info.summary = value;
        if (key == "Installed-Size") info.installed_bytes = std::strtoull(value.c_str(), nullptr, 10) * 1024;
    }
    if (!is_package_name(info.name) || info.version.empty()) {
        throw Error(ErrorCode::kInvalidArgument, path + " has no valid Package and Version fields",
                    "the file is damaged or not made for Debian");
    }
    info.path = resolved;
    return info;
}

}  // namespace cortex::interpreter
