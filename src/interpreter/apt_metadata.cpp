#include "interpreter/apt_metadata.h"

#include <dirent.h>

#include <algorithm>

#include "interpreter/deb822.h"

namespace cortex::interpreter {

static std::vector<std::string> files_matching(const std::string & dir, const std::string & needle) {
    std::vector<std::string> out;
    if (DIR * d = opendir(dir.c_str())) {
        while (dirent * e = readdir(d)) {
            const std::string name = e->d_name;
            if (name.find(needle) != std::string::npos && name.find(".diff") == std::string::npos)
                out.push_back(dir + "/" + name);
        }
        closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::string> appstream_files(const std::string & lists_dir, const std::string & arch) {
    return files_matching(lists_dir, "_dep11_Components-" + arch + ".yml");
}

std::vector<std::string> translation_files(const std::string & lists_dir) {
    return files_matching(lists_dir, "_i18n_Translation-en");
}

static std::string trim_text(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\'' || s.front() == '"'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\r' || s.back() == '\'' || s.back() == '"'))
        s.remove_suffix(1);
    return std::string(s);
}

static std::string split_capitals(const std::string & s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (i > 0 && isupper(static_cast<unsigned char>(s[i])) && islower(static_cast<unsigned char>(s[i - 1])))
            out += ' ';
        out += s[i];
    }
    return out;
}

void read_appstream(const std::string & text, std::map<std::string, std::string> & out) {
    std::string package, name, keywords, categories, section;
    bool in_c = false;
    auto flush = [&] {
        if (!package.empty() && (!name.empty() || !keywords.empty() || !categories.empty())) {
            std::string & entry = out[package];
            entry += (entry.empty() ? "" : "; ") + name + "; " + keywords + "; " + categories;
        }
        package.clear(), name.clear(), keywords.clear(), categories.clear(), section.clear();
        in_c = false;
    };
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        std::string_view line(text.data() + pos, end - pos);
        pos = end + 1;
        if (line.starts_with("---")) {
            flush();
            continue;
        }
        if (!line.empty() && line[0] != ' ' && line[0] != '-') {
            const size_t colon = line.find(':');
            if (colon == std::string_view::npos) continue;
            section = std::string(line.substr(0, colon));
            const std::string value = trim_text(line.substr(colon + 1));
            if (section == "Package") package = value;
            in_c = false;
            continue;
        }
        const size_t indent = line.find_first_not_of(' ');
        if (indent == std::string_view::npos) continue;
        std::string_view rest = line.substr(indent);
        if (section == "Name" && rest.starts_with("C:")) {
            name = trim_text(rest.substr(2));
        } else if (section == "Keywords") {
            if (!rest.starts_with("- ")) {
                in_c = rest.starts_with("C:");
            } else if (in_c) {
                keywords += (keywords.empty() ? "" : ", ") + trim_text(rest.substr(2));
            }
        } else if (section == "Categories" && rest.starts_with("- ")) {
            categories += (categories.empty() ? "" : ", ") + split_capitals(trim_text(rest.substr(2)));
        }
    }
    flush();
}

void read_translations(const std::string & text, std::map<std::string, std::string> & out) {
    for_each_deb822_record(text, [&](const Deb822Record & r) {
        const std::string_view package = r.get("Package");
        const std::string_view description = r.get("Description-en");
        const size_t newline = description.find('\n');
        if (package.empty() || newline == std::string_view::npos) return;
        out.emplace(std::string(package), std::string(description.substr(newline + 1)));
    });
}

}  // namespace cortex::interpreter
