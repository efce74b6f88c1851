// The cases of cortex-load-test and their in-process answers.
#include "load_cases.h"

#include <algorithm>
#include <memory>

namespace cortex::load {
namespace {

// A long, varied text (numbered sentences, so that no two stretches tokenize alike).
std::string long_text(int sentences) {
    static const char * parts[] = {
        "installs the web server and opens port 80",  "checks the free disk space first",
        "keeps the configuration of the old release", "restarts the service after the upgrade",
        "writes a log line for each package",         "asks before removing anything"};
    std::string s;
    for (int i = 0; i < sentences; ++i) {
        s += "Step " + std::to_string(i + 1) + ": Cortex " + parts[i % 6] + ". ";
    }
    return s;
}

// The in-process answer to `c`.
llm::Result answer(llm::Model & model, const Case & c) {
    return c.chat ? model.chat(c.messages, greedy(c)) : model.complete(c.prompt, greedy(c));
}

bool same_answer(const llm::Result & a, const llm::Result & b) {
    return a.content == b.content && a.completion_tokens == b.completion_tokens && a.finish_reason == b.finish_reason;
}

}  // namespace

std::vector<Case> make_cases(int max_tokens) {
    struct Prompt {
        std::string name;
        bool chat;
        std::string prompt;
        std::vector<llm::Message> messages;
    };
    const std::string system = "You are Cortex, a careful Debian administrator. " + long_text(24);
    const std::vector<Prompt> prompts = {
        {"complete-hi", false, "Hi", {}},
        {"complete-apt", false, "apt install", {}},
        {"complete-sentence", false, "The quick brown fox jumps over the lazy dog because", {}},
        {"complete-unicode", false, "Ünïcödé — 日本語のテキスト, emoji 🚀 and math ∑ x² ≤ ∞:", {}},
        {"complete-medium", false, long_text(8), {}},
        {"complete-long", false, long_text(40), {}},
        {"chat-short", true, "", {{"user", "Install nginx"}}},
        {"chat-system-docker", true, "", {{"system", system}, {"user", "install docker"}}},
        {"chat-system-apache", true, "", {{"system", system}, {"user", "remove apache2 but keep its config"}}},
        {"chat-multi-turn",
         true,
         "",
         {{"user", "hi"}, {"assistant", "Hello! How can I help?"}, {"user", "list the files in /etc/apt"}}},
        {"chat-long-user", true, "", {{"user", long_text(30) + " Which step comes last?"}}},
    };
    std::vector<int> lengths;
    for (int n : {1, 2, 5, 12, max_tokens}) {
        if (n <= max_tokens && std::find(lengths.begin(), lengths.end(), n) == lengths.end()) lengths.push_back(n);
    }
    std::vector<Case> cases;
    for (const Prompt & p : prompts) {
        for (int n : lengths) {
            for (float penalty : {1.0f, 1.5f}) {
                // With random weights a greedy answer tends to repeat one token; a repeat
                // penalty makes each token depend on the ones before it, so the longer answers
                // also come with one.
                if (penalty != 1.0f && n < 12) continue;
                Case c;
                c.name = p.name + "/" + std::to_string(n) + (penalty != 1.0f ? "/penalty" : "");
                c.chat = p.chat;
                c.prompt = p.prompt;
                c.messages = p.messages;
                c.max_tokens = n;
                c.repeat_penalty = penalty;
                cases.push_back(std::move(c));
            }
        }
    }
    return cases;
}

llm::GenerationConfig greedy(const Case & c) {
    llm::GenerationConfig g;
    g.temperature = 0;
    g.max_tokens = c.max_tokens;
    g.repeat_penalty = c.repeat_penalty;
    return g;
}

nlohmann::json messages_json(const std::vector<llm::Message> & messages) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto & m : messages) a.push_back({{"role", m.role}, {"content", m.content}});
    return a;
}

// Sets every case's expected answer: greedy, in-process, the prompt read from an empty cache in
// one batch. libllama's CPU kernels do not give bit-identical logits for every batch shape (a
// 348-token prompt read whole and in batches of 5 differs by up to 0.05 in a logit; llama.cpp
// PR 6950), and the daemon reads a prompt in whatever batch the other requests leave room for,
// after whatever prefix its slot holds. An answer whose two best tokens are that close comes
// out either way, in-process too. So the longest case of each prompt (and penalty) is also
// answered in batches of 16 and of 97, and after each other prompt sharing a prefix with it
// (that part then read in another batch); where these answers differ, the prompt's cases are
// removed, as their outcome is the numerics' coin toss rather than the daemon's doing. (A
// shorter case's answer is the start of the longest one's: its tokens are the same.) Returns
// the names of the cases removed.
std::vector<std::string> compute_references(const std::string & model_path, int n_ctx, int n_threads,
                                            std::vector<Case> & cases) {
    llm::ModelConfig mc;
    mc.n_ctx = n_ctx;
    mc.n_threads = n_threads;
    std::shared_ptr<llm::Model> whole = llm::Model::load(model_path, mc);
    mc.n_batch = 16;
    std::shared_ptr<llm::Model> small = llm::Model::load(model_path, mc);
    mc.n_batch = 97;
    std::shared_ptr<llm::Model> odd = llm::Model::load(model_path, mc);

    std::vector<std::vector<llm::Token>> tokens;
    for (const Case & c : cases) {
        tokens.push_back(whole->tokenize(c.chat ? whole->apply_chat_template(c.messages) : c.prompt));
    }
    for (Case & c : cases) {
        whole->clear_cache();
        const llm::Result r = answer(*whole, c);
        c.expected = r.content;
        c.expected_tokens = r.completion_tokens;
        c.expected_finish = llm::finish_reason_name(r.finish_reason);
    }
    std::vector<bool> fragile(cases.size(), false);
    for (size_t i = 0; i < cases.size(); ++i) {
        // The longest case of its prompt and penalty stands for them all.
        bool lead = true;
        for (size_t j = 0; j < cases.size(); ++j) {
            if (tokens[j] == tokens[i] && cases[j].repeat_penalty == cases[i].repeat_penalty &&
                cases[j].max_tokens > cases[i].max_tokens) {
                lead = false;
            }
        }
        if (!lead) continue;
        const Case & c = cases[i];
        llm::Result ref;
        ref.content = c.expected;
        ref.completion_tokens = c.expected_tokens;
        ref.finish_reason = c.expected_finish == "length" ? llm::FinishReason::kLength : llm::FinishReason::kStop;
        small->clear_cache();
        odd->clear_cache();
        bool robust = same_answer(ref, answer(*small, c)) && same_answer(ref, answer(*odd, c));
        std::vector<std::vector<llm::Token>> done;
        for (size_t j = 0; j < cases.size() && robust; ++j) {
            size_t n = 0;
            while (n < tokens[i].size() && n < tokens[j].size() && tokens[i][n] == tokens[j][n]) ++n;
            if (n < 2 || tokens[j] == tokens[i] || std::find(done.begin(), done.end(), tokens[j]) != done.end()) {
                continue;
            }
            done.push_back(tokens[j]);
            Case first = cases[j];
            first.max_tokens = 1;  // only its prompt matters
            whole->clear_cache();
            answer(*whole, first);
            robust = same_answer(ref, answer(*whole, c));
        }
        if (robust) continue;
        for (size_t j = 0; j < cases.size(); ++j) {
            if (tokens[j] == tokens[i] && cases[j].repeat_penalty == c.repeat_penalty) fragile[j] = true;
        }
    }
    std::vector<std::string> removed;
    std::vector<Case> kept;
    for (size_t i = 0; i < cases.size(); ++i) {
        if (fragile[i])
            removed.push_back(cases[i].name);
        else
            kept.push_back(cases[i]);
    }
    cases.swap(kept);
    return removed;
}

}  // namespace cortex::load
