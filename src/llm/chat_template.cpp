// Chat template rendering through libllama-common (common/chat.h).
#include "chat_template.h"

#include "chat.h"
#include "cortex/error.h"
#include "llama.h"

namespace cortex::llm {

ChatTemplate::ChatTemplate(const llama_model * model) {
    from_model_ = llama_model_chat_template(model, nullptr) != nullptr;
    try {
        // An empty override takes the model's template, or ChatML when it has none.
        templates_ = common_chat_templates_init(model, "").release();
    } catch (const std::exception & e) {
        throw Error(ErrorCode::kTemplateFailed, std::string("the model's chat template does not parse: ") + e.what(),
                    "use complete() with your own prompt format, or a model with a working template");
    }
}

ChatTemplate::~ChatTemplate() { common_chat_templates_free(templates_); }

std::string ChatTemplate::apply(const std::vector<Message> & messages, bool add_generation_prompt) const {
    if (messages.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "chat() needs at least one message", "pass e.g. {{\"user\", \"hello\"}}");
    }
    common_chat_templates_inputs inputs;
    inputs.use_jinja = true;
    inputs.add_generation_prompt = add_generation_prompt;
    for (const Message & m : messages) {
        if (m.role != "system" && m.role != "user" && m.role != "assistant" && m.role != "tool") {
            throw Error(ErrorCode::kInvalidArgument, "unknown chat role '" + m.role + "'",
                        "use one of: system, user, assistant, tool");
        }
        common_chat_msg msg;
        msg.role = m.role;
        msg.content = m.content;
        inputs.messages.push_back(std::move(msg));
    }
    try {
        return common_chat_templates_apply(templates_, inputs).prompt;
    } catch (const std::exception & e) {
        throw Error(ErrorCode::kTemplateFailed, std::string("the chat template failed on these messages: ") + e.what(),
                    "check the message roles and order (many templates need user/assistant turns to alternate)");
    }
}

}  // namespace cortex::llm
