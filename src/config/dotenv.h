// .env parsing with line numbers, for messages that point at the line.
#pragma once

#include <string>
#include <vector>

namespace cortex {

struct DotenvLine {
    std::string key;
    std::string value;
    int line = 0;
};

// As parse_dotenv() (cortex/config.h), in file order, with each variable's line.
std::vector<DotenvLine> parse_dotenv_lines(const std::string & text, const std::string & path);

}  // namespace cortex
