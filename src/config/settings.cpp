// Settings: defaults < config.json < .env < environment < flags, each value checked.
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "config/config_file.h"
#include "config/dotenv.h"
#include "core/file_util.h"
#include "cortex/config.h"
#include "http/http_server.h"

namespace cortex {
namespace {

const std::vector<SettingKey> kKeys = {
    {"provider", "CORTEX_PROVIDER", "api_provider", "where the model runs: llamacpp (in-process) or ollama (HTTP)"},
    {"model", "LLAMACPP_MODEL", "llamacpp_model", "model name (catalog or store) or .gguf path for llamacpp"},
    {"n_ctx", "LLAMACPP_N_CTX", "llamacpp_n_ctx", "context window in tokens"},
    {"n_gpu_layers", "LLAMACPP_N_GPU_LAYERS", "llamacpp_n_gpu_layers", "layers on the GPU: -1 all, 0 none"},
    {"n_threads", "LLAMACPP_N_THREADS", "llamacpp_n_threads", "CPU threads: 0 = one per physical core"},
    {"ollama_host", "OLLAMA_HOST", "ollama_host", "Ollama server for provider ollama"},
    {"ollama_model", "OLLAMA_MODEL", "ollama_model", "Ollama model name for provider ollama"},
    {"models_dir", "CORTEX_MODELS_DIR", "models_dir", "where downloaded models are stored"},
    {"preload_socket", "CORTEX_PRELOAD_SOCKET", "preload_socket", "Unix socket of the preload daemon"},
    {"log_level", "CORTEX_LOG_LEVEL", "log_level", "error, warn, info, debug or none"},
    {"http", "CORTEX_HTTP", "http", "preload daemon's HTTP API address (PORT or 127.0.0.1:PORT); empty = off"},
    {"http_token", "CORTEX_HTTP_TOKEN", "http_token", "bearer token the HTTP API requires; empty = none"},
    {"http_cors_origin", "CORTEX_HTTP_CORS_ORIGIN", "http_cors_origin", "origin allowed by CORS (* or one origin); empty = CORS off"},
    {"split_mode", "LLAMACPP_SPLIT_MODE", "llamacpp_split_mode", "model over several GPUs: layer, row, or none (main_gpu only)"},
    {"tensor_split", "LLAMACPP_TENSOR_SPLIT", "llamacpp_tensor_split", "share of each device, e.g. 3,1; empty = by free memory"},
    {"main_gpu", "LLAMACPP_MAIN_GPU", "llamacpp_main_gpu", "device index for split_mode none (RPC devices first, then local GPUs)"},
    {"rpc_servers", "LLAMACPP_RPC_SERVERS", "llamacpp_rpc_servers", "ggml-rpc-server HOST:PORT list whose devices join the split"},
    {"rpc_allow_remote", "LLAMACPP_RPC_ALLOW_REMOTE", "llamacpp_rpc_allow_remote",
     "1 = allow non-loopback RPC servers (RPC has no authentication: trusted networks only)"},
};

const SettingKey * find_key(const std::string & name) {
    for (const SettingKey & k : kKeys) {
        if (name == k.name || name == k.json || name == k.env) return &k;
    }
    return nullptr;
}

bool parse_int(const std::string & s, long & out) {
    if (s.empty()) return false;
    char * end = nullptr;
    errno = 0;
    out = std::strtol(s.c_str(), &end, 10);
    return errno == 0 && end && *end == '\0';
}

// "3,1" -> {3, 1}; empty -> {}. Throws naming `where`.
std::vector<float> parse_tensor_split(const std::string & value, const std::string & where) {
    std::vector<float> out;
    if (value.empty()) return out;
    size_t start = 0;
    float sum = 0;
    while (true) {
        const size_t comma = value.find(',', start);
        const std::string item = value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        char * end = nullptr;
        errno = 0;
        const float f = std::strtof(item.c_str(), &end);
        if (item.empty() || errno != 0 || !end || *end != '\0' || !(f >= 0) || f > 1e6f) {
            throw Error(ErrorCode::kInvalidArgument, where + ": tensor split '" + value + "' is not a list of proportions",
                        "one non-negative number per device, comma-separated, e.g. 3,1 (RPC devices first, then local GPUs)");
        }
        out.push_back(f);
        sum += f;
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    if (sum <= 0) throw Error(ErrorCode::kInvalidArgument, where + ": tensor split '" + value + "' gives every device 0", "e.g. 1,1 to split evenly");
    return out;
}

// Checks `value` for `key`; `where` says where it came from, for the message.
void check_value(const SettingKey & key, const std::string & value, const std::string & where) {
    const std::string name = key.name;
    auto bad = [&](const std::string & why, const std::string & hint) {
        throw Error(ErrorCode::kInvalidArgument, where + ": " + why, hint);
    };
    long n = 0;
    if (name == "provider") {
        if (value != "llamacpp" && value != "ollama") {
            bad("unknown provider '" + value + "'", "set " + std::string(key.env) + " to llamacpp or ollama");
        }
    } else if (name == "n_ctx") {
        if (!parse_int(value, n) || n <= 0 || n > (1L << 24)) {
            bad(std::string(key.env) + "='" + value + "' is not a positive number of tokens", "e.g. " + std::string(key.env) + "=4096");
        }
    } else if (name == "n_gpu_layers") {
        if (!parse_int(value, n) || n < -1 || n > 100000) {
            bad(std::string(key.env) + "='" + value + "' is not a layer count", "-1 = all layers on the GPU, 0 = none, or a number");
        }
    } else if (name == "n_threads") {
        if (!parse_int(value, n) || n < 0 || n > 4096) {
            bad(std::string(key.env) + "='" + value + "' is not a thread count", "0 = one per physical core, or a number");
        }
    } else if (name == "log_level") {
        if (value != "error" && value != "warn" && value != "info" && value != "debug" && value != "none") {
            bad("unknown log level '" + value + "'", "use error, warn, info, debug or none");
        }
    } else if (name == "http") {
        if (!value.empty()) {
            std::string host;
            int port = 0;
            http::parse_address(value, host, port);  // throws with the accepted forms
        }
    } else if (name == "split_mode") {
        if (value != "layer" && value != "row" && value != "none") {
            bad("unknown split mode '" + value + "'", "use layer (whole layers per GPU), row (rows of each matrix across GPUs) or none");
        }
    } else if (name == "tensor_split") {
        parse_tensor_split(value, where);
    } else if (name == "main_gpu") {
        if (!parse_int(value, n) || n < 0 || n > 255) {
            bad(std::string(key.env) + "='" + value + "' is not a device index", "0 = the first device; see `cortex doctor` for the list");
        }
    } else if (name == "rpc_servers") {
        try {
            llm::parse_rpc_servers(value, true);  // the loopback rule is checked once every source is read
        } catch (const Error & e) {
            bad(e.message(), e.hint());
        }
    } else if (name == "rpc_allow_remote") {
        if (value != "0" && value != "1") bad(std::string(key.env) + "='" + value + "' is not 0 or 1", "1 = allow non-loopback RPC servers");
    } else if (name == "ollama_host") {
        if (value.empty()) bad("OLLAMA_HOST is empty", "e.g. OLLAMA_HOST=http://localhost:11434");
    }
}

std::string default_socket(const std::string & home) {
    const char * xdg = std::getenv("XDG_RUNTIME_DIR");
    if (xdg && *xdg) return std::string(xdg) + "/cortex/preload.sock";
    return home + "/run/preload.sock";
}

// config.json values may be strings or numbers; anything else is an error.
std::string json_value(const nlohmann::json & v, const std::string & key, const std::string & path) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer()) return std::to_string(v.get<long long>());
    throw Error(ErrorCode::kInvalidArgument, path + ": \"" + key + "\" must be a string or a whole number, not " + v.dump(),
                "fix it with: cortex config set " + key + " VALUE");
}

}  // namespace

void check_setting_value(const SettingKey & key, const std::string & value, const std::string & where) {
    check_value(key, value, where);
}

std::vector<ConfigFileValue> parse_config_json(const std::string & text, const std::string & path) {
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error & e) {
        throw Error(ErrorCode::kInvalidArgument, path + " is not valid JSON (byte " + std::to_string(e.byte) + ")",
                    "fix the file, or move it away and use: cortex config set KEY VALUE");
    } catch (const nlohmann::json::exception & e) {  // out_of_range: a number such as 1e400
        throw Error(ErrorCode::kInvalidArgument, path + " is not valid JSON: " + e.what(),
                    "fix the file, or move it away and use: cortex config set KEY VALUE");
    }
    if (!doc.is_object()) {
        throw Error(ErrorCode::kInvalidArgument, path + " must hold a JSON object",
                    "e.g. {\"api_provider\": \"llamacpp\", \"llamacpp_n_ctx\": 4096}");
    }
    std::vector<ConfigFileValue> out;
    for (const SettingKey & k : kKeys) {
        auto it = doc.find(k.json);
        if (it == doc.end() || it->is_null()) continue;
        std::string value = json_value(*it, k.json, path);
        check_value(k, value, path + " \"" + k.json + "\"");
        out.push_back({&k, std::move(value)});
    }
    return out;
}

const char * setting_source_name(SettingSource source) {
    switch (source) {
        case SettingSource::kDefault: return "default";
        case SettingSource::kConfigFile: return "config.json";
        case SettingSource::kDotEnv: return ".env";
        case SettingSource::kEnvironment: return "environment";
        case SettingSource::kFlag: return "flag";
        case SettingSource::kMigrated: return "migrated";
    }
    return "unknown";
}

const std::vector<SettingKey> & setting_keys() { return kKeys; }

Settings Settings::load(const std::map<std::string, std::string> & flags, const std::string & home_arg) {
    Settings s;
    s.home_ = home_arg.empty() ? llm::cortex_home() : home_arg;
    const std::string home = s.home_;
    s.values_ = {
        {"provider", {"llamacpp", SettingSource::kDefault, ""}},
        {"model", {"", SettingSource::kDefault, ""}},
        {"n_ctx", {"4096", SettingSource::kDefault, ""}},
        {"n_gpu_layers", {"-1", SettingSource::kDefault, ""}},
        {"n_threads", {"0", SettingSource::kDefault, ""}},
        {"ollama_host", {"http://localhost:11434", SettingSource::kDefault, ""}},
        {"ollama_model", {"", SettingSource::kDefault, ""}},
        {"models_dir", {home + "/models", SettingSource::kDefault, ""}},
        {"preload_socket", {default_socket(home), SettingSource::kDefault, ""}},
        {"log_level", {"error", SettingSource::kDefault, ""}},
        {"http", {"", SettingSource::kDefault, ""}},
        {"http_token", {"", SettingSource::kDefault, ""}},
        {"http_cors_origin", {"", SettingSource::kDefault, ""}},
        {"split_mode", {"layer", SettingSource::kDefault, ""}},
        {"tensor_split", {"", SettingSource::kDefault, ""}},
        {"main_gpu", {"0", SettingSource::kDefault, ""}},
        {"rpc_servers", {"", SettingSource::kDefault, ""}},
        {"rpc_allow_remote", {"0", SettingSource::kDefault, ""}},
    };

    const std::string json_path = home + "/config.json";
    std::string text;
    if (read_file(json_path, text)) {
        for (const ConfigFileValue & v : parse_config_json(text, json_path)) {
            s.values_[v.key->name] = {v.value, SettingSource::kConfigFile, json_path};
        }
    }

    const std::string env_path = home + "/.env";
    if (read_file(env_path, text)) {
        for (const DotenvLine & line : parse_dotenv_lines(text, env_path)) {
            const std::string & name = line.key;
            const std::string & value = line.value;
            const SettingKey * k = nullptr;
            for (const SettingKey & candidate : kKeys) {
                if (name == candidate.env) k = &candidate;
            }
            if (!k) {
                s.dotenv_extras_[name] = value;
                continue;
            }
            check_value(*k, value, env_path + ":" + std::to_string(line.line));
            s.values_[k->name] = {value, SettingSource::kDotEnv, env_path};
        }
    }

    for (const SettingKey & k : kKeys) {
        const char * v = std::getenv(k.env);
        if (!v) continue;
        check_value(k, v, "environment variable " + std::string(k.env));
        s.values_[k.name] = {v, SettingSource::kEnvironment, k.env};
    }

    for (const auto & [name, value] : flags) {
        const SettingKey * k = find_key(name);
        if (!k) throw Error(ErrorCode::kInvalidArgument, "unknown setting '" + name + "'", "see: cortex config show");
        check_value(*k, value, "--" + std::string(k->name));
        s.values_[k->name] = {value, SettingSource::kFlag, "--" + std::string(k->name)};
    }

    // The loopback rule needs both settings, which may come from different places.
    const Setting & rpc = s.values_["rpc_servers"];
    try {
        llm::parse_rpc_servers(rpc.value, s.values_["rpc_allow_remote"].value == "1");
    } catch (const Error & e) {
        throw Error(e.code(), (rpc.origin.empty() ? "rpc_servers" : rpc.origin) + ": " + e.message(), e.hint());
    }

    // An Ollama user who switches to llamacpp keeps their model choice.
    Setting & model = s.values_["model"];
    const Setting & ollama_model = s.values_["ollama_model"];
    if (s.values_["provider"].value == "llamacpp" && model.value.empty() && !ollama_model.value.empty()) {
        model = {ollama_model.value, SettingSource::kMigrated, "OLLAMA_MODEL (" + std::string(setting_source_name(ollama_model.source)) + ")"};
    }
    return s;
}

const Setting & Settings::get(const std::string & key) const {
    const SettingKey * k = find_key(key);
    if (!k) throw Error(ErrorCode::kInvalidArgument, "unknown setting '" + key + "'", "see: cortex config show");
    return values_.at(k->name);
}

int Settings::n_ctx() const { return std::atoi(get("n_ctx").value.c_str()); }
int Settings::n_gpu_layers() const { return std::atoi(get("n_gpu_layers").value.c_str()); }
int Settings::n_threads() const { return std::atoi(get("n_threads").value.c_str()); }

llm::ModelConfig Settings::model_config() const {
    llm::ModelConfig c;
    c.n_ctx = n_ctx();
    c.n_gpu_layers = n_gpu_layers();
    c.n_threads = n_threads();
    const std::string & mode = get("split_mode").value;
    c.split_mode = mode == "none" ? llm::SplitMode::kNone : mode == "row" ? llm::SplitMode::kRow : llm::SplitMode::kLayer;
    c.tensor_split = parse_tensor_split(get("tensor_split").value, "tensor_split");
    c.main_gpu = std::atoi(get("main_gpu").value.c_str());
    c.rpc_allow_remote = get("rpc_allow_remote").value == "1";
    c.rpc_servers = llm::parse_rpc_servers(get("rpc_servers").value, c.rpc_allow_remote);
    return c;
}

std::string Settings::env_or_dotenv(const std::string & name) const {
    if (const char * v = std::getenv(name.c_str())) return v;
    auto it = dotenv_extras_.find(name);
    return it == dotenv_extras_.end() ? std::string() : it->second;
}

std::string Settings::to_text() const {
    std::string out;
    for (const SettingKey & k : kKeys) {
        const Setting & s = values_.at(k.name);
        std::string line = std::string(k.name) + std::string(16 - std::min<size_t>(15, std::string(k.name).size()), ' ') +
                           (s.value.empty() ? "(unset)" : k.name == std::string("http_token") ? "(set, hidden)" : s.value);
        line += "  [" + std::string(setting_source_name(s.source)) + (s.origin.empty() ? "" : ": " + s.origin) + "]";
        out += line + "\n";
    }
    for (const auto & [name, value] : dotenv_extras_) {
        out += name + " is set in " + home_ + "/.env (not a Cortex setting; passed to tools that use it)\n";
    }
    return out;
}

std::string Settings::to_json() const {
    nlohmann::json j = nlohmann::json::object();
    for (const SettingKey & k : kKeys) {
        const Setting & s = values_.at(k.name);
        const bool secret = k.name == std::string("http_token") && !s.value.empty();  // never printed
        j[k.name] = {{"value", secret ? "(set, hidden)" : s.value}, {"source", setting_source_name(s.source)}, {"origin", s.origin},
                     {"env", k.env}, {"json", k.json}};
    }
    return j.dump(2);
}

void set_config_value(const std::string & home, const std::string & key, const std::string & value) {
    const SettingKey * k = find_key(key);
    if (!k) {
        std::string names;
        for (const SettingKey & candidate : kKeys) names += std::string(names.empty() ? "" : ", ") + candidate.name;
        throw Error(ErrorCode::kInvalidArgument, "unknown setting '" + key + "'", "settings: " + names);
    }
    check_value(*k, value, std::string(k->name));
    const std::string path = home + "/config.json";
    nlohmann::json doc = nlohmann::json::object();
    std::string text;
    if (read_file(path, text) && !text.empty()) {
        try {
            doc = nlohmann::json::parse(text);
        } catch (const nlohmann::json::parse_error & e) {
            throw Error(ErrorCode::kInvalidArgument, path + " is not valid JSON (byte " + std::to_string(e.byte) + "); not changed",
                        "fix the file by hand first, or move it away");
        } catch (const nlohmann::json::exception & e) {  // out_of_range: a number such as 1e400
            throw Error(ErrorCode::kInvalidArgument, path + " is not valid JSON (" + e.what() + "); not changed",
                        "fix the file by hand first, or move it away");
        }
        if (!doc.is_object()) throw Error(ErrorCode::kInvalidArgument, path + " must hold a JSON object; not changed", "fix the file");
    }
    const std::string name = k->name;
    const bool numeric = name == "n_ctx" || name == "n_gpu_layers" || name == "n_threads" || name == "main_gpu";
    if (numeric) doc[k->json] = std::atol(value.c_str());
    else doc[k->json] = value;
    write_file_atomic(path, doc.dump(2) + "\n", 0600);
}

}  // namespace cortex
