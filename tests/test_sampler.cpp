// The sampler's pieces that need no model (src/llm/sampler.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "llm/sampler.h"

// Greedy decoding's argmax (src/llm/sampler.cpp) against the plain definition: the first index of
// the largest value, NaN never winning, over vocabulary-sized and odd-sized arrays.
TEST(Argmax, FirstIndexOfTheLargestLikeThePlainLoop) {
    auto reference = [](const std::vector<float> & x) {
        int best = -1;
        for (int i = 0; i < static_cast<int>(x.size()); ++i) {
            if (std::isnan(x[i])) continue;
            if (best < 0 || x[i] > x[best]) best = i;
        }
        return best < 0 ? 0 : best;
    };
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    for (int n : {1, 3, 15, 16, 17, 2047, 2048, 2049, 4111, 151936}) {
        for (int round = 0; round < 20; ++round) {
            std::vector<float> x(n);
            for (float & v : x) v = normal(rng);
            std::uniform_int_distribution<int> at(0, n - 1);
            switch (round % 5) {
                case 1:  // ties: the first one wins
                    x[at(rng)] = 9;
                    x[at(rng)] = 9;
                    break;
                case 2:  // NaN anywhere, first of a block included, never wins
                    x[0] = nan;
                    x[at(rng)] = nan;
                    if (n > 2048) x[2048] = nan;
                    break;
                case 3:  // banned tokens (ignore_eos) are -inf
                    for (int k = 0; k < 5; ++k) x[at(rng)] = -inf;
                    break;
                case 4:  // everything equal
                    std::fill(x.begin(), x.end(), round % 2 ? -inf : 0.5f);
                    break;
            }
            EXPECT_EQ(cortex::llm::argmax(x.data(), n), reference(x)) << "n " << n << " round " << round;
        }
    }
    std::vector<float> all_nan(100, nan);
    EXPECT_EQ(cortex::llm::argmax(all_nan.data(), 100), 0);
}
