// cortex-chat-example: chats with a model, streaming the reply, then prints its speed.
//
//   cortex-chat-example MODEL [MESSAGE]
// MODEL is a name in $CORTEX_HOME/models or a .gguf path.
#include <cortex/llm.h>

#include <cstdio>

int main(int argc, char ** argv) {
    if (argc < 2 || std::string(argv[1]) == "--help") {
        fprintf(stderr, "usage: cortex-chat-example MODEL [MESSAGE]\n");
        return argc < 2 ? 2 : 0;
    }
    const std::string message = argc > 2 ? argv[2] : "How do I install nginx on Debian?";
    try {
        using namespace cortex::llm;
        ModelManager manager;
        auto model = manager.load_model(argv[1]);
        printf("model: %s (%s), loaded in %.0f ms\n> %s\n", model->path().c_str(), model->description().c_str(),
               model->load_ms(), message.c_str());
        GenerationConfig config;
        config.max_tokens = 64;
        config.temperature = 0.7f;
        config.seed = 42;
        Result r = model->chat({{"user", message}}, config, [](std::string_view piece) {
            fwrite(piece.data(), 1, piece.size(), stdout);
            fflush(stdout);
            return true;
        });
        printf("\n[%d prompt tokens, %d generated, finish: %s]\n", r.prompt_tokens, r.completion_tokens,
               finish_reason_name(r.finish_reason));
        printf("Tokens/sec: %.1f (prompt: %.1f tokens/sec, first token after %.1f ms)\n", r.tokens_per_second,
               r.prompt_tokens_per_second, r.time_to_first_token_ms);
        return 0;
    } catch (const cortex::Error & e) {
        fprintf(stderr, "error: %s\n", e.message().c_str());
        if (!e.hint().empty()) fprintf(stderr, "hint: %s\n", e.hint().c_str());
        return 1;
    }
}
