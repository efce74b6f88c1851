// ask(): one question, one streamed answer; the prompt is fixed so that answers stay short and
// practical for this distribution.
#include "interpreter/ask.h"

#include "core/string_util.h"

namespace cortex::interpreter {

std::string ask_system_prompt(const std::string & system_description) {
    return "You are Cortex, the assistant of a Linux system: " + system_description +
           "\nAnswer the user's question concisely and accurately for this system. Where packages or "
           "commands help, give the exact apt (or systemctl) commands, one per line. Say so when you are "
           "not sure; never invent package names.";
}

ProviderReply ask(Provider & provider, const std::string & question, const std::string & system_description,
                  llm::TokenCallback on_token, const std::atomic<bool> * cancel, int max_tokens) {
    if (trim(question).empty())
        throw Error(ErrorCode::kInvalidArgument, "the question is empty",
                    "ask something, e.g. cortex ask \"how do I free disk space?\"");
    if (question.size() > kMaxQuestionBytes) {
        throw Error(ErrorCode::kInvalidArgument,
                    "the question is " + std::to_string(question.size()) + " bytes; at most " +
                        std::to_string(kMaxQuestionBytes) + " are taken",
                    "shorten it to the part that matters");
    }
    ProviderRequest request;
    request.messages = {{"system", ask_system_prompt(system_description)}, {"user", question}};
    request.max_tokens = max_tokens;
    request.temperature = 0;
    request.on_token = std::move(on_token);
    request.cancel = cancel;
    return provider.chat(request);
}

}  // namespace cortex::interpreter
