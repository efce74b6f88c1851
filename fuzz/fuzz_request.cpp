// The interpreter's reading of a request in plain words (`cortex install "a web server"`):
// normalise_request(), then the apt command built when those words are package names.
#include <cctype>

#include "fuzz_common.h"
#include "interpreter/apt_simulation.h"
#include "interpreter/planner.h"

using namespace cortex;
using namespace cortex::interpreter;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::string request = fuzz::as_string(data, size);
    std::vector<std::string> words;
    fuzz::require(fuzz::accepts([&] { words = normalise_request(request); }), "normalise_request() threw");
    std::string joined;
    for (const std::string & w : words) {
        fuzz::require(!w.empty() && w.back() != '.' && w.back() != '-', "a word with its sentence's end");
        for (char c : w)
            fuzz::require(!std::isupper(static_cast<unsigned char>(c)) && c != ' ', "a word not normalised");
        joined += (joined.empty() ? "" : " ") + w;
    }
    fuzz::require(normalise_request(joined) == words, "normalising twice changes the words");

    // Words taken as package names: apt gets only valid names, never an option.
    std::vector<std::string> argv;
    if (fuzz::accepts([&] { argv = apt_command(Operation::kInstall, words); })) {
        fuzz::require(command_packages(argv) == words, "the apt command names other packages");
        for (const std::string & w : words) fuzz::require(w[0] != '-', "a package name apt would read as an option");
    }
    return 0;
}
