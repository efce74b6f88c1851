// The C++ program of issue #3, the Python example of the guide in C++: it must compile and
// run unchanged against the installed headers and library (tests/test_install.sh does so).
#include <cortex/llm.h>
#include <cstdio>
#include <iostream>
int main() {
    using namespace cortex::llm;
    auto quick = quick_complete("Explain how to install nginx");
    ModelManager manager;
    auto model = manager.load_model("qwen2.5-7b");
    GenerationConfig config;
    config.max_tokens = 512;
    config.temperature = 0.7f;
    auto result = model->chat({{"user", "Install docker"}}, config);
    std::cout << quick.content << "\n" << result.content << "\n";
    std::printf("Tokens/sec: %.1f\n", result.tokens_per_second);
}
