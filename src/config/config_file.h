// config.json's parser and the value checks every source of settings goes through, apart from
// Settings::load() so that they can be tested and fuzzed on their own.
#pragma once

#include <string>
#include <vector>

#include "cortex/config.h"

namespace cortex {

struct ConfigFileValue {
    const SettingKey * key;  // one of setting_keys()
    std::string value;
};

// The settings that config.json's `text` sets, in setting_keys() order, each value checked;
// unknown keys are ignored, null values are unset. Throws Error(kInvalidArgument) naming `path`
// (and the key) for text that is not a JSON object or a value that is wrong for its key.
std::vector<ConfigFileValue> parse_config_json(const std::string & text, const std::string & path);

// Throws Error(kInvalidArgument) unless `value` is valid for `key`; `where` (a file and line,
// a variable, a flag) starts the message.
void check_setting_value(const SettingKey & key, const std::string & value, const std::string & where);

}  // namespace cortex
