// cortex: plain requests to safe package actions. A thin main over src/interpreter/.
//
//   cortex install|remove|upgrade <request...> [--dry-run | --execute] [--yes] [--json] [--no-model]
//   cortex ask "<question>" | history [show ID] | rollback ID | doctor | config show|set
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

#include "cli_common.h"
#include "cortex/config.h"
#include "interpreter/apt_simulation.h"
#include "interpreter/ask.h"
#include "interpreter/doctor.h"
#include "interpreter/executor.h"
#include "interpreter/history.h"
#include "interpreter/planner.h"
#include "interpreter/system_info.h"

using namespace cortex;
using namespace cortex::interpreter;
using nlohmann::json;

namespace {

std::atomic<bool> g_interrupted{false};

void on_sigint(int) {
    g_interrupted = true;
}

struct CommonOptions {
    bool json = false;
    std::string model;
    std::string provider;
    bool no_model = false;
    bool choose_only = false;

    Settings settings() const {
        std::map<std::string, std::string> flags;
        if (!model.empty()) flags["model"] = model;
        if (!provider.empty()) flags["provider"] = provider;
        return Settings::load(flags);
    }
};

std::string join_words(const std::vector<std::string> & words) {
    std::string s;
    for (const std::string & w : words) s += (s.empty() ? "" : " ") + w;
    return s;
}

// The provider for planning, or null with the reason in `note` when no model is available: the
// package index then decides alone.
std::unique_ptr<Provider> planning_provider(const Settings & settings, bool no_model, std::string & note) {
    if (no_model) return nullptr;
    std::string why;
    if (!provider_available(settings, &why)) {
        note = why;
        return nullptr;
    }
    return open_provider(settings);
}

bool confirm(const std::string & question) {
    if (!isatty(STDIN_FILENO)) {
        throw Error(ErrorCode::kInvalidArgument, "confirmation needed, but standard input is not a terminal",
                    "add --yes to proceed without asking");
    }
    fprintf(stderr, "%s [y/N] ", question.c_str());
    std::string answer;
    if (!std::getline(std::cin, answer)) return false;
    return answer == "y" || answer == "Y" || answer == "yes";
}

// Runs a plan with --execute: confirmation, apt's output streamed, the result in the history.
int execute_and_record(const Plan & plan, const std::string & command, bool yes, bool json_out,
                       std::optional<int64_t> rollback_of = std::nullopt) {
    if (!yes && !confirm("Apply this plan?")) {
        fprintf(stderr, "cancelled: nothing was changed\n");
        return 1;
    }
    ExecuteOptions options;
    options.cancel = &g_interrupted;
    if (!json_out)
        options.on_output = [](std::string_view line) {
            printf("  | %.*s\n", static_cast<int>(line.size()), line.data());
        };
    ExecuteResult r = execute_plan(plan, options);
    History history(llm::cortex_home());
    HistoryEntry entry;
    entry.command = command;
    entry.plan = plan;
    entry.before = r.before;
    entry.after = r.after;
    entry.exit_status = r.exit_status;
    entry.log_tail = r.log_tail;
    const int64_t id = history.record(entry);
    if (rollback_of && r.exit_status == 0) history.mark_rolled_back(*rollback_of, id);
    if (json_out) {
        printf("%s\n", json({{"plan", plan.to_json()},
                             {"executed", true},
                             {"exit_status", r.exit_status},
                             {"history_id", id},
                             {"message", r.message},
                             {"log_tail", r.log_tail}})
                           .dump()
                           .c_str());
    } else if (r.exit_status == 0) {
        printf("\nDone. Recorded as history entry %lld; undo it with: cortex rollback %lld\n",
               static_cast<long long>(id), static_cast<long long>(id));
    } else {
        fprintf(stderr,
                "error: apt failed (exit status %d)%s\nhint: recorded as history entry %lld; `cortex history show "
                "%lld` has apt's output\n",
                r.exit_status, r.message.empty() ? "" : (": " + r.message).c_str(), static_cast<long long>(id),
                static_cast<long long>(id));
    }
    return r.exit_status == 0 ? 0 : (r.cancelled ? 130 : 1);
}

const char * plan_title(Operation op) {
    switch (op) {
        case Operation::kInstall:
            return "Install";
        case Operation::kRemove:
            return "Remove";
        case Operation::kUpgrade:
            return "Upgrade";
    }
    return "Install";
}

void print_plan(const Plan & plan, const char * title) {
    printf("%s: %s\n", title, plan.request.c_str());
    printf("  Chosen by %s (%s, confidence %s): %s\n\n", plan.chosen_by.c_str(), plan.method.c_str(),
           plan.confidence_label(), plan.reason.c_str());
    printf("%s", plan.to_text().c_str());
}

// "No confident match": what was looked at, so that the user can name the package.
int print_no_confident_match(const Plan & plan, bool json_out) {
    if (json_out) {
        printf("%s\n",
               json({{"plan", plan.to_json()}, {"executed", false}, {"no_confident_match", true}}).dump().c_str());
        return 1;
    }
    fprintf(stderr, "No confident match for '%s': %s.\n", plan.request.c_str(), plan.reason.c_str());
    if (!plan.candidates.empty()) {
        fprintf(stderr, "The closest packages:\n");
        for (size_t i = 0; i < plan.candidates.size() && i < 3; ++i) {
            fprintf(stderr, "  %-28s %s\n", plan.candidates[i].name.c_str(), plan.candidates[i].summary.c_str());
        }
    }
    fprintf(stderr, "hint: name the package (cortex %s %s), or describe it in other words\n",
            operation_name(plan.operation), plan.candidates.empty() ? "<package>" : plan.candidates[0].name.c_str());
    return 1;
}

// A model's spinner on a terminal: what is happening and for how long, on stderr, erased when
// the answer comes. Nothing when stderr is no terminal.
class Spinner {
  public:
    explicit Spinner(std::string what) : what_(std::move(what)) {
        if (!isatty(STDERR_FILENO)) return;
        thread_ = std::thread([this] {
            static const char * frames[] = {"|", "/", "-", "\\"};
            const auto start = std::chrono::steady_clock::now();
            std::unique_lock<std::mutex> lock(mutex_);
            for (int i = 0; !done_; ++i) {
                const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                fprintf(stderr, "\r%s %s (%.1f s)", frames[i % 4], what_.c_str(), s);
                fflush(stderr);
                wake_.wait_for(lock, std::chrono::milliseconds(100));
            }
            fprintf(stderr, "\r\033[K");
            fflush(stderr);
        });
    }
    ~Spinner() {
        if (!thread_.joinable()) return;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            done_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }

  private:
    std::string what_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool done_ = false;
};

// The provider with a spinner while it works.
class SpinningProvider : public Provider {
  public:
    explicit SpinningProvider(std::unique_ptr<Provider> inner) : inner_(std::move(inner)) {}
    ProviderReply chat(const ProviderRequest & request) override {
        Spinner spinner("planning with the model");
        return inner_->chat(request);
    }
    std::string name() const override { return inner_->name(); }

  private:
    std::unique_ptr<Provider> inner_;
};

int run_plan_command(Operation op, const std::vector<std::string> & words, bool execute, bool yes,
                     const CommonOptions & common) {
    const Settings settings = common.settings();
    std::unique_ptr<PackageIndex> index = PackageIndex::open();
    if (index->rebuilt() && !common.json) {
        fprintf(stderr, "indexed %zu packages from apt's lists in %.1f s\n", index->size(), index->build_ms() / 1000);
    }
    std::string no_model_note;
    std::unique_ptr<Provider> provider = planning_provider(settings, common.no_model, no_model_note);
    if (provider && !common.json) provider = std::make_unique<SpinningProvider>(std::move(provider));
    PlannerOptions options;
    options.provider = provider.get();
    options.no_model_reason = no_model_note;
    options.cancel = &g_interrupted;
    options.simulate = !common.choose_only;
    if (common.choose_only && execute) {
        throw Error(ErrorCode::kInvalidArgument, "--choose-only skips apt's simulation, so nothing can be executed",
                    "drop --choose-only to plan and run");
    }
    Planner planner(*index, options);
    const std::string request = join_words(words);
    Plan plan = planner.plan(op, request);
    if (plan.no_confident_match) return print_no_confident_match(plan, common.json);
    if (execute && !plan.empty()) {
        if (plan.confidence < kExecuteConfidence) {
            // A guess is shown, never run: the user names the package to run it.
            if (!common.json) print_plan(plan, plan_title(op));
            std::string named;
            for (const std::string & p : plan.packages) named += " " + p;
            throw Error(ErrorCode::kInvalidArgument,
                        std::string("refused to execute: this plan was guessed (") + plan.method + ", confidence " +
                            plan.confidence_label() + "), not asked for by name",
                        "check the plan, then run it by name: cortex " + std::string(operation_name(op)) + named +
                            " --execute");
        }
        if (!common.json) print_plan(plan, plan_title(op));
        return execute_and_record(plan, std::string(operation_name(op)) + (request.empty() ? "" : " " + request), yes,
                                  common.json);
    }
    if (common.json) {
        printf("%s\n", json({{"plan", plan.to_json()}, {"executed", false}}).dump().c_str());
        return 0;
    }
    print_plan(plan, plan_title(op));
    if (plan.empty()) {
        printf("\nNothing to do.\n");
    } else if (!execute) {
        printf("\nThis was a dry run (apt's simulation): nothing was changed. Apply it with --execute.\n");
    }
    return 0;
}

int run_ask(const std::string & question, int max_tokens, const CommonOptions & common) {
    if (max_tokens <= 0)
        throw Error(ErrorCode::kInvalidArgument, "--max-tokens must be positive", "e.g. --max-tokens 256");
    const Settings settings = common.settings();
    std::string why;
    if (!provider_available(settings, &why)) {
        throw Error(ErrorCode::kNotFound, "no language model is available to answer", why);
    }
    std::unique_ptr<Provider> provider = open_provider(settings);
    // The packages the question mentions, so that the model knows what is installed already.
    std::vector<std::string> relevant;
    try {
        std::unique_ptr<PackageIndex> index = PackageIndex::open();
        for (const SearchHit & h : index->search(join_words(normalise_request(question)), 5))
            relevant.push_back(h.package.name);
    } catch (const Error &) {
        // Without apt's lists the answer loses this detail only.
    }
    const std::string system = describe_system_for_prompt(relevant);
    llm::TokenCallback on_token;
    if (!common.json) {
        on_token = [](std::string_view piece) {
            fwrite(piece.data(), 1, piece.size(), stdout);
            fflush(stdout);
            return true;
        };
    }
    ProviderReply reply = ask(*provider, question, system, on_token, &g_interrupted, max_tokens);
    if (common.json) {
        printf("%s\n", json({{"answer", reply.content},
                             {"model", reply.model},
                             {"route", reply.route},
                             {"completion_tokens", reply.result.completion_tokens},
                             {"tokens_per_second", reply.result.tokens_per_second}})
                           .dump()
                           .c_str());
    } else {
        printf("\n");
    }
    return 0;
}

json history_entry_json(const HistoryEntry & e, bool full) {
    auto states = [](const std::vector<InstalledPackage> & v) {
        json a = json::array();
        for (const InstalledPackage & p : v)
            a.push_back({{"package", p.name}, {"architecture", p.architecture}, {"version", p.version}});
        return a;
    };
    json j = {{"id", e.id},
              {"time", e.time},
              {"command", e.command},
              {"exit_status", e.exit_status},
              {"packages", e.plan.packages},
              {"rolled_back_by", e.rolled_back_by ? json(*e.rolled_back_by) : json(nullptr)}};
    if (full) {
        j["plan"] = e.plan.to_json();
        j["before"] = states(e.before);
        j["after"] = states(e.after);
        j["log_tail"] = e.log_tail;
    }
    return j;
}

int run_history(int limit, int64_t show_id, const CommonOptions & common) {
    if (limit <= 0) throw Error(ErrorCode::kInvalidArgument, "--limit must be positive", "e.g. --limit 20");
    History history(llm::cortex_home());
    if (show_id > 0) {
        std::optional<HistoryEntry> e = history.get(show_id);
        if (!e) {
            throw Error(ErrorCode::kNotFound, "no history entry " + std::to_string(show_id),
                        "`cortex history` lists the entries");
        }
        if (common.json) {
            printf("%s\n", history_entry_json(*e, true).dump().c_str());
            return 0;
        }
        printf("Entry %lld, %s: cortex %s (apt exit status %d)%s\n\n", static_cast<long long>(e->id), e->time.c_str(),
               e->command.c_str(), e->exit_status,
               e->rolled_back_by ? (", rolled back by entry " + std::to_string(*e->rolled_back_by)).c_str() : "");
        printf("%s", e->plan.to_text().c_str());
        printf("\nPackage states (before -> after):\n");
        for (size_t i = 0; i < e->before.size(); ++i) {
            const std::string after = i < e->after.size() ? e->after[i].version : "";
            printf("  %-30s %s -> %s\n", e->before[i].name.c_str(),
                   e->before[i].version.empty() ? "(none)" : e->before[i].version.c_str(),
                   after.empty() ? "(none)" : after.c_str());
        }
        if (!e->log_tail.empty()) printf("\napt's output (end):\n%s\n", e->log_tail.c_str());
        return 0;
    }
    std::vector<HistoryEntry> entries = history.list(limit);
    if (common.json) {
        json a = json::array();
        for (const HistoryEntry & e : entries) a.push_back(history_entry_json(e, false));
        printf("%s\n", a.dump().c_str());
        return 0;
    }
    if (entries.empty()) {
        printf("No executed plans yet (dry runs are not recorded).\n");
        return 0;
    }
    printf("%-5s %-20s %-6s %s\n", "ID", "Time", "Status", "Command");
    for (const HistoryEntry & e : entries) {
        std::string status = e.exit_status == 0 ? "ok" : "failed";
        if (e.rolled_back_by) status = "undone";
        printf("%-5lld %-20s %-6s cortex %s\n", static_cast<long long>(e.id), e.time.c_str(), status.c_str(),
               e.command.c_str());
    }
    return 0;
}

int run_rollback(int64_t id, bool dry_run, bool yes, const CommonOptions & common) {
    History history(llm::cortex_home());
    std::optional<HistoryEntry> entry = history.get(id);
    if (!entry)
        throw Error(ErrorCode::kNotFound, "no history entry " + std::to_string(id),
                    "`cortex history` lists the entries");
    Plan plan = rollback_plan(*entry);
    // apt checks that the old state can be reached (old versions still in the lists) and the
    // planner's refusals apply as for any removal.
    std::unique_ptr<PackageIndex> index = PackageIndex::open();
    PlannerOptions options;
    options.cancel = &g_interrupted;
    Planner planner(*index, options);
    planner.simulate_plan(plan);
    if (dry_run) {
        if (common.json) {
            printf("%s\n", json({{"plan", plan.to_json()}, {"executed", false}}).dump().c_str());
        } else {
            print_plan(plan, "Rollback");
            printf("\nThis was a dry run (apt's simulation): nothing was changed.\n");
        }
        return 0;
    }
    if (!common.json) print_plan(plan, "Rollback");
    return execute_and_record(plan, "rollback " + std::to_string(id), yes, common.json, id);
}

}  // namespace

int main(int argc, char ** argv) {
    CLI::App app{"Cortex: plain requests to safe package actions, with a local language model"};
    app.set_version_flag("--version", std::string("cortex 0.1.0"));
    app.require_subcommand(1);
    CommonOptions common;
    auto add_common = [&](CLI::App * cmd, bool model_flags) {
        cmd->add_flag("--json", common.json, "print JSON");
        if (model_flags) {
            cmd->add_option("--model", common.model, "model name or GGUF path (overrides LLAMACPP_MODEL)");
            cmd->add_option("--provider", common.provider, "llamacpp or ollama (overrides CORTEX_PROVIDER)");
        }
    };

    std::vector<std::string> words;
    bool dry_run = false, execute = false, yes = false;
    CLI::App * install =
        app.add_subcommand("install", "plan (and with --execute, run) the installation of what you ask for");
    CLI::App * remove = app.add_subcommand("remove", "plan (and with --execute, run) the removal of what you ask for");
    CLI::App * upgrade = app.add_subcommand(
        "upgrade", "plan (and with --execute, run) upgrades: of the named packages, or of everything upgradable");
    for (CLI::App * cmd : {install, remove, upgrade}) {
        auto * request_option =
            cmd->add_option("request", words, "package names or plain words, e.g. nginx or \"a pdf viewer\"");
        if (cmd != upgrade) request_option->required();
        auto * d = cmd->add_flag("--dry-run", dry_run, "show apt's simulated plan only (the default)");
        auto * x = cmd->add_flag("--execute", execute, "run the plan with apt after a confirmation");
        d->excludes(x);
        cmd->add_flag("-y,--yes", yes, "do not ask for confirmation");
        cmd->add_flag("--no-model", common.no_model, "choose packages from the index alone");
        cmd->add_flag("--choose-only", common.choose_only,
                      "show which packages would be chosen, without apt's simulation (fast)");
        add_common(cmd, true);
    }

    std::string question;
    CLI::App * ask_cmd = app.add_subcommand("ask", "answer a question about this system with the model");
    int max_tokens = 512;
    ask_cmd->add_option("question", question, "the question")->required();
    ask_cmd->add_option("--max-tokens", max_tokens, "longest answer in tokens");
    add_common(ask_cmd, true);

    int limit = 20;
    int64_t show_id = 0;
    CLI::App * history_cmd = app.add_subcommand("history", "list executed plans");
    history_cmd->add_option("--limit", limit, "entries to show (newest first)");
    add_common(history_cmd, false);
    CLI::App * history_show = history_cmd->add_subcommand("show", "one entry in full");
    history_show->add_option("ID", show_id, "entry id")->required();
    history_show->add_flag("--json", common.json, "print JSON");

    int64_t rollback_id = 0;
    bool rollback_dry_run = false;
    CLI::App * rollback = app.add_subcommand("rollback", "undo an executed plan");
    rollback->add_option("ID", rollback_id, "history entry id")->required();
    rollback->add_flag("--dry-run", rollback_dry_run, "show apt's simulated plan only");
    rollback->add_flag("-y,--yes", yes, "do not ask for confirmation");
    add_common(rollback, false);

    CLI::App * doctor = app.add_subcommand("doctor", "check the whole set-up and say how to fix each problem");
    add_common(doctor, true);

    CLI::App * config = app.add_subcommand("config", "show or change settings")->require_subcommand(1);
    CLI::App * show = config->add_subcommand("show", "every effective setting and where it came from");
    show->add_flag("--json", common.json, "print JSON");
    std::string key, value;
    CLI::App * set = config->add_subcommand("set", "write a setting into $CORTEX_HOME/config.json");
    set->add_option("KEY", key, "setting name, e.g. n_ctx or llamacpp_n_ctx")->required();
    set->add_option("VALUE", value, "new value")->required();

    CLI11_PARSE(app, argc, argv);
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    return cli::run_guarded(common.json, [&] {
        if (install->parsed()) return run_plan_command(Operation::kInstall, words, execute, yes, common);
        if (remove->parsed()) return run_plan_command(Operation::kRemove, words, execute, yes, common);
        if (upgrade->parsed()) return run_plan_command(Operation::kUpgrade, words, execute, yes, common);
        if (ask_cmd->parsed()) return run_ask(question, max_tokens, common);
        if (history_cmd->parsed()) return run_history(limit, history_show->parsed() ? show_id : 0, common);
        if (rollback->parsed()) return run_rollback(rollback_id, rollback_dry_run, yes, common);
        if (doctor->parsed()) {
            std::vector<DoctorCheck> checks = run_doctor(common.settings());
            printf("%s", common.json ? (doctor_to_json(checks).dump() + "\n").c_str() : doctor_to_text(checks).c_str());
            return doctor_passed(checks) ? 0 : 1;
        }
        if (show->parsed()) {
            Settings s = Settings::load();
            printf("%s", common.json ? (s.to_json() + "\n").c_str() : s.to_text().c_str());
            return 0;
        }
        const std::string home = llm::cortex_home();
        set_config_value(home, key, value);
        // Read back, so that a value overridden by .env or the environment is pointed out.
        Settings s = Settings::load();
        const Setting & now = s.get(key);
        printf("set %s = %s in %s/config.json\n", key.c_str(), value.c_str(), home.c_str());
        if (now.source != SettingSource::kConfigFile) {
            printf("note: the effective value is still '%s', from %s (%s), which takes precedence\n", now.value.c_str(),
                   setting_source_name(now.source), now.origin.c_str());
        }
        return 0;
    });
}
