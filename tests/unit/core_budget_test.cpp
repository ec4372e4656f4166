// Parallel runs share the cores: a CoreBudget never lets more holders in than it has slots.
#include "exec/core_budget.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace llmerge {
namespace {

TEST(CoreBudget, NeverAdmitsMoreHoldersThanSlots) {
  for (int slots : {1, 2, 3}) {
    CoreBudget budget(slots);
    std::atomic<int> inside{0}, most{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 20; ++i) {
          CoreSlot slot(budget);
          const int now = ++inside;
          int seen = most.load();
          while (now > seen && !most.compare_exchange_weak(seen, now)) {
          }
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          --inside;
        }
      });
    }
    for (auto& t : threads)
      t.join();
    EXPECT_LE(most.load(), slots);
    EXPECT_GE(most.load(), 1);
  }
}

}  // namespace
}  // namespace llmerge
