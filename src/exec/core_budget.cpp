#include "exec/core_budget.h"

#include <algorithm>
#include <thread>

namespace llmerge {

CoreBudget::CoreBudget(int slots) : free_(std::max(1, slots)) {}

CoreBudget& CoreBudget::process() {
  static CoreBudget budget(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  return budget;
}

void CoreBudget::acquire() {
  std::unique_lock lock(mutex_);
  available_.wait(lock, [this] { return free_ > 0; });
  --free_;
}

void CoreBudget::release() {
  {
    std::lock_guard lock(mutex_);
    ++free_;
  }
  available_.notify_one();
}

}  // namespace llmerge
