// cortex: the Cortex command. Today: `cortex config show|set` and `--version`.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli_common.h"
#include "cortex/config.h"

int main(int argc, char ** argv) {
    CLI::App app{"Cortex: plain requests to safe package actions, with a local language model"};
    app.set_version_flag("--version", std::string("cortex 0.1.0"));
    app.require_subcommand(1);

    CLI::App * config = app.add_subcommand("config", "show or change settings")->require_subcommand(1);
    bool json = false;
    CLI::App * show = config->add_subcommand("show", "every effective setting and where it came from");
    show->add_flag("--json", json, "print JSON");
    std::string key, value;
    CLI::App * set = config->add_subcommand("set", "write a setting into $CORTEX_HOME/config.json");
    set->add_option("KEY", key, "setting name, e.g. n_ctx or llamacpp_n_ctx")->required();
    set->add_option("VALUE", value, "new value")->required();

    CLI11_PARSE(app, argc, argv);
    return cortex::cli::run_guarded(json, [&] {
        if (show->parsed()) {
            cortex::Settings s = cortex::Settings::load();
            printf("%s", json ? (s.to_json() + "\n").c_str() : s.to_text().c_str());
            return 0;
        }
        const std::string home = cortex::llm::cortex_home();
        cortex::set_config_value(home, key, value);
        // Read back, so that a value overridden by .env or the environment is pointed out.
        cortex::Settings s = cortex::Settings::load();
        const cortex::Setting & now = s.get(key);
        printf("set %s = %s in %s/config.json\n", key.c_str(), value.c_str(), home.c_str());
        if (now.source != cortex::SettingSource::kConfigFile) {
            printf("note: the effective value is still '%s', from %s (%s), which takes precedence\n", now.value.c_str(),
                   cortex::setting_source_name(now.source), now.origin.c_str());
        }
        return 0;
    });
}
