// ThreadTeam (src/core/thread_team.h): the caller and its helpers split a short loop, each item
// exactly once, round after round.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/thread_team.h"

using cortex::ThreadTeam;
using namespace std::chrono_literals;

namespace {

// Every index of every round runs once, whether the helpers were woken ahead or not.
void expect_each_item_once(int helpers) {
    ThreadTeam team(helpers, 2ms);
    std::vector<std::atomic<int>> runs(64);
    for (int round = 0; round < 2000; ++round) {
        const int n = 1 + round % 64;
        for (int i = 0; i < n; ++i) runs[i] = 0;
        if (round % 3 != 0) team.prepare();
        team.run(n, [&](int i) { runs[i].fetch_add(1); });
        for (int i = 0; i < n; ++i) ASSERT_EQ(runs[i].load(), 1) << "round " << round << ", item " << i << " of " << n;
    }
}

}  // namespace

TEST(ThreadTeam, EachItemRunsOnceWithoutHelpers) {
    expect_each_item_once(0);
}
TEST(ThreadTeam, EachItemRunsOnceWithOneHelper) {
    expect_each_item_once(1);
}
TEST(ThreadTeam, EachItemRunsOnceWithThreeHelpers) {
    expect_each_item_once(3);
}

TEST(ThreadTeam, NothingToDoReturnsAtOnce) {
    ThreadTeam team(2, 1ms);
    bool ran = false;
    team.run(0, [&](int) { ran = true; });
    team.run(-1, [&](int) { ran = true; });
    EXPECT_FALSE(ran);
}

// Woken by prepare(), the helpers take items while the caller is busy with its own: four items
// that each wait for the other three finish only if four threads run them at once.
TEST(ThreadTeam, PreparedHelpersRunItemsAlongsideTheCaller) {
    ThreadTeam team(3, 5s);
    for (int round = 0; round < 20; ++round) {
        std::mutex m;
        std::condition_variable cv;
        int arrived = 0;
        std::atomic<int> met{0};
        std::set<std::thread::id> threads;
        team.prepare();
        team.run(4, [&](int) {
            std::unique_lock<std::mutex> lock(m);
            threads.insert(std::this_thread::get_id());
            ++arrived;
            cv.notify_all();
            if (cv.wait_for(lock, 10s, [&] { return arrived == 4; })) met.fetch_add(1);
        });
        ASSERT_EQ(met.load(), 4) << "round " << round;
        EXPECT_EQ(threads.size(), 4u);
    }
}

// A team torn down while its helpers spin (or sleep) stops at once, not after the spin.
TEST(ThreadTeam, DestroyedWhileHelpersSpinStopsPromptly) {
    const auto t0 = std::chrono::steady_clock::now();
    {
        ThreadTeam team(3, 60s);
        team.prepare();
        std::this_thread::sleep_for(10ms);
    }
    { ThreadTeam idle(3, 60s); }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
}

// Helpers told that work comes later sleep until shortly before then, and still join it.
TEST(ThreadTeam, HelpersJoinWorkAnnouncedForLater) {
    ThreadTeam team(3, 5s);
    std::mutex m;
    std::condition_variable cv;
    int arrived = 0;
    std::atomic<int> met{0};
    team.prepare(20ms);
    std::this_thread::sleep_for(25ms);
    team.run(4, [&](int) {
        std::unique_lock<std::mutex> lock(m);
        ++arrived;
        cv.notify_all();
        if (cv.wait_for(lock, 10s, [&] { return arrived == 4; })) met.fetch_add(1);
    });
    EXPECT_EQ(met.load(), 4);
}

// Work that comes long before the announced time is done by the caller alone, at once, and the
// sleeping helpers do not hold up the team's end.
TEST(ThreadTeam, WorkEarlierThanAnnouncedDoesNotWaitForTheHelpers) {
    const auto t0 = std::chrono::steady_clock::now();
    {
        ThreadTeam team(3, 60s);
        team.prepare(60s);
        std::atomic<int> runs{0};
        team.run(16, [&](int) { runs.fetch_add(1); });
        EXPECT_EQ(runs.load(), 16);
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
}
