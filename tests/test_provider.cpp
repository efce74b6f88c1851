#include <gtest/gtest.h>
// work in progress
