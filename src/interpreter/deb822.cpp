#include "interpreter/deb822.h"

namespace cortex::interpreter {

std::string_view Deb822Record::get(std::string_view field) const {
    for (const auto & [key, value] : fields) {
        if (key.size() == field.size()) {
            bool same = true;
            for (size_t i = 0; i < key.size() && same; ++i) {
                same = (key[i] | 0x20) == (field[i] | 0x20);  // field names are case-insensitive
            }
            if (same) return value;
        }
    }
    return {};
}

static std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

void for_each_deb822_record(std::string_view text, const std::function<void(const Deb822Record &)> & on_record) {
    Deb822Record record;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (trim(line).empty()) {
            if (!record.fields.empty()) on_record(record);
            record.fields.clear();
        } else if (line.front() == ' ' || line.front() == '\t') {
            if (!record.fields.empty()) {
                // Extend the previous value's view over its continuation lines.
                std::string_view & value = record.fields.back().second;
                const char * begin = value.empty() ? line.data() : value.data();
                value = std::string_view(begin, line.data() + line.size() - begin);
            }
        } else if (line.front() != '#') {
            size_t colon = line.find(':');
            if (colon != std::string_view::npos) {
                record.fields.emplace_back(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
            }
        }
        if (end == text.size()) break;
        pos = end + 1;
    }
    if (!record.fields.empty()) on_record(record);
}

}  // namespace cortex::interpreter
