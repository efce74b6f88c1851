// Stop-string matching and UTF-8-safe streaming of generated text.
#include "text_stream.h"

#include <algorithm>

namespace cortex::llm {

TextStream::TextStream(const std::vector<std::string> & stops, const TokenCallback & on_text)
    : stops_(stops), on_text_(on_text) {}

size_t TextStream::incomplete_utf8_tail(std::string_view text) {
    const size_t n = text.size();
    for (size_t back = 1; back <= 4 && back <= n; ++back) {
        unsigned char c = static_cast<unsigned char>(text[n - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
        size_t need = 1;
        if ((c & 0xE0) == 0xC0) need = 2;
        else if ((c & 0xF0) == 0xE0) need = 3;
        else if ((c & 0xF8) == 0xF0) need = 4;
        return need > back ? back : 0;
    }
    return 0;  // stray continuation bytes: nothing will complete them, hand them out
}

void TextStream::append_valid_utf8(std::string_view in, std::string & out) {
    static const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
    size_t i = 0;
    while (i < in.size()) {
        const unsigned char c = static_cast<unsigned char>(in[i]);
        size_t len = 0;
        unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c < 0x80) len = 1;
        else if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c == 0xE0) len = 3, lo = 0xA0;
        else if (c >= 0xE1 && c <= 0xEC) len = 3;
        else if (c == 0xED) len = 3, hi = 0x9F;  // no UTF-16 surrogates
        else if (c >= 0xEE && c <= 0xEF) len = 3;
        else if (c == 0xF0) len = 4, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) len = 4;
        else if (c == 0xF4) len = 4, hi = 0x8F;
        size_t ok = len == 0 ? 0 : 1;
        while (ok > 0 && ok < len && i + ok < in.size()) {
            const unsigned char b = static_cast<unsigned char>(in[i + ok]);
            if (ok == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) break;
            ++ok;
        }
        if (len > 0 && ok == len) {
            out.append(in.data() + i, len);
            i += len;
        } else {
            // An invalid or cut-off sequence: one replacement character for the bytes read.
            out.append(kReplacement, 3);
            i += ok > 0 ? ok : 1;
        }
    }
}

void TextStream::emit(size_t n) {
    if (n == 0) return;
    // The model can produce any byte sequence (byte-level BPE); callers get valid UTF-8.
    scratch_.clear();
    append_valid_utf8(std::string_view(pending_.data(), n), scratch_);
    content_.append(scratch_);
    if (on_text_ && !cancelled_ && !on_text_(scratch_)) cancelled_ = true;
    pending_.erase(0, n);
}

bool TextStream::push(std::string_view piece) {
    pending_.append(piece);
    if (stops_.empty()) {
        emit(pending_.size() - incomplete_utf8_tail(pending_));
        return false;
    }

    size_t first_stop = std::string::npos;
    for (const std::string & stop : stops_) {
        if (stop.empty()) continue;
        size_t pos = pending_.find(stop);
        if (pos < first_stop) first_stop = pos;
    }
    if (first_stop != std::string::npos) {
        emit(first_stop);
        pending_.clear();
        return true;
    }

    // Hold back the longest tail that could still grow into a stop string.
    size_t hold = 0;
    for (const std::string & stop : stops_) {
        size_t max_len = std::min(stop.size() - (stop.empty() ? 0 : 1), pending_.size());
        for (size_t len = max_len; len > hold; --len) {
            if (pending_.compare(pending_.size() - len, len, stop, 0, len) == 0) {
                hold = len;
                break;
            }
        }
    }
    size_t keep = std::max(hold, incomplete_utf8_tail(pending_));
    emit(pending_.size() - keep);
    return false;
}

void TextStream::finish() {
    emit(pending_.size() - incomplete_utf8_tail(pending_));
    pending_.clear();
}

}  // namespace cortex::llm
