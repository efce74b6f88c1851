// Chat templates: the model's own Jinja template from its GGUF metadata, rendered by
// libllama-common's Jinja engine; ChatML when the model has none.
#pragma once

#include <string>
#include <vector>

#include "cortex/llm.h"

struct llama_model;
struct common_chat_templates;

namespace cortex::llm {

class ChatTemplate {
  public:
    explicit ChatTemplate(const llama_model * model);
    ~ChatTemplate();
    ChatTemplate(const ChatTemplate &) = delete;
    ChatTemplate & operator=(const ChatTemplate &) = delete;

    // Throws Error(kTemplateFailed) or Error(kInvalidArgument) for an unknown role.
    std::string apply(const std::vector<Message> & messages, bool add_generation_prompt) const;
    bool from_model() const { return from_model_; }

  private:
    common_chat_templates * templates_ = nullptr;
    bool from_model_ = false;
};

}  // namespace cortex::llm
