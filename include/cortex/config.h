// cortex::Settings: every Cortex setting with the place its value came from.
//
// Precedence, highest first: command-line flags > process environment > $CORTEX_HOME/.env >
// $CORTEX_HOME/config.json > defaults. A malformed file, a bad line or a bad value is an Error
// that names the file (and line) and the fix; nothing is silently ignored.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cortex/error.h"
#include "cortex/llm.h"

namespace cortex {

enum class SettingSource { kDefault, kConfigFile, kDotEnv, kEnvironment, kFlag, kMigrated };

// "default", "config.json", ".env", "environment", "flag", "migrated".
const char * setting_source_name(SettingSource source);

struct SettingKey {
    const char * name;         // canonical key, as in `cortex config set NAME VALUE`
    const char * env;          // environment / .env variable, e.g. LLAMACPP_N_CTX
    const char * json;         // config.json key, e.g. llamacpp_n_ctx
    const char * description;
};

// Every key, in display order.
const std::vector<SettingKey> & setting_keys();

struct Setting {
    std::string value;
    SettingSource source = SettingSource::kDefault;
    std::string origin;  // the file (with line), variable or flag the value came from
};

class Settings {
  public:
    // Reads the environment, $CORTEX_HOME/.env and $CORTEX_HOME/config.json (`home` empty =
    // cortex::llm::cortex_home()). `flags` maps canonical key names to values given on the
    // command line. Throws Error(kInvalidArgument) for any bad input, naming where it is.
    static Settings load(const std::map<std::string, std::string> & flags = {}, const std::string & home = "");

    // The setting of a canonical key; throws Error(kInvalidArgument) for an unknown key.
    const Setting & get(const std::string & key) const;

    const std::string & home() const { return home_; }
    const std::string & provider() const { return get("provider").value; }
    const std::string & model() const { return get("model").value; }
    int n_ctx() const;
    int n_gpu_layers() const;
    int n_threads() const;
    const std::string & ollama_host() const { return get("ollama_host").value; }
    const std::string & ollama_model() const { return get("ollama_model").value; }
    const std::string & models_dir() const { return get("models_dir").value; }
    const std::string & preload_socket() const { return get("preload_socket").value; }
    const std::string & log_level() const { return get("log_level").value; }

    // n_ctx, n_gpu_layers, n_threads and the multi-device settings (split_mode, tensor_split,
    // main_gpu, rpc_servers, rpc_allow_remote) as a ModelConfig.
    llm::ModelConfig model_config() const;

    // Variables of .env that are no Cortex setting (e.g. HF_TOKEN): kept, not interpreted.
    const std::map<std::string, std::string> & dotenv_extras() const { return dotenv_extras_; }
    // A variable from the environment, else from .env; empty when neither has it.
    std::string env_or_dotenv(const std::string & name) const;

    // `cortex config show`: one line per key with value and source; or a JSON object.
    std::string to_text() const;
    std::string to_json() const;

  private:
    std::string home_;
    std::map<std::string, Setting> values_;
    std::map<std::string, std::string> dotenv_extras_;
};

// Parses .env text: KEY=VALUE lines, '#' comments, blank lines, an optional `export ` prefix,
// single quotes (literal) and double quotes (with \n, \t, \", \\ escapes). Throws Error naming
// `path` and the line for anything else.
std::map<std::string, std::string> parse_dotenv(const std::string & text, const std::string & path);

// Sets `key` (a canonical name or its config.json name) in `home`/config.json, after checking
// the value, keeping every other key, written atomically (temporary file, fsync, rename).
void set_config_value(const std::string & home, const std::string & key, const std::string & value);

}  // namespace cortex
