// The .env parser: KEY=VALUE, comments, quotes, `export `; every other line is an error.
#include <cctype>

#include "config/dotenv.h"
#include "core/string_util.h"
#include "cortex/config.h"

namespace cortex {
namespace {

bool valid_name(const std::string & name) {
    if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
    for (char c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
    }
    return true;
}

}  // namespace

std::map<std::string, std::string> parse_dotenv(const std::string & text, const std::string & path) {
    std::map<std::string, std::string> out;
    for (const DotenvLine & l : parse_dotenv_lines(text, path)) out[l.key] = l.value;
    return out;
}

std::vector<DotenvLine> parse_dotenv_lines(const std::string & text, const std::string & path) {
    std::vector<DotenvLine> out;
    size_t line_no = 0, pos = 0;
    while (pos <= text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        std::string line = trim(text.substr(pos, end - pos));
        pos = end + 1;
        ++line_no;
        const std::string where = path + ":" + std::to_string(line_no);
        if (line.empty() || line[0] == '#') {
            if (end == text.size()) break;
            continue;
        }
        if (line.rfind("export ", 0) == 0) line = trim(line.substr(7));
        size_t eq = line.find('=');
        if (eq == std::string::npos) {
            throw Error(ErrorCode::kInvalidArgument, where + ": expected KEY=VALUE, got '" + line + "'",
                        "fix or remove that line of " + path + " (comments start with #)");
        }
        std::string key = trim(line.substr(0, eq));
        std::string raw = trim(line.substr(eq + 1));
        if (!valid_name(key)) {
            throw Error(ErrorCode::kInvalidArgument, where + ": '" + key + "' is not a variable name",
                        "names are letters, digits and _, e.g. LLAMACPP_N_CTX=4096");
        }
        std::string value;
        if (!raw.empty() && (raw[0] == '"' || raw[0] == '\'')) {
            const char quote = raw[0];
            size_t i = 1;
            bool closed = false;
            for (; i < raw.size(); ++i) {
                char c = raw[i];
                if (c == quote) {
                    closed = true;
                    break;
                }
                if (quote == '"' && c == '\\' && i + 1 < raw.size()) {
                    char n = raw[++i];
                    value += n == 'n' ? '\n' : n == 't' ? '\t' : n;
                } else {
                    value += c;
                }
            }
            if (!closed) {
                throw Error(ErrorCode::kInvalidArgument, where + ": the value of " + key + " has no closing " + quote,
                            "close the quote on the same line");
            }
            std::string rest = trim(raw.substr(i + 1));
            if (!rest.empty() && rest[0] != '#') {
                throw Error(ErrorCode::kInvalidArgument, where + ": unexpected text after the quoted value of " + key,
                            "put a comment after a '#', or quote the whole value");
            }
        } else {
            // An unquoted value ends at " #" (a trailing comment).
            size_t hash = raw.find(" #");
            value = trim(hash == std::string::npos ? raw : raw.substr(0, hash));
        }
        out.push_back({key, value, static_cast<int>(line_no)});
        if (end == text.size()) break;
    }
    return out;
}

}  // namespace cortex
