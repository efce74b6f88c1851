// Stop strings and UTF-8-safe streaming, piece by piece, without a model.
#include <gtest/gtest.h>

#include "llm/text_stream.h"

using cortex::llm::TextStream;
using cortex::llm::TokenCallback;

namespace {

struct Collected {
    std::vector<std::string> pieces;
    TokenCallback callback() {
        return [this](std::string_view p) {
            pieces.emplace_back(p);
            return true;
        };
    }
    std::string joined() const {
        std::string s;
        for (auto & p : pieces) s += p;
        return s;
    }
};

}  // namespace

TEST(TextStream, PassesTextThroughWithoutStops) {
    std::vector<std::string> stops;
    Collected c;
    auto cb = c.callback();
    TextStream s(stops, cb);
    EXPECT_FALSE(s.push("Hello"));
    EXPECT_FALSE(s.push(", world"));
    s.finish();
    EXPECT_EQ(s.content(), "Hello, world");
    EXPECT_EQ(c.joined(), "Hello, world");
}

TEST(TextStream, CutsStopStringSplitAcrossPieces) {
    std::vector<std::string> stops = {"</end>"};
    Collected c;
    auto cb = c.callback();
    TextStream s(stops, cb);
    EXPECT_FALSE(s.push("apt install ngi"));
    EXPECT_FALSE(s.push("nx</"));
    EXPECT_FALSE(s.push("en"));
    EXPECT_TRUE(s.push("d> and more"));
    EXPECT_EQ(s.content(), "apt install nginx");
    EXPECT_EQ(c.joined(), "apt install nginx");
    for (auto & p : c.pieces) EXPECT_EQ(p.find('<'), std::string::npos) << "a piece held part of the stop string";
}

TEST(TextStream, ReleasesHeldTextThatDidNotBecomeAStop) {
    std::vector<std::string> stops = {"STOP"};
    Collected c;
    auto cb = c.callback();
    TextStream s(stops, cb);
    EXPECT_FALSE(s.push("ST"));
    EXPECT_EQ(c.joined(), "");
    EXPECT_FALSE(s.push("ART"));
    EXPECT_EQ(c.joined(), "START");
    EXPECT_FALSE(s.push("ST"));
    s.finish();  // a partial stop at the end is real text
    EXPECT_EQ(s.content(), "STARTST");
}

TEST(TextStream, EarliestOfSeveralStopsWins) {
    std::vector<std::string> stops = {"\n\n", "User:"};
    std::vector<std::string> none;
    TokenCallback no_cb;
    TextStream s(stops, no_cb);
    EXPECT_TRUE(s.push("answer User: x\n\n"));
    EXPECT_EQ(s.content(), "answer ");
}

TEST(TextStream, StopAtVeryStartGivesEmptyContent) {
    std::vector<std::string> stops = {"###"};
    TokenCallback no_cb;
    TextStream s(stops, no_cb);
    EXPECT_TRUE(s.push("###"));
    EXPECT_EQ(s.content(), "");
}

TEST(TextStream, NeverSplitsAMultibyteCharacter) {
    std::vector<std::string> stops;
    Collected c;
    auto cb = c.callback();
    TextStream s(stops, cb);
    const std::string text = "h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80!";  // hé € 😀!
    for (char ch : text) s.push(std::string(1, ch));
    s.finish();
    EXPECT_EQ(s.content(), text);
    for (auto & p : c.pieces) EXPECT_EQ(TextStream::incomplete_utf8_tail(p), 0u) << "split character in piece";
    EXPECT_EQ(c.joined(), text);
}

TEST(TextStream, DropsAnIncompleteCharacterAtTheEnd) {
    std::vector<std::string> stops;
    TokenCallback no_cb;
    TextStream s(stops, no_cb);
    s.push("ok \xE2\x82");
    s.finish();
    EXPECT_EQ(s.content(), "ok ");
}

TEST(TextStream, IncompleteTailDetection) {
    EXPECT_EQ(TextStream::incomplete_utf8_tail(""), 0u);
    EXPECT_EQ(TextStream::incomplete_utf8_tail("abc"), 0u);
    EXPECT_EQ(TextStream::incomplete_utf8_tail("\xC3"), 1u);
    EXPECT_EQ(TextStream::incomplete_utf8_tail("\xE2\x82"), 2u);
    EXPECT_EQ(TextStream::incomplete_utf8_tail("\xF0\x9F\x98"), 3u);
    EXPECT_EQ(TextStream::incomplete_utf8_tail("\xF0\x9F\x98\x80"), 0u);
    EXPECT_EQ(TextStream::incomplete_utf8_tail("\x80\x80"), 0u);  // stray continuation bytes
}

TEST(TextStream, CallbackCanCancel) {
    std::vector<std::string> stops;
    int calls = 0;
    TokenCallback cb = [&](std::string_view) { return ++calls < 2; };
    TextStream s(stops, cb);
    s.push("a");
    EXPECT_FALSE(s.cancelled());
    s.push("b");
    EXPECT_TRUE(s.cancelled());
    s.push("c");
    EXPECT_EQ(calls, 2) << "no callback after cancelling";
}

TEST(TextStream, StopStringWithMultibyteCharacters) {
    std::vector<std::string> stops = {"\xE2\x80\x94" "END"};  // —END
    Collected c;
    auto cb = c.callback();
    TextStream s(stops, cb);
    EXPECT_FALSE(s.push("x \xE2"));
    EXPECT_FALSE(s.push("\x80\x94"));
    EXPECT_FALSE(s.push("EN"));
    EXPECT_TRUE(s.push("D"));
    EXPECT_EQ(s.content(), "x ");
}

TEST(TextStream, InvalidBytesBecomeReplacementCharacters) {
    std::string out;
    TextStream::append_valid_utf8("a\x80" "b", out);
    EXPECT_EQ(out, "a\xEF\xBF\xBD" "b");
    out.clear();
    TextStream::append_valid_utf8("\xE4" "x", out);  // lead byte without its continuation
    EXPECT_EQ(out, "\xEF\xBF\xBD" "x");
    out.clear();
    TextStream::append_valid_utf8("\xC0\xAF", out);  // overlong '/'
    EXPECT_EQ(out, "\xEF\xBF\xBD\xEF\xBF\xBD");
    out.clear();
    TextStream::append_valid_utf8("\xED\xA0\x80", out);  // a UTF-16 surrogate
    EXPECT_EQ(out.substr(0, 3), "\xEF\xBF\xBD");
    out.clear();
    TextStream::append_valid_utf8("ok \xF0\x9F\x98\x80", out);
    EXPECT_EQ(out, "ok \xF0\x9F\x98\x80");
}

TEST(TextStream, HeldLeadByteThatNeverCompletesIsReplaced) {
    std::vector<std::string> stops;
    Collected c;
    auto cb = c.callback();
    TextStream s(stops, cb);
    s.push("x\xE4");
    EXPECT_EQ(c.joined(), "x");
    s.push("y");
    s.finish();
    EXPECT_EQ(s.content(), "x\xEF\xBF\xBDy");
}
