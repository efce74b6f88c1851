// One deliberate bug per argument, for tests/test_sanitizers.sh to check that a report from an
// instrumented process reaches its report folder before it trusts an empty folder.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace {

int shared_counter = 0;  // written by two threads without a lock: the race for TSan

int heap_overflow(int argc) {
    int * p = static_cast<int *>(std::malloc(4 * sizeof(int)));
    p[argc + 3] = 1;  // one past the end
    const int v = p[0];
    std::free(p);
    return v;
}

int signed_overflow(int argc) {
    int x = INT_MAX;
    x += argc;  // INT_MAX + 1
    return x;
}

int data_race() {
    std::thread t([] { ++shared_counter; });
    ++shared_counter;
    t.join();
    return shared_counter;
}

}  // namespace

int main(int argc, char ** argv) {
    const char * what = argc > 1 ? argv[1] : "";
    int r = 0;
    if (std::strcmp(what, "heap") == 0) {
        r = heap_overflow(argc - 1);
    } else if (std::strcmp(what, "ub") == 0) {
        r = signed_overflow(argc - 1);
    } else if (std::strcmp(what, "race") == 0) {
        r = data_race();
    } else {
        std::fprintf(stderr, "usage: %s heap|ub|race\n", argv[0]);
        return 2;
    }
    std::printf("%d\n", r);
    return 0;
}
