// $CORTEX_HOME/config.json: the parser and every setting's value check (numbers, addresses,
// tensor splits, RPC server lists).
#include "config/config_file.h"
#include "fuzz_common.h"

using namespace cortex;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    std::vector<ConfigFileValue> values;
    if (!fuzz::accepts(
            [&] { values = parse_config_json(fuzz::as_string(data, size), "/home/u/.cortex/config.json"); })) {
        return 0;
    }
    for (size_t i = 0; i < values.size(); ++i) {
        fuzz::require(values[i].key != nullptr, "a config.json value without its key");
        for (size_t k = 0; k < i; ++k) fuzz::require(values[k].key != values[i].key, "a key set twice");
        // A value that passed its check once passes it again (the check has no state).
        fuzz::require(fuzz::accepts([&] { check_setting_value(*values[i].key, values[i].value, "again"); }),
                      "a checked value fails its check the second time");
    }
    return 0;
}
