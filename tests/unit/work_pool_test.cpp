// The worker pool under the executor and the compare engine: every item runs
// exactly once, on each worker's own state; the first error stops the rest and
// is rethrown after every thread has joined; so is a throwing progress callback.
#include "exec/work_pool.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"

namespace llmerge {
namespace {

TEST(WorkPool, EveryItemRunsOnceOnItsWorkersOwnState) {
  for (int threads : {1, 2, 4}) {
    constexpr std::size_t k_items = 500;
    std::vector<std::atomic<int>> runs(k_items);
    std::atomic<int> workers{0};
    std::atomic<int> progress_calls{0};
    WorkPoolOptions options;
    options.threads = threads;
    options.progress = [&] { ++progress_calls; };
    WorkPool pool(options);
    pool.run(k_items, [&]() -> WorkPool::ItemFn {
      ++workers;
      auto mine = std::make_shared<std::thread::id>(std::this_thread::get_id());
      return [&runs, mine](std::size_t i) {
        // Each worker's function runs on the thread that made it.
        EXPECT_EQ(*mine, std::this_thread::get_id());
        ++runs[i];
      };
    });
    EXPECT_EQ(workers.load(), threads);
    for (std::size_t i = 0; i < k_items; ++i)
      ASSERT_EQ(runs[i].load(), 1) << "item " << i << " at " << threads << " threads";
    EXPECT_GE(progress_calls.load(), 1);  // at least the final call
  }
}

TEST(WorkPool, TheFirstErrorStopsTheOthersAndIsRethrownAfterTheJoin) {
  std::atomic<int> done{0};
  std::atomic<bool> others_stopped{false};
  WorkPoolOptions options;
  options.threads = 2;
  WorkPool pool(options);
  try {
    pool.run(1000, [&]() -> WorkPool::ItemFn {
      return [&](std::size_t i) {
        if (i == 3) throw std::runtime_error("item 3 broke");
        // A long item checks between its chunks, as the executor does.
        for (int chunk = 0; chunk < 50; ++chunk) {
          try {
            pool.check_stop();
          } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::interrupted);
            others_stopped = true;
            throw;
          }
          std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        ++done;
      };
    });
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "item 3 broke");  // the first error, not the interruptions it caused
  }
  EXPECT_LT(done.load(), 1000);
}

TEST(WorkPool, AThrowingProgressCallbackStopsAndJoinsTheWorkers) {
  std::atomic<int> running{0};
  WorkPoolOptions options;
  options.threads = 2;
  options.progress_interval_s = 0.01;
  options.progress = [] { throw std::runtime_error("KeyboardInterrupt"); };
  {
    WorkPool pool(options);
    EXPECT_THROW(pool.run(100000,
                          [&]() -> WorkPool::ItemFn {
                            return [&](std::size_t) {
                              ++running;
                              pool.check_stop();
                              std::this_thread::sleep_for(std::chrono::microseconds(100));
                              --running;
                            };
                          }),
                 std::runtime_error);
  }
  EXPECT_EQ(running.load(), 0);  // nothing left running once run() has thrown
}

TEST(WorkPool, ACancelledTokenStopsTheItemsAtTheirNextCheck) {
  WorkPoolOptions options;
  options.threads = 2;
  CancelToken token;
  options.cancel = token;
  WorkPool pool(options);
  std::atomic<int> done{0};
  try {
    pool.run(100000, [&]() -> WorkPool::ItemFn {
      return [&](std::size_t i) {
        if (i == 10) token.cancel();
        pool.check_stop();
        ++done;
      };
    });
    ADD_FAILURE() << "not cancelled";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::interrupted);
  }
  EXPECT_LT(done.load(), 100000);
}

}  // namespace
}  // namespace llmerge
