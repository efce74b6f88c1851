// Turns generated token pieces into the text a caller sees: stop strings are cut out even when
// they span tokens, a UTF-8 character is never handed out in halves, and invalid byte sequences
// (which a byte-level tokenizer can produce) become U+FFFD.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cortex/llm.h"

namespace cortex::llm {

class TextStream {
  public:
    // `on_text` may be empty; it must outlive the stream.
    TextStream(const std::vector<std::string> & stops, const TokenCallback & on_text);

    // Adds the text of one token. Returns true when a stop string is complete: the content ends
    // before it and generation must end.
    bool push(std::string_view piece);

    // Hands out the text held back for a possible stop string; an incomplete UTF-8 character at
    // the very end is dropped.
    void finish();

    const std::string & content() const { return content_; }
    // True once the callback returned false.
    bool cancelled() const { return cancelled_; }

    // Bytes at the end of `text` that start a UTF-8 character not yet complete (0 to 3).
    static size_t incomplete_utf8_tail(std::string_view text);
    // Appends `in` to `out` with each invalid UTF-8 sequence replaced by U+FFFD.
    static void append_valid_utf8(std::string_view in, std::string & out);

  private:
    void emit(size_t n);

    const std::vector<std::string> & stops_;
    const TokenCallback & on_text_;
    std::string pending_;
    std::string content_;
    std::string scratch_;
    bool cancelled_ = false;
};

}  // namespace cortex::llm
