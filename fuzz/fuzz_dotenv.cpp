// $CORTEX_HOME/.env: the parser, then each Cortex setting's value check, as Settings::load()
// applies them. A parsed value written back double-quoted must parse to the same value.
#include "config/config_file.h"
#include "config/dotenv.h"
#include "fuzz_common.h"

using namespace cortex;

namespace {

std::string quoted(const std::string & value) {
    std::string out = "\"";
    for (char c : value) {
        if (c == '"' || c == '\\') out += '\\';
        if (c == '\n')
            out += "\\n";
        else if (c == '\t')
            out += "\\t";
        else
            out += c;
    }
    return out + "\"";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::string text = fuzz::as_string(data, size);
    std::vector<DotenvLine> lines;
    if (!fuzz::accepts([&] { lines = parse_dotenv_lines(text, "/home/u/.cortex/.env"); })) return 0;
    int last_line = 0;
    for (const DotenvLine & l : lines) {
        fuzz::require(!l.key.empty() && l.line > last_line, "a .env variable without a name or out of order");
        last_line = l.line;
        for (const SettingKey & k : setting_keys()) {
            if (l.key == k.env)
                fuzz::accepts([&] { check_setting_value(k, l.value, ".env:" + std::to_string(l.line)); });
        }
        std::vector<DotenvLine> again;
        fuzz::require(fuzz::accepts([&] { again = parse_dotenv_lines(l.key + "=" + quoted(l.value), "again"); }),
                      "a parsed value, written back quoted, does not parse");
        fuzz::require(again.size() == 1 && again[0].key == l.key && again[0].value == l.value,
                      "a parsed value, written back quoted, parses to another value");
    }
    return 0;
}
